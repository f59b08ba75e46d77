// `npm run bench -- serve`: serving plans of the shared KV models on the example racks. Each model
// and rack is planned once (the candidates' phases by the whole pipeline); then, for a few arrival
// rates and SLOs, the colocated plan and the best disaggregated pools are judged by the serving
// simulator, and hxc's choice for that workload is set against the better of the two.

import path from 'node:path';
import { planServe, judgeCandidate, chooseServe, reportingOnce, type ServeCandidate } from '../serve/plan.js';
import { parseWorkload, type Workload } from '../serve/workload.js';
import type { PlanOptions } from '../pass/pass.js';
import fs from 'node:fs';
import os from 'node:os';

export interface ServeRow {
  model: string;
  rack: string;
  scenario: string;
  colocated: number | null;
  disaggregated: number | null;
  best_split: string | null;
  chosen: string;
  chosen_goodput: number;
}

const workloadText = (rate: number, ttft: string, tpot: string): string =>
  `format: hxc-workload/v1\nrate_per_s: ${rate}\nprompt_tokens: {uniform: [96, 160]}\noutput_tokens: {uniform: [32, 96]}\nslo: {ttft_p90: ${ttft}, tpot_p90: ${tpot}}\nrequests: 400\nseed: 7\n`;

/** Rates as multiples of the colocated plan's capacity, under a loose and a tight TPOT SLO. */
const SCENARIOS: { load: number; ttft: string; tpot: string }[] = [
  { load: 0.5, ttft: '50ms', tpot: '5ms' },
  { load: 1.0, ttft: '50ms', tpot: '5ms' },
  { load: 1.5, ttft: '50ms', tpot: '5ms' },
  { load: 1.0, ttft: '20ms', tpot: '1ms' },
];

export async function serveTable(models: string, examples: string): Promise<ServeRow[]> {
  const rows: ServeRow[] = [];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-bench-serve-'));
  const base = path.join(work, 'base.yaml');
  fs.writeFileSync(base, workloadText(4, '50ms', '5ms'));
  for (const model of ['gpt2_tiny_kv', 'mixtral_tiny_moe_kv', 'dense_moe_small_kv']) {
    for (const rack of ['rack-hetero', 'rack-8gpu']) {
      const options: PlanOptions = {
        model_path: path.join(models, `${model}.onnx`),
        topology_path: path.join(examples, `${rack}.yaml`),
        dims: {},
        flags: { workload: base },
      };
      const planning = await reportingOnce(() => planServe(options));
      const colocatedCap = planning.colocated?.capacity_per_s ?? 1;
      for (const sc of SCENARIOS) {
        const rate = Number((sc.load * colocatedCap).toPrecision(4));
        const w: Workload = parseWorkload(workloadText(rate, sc.ttft, sc.tpot), 'bench.yaml');
        const judged = planning.candidates.map((c) => judgeCandidate(c, w));
        const col = judged.find((c) => !c.disaggregated) ?? null;
        let best: ServeCandidate | null = null;
        for (const c of judged) if (c.disaggregated && (!best || c.goodput_per_s > best.goodput_per_s)) best = c;
        const chosen = chooseServe(judged, 'auto', rack);
        rows.push({
          model,
          rack,
          scenario: `${rate}/s, TTFT ${sc.ttft}, TPOT ${sc.tpot}`,
          colocated: col?.goodput_per_s ?? null,
          disaggregated: best?.goodput_per_s ?? null,
          best_split: best?.name ?? null,
          chosen: chosen.disaggregated ? 'disaggregated' : 'colocated',
          chosen_goodput: chosen.goodput_per_s,
        });
      }
      process.stderr.write(`  done: serve ${model} on ${rack}\n`);
    }
  }
  fs.rmSync(work, { recursive: true, force: true });
  return rows;
}
