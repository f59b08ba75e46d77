// Refinement: iterated local search (Lourenço, Martin, Stützle, "Iterated Local Search", 2003)
// over the placement. The neighbourhood moves blocks before single units — a whole stage (a
// transformer layer), a layer's experts, then each unit — to every other device that can run and
// hold them, and on small problems swaps two units' devices. The scan is circular and first-
// improvement: after an accepted move it goes on from the next move, so a local optimum costs one
// sweep (blocks + units × devices) and one sweep is within budget even for a 300-unit LLM. At a
// local optimum a few units are kicked to random devices (seeded PRNG) — or the order is jittered —
// and the search descends again; the best placement seen is returned.
//
// What a move is worth comes from the caller's `assess`: the contention-free evaluator (problem.ts)
// for a fast first pass, or the judge (judge.ts: the simulator, link contention included) after
// cheap lower bounds have pruned the moves that cannot win. Budgets count assessments, not seconds,
// so the same inputs give the same plan on any machine, idle or loaded.

import { mulberry32 } from '../util/stats.js';
import { upwardRanks } from './heft.js';
import { Evaluator, residentBytes, unitTime, type Placement, type PlacementProblem } from './problem.js';

export interface RefineResult {
  placement: Placement;
  moves: number;
  rounds: number;
  evaluations: number;
}

/** A placement's worth (lower is better) and the timed placement it was measured on. */
export interface Assessed {
  value: number;
  placement: Placement;
}

export interface SearchOptions {
  /** Units moved together (block moves), besides every single unit. */
  groups?: number[][];
  /** Worth of a device assignment (null: infeasible, or shown by a bound not to beat `toBeat`). */
  assess(device: Int32Array, priority: Float64Array, toBeat: number): Assessed | null;
  /** Assessments allowed (the budget). */
  budget: number;
  /** Perturb and descend again while budget remains (iterated local search). */
  kicks?: boolean;
  seed?: number;
}

export interface SearchResult extends Assessed {
  moves: number;
  sweeps: number;
  assessments: number;
}

/** Unit-visits of the contention-free evaluator a search phase may spend (a run visits every unit once). */
export const SEARCH_WORK = 1.5e7;

/** Relative improvement a move must bring to count (guards against float noise cycling). */
const BETTER = 1e-9;
const better = (a: number, b: number): boolean => a < b * (1 - BETTER);

/** The memory rule's terms per device: resident bytes of its units, and the largest activation among them. */
export function memoryTerms(p: PlacementProblem, device: Int32Array): { used: Float64Array; floor: Float64Array } {
  const nd = p.device_ids.length;
  const used = new Float64Array(nd);
  const floor = new Float64Array(nd);
  for (let u = 0; u < device.length; u++) {
    const d = device[u]!;
    used[d]! += residentBytes(p, u);
    if (p.activation_bytes[u]! > floor[d]!) floor[d] = p.activation_bytes[u]!;
  }
  return { used, floor };
}

/** Memory rule of every solver: resident bytes plus the largest activation of a device's units fit. */
export function fitsMemory(p: PlacementProblem, device: Int32Array): boolean {
  const { used, floor } = memoryTerms(p, device);
  for (let d = 0; d < used.length; d++) if (used[d]! + floor[d]! > p.capacity_bytes[d]!) return false;
  return true;
}

/**
 * fitsMemory for a move of a few units, in O(units moved + devices) instead of O(all units): the
 * terms of the placement the search stands on, and which devices overflow there. A device that
 * loses units only loses bytes; its floor (largest activation) is recomputed only when that could
 * decide. Near a capacity, where the order of a sum could round the other way, it asks fitsMemory.
 */
export class MemoryLedger {
  private used!: Float64Array;
  private floor!: Float64Array;
  private over: number[] = [];
  /** Scratch per device: bytes in and out, the largest activation coming in, and whether touched. */
  private readonly delta: Float64Array;
  private readonly inFloor: Float64Array;
  private readonly losing: Uint8Array;
  private readonly touched: Uint8Array;

  constructor(
    private readonly p: PlacementProblem,
    device: Int32Array,
  ) {
    const nd = p.device_ids.length;
    this.delta = new Float64Array(nd);
    this.inFloor = new Float64Array(nd);
    this.losing = new Uint8Array(nd);
    this.touched = new Uint8Array(nd);
    this.reset(device);
  }

  /** Stand on `device` (after an accepted move). */
  reset(device: Int32Array): void {
    ({ used: this.used, floor: this.floor } = memoryTerms(this.p, device));
    this.over = [];
    for (let d = 0; d < this.used.length; d++) if (this.used[d]! + this.floor[d]! > this.p.capacity_bytes[d]!) this.over.push(d);
  }

