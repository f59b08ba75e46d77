// partition: assign every stage (split where a node needs a fallback device, or where the user's
// --assign pins differ) to a device, for an objective: `latency` (one request) or `throughput`
// (pipelined requests). Candidates come from HEFT, contention-free refinement, the exact MILP (small
// problems), the pipeline DP (throughput), the moe pass's expert placement, and the plans a user
// would write by hand (one device, one accelerator with fallbacks, the even pipeline split). Every
// candidate is judged by one model — the simulator with link contention (src/partition/judge.ts),
// the same that makes the plan's estimate — the best is polished by a judged local search, and
// nothing is shipped that a reported baseline beats (DESIGN.md, "Judging a plan"). Budgets count
// work (evaluations, simulations, MILP nodes), never seconds, so the plan is the same on an idle
// or a loaded machine. Every plan carries bounds and an explanation of each unit's placement,
// recomputed on the plan it ships.

import { ASSIGN, EXPERT_UNITS, MIN_SEQUENCES, OBJECTIVE, PIN_EXPERTS, SOLVER, TIME_LIMIT } from './partition-options.js';
import { ROUTING } from '../src/moe/routing.js';
import { narrowForModel } from '../src/partition/narrow.js';
import { modelNeeds } from './stage.js';
import { HxcError } from '../src/diag/diagnostics.js';
import { lowerBound, type LowerBound } from '../src/partition/bounds.js';
import { buildProblem, type Unit } from '../src/partition/build.js';
import { allOn, evenSplit, groupBy, onWithFallback } from '../src/partition/candidates.js';
import { EXACT_AUTO_MAX_SIZE, EXACT_MAX_UNITS, solveExact, type ExactResult } from '../src/partition/exact.js';
import { heft } from '../src/partition/heft.js';
import { Judge, memoryOf, type Verdict } from '../src/partition/judge.js';
import { pipelinePartition, type PipelineResult } from '../src/partition/pipeline.js';
import { residentBytes, unitPredecessors, unitTime, type Placement, type PlacementProblem } from '../src/partition/problem.js';
import { fitsMemory, localSearch, MakespanAssessor, refine, refineBudget, SEARCH_WORK, type Assessed } from '../src/partition/refine.js';
import { readAssignment } from '../src/plan/assignment.js';
import type { ExplainAlternative, ExplainEntry, JudgedPlan, KvCapacity, Objective } from '../src/plan/format.js';
import { explainPlacement } from '../src/partition/explain.js';
import { ranges, restrictToExpertDevices, uniformExperts } from '../src/partition/experts.js';
import { countMoves, kvMeter, liftKvCapacity } from '../src/partition/kv.js';

export type { ExplainAlternative, ExplainEntry, JudgedPlan, KvCapacity, Objective };
import { Migration, migrationReport, placeOrphans, type MigrationCost, type MigrationReport } from '../src/partition/migration.js';

export type { MigrationReport };
import type { Pass, PassContext } from '../src/pass/pass.js';
import { deviceClassKey, identicalAccelerators } from '../src/topology/index.js';
import type { StageResult } from './stage.js';
import { moePass } from './moe.js';
import { profilePass } from './profile.js';
import { replicatePass } from './replicate.js';
import { stagePass } from './stage.js';
import { statePass } from './state.js';
import { tpPass } from './tp.js';
import { verifyPass } from './verify.js';

export { EXACT_MAX_UNITS };

/** `value`: the objective's figure plus, when replanning, the migration's share (what candidates are ranked by). */
type Candidate = JudgedPlan & { placement: Placement; value: number; raw_value: number };

export interface ThroughputBound {
  /** No plan of these units on this rack exceeds it (requests/s over THROUGHPUT_REQUESTS requests). */
  upper_per_s: number;
  /** Least possible load of the busiest device per request (the memory-spread LP's bound). */
  device_load_s: number;
  /** Least possible latency of a request (critical path at fastest times). */
  critical_path_s: number;
}

export interface PartitionResult {
  objective: Objective;
  solver: 'heuristic' | 'exact';
  /** The candidate that won (and whether the judged polish improved it). */
  chosen: string;
  units: Unit[];
  unit_of: Int32Array;
  problem: PlacementProblem;
  /** The shipped placement: devices, and the start times that order each device's steps. */
  placement: Placement;
  /** Throughput is simulated with pipeline rounds (simulate.ts). */
  pipelined: boolean;
  judge: Judge;
  verdict: Verdict;
  lower_bound: LowerBound;
  throughput_bound: ThroughputBound;
  /** Every candidate considered, judged; the baselines plan.json reports are among them. */
  candidates: JudgedPlan[];
  baselines: {
    heft: JudgedPlan | null;
    single_device: JudgedPlan | null;
    fallback: JudgedPlan | null;
    even_split: JudgedPlan | null;
    tensor_parallel: JudgedPlan | null;
  };
  exact: ExactResult | null;
  pipeline: PipelineResult | null;
  search: { refine_moves: number; refine_sweeps: number; polish_moves: number; polish_sweeps: number; evaluations: number; simulations: number };
  kv: KvCapacity | null;
  /** Why each unit is where it is, on the shipped plan (computed when first asked: a pipeline variant that is not shipped never pays for it). */
  explain(): ExplainEntry[];
  /** Tensor-parallel splits (by MatMul name) whose parts the best plan ignoring the spread rule put on different devices. */
  tp_paid: string[];
  /** The shipped plan has no split, or every split's parts on different devices. */
  tp_eligible: boolean;
  /** Set by the variant driver: the pipeline variants weighed (with and without tensor parallelism). */
  variants?: { name: string; splits: number; latency_s: number; throughput_per_s: number; eligible: boolean; shipped: boolean }[];
  /** The stage cuts planned on (fine and coarse), when there were two: each one's best plan. */
  stage_cuts?: { stages: number; units: number; latency_s: number; throughput_per_s: number; shipped: boolean }[];
  /** When replanning (`hxc replan`): the migration from the running plan. */
  migration: MigrationReport | null;
}

