// Refinement after HEFT: local search over single-unit moves (a unit to another device that can
// run it and has memory room), each judged by re-evaluating the whole schedule with the current
// start times as priorities; first improvement wins, rounds repeat until none improves or the time
// budget runs out. This is the "partition-improvement pass" of the classic list-scheduling +
// local-search recipe (cf. Kernighan–Lin style moves as used for DAG partitioning).

import { pinnedBytes } from './heft.js';
import { Evaluator, unitTime, type Placement, type PlacementProblem } from './problem.js';

export interface RefineResult {
  placement: Placement;
  moves: number;
  rounds: number;
  evaluations: number;
}

/**
 * The budget is a number of evaluations, not seconds, so that the same inputs give the same plan
 * on any machine.
 */
export function refine(p: PlacementProblem, initial: Placement, maxEvaluations = 20_000, maxRounds = 20): RefineResult {
  const nd = p.device_ids.length;
  const n = p.unit_names.length;
  const ev = new Evaluator(p);
  const device = Int32Array.from(initial.device);
  let current: Placement = { ...ev.run(device, initial.start_s), device: Int32Array.from(device) };
  if (current.makespan_s > initial.makespan_s) current = { ...initial, device: Int32Array.from(initial.device) };
  device.set(current.device);
  const used = new Float64Array(nd);
  const floor = new Float64Array(nd);
  for (let u = 0; u < n; u++) {
    used[device[u]!] += pinnedBytes(p, u);
    floor[device[u]!] = Math.max(floor[device[u]!]!, p.activation_bytes[u]!);
  }
  let moves = 0;
  let rounds = 0;
  let evaluations = 0;
  const outOfTime = (): boolean => evaluations >= maxEvaluations;
  while (rounds < maxRounds && !outOfTime()) {
    rounds++;
    let improved = false;
    // Latest-finishing units first: they decide the makespan.
    const units = Array.from({ length: n }, (_, u) => u).sort((a, b) => current.finish_s[b]! - current.finish_s[a]! || a - b);
    for (const u of units) {
      if (outOfTime()) break;
      const from = device[u]!;
      const need = pinnedBytes(p, u);
      for (let d = 0; d < nd; d++) {
        if (d === from || !Number.isFinite(unitTime(p, u, d))) continue;
        if (used[d]! + need + Math.max(floor[d]!, p.activation_bytes[u]!) > p.capacity_bytes[d]!) continue;
        device[u] = d;
        const trial = ev.run(device, current.start_s);
        evaluations++;
        if (trial.makespan_s < current.makespan_s * (1 - 1e-9)) {
          used[from] -= need;
          used[d] += need;
          floor[d] = Math.max(floor[d]!, p.activation_bytes[u]!);
          current = { ...trial, device: Int32Array.from(device) };
          moves++;
          improved = true;
          break;
        }
        device[u] = from;
      }
    }
    if (!improved) break;
  }
  return { placement: current, moves, rounds, evaluations };
}
