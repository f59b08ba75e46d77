// Exact placement of small problems: a MILP for the minimum makespan of a DAG of units on
// heterogeneous devices with route-dependent communication, solved by HiGHS (milp-lp.ts). The
// answer is re-timed by the shared evaluator (problem.ts `evaluate`) so its makespan means the same
// as every other solver's; a solve stopped by its work limit (branch-and-bound nodes, simplex
// iterations — never seconds unless the user asks) still returns the best placement known and the
// proven bound, so the caller can report the gap, and the same inputs give the same answer.

import { cheapBounds, earliestStarts_s, fastestTimes_s, timeUnit_s, unitAllowed } from './bounds.js';
import { LpModel, runLp, type Term } from './milp-lp.js';
import { evaluate, type Placement, type PlacementProblem, unitPredecessors, residentBytes, unitTime, valuesReadBy } from './problem.js';

export interface ExactResult {
  placement: Placement | null;
  /** 'limit': the work limit (or a user's --time-limit) stopped HiGHS before it proved optimality. */
  status: 'optimal' | 'limit' | 'infeasible' | 'too-large';
  /** The evaluator's makespan of `placement`. */
  objective_s: number | null;
  /** Best proven lower bound on the optimal makespan (HiGHS's dual bound). */
  best_bound_s: number | null;
  /** (objective − bound) / objective. */
  gap: number | null;
  /** Wall time of the whole call: building, solving, decoding (for the bench; never in a plan). */
  solve_s: number;
  variables: number;
  constraints: number;
  /** Fallbacks and discrepancies worth telling the user (e.g. which incumbent was used). */
  notes: string[];
}

/**
 * Default work limit: branch-and-bound nodes × model size (variables + rows) at most 2·10⁵, between
 * 20 and 2000 nodes — a node costs HiGHS about 2 µs per column or row (7 ms for a 40-unit, 2-device
 * model), so a solve stays within about two seconds, and stops at the same node on every machine.
 */
export const EXACT_NODE_WORK = 200_000;
export const EXACT_MAX_NODES = 2_000;
export const EXACT_MAX_ITERATIONS = 2_000_000;

/** Under --solver auto, models above this many variables + rows are not built (their root node alone takes seconds). */
export const EXACT_AUTO_MAX_SIZE = 4_000;

export interface ExactOptions {
  /** Refuse (status too-large) above this many variables + rows (default: no cap). */
  max_size?: number;
  /** Branch-and-bound nodes (default EXACT_MAX_NODES). */
  max_nodes?: number;
  /** Simplex iterations (default EXACT_MAX_ITERATIONS). */
  max_iterations?: number;
  /** Wall-clock seconds for HiGHS, only when asked (`--time-limit`): the answer then depends on the machine. */
  time_limit_s?: number;
  /** A device per unit from another solver; used when feasible and shorter than the greedy's. */
  incumbent?: Int32Array;
  /** Its list priority (e.g. that placement's start_s), so it is timed as its solver timed it. */
  incumbent_priority?: Float64Array;
}

/** Above these the MILP is refused: the disjunctive model grows with units² and stops proving. */
export const EXACT_MAX_UNITS = 40;
export const EXACT_MAX_VARIABLES = 20_000;

/**
 * Memory rule shared with the MILP: on each device, resident bytes (weights + state) of its units
 * plus the largest activation among them fit in its capacity.
 */
export function memoryFeasible(p: PlacementProblem, device: Int32Array): boolean {
  const devices = p.device_ids.length;
  const resident = new Float64Array(devices);
  const activation = new Float64Array(devices);
  device.forEach((d, u) => {
    resident[d]! += residentBytes(p, u);
    activation[d] = Math.max(activation[d]!, p.activation_bytes[u]!);
  });
  for (let d = 0; d < devices; d++) if (resident[d]! + activation[d]! > p.capacity_bytes[d]!) return false;
  return true;
}

/**
 * Earliest-finish-time greedy: units in topological order, each on the allowed device with room
 * left where it would finish first (the evaluator's timing). Null when memory runs out.
 */
