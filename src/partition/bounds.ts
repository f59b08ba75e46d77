// Lower bounds on the makespan of every feasible placement, so the partitioner can report how far
// a heuristic (or a time-limited exact solve) may be from the optimum. Each bound relaxes the
// placement problem of problem.ts in a different direction; all are valid for the evaluator's
// makespan (`evaluate`), which never beats the optimal schedule of the same model.

import { HxcError } from '../diag/diagnostics.js';
import type { GraphIndex } from '../ir/algorithms.js';
import type { Graph } from '../ir/graph.js';
import { canRun, type Topology } from '../topology/index.js';
import { formatBytes } from '../topology/units.js';
import { LpModel, runLp, type Term } from './milp-lp.js';
import { type PlacementProblem, residentBytes, unitPredecessors, unitTime } from './problem.js';

export interface LowerBound {
  /** The largest of the three bounds below. Infinity when no feasible placement exists. */
  lower_bound_s: number;
  /** Longest path with every unit at its fastest allowed device and free communication. */
  critical_path_s: number;
  /** Total fastest work spread evenly over all devices. */
  work_over_speed_s: number;
  /** Fractional assignment LP with device loads and memory capacities (see `lowerBound`). */
  memory_spread_s: number;
  /** The exact MILP's proven bound when it ran on these units (see `withMilpBound`); null otherwise. */
  milp_s: number | null;
  /** How the bound was obtained when it is not the plain computation (fallbacks, infeasibility). */
  notes: string[];
}

/** Simplex iterations the spread LP may take (work, not seconds; far above what it needs). */
export const SPREAD_LP_MAX_ITERATIONS = 2_000_000;

/** Above this many fractional variables the LP is skipped (HiGHS would still solve it, slowly). */
export const SPREAD_LP_MAX_VARIABLES = 200_000;

/**
 * Whether unit u may run on device d in any feasible placement: finite time, and the unit alone
 * (resident bytes plus its activation floor) fits in the device. Every solver and bound restricts
 * itself to these pairs; restricting is valid because no feasible placement uses the others.
 */
export function unitAllowed(p: PlacementProblem, u: number, d: number): boolean {
  return Number.isFinite(unitTime(p, u, d)) && residentBytes(p, u) + p.activation_bytes[u]! <= p.capacity_bytes[d]!;
}

/** Fastest allowed compute time of each unit (Infinity when the unit can run nowhere). */
export function fastestTimes_s(p: PlacementProblem): Float64Array {
  const n = p.unit_names.length;
  const fastest = new Float64Array(n).fill(Infinity);
  for (let u = 0; u < n; u++) {
    for (let d = 0; d < p.device_ids.length; d++) if (unitAllowed(p, u, d)) fastest[u] = Math.min(fastest[u]!, unitTime(p, u, d));
  }
  return fastest;
}

/**
 * Earliest start of each unit when every unit runs at its fastest time and moving data is free:
 * a valid lower bound on its start in any schedule. The critical path is the largest finish.
 */
export function earliestStarts_s(p: PlacementProblem, fastest = fastestTimes_s(p)): Float64Array {
  const preds = unitPredecessors(p);
  const start = new Float64Array(p.unit_names.length);
  for (const u of p.order) for (const q of preds[u]!) start[u] = Math.max(start[u]!, start[q]! + fastest[q]!);
  return start;
}

/** Bounds (a) and (b), which need no solver. */
export function cheapBounds(p: PlacementProblem): { critical_path_s: number; work_over_speed_s: number } {
  const fastest = fastestTimes_s(p);
  const start = earliestStarts_s(p, fastest);
  let critical = 0;
  let work = 0;
  for (let u = 0; u < fastest.length; u++) {
    critical = Math.max(critical, start[u]! + fastest[u]!);
    work += fastest[u]!;
  }
  return { critical_path_s: critical, work_over_speed_s: work / Math.max(1, p.device_ids.length) };
}

/**
 * (a) critical path at fastest times; (b) Σ_u min_d t[u,d] / devices (each unit occupies some
 * device at least its fastest time, and devices run one unit at a time); (c) the LP relaxation
 * "minimise T such that a fractional assignment (Σ_d x[u,d] = 1, 0 ≤ x ≤ 1) keeps every device's
 * load Σ_u t[u,d]·x[u,d] ≤ T and resident bytes Σ_u (weight+state)[u]·x[u,d] ≤ capacity[d]" —
 * every feasible placement is a 0/1 point of it whose device loads are at most its makespan.
 * (c) ≥ (b) whenever the LP is solved; (b) is kept as the fallback for very large problems.
 */
