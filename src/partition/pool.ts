// The candidate pool of the partition pass: every placement judged by the same simulator (the
// judge), the memory repair of one that overflows, the judged polish, the throughput surrogate
// search, and the replan searches from a running plan — the parts of the partitioner that share
// its state, gathered in one class so that passes/partition.ts reads as the list of candidates.

import type { JudgedPlan, KvCapacity, Objective } from '../plan/format.js';
import { scanMoves, type MoveBar, type MoveScan } from './explain.js';
import { candidateOrders, PIPELINED, sameArray, shippedOrders, type Judge, type Verdict } from './judge.js';
import { placeOrphans, type Migration, type MigrationCost } from './migration.js';
import { residentBytes, unitPredecessors, unitTime, type Placement, type PlacementProblem } from './problem.js';
import { sortIndices } from '../util/sort.js';
import { fitsMemory, localSearch, memoryTerms, refineBudget, SEARCH_WORK, type Assessed, type MakespanAssessor } from './refine.js';

/** `value`: the objective's figure plus, when replanning, the migration's share (what candidates are ranked by). */
export type Candidate = JudgedPlan & { placement: Placement; value: number; raw_value: number };

/** Simulations the judged polish may run: about 1.5·10⁶ simulated steps (≈ 1.5 s), between 4 and 2000 runs. */
function polishSimulations(steps: number, requests: number): number {
  return Math.max(4, Math.min(2000, Math.floor(1.5e6 / Math.max(1, steps * requests))));
}

/**
 * What moving unit u to device `to` to free memory costs: the work it adds there per byte it frees.
 * The devices memory pushes units onto (host memory, the one GPU with room) are few and become
 * the bottleneck, so the work they take is the price — not the unit's change of speed: a routing
 * mask that runs faster on a CPU frees a few bytes, and sending the thousands of them there
 * serialises the step on it (the DeepSeek-V3 shape on rack-8gpu, decode: one relieved candidate
 * went from 240 to 185 ms by this change alone). Cold experts (a few percent of a step's tokens)
 * cost least per byte, then layers that always run, and a unit holding a few bytes most.
 */
function moveCost(p: PlacementProblem, u: number, to: number): number {
  return unitTime(p, u, to) / residentBytes(p, u);
}

/**
 * Makes room on devices whose resident bytes (plus their largest activation) pass their capacity:
 * units other than `keep` move off, cheapest first (moveCost), to the device with room that runs
 * them fastest (cold experts to host memory before hot layers, as the schedule repair does). In
 * place; leaves a device over when nothing can move.
 */
export function relieve(p: PlacementProblem, device: Int32Array, keep: ReadonlySet<number>): void {
  const nd = p.device_ids.length;
  const { used, floor } = memoryTerms(p, device);
  const room = (d: number): number => p.capacity_bytes[d]! - used[d]! - floor[d]!;
  for (let e = 0; e < nd; e++) {
    if (room(e) >= 0) continue;
    const target = (u: number): number => {
      let best = -1;
      for (let f = 0; f < nd; f++) {
        if (f === e || !Number.isFinite(unitTime(p, u, f)) || room(f) < residentBytes(p, u) + Math.max(0, p.activation_bytes[u]! - floor[f]!)) continue;
        if (best < 0 || unitTime(p, u, f) < unitTime(p, u, best)) best = f;
      }
      return best;
    };
    const movable: number[] = [];
    for (let u = 0; u < device.length; u++) if (device[u] === e && !keep.has(u) && residentBytes(p, u) > 0) movable.push(u);
    // Cheapest first, ties by unit (a stable sort of the units in ascending order; no move is Infinity).
    const costs = new Float64Array(movable.length);
    for (let k = 0; k < movable.length; k++) {
      const f = target(movable[k]!);
      costs[k] = f < 0 ? Infinity : moveCost(p, movable[k]!, f);
    }
    const positions = new Int32Array(movable.length);
    for (let k = 0; k < movable.length; k++) positions[k] = k;
    const byCost = sortIndices(positions, costs);
    for (let k = 0; k < byCost.length; k++) {
      const u = movable[byCost[k]!]!;
      if (room(e) >= 0) break;
      const f = target(u);
      if (f < 0) continue;
      device[u] = f;
      used[e]! -= residentBytes(p, u);
      used[f]! += residentBytes(p, u);
      if (p.activation_bytes[u]! > floor[f]!) floor[f] = p.activation_bytes[u]!;
    }
  }
}