/** Simulations the judged polish may run: about 1.5·10⁶ simulated steps (≈ 1.5 s), between 4 and 2000 runs. */
function polishSimulations(steps: number, requests: number): number {
  return Math.max(4, Math.min(2000, Math.floor(1.5e6 / Math.max(1, steps * requests))));
}

/** Rounds of the memory repair (each one schedule judged). */
const REPAIR_ROUNDS = 8;

/** HEFT on a restricted problem (a hint, a variant): null when it does not fit, as any candidate that does not. */
function heftOrNull(p: PlacementProblem): ReturnType<typeof heft> | null {
  try {
    return heft(p);
  } catch (err) {
    if (err instanceof HxcError && err.code === 'HXC3001') return null;
    throw err;
  }
}

/** Lower is better: a plan's latency, or minus its throughput, for the objective it was made for. */
export function planScore(r: Pick<PartitionResult, 'objective' | 'verdict' | 'migration'>): number {
  // When replanning, the migration's time is spread over the requests the plan serves (--amortize).
  const share = r.migration ? r.migration.seconds / r.migration.amortize_requests : 0;
  if (r.objective === 'latency') return r.verdict.latency_s + share;
  return r.verdict.throughput_per_s > 0 ? -1 / (1 / r.verdict.throughput_per_s + share) : 0;
}

/** Graphs up to this many nodes are planned on both stage cuts (each doubles the partition work). */
const BOTH_CUTS_MAX_NODES = 20_000;

/**
 * Plan on the stage pass's fine cut and, when it made one, its coarse cut; ship the better for the
 * objective (a tie goes to the fine cut). A cut that cannot be planned (the exact solver's unit
 * limit, memory) leaves the other.
 */
export async function partitionGraph(ctx: PassContext): Promise<PartitionResult> {
  narrowForModel(ctx, modelNeeds(ctx, ctx.has(moePass) ? Math.max(0, ...ctx.get(moePass).layers.map((l) => l.num_experts)) : 0));
  const stage = ctx.get(stagePass);
  const cuts: StageResult[] = [stage];
  if (stage.coarse && ctx.model.graph.nodes.length <= BOTH_CUTS_MAX_NODES) cuts.push({ ...stage, ...stage.coarse, coarse: null });
  let best: PartitionResult | null = null;
  let failed: unknown = null;
  const tried: { stages: number; units: number; latency_s: number; throughput_per_s: number; result: PartitionResult }[] = [];
  for (const cut of cuts) {
    let r: PartitionResult;
    try {
      r = await partitionOn(ctx, cut);
    } catch (err) {
      if (cuts.length > 1 && err instanceof HxcError && (err.code === 'HXC2403' || err.code === 'HXC3001')) {
        failed ??= err;
        continue;
      }
      throw err;
    }
    tried.push({ stages: cut.stages.length, units: r.units.length, latency_s: r.verdict.latency_s, throughput_per_s: r.verdict.throughput_per_s, result: r });
    if (!best || planScore(r) < planScore(best) - Math.abs(planScore(best)) * 1e-12) best = r;
  }
  if (!best) throw failed;
  if (tried.length > 1) best.stage_cuts = tried.map(({ result, ...t }) => ({ ...t, shipped: result === best }));
  return best;
}