export function greedyPlacement(p: PlacementProblem): Placement | null {
  const n = p.unit_names.length;
  const devices = p.device_ids.length;
  const device = new Int32Array(n).fill(-1);
  const finish = new Float64Array(n);
  const free = new Float64Array(devices);
  const resident = new Float64Array(devices);
  const activation = new Float64Array(devices);
  const reads = valuesReadBy(p);
  for (const u of p.order) {
    let best = -1;
    let bestFinish = Infinity;
    for (let d = 0; d < devices; d++) {
      if (!unitAllowed(p, u, d)) continue;
      const needed = resident[d]! + residentBytes(p, u) + Math.max(activation[d]!, p.activation_bytes[u]!);
      if (needed > p.capacity_bytes[d]!) continue;
      let ready = 0;
      for (const v of reads[u]!) {
        const src = device[v.producer]!;
        ready = Math.max(ready, finish[v.producer]! + (src === d ? 0 : p.transfer_s(src, d, v.bytes)));
      }
      const f = Math.max(ready, free[d]!) + unitTime(p, u, d);
      if (f < bestFinish) [best, bestFinish] = [d, f];
    }
    if (best < 0) return null;
    device[u] = best;
    finish[u] = bestFinish;
    free[best] = bestFinish;
    resident[best]! += residentBytes(p, u);
    activation[best] = Math.max(activation[best]!, p.activation_bytes[u]!);
  }
  return evaluate(p, device);
}

/**
 * Minimum makespan by MILP — the disjunctive formulation of heterogeneous DAG scheduling with
 * communication (assignment binaries, start times, pairwise ordering binaries with big-M), as in
 * Davidović, Liberti, Maculan & Mladenović, "Towards the optimal solution of the multiprocessor
 * scheduling problem with communication delays" (MISTA 2007), and the HEFT literature's model
 * (Topcuoglu, Hariri & Wu 2002). See `buildMilp` for each constraint family.
 */