/**
 * Work the partition pass's scans of single moves may do on its chosen plan: evaluator runs worth
 * twice the search's unit-visits (SEARCH_WORK; a scan of a huge graph spends one at most, as
 * explain does), each taken move then judged as the polish's simulations are.
 */
const MOVE_SCAN_WORK = 2 * SEARCH_WORK;

/**
 * What bars a plan that is `from` from a move (explain's MoveBar): spreading every tensor-parallel
 * split is kept once the plan has it, and --min-sequences once the plan holds it (or as many
 * sequences as it holds, when fewer).
 */
export function moveBar(
  tpSplits: readonly number[][],
  copyGroups: readonly number[][],
  measureKv: KvMeasure,
  asked: number | null,
  from: Int32Array,
  fromPeak: ArrayLike<number>,
): MoveBar {
  const spread = (device: Int32Array): boolean => tpSplits.every((parts) => parts.some((u) => device[u] !== device[parts[0]!]));
  const keepSpread = tpSplits.length > 0 && spread(from);
  const keepApart = copyGroups.length > 0 && copiesApart(copyGroups, from);
  const floor = asked === null ? null : Math.min(asked, measureKv(from, fromPeak).sequences);
  return (device, peak) => {
    if (keepSpread && !spread(device)) return 'it would keep a tensor-parallel split on one device';
    if (keepApart && !copiesApart(copyGroups, device)) return 'it would put two copies of a replicated expert on one device';
    if (floor !== null) {
      const held = measureKv(device, peak).sequences;
      if (held < floor) return `the KV cache would hold ${held} sequences, fewer than the ${asked} asked (--min-sequences)`;
    }
    return null;
  };
}

/**
 * No two copies of a replicated expert on one device: copies exist to run side by side, each
 * taking the rows its device's queue can (src/transform/replicate.ts); two on one device only
 * double its weights.
 */
export function copiesApart(copyGroups: readonly number[][], device: Int32Array): boolean {
  for (const copies of copyGroups)
    for (let a = 1; a < copies.length; a++) for (let b = 0; b < a; b++) if (device[copies[a]!] === device[copies[b]!]) return false;
  return true;
}

/** A placement's KV capacity (src/partition/kv.ts kvMeter). */
export type KvMeasure = (device: Int32Array, peak?: ArrayLike<number>) => KvCapacity;

/** Rounds of the memory repair (each one schedule judged). */
const REPAIR_ROUNDS = 8;

export interface PoolInput {
  p: PlacementProblem;
  judge: Judge;
  assessor: MakespanAssessor;
  objective: Objective;
  /** Block moves (a layer, a stage, a stage's experts). */
  groups: number[][];
  /** Per unit, the device the user pinned it to (--assign), or -1. */
  pinnedTo: Int32Array;
  /** Tensor-parallel splits as unit lists (a plan with splits counts only when each is spread). */
  tpSplits: number[][];
  /** Per replicated expert, its copies' units (a plan with copies counts only when no two share a device). */
  copyGroups: number[][];
  /** KV capacity of a placement: with the schedule's peak activations per device, else each device's largest unit working set. */
  measureKv: KvMeasure;
  hasState: boolean;
  /** The running plan, when replanning. */
  migration: Migration | null;
  /** --min-sequences. */
  asked: number | null;
  /** Some link is shared: contention is judged, so a latency polish may pay. */
  contention: boolean;
  /**
   * Every candidate's throughput is simulated; when false (a huge graph, not a replan) a latency
   * plan's candidates are judged by latency alone and the partition pass simulates the shipped
   * plan's throughput: the runs of R requests of the DeepSeek-V3 shape's other candidates were
   * ten of its twelve (3.9 s of 5.3 s). A throughput plan's are always simulated (its figure).
   */
  everyThroughput: boolean;
}

export class CandidatePool {
  readonly judged: Candidate[] = [];
  polishMoves = 0;
  polishSweeps = 0;
  /** Single moves explain's scan found better and the plan took (takeBetterMoves). */
  explainMoves = 0;
  /** The last scan takeBetterMoves made: explain reuses it when it is of the shipped plan. */
  lastScan: MoveScan | null = null;
  private readonly topoPriority: Float64Array;

  constructor(private readonly c: PoolInput) {
    this.topoPriority = new Float64Array(c.p.unit_names.length);
    c.p.order.forEach((u, k) => (this.topoPriority[u] = k));
  }

  /** Requests the throughput figure is simulated over. */
  get R(): number {
    return this.c.judge.requests;
  }

