// Plan quality on the shared models: every model on every example rack (and the built-in one),
// both objectives, prefill and (for KV-cache models) decode — the shipped plan against each
// baseline plan.json reports (all simulated alike), the gap to the bound, and the planning time.
// Run by `npm run bench -- quality`. The shipped figure must never lose to a baseline; the table
// counts the plans where it does (zero is the only acceptable answer).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PlanV1 } from '../plan/format.js';
import { runPipeline } from '../cli/run-passes.js';

export interface QualityRow {
  name: string;
  objective: 'latency' | 'throughput';
  shipped: number;
  chosen: string;
  baselines: Record<string, number | null>;
  gap: number | null;
  plan_s: number;
  /** Baselines that beat the shipped plan (must be none). */
  losses: string[];
}

export const BASELINES = ['heft', 'single_device', 'fallback', 'even_split', 'tensor_parallel'] as const;

export async function qualityTable(models: string, racks: (string | null)[], filter = ''): Promise<QualityRow[]> {
  const rows: QualityRow[] = [];
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-quality-'));
  try {
    const files = fs
      .readdirSync(models)
      .filter((f) => f.endsWith('.onnx'))
      .sort();
    for (const file of files) {
      const model = path.join(models, file);
      const dimsFile = model.replace(/\.onnx$/, '.dims.json');
      const dims = fs.existsSync(dimsFile) ? (JSON.parse(fs.readFileSync(dimsFile, 'utf8')) as Record<string, number>) : {};
      const kv = Object.keys(dims).some((d) => /past/.test(d));
      const phases: { name: string; dims: Record<string, number>; flags: Record<string, string | number> }[] = [{ name: 'dims', dims, flags: {} }];
      if (kv) phases.push({ name: 'decode', dims: {}, flags: { phase: 'decode', batch: 2 } });
      for (const rack of racks) {
        for (const phase of phases) {
          for (const objective of ['latency', 'throughput'] as const) {
            const name = `${file.replace(/\.onnx$/, '')} ${rack ? path.basename(rack, '.yaml') : 'default'} ${phase.name}`;
            if (!`${name} ${objective}`.includes(filter)) continue;
            const dir = path.join(out, String(rows.length));
            const t0 = performance.now();
            try {
              await runPipeline({ model_path: model, topology_path: rack, dims: phase.dims, flags: { out: dir, objective, ...phase.flags } }, null);
            } catch (err) {
              process.stderr.write(`  ${name} ${objective}: ${(err as Error).message.split('\n')[0]}\n`);
              continue;
            }
            const plan_s = (performance.now() - t0) / 1000;
            const p = JSON.parse(fs.readFileSync(path.join(dir, 'plan.json'), 'utf8')) as PlanV1;
            fs.rmSync(dir, { recursive: true, force: true });
            const e = p.estimate;
            // (A throughput plan simulates every candidate's throughput.)
            const figure = (j: { latency_s: number; throughput_per_s: number | null }): number =>
              objective === 'latency' ? j.latency_s : (j.throughput_per_s ?? 0);
            const shipped = figure(e);
            const baselines: Record<string, number | null> = {};
            const losses: string[] = [];
            for (const b of BASELINES) {
              const j = e.baselines[b];
              baselines[b] = j?.fits ? figure(j) : null;
              const eligible = j?.fits && (e.kv?.asked == null || (j.kv_sequences ?? Infinity) >= e.kv.asked);
              if (eligible && (objective === 'latency' ? j.latency_s < shipped * (1 - 1e-12) : figure(j) > shipped * (1 + 1e-12))) losses.push(b);
            }
            rows.push({ name, objective, shipped, chosen: e.chosen, baselines, gap: e.gap, plan_s, losses });
            process.stderr.write(`  done: ${name} ${objective} (${plan_s.toFixed(1)} s)\n`);
          }
        }
      }
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  return rows;
}