export async function solveExact(p: PlacementProblem, opts: ExactOptions): Promise<ExactResult> {
  const t0 = performance.now();
  const notes: string[] = [];
  const n = p.unit_names.length;
  const done = (r: Omit<ExactResult, 'solve_s' | 'notes'>): ExactResult => ({ ...r, solve_s: (performance.now() - t0) / 1000, notes });
  const none = { placement: null, objective_s: null, best_bound_s: null, gap: null };
  if (n > EXACT_MAX_UNITS) {
    notes.push(`${n} units > ${EXACT_MAX_UNITS}: MILP not built`);
    return done({ ...none, status: 'too-large', variables: 0, constraints: 0 });
  }
  for (let u = 0; u < n; u++) {
    if (!p.device_ids.some((_, d) => unitAllowed(p, u, d))) {
      notes.push(`unit '${p.unit_names[u]}' fits on no device (infinite time or memory)`);
      return done({ ...none, status: 'infeasible', variables: 0, constraints: 0 });
    }
  }

  // The incumbent: the caller's (if feasible) or the greedy's, whichever is shorter. It bounds the
  // start times (big-M), seeds HiGHS, and is the answer if HiGHS finds nothing better in time.
  let incumbent = greedyPlacement(p);
  if (incumbent === null) notes.push('greedy found no memory-feasible placement');
  if (opts.incumbent) {
    const given = opts.incumbent;
    const valid = given.length === n && given.every((d, u) => d >= 0 && d < p.device_ids.length && unitAllowed(p, u, d));
    if (!valid || !memoryFeasible(p, given)) notes.push('given incumbent is infeasible (device, time or memory): ignored');
    else {
      const pl = evaluate(p, Int32Array.from(given), opts.incumbent_priority);
      if (incumbent === null || pl.makespan_s < incumbent.makespan_s) incumbent = pl;
    }
  }
  const upper_s = incumbent ? incumbent.makespan_s : serialUpperBound_s(p);
  const milp = buildMilp(p, upper_s);
  const size = { variables: milp.lp.variableCount, constraints: milp.lp.constraintCount };
  if (size.variables > EXACT_MAX_VARIABLES) {
    notes.push(`${size.variables} MILP variables > ${EXACT_MAX_VARIABLES}: not solved`);
    return done({ ...none, status: 'too-large', ...size });
  }
  if (opts.max_size !== undefined && size.variables + size.constraints > opts.max_size) {
    notes.push(`${size.variables + size.constraints} MILP variables and rows > ${opts.max_size}: not solved (ask with --solver exact)`);
    return done({ ...none, status: 'too-large', ...size });
  }

  const nodes = opts.max_nodes ?? Math.max(20, Math.min(EXACT_MAX_NODES, Math.floor(EXACT_NODE_WORK / (size.variables + size.constraints))));
  const limits = {
    max_nodes: nodes,
    max_iterations: opts.max_iterations ?? EXACT_MAX_ITERATIONS,
    mip_rel_gap: 1e-6,
    ...(opts.time_limit_s !== undefined ? { time_limit_s: opts.time_limit_s } : {}),
  };
  const run = await runLp(milp.lp, limits, incumbent ? milp.startFrom(incumbent) : undefined);
  const bound_s = run.dual_bound === null ? null : Math.max(0, run.dual_bound * milp.unit_s);

  if (run.status === 'infeasible') {
    if (!incumbent) return done({ ...none, status: 'infeasible', ...size });
    notes.push('HiGHS reported infeasible although a feasible incumbent exists: returning the incumbent');
    return done({ placement: incumbent, status: 'limit', objective_s: incumbent.makespan_s, best_bound_s: null, gap: null, ...size });
  }
  let placement = incumbent;
  if (run.values) {
    const decoded = milp.decode(run.values);
    const milp_s = run.objective! * milp.unit_s;
    if (!memoryFeasible(p, decoded.device)) notes.push('decoded MILP placement breaks memory (tolerance?): kept the incumbent');
    else if (!placement || decoded.makespan_s <= placement.makespan_s) placement = decoded;
    if (run.status === 'optimal' && Math.abs(decoded.makespan_s - milp_s) > 1e-6 * Math.max(milp_s, 1e-30)) {
      notes.push(`evaluator makespan ${decoded.makespan_s} s differs from the MILP objective ${milp_s} s: reporting the evaluator's`);
    }
  }
  if (run.status === 'other') notes.push(`HiGHS stopped with model status ${run.status_code}`);
  if (!placement) return done({ ...none, best_bound_s: bound_s, status: 'limit', ...size });
  const objective_s = placement.makespan_s;
  const best_bound_s = bound_s === null ? null : Math.min(bound_s, objective_s);
  const gap = best_bound_s === null ? null : objective_s > 0 ? (objective_s - best_bound_s) / objective_s : 0;
  const status = run.status === 'optimal' ? 'optimal' : 'limit';
  return done({ placement, status, objective_s, best_bound_s, gap, ...size });
}

/**
 * An upper bound on the optimal makespan when no feasible placement is known: in any list
 * schedule, tracing back from the last unit alternates compute steps of distinct units and at
 * most n−1 transfers, so Σ_u max_d t[u,d] + (n−1)·max transfer bounds it.
 */
function serialUpperBound_s(p: PlacementProblem): number {
  const n = p.unit_names.length;
  const devices = p.device_ids.length;
  let compute = 0;
  for (let u = 0; u < n; u++) {
    let slowest = 0;
    for (let d = 0; d < devices; d++) if (unitAllowed(p, u, d)) slowest = Math.max(slowest, unitTime(p, u, d));
    compute += slowest;
  }
  let transfer = 0;
  for (const v of p.values)
    for (let a = 0; a < devices; a++)
      for (let b = 0; b < devices; b++) {
        const t = a === b ? 0 : p.transfer_s(a, b, v.bytes);
        if (Number.isFinite(t)) transfer = Math.max(transfer, t);
      }
  return compute + Math.max(0, n - 1) * transfer;
}