  /** Lower is better: latency, or the simulated time of R requests (R / throughput). */
  valueFor(v: { latency_s: number; throughput_per_s: number | null }): number {
    return this.c.objective === 'latency' ? v.latency_s : v.throughput_per_s !== null && v.throughput_per_s > 0 ? this.R / v.throughput_per_s : Infinity;
  }

  /** When replanning: the migration's share of the objective's figure. */
  migrationShare(mc: MigrationCost | undefined): number {
    const { migration, objective } = this.c;
    return migration && mc ? (objective === 'latency' ? 1 : this.R) * migration.perRequest_s(mc) : 0;
  }

  /** Every split's parts on at least two devices. */
  spread(device: Int32Array): boolean {
    return this.c.tpSplits.every((parts) => parts.some((u) => device[u] !== device[parts[0]!]));
  }

  /** No two copies of a replicated expert on one device. */
  apart(device: Int32Array): boolean {
    return copiesApart(this.c.copyGroups, device);
  }

  private usedDevices(device: Int32Array): string[] {
    // (Marked per device: a set of the units' devices spread into an array was 8 MB a DeepSeek-V3 partition.)
    const ids = this.c.p.device_ids;
    const used = new Uint8Array(ids.length);
    for (let u = 0; u < device.length; u++) used[device[u]!] = 1;
    return ids.filter((_, d) => used[d] === 1);
  }

  /**
   * Judge a placement (pins applied) and add it; null when it cannot run or hold its units. With
   * `placed`, its devices and order are taken as they are (a move judged in that order); with
   * `orders`, its throughput is judged in those step orders (the objective's by default).
   */
  consider(name: string, label: string, given: Int32Array | null, priority?: Float64Array, placed?: Placement, orders?: readonly boolean[]): Candidate | null {
    const { p, pinnedTo, assessor, judge, migration, measureKv, hasState, tpSplits, copyGroups } = this.c;
    const n = p.unit_names.length;
    const judged = this.judged;
    const topoPriority = this.topoPriority;
    if (!given) return null;
    const device = Int32Array.from(given);
    for (let u = 0; u < n; u++) if (pinnedTo[u]! >= 0) device[u] = pinnedTo[u]!;
    if (!fitsMemory(p, device)) return null;
    for (let u = 0; u < n; u++) if (!Number.isFinite(unitTime(p, u, device[u]!))) return null;
    const placement = placed && sameArray(placed.device, device) ? placed : assessor.run(device, priority ?? topoPriority);
    // The judge's verdict is a function of the devices and the order: a search that moved nothing
    // (refined = heft) is not simulated again.
    const same = judged.find((c) => sameArray(c.placement.device, placement.device) && sameArray(c.placement.start_s, placement.start_s));
    const verdict = same
      ? null
      : this.c.everyThroughput || this.c.objective === 'throughput'
        ? judge.verdict(placement, orders ?? candidateOrders(this.c.objective))
        : judge.latencyVerdict(placement);
    const v = same ?? verdict!;
    const mc = migration?.cost(device);
    const entry: Candidate = {
      name,
      label,
      devices: this.usedDevices(device),
      latency_s: v.latency_s,
      throughput_per_s: v.throughput_per_s,
      pipelined: v.pipelined,
      fits: v.fits,
      // KV sequences as its schedule holds memory (its peak activations), as the shipped plan's are counted.
      ...(hasState
        ? {
            kv_sequences: same
              ? same.kv_sequences
              : measureKv(
                  device,
                  verdict!.memory.map((m) => m.peak_activation_bytes),
                ).sequences,
          }
        : {}),
      ...(tpSplits.length > 0 ? { tp_spread: this.spread(device) } : {}),
      ...(copyGroups.length > 0 ? { copies_apart: this.apart(device) } : {}),
      ...(migration && mc ? { migration: { ...mc, within_limits: migration.within(mc) } } : {}),
      placement,
      value: this.valueFor(v) + this.migrationShare(mc),
      raw_value: this.valueFor(v),
    };
    judged.push(entry);
    return entry;
  }

  /**
   * A candidate whose scheduled memory overflows (live activations, values waiting to be sent) is
   * repaired: from each device over its capacity, units move to the device that runs them next
   * fastest with room, cheapest first (moveCost) — cold experts to host memory before hot layers
   * (KTransformers' split) — until the schedule fits. Each round is judged on the
   * schedule; at most REPAIR_ROUNDS rounds.
   */
  repair(start: Candidate | null, name: string, label: string): Candidate | null {
    if (!start || start.fits) return null;
    const fixed = this.fitSchedule(start.placement.device, start.placement.start_s);
    return fixed ? this.consider(name, label, fixed.device, fixed.start_s) : null;
  }

