// The placement problem every solver works on (heuristic, exact MILP, baselines, the benchmark's
// random DAGs): units (stages) with a compute time per device, values flowing between units, weight
// bytes per unit, device capacities, and a transfer-time function over the topology's routes.
// This is the classic heterogeneous DAG-scheduling model (HEFT, Topcuoglu et al. 2002): a device
// runs one unit at a time; a value moves once to each other device that reads it; transfers take
// route time and, in the solvers, do not contend (the simulator models contention).

import { kahnOrder } from '../ir/algorithms.js';
import { bucketIndices, sortIndices } from '../util/sort.js';

export interface UnitValue {
  /** Value name (or a synthetic label), for the plan's transfers and explain. */
  name: string;
  producer: number;
  /** Consumer units, each once, ascending. */
  consumers: number[];
  bytes: number;
}

export interface PlacementProblem {
  unit_names: string[];
  device_ids: string[];
  /** units × devices, row-major: compute seconds of unit u on device d; Infinity = cannot run there. */
  time_s: Float64Array;
  values: UnitValue[];
  /** Weight bytes each unit needs on its device. */
  weight_bytes: Float64Array;
  /** State bytes owned by the device a unit runs on (KV caches its nodes write). */
  state_bytes: Float64Array;
  /** Largest live activation bytes of the unit while it runs (a memory floor on its device). */
  activation_bytes: Float64Array;
  capacity_bytes: Float64Array;
  /** Seconds to move `bytes` from device a to device b (0 when a == b). */
  transfer_s(a: number, b: number, bytes: number): number;
  /** Units in a topological order (every value's producer before its consumers). */
  order: Int32Array;
  /**
   * Routed MoE layers whose experts run as grouped kernels (src/cost/fusion.ts): per unit its group
   * (-1 none) and, per group × device (index group · devices + device), the seconds of the layer's
   * grouped launches there — paid once per device and layer, on top of time_s (groupedLaunchExtra);
   * 0 where the group's times are measured or given, launches included.
   */
  grouped_launch?: { group: Int32Array; launch_s: Float64Array; groups: number };
}

/**
 * The problem on the devices `keep` alone (ascending indices into p's): a plan of it is one of p
 * that leaves the others idle, its device k being p's keep[k]. Shares p's units and values.
 */
export function onDevices(p: PlacementProblem, keep: readonly number[]): PlacementProblem {
  const nd = p.device_ids.length;
  const m = keep.length;
  const n = p.unit_names.length;
  const time_s = new Float64Array(n * m);
  for (let u = 0; u < n; u++) for (let k = 0; k < m; k++) time_s[u * m + k] = p.time_s[u * nd + keep[k]!]!;
  const gl = p.grouped_launch;
  return {
    ...p,
    device_ids: keep.map((d) => p.device_ids[d]!),
    time_s,
    capacity_bytes: Float64Array.from(keep, (d) => p.capacity_bytes[d]!),
    transfer_s: (a, b, bytes) => p.transfer_s(keep[a]!, keep[b]!, bytes),
    ...(gl
      ? {
          grouped_launch: {
            ...gl,
            launch_s: Float64Array.from({ length: gl.groups * m }, (_, at) => gl.launch_s[Math.floor(at / m) * nd + keep[at % m]!]!),
          },
        }
      : {}),
  };
}

/**
 * Per unit, the seconds of grouped launches the placement adds to time_s (src/cost/fusion.ts,
 * "Grouped experts"): a device running any unit of a group launches the group's kernels once,
 * charged to the group's first unit on that device in `order` (a permutation of the units). null
 * when the problem has no groups.
 */
export function groupedLaunchExtra(
  p: PlacementProblem,
  device: Int32Array,
  order: ArrayLike<number>,
  scratch?: { extra: Float64Array; charged: Uint8Array },
): Float64Array | null {
  const gl = p.grouped_launch;
  if (!gl) return null;
  const nd = p.device_ids.length;
  const extra = scratch ? scratch.extra.fill(0) : new Float64Array(p.unit_names.length);
  const charged = scratch ? scratch.charged.fill(0) : new Uint8Array(gl.groups * nd);
  for (let k = 0; k < order.length; k++) {
    const u = order[k]!;
    const g = gl.group[u]!;
    if (g < 0) continue;
    const at = g * nd + device[u]!;
    if (charged[at]) continue;
    charged[at] = 1;
    extra[u] = gl.launch_s[at]!;
  }
  return extra;
}