export async function lowerBound(p: PlacementProblem): Promise<LowerBound> {
  const notes: string[] = [];
  const { critical_path_s, work_over_speed_s } = cheapBounds(p);
  if (!Number.isFinite(critical_path_s)) {
    notes.push('some unit fits on no device (infinite time or memory): no feasible placement');
    return { lower_bound_s: Infinity, critical_path_s, work_over_speed_s, memory_spread_s: Infinity, milp_s: null, notes };
  }
  const memory_spread_s = await spreadBound(p, work_over_speed_s, notes);
  const lower_bound_s = Math.max(critical_path_s, work_over_speed_s, memory_spread_s);
  return { lower_bound_s, critical_path_s, work_over_speed_s, memory_spread_s, milp_s: null, notes };
}

/**
 * (d) The exact MILP's proven bound (HiGHS's dual bound, src/partition/exact.ts), when it ran on
 * these units: no placement that keeps its memory rule (each device's resident bytes plus its
 * largest activation within capacity) has a shorter contention-free makespan. A plan that fits
 * keeps that rule (its peak activation is at least each of its units' own), and its simulated
 * latency is at least its contention-free makespan (contention only lengthens a schedule), so the
 * bound holds for it too; at a proven optimum it is the optimum, and the gap of the plan that
 * reaches it is 0. Without it, a plan proven optimal was reported 78% above a bound of critical
 * path and load (Topcuoglu's HEFT example: 73 against 41). Taken only when `shipped` keeps the rule.
 */
export function withMilpBound(lb: LowerBound, milpBound_s: number | null, shippedKeepsRule: boolean): LowerBound {
  if (milpBound_s === null || !shippedKeepsRule || !Number.isFinite(lb.lower_bound_s)) return lb;
  return { ...lb, milp_s: milpBound_s, lower_bound_s: Math.max(lb.lower_bound_s, milpBound_s) };
}

async function spreadBound(p: PlacementProblem, work_over_speed_s: number, notes: string[]): Promise<number> {
  const r = await spreadLp(p, work_over_speed_s);
  if (r.note) notes.push(r.note);
  return r.bound_s;
}

/**
 * Bound (c)'s LP. Identical devices (same time for every unit, same capacity) are one group of k:
 * the fractional split makes them interchangeable, so k·T of load and k·capacity of memory per
 * group give the same optimum with k times fewer variables (64 H100s are one column, not 64).
 * Identical units (same resident bytes, the same time on every group, allowed alike — a layer's
 * experts, repeated layers) are likewise one class of m: a variable per class and group carries
 * how many of the m go there (0..m), and any solution of that LP spreads back evenly over the
 * class's units, so the optimum is the same (the DeepSeek-V3 shape's 31k units × 9 devices were
 * past what the LP could take; its classes are a few hundred). `classes: false` (tests) keeps one
 * variable per unit.
 */