  /** Placements the repair's rounds ran on, and where they ended: a search that moved nothing (refined = heft) is not repaired again. */
  private readonly fitted: { device: Int32Array; priority: Float64Array; fixed: { device: Int32Array; start_s: Float64Array } | null }[] = [];

  /**
   * The repair's rounds on a placement not yet judged: the devices and order it ends with once its
   * schedule fits (unchanged when it fits already), or null when no round makes it fit.
   */
  fitSchedule(given: Int32Array, priority: Float64Array): { device: Int32Array; start_s: Float64Array } | null {
    const known = this.fitted.find((f) => sameArray(f.device, given) && sameArray(f.priority, priority));
    if (known) return known.fixed;
    const fixed = this.fitRounds(given, priority);
    this.fitted.push({ device: Int32Array.from(given), priority: Float64Array.from(priority), fixed });
    return fixed;
  }

  private fitRounds(given: Int32Array, priority: Float64Array): { device: Int32Array; start_s: Float64Array } | null {
    const { p, pinnedTo, assessor, judge } = this.c;
    const n = p.unit_names.length;
    const nd = p.device_ids.length;
    const device = Int32Array.from(given);
    for (let round = 0; round < REPAIR_ROUNDS; round++) {
      const placement = assessor.run(device, priority);
      const { memory } = judge.memory(placement);
      const over = memory.map((m, d) => ({ d, excess: m.total_bytes - m.capacity_bytes })).filter((x) => x.excess > 0);
      if (over.length === 0) return { device, start_s: placement.start_s };
      const room = memory.map((m) => m.capacity_bytes - m.total_bytes);
      let moved = false;
      for (const { d, excess } of over) {
        // What a move frees for sure is the unit's weights and state (its activations may not be
        // at the peak); it needs room for those and its own working set where it goes.
        const movable: { u: number; to: number; ratio: number; frees: number; needs: number }[] = [];
        for (let u = 0; u < n; u++) {
          if (device[u] !== d || pinnedTo[u]! >= 0) continue;
          const frees = residentBytes(p, u);
          if (frees <= 0) continue;
          const needs = frees + p.activation_bytes[u]!;
          let to = -1;
          for (let e = 0; e < nd; e++) {
            if (e === d || !Number.isFinite(unitTime(p, u, e)) || room[e]! < needs) continue;
            if (to < 0 || unitTime(p, u, e) < unitTime(p, u, to)) to = e;
          }
          if (to >= 0) movable.push({ u, to, frees, needs, ratio: moveCost(p, u, to) });
        }
        movable.sort((a, b) => a.ratio - b.ratio || b.frees - a.frees || a.u - b.u);
        let freed = 0;
        for (const m of movable) {
          if (freed >= excess * 1.05) break;
          if (room[m.to]! < m.needs) continue;
          device[m.u] = m.to;
          room[m.to]! -= m.needs;
          freed += m.frees;
          moved = true;
        }
      }
      if (!moved) return null;
    }
    return null;
  }