export interface Placement {
  /** Device index per unit. */
  device: Int32Array;
  start_s: Float64Array;
  finish_s: Float64Array;
  makespan_s: number;
}

/** Bytes a unit pins on its device for as long as the placement lasts: its weights and the state it owns. */
export function residentBytes(p: PlacementProblem, u: number): number {
  return p.weight_bytes[u]! + p.state_bytes[u]!;
}

export function unitTime(p: PlacementProblem, u: number, d: number): number {
  return p.time_s[u * p.device_ids.length + d]!;
}

/**
 * The lists below, kept per problem's values: a problem is not changed once built, and its copies
 * with other times or capacities share its values. The solvers ask for them again and again (15 and
 * 13 times on the DeepSeek-V3 plan, each time remade and sorted: 380 MB of garbage).
 */
const predecessorsOf = new WeakMap<readonly UnitValue[], readonly (readonly number[])[]>();
const readsOf = new WeakMap<readonly UnitValue[], readonly (readonly UnitValue[])[]>();

/** Predecessor lists per unit, derived from the values (each predecessor once; shared, read-only). */
export function unitPredecessors(p: PlacementProblem): readonly (readonly number[])[] {
  const kept = predecessorsOf.get(p.values);
  if (kept) return kept;
  const { predStart, predList } = unitPredecessorCsr(p);
  const preds: number[][] = [];
  for (let u = 0; u < p.unit_names.length; u++) {
    const list: number[] = [];
    for (let j = predStart[u]!; j < predStart[u + 1]!; j++) list.push(predList[j]!);
    preds.push(list);
  }
  predecessorsOf.set(p.values, preds);
  return preds;
}

const predecessorCsrOf = new WeakMap<readonly UnitValue[], { predStart: Int32Array; predList: Int32Array }>();

/**
 * unitPredecessors as CSR (unit u's are predList[predStart[u] .. predStart[u + 1]), ascending, each
 * once), kept per values (shared, read-only): packedReads' producers per unit, each unit's sorted
 * and made unique in place. (A list pushed per unit, sorted by a comparator and flattened for the
 * evaluator was 34 MB of the heap a DeepSeek-V3 partition allocated, and 0.15 s of its collections.)
 */
export function unitPredecessorCsr(p: PlacementProblem): { predStart: Int32Array; predList: Int32Array } {
  const kept = predecessorCsrOf.get(p.values);
  if (kept) return kept;
  const n = p.unit_names.length;
  const { readStart: at, readProducer } = packedReads(p);
  const list = readProducer.slice();
  // Each unit's sorted (by insertion: a unit reads a few units; a long list by the typed array's
  // own sort), its repeats dropped, written back from the front (never past where it reads).
  const predStart = new Int32Array(n + 1);
  let w = 0;
  for (let u = 0; u < n; u++) {
    const a = at[u]!;
    const b = at[u + 1]!;
    if (b - a > 16) list.subarray(a, b).sort();
    else
      for (let i = a + 1; i < b; i++) {
        const x = list[i]!;
        let j = i - 1;
        for (; j >= a && list[j]! > x; j--) list[j + 1] = list[j]!;
        list[j + 1] = x;
      }
    predStart[u] = w;
    for (let i = a; i < b; i++) if (i === a || list[i] !== list[i - 1]) list[w++] = list[i]!;
  }
  predStart[n] = w;
  const csr = { predStart, predList: list.slice(0, w) };
  predecessorCsrOf.set(p.values, csr);
  return csr;
}

const successorsOf = new WeakMap<readonly UnitValue[], { succStart: Int32Array; succList: Int32Array }>();