export async function spreadLp(
  p: PlacementProblem,
  work_over_speed_s: number,
  opts: { classes?: boolean } = {},
): Promise<{ bound_s: number; note: string | null; variables: number }> {
  const n = p.unit_names.length;
  const devices = p.device_ids.length;
  if (work_over_speed_s === 0) return { bound_s: 0, note: null, variables: 0 };
  const time = (u: number, d: number): number => (unitAllowed(p, u, d) ? unitTime(p, u, d) : -1);
  const groups = identicalDevices(p, devices, time);
  const classes = opts.classes === false ? Array.from({ length: n }, (_, u) => ({ first: u, count: 1 })) : identicalUnits(p, groups, time);
  let pairs = 0;
  for (const c of classes) for (const g of groups) if (unitAllowed(p, c.first, g.first)) pairs++;
  if (pairs + 1 > SPREAD_LP_MAX_VARIABLES) {
    return {
      bound_s: work_over_speed_s,
      note: `memory-spread LP skipped (${pairs} variables > ${SPREAD_LP_MAX_VARIABLES}): used work over speed instead`,
      variables: pairs,
    };
  }
  // Times in a power-of-ten unit that puts the total work near 1e3..1e4 (well-conditioned rows);
  // memory rows are divided by the capacity so their coefficients are fractions of the device.
  const unit_s = timeUnit_s(work_over_speed_s * devices);
  const lp = new LpModel();
  lp.addVar('T', 0, Infinity);
  const load: Term[][] = groups.map((g) => [[g.count, 'T']]);
  const memory: Term[][] = groups.map(() => []);
  const resident = new Float64Array(groups.length);
  classes.forEach((c, j) => {
    const u = c.first;
    const assign: Term[] = [];
    groups.forEach((g, k) => {
      const d = g.first;
      if (!unitAllowed(p, u, d)) return;
      const f = lp.addVar(`f${j}_${k}`, 0, c.count);
      assign.push([1, f]);
      load[k]!.push([-unitTime(p, u, d) / unit_s, f]);
      const cap = p.capacity_bytes[d]! * g.count;
      if (Number.isFinite(cap) && cap > 0) memory[k]!.push([residentBytes(p, u) / cap, f]);
      resident[k]! += residentBytes(p, u) * c.count;
    });
    lp.addRow('one', assign, '=', c.count);
  });
  groups.forEach((g, k) => {
    lp.addRow('load', load[k]!, '>=', 0);
    // Skip capacity rows that cannot bind (everything allowed there fits at once).
    if (memory[k]!.length > 0 && resident[k]! > p.capacity_bytes[g.first]! * g.count) lp.addRow('mem', memory[k]!, '<=', 1);
  });
  lp.minimize([[1, 'T']]);
  const run = await runLp(lp, { max_iterations: SPREAD_LP_MAX_ITERATIONS });
  if (run.status === 'infeasible') {
    return { bound_s: Infinity, note: 'memory-spread LP infeasible: resident bytes exceed total capacity, no feasible placement', variables: pairs };
  }
  if (run.status !== 'optimal' || run.objective === null) {
    return {
      bound_s: work_over_speed_s,
      note: `memory-spread LP not solved (HiGHS status ${run.status_code}): used work over speed instead`,
      variables: pairs,
    };
  }
  // Shave a relative 1e-9: the simplex optimum carries round-off, and a bound must not overshoot.
  return { bound_s: Math.max(work_over_speed_s, run.objective * unit_s * (1 - 1e-9)), note: null, variables: pairs };
}

/**
 * Devices grouped by their capacity and every unit's time (-1 where not allowed), compared as
 * numbers against each group's first device instead of through a key string of 31k times per
 * device (0.1 s a variant on the DeepSeek-V3 shape). Two numbers print alike exactly when they are
 * equal (0 and -0 both print "0"; NaN prints "NaN").
 */
function identicalDevices(p: PlacementProblem, devices: number, time: (u: number, d: number) => number): { first: number; count: number }[] {
  const n = p.unit_names.length;
  const same = (a: number, b: number): boolean => a === b || (Number.isNaN(a) && Number.isNaN(b));
  const groups: { first: number; count: number }[] = [];
  for (let d = 0; d < devices; d++) {
    const g = groups.find(({ first: e }) => {
      if (!same(p.capacity_bytes[d]!, p.capacity_bytes[e]!)) return false;
      for (let u = 0; u < n; u++) if (!same(time(u, d), time(u, e))) return false;
      return true;
    });
    if (g) g.count++;
    else groups.push({ first: d, count: 1 });
  }
  return groups;
}

/**
 * Units grouped by their resident bytes and their time on each device group (-1 where not allowed),
 * in order of first appearance: each group's first unit and size. Compared as numbers (equal, or
 * both NaN: as their printed forms compare), found through a hash of their bits, not through a key
 * string per unit (a number printed per unit and group: 0.1 s a variant on the DeepSeek-V3 shape).
 */
function identicalUnits(
  p: PlacementProblem,
  devices: readonly { first: number }[],
  time: (u: number, d: number) => number,
): { first: number; count: number }[] {
  const n = p.unit_names.length;
  const width = devices.length + 1;
  // Each unit's numbers in a row: resident bytes, then its time on each device group.
  const row = new Float64Array(n * width);
  const bits = new Int32Array(row.buffer);
  for (let u = 0; u < n; u++) {
    row[u * width] = residentBytes(p, u);
    for (let k = 0; k < devices.length; k++) row[u * width + k + 1] = time(u, devices[k]!.first);
  }
  const same = (a: number, b: number): boolean => a === b || (Number.isNaN(a) && Number.isNaN(b));
  // (Zeros and NaNs hashed as one: -0 and 0 are equal, and so are NaNs here.)
  const hashOf = (u: number): number => {
    let h = 0;
    for (let j = u * width; j < (u + 1) * width; j++) {
      const x = row[j]!;
      const lo = x === 0 ? 0 : Number.isNaN(x) ? 1 : bits[2 * j]!;
      const hi = x === 0 ? 0 : Number.isNaN(x) ? 0x7ff80000 : bits[2 * j + 1]!;
      h = (Math.imul(h ^ lo, 0x9e3779b1) ^ hi) | 0;
      h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
    }
    return h;
  };
  const groups: { first: number; count: number }[] = [];
  const byHash = new Map<number, number[]>();
  for (let u = 0; u < n; u++) {
    const h = hashOf(u);
    let list = byHash.get(h);
    if (!list) byHash.set(h, (list = []));
    let g = -1;
    for (const c of list) {
      const v = groups[c]!.first;
      let equal = true;
      for (let j = 0; j < width && equal; j++) equal = same(row[u * width + j]!, row[v * width + j]!);
      if (equal) {
        g = c;
        break;
      }
    }
    if (g < 0) {
      g = groups.length;
      list.push(g);
      groups.push({ first: u, count: 0 });
    }
    groups[g]!.count++;
  }
  return groups;
}

