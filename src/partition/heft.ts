// HEFT (Topcuoglu, Hariri, Wu, "Performance-effective and low-complexity task scheduling for
// heterogeneous computing", IEEE TPDS 2002): units by decreasing upward rank, each on the device
// giving its earliest finish, with insertion into idle gaps. Extended with memory capacity: a
// device whose weights + owned state would exceed its capacity is not a candidate.

import { HxcError } from '../diag/diagnostics.js';
import { Heap } from '../util/heap.js';
import { sortIndices } from '../util/sort.js';
import { packedReads, residentBytes, unitPredecessors, unitSuccessors, unitTime, type Placement, type PlacementProblem } from './problem.js';

export interface HeftResult extends Placement {
  /** Upward rank per unit (seconds). */
  rank: Float64Array;
  /** Whether memory kept some unit off a device that could run it (else HEFT placed as with unbounded memory). */
  memory_full: boolean;
}

/** Mean transfer time of `bytes` over distinct device pairs (HEFT's average communication cost). */
function meanTransfer(p: PlacementProblem, bytes: number, pairs: [number, number][]): number {
  if (bytes === 0 || pairs.length === 0) return 0;
  let s = 0;
  for (const [a, b] of pairs) s += p.transfer_s(a, b, bytes);
  return s / pairs.length;
}

/**
 * Ranks per problem: HEFT and the assessor ask for them on the same problem (problems are not
 * changed once built), and on its copies with other capacities (HEFT as if memory were unbounded) —
 * ranks read only times, values, order and transfers: kept by the times, for those same four.
 */
const ranksOf = new WeakMap<Float64Array, { p: PlacementProblem; rank: Float64Array }>();

/** HEFT's upward rank of every unit (read-only: the array is shared by the callers on one problem). */
export function upwardRanks(p: PlacementProblem): Float64Array {
  const kept = ranksOf.get(p.time_s);
  if (kept && kept.p.values === p.values && kept.p.order === p.order && kept.p.transfer_s === p.transfer_s) return kept.rank;
  const rank = computeUpwardRanks(p);
  ranksOf.set(p.time_s, { p, rank });
  return rank;
}

function computeUpwardRanks(p: PlacementProblem): Float64Array {
  const n = p.unit_names.length;
  const nd = p.device_ids.length;
  const pairs: [number, number][] = [];
  for (let a = 0; a < nd; a++) for (let b = 0; b < nd; b++) if (a !== b) pairs.push([a, b]);
  const mean = new Float64Array(n);
  for (let u = 0; u < n; u++) {
    let s = 0;
    let c = 0;
    for (let d = 0; d < nd; d++) {
      const t = unitTime(p, u, d);
      if (Number.isFinite(t)) {
        s += t;
        c++;
      }
    }
    mean[u] = c > 0 ? s / c : 0;
  }
  // Sample a few pairs for the mean communication cost on large racks (all pairs when ≤ 16 devices).
  const sample = pairs.length <= 256 ? pairs : pairs.filter((_, k) => k % Math.ceil(pairs.length / 256) === 0);
  // Per distinct size (a graph's values come in a few hundred sizes: 3.6M route times over 50k
  // values on the DeepSeek-V3 shape, 0.2 s a variant, were mostly the same few asked again).
  const meanOf = new Map<number, number>();
  const values = p.values;
  const comm = new Float64Array(values.length);
  // The values each unit produces (CSR: an object per edge, walked by for-of, was 64 MB over the
  // DeepSeek-V3 plan's four rankings).
  const madeAt = new Int32Array(n + 1);
  for (let vi = 0; vi < values.length; vi++) {
    const v = values[vi]!;
    let c = meanOf.get(v.bytes);
    if (c === undefined) meanOf.set(v.bytes, (c = meanTransfer(p, v.bytes, sample)));
    comm[vi] = c;
    madeAt[v.producer + 1]!++;
  }
  for (let u = 0; u < n; u++) madeAt[u + 1]! += madeAt[u]!;
  const made = new Int32Array(values.length);
  const put = madeAt.slice(0, n);
  for (let vi = 0; vi < values.length; vi++) made[put[values[vi]!.producer]!++] = vi;
  const rank = new Float64Array(n);
  for (let k = n - 1; k >= 0; k--) {
    const u = p.order[k]!;
    let best = 0;
    for (let j = madeAt[u]!; j < madeAt[u + 1]!; j++) {
      const vi = made[j]!;
      const consumers = values[vi]!.consumers;
      for (let i = 0; i < consumers.length; i++) best = Math.max(best, comm[vi]! + rank[consumers[i]!]!);
    }
    rank[u] = mean[u]! + best;
  }
  return rank;
}