interface Milp {
  lp: LpModel;
  /** Seconds per LP time unit. */
  unit_s: number;
  startFrom(pl: Placement): Map<string, number>;
  decode(values: Map<string, number>): Placement;
}

/**
 * The model. Times are in a power-of-ten unit that puts the upper bound UB between 1e3 and 1e4
 * units (so big-M terms and durations stay within a few orders of magnitude whatever the problem's
 * scale — µs for a makespan of a few ms, 0.01 s for the HEFT example's greedy bound of 88 s).
 *
 *  x{u}_{d} ∈ {0,1}  unit u on device d (only allowed pairs)        Σ_d x = 1
 *  s{u} ∈ [ES_u, UB − fastest_u − tail_u]  start (ES/tail: fastest-time paths before/after u)
 *  C ∈ [max(critical path, work/devices), UB]  makespan; minimise C
 *  y{p}_{c}_{d}_{e} ∈ [0,1]  producer p on d and consumer c on e. Linearised by the tight
 *     "transportation" form Σ_e y_de = x[p,d], Σ_d y_de = x[c,e], which forces y = x[p,d]·x[c,e]
 *     at 0/1 points and is stronger than y ≥ x + x − 1; shared by all values from p to c.
 *  precedence per value v from p to each consumer c:
 *     s_c ≥ s_p + Σ_d t[p,d]·x[p,d] + Σ_{d≠e} T(d,e,bytes_v)·y_de   (route infinite ⇒ y_de = 0)
 *  no overlap, for pairs u,w not ordered by a precedence path and sharing an allowed device:
 *     o{u}_{w}, o{w}_{u} ∈ {0,1} (u before w / w before u), o_uw + o_wu ≤ 1,
 *     o_uw + o_wu ≥ x[u,d] + x[w,d] − 1 for each shared d (same device ⇒ ordered),
 *     s_u + Σ_d t[u,d]x[u,d] ≤ s_w + M_w(1 − o_uw) with M_w = UB − ES_w (valid since s_u + p_u ≤ UB)
 *  makespan: C ≥ s_u + Σ_d t[u,d]x[u,d] for sinks; C ≥ Σ_u t[u,d]x[u,d] per device (load; tightens
 *     the relaxation, valid since a device runs one unit at a time)
 *  memory (exact, no floor approximation): for each device d and unit u allowed there,
 *     Σ_w (weight+state)[w]·x[w,d] + activation[u]·x[u,d] ≤ capacity[d]
 *     i.e. resident bytes + the largest activation on d fit; rows divided by capacity.
 */
