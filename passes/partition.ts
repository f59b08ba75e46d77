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
import { lowerBound, withMilpBound } from '../src/partition/bounds.js';
import { buildProblem, unitPin } from '../src/partition/build.js';
import { allOn, evenSplit, groupBy, onWithFallback, stepOrder } from '../src/partition/candidates.js';
import { EXACT_AUTO_MAX_SIZE, EXACT_MAX_UNITS, memoryFeasible, solveExact, type ExactResult } from '../src/partition/exact.js';
import { heftOrError, heftOrNull, type HeftResult } from '../src/partition/heft.js';
import { placedPins } from '../src/partition/segments.js';
import { Judge, shippedOrders, type LatencyVerdict, type Verdict } from '../src/partition/judge.js';
import { pipelinePartition, type PipelineResult } from '../src/partition/pipeline.js';
import { onDevices, unitTime, type Placement, type PlacementProblem } from '../src/partition/problem.js';
import { fitsMemory, MakespanAssessor, refine, refineBudget } from '../src/partition/refine.js';
import { readAssignment } from '../src/plan/assignment.js';
import type { JudgedPlan, KvCapacity, Objective } from '../src/plan/format.js';
import { explainPlacement, type MoveScan } from '../src/partition/explain.js';
import { CandidatePool, moveBar, relieve, type Candidate } from '../src/partition/pool.js';
import { uniformExperts } from '../src/partition/experts.js';
import { countMoves, kvMeter, liftKvCapacity } from '../src/partition/kv.js';
import { Migration, migrationReport } from '../src/partition/migration.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import { deviceClassKey, identicalAccelerators, type Topology } from '../src/topology/index.js';
import type { StageResult } from './stage.js';
import { moePass } from './moe.js';
import { profilePass } from './profile.js';
import { stagePass } from './stage.js';
import { statePass } from './state.js';
import { HUGE_GRAPH_NODES, tpPass } from './tp.js';
import { replicatePass } from './replicate.js';
import { verifyPass } from './verify.js';
import { expertUnits, moeHint, splitAndCopyNodes } from './partition-experts.js';
import type { PartitionDecision, PartitionResult, ThroughputBound } from '../src/partition/result.js';
import { dumpNumber } from '../src/util/format.js';

export type { ExplainAlternative, ExplainEntry, JudgedPlan, KvCapacity, Objective } from '../src/plan/format.js';
export type { MigrationReport } from '../src/partition/migration.js';
export type { PartitionResult, ThroughputBound } from '../src/partition/result.js';

export { EXACT_MAX_UNITS };

/** Lower is better: a plan's latency, or minus its throughput, for the objective it was made for. */
export function planScore(r: Pick<PartitionResult, 'objective' | 'verdict' | 'migration'>): number {
  // When replanning, the migration's time is spread over the requests the plan serves (--amortize).
  const share = r.migration ? r.migration.seconds / r.migration.amortize_requests : 0;
  if (r.objective === 'latency') return r.verdict.latency_s + share;
  const throughput = r.verdict.throughput_per_s ?? 0; // (only a latency plan is weighed by latency alone)
  return throughput > 0 ? -1 / (1 / throughput + share) : 0;
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
  // A replan plans on the cut the running plan shipped on (the fine one when it weighed one): the
  // running plan is judged once, on its own units (each cut judged it differently: a coarse unit
  // runs as one block what the running plan interleaved with other devices' work).
  if (ctx.options.replan && cuts.length > 1) {
    const keep = cuts.find((c) => c.stages.length === ctx.options.replan!.cut_stages) ?? cuts[0]!;
    cuts.splice(0, cuts.length, keep);
  }
  const replay = ctx.options.partition_replay;
  if (replay) {
    const r = await partitionOn(ctx, cuts[replay.cut]!, replay.cut, replay);
    if (replay.stage_cuts) r.stage_cuts = replay.stage_cuts;
    return r;
  }
  let best: PartitionResult | null = null;
  let failed: unknown = null;
  const tried: { stages: number; units: number; latency_s: number; throughput_per_s: number | null; result: PartitionResult }[] = [];
  for (const cut of cuts) {
    let r: PartitionResult;
    try {
      // (A variant let go leaves its polish only when it plans one cut: cuts are weighed polished.)
      r = await partitionOn(ctx, cut, cuts.indexOf(cut), undefined, ctx.options.defer_polish === true && cuts.length === 1);
    } catch (err) {
      if (cuts.length > 1 && err instanceof HxcError && err.code === 'HXC2403' && ctx.option(SOLVER) === 'exact') {
        // --solver exact on a cut past the MILP's size: that cut is planned by the heuristics, so
        // the plan the user would get with no flag is not lost to the coarse cut the MILP can take.
        ctx.diagnostics.warn(
          'HXC1116',
          `--solver exact: the cut into ${cut.stages.length} stages is past the MILP's size (${err.message.replace(/^--solver exact: /, '')}); planned there by the heuristics, the better of the cuts ships`,
          { where: '--solver' },
        );
        r = await partitionOn(ctx, cut, cuts.indexOf(cut), undefined, false, true);
      } else if (cuts.length > 1 && err instanceof HxcError && (err.code === 'HXC2403' || err.code === 'HXC3001')) {
        failed ??= err;
        continue;
      } else throw err;
    }
    tried.push({ stages: cut.stages.length, units: r.units.length, latency_s: r.verdict.latency_s, throughput_per_s: r.verdict.throughput_per_s, result: r });
    if (!best || planScore(r) < planScore(best) - Math.abs(planScore(best)) * 1e-12) best = r;
  }
  if (!best) throw failed;
  for (const w of best.said) ctx.diagnostics.warn(w.code, w.message, w.info);
  if (tried.length > 1) best.stage_cuts = tried.map(({ result, ...t }) => ({ ...t, shipped: result === best }));
  return best;
}