/**
 * Successor lists per unit (CSR: unit u's are succList[succStart[u] .. succStart[u + 1]), ascending),
 * the transpose of unitPredecessors, kept per values as it is (shared, read-only).
 */
export function unitSuccessors(p: PlacementProblem): { succStart: Int32Array; succList: Int32Array } {
  const kept = successorsOf.get(p.values);
  if (kept) return kept;
  const { predStart, predList } = unitPredecessorCsr(p);
  const n = p.unit_names.length;
  const succStart = new Int32Array(n + 1);
  for (let j = 0; j < predList.length; j++) succStart[predList[j]! + 1]!++;
  for (let u = 0; u < n; u++) succStart[u + 1]! += succStart[u]!;
  const succList = new Int32Array(succStart[n]!);
  const put = succStart.slice(0, n);
  for (let u = 0; u < n; u++) for (let j = predStart[u]!; j < predStart[u + 1]!; j++) succList[put[predList[j]!]!++] = u;
  const csr = { succStart, succList };
  successorsOf.set(p.values, csr);
  return csr;
}

/** A problem's values as flat arrays (PackedValues), kept per values list as the lists above are. */
const packedOf = new WeakMap<readonly UnitValue[], PackedValues>();

/**
 * The values' producers, bytes and consumers (CSR: value v's consumers are
 * consumers[consumerAt[v] .. consumerAt[v + 1]), ascending, each once) in typed arrays: the judge
 * walks every value for every schedule it makes (34 on the DeepSeek-V3 plan, 62k values each),
 * and reading them through an object each was most of making one.
 */
export interface PackedValues {
  producer: Int32Array;
  bytes: Float64Array;
  consumerAt: Int32Array;
  consumers: Int32Array;
}

export function packedValues(p: PlacementProblem): PackedValues {
  const kept = packedOf.get(p.values);
  if (kept) return kept;
  const values = p.values;
  const V = values.length;
  const producer = new Int32Array(V);
  const bytes = new Float64Array(V);
  const consumerAt = new Int32Array(V + 1);
  for (let v = 0; v < V; v++) {
    producer[v] = values[v]!.producer;
    bytes[v] = values[v]!.bytes;
    consumerAt[v + 1] = consumerAt[v]! + values[v]!.consumers.length;
  }
  const consumers = new Int32Array(consumerAt[V]!);
  for (let v = 0; v < V; v++) {
    const list = values[v]!.consumers;
    const at = consumerAt[v]!;
    for (let j = 0; j < list.length; j++) consumers[at + j] = list[j]!;
  }
  const packed = { producer, bytes, consumerAt, consumers };
  packedOf.set(values, packed);
  return packed;
}

/**
 * The reads of every unit (valuesReadBy, in its order) flat: unit u's are readStart[u] ..
 * readStart[u + 1], each a producer and the number of its value's size among the distinct sizes
 * (tableBytes), by which a transfer time is kept per size and device pair. Kept per values list.
 */
export interface PackedReads {
  readStart: Int32Array;
  readProducer: Int32Array;
  readTable: Int32Array;
  tableBytes: number[];
}

const packedReadsOf = new WeakMap<readonly UnitValue[], PackedReads>();

export function packedReads(p: PlacementProblem): PackedReads {
  const kept = packedReadsOf.get(p.values);
  if (kept) return kept;
  const n = p.unit_names.length;
  const values = p.values;
  // Each unit's reads as valuesReadBy lists them (values in order), counted then filled: its lists,
  // an array of values pushed per unit, were made only to be read here.
  const readStart = new Int32Array(n + 1);
  for (let vi = 0; vi < values.length; vi++) {
    const { producer, consumers } = values[vi]!;
    for (let j = 0; j < consumers.length; j++) if (consumers[j] !== producer) readStart[consumers[j]! + 1]!++;
  }
  for (let u = 0; u < n; u++) readStart[u + 1]! += readStart[u]!;
  const edges = readStart[n]!;
  const readValue = new Int32Array(edges);
  const put = readStart.slice(0, n);
  for (let vi = 0; vi < values.length; vi++) {
    const { producer, consumers } = values[vi]!;
    for (let j = 0; j < consumers.length; j++) if (consumers[j] !== producer) readValue[put[consumers[j]!]!++] = vi;
  }
  // Sizes numbered as first met, unit by unit.
  const tableOf = new Map<number, number>();
  const tableBytes: number[] = [];
  const readProducer = new Int32Array(edges);
  const readTable = new Int32Array(edges);
  for (let e = 0; e < edges; e++) {
    const v = values[readValue[e]!]!;
    let t = tableOf.get(v.bytes);
    if (t === undefined) {
      t = tableBytes.length;
      tableOf.set(v.bytes, t);
      tableBytes.push(v.bytes);
    }
    readProducer[e] = v.producer;
    readTable[e] = t;
  }
  const packed = { readStart, readProducer, readTable, tableBytes };
  packedReadsOf.set(p.values, packed);
  return packed;
}