function buildMilp(p: PlacementProblem, upper_s: number): Milp {
  const n = p.unit_names.length;
  const devices = p.device_ids.length;
  const unit_s = timeUnit_s(upper_s);
  const UB = upper_s / unit_s;
  const allowed = p.unit_names.map((_, u) => p.device_ids.map((_, d) => d).filter((d) => unitAllowed(p, u, d)));
  const t = (u: number, d: number) => unitTime(p, u, d) / unit_s;
  const x = (u: number, d: number) => `x${u}_${d}`;
  const s = (u: number) => `s${u}`;
  const y = (a: number, c: number, d: number, e: number) => `y${a}_${c}_${d}_${e}`;
  const o = (u: number, w: number) => `o${u}_${w}`;
  const duration = (u: number): Term[] => allowed[u]!.map((d) => [t(u, d), x(u, d)] as const);

  const fastest = fastestTimes_s(p);
  const es = earliestStarts_s(p, fastest);
  const preds = unitPredecessors(p);
  const tail = new Float64Array(n);
  const order = Array.from(p.order);
  for (const u of [...order].reverse()) for (const q of preds[u]!) tail[q] = Math.max(tail[q]!, fastest[u]! + tail[u]!);
  const cheap = cheapBounds(p);

  const lp = new LpModel();
  lp.addVar('C', Math.min(UB, Math.max(cheap.critical_path_s, cheap.work_over_speed_s) / unit_s), UB);
  for (let u = 0; u < n; u++) {
    // Clamp so round-off in ES/tail can never make the bounds cross.
    const hi = Math.max(es[u]! / unit_s, UB - (fastest[u]! + tail[u]!) / unit_s);
    lp.addVar(s(u), es[u]! / unit_s, hi);
    for (const d of allowed[u]!) lp.addVar(x(u, d), 0, 1, true);
    lp.addRow(
      'one',
      allowed[u]!.map((d) => [1, x(u, d)] as const),
      '=',
      1,
    );
  }

  // Communication: one y block per (producer, consumer) pair, one precedence row per value.
  const pairKey = (a: number, c: number) => a * n + c;
  const pairValues = new Map<number, { a: number; c: number; bytes: number[] }>();
  for (const v of p.values)
    for (const c of v.consumers) {
      if (c === v.producer) continue;
      const k = pairKey(v.producer, c);
      if (!pairValues.has(k)) pairValues.set(k, { a: v.producer, c, bytes: [] });
      pairValues.get(k)!.bytes.push(v.bytes);
    }
  for (const { a, c, bytes } of pairValues.values()) {
    for (const d of allowed[a]!)
      for (const e of allowed[c]!) {
        const blocked = d !== e && bytes.some((b) => !Number.isFinite(p.transfer_s(d, e, b)));
        lp.addVar(y(a, c, d, e), 0, blocked ? 0 : 1);
      }
    for (const d of allowed[a]!) lp.addRow('yp', [[-1, x(a, d)], ...allowed[c]!.map((e) => [1, y(a, c, d, e)] as const)], '=', 0);
    for (const e of allowed[c]!) lp.addRow('yc', [[-1, x(c, e)], ...allowed[a]!.map((d) => [1, y(a, c, d, e)] as const)], '=', 0);
    for (const b of bytes) {
      const comm: Term[] = [];
      for (const d of allowed[a]!)
        for (const e of allowed[c]!) {
          const tr = d === e ? 0 : p.transfer_s(d, e, b);
          if (d !== e && Number.isFinite(tr) && tr > 0) comm.push([-tr / unit_s, y(a, c, d, e)]);
        }
      const negDuration = duration(a).map(([k, v]) => [-k, v] as const);
      lp.addRow('pre', [[1, s(c)], [-1, s(a)], ...negDuration, ...comm], '>=', 0);
    }
  }

  // Disjunctive no-overlap for pairs not already ordered by a path.
  const reach = p.unit_names.map(() => new Uint8Array(n));
  for (const u of [...order].reverse())
    for (const q of preds[u]!) {
      reach[q]![u] = 1;
      for (let w = 0; w < n; w++) if (reach[u]![w]) reach[q]![w] = 1;
    }
  const ordered: [number, number][] = [];
  for (let u = 0; u < n; u++)
    for (let w = u + 1; w < n; w++) {
      if (reach[u]![w] || reach[w]![u]) continue;
      const shared = allowed[u]!.filter((d) => allowed[w]!.includes(d));
      if (shared.length === 0) continue;
      ordered.push([u, w]);
      lp.addVar(o(u, w), 0, 1, true);
      lp.addVar(o(w, u), 0, 1, true);
      lp.addRow(
        'ord',
        [
          [1, o(u, w)],
          [1, o(w, u)],
        ],
        '<=',
        1,
      );
      for (const d of shared)
        lp.addRow(
          'same',
          [
            [1, o(u, w)],
            [1, o(w, u)],
            [-1, x(u, d)],
            [-1, x(w, d)],
          ],
          '>=',
          -1,
        );
      for (const [a, b] of [
        [u, w],
        [w, u],
      ] as const) {
        const M = UB - es[b]! / unit_s;
        lp.addRow('dis', [[1, s(a)], ...duration(a), [-1, s(b)], [M, o(a, b)]], '<=', M);
      }
    }

  const hasSuccessor = new Uint8Array(n);
  for (let u = 0; u < n; u++) for (const q of preds[u]!) hasSuccessor[q] = 1;
  for (let u = 0; u < n; u++) {
    if (!hasSuccessor[u]) lp.addRow('end', [[1, 'C'], [-1, s(u)], ...duration(u).map(([k, v]) => [-k, v] as const)], '>=', 0);
  }
  for (let d = 0; d < devices; d++) {
    const load: Term[] = [];
    for (let u = 0; u < n; u++) if (allowed[u]!.includes(d)) load.push([-t(u, d), x(u, d)]);
    if (load.length > 0) lp.addRow('load', [[1, 'C'], ...load], '>=', 0);
  }
  addMemoryRows(p, lp, allowed, x);
  lp.minimize([[1, 'C']]);

  const mid = (pl: Placement, u: number) => (pl.start_s[u]! + pl.finish_s[u]!) / 2;
  return {
    lp,
    unit_s,
    startFrom(pl) {
      const start = new Map<string, number>([['C', pl.makespan_s / unit_s]]);
      for (let u = 0; u < n; u++) {
        start.set(s(u), pl.start_s[u]! / unit_s);
        start.set(x(u, pl.device[u]!), 1);
      }
      for (const { a, c } of pairValues.values()) start.set(y(a, c, pl.device[a]!, pl.device[c]!), 1);
      for (const [u, w] of ordered) {
        if (pl.device[u] !== pl.device[w]) continue;
        start.set(mid(pl, u) <= mid(pl, w) ? o(u, w) : o(w, u), 1);
      }
      return start;
    },
    decode(values) {
      const device = new Int32Array(n);
      const mids = new Float64Array(n);
      for (let u = 0; u < n; u++) {
        device[u] = allowed[u]!.reduce((b, d) => ((values.get(x(u, d)) ?? 0) > (values.get(x(u, b)) ?? 0) ? d : b));
        mids[u] = (values.get(s(u)) ?? 0) + t(u, device[u]!) / 2;
      }
      // List priority from the MILP's timing: interval midpoints order each device's units as the
      // MILP does (non-overlap makes them strictly increasing when durations are positive) and
      // respect precedence; topological position breaks ties. Re-timing with `evaluate` then starts
      // every unit no later than the MILP did, so the makespan can only match or improve.
      const topo = new Int32Array(n);
      order.forEach((u, i) => (topo[u] = i));
      const ranked = [...order].sort((a, b) => mids[a]! - mids[b]! || topo[a]! - topo[b]!);
      const priority = new Float64Array(n);
      ranked.forEach((u, i) => (priority[u] = i));
      return evaluate(p, device, priority);
    },
  };
}

