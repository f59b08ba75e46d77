// Placement quality on random heterogeneous DAGs: per case the makespan of the hxc heuristic
// (HEFT + refinement), the exact MILP, the lower bound, plain HEFT and everything on the single
// fastest device, and the planning times. Run by `npm run bench -- placement`.

import { lowerBound } from '../partition/bounds.js';
import { solveExact } from '../partition/exact.js';
import { heft } from '../partition/heft.js';
import { unitTime } from '../partition/problem.js';
import { refine } from '../partition/refine.js';
import { randomProblem, type RandomSpec } from './random-problems.js';

export const SUITE: RandomSpec[] = [];
for (let k = 0; k < 12; k++) SUITE.push({ seed: 1000 + k, units: 8 + (k % 4) * 2, devices: 3 + (k % 2), ccr: [0.1, 0.5, 1, 2][k % 4]! });

export interface QualityRow {
  name: string;
  heuristic_s: number;
  exact_s: number | null;
  exact_status: string;
  lower_bound_s: number;
  heft_s: number;
  single_s: number;
  heuristic_ms: number;
  exact_ms: number;
}

export async function qualitySuite(timeLimit_s = 10): Promise<QualityRow[]> {
  const rows: QualityRow[] = [];
  for (const spec of SUITE) {
    const p = randomProblem(spec);
    const t0 = performance.now();
    const h = heft(p);
    const r = refine(p, h);
    const t1 = performance.now();
    const e = await solveExact(p, { time_limit_s: timeLimit_s, incumbent: r.placement.device, incumbent_priority: r.placement.start_s });
    const t2 = performance.now();
    const lb = await lowerBound(p);
    let single = Infinity;
    for (let d = 0; d < p.device_ids.length; d++) {
      let t = 0;
      for (let u = 0; u < p.unit_names.length; u++) t += unitTime(p, u, d);
      single = Math.min(single, t);
    }
    rows.push({
      name: `dag${spec.seed} ${spec.units}u×${spec.devices}d ccr=${spec.ccr}`,
      heuristic_s: r.placement.makespan_s,
      exact_s: e.objective_s,
      exact_status: e.status,
      lower_bound_s: lb.lower_bound_s,
      heft_s: h.makespan_s,
      single_s: single,
      heuristic_ms: t1 - t0,
      exact_ms: t2 - t1,
    });
  }
  return rows;
}
