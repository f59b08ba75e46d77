// Loader overhead: `hxc run` on a one-device plan against a plain onnxruntime-node session on the
// same model and inputs (issue target: within 10%). Medians over repeated requests after warm-up.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { runPipeline } from '../cli/run-passes.js';
import { readPlan } from '../plan/read.js';
import { runPlan } from '../runtime/run.js';
import { makeInputs } from '../runtime/tensors.js';
import { modelInputs } from '../runtime/shards.js';
import { median } from '../util/stats.js';

export interface LoaderRow {
  model: string;
  plain_ms: number;
  hxc_ms: number;
  ratio: number;
}

export async function loaderOverhead(repo: string, models: { file: string; dims: Record<string, number> }[], iterations = 40): Promise<LoaderRow[]> {
  const rows: LoaderRow[] = [];
  for (const m of models) {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-bench-run-'));
    await runPipeline({ model_path: m.file, topology_path: path.join(repo, 'fixtures', 'topology', 'cpu-only.yaml'), dims: m.dims, flags: { out } }, null);
    const plan = readPlan(out);
    // Fresh inputs for every request on both sides, made outside the timed region (as hxc run does):
    // a server never sees the same tensor twice, and reusing one keeps it hot in cache. The two
    // sides alternate in blocks so that drift in the machine's load hits both alike.
    const session = await ort.InferenceSession.create(m.file);
    // The unsplit model's inputs: a plan holding some as parts (src/runtime/shards.ts) lists those.
    const inputs = modelInputs(plan.inputs, plan.tensor_parallel?.io ?? []);
    for (let i = 0; i < 5; i++) await session.run(makeInputs(inputs, plan.dims, 7 + i));
    const plain: number[] = [];
    const hxc: number[] = [];
    const blocks = 4;
    const per = Math.ceil(iterations / blocks);
    for (let b = 0; b < blocks; b++) {
      for (let i = 0; i < per; i++) {
        const feeds = makeInputs(inputs, plan.dims, 7 + b * per + i);
        const t0 = performance.now();
        await session.run(feeds);
        plain.push(performance.now() - t0);
      }
      const report = await runPlan({ plan_dir: out, seed: 7 + b * per, iterations: per + 3, check: false, decode_steps: 0, dims: {} });
      hxc.push(...report.requests.slice(3).map((r) => r.latency_ms));
    }
    await session.release();
    rows.push({
      model: `${path.basename(m.file)}${
        Object.keys(m.dims).length
          ? ` ${Object.entries(m.dims)
              .map(([k, v]) => `${k}=${v}`)
              .join(',')}`
          : ''
      }`,
      plain_ms: median(plain),
      hxc_ms: median(hxc),
      ratio: median(hxc) / median(plain),
    });
  }
  return rows;
}