  /** fitsMemory(p, device) where `device` is the ledger's placement with `units[k]` moved from `from[k]`. */
  fitsMove(device: Int32Array, units: readonly number[], from: ArrayLike<number>): boolean {
    const p = this.p;
    const { delta, inFloor, losing, touched } = this;
    const list: number[] = [];
    const touch = (d: number): void => {
      if (touched[d]) return;
      touched[d] = 1;
      delta[d] = 0;
      inFloor[d] = 0;
      losing[d] = 0;
      list.push(d);
    };
    for (let k = 0; k < units.length; k++) {
      const u = units[k]!;
      const a = from[k]!;
      const b = device[u]!;
      if (a === b) continue;
      const r = residentBytes(p, u);
      touch(a);
      touch(b);
      delta[a]! -= r;
      losing[a] = 1;
      delta[b]! += r;
      if (p.activation_bytes[u]! > inFloor[b]!) inFloor[b] = p.activation_bytes[u]!;
    }
    let verdict = true;
    for (const d of this.over) if (!touched[d]) verdict = false;
    for (const d of list) {
      if (!verdict) break;
      const cap = p.capacity_bytes[d]!;
      const margin = 1e-9 * Math.max(cap, 1);
      const used = this.used[d]! + delta[d]!;
      // With units leaving, the floor is at most what it was (plus what comes in).
      let left = cap - (used + Math.max(this.floor[d]!, inFloor[d]!));
      if (left < -margin && losing[d]) {
        let f = 0;
        for (let w = 0; w < device.length; w++) if (device[w] === d && p.activation_bytes[w]! > f) f = p.activation_bytes[w]!;
        left = cap - (used + f);
      }
      if (Math.abs(left) <= margin) {
        verdict = fitsMemory(p, device);
        break;
      }
      if (left < 0) verdict = false;
    }
    for (const d of list) touched[d] = 0;
    return verdict;
  }
}

export function localSearch(p: PlacementProblem, start: Assessed, opts: SearchOptions): SearchResult {
  const nd = p.device_ids.length;
  const n = p.unit_names.length;
  const groups = (opts.groups ?? []).filter((g) => g.length > 1);
  let assessments = 0;
  let moves = 0;
  let sweeps = 0;
  const assess = (device: Int32Array, priority: Float64Array, toBeat: number): Assessed | null => {
    assessments++;
    return opts.assess(device, priority, toBeat);
  };
  // Moves: blocks first (they cross valleys single moves cannot), then units, each to every device:
  // move k takes unitsOf(k) to device k % nd. (Numbered, not listed: a list held a move object and
  // a one-unit array per unit and device, 282k of each per search on the DeepSeek-V3 shape.)
  const blockMoves = groups.length * nd;
  const moveCount = blockMoves + n * nd;
  const single = [0];
  const unitsOf = (k: number): number[] => {
    if (k < blockMoves) return groups[Math.floor(k / nd)]!;
    single[0] = Math.floor((k - blockMoves) / nd);
    return single;
  };
  const old = new Int32Array(groups.reduce((m, g) => Math.max(m, g.length), 1));
  const swaps = n <= 64;

  let current: Assessed = { value: start.value, placement: { ...start.placement, device: Int32Array.from(start.placement.device) } };
  let best = current;

  /** Circular first-improvement descent from `current`, until a full cycle brings nothing. */
  const descend = (): void => {
    const device = Int32Array.from(current.placement.device);
    const ledger = new MemoryLedger(p, device);
    let idle = 0;
    let k = 0;
    while (idle < moveCount && assessments < opts.budget) {
      const units = unitsOf(k);
      const to = k % nd;
      k = (k + 1) % moveCount;
      if (k === 0) sweeps++;
      idle++;
      let changed = false;
      for (let j = 0; j < units.length; j++) {
        const u = units[j]!;
        old[j] = device[u]!;
        if (device[u] !== to && Number.isFinite(unitTime(p, u, to))) {
          device[u] = to;
          changed = true;
        }
      }
      if (!changed || !ledger.fitsMove(device, units, old)) {
        for (let j = 0; j < units.length; j++) device[units[j]!] = old[j]!;
        continue;
      }
      const trial = assess(device, current.placement.start_s, current.value);
      if (trial && better(trial.value, current.value)) {
        current = { value: trial.value, placement: { ...trial.placement, device: Int32Array.from(device) } };
        ledger.reset(device);
        moves++;
        idle = 0;
      } else for (let j = 0; j < units.length; j++) device[units[j]!] = old[j]!;
    }
    if (!swaps) return;
    // Swaps of two units' devices, first improvement, until none improves.
    for (let improved = true; improved && assessments < opts.budget; ) {
      improved = false;
      swap: for (let u = 0; u < n; u++) {
        for (let w = u + 1; w < n && assessments < opts.budget; w++) {
          const du = device[u]!;
          const dw = device[w]!;
          if (du === dw || !Number.isFinite(unitTime(p, u, dw)) || !Number.isFinite(unitTime(p, w, du))) continue;
          device[u] = dw;
          device[w] = du;
          if (fitsMemory(p, device)) {
            const trial = assess(device, current.placement.start_s, current.value);
            if (trial && better(trial.value, current.value)) {
              current = { value: trial.value, placement: { ...trial.placement, device: Int32Array.from(device) } };
              moves++;
              improved = true;
              break swap;
            }
          }
          device[u] = du;
          device[w] = dw;
        }
      }
    }
  };

  descend();
  if (better(current.value, best.value)) best = current;
  // Kicks need a unit with somewhere else to go (everything pinned: nothing to perturb).
  const movable = Array.from({ length: n }, (_, u) => u).filter((u) => {
    let c = 0;
    for (let d = 0; d < nd; d++) if (Number.isFinite(unitTime(p, u, d))) c++;
    return c > 1;
  });
  if (opts.kicks && movable.length > 0) {
    const rand = mulberry32(opts.seed ?? 12345);
    const meanTime = best.placement.makespan_s / Math.max(1, n);
    while (assessments < opts.budget) {
      let trial: Assessed | null;
      if (rand() < 0.5) {
        const jittered = Float64Array.from(best.placement.start_s);
        for (let u = 0; u < n; u++) jittered[u]! += (rand() - 0.5) * 2 * meanTime;
        trial = assess(best.placement.device, jittered, Infinity);
      } else {
        const device = Int32Array.from(best.placement.device);
        const kicks = 1 + Math.floor(rand() * Math.min(3, n));
        for (let k = 0; k < kicks; k++) {
          const u = movable[Math.floor(rand() * movable.length)]!;
          const options = [...Array(nd).keys()].filter((d) => Number.isFinite(unitTime(p, u, d)));
          device[u] = options[Math.floor(rand() * options.length)]!;
        }
        if (!fitsMemory(p, device)) {
          assessments++; // a wasted kick still spends budget, so the loop ends
          continue;
        }
        trial = assess(device, best.placement.start_s, Infinity);
      }
      if (!trial) continue;
      current = { value: trial.value, placement: { ...trial.placement, device: Int32Array.from(trial.placement.device) } };
      descend();
      if (better(current.value, best.value)) best = current;
    }
  }
  return { ...best, moves, sweeps, assessments };
}

