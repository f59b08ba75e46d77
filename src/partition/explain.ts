// Why each unit of the shipped plan is where it is (plan.json `explain`): its reason — the user, a
// capability limit, memory, communication, or speed — and the best other devices for it, each
// judged by moving the unit there alone, within a work budget.

import type { Graph } from '../ir/graph.js';
import type { ExplainAlternative, ExplainEntry, Objective } from '../plan/format.js';
import { canRun, type Device } from '../topology/index.js';
import { fastestTimes_s } from './bounds.js';
import { unitPin, type Unit } from './build.js';
import { sameArray, scheduledTimes, type Judge, type Verdict } from './judge.js';
import { residentBytes, unitPredecessors, unitTime, valuesReadBy, type Placement, type PlacementProblem } from './problem.js';
import { memoryTerms, SEARCH_WORK, type MakespanAssessor } from './refine.js';

/**
 * A single move within a millionth of the plan's figure is a tie: below every printed figure's
 * precision (4-5 digits), and no reason to keep searching (Mixtral-8x7B decode on rack-8gpu with
 * --min-sequences ended its move budget with one 4 ns "faster" of 9.39 ms left).
 */
export const TIE_REL = 1e-6;

/** Simulations explain may run on a plan: about 10⁶ simulated steps (≈ 1 s). */
const EXPLAIN_STEPS = 1e6;

/** A device's nominal speed: its best peak FLOP/s at its efficiency, and its memory bandwidth at its efficiency. */
function nominal(d: Device): { flops: number; bytes: number } {
  let peak = 0;
  for (const k in d.peak_flops) peak = Math.max(peak, d.peak_flops[k]!);
  return { flops: peak * d.efficiency, bytes: d.memory_bandwidth_bytes_per_s * d.memory_efficiency };
}

/**
 * Per device `on`, the devices faster than it on paper (peak FLOP/s or memory bandwidth), ascending:
 * the only ones whose refusal of an op makes a fallback (unitFallback).
 */
function fasterDevices(devices: readonly Device[]): number[][] {
  const speed = devices.map(nominal);
  return speed.map((here) => {
    const faster: number[] = [];
    for (let e = 0; e < devices.length; e++) if (speed[e]!.flops > here.flops || speed[e]!.bytes > here.bytes) faster.push(e);
    return faster;
  });
}

/**
 * Per device, its faster devices (fasterDevices) in groups of one op set, in order of each group's
 * first: a group runs an op, or refuses it, as one (canRun asks only the op set).
 */
function byOpSet(devices: readonly Device[], faster: readonly number[][]): number[][][] {
  const sets = new Map<string, number>();
  const setOf = devices.map((d) => {
    const key = JSON.stringify(d.ops);
    let id = sets.get(key);
    if (id === undefined) sets.set(key, (id = sets.size));
    return id;
  });
  return faster.map((list) => {
    const groups = new Map<number, number[]>();
    for (const e of list) {
      let group = groups.get(setOf[e]!);
      if (!group) groups.set(setOf[e]!, (group = []));
      group.push(e);
    }
    return [...groups.values()];
  });
}

/**
 * Onnxruntime's EP fallback for a whole unit on device `on`: the devices faster than it on paper
 * (`faster`, fasterDevices, by op set: byOpSet) that cannot run one of its ops, and those ops ("fallback: gpu0, gpu1
 * cannot run NonZero"); null when every such device runs them all. A device slower than `on` that
 * cannot run an op is no reason the unit is where it is (an IPU without Conv does not make a GPU's
 * Conv a fallback).
 */
