// Refinement after HEFT: iterated local search (Lourenço, Martin, Stützle, "Iterated Local
// Search", 2003) over the placement. The local search tries single-unit moves (a unit to another
// device that can run it and has memory room) and, on small problems, swaps of two units' devices;
// each candidate is judged by re-evaluating the whole schedule under two priority orders (the
// current start times, and HEFT's upward ranks) and the better one is kept; first improvement
// wins. At a local optimum a few units are kicked to random devices (seeded PRNG) and the search
// restarts from there; the best placement seen is returned. The budget is a number of evaluations,
// not seconds, so the same inputs give the same plan on any machine.

import { mulberry32 } from '../util/stats.js';
import { upwardRanks } from './heft.js';
import { Evaluator, residentBytes, unitTime, type Placement, type PlacementProblem } from './problem.js';

export interface RefineResult {
  placement: Placement;
  moves: number;
  rounds: number;
  evaluations: number;
}

export function refine(p: PlacementProblem, initial: Placement, maxEvaluations = Math.min(20_000, Math.ceil(2_000_000 / Math.max(1, p.unit_names.length))), seed = 12345): RefineResult {
  const nd = p.device_ids.length;
  const n = p.unit_names.length;
  const ev = new Evaluator(p);
  const rank = upwardRanks(p);
  const rankPriority = Float64Array.from(rank, (x) => -x);
  let evaluations = 0;
  const evalBest = (device: Int32Array, starts: Float64Array): Placement => {
    evaluations += 2;
    const a = ev.run(device, starts);
    const b = ev.run(device, rankPriority);
    return a.makespan_s <= b.makespan_s ? { ...a, device: Int32Array.from(device) } : { ...b, device: Int32Array.from(device) };
  };
  const fits = (device: Int32Array): boolean => {
    const used = new Float64Array(nd);
    const floor = new Float64Array(nd);
    for (let u = 0; u < n; u++) {
      used[device[u]!] += residentBytes(p, u);
      floor[device[u]!] = Math.max(floor[device[u]!]!, p.activation_bytes[u]!);
    }
    for (let d = 0; d < nd; d++) if (used[d]! + floor[d]! > p.capacity_bytes[d]!) return false;
    return true;
  };
  let current = evalBest(Int32Array.from(initial.device), initial.start_s);
  if (initial.makespan_s < current.makespan_s) current = { ...initial, device: Int32Array.from(initial.device) };
  let best = current;
  let moves = 0;
  let rounds = 0;
  const rand = mulberry32(seed);
  const better = (a: number, b: number): boolean => a < b * (1 - 1e-9);

  /** Local search from `current` until no move or swap improves it (or the budget ends). */
  const descend = (): void => {
    for (;;) {
      rounds++;
      let improved = false;
      const device = Int32Array.from(current.device);
      const units = Array.from({ length: n }, (_, u) => u).sort((a, b) => current.finish_s[b]! - current.finish_s[a]! || a - b);
      outer: for (const u of units) {
        const from = device[u]!;
        for (let d = 0; d < nd && evaluations < maxEvaluations; d++) {
          if (d === from || !Number.isFinite(unitTime(p, u, d))) continue;
          device[u] = d;
          if (!fits(device)) { device[u] = from; continue; }
          const trial = evalBest(device, current.start_s);
          if (better(trial.makespan_s, current.makespan_s)) {
            current = trial;
            moves++;
            improved = true;
            break outer;
          }
          device[u] = from;
        }
      }
      if (!improved && n <= 64) {
        swaps: for (let u = 0; u < n; u++) {
          for (let w = u + 1; w < n && evaluations < maxEvaluations; w++) {
            const du = device[u]!;
            const dw = device[w]!;
            if (du === dw || !Number.isFinite(unitTime(p, u, dw)) || !Number.isFinite(unitTime(p, w, du))) continue;
            device[u] = dw;
            device[w] = du;
            if (fits(device)) {
              const trial = evalBest(device, current.start_s);
              if (better(trial.makespan_s, current.makespan_s)) {
                current = trial;
                moves++;
                improved = true;
                break swaps;
              }
            }
            device[u] = du;
            device[w] = dw;
          }
        }
      }
      if (!improved || evaluations >= maxEvaluations) return;
    }
  };

  descend();
  if (better(current.makespan_s, best.makespan_s)) best = current;
  // Kicks: move a few random units to random capable devices — or shuffle the order a little —
  // and descend again from the best.
  const meanTime = best.makespan_s / Math.max(1, n);
  while (evaluations < maxEvaluations) {
    if (rand() < 0.5) {
      const jittered = Float64Array.from(best.start_s, (s) => s + (rand() - 0.5) * 2 * meanTime);
      evaluations++;
      const trial = ev.run(best.device, jittered);
      current = { ...trial, device: Int32Array.from(best.device) };
      descend();
      if (better(current.makespan_s, best.makespan_s)) best = current;
      continue;
    }
    const device = Int32Array.from(best.device);
    const kicks = 1 + Math.floor(rand() * Math.min(3, n));
    for (let k = 0; k < kicks; k++) {
      const u = Math.floor(rand() * n);
      const options = [...Array(nd).keys()].filter((d) => Number.isFinite(unitTime(p, u, d)));
      device[u] = options[Math.floor(rand() * options.length)]!;
    }
    if (!fits(device)) {
      evaluations++;
      continue;
    }
    current = evalBest(device, best.start_s);
    descend();
    if (better(current.makespan_s, best.makespan_s)) best = current;
  }
  return { placement: best, moves, rounds, evaluations };
}