/** Values each unit reads, by unit (shared, read-only). */
export function valuesReadBy(p: PlacementProblem): readonly (readonly UnitValue[])[] {
  const kept = readsOf.get(p.values);
  if (kept) return kept;
  const reads: UnitValue[][] = p.unit_names.map(() => []);
  for (const v of p.values) for (const c of v.consumers) if (c !== v.producer) reads[c]!.push(v);
  readsOf.set(p.values, reads);
  return reads;
}

/**
 * Times of a fixed assignment: units run in the total order given by (priority, topological
 * position) — each device runs its units in that order, each as soon as its inputs have arrived
 * and its device is free. Transfers start when the producer finishes and take route time (no
 * contention). With priority = the start times of a valid schedule, the order is consistent with
 * the DAG and this reproduces that schedule or improves it. A priority inconsistent with the DAG
 * falls back to a ready list. Infinity makespan when a unit sits on a device that cannot run it.
 */
/** Callers must not change a priority array after passing it (its sorted order is cached). */
export class Evaluator {
  private readonly n: number;
  private readonly nd: number;
  /** Reads as CSR: unit u reads edges readStart[u] .. readStart[u+1]: producer, and its transfer-time table. */
  private readonly readStart: Int32Array;
  private readonly readProducer: Int32Array;
  private readonly readTable: Int32Array;
  /** Transfer seconds per distinct byte size t and device pair (a, b) at (t·nd + a)·nd + b, flat; NaN until first asked. */
  private readonly tables: Float64Array;
  private readonly tableBytes: number[];
  private readonly predStart: Int32Array;
  private readonly predList: Int32Array;
  private readonly topo: Int32Array;
  /** The last few priorities sorted, and their orders (a search asks with the same few many times). */
  private readonly orders: OrderEntry[] = [];
  /**
   * Times of the last two runs into scratch (runInto's slots 0 and 1), and the grouped launches'
   * scratch: a search's trials are mostly thrown away, and their arrays (three of n doubles a run,
   * 750 KB on the DeepSeek-V3 shape) live off the heap, where they trigger collections of their own.
   */
  private readonly slots: { start: Float64Array; finish: Float64Array }[];
  private readonly launchScratch: { extra: Float64Array; charged: Uint8Array } | undefined;
  private readerCsr: { readStart: Int32Array; readers: Int32Array } | undefined;
  private members: { memberStart: Int32Array; members: Int32Array } | undefined;
  private launchesOfBase: { base: Placement; device: Int32Array; sorted: Int32Array; extra: Float64Array } | undefined;

  constructor(readonly p: PlacementProblem) {
    const n = (this.n = p.unit_names.length);
    const nd = (this.nd = p.device_ids.length);
    // (Shared with HEFT and the other evaluators of the problem: read-only.)
    ({ readStart: this.readStart, readProducer: this.readProducer, readTable: this.readTable, tableBytes: this.tableBytes } = packedReads(p));
    this.tables = new Float64Array(this.tableBytes.length * nd * nd).fill(NaN);
    ({ predStart: this.predStart, predList: this.predList } = unitPredecessorCsr(p));
    this.topo = Int32Array.from(p.order);
    this.slots = [0, 1].map(() => ({ start: new Float64Array(n), finish: new Float64Array(n) }));
    if (p.grouped_launch) this.launchScratch = { extra: new Float64Array(n), charged: new Uint8Array(p.grouped_launch.groups * nd) };
    // run() times `order` without checking it: a unit before one it reads is a bug in how units were cut.
    const early = this.firstBeforeItsInputs(this.topo);
    if (early >= 0) throw new Error(`units are out of order: ${p.unit_names[early]} comes before a unit it reads`);
  }