async function partitionOn(ctx: PassContext, stages: StageResult): Promise<PartitionResult> {
  const objective: Objective = ctx.option(OBJECTIVE) ?? 'latency';
  const solverFlag = ctx.option(SOLVER) ?? 'auto';
  const profile = ctx.get(profilePass);
  const state = ctx.get(statePass);
  const { index } = ctx.get(verifyPass);
  const topology = ctx.topology();
  const deviceIds = topology.devices.map((d) => d.id);
  const assignFile = ctx.option(ASSIGN) ?? null;
  const pins = assignFile ? readAssignment(assignFile, index.nodeByName, ctx.model.graph.nodes.length, deviceIds) : undefined;
  const experts = expertUnits(ctx, stages);
  const built = buildProblem({
    graph: ctx.model.graph,
    index,
    topology,
    routes: ctx.routes(),
    costs: profile.nodes,
    efficiency: profile.efficiency,
    value_bytes_by_id: profile.value_bytes_by_id,
    stages: stages.stages.map((s) => ({ name: s.name, nodes: s.nodes })),
    state: state.objects.map((o) => ({ name: o.name, bytes: o.bytes, writers: o.writers })),
    ...experts,
    ...(pins ? { pins, pins_file: assignFile! } : {}),
  });
  const p = built.problem;
  const n = p.unit_names.length;
  const nd = p.device_ids.length;
  const links = topology.links.map((l) => ({ name: l.name, bandwidth_bytes_per_s: l.bandwidth_bytes_per_s, latency_s: l.latency_s, shared: l.shared }));
  const judge = new Judge(p, ctx.routes(), links);
  const R = judge.requests;
  // Lower is better: latency, or the simulated time of R requests (R / throughput).
  const valueFor = (v: { latency_s: number; throughput_per_s: number }): number =>
    objective === 'latency' ? v.latency_s : v.throughput_per_s > 0 ? R / v.throughput_per_s : Infinity;

  // Layers (runs of stages with one block name) and block moves: whole layers, a layer's experts, stages.
  const layerOfStage = new Int32Array(stages.stages.length);
  let layers = 0;
  stages.stages.forEach((s, k) => {
    if (k > 0 && s.name !== stages.stages[k - 1]!.name) layers++;
    layerOfStage[k] = layers;
  });
  layers++;
  const layerOfUnit = Int32Array.from(built.units, (u) => layerOfStage[u.stage]!);
  const groups = [
    ...groupBy(n, (u) => `layer${layerOfUnit[u]}`),
    ...groupBy(n, (u) => `stage${built.units[u]!.stage}`),
    ...groupBy(n, (u) => (built.units[u]!.expert !== undefined ? `experts${built.units[u]!.stage}` : null)),
  ].filter((g, k, all) => all.findIndex((h) => h.length === g.length && h.every((x, j) => x === g[j])) === k);

  // ---- Candidates, each judged by the simulator ----
  const assessor = new MakespanAssessor(p);
  const topoPriority = new Float64Array(n);
  p.order.forEach((u, k) => (topoPriority[u] = k));
  const judged: Candidate[] = [];
  const measureKv = kvMeter(p, state.context, state.batch);
  const hasState = state.objects.length > 0;
  // Tensor-parallel splits as unit lists: a plan with splits is eligible only if every split's
  // parts run on at least two devices (a split kept on one device is pure overhead).
  const tp = ctx.has(tpPass) ? ctx.get(tpPass) : null;
  const tpSplits = (tp?.splits ?? []).map((sp) => sp.parts.map((name) => built.unit_of[index.nodeByName.get(name)!]!));
  const spread = (device: Int32Array): boolean => tpSplits.every((parts) => parts.some((u) => device[u] !== device[parts[0]!]));
  const usedDevices = (device: Int32Array): string[] => [...new Set(device)].sort((a, b) => a - b).map((d) => p.device_ids[d]!);
  // Units the user pinned (--assign) keep their device in every candidate, baselines included.
  const pinnedTo = Int32Array.from(built.units, (u) => (pins ? pins[u.nodes[0]!]! : -1));
  // When replanning: the running plan's placement, and the migration's share of each request.
  const migration = ctx.options.replan
    ? new Migration(
        p,
        built.units.map((u) => u.nodes.map((i) => ctx.model.graph.nodes[i]!.name)),
        ctx.options.replan,
      )
    : null;
  const migrationShare = (mc: MigrationCost | undefined): number => (migration && mc ? (objective === 'latency' ? 1 : R) * migration.perRequest_s(mc) : 0);
  const consider = (name: string, label: string, given: Int32Array | null, priority?: Float64Array): Candidate | null => {
    if (!given) return null;
    const device = Int32Array.from(given, (d, u) => (pinnedTo[u]! >= 0 ? pinnedTo[u]! : d));
    if (!fitsMemory(p, device)) return null;
    for (let u = 0; u < n; u++) if (!Number.isFinite(unitTime(p, u, device[u]!))) return null;
    const placement = assessor.run(device, priority ?? topoPriority);
    const v = judge.verdict(placement);
    const mc = migration?.cost(device);
    const entry: Candidate = {
      name,
      label,
      devices: usedDevices(device),
      latency_s: v.latency_s,
      throughput_per_s: v.throughput_per_s,
      pipelined: v.pipelined,
      fits: v.fits,
      ...(hasState ? { kv_sequences: measureKv(device).sequences } : {}),
      ...(tpSplits.length > 0 ? { tp_spread: spread(device) } : {}),
      ...(migration && mc ? { migration: { ...mc, within_limits: migration.within(mc) } } : {}),
      placement,
      value: valueFor(v) + migrationShare(mc),
      raw_value: valueFor(v),
    };
    judged.push(entry);
    return entry;
  };

  /**
   * A candidate whose scheduled memory overflows (live activations, values waiting to be sent) is
   * repaired: from each device over its capacity, units move to the device that runs them next
   * fastest with room, least extra time per byte freed first — cold experts to host memory before
   * hot layers (KTransformers' split) — until the schedule fits. Each round is judged on the
   * schedule; at most REPAIR_ROUNDS rounds.
   */
  const repair = (start: Candidate | null, name: string, label: string): Candidate | null => {
    if (!start || start.fits) return null;
    const device = Int32Array.from(start.placement.device);
    for (let round = 0; round < REPAIR_ROUNDS; round++) {
      const placement = assessor.run(device, start.placement.start_s);
      const lat = judge.latency(placement);
      const memory = memoryOf(p, device, lat.schedule, lat.one);
      const over = memory.map((m, d) => ({ d, excess: m.total_bytes - m.capacity_bytes })).filter((x) => x.excess > 0);
      if (over.length === 0) return consider(name, label, device, placement.start_s);
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
          if (to >= 0) movable.push({ u, to, frees, needs, ratio: Math.max(0, unitTime(p, u, to) - unitTime(p, u, d)) / frees });
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
  };

  const h = heft(p);
  const heftEntry = consider('heft', 'HEFT (Topcuoglu et al. 2002)', h.device, h.start_s);
  repair(heftEntry, 'heft+repair', 'HEFT, repaired to fit memory');
  const r = refine(p, h, refineBudget(p, groups.length), 12345, groups);
  repair(
    consider('refined', 'HEFT + contention-free local search', r.placement.device, r.placement.start_s),
    'refined+repair',
    'refined, repaired to fit memory',
  );
  let exact: ExactResult | null = null;
  if (solverFlag === 'exact' || (solverFlag === 'auto' && n <= EXACT_MAX_UNITS && objective === 'latency')) {
    const timeLimit = ctx.option(TIME_LIMIT);
    exact = await solveExact(p, {
      incumbent: r.placement.device,
      incumbent_priority: r.placement.start_s,
      ...(solverFlag === 'auto' ? { max_size: EXACT_AUTO_MAX_SIZE } : {}),
      ...(timeLimit !== undefined ? { time_limit_s: Number(timeLimit) } : {}),
    });
    if (solverFlag === 'exact' && exact.status === 'too-large') {
      throw new HxcError('HXC2403', `--solver exact: ${exact.notes[0] ?? `at most ${EXACT_MAX_UNITS} units`}`, {
        where: '--solver',
        hint: `use --max-stages ${EXACT_MAX_UNITS} or --solver auto`,
      });
    }
    if (exact.placement) consider('exact', `MILP (HiGHS, ${exact.status})`, exact.placement.device, exact.placement.start_s);
  }
  let pipeline: PipelineResult | null = null;
  if (objective === 'throughput') {
    pipeline = pipelinePartition(p);
    if (Number.isFinite(pipeline.bottleneck_s)) consider('pipeline', `pipeline DP (${pipeline.chain})`, pipeline.device);
  }
  // The plans users write by hand.
  let single: Candidate | null = null;
  let fallback: Candidate | null = null;
  // One device of each class of identical devices stands for the class (64 H100s are one candidate).
  const representatives = [...new Map(topology.devices.map((d, k) => [deviceClassKey(d), k] as const).reverse()).values()].sort((a, b) => a - b);
  for (const d of representatives) {
    const e = consider(`single:${p.device_ids[d]}`, `everything on ${p.device_ids[d]}`, allOn(p, d));
    if (e && (!single || e.value < single.value * (1 - 1e-12))) single = e;
  }
  for (const d of representatives) {
    if (topology.devices[d]!.kind === 'cpu') continue;
    const e = consider(
      `fallback:${p.device_ids[d]}`,
      `everything on ${p.device_ids[d]}, what it cannot run on the fastest device that can`,
      onWithFallback(p, d),
    );
    if (e && (!fallback || e.value < fallback.value * (1 - 1e-12))) fallback = e;
  }
  const accelerators = identicalAccelerators(topology);
  const accelIdx = accelerators.map((d) => deviceIds.indexOf(d.id));
  const even =
    accelIdx.length >= 2
      ? consider(
          'even-split',
          `even pipeline split: ${layers} layers over ${accelerators
            .slice(0, Math.min(layers, accelerators.length))
            .map((d) => d.id)
            .join(', ')}`,
          evenSplit(p, layerOfUnit, layers, accelIdx),
        )
      : null;
  // Tensor parallelism over the NVLink-class group: parts round-robin over it, the rest on its first device.
  const tpGroupIdx = (tp?.group ?? []).map((id) => deviceIds.indexOf(id)).filter((d) => d >= 0);
  let tpGroup: Candidate | null = null;
  if (tpSplits.length > 0 && tpGroupIdx.length >= 2) {
    // The rest on the group's first device, or — when that does not hold it — split evenly over the group.
    const device = onWithFallback(p, tpGroupIdx[0]!) ?? allOn(p, tpGroupIdx[0]!) ?? evenSplit(p, layerOfUnit, layers, tpGroupIdx);
    if (device) {
      for (const parts of tpSplits)
        parts.forEach((u, j) => {
          if (Number.isFinite(unitTime(p, u, tpGroupIdx[j % tpGroupIdx.length]!))) device[u] = tpGroupIdx[j % tpGroupIdx.length]!;
        });
      tpGroup = consider(
        'tensor-parallel',
        `tensor parallelism: ${tp!.splits.length} MatMuls split ${tp!.k}-way over ${tp!.group.join(', ')}, the rest on ${tp!.group[0]}`,
        device,
      );
    }
  }
  // The moe pass's expert placement, as a hint: experts on its devices, the rest placed around them.
  const hint = moeHint(ctx, built.units, p, experts.expert_keys ?? []);
  // (A hint whose devices cannot hold their experts is no candidate.)
  const hh = hint ? heftOrNull(hint) : null;
  if (hh) consider('moe-hint', 'experts where the moe pass placed them, the rest by HEFT', hh.device, hh.start_s);
  // With --routing, the plan hxc would make without it (experts of a layer costed alike) is a
  // candidate too, judged with the routing's costs: measured routing never makes a plan slower.
  if (ctx.option(ROUTING) !== undefined) {
    const uniform = uniformExperts(p, built.units, experts.expert_keys ?? []);
    const hu = uniform ? heftOrNull(uniform) : null;
    if (uniform && hu) {
      const ru = refine(uniform, hu, Math.min(refineBudget(uniform, groups.length), 2 * (n + groups.length) * nd), 4321, groups);
      consider('uniform-routing', 'the plan made as if routing were uniform', ru.placement.device, ru.placement.start_s);
    }
  }
  if (judged.length === 0) {
    throw new HxcError('HXC3001', 'no candidate placement fits in memory', {
      hint: 'add devices or memory to the topology, lower --batch/--context, or use a smaller dtype',
    });
  }

  // ---- The best candidate, polished by a judged local search ----
  const asked = ctx.option(MIN_SEQUENCES) ?? null;
  const eligible = (c: Candidate): boolean =>
    c.fits && c.tp_spread !== false && c.migration?.within_limits !== false && (asked === null || (c.kv_sequences ?? Infinity) >= asked);
  const pick = (): Candidate => {
    let best = judged.find(eligible) ?? judged.find((c) => c.fits) ?? judged[0]!;
    for (const c of judged) if (eligible(c) && (c.value < best.value * (1 - 1e-12) || !eligible(best))) best = c;
    return best;
  };
  const maxLoad = (device: Int32Array): number => {
    const load = new Float64Array(nd);
    for (let u = 0; u < n; u++) load[device[u]!]! += unitTime(p, u, device[u]!);
    return Math.max(...load);
  };
  // Without a shared link the simulator's latency is the contention-free makespan the refinement
  // already minimised: a judged latency polish pays only where contention is judged.
  const contention = topology.links.some((l) => l.shared);
  let polishMoves = 0;
  let polishSweeps = 0;
  /** Judged local search from `start` for `goal` (exact pruning by bounds); the result joins the candidates. */
  const polish = (start: Candidate, goal: Objective, name: string, label: string): void => {
    // When replanning (goal = the objective), a move also changes the migration: its share joins the value.
    const counted = migration !== null && goal === objective;
    const startValue = (goal === 'latency' ? start.latency_s : R / start.throughput_per_s) + (counted ? migrationShare(start.migration) : 0);
    const steps = judge.schedule(start.placement, false).sim.devices.reduce((a, d) => a + d.steps.length, 0);
    const simCap = judge.simulations + polishSimulations(steps, goal === 'latency' ? 1 : R);
    const r = localSearch(
      p,
      { value: startValue, placement: start.placement },
      {
        groups,
        budget: goal === 'latency' && !contention && !counted ? 0 : Math.min((groups.length + n) * nd, Math.ceil(SEARCH_WORK / n)),
        assess: (device, priority, toBeat) => {
          if (judge.simulations >= simCap || !spread(device)) return null;
          const mc = counted ? migration.cost(device) : undefined;
          if (mc && !migration!.within(mc)) return null;
          const share = migrationShare(mc);
          const pl = assessor.run(device, priority);
          // Exact pruning: contention only lengthens a schedule, and R requests take at least R times
          // the busiest device's load — a move whose bound cannot beat the incumbent is not simulated.
          if (goal === 'latency') {
            if (pl.makespan_s + share >= toBeat * (1 - 1e-9)) return null;
            return { value: judge.latency(pl).latency_s + share, placement: pl };
          }
          if (Math.max(R * maxLoad(device), pl.makespan_s) + share >= toBeat * (1 - 1e-9)) return null;
          const t = judge.throughput(pl, false);
          return { value: (t.throughput_per_s > 0 ? R / t.throughput_per_s : Infinity) + share, placement: pl };
        },
      },
    );
    polishMoves += r.moves;
    polishSweeps += r.sweeps;
    if (r.moves > 0) consider(name, label, r.placement.device, r.placement.start_s);
  };
  const bestFor = (goal: Objective): Candidate => {
    let best = judged.find(eligible) ?? judged[0]!;
    for (const c of judged) {
      const [a, b] = goal === 'latency' ? [c.latency_s, best.latency_s] : [-c.throughput_per_s, -best.throughput_per_s];
      if (eligible(c) && (a < b - Math.abs(b) * 1e-12 || !eligible(best))) best = c;
    }
    return best;
  };
  let surrogateMoves = 0;
  let surrogateSweeps = 0;
  if (objective === 'throughput') {
    // The plan the latency objective would ship is a throughput candidate too (a request at a time
    // is a pipeline of one stage), then a contention-free surrogate of pipelined throughput (one
    // request's makespan plus R−1 bottleneck loads) searches from the best so far.
    const fastest = bestFor('latency');
    polish(fastest, 'latency', `${fastest.name}+latency-polish`, `${fastest.label}, polished for latency`);
    const from = pick();
    const surrogate = (device: Int32Array, priority: Float64Array): Assessed => {
      const pl = assessor.run(device, priority);
      return { value: pl.makespan_s + (R - 1) * maxLoad(device), placement: pl };
    };
    const s0 = surrogate(from.placement.device, from.placement.start_s);
    const sr = localSearch(p, s0, {
      groups,
      budget: Math.floor(refineBudget(p, groups.length) / 2),
      kicks: true,
      seed: 777,
      assess: (d, pr) => surrogate(d, pr),
    });
    surrogateMoves = sr.moves;
    surrogateSweeps = sr.sweeps;
    consider('refined-throughput', 'local search on the pipelined-throughput surrogate', sr.placement.device, sr.placement.start_s);
  }
  // ---- Replanning: search from the running plan, counting the migration ----
  let running: Candidate | null = null;
  let fresh: Candidate | null = null;
  if (migration) {
    // The best plan from scratch (the objective alone), before any candidate that counts moves.
    fresh = judged
      .filter((c) => c.fits && c.tp_spread !== false)
      .reduce<Candidate | null>((a, c) => (!a || c.raw_value < a.raw_value * (1 - 1e-12) ? c : a), null);
    const start = placeOrphans(p, migration.previous, fresh?.placement.device ?? null, pinnedTo);
    running = consider(
      'running',
      'the running plan (units whose device is gone placed where they fit fastest)',
      start,
      migration.priority(p.unit_names, p.order, unitPredecessors(p)),
    );
    // Contention-free search with the migration's share, from the running plan and from the fresh one.
    const assessMoves = (device: Int32Array, priority: Float64Array): Assessed | null => {
      const mc = migration.cost(device);
      if (!migration.within(mc) || !spread(device)) return null;
      const pl = assessor.run(device, priority);
      return { value: (objective === 'latency' ? pl.makespan_s : pl.makespan_s + (R - 1) * maxLoad(device)) + migrationShare(mc), placement: pl };
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
          consider(
            `replan-steepest-${step}`,
            `the running plan after its ${step} most valuable move${step === 1 ? '' : 's'}`,
            device,
            current.placement.start_s,
          );
      }
      if (current) consider('replan-steepest', 'the running plan after every move that pays back, most valuable first', device, current.placement.start_s);
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
        consider(
          `replan-from-${name}`,
          `local search from the ${name} plan, counting the migration (amortised over ${migration.amortize} requests)`,
          sr.placement.device,
          sr.placement.start_s,
        );
    }
  }
  const best = pick();
  polish(best, objective, `${best.name}+polish`, `${best.label}, polished by the judged local search`);
  let chosen = pick();
  if (migration) {
    // A plan that moves more must be worth it: the fewest moves among the plans within --min-gain of the best.
    const reach = chosen.value * (1 + migration.minGain);
    for (const c of judged) {
      if (!eligible(c) || c.value > reach) continue;
      const [mc, mb] = [c.migration!.moves, chosen.migration!.moves];
      if (mc < mb || (mc === mb && c.value < chosen.value * (1 - 1e-12))) chosen = c;
    }
  }

  // ---- KV capacity: reported; raised only when asked (--min-sequences) ----
  let kv: KvCapacity | null = null;
  if (state.objects.length > 0) {
    if (asked !== null && !eligible(chosen)) {
      // Start from the candidate that holds the most sequences within a little of the best, then lift.
      const estimate = (device: Int32Array, priority: Float64Array): { value: number; placement: Placement } => {
        const pl = assessor.run(device, priority);
        return { value: objective === 'latency' ? pl.makespan_s : pl.makespan_s + (R - 1) * maxLoad(device), placement: pl };
      };
      const lifted = liftKvCapacity(p, pick().placement, asked, measureKv, estimate);
      const entry = consider('kv-lift', `KV capacity raised towards ${asked} sequences`, lifted.device, lifted.start_s);
      chosen = pick();
      if (entry && !eligible(chosen)) chosen = entry;
    }
    kv = measureKv(chosen.placement.device);
    kv.asked = asked;
    const unlifted = asked === null ? chosen : judged.filter((c) => c.fits).reduce((a, c) => (c.value < a.value * (1 - 1e-12) ? c : a), chosen);
    if (unlifted !== chosen) {
      kv.before = { sequences: unlifted.kv_sequences ?? 0, latency_s: unlifted.latency_s, throughput_per_s: unlifted.throughput_per_s };
      kv.after = { sequences: kv.sequences, latency_s: chosen.latency_s, throughput_per_s: chosen.throughput_per_s };
      kv.moves = countMoves(unlifted.placement.device, chosen.placement.device);
    }
    if (asked !== null && kv.sequences < asked) {
      ctx.diagnostics.warn('HXC1107', `the KV cache holds ${kv.sequences} sequences of ${state.context} tokens, fewer than the ${asked} asked`, {
        hint: 'add devices or memory, lower --context, or use a smaller KV dtype',
      });
    }
  }

  const verdict = judge.verdict(chosen.placement, true);
  const lb = await lowerBound(p);
  const throughput_bound: ThroughputBound = {
    upper_per_s: R / Math.max(R * lb.memory_spread_s, lb.critical_path_s),
    device_load_s: lb.memory_spread_s,
    critical_path_s: lb.critical_path_s,
  };
  const strip = (e: Candidate | null): JudgedPlan | null => {
    if (!e) return null;
    const { placement: _p, value: _v, raw_value: _r, ...plan } = e;
    return plan;
  };
  const placement: Placement = { ...chosen.placement, makespan_s: verdict.latency_s };
  // The splits that paid: spread in the best plan that was free to keep them on one device.
  const free = judged
    .filter((c) => c.fits && (asked === null || (c.kv_sequences ?? Infinity) >= asked))
    .reduce<Candidate | null>((a, c) => (!a || c.value < a.value * (1 - 1e-12) ? c : a), null);
  const tp_paid = free
    ? tpSplits.flatMap((parts, k) =>
        parts.some((u) => free.placement.device[u] !== free.placement.device[parts[0]!]) ? (tp!.splits[k]!.covers ?? [tp!.splits[k]!.node]) : [],
      )
    : [];
  return {
    objective,
    solver: chosen.name.startsWith('exact') ? 'exact' : 'heuristic',
    chosen: chosen.name,
    units: built.units,
    unit_of: built.unit_of,
    problem: p,
    placement,
    pipelined: objective === 'throughput' ? verdict.pipelined : false,
    judge,
    verdict,
    lower_bound: lb,
    throughput_bound,
    candidates: judged.map((e) => strip(e)!),
    baselines: { heft: strip(heftEntry), single_device: strip(single), fallback: strip(fallback), even_split: strip(even), tensor_parallel: strip(tpGroup) },
    exact,
    pipeline,
    search: {
      refine_moves: r.moves + surrogateMoves,
      refine_sweeps: r.rounds + surrogateSweeps,
      polish_moves: polishMoves,
      polish_sweeps: polishSweeps,
      evaluations: assessor.evaluations,
      simulations: judge.simulations,
    },
    kv,
    explain: once(() =>
      explainPlacement(
        p,
        built.units,
        stages.stages.map((s) => s.name),
        placement,
        verdict,
        judge,
        objective,
        assessor,
        pins,
        ctx.model.graph,
        topology.devices,
      ),
    ),
    tp_paid,
    tp_eligible: spread(chosen.placement.device),
    migration: migration ? migrationReport(migration, chosen, running, fresh, built.units, objective) : null,
  };
}