  /**
   * A plan with splits ships only when each split's parts run on two devices or more. When the best
   * plan overall is not such a plan, its splits kept on one device are spread and that is judged:
   * the faster plan must not be lost for a split the search left on one device. Moving a part onto
   * a full device does not fit, so kept splits with parts of one size trade parts: ordered so that
   * neighbours sit on different devices, split i's part j goes where split i+j was. Every device
   * then holds as many parts, and bytes, as before, and a split of k parts spans up to k devices.
   * A split that finds no partner this way is spread over `group` (part j to the j-th device from
   * its own) when that fits.
   */
  spreadKept(group: readonly number[], groupLabel: string): void {
    const { p, tpSplits } = this.c;
    if (tpSplits.length === 0 || group.length < 2) return;
    const free = this.judged.filter((c) => c.fits).reduce<Candidate | null>((a, c) => (!a || c.value < a.value * (1 - 1e-12) ? c : a), null);
    const eligible = this.pick();
    if (!free || free.tp_spread === undefined || free.tp_spread || (this.eligible(eligible) && !(free.value < eligible.value * (1 - 1e-12)))) return;
    const before = free.placement.device;
    const device = Int32Array.from(before);
    const runs = (parts: readonly number[], on: Int32Array): boolean => parts.every((u, j) => Number.isFinite(unitTime(p, u, on[j]!)));
    // Kept splits by part count and part size, each list interleaved by device.
    const kinds = new Map<string, number[]>();
    tpSplits.forEach((parts, k) => {
      if (parts.some((u) => before[u] !== before[parts[0]!])) return;
      const key = `${parts.length}:${parts.map((u) => residentBytes(p, u)).join(',')}`;
      (kinds.get(key) ?? kinds.set(key, []).get(key)!).push(k);
    });
    for (const list of kinds.values()) {
      const byDevice = new Map<number, number[]>();
      for (const k of list) {
        const d = before[tpSplits[k]![0]!]!;
        (byDevice.get(d) ?? byDevice.set(d, []).get(d)!).push(k);
      }
      const queues = [...byDevice.values()];
      const order: number[] = [];
      for (let r = 0; order.length < list.length; r++) for (const q of queues) if (r < q.length) order.push(q[r]!);
      const m = order.length;
      if (byDevice.size < 2) {
        // No partner on another device: spread over the group where it runs (fits is judged below).
        for (const k of order) {
          const parts = tpSplits[k]!;
          const at = Math.max(0, group.indexOf(before[parts[0]!]!));
          const to = Int32Array.from(parts, (_, j) => group[(at + j) % group.length]!);
          if (runs(parts, to)) parts.forEach((u, j) => (device[u] = to[j]!));
        }
        continue;
      }
      order.forEach((k, i) => {
        const parts = tpSplits[k]!;
        const to = Int32Array.from(parts, (_, j) => before[tpSplits[order[(i + j) % m]!]![0]!]!);
        if (runs(parts, to)) parts.forEach((u, j) => (device[u] = to[j]!));
      });
    }
    relieve(this.c.p, device, new Set(tpSplits.flat()));
    const spread = this.consider(`${free.name}+spread`, `${free.label}, kept splits spread (parts traded, or over ${groupLabel})`, device);
    this.repair(spread, `${free.name}+spread+repair`, `${free.label}, kept splits spread, memory repaired`);
  }

  /**
   * Copies of a replicated expert moved apart, when the best plan that fits keeps two on one device
   * and no plan with them apart beats it: each copy after the first on a device goes to the device
   * that runs it fastest among those holding none of its copies (memory relieved), and that is judged.
   */
  setApart(): void {
    const { p, copyGroups } = this.c;
    if (copyGroups.length === 0) return;
    const free = this.judged.filter((c) => c.fits).reduce<Candidate | null>((a, c) => (!a || c.value < a.value * (1 - 1e-12) ? c : a), null);
    const eligible = this.pick();
    if (free?.copies_apart !== false || (this.eligible(eligible) && !(free.value < eligible.value * (1 - 1e-12)))) return;
    const device = Int32Array.from(free.placement.device);
    const nd = p.device_ids.length;
    for (const copies of copyGroups) {
      const taken = new Set<number>();
      for (const u of copies) {
        if (!taken.has(device[u]!)) {
          taken.add(device[u]!);
          continue;
        }
        let to = -1;
        for (let e = 0; e < nd; e++) {
          if (taken.has(e) || !Number.isFinite(unitTime(p, u, e))) continue;
          if (to < 0 || unitTime(p, u, e) < unitTime(p, u, to)) to = e;
        }
        if (to < 0) continue;
        device[u] = to;
        taken.add(to);
      }
    }
    relieve(p, device, new Set(copyGroups.flat()));
    const apart = this.consider(`${free.name}+apart`, `${free.label}, expert copies on devices of their own`, device);
    this.repair(apart, `${free.name}+apart+repair`, `${free.label}, expert copies on devices of their own, memory repaired`);
  }

  /** Counts for the objective: fits, splits spread, copies apart, within the replan limits, holds --min-sequences. */
  eligible(c: Candidate): boolean {
    const asked = this.c.asked;
    return (
      c.fits &&
      c.tp_spread !== false &&
      c.copies_apart !== false &&
      c.migration?.within_limits !== false &&
      (asked === null || (c.kv_sequences ?? Infinity) >= asked)
    );
  }

  /**
   * The best eligible candidate for the objective; when none is eligible (a forced split no device
   * pair can spread, a replan no plan within its limits), the best that fits: never one a candidate
   * it reports beats. The first judged wins a tie.
   */
  pick(): Candidate {
    const rank = (c: Candidate): number => (this.eligible(c) ? 0 : c.fits ? 1 : 2);
    let best = this.judged[0]!;
    for (const c of this.judged) if (rank(c) < rank(best) || (rank(c) === rank(best) && c.value < best.value * (1 - 1e-12))) best = c;
    return best;
  }