  /** The first unit of `order` that comes before a unit it reads, or -1 when there is none. */
  private firstBeforeItsInputs(order: Int32Array): number {
    const { predStart, predList } = this;
    const seen = new Uint8Array(this.n);
    for (let k = 0; k < order.length; k++) {
      const u = order[k]!;
      for (let j = predStart[u]!, end = predStart[u + 1]!; j < end; j++) if (!seen[predList[j]!]) return u;
      seen[u] = 1;
    }
    return -1;
  }

  /** Fills the transfer table's entry `at`: size `table` from device a to b. */
  private fillTransfer(at: number, table: number, a: number, b: number): void {
    this.tables[at] = this.p.transfer_s(a, b, this.tableBytes[table]!);
  }

  /**
   * The units by priority (ties in topological order), and the order they are timed in: the same
   * when it puts every unit after the units it reads (checked once per priority), else the order a
   * ready list in priority order takes. Grouped launches are charged in priority order either way.
   */
  private orderFor(priority: Float64Array | undefined): OrderEntry {
    if (!priority) return { priority, sorted: this.topo, order: this.topo };
    for (const o of this.orders) if (o.priority === priority) return o;
    // (`topo` is in topological order: the sort is stable.)
    const sorted = sortIndices(Int32Array.from(this.topo), priority);
    const order = this.firstBeforeItsInputs(sorted) < 0 ? sorted : this.readyOrder(sorted);
    if (this.orders.length >= 4) this.orders.shift();
    const entry = { priority, sorted, order };
    this.orders.push(entry);
    return entry;
  }

  /**
   * A ready list's order: again and again, the first unit of `order` whose inputs are all timed.
   * (It depends on the graph alone, not on times, so it is found once per priority.)
   */
  private readyOrder(order: Int32Array): Int32Array {
    const n = this.n;
    const { predStart } = this;
    const pos = new Int32Array(n);
    for (let k = 0; k < n; k++) pos[order[k]!] = k;
    const { readStart, readers } = this.readersOf();
    const { order: out, waiting } = kahnOrder(n, predStart, readStart, readers, (a, b) => pos[a]! < pos[b]!);
    if (out.length < n) {
      // Units that wait on each other: a bug in how units were cut.
      const stuck = order.find((u) => waiting[u]! > 0)!;
      throw new Error(`units form a cycle: ${this.p.unit_names[stuck]} and ${n - out.length - 1} more wait on each other`);
    }
    return out;
  }

  /** Readers per unit (CSR), from the predecessor lists: made when a ready list first needs them. */
  private readersOf(): { readStart: Int32Array; readers: Int32Array } {
    if (this.readerCsr) return this.readerCsr;
    const n = this.n;
    const { predStart, predList } = this;
    const readStart = new Int32Array(n + 1);
    for (let j = 0; j < predList.length; j++) readStart[predList[j]! + 1]!++;
    for (let u = 0; u < n; u++) readStart[u + 1]! += readStart[u]!;
    const readers = new Int32Array(predList.length);
    const fill = readStart.slice(0, n);
    for (let u = 0; u < n; u++) for (let j = predStart[u]!; j < predStart[u + 1]!; j++) readers[fill[predList[j]!]!++] = u;
    return (this.readerCsr = { readStart, readers });
  }

  run(device: Int32Array, priority?: Float64Array): Placement {
    const start = new Float64Array(this.n);
    const finish = new Float64Array(this.n);
    return { device, start_s: start, finish_s: finish, makespan_s: this.times(device, priority, start, finish) };
  }