/** A function computing its value on the first call only. */
function once<T>(f: () => T): () => T {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = f();
      done = true;
    }
    return value;
  };
}

interface ExpertSets {
  experts?: number[][];
  expert_names?: string[];
  expert_devices?: (string[] | null)[];
  /** Per expert set, the experts it computes (`moe3.expert5`; a copy names its original; none for tensor-parallel parts). */
  expert_keys?: string[][];
}

/**
 * The experts of routed MoE layers, as units of their own (the moe pass found them). With
 * `--expert-units N` and more than N experts in the model (DeepSeek-V3: 14,848), a layer's experts
 * are grouped: those of one stage the moe pass put on the same devices, ordered by their expected tokens, in
 * runs of ceil(experts / N), one unit per run. Experts of a layer are interchangeable until routing
 * tells them apart, and the moe pass's placement has told them apart; grouping trades the
 * partitioner's freedom per expert (measured on the DeepSeek-V3 shape, rack-8gpu: a 3% longer
 * estimate) for a placement problem, a schedule and a program per group (30,063 → 7,292 units,
 * 29,882 → 7,111 program files, 97 → 86 s).
 */
function expertUnits(ctx: PassContext, stages: StageResult): ExpertSets {
  const experts: number[][] = [];
  const expert_names: string[] = [];
  const expert_devices: (string[] | null)[] = [];
  const expert_keys: string[][] = [];
  // Experts are free units unless the user pins them to the moe pass's devices (--pin-experts);
  // otherwise that placement is one candidate among others (moeHint).
  const hinted = moeDevices(ctx);
  const pinned = ctx.option(PIN_EXPERTS) === true;
  const devicesOf = (key: string): string[] | null => (pinned ? (hinted.get(key) ?? null) : null);
  if (ctx.has(moePass)) {
    const moe = ctx.get(moePass);
    const layers = moe.layers.filter((l) => l.form === 'sparse' || l.form === 'dense');
    const total = layers.reduce((s, l) => s + l.experts.length, 0);
    const budget = ctx.option(EXPERT_UNITS) ?? Infinity;
    const size = Math.ceil(total / budget);
    const tokens = expectedTokens(ctx);
    // A group stays within one stage (a stage cut between its experts would cut the group).
    const stageOf = new Int32Array(size > 1 ? ctx.model.graph.nodes.length : 0);
    if (size > 1)
      stages.stages.forEach((st, k) => {
        for (const i of st.nodes) stageOf[i] = k;
      });
    for (const l of layers) {
      const key = (e: number): string => `moe${l.layer}.expert${e}`;
      if (size <= 1) {
        for (const e of l.experts) {
          experts.push(e.nodes);
          expert_names.push(key(e.expert));
          expert_devices.push(devicesOf(key(e.expert)));
          expert_keys.push([key(e.expert)]);
        }
        continue;
      }
      // Buckets by the moe pass's devices, each ordered by expected tokens (hot first), then cut
      // into runs of near-equal length.
      const buckets = new Map<string, typeof l.experts>();
      for (const e of l.experts) {
        const b = `${stageOf[e.nodes[0]!]} ${[...(hinted.get(key(e.expert)) ?? [])].sort().join(',')}`;
        (buckets.get(b) ?? buckets.set(b, []).get(b)!).push(e);
      }
      for (const b of [...buckets.keys()].sort((x, y) => parseInt(x, 10) - parseInt(y, 10) || (x < y ? -1 : x > y ? 1 : 0))) {
        const list = buckets.get(b)!.sort((x, y) => (tokens.get(key(y.expert)) ?? 0) - (tokens.get(key(x.expert)) ?? 0) || x.expert - y.expert);
        const runs = Math.ceil(list.length / size);
        for (let r = 0, at = 0; r < runs; r++) {
          const len = Math.floor(list.length / runs) + (r < list.length % runs ? 1 : 0);
          const run = list.slice(at, at + len);
          at += len;
          experts.push(run.flatMap((e) => e.nodes));
          expert_names.push(`moe${l.layer}.experts${ranges(run.map((e) => e.expert))}`);
          expert_devices.push(devicesOf(key(run[0]!.expert)));
          expert_keys.push(run.map((e) => key(e.expert)));
        }
      }
    }
  }
  // Expert replicas: each copy its own unit, so copies can go to different devices.
  if (ctx.has(replicatePass)) {
    const byName = ctx.get(verifyPass).index.nodeByName;
    for (const r of ctx.get(replicatePass).replicated)
      r.replicas.forEach((names, j) => {
        experts.push(names.map((n) => byName.get(n)!));
        expert_names.push(`${r.key}.copy${j}`);
        expert_devices.push(devicesOf(r.key));
        expert_keys.push([r.key]);
      });
  }
  // Tensor-parallel parts are independent too: each its own unit, so they can go to k devices.
  if (ctx.has(tpPass)) {
    const byName = ctx.get(verifyPass).index.nodeByName;
    for (const s of ctx.get(tpPass).splits)
      s.parts.forEach((part, j) => {
        // A row-parallel pair's shard is one unit: its column parts, elementwise chain and row part.
        experts.push((s.members?.[j] ?? [part]).map((name) => byName.get(name)!));
        expert_names.push(`tp${j}`);
        expert_devices.push(null);
        expert_keys.push([]);
      });
  }
  return experts.length > 0 ? { experts, expert_names, expert_devices, expert_keys } : {};
}