/** A power of ten such that `span_s` measures between 1e3 and 1e4 of it (1 s when span is 0). */
export function timeUnit_s(span_s: number): number {
  if (!(span_s > 0) || !Number.isFinite(span_s)) return 1;
  return 10 ** Math.floor(Math.log10(span_s / 1000));
}

/**
 * Every weight a node reads is resident on some device for as long as the plan runs (host memory
 * included: a weight the accelerators cannot hold is read from there), so the bytes of the
 * initializers the graph's nodes read bound from below what any placement pins. When the rack's
 * memory together is less, no placement exists: an error said once the graph is verified, not
 * after the analysis and HEFT (the DeepSeek-V3 shape on rack-tiny: 11.9 s before, 3.9–4.2 s). Weights read
 * only inside subgraphs, Constant nodes, copies, state and activations are left out: a bound,
 * never an overcount.
 */
export function weightsExceedRack(index: GraphIndex, topology: Topology): HxcError | null {
  const graph = index.graph;
  // By value id, from the verified index: a name lookup per node input was 0.1 s a variant on the
  // DeepSeek-V3 shape. (Node inputs only, not the names subgraphs capture: see above.)
  const initializer = index.initializerIds;
  const read = new Uint8Array(index.valueNames.length);
  const { inputIds } = index;
  for (let k = 0; k < inputIds.length; k++) if (inputIds[k]! >= 0 && initializer[inputIds[k]!]) read[inputIds[k]!] = 1;
  // (Byte sizes are integers: the sum is exact in any order.)
  let bytes = 0;
  for (let id = 0; id < read.length; id++) if (read[id]) bytes += graph.initializers.get(index.valueNames[id]!)!.byte_size;
  let capacity = 0;
  for (const d of topology.devices) capacity += d.memory_capacity_bytes;
  if (bytes <= capacity) return null;
  return new HxcError(
    'HXC3001',
    `the model does not fit: the weights its nodes read take ${bytes} bytes (${formatBytes(bytes)}), the rack's ${topology.devices.length} devices hold ${capacity} (${formatBytes(capacity)}) together`,
    { hint: 'add devices or memory to the topology, or use a smaller dtype' },
  );
}

/**
 * The ops (in graph order) no device of the rack may run by its ops lists, as bad input: the model
 * and the rack do not go together, whatever the search. Said once the graph is verified, naming the
 * ops and a node of the first, rather than as a unit HEFT could place nowhere (whose hint, about
 * memory, did not fix it). Constant nodes are left out: their value travels with the programs that read it.
 */
export function opNoDeviceRuns(graph: Graph, topology: Topology): HxcError | null {
  const seen = new Set<string>();
  const ops: string[] = [];
  let first = '';
  for (const node of graph.nodes) {
    if (node.op === 'Constant' && node.domain === '') continue;
    const op = node.domain ? `${node.domain}.${node.op}` : node.op;
    if (seen.has(op)) continue;
    seen.add(op);
    if (topology.devices.some((d) => canRun(d, node.op, node.domain))) continue;
    if (ops.length === 0) first = node.name;
    ops.push(op);
  }
  if (ops.length === 0) return null;
  const named = ops.length <= 6 ? ops.join(', ') : `${ops.slice(0, 6).join(', ')} and ${ops.length - 6} more`;
  return new HxcError('HXC2308', `no device of the rack runs ${named} by its ops lists (the first in the model: node "${first}")`, {
    where: topology.source.file ?? `the built-in rack ${topology.name}`,
    hint: `add ${ops.length === 1 ? 'the op' : 'the ops'} to a device's ops.include (or drop ${ops.length === 1 ? 'it' : 'them'} from ops.exclude), or add a device that runs ${ops.length === 1 ? 'it' : 'them'}`,
  });
}