  /**
   * run(device, priority) where `device` is `base.device` (a run under the same priority) with the
   * units `moved` elsewhere. In the order, a unit before the first one moved keeps its device, its
   * inputs' times and its device's queue, so it keeps its times in base, and the run starts at the
   * first unit moved, and stops once the rest can only repeat base (timesSettling). When the
   * priority's order is not its sort (a ready list), grouped launches are charged in another order
   * than the one timed: a whole run. `base` must not change while moves are timed from it (its
   * grouped launches are kept).
   */
  runMoved(device: Int32Array, priority: Float64Array, base: Placement, moved: ArrayLike<number>): Placement {
    const start = new Float64Array(this.n);
    const finish = new Float64Array(this.n);
    return { device, start_s: start, finish_s: finish, makespan_s: this.timeMoved(device, priority, base, moved, start, finish) };
  }

  /**
   * runMoved's makespan, its times written into `start` and `finish` (every entry): explain's
   * hundreds of single moves reuse two arrays instead of a placement each (three arrays of the
   * units' size, ~0.75 MB a move on the DeepSeek-V3 shape, made only to read the makespan).
   */
  timeMoved(device: Int32Array, priority: Float64Array, base: Placement, moved: ArrayLike<number>, start: Float64Array, finish: Float64Array): number {
    const entry = this.orderFor(priority);
    if (entry.sorted !== entry.order) return this.times(device, priority, start, finish);
    const { pos, lastRead } = (entry.readers ??= this.readPositions(entry.order));
    let from = this.n;
    for (let j = 0; j < moved.length; j++) if (pos[moved[j]!]! < from) from = pos[moved[j]!]!;
    start.set(base.start_s);
    finish.set(base.finish_s);
    return this.timesSettling(entry.order, pos, lastRead, device, base, moved, start, finish, from);
  }

  /** Each unit's position in `order`, and the position of its last reader there (-1 when none reads it). */
  private readPositions(order: Int32Array): { pos: Int32Array; lastRead: Int32Array } {
    const n = this.n;
    const { readStart, readProducer } = this;
    const pos = new Int32Array(n);
    const lastRead = new Int32Array(n).fill(-1);
    for (let k = 0; k < n; k++) {
      const u = order[k]!;
      pos[u] = k;
      // (Readers come in order: the last one written is the last one.)
      for (let e = readStart[u]!, end = readStart[u + 1]!; e < end; e++) lastRead[readProducer[e]!] = k;
    }
    return { pos, lastRead };
  }

  /** The grouped launches of `base` (a run kept by its object: explain moves units of one base hundreds of times). */
  private baseLaunches(base: Placement, sorted: Int32Array): Float64Array | null {
    if (!this.p.grouped_launch) return null;
    const kept = this.launchesOfBase;
    if (kept && kept.base === base && kept.device === base.device && kept.sorted === sorted) return kept.extra;
    const extra = groupedLaunchExtra(this.p, base.device, sorted)!;
    this.launchesOfBase = { base, device: base.device, sorted, extra };
    return extra;
  }