/** Per expert key, the tokens per step the moe pass expects it to take (summed over its replicas). */
function expectedTokens(ctx: PassContext): Map<string, number> {
  const m = new Map<string, number>();
  const plan = ctx.has(moePass) ? ctx.get(moePass).plan : null;
  if (!plan) return m;
  for (const l of plan.layers)
    for (const rep of l.placements.hxc.replicas) {
      const key = `moe${l.layer}.expert${rep.expert}`;
      m.set(key, (m.get(key) ?? 0) + rep.tokens);
    }
  return m;
}

/** The problem with each expert unit restricted to the moe pass's devices for it (null without a moe plan, or with --pin-experts). */
function moeHint(ctx: PassContext, units: Unit[], p: PlacementProblem, keys: string[][]): PlacementProblem | null {
  if (ctx.option(PIN_EXPERTS)) return null;
  const devices = moeDevices(ctx);
  return devices.size === 0 ? null : restrictToExpertDevices(units, p, keys, devices);
}

/** Per expert key (`moe3.expert5`), the devices the moe pass gave its replicas. */
function moeDevices(ctx: PassContext): Map<string, string[]> {
  const m = new Map<string, string[]>();
  if (!ctx.has(moePass)) return m;
  const plan = ctx.get(moePass).plan;
  if (!plan) return m;
  for (const l of plan.layers)
    for (const rep of l.placements.hxc.replicas) {
      const key = `moe${l.layer}.expert${rep.expert}`;
      const id = plan.devices[rep.device]!;
      const list = m.get(key) ?? m.set(key, []).get(key)!;
      if (!list.includes(id)) list.push(id);
    }
  return m;
}