function unitFallback(nodes: readonly number[], graph: Graph, devices: readonly Device[], on: number, faster: readonly (readonly number[])[]): string | null {
  // (Sets made only on a first refusal: most units run everywhere, and this is asked per unit. Only
  // faster devices are asked: on the DeepSeek-V3 plan, none for the units on a GPU. They are asked
  // per op set (byOpSet): on a pod, a CPU's unit has hundreds of faster GPUs and one op set.)
  let cannot: Set<number> | null = null;
  let ops: Set<string> | null = null;
  if (on < 0 || faster.length === 0) return null;
  for (const i of nodes) {
    const node = graph.nodes[i]!;
    for (const group of faster) {
      if (canRun(devices[group[0]!]!, node.op, node.domain)) continue;
      for (const e of group) (cannot ??= new Set()).add(e);
      (ops ??= new Set()).add(node.op);
    }
  }
  return cannot && ops
    ? `fallback: ${[...cannot]
        .sort((a, b) => a - b)
        .map((e) => devices[e]!.id)
        .join(', ')} cannot run ${[...ops].join(', ')}`
    : null;
}

/** One move explain judged: unit u to device `to`, what it showed, and its value (lower is better: latency, or R / throughput). */
export type MoveAlternative = ExplainAlternative & {
  to: number;
  value: number;
  found: 'cannot' | 'memory' | 'worse' | 'tie' | 'unjudged' | 'better' | 'barred';
  /** found = 'barred': why the plan may not take it. */
  barred?: string;
};

/**
 * Why a plan may not take a move that makes it faster, or null when it may: a tensor-parallel split
 * kept on one device, fewer KV sequences than --min-sequences (src/partition/pool.ts moveBar).
 */
export type MoveBar = (device: Int32Array, peak?: ArrayLike<number>) => string | null;

/**
 * What a scan of every single move of a plan found (scanMoves), per unit: the alternatives explain
 * shows, those that make the plan better, and the one on the unit's fastest device. A pure
 * function of the problem, the placement and its verdict (budgets count work), so the partition
 * pass's last scan is the one explain would make (explainPlacement's `known` reuses it).
 * (Only these are made: every move as an object was units × devices of them — 2.6M on the
 * DeepSeek-V3 shape over 80 devices, each sorted again by explain for its first three.)
 */
export interface MoveScan {
  device: Int32Array;
  start_s: Float64Array;
  /** Per unit, its best alternatives (byValue), at most SHOWN (scanMoves' shownCount), best first. */
  shown: MoveAlternative[][];
  /** Per unit, the moves found to make the plan better (found 'better'), in device order. */
  better: MoveAlternative[][];
  /** Per unit, the move to its fastest device (fastestDevice); null when it is there or runs nowhere. */
  fastest: (MoveAlternative | null)[];
}

/**
 * The three devices of most load, heaviest first. A move of one unit changes two devices' loads,
 * so the busiest of the others is the first of these that is neither (busiestMoved): a scan of
 * every move then costs units × devices, not × devices² (320 devices: 3.3G terms).
 */
export function heaviestThree(load: Float64Array): number[] {
  const top: number[] = [];
  for (let k = 0; k < load.length; k++) {
    let at = top.length;
    while (at > 0 && load[k]! > load[top[at - 1]!]!) at--;
    if (at < 3) top.splice(at, 0, k);
    if (top.length > 3) top.pop();
  }
  return top;
}

/**
 * The busiest device's load, and no less than 0, after one unit moves off d (where it took `td`)
 * onto e (`te` there): d's and e's loads as moved, or the heaviest other (`heaviest`, heaviestThree).
 */
export function busiestMoved(load: Float64Array, heaviest: readonly number[], d: number, e: number, td: number, te: number): number {
  const busiest = Math.max(0, load[e]! + te, load[d]! - td);
  for (const k of heaviest) if (k !== e && k !== d) return Math.max(busiest, load[k]!);
  return busiest;
}

/** Alternatives explain lists per unit. */
const SHOWN = 3;

/**
 * The device that computes unit u fastest: the first of the least finite unitTime, or undefined
 * when none runs it.
 */