  /**
   * times() from position `from` for `device` = `base.device` with the units `moved` elsewhere,
   * stopping once the rest of the run can only repeat base: every unit moved is timed, no unit
   * timed with another finish or device than in base is read further on (lastRead), no unit
   * further on pays another grouped launch, and every device is free when it was in base. From
   * there each unit meets the inputs and the queue it met in base, so it keeps base's times
   * (already in `start` and `finish`), and the makespan is base's. (Explain's 461 single moves on
   * the DeepSeek-V3 shape: 15.0M units timed to the end, 7.3M this way — a move that leaves the
   * makespan as it was mostly settles within a few units; one that changes it runs to the end.)
   */
  private timesSettling(
    order: Int32Array,
    pos: Int32Array,
    lastRead: Int32Array,
    device: Int32Array,
    base: Placement,
    moved: ArrayLike<number>,
    start: Float64Array,
    finish: Float64Array,
    from: number,
  ): number {
    const nd = this.nd;
    const free = new Float64Array(nd);
    // Each device's queue as the units before `from` leave it: its last one's finish (finishes on a
    // device only grow along the order), base's too.
    if (from > 0) {
      const queued = new Uint8Array(nd);
      for (let k = from - 1, left = nd; k >= 0 && left > 0; k--) {
        const d = device[order[k]!]!;
        if (queued[d]) continue;
        queued[d] = 1;
        free[d] = finish[order[k]!]!;
        left--;
      }
    }
    const baseFree = free.slice();
    // The last position that must be timed: every unit moved, and every unit whose grouped launch
    // changed (only groups of units moved can change).
    let until = from;
    for (let j = 0; j < moved.length; j++) if (pos[moved[j]!]! > until) until = pos[moved[j]!]!;
    // Grouped launches (groupedLaunchExtra, charged in `order`, the priority's sort here): base's,
    // with the groups of the units moved charged again — a group's first unit on each device.
    const baseExtra = this.baseLaunches(base, order);
    let extra: Float64Array | null = null;
    if (baseExtra) {
      extra = this.launchScratch!.extra;
      extra.set(baseExtra);
      const { members, memberStart } = this.groupMembers();
      const gl = this.p.grouped_launch!;
      const first = new Int32Array(nd);
      for (let j = 0; j < moved.length; j++) {
        const g = gl.group[moved[j]!]!;
        if (g < 0) continue;
        first.fill(-1);
        for (let i = memberStart[g]!, end = memberStart[g + 1]!; i < end; i++) {
          const x = members[i]!;
          extra[x] = 0;
          const d = device[x]!;
          if (first[d]! < 0 || pos[x]! < pos[first[d]!]!) first[d] = x;
        }
        for (let d = 0; d < nd; d++) if (first[d]! >= 0) extra[first[d]!] = gl.launch_s[g * nd + d]!;
        for (let i = memberStart[g]!, end = memberStart[g + 1]!; i < end; i++) {
          const x = members[i]!;
          if (extra[x] !== baseExtra[x] && pos[x]! > until) until = pos[x]!;
        }
      }
    }
    return this.timeFrom(order, device, start, finish, from, free, extra, { base, lastRead, until, baseFree, differs: new Uint8Array(nd) });
  }

  /** Units by grouped-launch group (CSR), made when a moved run first needs them. */
  private groupMembers(): { memberStart: Int32Array; members: Int32Array } {
    if (this.members) return this.members;
    const gl = this.p.grouped_launch!;
    const { start: memberStart, items: members } = bucketIndices(gl.group, gl.groups);
    return (this.members = { memberStart, members });
  }

  /** run's makespan, its times left in scratch slot `slot` (0 or 1) until the next runInto there; placementOf copies them. */
  runInto(slot: 0 | 1, device: Int32Array, priority?: Float64Array): number {
    const { start, finish } = this.slots[slot]!;
    return this.times(device, priority, start, finish);
  }

  /** The placement of the last runInto in `slot`, its arrays copied. */
  placementOf(slot: 0 | 1, device: Int32Array, makespan_s: number): Placement {
    const { start, finish } = this.slots[slot]!;
    return { device, start_s: start.slice(), finish_s: finish.slice(), makespan_s };
  }

  /** Fills `start` and `finish` for `device` under `priority` and returns the makespan. */
  private times(device: Int32Array, priority: Float64Array | undefined, start: Float64Array, finish: Float64Array): number {
    const { sorted, order } = this.orderFor(priority);
    // Grouped expert launches, paid once per device and layer (groupedLaunchExtra), as the judge pays them.
    const extra = groupedLaunchExtra(this.p, device, sorted, this.launchScratch);
    return this.timeFrom(order, device, start, finish, 0, new Float64Array(this.nd), extra, null);
  }

