// `npm run bench -- replan`: hxc replan against a fresh plan on the shared MoE models. Each model
// is planned with uniform routing (the running plan); then its routing trace arrives (the shared
// `*.expert_routing.json`) and it is replanned from the running plan and, for comparison, planned
// from scratch with the trace. A second case takes the GPU holding most of the running plan away.
// Reported: units moved and migration bytes for each, and the simulated latency of the running plan
// under the new inputs, the replan and the fresh plan.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lowerPass } from '../../passes/lower.js';
import type { PlanV1 } from '../plan/format.js';
import { diffPlans } from '../cli/diff-command.js';
import { replanOptions } from '../cli/replan-command.js';
import { runPipeline } from '../cli/run-passes.js';
import { readPlan } from '../plan/read.js';

export interface ReplanRow {
  name: string;
  replan_moves: number;
  replan_bytes: number;
  fresh_moves: number;
  fresh_bytes: number;
  running_s: number | null;
  replan_s: number;
  fresh_s: number;
}

/** The rack file without `gone` (rack-8gpu's form: a gpu[0-7] range and two links naming every GPU). */
function withoutDevice(rack: string, gone: string): string {
  const keep = [0, 1, 2, 3, 4, 5, 6, 7].map((k) => `gpu${k}`).filter((g) => g !== gone);
  return rack
    .replace('id: gpu[0-7]', `id: gpu[${keep.map((g) => g.slice(3)).join(',')}]`)
    .replace('connects: [gpu0, gpu1, gpu2, gpu3, gpu4, gpu5, gpu6, gpu7]', `connects: [${keep.join(', ')}]`)
    .replace('connects: [cpu0, gpu0, gpu1, gpu2, gpu3, gpu4, gpu5, gpu6, gpu7]', `connects: [cpu0, ${keep.join(', ')}]`);
}

export async function replanTable(models: string, examples: string): Promise<ReplanRow[]> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-bench-replan-'));
  const rows: ReplanRow[] = [];
  const rack = path.join(examples, 'rack-8gpu.yaml');
  try {
    for (const trace of fs
      .readdirSync(models)
      .filter((f) => f.endsWith('.expert_routing.json'))
      .sort()) {
      const base = trace.replace('.expert_routing.json', '');
      const model = [`${base}.onnx`, `${base}.graph_only.onnx`].map((f) => path.join(models, f)).find((f) => fs.existsSync(f));
      if (!model) continue;
      const routing = path.join(models, trace);
      const dir = path.join(work, base);
      const running = path.join(dir, 'running');
      await runPipeline({ model_path: model, topology_path: rack, dims: {}, flags: { out: running }, default_phase: true }, null);
      const old = readPlan(running);
      // The GPU that ran most of the model.
      const counts = new Map<string, number>();
      for (const d of Object.values(old.assignment)) if (d.startsWith('gpu')) counts.set(d, (counts.get(d) ?? 0) + 1);
      const gone = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0];
      const cases: { name: string; routing: string | null; topology: string }[] = [{ name: `${base}: measured routing arrives`, routing, topology: rack }];
      if (gone) {
        const smaller = path.join(dir, 'rack-without.yaml');
        fs.writeFileSync(smaller, withoutDevice(fs.readFileSync(rack, 'utf8'), gone));
        cases.push({ name: `${base}: ${gone} lost`, routing: null, topology: smaller });
      }
      for (const [k, c] of cases.entries()) {
        const replanned = path.join(dir, `replan${k}`);
        const opts = replanOptions(running, { out: replanned, topology: c.topology, ...(c.routing ? { routing: c.routing } : {}) });
        const r = await runPipeline({ ...opts, default_phase: true }, null);
        const delta = r.ctx.get(lowerPass).delta!;
        const freshDir = path.join(dir, `fresh${k}`);
        await runPipeline(
          { model_path: model, topology_path: c.topology, dims: opts.dims, flags: { ...opts.flags, out: freshDir }, default_phase: true },
          null,
        );
        const fresh: PlanV1 = readPlan(freshDir);
        const d = diffPlans(running, old, freshDir, fresh);
        rows.push({
          name: c.name,
          replan_moves: delta.moves,
          replan_bytes: delta.migration_bytes,
          fresh_moves: d.moved.length,
          fresh_bytes: d.migration_bytes,
          running_s: delta.running_now?.latency_s ?? null,
          replan_s: delta.new.latency_s,
          fresh_s: fresh.estimate.latency_s,
        });
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return rows;
}