function fastestDevice(p: PlacementProblem, u: number): number | undefined {
  const nd = p.device_ids.length;
  let fastest: number | undefined;
  let best = Infinity;
  for (let e = 0; e < nd; e++) {
    const t = p.time_s[u * nd + e]!; // (unitTime)
    if (Number.isFinite(t) && (fastest === undefined || t < best)) {
      fastest = e;
      best = t;
    }
  }
  return fastest;
}

/** Keeps `alt` in `top` (ascending byValue, at most `count`) when it is among the first `count`. */
function keepShown(top: MoveAlternative[], alt: MoveAlternative, count: number): void {
  let at = top.length;
  while (at > 0 && byValue(alt, top[at - 1]!) < 0) at--;
  if (at >= count) return;
  top.splice(at, 0, alt);
  if (top.length > count) top.pop();
}

/**
 * Whether an alternative of this value on the device of this name rank (nameRanks) would enter
 * `top` (keepShown): asked before
 * one is made, so the moves neither shown, better nor on the fastest device stay numbers.
 */
function entersShown(top: readonly MoveAlternative[], count: number, value: number, rank: number, rankOf: Int32Array): boolean {
  if (top.length < count) return true;
  const last = top[top.length - 1]!;
  return value - last.value < 0 || (!(value - last.value > 0) && rank < rankOf[last.to]!);
}

/** Each device's place among the problem's device ids in string order (byValue's tie-break, as a number). */
function nameRanks(ids: readonly string[]): Int32Array {
  const rank = new Int32Array(ids.length);
  Array.from(ids.keys())
    .sort((a, b) => (ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0))
    .forEach((e, k) => (rank[e] = k));
  return rank;
}

/**
 * Why each unit is where it is, on the shipped plan: every other device that can run it is tried
 * by moving the unit there alone, every device keeping its order. Bounds, cheapest first, show a
 * move cannot beat the plan: a local one — in the contention-free schedule of that order, the
 * units ahead of it keep their times, so it starts no earlier than its inputs arrive and its new
 * device frees up, and the end comes no earlier than its finish plus the fastest path after it
 * (for throughput also R times the busiest device's load) — then the contention-free makespan of
 * the move (contention only lengthens a schedule). A move ruled out is reported with its bound
 * (`latency_at_least_s` / `throughput_at_most_per_s`); one that might win is simulated.
 * Alternatives are listed best first, at most three. Work is budgeted (evaluator runs,
 * simulations); past it a move keeps its local bound and says so.
 */