const fmt = (x: number): string => (x === 0 ? '0' : Math.abs(x) >= 1e4 || Math.abs(x) < 1e-2 ? x.toExponential(4) : String(Number(x.toFixed(4))));

export const partitionPass: Pass<PartitionResult, Promise<PartitionResult>> = {
  name: 'partition',
  summary:
    'assign stages to devices: candidates (HEFT, refinement, MILP, pipeline DP, hand-written baselines) judged by the contention simulator, the best polished; bounds and explanations',
  requires: ['verify', 'bind', 'profile', 'state', 'stage', 'moe'],
  options: [OBJECTIVE, SOLVER, TIME_LIMIT, ASSIGN, MIN_SEQUENCES, PIN_EXPERTS, EXPERT_UNITS, ROUTING],
  run: partitionGraph,
  statistics(r) {
    return {
      units: r.units.length,
      objective: r.objective,
      chosen: r.chosen,
      'latency s': fmt(r.verdict.latency_s),
      'throughput /s': fmt(r.verdict.throughput_per_s),
      'lower bound s': fmt(r.lower_bound.lower_bound_s),
      candidates: r.candidates.length,
      'refine moves': r.search.refine_moves,
      'polish moves': r.search.polish_moves,
      evaluations: r.search.evaluations,
      simulations: r.search.simulations,
    };
  },
  dump(r) {
    const lines = [
      `objective=${r.objective} chosen=${r.chosen} latency_s=${fmt(r.verdict.latency_s)} throughput_per_s=${fmt(r.verdict.throughput_per_s)} lower_bound_s=${fmt(r.lower_bound.lower_bound_s)} throughput_upper_per_s=${fmt(r.throughput_bound.upper_per_s)}`,
    ];
    for (const c of r.candidates)
      lines.push(
        `candidate ${c.name}: latency_s=${fmt(c.latency_s)} throughput_per_s=${fmt(c.throughput_per_s)}${c.fits ? '' : ' (does not fit)'} on ${c.devices.join(',')}`,
      );
    if (r.exact) lines.push(`exact: status=${r.exact.status} objective_s=${r.exact.objective_s === null ? '-' : fmt(r.exact.objective_s)}`);
    if (r.kv) lines.push(`kv: sequences=${r.kv.sequences} context=${r.kv.context} moves=${r.kv.moves}`);
    for (const e of r.explain()) lines.push(`${e.unit} -> ${e.device} finish_s=${fmt(e.finish_s)} (${e.reason})`);
    return lines.join('\n') + '\n';
  },
  nodeNote(r, _ctx, i) {
    const u = r.unit_of[i]!;
    return u >= 0 ? `on ${r.problem.device_ids[r.placement.device[u]!]}` : undefined;
  },
};