  /**
   * The plan ships no single move it knows would make it better. Explain's scan (every unit moved
   * alone to every other device, ruled out by bounds or simulated: src/partition/explain.ts) runs on
   * the chosen plan; the moves it finds better are taken best first, one per unit, each judged in
   * the orders the plan ships and kept only when the plan gets better and stays eligible (memory,
   * splits spread, --min-sequences); then the plan is scanned again, until a scan finds none or the
   * work runs out (MOVE_SCAN_WORK, and the polish's count of simulations). Not when replanning (a
   * move there is also a migration, which the polish counts).
   */
  takeBetterMoves(start: Candidate, name: string, label: string): Candidate {
    const { p, judge, assessor, objective, pinnedTo, measureKv, asked, tpSplits, copyGroups } = this.c;
    const orders = shippedOrders(objective);
    // A move is judged on the objective's figure alone (a latency plan's moves need no run of R
    // requests; the plan they make is judged whole once, as a candidate) and its schedule's memory.
    const judgeMove = (pl: Placement): Pick<Verdict, 'latency_s' | 'throughput_per_s' | 'fits' | 'memory'> => ({
      latency_s: judge.latency(pl).latency_s,
      throughput_per_s: objective === 'latency' ? Number.NaN : judge.throughput(pl, orders).throughput_per_s,
      ...judge.memory(pl),
    });
    let placement = start.placement;
    let verdict = judgeMove(placement);
    const peaks = (v: Pick<Verdict, 'memory'>): number[] => v.memory.map((m) => m.peak_activation_bytes);
    const bar = moveBar(tpSplits, copyGroups, measureKv, asked, start.placement.device, peaks(verdict));
    let value = this.valueFor(verdict);
    const simCap = polishSimulations(judge.stepCount(placement.device), objective === 'latency' ? 1 : 2 * this.R + 1);
    let sims = 0;
    let moved = 0;
    const runsCap = assessor.evaluations + Math.ceil(MOVE_SCAN_WORK / Math.max(1, p.unit_names.length));
    while (sims < simCap && assessor.evaluations < runsCap) {
      const scan = scanMoves(p, placement, verdict, judge, objective, assessor, bar);
      this.lastScan = scan;
      const better = scan.better
        .flatMap((alts, u) => (pinnedTo[u]! >= 0 ? [] : alts.map((a) => ({ u, to: a.to, value: a.value }))))
        .sort((a, b) => a.value - b.value || a.u - b.u || a.to - b.to);
      const movedUnits = new Set<number>();
      for (const m of better) {
        if (sims >= simCap) break;
        if (movedUnits.has(m.u)) continue;
        const device = Int32Array.from(placement.device);
        device[m.u] = m.to;
        if (!fitsMemory(p, device) || bar(device) !== null) continue;
        const pl = assessor.runOne(device, placement.start_s);
        sims++;
        const v = judgeMove(pl);
        if (!v.fits || !(this.valueFor(v) < value * (1 - 1e-9)) || bar(device, peaks(v)) !== null) continue;
        placement = pl;
        verdict = v;
        value = this.valueFor(v);
        movedUnits.add(m.u);
      }
      moved += movedUnits.size;
      if (movedUnits.size === 0) break;
    }
    this.explainMoves += moved;
    return moved > 0 ? (this.consider(name, label, placement.device, placement.start_s, placement) ?? start) : start;
  }

  /** The busiest device's load (the throughput bound's term). */
  maxLoad(device: Int32Array): number {
    const p = this.c.p;
    const load = new Float64Array(p.device_ids.length);
    for (let u = 0; u < p.unit_names.length; u++) load[device[u]!]! += unitTime(p, u, device[u]!);
    return Math.max(...load);
  }

  /** A candidate's throughput: as judged, or simulated now (and kept in its row) when it was judged by latency alone. */
  throughputOf(c: Candidate): number {
    c.throughput_per_s ??= this.c.judge.throughput(c.placement, candidateOrders(this.c.objective)).throughput_per_s;
    return c.throughput_per_s;
  }