export function scanMoves(
  p: PlacementProblem,
  placement: Placement,
  verdict: Pick<Verdict, 'latency_s' | 'throughput_per_s'>,
  judge: Judge,
  objective: Objective,
  assessor: MakespanAssessor,
  bar: MoveBar | null,
  /** How many of each unit's best alternatives to keep in `shown` (tests keep every one). */
  shownCount = SHOWN,
): MoveScan {
  const nd = p.device_ids.length;
  const n = p.unit_names.length;
  const R = judge.requests;
  const base = judge.latency(placement);
  // Lower is better: latency, or the time of R requests.
  const current = objective === 'latency' ? verdict.latency_s : R / verdict.throughput_per_s;
  const stepsPerSim = base.schedule.packed.at[nd]! * (objective === 'latency' ? 1 : 2 * R);
  let simsLeft = Math.floor(EXPLAIN_STEPS / Math.max(1, stepsPerSim));
  let runsLeft = Math.ceil(SEARCH_WORK / Math.max(1, n));
  const load = new Float64Array(nd);
  for (let u = 0; u < n; u++) load[placement.device[u]!]! += unitTime(p, u, placement.device[u]!);
  // fitsMemory's terms per device, for moving one unit at a time.
  const { used, floor } = memoryTerms(p, placement.device);
  // The contention-free schedule in the shipped order, and each unit's position in that order.
  const cf = assessor.runOne(placement.device, placement.start_s);
  const topo = new Int32Array(n);
  p.order.forEach((u, k) => (topo[u] = k));
  const order = Array.from({ length: n }, (_, u) => u).sort((a, b) => placement.start_s[a]! - placement.start_s[b]! || topo[a]! - topo[b]!);
  const pos = new Int32Array(n);
  order.forEach((u, k) => (pos[u] = k));
  // Per device: its units' positions ascending, and the running maximum of their finishes.
  const onDevice: { pos: number[]; free: number[] }[] = p.device_ids.map(() => ({ pos: [], free: [] }));
  for (const u of order) {
    const list = onDevice[placement.device[u]!]!;
    list.pos.push(pos[u]!);
    list.free.push(Math.max(list.free[list.free.length - 1] ?? 0, cf.finish_s[u]!));
  }
  const freeBefore = (e: number, at: number): number => {
    const list = onDevice[e]!;
    let lo = 0;
    let hi = list.pos.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list.pos[mid]! < at) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 ? list.free[lo - 1]! : 0;
  };
  // Fastest path after each unit (its successors at their fastest, communication free).
  const fastest = fastestTimes_s(p);
  const tail = new Float64Array(n);
  const preds = unitPredecessors(p);
  for (let k = n - 1; k >= 0; k--) {
    const u = p.order[k]!;
    for (const q of preds[u]!) tail[q] = Math.max(tail[q]!, fastest[u]! + tail[u]!);
  }
  const reads = valuesReadBy(p);
  // One move's run at a time: its devices (the placement's, one unit moved and put back after),
  // its times, and the unit moved.
  const movedDevice = Int32Array.from(placement.device);
  const movedStart = new Float64Array(n);
  const movedFinish = new Float64Array(n);
  const movedList = new Int32Array(1);
  const movedUnit = (u: number): Int32Array => {
    movedList[0] = u;
    return movedList;
  };
  const heaviest = objective === 'latency' ? [] : heaviestThree(load);
  const rankOf = nameRanks(p.device_ids);
  const shown: MoveAlternative[][] = [];
  const better: MoveAlternative[][] = [];
  const fastestMove: (MoveAlternative | null)[] = [];
  for (let u = 0; u < n; u++) {
    const d = placement.device[u]!;
    const fastest = fastestDevice(p, u);
    // `found`: what the move showed, for the unit's reason (the `why` text says it to the user).
    const top: MoveAlternative[] = [];
    const betterHere: MoveAlternative[] = [];
    let onFastest: MoveAlternative | null = null;
    // A move kept as an object only when explain or the polish reads it.
    const keep = (alt: MoveAlternative): void => {
      keepShown(top, alt, shownCount);
      if (alt.to === fastest) onFastest = alt;
      if (alt.found === 'better') betterHere.push(alt);
    };
    const wanted = (value: number, e: number): boolean => e === fastest || entersShown(top, shownCount, value, rankOf[e]!, rankOf);
    const resident = residentBytes(p, u);
    for (let e = 0; e < nd; e++) {
      if (e === d) continue;
      const id = p.device_ids[e]!;
      if (!Number.isFinite(unitTime(p, u, e))) {
        if (wanted(Infinity, e))
          keep({ device: id, to: e, latency_s: null, throughput_per_s: null, value: Infinity, found: 'cannot', why: 'cannot run its ops' });
        continue;
      }
      // The shipped placement fits (fitsMemory); moving u changes only d (less) and e.
      if (used[e]! + resident + Math.max(floor[e]!, p.activation_bytes[u]!) > p.capacity_bytes[e]!) {
        if (wanted(Infinity, e)) keep({ device: id, to: e, latency_s: null, throughput_per_s: null, value: Infinity, found: 'memory', why: 'memory full' });
        continue;
      }
      const at = placement.device;
      let ready = freeBefore(e, pos[u]!);
      for (const v of reads[u]!) ready = Math.max(ready, cf.finish_s[v.producer]! + (at[v.producer] === e ? 0 : p.transfer_s(at[v.producer]!, e, v.bytes)));
      // (The busiest device's load bounds throughput alone.)
      const busiest = objective === 'latency' ? 0 : busiestMoved(load, heaviest, d, e, unitTime(p, u, d), unitTime(p, u, e));
      const local = ready + unitTime(p, u, e) + tail[u]!;
      let bound = objective === 'latency' ? local : Math.max(R * busiest, local);
      let makespan_s = -1; // the moved plan's contention-free makespan, when it was run
      if (bound < current * (1 - 1e-9) && runsLeft > 0) {
        runsLeft--;
        movedDevice[u] = e;
        makespan_s = assessor.timeOneMoved(movedDevice, placement.start_s, cf, movedUnit(u), movedStart, movedFinish);
        movedDevice[u] = d;
        bound = Math.max(bound, objective === 'latency' ? makespan_s : Math.max(R * busiest, makespan_s));
      }
      const ruledOut = bound >= current * (1 - 1e-9);
      if (ruledOut || makespan_s < 0 || simsLeft <= 0) {
        if (!wanted(bound, e)) continue;
        const why = ruledOut
          ? objective === 'latency'
            ? 'slower: the plan takes at least this long with it there'
            : 'less throughput: at most this with it there'
          : 'not simulated (explain budget)';
        keep(
          objective === 'latency'
            ? {
                device: id,
                to: e,
                latency_s: null,
                throughput_per_s: null,
                value: bound,
                latency_at_least_s: bound,
                found: ruledOut ? 'worse' : 'unjudged',
                why,
              }
            : {
                device: id,
                to: e,
                latency_s: null,
                throughput_per_s: null,
                value: bound,
                throughput_at_most_per_s: R / bound,
                found: ruledOut ? 'worse' : 'unjudged',
                why,
              },
        );
        continue;
      }
      simsLeft--;
      // The move as a placement only now, to be simulated: its run's times are the next move's scratch.
      const movedTo = Int32Array.from(placement.device);
      movedTo[u] = e;
      const pl: Placement = { device: movedTo, start_s: movedStart.slice(), finish_s: movedFinish.slice(), makespan_s };
      const none = { device: id, to: e, latency_s: null, throughput_per_s: null, value: Infinity };
      // A move that would make the plan better but that it may not take (bar), or whose schedule
      // would not fit in memory, says why instead.
      const barredBy = (): string | null => {
        const { memory, fits } = judge.memory(pl);
        if (!fits) return 'its schedule would not fit in memory';
        return (
          bar?.(
            pl.device,
            memory.map((m) => m.peak_activation_bytes),
          ) ?? null
        );
      };
      if (objective === 'latency') {
        const lat = judge.latency(pl).latency_s;
        const faster = lat < current * (1 - TIE_REL);
        const barred = faster ? barredBy() : null;
        const found = barred ? 'barred' : faster ? 'better' : lat <= current * (1 + TIE_REL) ? 'tie' : 'worse';
        keep({
          ...none,
          latency_s: lat,
          value: lat,
          found,
          ...(barred ? { barred } : {}),
          why: barred
            ? `faster moved alone, but ${barred}`
            : found === 'better'
              ? 'faster moved alone (beyond the search budget)'
              : found === 'tie'
                ? 'as fast with link contention'
                : 'slower with link contention',
        });
      } else {
        const thr = judge.throughput(pl).throughput_per_s;
        const more = thr > verdict.throughput_per_s * (1 + TIE_REL);
        const barred = more ? barredBy() : null;
        const found = barred ? 'barred' : more ? 'better' : thr >= verdict.throughput_per_s * (1 - TIE_REL) ? 'tie' : 'worse';
        keep({
          ...none,
          throughput_per_s: thr,
          value: thr > 0 ? R / thr : Infinity,
          found,
          ...(barred ? { barred } : {}),
          why: barred
            ? `more throughput moved alone, but ${barred}`
            : found === 'better'
              ? 'more throughput moved alone (beyond the search budget)'
              : found === 'tie'
                ? 'as much throughput with link contention'
                : 'less throughput with link contention',
        });
      }
    }
    shown.push(top);
    better.push(betterHere);
    fastestMove.push(onFastest);
  }
  return { device: Int32Array.from(placement.device), start_s: Float64Array.from(placement.start_s), shown, better, fastest: fastestMove };
}