/**
 * The contention-free makespan of a device assignment under the better of two list priorities —
 * the given start times, and HEFT's upward ranks (the classic model, problem.ts).
 */
export class MakespanAssessor {
  evaluations = 0;
  private readonly ev: Evaluator;
  private readonly rankPriority: Float64Array;

  constructor(readonly p: PlacementProblem) {
    this.ev = new Evaluator(p);
    this.rankPriority = Float64Array.from(upwardRanks(p), (x) => -x);
  }

  /** Under the given priority alone (a move that keeps every device's order). */
  runOne(device: Int32Array, priority: Float64Array): Placement {
    this.evaluations++;
    return { ...this.ev.run(device, priority), device: Int32Array.from(device) };
  }

  /**
   * runOne(device, priority)'s makespan for `device` = `base.device` with the units `moved`
   * elsewhere, `base` a runOne under `priority`; its times written into `start` and `finish`
   * (Evaluator.timeMoved).
   */
  timeOneMoved(device: Int32Array, priority: Float64Array, base: Placement, moved: ArrayLike<number>, start: Float64Array, finish: Float64Array): number {
    this.evaluations++;
    return this.ev.timeMoved(device, priority, base, moved, start, finish);
  }

  run(device: Int32Array, priority: Float64Array): Placement {
    this.evaluations += 2;
    const a = this.ev.runInto(0, device, priority);
    const b = this.ev.runInto(1, device, this.rankPriority);
    return a <= b ? this.ev.placementOf(0, Int32Array.from(device), a) : this.ev.placementOf(1, Int32Array.from(device), b);
  }
}

/**
 * Contention-free refinement of a placement (the classic model alone; the partition pass then
 * judges what it finds with the simulator). Budget in evaluator runs.
 */
export function refine(p: PlacementProblem, initial: Placement, maxEvaluations = refineBudget(p), seed = 12345, groups: number[][] = []): RefineResult {
  const m = new MakespanAssessor(p);
  const first = m.run(initial.device, initial.start_s);
  const start = initial.makespan_s < first.makespan_s ? { ...initial, device: Int32Array.from(initial.device) } : first;
  const r = localSearch(
    p,
    { value: start.makespan_s, placement: start },
    {
      groups,
      budget: Math.max(1, Math.floor(maxEvaluations / 2)),
      kicks: true,
      seed,
      assess: (device, priority) => {
        const pl = m.run(device, priority);
        return { value: pl.makespan_s, placement: pl };
      },
    },
  );
  return { placement: r.placement, moves: r.moves, rounds: r.sweeps, evaluations: m.evaluations };
}

/**
 * Evaluator runs for refinement: two sweeps of the neighbourhood (blocks + units × devices, two
 * runs each) or about 4·10⁶ unit-visits of work, whichever is more — but never past 1.5·10⁷
 * unit-visits (a run visits every unit once), so planning time stays bounded on huge graphs.
 */
export function refineBudget(p: PlacementProblem, blocks = 0): number {
  const n = Math.max(1, p.unit_names.length);
  const sweep = 2 * (n + blocks) * p.device_ids.length;
  return Math.min(Math.ceil(1.5e7 / n), Math.max(2 * sweep, Math.min(40_000, Math.ceil(4_000_000 / n))));
}