/** Accelerator kinds: what holds a large model's weights (host memory is the fallback). */
const HOLDS_WEIGHTS = new Set(['gpu', 'accel', 'dataflow']);

/**
 * The numbers of first hosts (file order) to plan HEFT on besides the whole rack: from the fewest
 * whose accelerators hold every weight and state byte, doubling, below all of them; none on a
 * rack of one host.
 */
function hostPrefixes(topology: Topology, p: PlacementProblem): number[] {
  const hosts = topology.hosts;
  if (hosts.length < 2) return [];
  let bytes = 0;
  for (let u = 0; u < p.unit_names.length; u++) bytes += p.weight_bytes[u]! + p.state_bytes[u]!;
  const byId = new Map(topology.devices.map((d) => [d.id, d]));
  let held = 0;
  let first = 0;
  while (first < hosts.length && held < bytes) {
    for (const id of hosts[first]!.devices) {
      const d = byId.get(id);
      if (d && HOLDS_WEIGHTS.has(d.kind)) held += d.memory_capacity_bytes;
    }
    first++;
  }
  const counts: number[] = [];
  for (let k = Math.max(1, first); k < hosts.length; k *= 2) counts.push(k);
  return counts;
}

async function partitionOn(
  ctx: PassContext,
  stages: StageResult,
  cut: number,
  replay?: PartitionDecision,
  deferAllowed = false,
  heuristicOnly = false,
): Promise<PartitionResult> {
  const objective: Objective = ctx.option(OBJECTIVE) ?? 'latency';
  const solverFlag = heuristicOnly ? 'heuristic' : (ctx.option(SOLVER) ?? 'auto');
  const profile = ctx.get(profilePass);
  const state = ctx.get(statePass);
  const { index } = ctx.get(verifyPass);
  const topology = ctx.topology();
  const deviceIds = topology.devices.map((d) => d.id);
  const assignFile = ctx.option(ASSIGN) ?? null;
  const assigned = assignFile
    ? readAssignment(assignFile, index.nodeByName, ctx.model.graph.nodes.length, deviceIds, (names) =>
        ctx.diagnostics.warn(
          'HXC1109',
          `${names.length} node(s) the plan assigns are not in this graph (${names.slice(0, 2).join(', ')}${names.length > 2 ? ', …' : ''}): a split or a replica of the variant it shipped; hxc places what they cover`,
          { where: assignFile },
        ),
      )
    : undefined;
  const placed = assigned ? placedPins(ctx.model.graph, index, ctx.topology().devices, assigned.pins) : undefined;
  const pins = placed?.pins;
  const experts = expertUnits(ctx, stages);
  const built = buildProblem({
    graph: ctx.model.graph,
    index,
    topology,
    routes: ctx.routes(),
    costs: profile.nodes,
    fused_producer: profile.fused_producer,
    fused_saved: profile.fused_saved,
    ...(ctx.options.replan ? { running: runningDevices(ctx.model.graph.nodes, ctx.options.replan.assignment) } : {}),
    efficiency: profile.efficiency,
    value_bytes_by_id: profile.value_bytes_by_id,
    stages: stages.stages.map((s) => ({ name: s.name, nodes: s.nodes })),
    state: state.objects,
    ...experts,
    ...(pins ? { pins, pins_file: assignFile! } : {}),
  });
  const p = built.problem;
  const n = p.unit_names.length;
  const nd = p.device_ids.length;
  const links = topology.links.map((l) => ({ name: l.name, bandwidth_bytes_per_s: l.bandwidth_bytes_per_s, latency_s: l.latency_s, shared: l.shared }));
  const judge = new Judge(p, ctx.routes(), links);
  // A huge graph's candidates for latency are judged by latency alone (PoolInput.everyThroughput).
  const latencyCandidates = ctx.model.graph.nodes.length > HUGE_GRAPH_NODES;
  const R = judge.requests;
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

  // Tensor-parallel splits as unit lists: a plan with splits is eligible only if every split's
  // parts run on at least two devices (a split kept on one device is pure overhead).
  const tp = ctx.has(tpPass) ? ctx.get(tpPass) : null;
  const named = splitAndCopyNodes(ctx);
  const tpSplits = (tp?.splits ?? []).map((sp) => sp.parts.map((name) => built.unit_of[named.get(name)!]!));
  // Expert copies as unit lists (the unit of each copy's first node): a plan with copies is
  // eligible only if no two copies of an expert share a device (src/transform/replicate.ts).
  const copyGroups = (ctx.has(replicatePass) ? ctx.get(replicatePass).replicated : [])
    .map((r) => [...new Set(r.replicas.map((names) => built.unit_of[named.get(names[0]!)!]!))])
    .filter((units) => units.length >= 2);
  const measureKv = kvMeter(p, state.context, state.batch);
  const asked = ctx.option(MIN_SEQUENCES) ?? null;
  /** The result for the placement decided (searched for below, or replayed): judged, bounded, explained. */
  const finish = async (
    decided: Omit<PartitionDecision, 'unit_names' | 'device_ids' | 'cut' | 'stage_cuts' | 'search'>,
    search: () => PartitionResult['search'],
    assessor: MakespanAssessor,
    migrationReport: () => PartitionResult['migration'],
    lastScan: () => MoveScan | null,
  ): Promise<PartitionResult> => {
    ctx.progress(`judging the chosen plan, ${decided.chosen}; bounds`);
    const said: PartitionResult['said'] = [];
    // A huge graph's variant weighed and let go is weighed by its latency (a latency plan's score,
    // as its candidates were): the run of R requests its throughput takes is made when it ships,
    // planned again (the DeepSeek-V3 shape: 0.4 s of the variant's partition).
    const verdict: Verdict | LatencyVerdict =
      decided.polish_deferred && latencyCandidates
        ? judge.latencyVerdict(decided.placement)
        : judge.verdict(decided.placement, shippedOrders(decided.objective));
    const lb = withMilpBound(await lowerBound(p), decided.exact?.best_bound_s ?? null, memoryFeasible(p, decided.placement.device));
    const throughput_bound: ThroughputBound = {
      upper_per_s: R / Math.max(R * lb.memory_spread_s, lb.critical_path_s),
      device_load_s: lb.memory_spread_s,
      critical_path_s: lb.critical_path_s,
    };
    const placement: Placement = { ...decided.placement, makespan_s: verdict.latency_s };
    // KV capacity as the shipped schedule holds memory: its peak activations, not a placement's floor.
    let kv = decided.kv;
    if (kv) {
      const peak = verdict.memory.map((m) => m.peak_activation_bytes);
      const held = kvMeter(p, state.context, state.batch)(decided.placement.device, peak);
      kv = {
        ...kv,
        sequences: held.sequences,
        devices: held.devices,
        // (Only a plan weighed by latency alone has no throughput, and it is never one whose KV capacity was raised.)
        ...(kv.after && verdict.throughput_per_s !== null
          ? { after: { ...kv.after, sequences: held.sequences, throughput_per_s: verdict.throughput_per_s } }
          : {}),
      };
      if (kv.asked !== null && held.sequences < kv.asked)
        said.push({
          code: 'HXC1107',
          message: `the KV cache holds ${held.sequences} sequences of ${state.context} tokens, fewer than the ${kv.asked} asked`,
          info: { hint: 'add devices or memory, lower --context, or use a smaller KV dtype' },
        });
    }
    // Pins that place nothing (a Constant, a Shape: src/partition/segments.ts placedPins), where
    // what they serve did not go.
    const unfollowed = (placed?.cleared ?? []).filter((i) => decided.placement.device[built.unit_of[i]!] !== assigned!.pins[i]);
    if (unfollowed.length > 0) {
      const names = unfollowed.map((i) => `"${ctx.model.graph.nodes[i]!.name}" (${ctx.model.graph.nodes[i]!.op}) to ${p.device_ids[assigned!.pins[i]!]}`);
      said.push({
        code: 'HXC1114',
        message: `${unfollowed.length} pin(s) not followed: ${names.slice(0, 2).join(', ')}${names.length > 2 ? ', …' : ''} — a Constant, or a view of weights (an Identity or Reshape of one), goes with what first reads it, a Shape or Size with what it measures`,
        info: { where: assignFile!, hint: 'assign what reads the Constant or the view, or what the Shape measures' },
      });
    }
    // The chosen plan's row (a candidate, and a baseline when it is one) and its KV figures say what
    // ships: a throughput plan ships the better of the two step orders, its candidates were judged
    // with pipeline rounds only; KV sequences as its schedule holds them.
    const asShipped = <T extends JudgedPlan | null>(row: T): T =>
      row && row.name === decided.chosen
        ? {
            ...row,
            throughput_per_s: verdict.throughput_per_s,
            pipelined: verdict.pipelined,
            ...(kv && row.kv_sequences !== undefined ? { kv_sequences: kv.sequences } : {}),
          }
        : row;
    const baselines = Object.fromEntries(Object.entries(decided.baselines).map(([k, b]) => [k, b ? asShipped(b) : b])) as typeof decided.baselines;
    return {
      ...decided,
      candidates: decided.candidates.map(asShipped),
      baselines,
      kv,
      units: built.units,
      said,
      unit_of: built.unit_of,
      problem: p,
      placement,
      pipelined: decided.objective === 'throughput' ? verdict.pipelined : false,
      judge,
      verdict,
      lower_bound: lb,
      throughput_bound,
      search: search(),
      explain: once(() => {
        if (verdict.throughput_per_s === null) throw new Error('a variant weighed by its latency alone is not explained: it is planned again when it ships');
        const entries = explainPlacement(
          p,
          built.units,
          stages.stages.map((s) => s.name),
          placement,
          verdict,
          judge,
          decided.objective,
          assessor,
          pins,
          ctx.model.graph,
          topology.devices,
          moveBar(
            tpSplits,
            copyGroups,
            measureKv,
            asked,
            placement.device,
            verdict.memory.map((m) => m.peak_activation_bytes),
          ),
          lastScan(),
        );
        judge.forget(); // explain is the last reader of the kept one-request run
        return entries;
      }),
      migration: migrationReport(),
      cut,
    };
  };
  // ---- Candidates, each judged by the simulator ----
  const assessor = new MakespanAssessor(p);
  // Units the user pinned (--assign) keep their device in every candidate, baselines included.
  const pinnedTo = Int32Array.from(built.units, (u) => unitPin(u.nodes, pins));
  // When replanning: the running plan's placement, and the migration's share of each request.
  const migration = ctx.options.replan
    ? new Migration(
        p,
        built.units.map((u) => u.nodes.map((i) => ctx.model.graph.nodes[i]!.name)),
        ctx.options.replan,
        built.units.map((u) => u.nodes.map((i) => built.node_resident_bytes[i]!)),
      )
    : null;
  const pool = new CandidatePool({
    p,
    judge,
    assessor,
    objective,
    groups,
    pinnedTo,
    tpSplits,
    copyGroups,
    measureKv,
    hasState: state.objects.length > 0,
    migration,
    asked,
    // Without a shared link the simulator's latency is the contention-free makespan the refinement
    // already minimised: a judged latency polish pays only where contention is judged.
    contention: topology.links.some((l) => l.shared),
    everyThroughput: migration !== null || !latencyCandidates,
  });
  const judged = pool.judged;
  let considered = 0;
  const consider = (
    name: string,
    label: string,
    given: Int32Array | null,
    priority?: Float64Array,
    placed?: Placement,
    orders?: readonly boolean[],
  ): Candidate | null => {
    ctx.progress(`judging ${name} (candidate ${++considered})`);
    return pool.consider(name, label, given, priority, placed, orders);
  };
  const repair = (start: Candidate | null, name: string, label: string): Candidate | null => {
    if (start) ctx.progress(`repairing ${start.name} to fit memory`);
    return pool.repair(start, name, label);
  };
  /** The judged local search from `start`; what it finds joins the candidates. */
  const polishFrom = (start: Candidate): void => {
    ctx.progress(`polishing ${start.name} (judged local search)`);
    pool.polish(start, objective, `${start.name}+polish`, `${start.label}, polished by the judged local search`);
  };
  /**
   * The single moves explain finds better, taken. (Not on a huge graph: a scan there costs about
   * what explain does, 3 s on the DeepSeek-V3 shape for each variant, and its few simulations took
   * one move worth 0.0002% — explain still names such moves, as past the search budget.)
   */
  const withBetterMoves = (chosen: Candidate): Candidate => {
    if (ctx.model.graph.nodes.length > HUGE_GRAPH_NODES) return chosen;
    ctx.progress(`taking the single moves that make ${chosen.name} better`);
    return pool.takeBetterMoves(chosen, `${chosen.name}+moves`, `${chosen.label}, with the single moves that made it better`);
  };

  if (replay) {
    // Replayed only onto the problem it was made on (a decision of another variant would not fit it).
    const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
    if (!same(replay.unit_names, p.unit_names) || !same(replay.device_ids, p.device_ids))
      throw new Error('internal: a partition decision was replayed onto another problem (units or devices differ)');
    // (Warnings the search gave, HXC1107 under --min-sequences, are not given again: the variant
    // driver keeps the first planning's.)
    const { unit_names: _u, device_ids: _d, cut: _c, stage_cuts: _s, search, ...decided } = replay;
    if (!decided.polish_deferred)
      return finish(
        decided,
        () => search,
        assessor,
        () => null,
        () => null,
      );
    // The judged polish the first planning left (PlanOptions.defer_polish) and the single moves
    // after it, from the plan it chose, as that planning would have made them: they read their start
    // and the judge, not the other candidates, and the plan is the best of what they judged.
    const label = decided.candidates.find((c) => c.name === decided.chosen)?.label ?? decided.chosen;
    const given = decided.placement;
    let makespan_s = 0;
    for (let u = 0; u < n; u++) if (given.finish_s[u]! > makespan_s) makespan_s = given.finish_s[u]!;
    ctx.progress(`judging ${decided.chosen}, the plan the first planning chose`);
    const start = pool.consider(decided.chosen, label, given.device, given.start_s, { ...given, makespan_s });
    if (!start) throw new Error(`internal: the plan a partition chose (${decided.chosen}) no longer fits when replayed`);
    const [evaluations, simulations] = [assessor.evaluations, judge.simulations];
    polishFrom(start);
    const chosen = withBetterMoves(pool.pick());
    const polishSearch = {
      ...search,
      polish_moves: pool.polishMoves,
      polish_sweeps: pool.polishSweeps,
      explain_moves: search.explain_moves + pool.explainMoves,
      evaluations: search.evaluations + assessor.evaluations - evaluations,
      simulations: search.simulations + judge.simulations - simulations,
    };
    // A first planning weighed by latency alone ran no throughput: the verdict's runs below are
    // counted here, as the plan planned at once counts them.
    const runs = judge.throughputRuns;
    let kv = decided.kv;
    if (chosen !== start && state.objects.length > 0) {
      kv = measureKv(chosen.placement.device);
      kv.asked = asked;
    }
    return finish(
      {
        ...decided,
        chosen: chosen.name,
        placement: chosen.placement,
        candidates: [...decided.candidates, ...pool.judged.filter((c) => c !== start).map(stripCandidate)],
        kv,
        tp_eligible: pool.spread(chosen.placement.device),
        polish_deferred: false,
      },
      () => (latencyCandidates ? { ...polishSearch, simulations: polishSearch.simulations + judge.throughputRuns - runs } : polishSearch),
      assessor,
      () => null,
      () => pool.lastScan,
    );
  }

  /** HEFT on `q` with unbounded memory, relieved into capacity (a candidate only when it overflowed). */
  const relievedEntries: Candidate[] = [];
  const relieved = (q: PlacementProblem, bounded: HeftResult | null, name: string, label: string): void => {
    // A HEFT that never found a device full places as the unbounded one would.
    if (bounded && !bounded.memory_full) return;
    const free = heftOrNull({ ...q, capacity_bytes: new Float64Array(q.device_ids.length).fill(Infinity) });
    if (!free) return;
    if (fitsMemory(p, free.device)) return; // HEFT itself makes that plan
    const device = Int32Array.from(free.device);
    relieve(p, device, new Set(built.units.flatMap((_, u) => (pinnedTo[u]! >= 0 ? [u] : []))));
    // Judged once, after the repair's rounds make its schedule fit (live activations, values waiting).
    const fixed = pool.fitSchedule(device, free.start_s);
    const entry = fixed ? consider(name, label, fixed.device, fixed.start_s) : null;
    if (entry) relievedEntries.push(entry);
  };

  // HEFT places greedily: when the accelerators cannot hold every weight it can leave a late unit
  // no device with room although the rack holds the model. Then it is no candidate, and the
  // relieved ones below (placed as if memory were unbounded) are.
  ctx.progress(`HEFT over ${n} units and ${nd} devices`);
  const heftRun = heftOrError(p);
  const h = heftRun instanceof HxcError ? null : heftRun;
  const heftError = heftRun instanceof HxcError ? heftRun : null; // said when no candidate fits: where bytes are missing
  const heftEntry = h ? consider('heft', 'HEFT (Topcuoglu et al. 2002)', h.device, h.start_s) : null;
  repair(heftEntry, 'heft+repair', 'HEFT, repaired to fit memory');
  // Not on a huge graph whose HEFT plan does not fit: there the accelerators are full, a move onto
  // one rarely fits and a move off one is slower, and the refined plan came back HEFT's own (the
  // DeepSeek-V3 shape on rack-8gpu: 0 moves in decode and in a 512-token prefill, each variant,
  // for 0.6–1.1 s of evaluator runs); the relieved candidates below are what fits there.
  const searchHeft = h !== null && (heftEntry?.fits !== false || ctx.model.graph.nodes.length <= HUGE_GRAPH_NODES);
  if (searchHeft) ctx.progress('contention-free local search from HEFT');
  const r = h && searchHeft ? refine(p, h, refineBudget(p, groups.length), 12345, groups) : null;
  if (r)
    repair(
      consider('refined', 'HEFT + contention-free local search', r.placement.device, r.placement.start_s),
      'refined+repair',
      'refined, repaired to fit memory',
    );
  // On a rack of several hosts, HEFT on its first hosts too: greedy, HEFT given every host can
  // spread a plan thinner than one on fewer hosts runs (the DeepSeek-V3 shape's decode on 32 hosts
  // of 8 H100s: 39.5 ms; the same rack cut to its first 8 hosts: 35.5 ms). A user could write
  // that rack by hand, so the plan on it is a candidate here (hostPrefixes).
  for (const k of hostPrefixes(topology, p)) {
    // Its devices: those of the first k hosts, and those of none.
    const within = new Uint8Array(nd).fill(1);
    for (const host of topology.hosts.slice(k)) for (const id of host.devices) within[deviceIds.indexOf(id)] = 0;
    const keep = Array.from(within.keys()).filter((d) => within[d] === 1);
    const hosts = k === 1 ? 'the first host' : `the first ${k} hosts`;
    ctx.progress(`HEFT over ${hosts} of ${topology.hosts.length}`);
    const hk = heftOrNull(onDevices(p, keep));
    if (hk)
      repair(
        consider(
          `heft:hosts${k}`,
          `HEFT on ${hosts}`,
          Int32Array.from(hk.device, (d) => keep[d]!),
          hk.start_s,
        ),
        `heft:hosts${k}+repair`,
        `HEFT on ${hosts}, repaired to fit memory`,
      );
  }
  let exact: ExactResult | null = null;
  if (solverFlag === 'exact' || (solverFlag === 'auto' && n <= EXACT_MAX_UNITS && objective === 'latency')) {
    const timeLimit = ctx.option(TIME_LIMIT);
    exact = await solveExact(p, {
      ...(r ? { incumbent: r.placement.device, incumbent_priority: r.placement.start_s } : {}),
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
  // A plan.json given to --assign: its devices (the pins) in its own step order — the plan planned
  // again as it ran, not only placed as it was (units it does not place go where HEFT put them,
  // after the others). Each device runs its units in the order the plan lists them (a list
  // schedule in stepOrder, not the better of it and the rank order): the plan given is judged as it ran.
  const ranAt = assigned?.start_s;
  const ranStep = assigned?.step;
  const base = h?.device ?? (pinnedTo.every((d) => d >= 0) ? pinnedTo : null);
  if (ranAt && ranStep && base) {
    // Each unit at its first node's step (a node the plan does not run is NaN: it orders nothing).
    const first = Int32Array.from(built.units, (u) =>
      u.nodes.reduce(
        (f, i) =>
          Number.isNaN(ranAt[i]!) ? f : f < 0 || ranAt[i]! < ranAt[f]! || (ranAt[i] === ranAt[f] && ranStep.position[i]! < ranStep.position[f]!) ? i : f,
        -1,
      ),
    );
    const priority = stepOrder(
      p,
      Float64Array.from(first, (i) => (i < 0 ? Number.NaN : ranAt[i]!)),
      Int32Array.from(first, (i) => (i < 0 ? -1 : ranStep.lane[i]!)),
      Int32Array.from(first, (i) => (i < 0 ? -1 : ranStep.position[i]!)),
    );
    const device = Int32Array.from(base, (d, u) => (pinnedTo[u]! >= 0 ? pinnedTo[u]! : d));
    const runnable = fitsMemory(p, device) && device.every((d, u) => Number.isFinite(unitTime(p, u, d)));
    // (A throughput plan ran in the better of its two step orders, with pipeline rounds or without: both are judged.)
    consider(
      'as-assigned',
      "the --assign plan's devices, in its own step order",
      device,
      priority,
      runnable ? assessor.runOne(device, priority) : undefined,
      shippedOrders(objective),
    );
  }
  // The plans users write by hand.
  let single: Candidate | null = null;
  let fallback: Candidate | null = null;
  // One device of each class of identical devices stands for the class (64 H100s are one candidate).
  const representatives = [...new Map(topology.devices.map((d, k) => [deviceClassKey(d), k] as const).reverse()).values()].sort((a, b) => a - b);
  // Units the user holds on given devices (--assign, --pin-experts) stay there in the one-device plans.
  const held = Uint8Array.from(built.units, (u, k) => (pinnedTo[k]! >= 0 || (u.expert !== undefined && experts.expert_devices?.[u.expert]) ? 1 : 0));
  for (const d of representatives) {
    const device = allOn(p, d, held);
    const kept = device?.some((e) => e !== d) === true;
    const e = consider(`single:${p.device_ids[d]}`, `everything on ${p.device_ids[d]}${kept ? ', pinned units where pinned' : ''}`, device);
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
  // Labelled with the accelerators its layers land on (a layer with nothing to run there adds none).
  const evenDevice = accelIdx.length >= 2 ? evenSplit(p, layerOfUnit, layers, accelIdx) : null;
  const evenOn = evenDevice ? accelIdx.filter((d) => evenDevice.includes(d)).map((d) => p.device_ids[d]!) : [];
  const even = evenDevice ? consider('even-split', `even pipeline split: ${layers} layers over ${evenOn.join(', ')}`, evenDevice) : null;
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
  // When the accelerators cannot hold every weight, HEFT fills them in the order it places units
  // (the first layers' experts) and sends what comes later (the last layers' attention) to host
  // memory. These candidates place as if memory were unbounded, then move off each full device
  // the units that add the least work per byte freed where they go (cold experts before hot layers).
  relieved(p, h, 'heft+relieve', 'HEFT as if memory were unbounded, then the least work per byte moved off full devices');
  if (hint)
    relieved(
      hint,
      hh,
      'moe-hint+relieve',
      'experts where the moe pass placed them, the rest by HEFT, as if memory were unbounded; then the least work per byte moved off full devices',
    );
  // The better relieved plan gets the contention-free local search HEFT's plan gets: the relief
  // moves only what memory forces, and units it left on the host may run better elsewhere (Mixtral
  // 8x7B on one H100 and its host: 192.5 → 191.0 ms). Not on huge graphs: on the DeepSeek-V3 shape
  // its 500 evaluations found no move and took 4 s.
  const bestRelieved =
    ctx.model.graph.nodes.length > HUGE_GRAPH_NODES
      ? null
      : relievedEntries.reduce<Candidate | null>((a, c) => (!a || c.value < a.value * (1 - 1e-12) ? c : a), null);
  const relievedSearch = { moves: 0, rounds: 0 };
  if (bestRelieved) {
    const rr = refine(p, bestRelieved.placement, refineBudget(p, groups.length), 12345, groups);
    relievedSearch.moves = rr.moves;
    relievedSearch.rounds = rr.rounds;
    const fixed = rr.moves > 0 ? pool.fitSchedule(rr.placement.device, rr.placement.start_s) : null;
    if (fixed) consider(`${bestRelieved.name}+refined`, `${bestRelieved.label}; then the contention-free local search`, fixed.device, fixed.start_s);
  }
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
    if (heftError) throw heftError;
    throw new HxcError('HXC3001', 'no candidate placement fits in memory', {
      hint: 'add devices or memory to the topology, lower --batch/--context, or use a smaller dtype',
    });
  }

  // ---- The best candidate, polished by a judged local search ----
  const search = objective === 'throughput' ? pool.throughputSearch() : { moves: 0, sweeps: 0 };
  // ---- Replanning: search from the running plan, counting the migration ----
  const { running, fresh } = migration ? pool.replan() : { running: null, fresh: null };
  // ---- Tensor parallelism: the best plan that kept a split on one device, with its splits spread ----
  if (tp && tpGroupIdx.length >= 2 && ctx.model.graph.nodes.length <= HUGE_GRAPH_NODES) pool.spreadKept(tpGroupIdx, tp.group.join(', '));
  // ---- Expert replicas: the best plan that kept two copies on one device, with its copies apart ----
  pool.setApart();
  const best = pool.pick();
  // A variant weighed and let go leaves its polish to a second planning, made only when it could
  // ship (src/cli/run-passes.ts): on a huge graph the polish is ~1 s of simulations and wins back
  // little (DeepSeek-V3 decode: 0.03% in the variant that shipped, nothing in the other).
  const deferPolish = deferAllowed && objective === 'latency' && !migration && asked === null;
  if (!deferPolish) polishFrom(best);
  // A plan that moves more must be worth it: the fewest moves among the plans within --min-gain of the best.
  let chosen = pool.fewestMoves(pool.pick());

  // ---- KV capacity: raised only when asked (--min-sequences) ----
  if (state.objects.length > 0 && asked !== null && !pool.eligible(chosen)) {
    // Start from the candidate that holds the most sequences within a little of the best, then lift.
    const estimate = (device: Int32Array, priority: Float64Array): { value: number; placement: Placement } => {
      const pl = assessor.run(device, priority);
      return { value: objective === 'latency' ? pl.makespan_s : pl.makespan_s + (R - 1) * pool.maxLoad(device), placement: pl };
    };
    const lifted = liftKvCapacity(p, pool.pick().placement, asked, measureKv, estimate);
    const entry = consider('kv-lift', `KV capacity raised towards ${asked} sequences`, lifted.device, lifted.start_s);
    chosen = pool.pick();
    if (entry && !pool.eligible(chosen)) chosen = entry;
  }
  // ---- The single moves explain finds better, taken ----
  // (A deferred polish leaves them too: they follow it, in the second planning.)
  if (!migration && !deferPolish) chosen = withBetterMoves(chosen);
  // ---- KV capacity: reported ----
  let kv: KvCapacity | null = null;
  if (state.objects.length > 0) {
    kv = measureKv(chosen.placement.device);
    kv.asked = asked;
    const unlifted = asked === null ? chosen : judged.filter((c) => c.fits).reduce((a, c) => (c.value < a.value * (1 - 1e-12) ? c : a), chosen);
    if (unlifted !== chosen) {
      kv.before = { sequences: unlifted.kv_sequences ?? 0, latency_s: unlifted.latency_s, throughput_per_s: pool.throughputOf(unlifted) };
      kv.after = { sequences: kv.sequences, latency_s: chosen.latency_s, throughput_per_s: pool.throughputOf(chosen) };
      kv.moves = countMoves(unlifted.placement.device, chosen.placement.device);
    }
  }

  const strip = (e: Candidate | null): JudgedPlan | null => (e ? stripCandidate(e) : null);
  // The splits that paid: spread in the best plan that was free to keep them on one device.
  const free = judged
    .filter((c) => c.fits && (asked === null || (c.kv_sequences ?? Infinity) >= asked))
    .reduce<Candidate | null>((a, c) => (!a || c.value < a.value * (1 - 1e-12) ? c : a), null);
  const tp_paid = free
    ? tpSplits.flatMap((parts, k) =>
        parts.some((u) => free.placement.device[u] !== free.placement.device[parts[0]!]) ? (tp!.splits[k]!.covers ?? [tp!.splits[k]!.node]) : [],
      )
    : [];
  return finish(
    {
      objective,
      solver: chosen.name.startsWith('exact') ? 'exact' : 'heuristic',
      chosen: chosen.name,
      placement: chosen.placement,
      candidates: judged.map((e) => strip(e)!),
      baselines: { heft: strip(heftEntry), single_device: strip(single), fallback: strip(fallback), even_split: strip(even), tensor_parallel: strip(tpGroup) },
      exact,
      pipeline,
      kv,
      tp_paid,
      tp_eligible: pool.spread(chosen.placement.device),
      polish_deferred: deferPolish,
    },
    // Counted after the shipped plan's verdict, which is judged too.
    () => ({
      refine_moves: (r?.moves ?? 0) + relievedSearch.moves + search.moves,
      refine_sweeps: (r?.rounds ?? 0) + relievedSearch.rounds + search.sweeps,
      polish_moves: pool.polishMoves,
      polish_sweeps: pool.polishSweeps,
      explain_moves: pool.explainMoves,
      evaluations: assessor.evaluations,
      simulations: judge.simulations,
    }),
    assessor,
    () => {
      if (!migration) return null;
      // (A replan simulates every candidate's throughput: throughputOf reads it.)
      const judgedOf = (c: Candidate | null) => c && { ...c, throughput_per_s: pool.throughputOf(c) };
      return migrationReport(migration, judgedOf(chosen)!, judgedOf(running), judgedOf(fresh), built.units, objective);
    },
    () => pool.lastScan,
  );
}

/** A candidate's row as the plan lists it (its placement and values for the search left out). */
function stripCandidate(e: Candidate): JudgedPlan {
  const { placement: _p, value: _v, raw_value: _r, ...plan } = e;
  return plan;
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

const fmt = (x: number): string => dumpNumber(x);

export const partitionPass: Pass<PartitionResult, Promise<PartitionResult>> = {
  name: 'partition',
  summary:
    'assign stages to devices: candidates (HEFT, refinement, MILP, pipeline DP, hand-written baselines) judged by the contention simulator, the best polished; bounds and explanations',
  requires: ['verify', 'bind', 'profile', 'state', 'stage', 'moe'],
  uses: ['tp', 'replicate'],
  options: [OBJECTIVE, SOLVER, TIME_LIMIT, ASSIGN, MIN_SEQUENCES, PIN_EXPERTS, EXPERT_UNITS, ROUTING],
  run: partitionGraph,
  statistics(r) {
    return {
      units: r.units.length,
      objective: r.objective,
      chosen: r.chosen,
      'latency s': fmt(r.verdict.latency_s),
      'throughput /s': r.verdict.throughput_per_s === null ? '-' : fmt(r.verdict.throughput_per_s),
      'lower bound s': fmt(r.lower_bound.lower_bound_s),
      candidates: r.candidates.length,
      'refine moves': r.search.refine_moves,
      'polish moves': r.search.polish_moves,
      'explain moves': r.search.explain_moves,
      evaluations: r.search.evaluations,
      simulations: r.search.simulations,
    };
  },
  dump(r) {
    const lines = [
      `objective=${r.objective} chosen=${r.chosen} latency_s=${fmt(r.verdict.latency_s)} throughput_per_s=${r.verdict.throughput_per_s === null ? '-' : fmt(r.verdict.throughput_per_s)} lower_bound_s=${fmt(r.lower_bound.lower_bound_s)} throughput_upper_per_s=${fmt(r.throughput_bound.upper_per_s)}`,
    ];
    for (const c of r.candidates)
      lines.push(
        `candidate ${c.name}: latency_s=${fmt(c.latency_s)} throughput_per_s=${c.throughput_per_s === null ? '-' : fmt(c.throughput_per_s)}${c.fits ? '' : ' (does not fit)'} on ${c.devices.join(',')}`,
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

/** Per node, a number for the device it ran on in the running plan (its id's rank among them), -1 when it did not run. */
function runningDevices(nodes: readonly { name: string }[], assignment: Readonly<Record<string, string>>): Int32Array {
  const ids = [...new Set(Object.values(assignment))].sort();
  const rank = new Map(ids.map((id, k) => [id, k]));
  return Int32Array.from(nodes, (n) => {
    const id = assignment[n.name];
    return id === undefined ? -1 : rank.get(id)!;
  });
}