/** Alternatives by value, then device. */
const byValue = (a: MoveAlternative, b: MoveAlternative): number => a.value - b.value || (a.device < b.device ? -1 : 1);

export function explainPlacement(
  p: PlacementProblem,
  units: Unit[],
  stageNames: readonly string[],
  placement: Placement,
  verdict: Verdict,
  judge: Judge,
  objective: Objective,
  assessor: MakespanAssessor,
  pins: Int32Array | undefined,
  graph: Graph,
  devices: readonly Device[],
  bar: MoveBar | null,
  known: MoveScan | null = null,
): ExplainEntry[] {
  const n = p.unit_names.length;
  const base = judge.latency(placement);
  const finish = scheduledTimes(base.schedule, base.one, n).end_s;
  const scan =
    known && sameArray(known.device, placement.device) && sameArray(known.start_s, placement.start_s)
      ? known
      : scanMoves(p, placement, verdict, judge, objective, assessor, bar);
  // The rack's index of each device of the problem, and the devices faster than each (unitFallback).
  const deviceAt = p.device_ids.map((id) => devices.findIndex((x) => x.id === id));
  const faster = byOpSet(devices, fasterDevices(devices));
  const entries = units.map((unit, u) => {
    const d = placement.device[u]!;
    const shown = scan.shown[u]!.map(({ value: _v, found: _f, to: _t, barred: _b, ...a }) => a);
    const pinned = unitPin(unit.nodes, pins) >= 0;
    let reason = pinned
      ? 'assigned by the user (--assign)'
      : unit.fallback
        ? `fallback: ${unit.fallback.excluded.join(', ')} cannot run this op`
        : unitFallback(unit.nodes, graph, devices, deviceAt[d]!, faster[deviceAt[d]!] ?? []);
    if (reason === null) {
      // Said only as far as the fastest device's alternative shows it: ruled out or simulated slower,
      // not judged (explain's budget), or faster (a move past the search's budget).
      // (The scan keeps the move to the unit's fastest device: null when it is there or none runs it.)
      const onFastest = scan.fastest[u]!;
      const fastest = onFastest?.device ?? null;
      const found = onFastest?.found;
      // A move the search did not reach that would make the plan better is said first, wherever it goes.
      let better: MoveAlternative | undefined;
      for (const a of scan.better[u]!) if (!better || byValue(a, better) < 0) better = a;
      if (better) reason = `the plan is better with it on ${better.device} (a move past the search budget)`;
      else if (fastest !== null && found === 'memory') reason = `memory: ${fastest} (fastest for it) has no room`;
      else if (onFastest !== null && unitTime(p, u, onFastest.to) < unitTime(p, u, d) * (1 - 1e-9))
        reason =
          found === 'unjudged'
            ? `communication/queueing: ${fastest} computes it faster; the plan with it there was not judged (explain budget)`
            : found === 'better'
              ? `${fastest} computes it faster, and the plan is better with it there (a move past the search budget)`
              : found === 'barred'
                ? `${fastest} computes it faster and the plan is better with it there, but ${onFastest!.barred}`
                : found === 'tie'
                  ? `communication/queueing: ${fastest} computes it faster, but the plan is no faster with it there`
                  : `communication/queueing: ${fastest} computes it faster, but the plan is slower with it there`;
      else reason = 'the fastest device for it';
    }
    return {
      unit: unit.name,
      stage: stageNames[unit.stage]!,
      device: p.device_ids[d]!,
      finish_s: finish[u]!,
      reason,
      resident_bytes: p.weight_bytes[u]! + p.state_bytes[u]!,
      alternatives: shown,
    };
  });
  // The last alternative's simulations are kept by the judge; the plan is written next, without them.
  judge.forget();
  return entries;
}
