// `npm run bench -- runtime`: the runtime across processes against in-process threads. A shared
// model's plan runs R requests with one worker thread per device (hxc run), then with one hxc
// worker process per device on loopback (hxc run --spawn: every transfer crosses gRPC); beside
// them the plan's own estimate. Medians after warm-up; the transport's cost per request and per
// transfer is the difference of the medians.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runPipeline } from '../cli/run-passes.js';
import { readPlan } from '../plan/read.js';
import { DEFAULT_TIMEOUT_S, runPlan } from '../runtime/run.js';
import { spawnWorkers } from '../runtime/grpc/spawn.js';
import { median } from '../util/stats.js';
import { reportingOnce } from '../serve/plan.js';

export interface TransportRow {
  model: string;
  devices: number;
  transfers: number;
  threads_ms: number;
  processes_ms: number;
  estimate_ms: number;
}

export async function transportTable(models: string, examples: string, requests = 30): Promise<TransportRow[]> {
  const rows: TransportRow[] = [];
  for (const [model, rack, flags] of [
    ['gpt2_tiny_kv', 'rack-hetero', { prompt: 64 }],
    ['mixtral_tiny_moe_kv', 'rack-hetero', { prompt: 64 }],
    ['mobilenet_v3_small', 'rack-8gpu', {}],
  ] as const) {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-bench-transport-'));
    await reportingOnce(() =>
      runPipeline(
        {
          model_path: path.join(models, `${model}.onnx`),
          topology_path: path.join(examples, `${rack}.yaml`),
          dims: dimsOf(models, model),
          flags: { ...flags, out },
        },
        null,
      ),
    );
    const plan = readPlan(out);
    const devices = plan.devices.filter((d) => d.steps.length > 0).map((d) => d.id);
    const base = { plan_dir: out, seed: 3, iterations: requests + 3, check: false, decode_steps: 0, dims: {} };
    const threads = await runPlan(base);
    const spawned = await spawnWorkers(devices, DEFAULT_TIMEOUT_S);
    let processes: Awaited<ReturnType<typeof runPlan>>;
    try {
      processes = await runPlan({ ...base, workers: { specs: spawned.workers, token: spawned.token } });
    } finally {
      await spawned.stop();
    }
    fs.rmSync(out, { recursive: true, force: true });
    rows.push({
      model: `${model} on ${rack}`,
      devices: devices.length,
      transfers: plan.transfers.length,
      threads_ms: median(threads.requests.slice(3).map((r) => r.latency_ms)),
      processes_ms: median(processes.requests.slice(3).map((r) => r.latency_ms)),
      estimate_ms: plan.estimate.latency_s * 1e3,
    });
    process.stderr.write(`  done: transport ${model}\n`);
  }
  return rows;
}

/** The model's NAME.dims.json, for the symbols --phase does not bind (a CNN's batch). */
function dimsOf(models: string, model: string): Record<string, number> {
  const f = path.join(models, `${model}.dims.json`);
  if (!fs.existsSync(f) || model.includes('_kv')) return {};
  return JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, number>;
}