export function heft(p: PlacementProblem): HeftResult {
  const n = p.unit_names.length;
  const nd = p.device_ids.length;
  const rank = upwardRanks(p);
  // (Positions as doubles: sortIndices takes Float64Array keys.)
  const pos = new Float64Array(n);
  for (let k = 0; k < n; k++) pos[p.order[k]!] = k;
  // Decreasing rank is a topological order when times are positive; ties (zero-cost units) keep topological position.
  // (sortIndices on the negated rank: the comparator sort of a plain array was a tenth of a run.)
  const negRank = new Float64Array(n);
  for (let u = 0; u < n; u++) negRank[u] = -rank[u]!;
  const byRank = sortIndices(Int32Array.from(p.order), negRank, pos);
  const preds = unitPredecessors(p);
  // Reads flat, and transfer times kept per value size and device pair (filled when first asked:
  // asked per read and device, route times were a quarter of a run).
  const { readStart, readProducer, readTable, tableBytes } = packedReads(p);
  const transfer = new Float64Array(tableBytes.length * nd * nd).fill(Number.NaN);
  const device = new Int32Array(n).fill(-1);
  const start = new Float64Array(n);
  const finish = new Float64Array(n);
  const used = new Float64Array(nd);
  const floor = new Float64Array(nd);
  /** Per device, busy intervals sorted by start. */
  const busy: BusyIntervals[] = p.device_ids.map(() => new BusyIntervals());
  let memoryFull = false;
  const placed = new Uint8Array(n);
  // Rank order can put a unit before a predecessor when times are 0; schedule in rank order but
  // never before all predecessors (a ready list keyed by rank).
  const remaining = new Int32Array(n);
  for (let u = 0; u < n; u++) remaining[u] = preds[u]!.length;
  // (Counted loops here and below: a closure per unit, and for-of iterators that the optimiser
  // did not remove, were 110 MB over the DeepSeek-V3 plan's eight HEFT runs. The successors are
  // the problem's, kept per values: each of a plan's HEFT runs made a list per unit.)
  const { succStart, succList } = unitSuccessors(p);
  const rankPos = new Int32Array(n);
  for (let k = 0; k < n; k++) rankPos[byRank[k]!] = k;
  const ready = new Heap<number>((a, b) => rankPos[a]! < rankPos[b]!);
  for (const u of byRank) if (remaining[u] === 0) ready.push(u);
  // Grouped expert launches (src/partition/problem.ts groupedLaunchExtra): the first unit of a
  // layer's group on a device pays the group's launches there.
  const gl = p.grouped_launch;
  const opened = gl ? new Uint8Array(gl.groups * nd) : null;
  while (ready.size > 0) {
    const u = ready.pop()!;
    let best = -1;
    let bestStart = 0;
    let bestFinish = Infinity;
    const g = gl ? gl.group[u]! : -1;
    for (let d = 0; d < nd; d++) {
      let t = unitTime(p, u, d);
      if (!Number.isFinite(t)) continue;
      if (g >= 0 && !opened![g * nd + d]) t += gl!.launch_s[g * nd + d]!;
      const need = residentBytes(p, u);
      if (used[d]! + need + Math.max(floor[d]!, p.activation_bytes[u]!) > p.capacity_bytes[d]!) {
        memoryFull = true;
        continue;
      }
      let drt = 0;
      for (let e = readStart[u]!, end = readStart[u + 1]!; e < end; e++) {
        const q = readProducer[e]!;
        const src = device[q]!;
        let moved = 0;
        if (src !== d) {
          const at = (readTable[e]! * nd + src) * nd + d;
          if (Number.isNaN(transfer[at]!)) transfer[at] = p.transfer_s(src, d, tableBytes[readTable[e]!]!);
          moved = transfer[at]!;
        }
        drt = Math.max(drt, finish[q]! + moved);
      }
      // A gap starts at drt or later: a device where even that start finishes no sooner than the
      // best so far is not searched (its test below would fail too: addition is monotone).
      if (!(drt + t < bestFinish - 1e-15)) continue;
      const s = busy[d]!.earliestGap(drt, t);
      if (s + t < bestFinish - 1e-15) {
        best = d;
        bestStart = s;
        bestFinish = s + t;
      }
    }
    if (best < 0) {
      const need = residentBytes(p, u);
      const short = p.device_ids
        .map((id, d) => ({
          id,
          missing: used[d]! + need + Math.max(floor[d]!, p.activation_bytes[u]!) - p.capacity_bytes[d]!,
          runs: Number.isFinite(unitTime(p, u, d)),
        }))
        .filter((x) => x.runs);
      let total = 0;
      for (let v = 0; v < n; v++) total += residentBytes(p, v);
      const capacity = p.capacity_bytes.reduce((a, b) => a + b, 0);
      throw new HxcError(
        'HXC3001',
        short.length === 0
          ? `unit "${p.unit_names[u]}" can run on no device of the topology`
          : `the model does not fit: unit "${p.unit_names[u]}" (${need} bytes of weights and state) has no room left — ${short.map((x) => `${x.id} ${Math.ceil(x.missing)} bytes missing`).join(', ')}; the whole model pins ${total} bytes, the rack holds ${capacity}`,
        {
          hint:
            short.length === 0
              ? "give its nodes a time for one of the rack's devices or kinds (a task graph's `time` keys), or add a device that runs them"
              : 'add devices or memory to the topology, lower --batch/--context, or use a smaller dtype',
        },
      );
    }
    device[u] = best;
    if (g >= 0) opened![g * nd + best] = 1;
    start[u] = bestStart;
    finish[u] = bestFinish;
    used[best]! += residentBytes(p, u);
    floor[best] = Math.max(floor[best]!, p.activation_bytes[u]!);
    busy[best]!.insert(bestStart, bestFinish);
    placed[u] = 1;
    for (let j = succStart[u]!, end = succStart[u + 1]!; j < end; j++) if (--remaining[succList[j]!]! === 0) ready.push(succList[j]!);
  }
  let makespan = 0;
  for (let u = 0; u < n; u++) makespan = Math.max(makespan, finish[u]!);
  return { device, start_s: start, finish_s: finish, makespan_s: makespan, rank, memory_full: memoryFull };
}