function addMemoryRows(p: PlacementProblem, lp: LpModel, allowed: number[][], x: (u: number, d: number) => string): void {
  for (let d = 0; d < p.device_ids.length; d++) {
    const cap = p.capacity_bytes[d]!;
    if (!Number.isFinite(cap) || cap <= 0) continue; // cap 0: unitAllowed already excludes bytes
    const here = allowed.flatMap((ds, u) => (ds.includes(d) ? [u] : []));
    const resident = here.reduce((sum, u) => sum + residentBytes(p, u), 0);
    const activation = here.reduce((m, u) => Math.max(m, p.activation_bytes[u]!), 0);
    if (resident + activation <= cap) continue; // everything allowed here fits at once: never binds
    const base: Term[] = here.filter((u) => residentBytes(p, u) > 0).map((u) => [residentBytes(p, u) / cap, x(u, d)]);
    // Units with no activation floor share one row; each other unit gets its own, which binds
    // only when it sits on d (and only if it could ever overflow).
    if (here.some((u) => p.activation_bytes[u]! === 0)) lp.addRow('mem', base, '<=', 1);
    for (const u of here) {
      const act = p.activation_bytes[u]!;
      if (act === 0 || resident + act <= cap) continue;
      const others = base.filter(([, v]) => v !== x(u, d));
      lp.addRow('mem', [...others, [(residentBytes(p, u) + act) / cap, x(u, d)]], '<=', 1);
    }
  }
}