  /** The best eligible candidate for `goal` (latency, or throughput), ignoring migration. */
  bestFor(goal: Objective): Candidate {
    const judged = this.judged;
    let best = judged.find((c) => this.eligible(c)) ?? judged[0]!;
    for (const c of judged) {
      // (Under the throughput objective every candidate's throughput is simulated.)
      const [a, b] = goal === 'latency' ? [c.latency_s, best.latency_s] : [-(c.throughput_per_s ?? 0), -(best.throughput_per_s ?? 0)];
      if (this.eligible(c) && (a < b - Math.abs(b) * 1e-12 || !this.eligible(best))) best = c;
    }
    return best;
  }

  /** Judged local search from `start` for `goal` (exact pruning by bounds); the result joins the candidates. */
  polish(start: Candidate, goal: Objective, name: string, label: string): void {
    const { p, judge, assessor, groups, contention, objective } = this.c;
    const migration = this.c.migration;
    const n = p.unit_names.length;
    const nd = p.device_ids.length;
    const R = this.R;
    // When replanning (goal = the objective), a move also changes the migration: its share joins the value.
    const counted = migration !== null && goal === objective;
    const startValue = (goal === 'latency' ? start.latency_s : R / (start.throughput_per_s ?? 0)) + (counted ? this.migrationShare(start.migration) : 0);
    const steps = judge.stepCount(start.placement.device);
    // The polish's own count: a simulation the judge kept from earlier still spends one of these.
    const simCap = polishSimulations(steps, goal === 'latency' ? 1 : R);
    let sims = 0;
    const r = localSearch(
      p,
      { value: startValue, placement: start.placement },
      {
        groups,
        budget: goal === 'latency' && !contention && !counted ? 0 : Math.min((groups.length + n) * nd, Math.ceil(SEARCH_WORK / n)),
        assess: (device, priority, toBeat) => {
          if (sims >= simCap || !this.spread(device) || !this.apart(device)) return null;
          const mc = counted ? migration.cost(device) : undefined;
          if (mc && !migration!.within(mc)) return null;
          const share = this.migrationShare(mc);
          const pl = assessor.run(device, priority);
          // Exact pruning: contention only lengthens a schedule, and R requests take at least R times
          // the busiest device's load — a move whose bound cannot beat the incumbent is not simulated.
          if (goal === 'latency') {
            if (pl.makespan_s + share >= toBeat * (1 - 1e-9)) return null;
            sims++;
            return { value: judge.latency(pl).latency_s + share, placement: pl };
          }
          if (Math.max(R * this.maxLoad(device), pl.makespan_s) + share >= toBeat * (1 - 1e-9)) return null;
          sims++;
          const t = judge.throughput(pl, PIPELINED);
          return { value: (t.throughput_per_s > 0 ? R / t.throughput_per_s : Infinity) + share, placement: pl };
        },
      },
    );
    this.polishMoves += r.moves;
    this.polishSweeps += r.sweeps;
    if (r.moves > 0) this.consider(name, label, r.placement.device, r.placement.start_s);
  }

  /**
   * Throughput: the plan the latency objective would ship is a candidate too, polished for latency,
   * then a contention-free surrogate of pipelined throughput searches from the best so far.
   */
  throughputSearch(): { moves: number; sweeps: number } {
    const { p, assessor, groups } = this.c;
    const R = this.R;
    const fastest = this.bestFor('latency');
    this.polish(fastest, 'latency', `${fastest.name}+latency-polish`, `${fastest.label}, polished for latency`);
    const from = this.pick();
    const surrogate = (device: Int32Array, priority: Float64Array): Assessed => {
      const pl = assessor.run(device, priority);
      return { value: pl.makespan_s + (R - 1) * this.maxLoad(device), placement: pl };
    };
    const s0 = surrogate(from.placement.device, from.placement.start_s);
    const sr = localSearch(p, s0, {
      groups,
      budget: Math.floor(refineBudget(p, groups.length) / 2),
      kicks: true,
      seed: 777,
      assess: (d, pr) => surrogate(d, pr),
    });
    this.consider('refined-throughput', 'local search on the pipelined-throughput surrogate', sr.placement.device, sr.placement.start_s);
    return { moves: sr.moves, sweeps: sr.sweeps };
  }