/**
 * A device's busy intervals, sorted by start, each with the latest finish among it and those
 * before it (`upTo`, which never decreases). In typed arrays grown by doubling: an object per
 * interval and a splice per unit placed were a fifth of a HEFT run on the DeepSeek-V3 shape.
 */
export class BusyIntervals {
  length = 0;
  s: Float64Array = new Float64Array(16);
  f: Float64Array = new Float64Array(16);
  upTo: Float64Array = new Float64Array(16);

  /** Earliest start ≥ ready where a unit of length t fits between busy intervals (HEFT's insertion policy). */
  earliestGap(ready: number, t: number): number {
    const { s, f, upTo, length } = this;
    // The intervals before the first whose `upTo` passes `ready` all end by then: the scan would
    // skip each of them, so it starts after them (binary search; `upTo` never decreases).
    let lo = 0;
    let hi = length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (upTo[mid]! <= ready) lo = mid + 1;
      else hi = mid;
    }
    let candidate = ready;
    for (let k = lo; k < length; k++) {
      if (f[k]! <= candidate) continue;
      if (s[k]! >= candidate + t) return candidate;
      candidate = Math.max(candidate, f[k]!);
    }
    return candidate;
  }

  /** Adds [start, finish] after the intervals starting at or before `start`. */
  insert(start: number, finish: number): void {
    if (this.length === this.s.length) {
      const grow = (a: Float64Array): Float64Array => {
        const b = new Float64Array(2 * a.length);
        b.set(a);
        return b;
      };
      this.s = grow(this.s);
      this.f = grow(this.f);
      this.upTo = grow(this.upTo);
    }
    const { s, f, upTo } = this;
    const n = this.length;
    let k = n;
    while (k > 0 && s[k - 1]! > start) k--;
    if (k < n) {
      s.copyWithin(k + 1, k, n);
      f.copyWithin(k + 1, k, n);
      upTo.copyWithin(k + 1, k, n);
    }
    s[k] = start;
    f[k] = finish;
    this.length = n + 1;
    // The running maximum from k on; once an entry after the new one keeps its value, the rest do too.
    upTo[k] = k > 0 ? Math.max(upTo[k - 1]!, finish) : finish;
    for (let j = k + 1; j <= n; j++) {
      const m = Math.max(upTo[j - 1]!, f[j]!);
      if (m === upTo[j]) break;
      upTo[j] = m;
    }
  }
}

/** HEFT, or the HXC3001 it raised when some unit found no device with room (other errors are thrown). */
export function heftOrError(p: PlacementProblem): HeftResult | HxcError {
  try {
    return heft(p);
  } catch (err) {
    if (err instanceof HxcError && err.code === 'HXC3001') return err;
    throw err;
  }
}

/** HEFT on a restricted problem (a hint, a variant): null when it does not fit, as any candidate that does not. */
export function heftOrNull(p: PlacementProblem): HeftResult | null {
  const r = heftOrError(p);
  return r instanceof HxcError ? null : r;
}