  /**
   * The list schedule's times from order position `from` on (before it `start` and `finish` hold the
   * times the units there keep, and `free` each device's queue as they leave it): each unit starts
   * when its inputs have arrived and its device is free, and runs for its time there plus its
   * grouped launch (`extra`). The makespan is the latest device's last finish. With `settle` (a
   * moved run, timesSettling), it stops once the rest can only repeat `settle.base`, whose
   * makespan it returns then.
   */
  private timeFrom(
    order: Int32Array,
    device: Int32Array,
    start: Float64Array,
    finish: Float64Array,
    from: number,
    free: Float64Array,
    extra: Float64Array | null,
    settle: Settle | null,
  ): number {
    const n = this.n;
    const nd = this.nd;
    const { readStart, readProducer, readTable, tables } = this;
    const time = this.p.time_s;
    // Devices whose queue differs from base's (settle), counted.
    let differing = 0;
    let until = settle ? settle.until : n;
    // (One loop, no closure per unit: a double returned from a call, or written by a closure, is
    // boxed in a heap cell — 600 KB a run on the DeepSeek-V3 shape, most of what a search allocated.
    // Nor a double carried from unit to unit, nor one that may hold a call's result: boxed at every
    // write, as in the code most runs enter mid-loop (OSR) — the makespan kept in the loop and a
    // transfer time taken from fillTransfer's return were 590 MB over a DeepSeek-V3 plan.)
    for (let k = from; k < n; k++) {
      const u = order[k]!;
      const d = device[u]!;
      let ready = 0;
      for (let e = readStart[u]!, end = readStart[u + 1]!; e < end; e++) {
        const q = readProducer[e]!;
        const src = device[q]!;
        let arrive = finish[q]!;
        if (src !== d) {
          // (Filled, then read from the table: see above.)
          const at = (readTable[e]! * nd + src) * nd + d;
          if (Number.isNaN(tables[at]!)) this.fillTransfer(at, readTable[e]!, src, d);
          arrive += tables[at]!;
        }
        if (arrive > ready) ready = arrive;
      }
      const s = Math.max(ready, free[d]!);
      start[u] = s;
      const f = s + time[u * nd + d]! + (extra ? extra[u]! : 0);
      finish[u] = f;
      free[d] = f;
      if (settle !== null) {
        // Where base's queues stand after this unit, and which devices' differ from this run's; a
        // unit timed with another finish or device makes its readers further on timed too.
        const { base, baseFree, differs } = settle;
        const bd = base.device[u]!;
        baseFree[bd] = base.finish_s[u]!;
        if ((bd !== d || f !== base.finish_s[u]!) && settle.lastRead[u]! > until) until = settle.lastRead[u]!;
        const now = free[d] !== baseFree[d] ? 1 : 0;
        differing += now - differs[d]!;
        differs[d] = now;
        if (bd !== d) {
          const then = free[bd] !== baseFree[bd] ? 1 : 0;
          differing += then - differs[bd]!;
          differs[bd] = then;
        }
        if (k >= until && differing === 0) return base.makespan_s;
      }
    }
    // Each device's finishes only grow (times are ≥ 0): the makespan is the latest device's last.
    let makespan = 0;
    for (let d = 0; d < nd; d++) if (free[d]! > makespan) makespan = free[d]!;
    return makespan;
  }
}

/** What a moved run stops by (Evaluator.timesSettling): its base, and where it must time to. */
interface Settle {
  base: Placement;
  /** Each unit's last reader's position in the order (-1: none). */
  lastRead: Int32Array;
  /** The last position that must be timed (every unit moved, every grouped launch changed). */
  until: number;
  /** Each device's queue in base as the run stands. */
  baseFree: Float64Array;
  /** Devices whose queue differs from base's. */
  differs: Uint8Array;
}

/** A priority's sorted units and timed order, with what moved runs under it read (Evaluator.timeMoved). */
interface OrderEntry {
  /** (None: the topological order, made afresh each time.) */
  priority: Float64Array | undefined;
  sorted: Int32Array;
  order: Int32Array;
  readers?: { pos: Int32Array; lastRead: Int32Array };
}

/** One-shot evaluation (see Evaluator). */
export function evaluate(p: PlacementProblem, device: Int32Array, priority?: Float64Array): Placement {
  return new Evaluator(p).run(device, priority);
}