  /**
   * Replanning: the running plan (units whose device is gone placed where they fit), then searches
   * that count the migration — steepest descent from the running plan (the most valuable move
   * first; the plans after 1, 2, 4, … moves are candidates) and local search from it and from the
   * best fresh plan. Returns the running and the fresh candidates (for the report).
   */
  replan(): { running: Candidate | null; fresh: Candidate | null } {
    const { p, groups, pinnedTo, assessor, objective } = this.c;
    const migration = this.c.migration!;
    const judged = this.judged;
    const n = p.unit_names.length;
    const nd = p.device_ids.length;
    const R = this.R;
    let running: Candidate | null = null;
    let fresh: Candidate | null = null;
    // The best plan from scratch (the objective alone), before any candidate that counts moves.
    fresh = judged
      .filter((c) => c.fits && c.tp_spread !== false && c.copies_apart !== false)
      .reduce<Candidate | null>((a, c) => (!a || c.raw_value < a.raw_value * (1 - 1e-12) ? c : a), null);
    const start = placeOrphans(p, migration.previous, fresh?.placement.device ?? null, pinnedTo);
    running = this.consider(
      'running',
      'the running plan (units whose device is gone placed where they fit fastest)',
      start,
      migration.priority(p.order, unitPredecessors(p)),
    );
    // Contention-free search with the migration's share, from the running plan and from the fresh one.
    const assessMoves = (device: Int32Array, priority: Float64Array): Assessed | null => {
      const mc = migration.cost(device);
      if (!migration.within(mc) || !this.spread(device) || !this.apart(device)) return null;
      const pl = assessor.run(device, priority);
      return { value: (objective === 'latency' ? pl.makespan_s : pl.makespan_s + (R - 1) * this.maxLoad(device)) + this.migrationShare(mc), placement: pl };
    };
    const budget = refineBudget(p, groups.length);
    if (running) {
      // Steepest descent from the running plan: the most valuable move (a unit, or a block — a
      // layer, a stage's experts — to one device) first, so the first few moves are the ones that
      // matter (the hot experts); the plans after 1, 2, 4, … moves are candidates, and --min-gain
      // picks the fewest moves within reach of the best.
      const device = Int32Array.from(running.placement.device);
      let current = assessMoves(device, running.placement.start_s);
      const moveList: number[][] = [...groups.filter((g) => g.length > 1), ...Array.from({ length: n }, (_, u) => [u])];
      let spent = 0;
      for (let step = 1; current && spent < budget; step++) {
        let bestMove: { units: number[]; to: number; a: Assessed } | null = null;
        for (const units of moveList) {
          if (units.some((u) => pinnedTo[u]! >= 0)) continue;
          for (let d = 0; d < nd && spent < budget; d++) {
            if (units.every((u) => device[u] === d) || units.some((u) => !Number.isFinite(unitTime(p, u, d)))) continue;
            const old = units.map((u) => device[u]!);
            for (const u of units) device[u] = d;
            if (fitsMemory(p, device)) {
              spent++;
              const a = assessMoves(device, current.placement.start_s);
              if (a && a.value < (bestMove?.a.value ?? current.value * (1 - 1e-9))) bestMove = { units, to: d, a };
            }
            units.forEach((u, j) => (device[u] = old[j]!));
          }
        }
        if (!bestMove) break;
        for (const u of bestMove.units) device[u] = bestMove.to;
        current = { value: bestMove.a.value, placement: bestMove.a.placement };
        if ((step & (step - 1)) === 0)
          this.consider(
            `replan-steepest-${step}`,
            `the running plan after its ${step} most valuable move${step === 1 ? '' : 's'}`,
            device,
            current.placement.start_s,
          );
      }
      if (current) this.consider('replan-steepest', 'the running plan after every move that pays back, most valuable first', device, current.placement.start_s);
    }
    for (const [from, name] of [
      [running, 'running'],
      [fresh, 'fresh'],
    ] as const) {
      if (!from) continue;
      const s0 = assessMoves(from.placement.device, from.placement.start_s);
      if (!s0) continue;
      const sr = localSearch(p, s0, { groups, budget, assess: (d, pr) => assessMoves(d, pr) });
      if (sr.moves > 0)
        this.consider(
          `replan-from-${name}`,
          `local search from the ${name} plan, counting the migration (amortised over ${migration.amortize} requests)`,
          sr.placement.device,
          sr.placement.start_s,
        );
    }
    return { running, fresh };
  }

  /** Of the plans within --min-gain of `chosen`, the one with the fewest moves (replanning). */
  fewestMoves(chosen: Candidate): Candidate {
    const migration = this.c.migration;
    if (!migration) return chosen;
    const reach = chosen.value * (1 + migration.minGain);
    let best = chosen;
    for (const c of this.judged) {
      if (!this.eligible(c) || c.value > reach) continue;
      const [mc, mb] = [c.migration!.moves, best.migration!.moves];
      if (mc < mb || (mc === mb && c.value < best.value * (1 - 1e-12))) best = c;
    }
    return best;
  }
}
