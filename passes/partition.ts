// partition: assign every stage (split where a node needs a fallback device) to a device, under op
// capability, memory capacity and the topology's routes, for an objective: `latency` (one request:
// HEFT with insertion, then local-search refinement, then — for small problems — the exact MILP),
// or `throughput` (pipelined requests: dynamic programming over the stage order into pipeline
// segments on devices, see src/partition/pipeline.ts). Every plan carries a lower bound and an
// explanation of each unit's placement.

import { HxcError } from '../src/diag/diagnostics.js';
import type { VerifyResult } from '../src/ir/verify.js';
import { lowerBound, type LowerBound } from '../src/partition/bounds.js';
import { buildProblem, type Unit } from '../src/partition/build.js';
import { solveExact, type ExactResult } from '../src/partition/exact.js';
import { heft } from '../src/partition/heft.js';
import { pipelinePartition, type PipelineResult } from '../src/partition/pipeline.js';
import { Evaluator, residentBytes, unitTime, type Placement, type PlacementProblem } from '../src/partition/problem.js';
import { refine } from '../src/partition/refine.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import type { BindResult } from './bind.js';
import { planExpertsJson, type MoeResult } from './moe.js';
import type { TpResult } from './tp.js';
import type { ReplicateResult } from './replicate.js';
import type { ProfileResult } from './profile.js';
import type { StageResult } from './stage.js';
import type { StateResult } from './state.js';

export type Objective = 'latency' | 'throughput';

export interface ExplainEntry {
  unit: string;
  stage: string;
  device: string;
  finish_s: number;
  /** What decided it: the fastest finish, a capability limit, memory, or communication. */
  reason: string;
  /** Devices that were not possible or slower, best first (at most 3). */
  alternatives: { device: string; finish_s: number | null; why: string }[];
}

export interface KvCapacity {
  /** Concurrent sequences of `context` tokens the plan's free memory holds (min over state-owning devices). */
  sequences: number;
  context: number;
  /** Per state-owning device: free bytes after weights and activations, state bytes per sequence, sequences. */
  devices: { id: string; free_bytes: number; state_bytes_per_sequence: number; sequences: number }[];
  /** Units moved to lift the smallest device's cap. */
  moves: number;
}

export interface PartitionResult {
  objective: Objective;
  solver: 'heuristic' | 'exact';
  units: Unit[];
  unit_of: Int32Array;
  problem: PlacementProblem;
  placement: Placement;
  lower_bound: LowerBound;
  baselines: { heft_s: number; refined_s: number; single_device: { device: string; makespan_s: number } | null };
  exact: ExactResult | null;
  pipeline: PipelineResult | null;
  refine: { moves: number; rounds: number; evaluations: number };
  kv: KvCapacity | null;
  explain: ExplainEntry[];
}

/** Units small enough for the MILP under --solver auto. */
export const EXACT_MAX_UNITS = 40;

function flag(ctx: PassContext, name: string, allowed: string[], dflt: string): string {
  const v = ctx.options.flags[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !allowed.includes(v)) {
    throw new HxcError('HXC2403', `--${name} must be one of ${allowed.join(', ')}, got "${String(v)}"`, { where: `--${name}` });
  }
  return v;
}

export async function partitionGraph(ctx: PassContext): Promise<PartitionResult> {
  const objective = flag(ctx, 'objective', ['latency', 'throughput'], 'latency') as Objective;
  const solverFlag = flag(ctx, 'solver', ['auto', 'heuristic', 'exact'], 'auto');
  const stages = ctx.get<StageResult>('stage');
  const profile = ctx.get<ProfileResult>('profile');
  const state = ctx.get<StateResult>('state');
  const { index } = ctx.get<VerifyResult>('verify');
  const topology = ctx.topology();
  const built = buildProblem({
    graph: ctx.model.graph, index, topology, routes: ctx.routes(), costs: profile.nodes, efficiency: profile.efficiency,
    value_bytes_by_id: profile.value_bytes_by_id,
    stages: stages.stages.map((s) => ({ name: s.name, nodes: s.nodes })),
    state: state.objects.map((o) => ({ name: o.name, bytes: o.bytes, writers: o.writers })),
    ...expertUnits(ctx),
  });
  const p = built.problem;
  const h = heft(p);
  const r = refine(p, h);
  let placement = r.placement;
  let solver: PartitionResult['solver'] = 'heuristic';
  let exact: ExactResult | null = null;
  const units = p.unit_names.length;
  if (solverFlag === 'exact' || (solverFlag === 'auto' && units <= EXACT_MAX_UNITS && objective === 'latency')) {
    const limit = Number(ctx.options.flags['time-limit'] ?? (solverFlag === 'exact' ? 60 : 2));
    exact = await solveExact(p, { time_limit_s: limit, incumbent: placement.device, incumbent_priority: placement.start_s });
    if (solverFlag === 'exact' && exact.status === 'too-large') {
      throw new HxcError('HXC2403', `--solver exact handles at most ${EXACT_MAX_UNITS} units; this plan has ${units}`, { where: '--solver', hint: 'use --max-stages 40 or --solver auto' });
    }
    // Under auto only a proven optimum is taken: a time-limited answer depends on the machine's
    // speed, and the same inputs must give the same plan.
    const usable = exact.placement && (exact.status === 'optimal' || solverFlag === 'exact');
    if (usable && exact.placement!.makespan_s < placement.makespan_s * (1 - 1e-12)) {
      placement = exact.placement!;
      solver = 'exact';
    } else if (usable && exact.status === 'optimal') solver = 'exact';
  }
  let pipeline: PipelineResult | null = null;
  if (objective === 'throughput') {
    pipeline = pipelinePartition(p, built.units.map((u) => u.stage));
    // No contiguous pipeline honours every constraint (e.g. experts pinned to devices out of chain
    // order): keep the latency placement, which does, and say so.
    if (Number.isFinite(pipeline.bottleneck_s)) placement = new Evaluator(p).run(pipeline.device);
    else pipeline = { ...pipeline, chain: `none feasible (${pipeline.chain}); latency placement kept` };
  }
  let kv: KvCapacity | null = null;
  if (state.objects.length > 0) {
    const phase = ctx.get<BindResult>('bind').phase;
    const lifted = liftKvCapacity(p, placement, state.context, state.batch, phase === 'decode');
    placement = lifted.placement;
    kv = lifted.kv;
  }
  const single = singleDevice(p);
  return {
    objective, solver, units: built.units, unit_of: built.unit_of, problem: p, placement,
    lower_bound: await lowerBound(p),
    baselines: { heft_s: h.makespan_s, refined_s: r.placement.makespan_s, single_device: single },
    exact, pipeline, refine: { moves: r.moves, rounds: r.rounds, evaluations: r.evaluations }, kv,
    explain: explainPlacement(p, built.units, stages, placement, h.candidates),
  };
}

/** The experts of routed MoE layers, as units of their own (the moe pass found them). */
function expertUnits(ctx: PassContext): { experts?: number[][]; expert_names?: string[]; expert_devices?: (string[] | null)[] } {
  const experts: number[][] = [];
  const expert_names: string[] = [];
  const expert_devices: (string[] | null)[] = [];
  // The moe pass's placement joins the partition when the user steers expert placement
  // (--routing, --expert-slots, --expert-replicas): an expert, and each executable copy of it, may
  // only go to the devices the moe pass gave that expert's replicas. Otherwise experts are free units.
  const placed = new Map<string, string[]>();
  const f = ctx.options.flags;
  const steered = f.routing !== undefined || f['expert-slots'] !== undefined || (f['expert-replicas'] !== undefined && Number(f['expert-replicas']) > 0);
  if (ctx.has('moe')) {
    const moe = ctx.get<MoeResult>('moe');
    if (steered) for (const e of planExpertsJson(moe) as { layer: number; expert: number; replicas: { device: string }[] }[]) placed.set(`moe${e.layer}.expert${e.expert}`, e.replicas.map((r) => r.device));
    const layers = moe.layers.filter((l) => l.form === 'sparse' || l.form === 'dense');
    for (const l of layers) for (const e of l.experts) {
      experts.push(e.nodes);
      expert_names.push(`moe${l.layer}.expert${e.expert}`);
      expert_devices.push(placed.get(`moe${l.layer}.expert${e.expert}`) ?? null);
    }
  }
  // Expert replicas: each copy its own unit, so copies can go to different devices.
  if (ctx.has('replicate')) {
    const byName = ctx.get<VerifyResult>('verify').index.nodeByName;
    for (const r of ctx.get<ReplicateResult>('replicate').replicated) r.replicas.forEach((names, j) => {
      experts.push(names.map((n) => byName.get(n)!));
      expert_names.push(`${r.key}.copy${j}`);
      expert_devices.push(placed.get(r.key) ?? null);
    });
  }
  // Tensor-parallel parts are independent too: each its own unit, so they can go to k devices.
  if (ctx.has('tp')) {
    const byName = ctx.get<VerifyResult>('verify').index.nodeByName;
    for (const s of ctx.get<TpResult>('tp').splits) s.parts.forEach((part, j) => {
      experts.push([byName.get(part)!]);
      expert_names.push(`tp${j}`);
      expert_devices.push(null);
    });
  }
  return experts.length > 0 ? { experts, expert_names, expert_devices } : {};
}

/** Everything on one device (the fastest that can hold and run it all): the baseline every plan must beat. */
function singleDevice(p: PlacementProblem): { device: string; makespan_s: number } | null {
  const n = p.unit_names.length;
  let best: { device: string; makespan_s: number } | null = null;
  for (let d = 0; d < p.device_ids.length; d++) {
    let t = 0;
    let bytes = 0;
    let floor = 0;
    for (let u = 0; u < n; u++) {
      t += unitTime(p, u, d);
      bytes += residentBytes(p, u);
      floor = Math.max(floor, p.activation_bytes[u]!);
    }
    if (!Number.isFinite(t) || bytes + floor > p.capacity_bytes[d]!) continue;
    if (!best || t < best.makespan_s) best = { device: p.device_ids[d]!, makespan_s: t };
  }
  return best;
}

/**
 * KV capacity: each state-owning device holds (capacity − weights − activation floor) / (its state
 * bytes per sequence) sequences; the plan holds the minimum. For decode, units owning state on the
 * bottleneck device are moved to devices with more room when that raises the minimum and the
 * latency grows by at most 10% (decode is memory-bound: capacity buys batch, batch buys throughput).
 */
function liftKvCapacity(p: PlacementProblem, start: Placement, context: number, batch: number, allowMoves: boolean): { placement: Placement; kv: KvCapacity } {
  const nd = p.device_ids.length;
  const ev = new Evaluator(p);
  const measure = (device: Int32Array): KvCapacity => {
    const weights = new Float64Array(nd);
    const floor = new Float64Array(nd);
    const statePerSeq = new Float64Array(nd);
    for (let u = 0; u < p.unit_names.length; u++) {
      const d = device[u]!;
      weights[d] += p.weight_bytes[u]!;
      floor[d] = Math.max(floor[d]!, p.activation_bytes[u]!);
      statePerSeq[d] += p.state_bytes[u]! / Math.max(1, batch);
    }
    const devices: KvCapacity['devices'] = [];
    let sequences = Infinity;
    for (let d = 0; d < nd; d++) {
      if (statePerSeq[d]! <= 0) continue;
      const free = p.capacity_bytes[d]! - weights[d]! - floor[d]!;
      const seqs = Math.max(0, Math.floor(free / statePerSeq[d]!));
      devices.push({ id: p.device_ids[d]!, free_bytes: free, state_bytes_per_sequence: statePerSeq[d]!, sequences: seqs });
      sequences = Math.min(sequences, seqs);
    }
    return { sequences: Number.isFinite(sequences) ? sequences : 0, context, devices, moves: 0 };
  };
  let placement = start;
  let kv = measure(placement.device);
  if (!allowMoves) return { placement, kv };
  const limit = start.makespan_s * 1.1;
  let moves = 0;
  for (let guard = 0; guard < p.unit_names.length; guard++) {
    const worst = kv.devices.reduce((a, b) => (b.sequences < a.sequences ? b : a), kv.devices[0]!);
    if (!worst) break;
    const wd = p.device_ids.indexOf(worst.id);
    let bestMove: { device: Int32Array; kv: KvCapacity; placement: Placement } | null = null;
    for (let u = 0; u < p.unit_names.length; u++) {
      if (placement.device[u] !== wd || p.state_bytes[u]! <= 0) continue;
      for (let d = 0; d < nd; d++) {
        if (d === wd || !Number.isFinite(unitTime(p, u, d))) continue;
        const device = Int32Array.from(placement.device);
        device[u] = d;
        const trial = measure(device);
        if (!liftsCapacity(trial, kv)) continue;
        const pl = ev.run(device, placement.start_s);
        if (pl.makespan_s > limit) continue;
        if (!bestMove || liftsCapacity(trial, bestMove.kv) || (!liftsCapacity(bestMove.kv, trial) && pl.makespan_s < bestMove.placement.makespan_s)) {
          bestMove = { device, kv: trial, placement: { ...pl, device } };
        }
      }
    }
    if (!bestMove) break;
    placement = bestMove.placement;
    kv = bestMove.kv;
    moves++;
  }
  kv.moves = moves;
  return { placement, kv };
}

/**
 * Whether capacity `a` beats `b`: compare the per-device sequence counts sorted ascending,
 * lexicographically — raise the smallest first, and when two devices tie at the smallest, raising
 * one of them still counts (the next move raises the other). Strict, so the search cannot cycle.
 */
function liftsCapacity(a: KvCapacity, b: KvCapacity): boolean {
  const x = a.devices.map((d) => d.sequences).sort((p, q) => p - q);
  const y = b.devices.map((d) => d.sequences).sort((p, q) => p - q);
  // Fewer owning devices pad with Infinity: an empty device holds no state and caps nothing.
  for (let k = 0; k < Math.max(x.length, y.length); k++) {
    const xa = x[k] ?? Infinity;
    const ya = y[k] ?? Infinity;
    if (xa !== ya) return xa > ya;
  }
  return false;
}

function explainPlacement(p: PlacementProblem, units: Unit[], stages: StageResult, placement: Placement, candidates: { finish_s: Float64Array; reason: (string | null)[] }[]): ExplainEntry[] {
  const nd = p.device_ids.length;
  return units.map((unit, u) => {
    const d = placement.device[u]!;
    const cand = candidates[u]!;
    const fastestCompute = [...Array(nd).keys()].filter((e) => Number.isFinite(unitTime(p, u, e))).sort((a, b) => unitTime(p, u, a) - unitTime(p, u, b))[0];
    let reason: string;
    if (unit.fallback) reason = `fallback: ${unit.fallback.excluded.join(', ')} cannot run this op`;
    else if (fastestCompute !== undefined && fastestCompute !== d && cand.reason[fastestCompute] === 'memory full') reason = `memory: ${p.device_ids[fastestCompute]} (fastest) was full`;
    else if (fastestCompute !== undefined && fastestCompute !== d) reason = `communication/queueing: ${p.device_ids[fastestCompute]} computes it faster but its inputs or its queue make it finish later`;
    else reason = 'earliest finish on the fastest device for it';
    const alternatives = [...Array(nd).keys()].filter((e) => e !== d)
      .map((e) => ({ device: p.device_ids[e]!, finish_s: Number.isFinite(cand.finish_s[e]!) ? cand.finish_s[e]! : null, why: cand.reason[e] ?? 'finishes later' }))
      .sort((a, b) => (a.finish_s ?? Infinity) - (b.finish_s ?? Infinity) || (a.device < b.device ? -1 : 1))
      .slice(0, 3);
    return { unit: unit.name, stage: stages.stages[unit.stage]!.name, device: p.device_ids[d]!, finish_s: placement.finish_s[u]!, reason, alternatives };
  });
}

const fmt = (x: number): string => (x === 0 ? '0' : Math.abs(x) >= 1e4 || Math.abs(x) < 1e-2 ? x.toExponential(4) : String(Number(x.toFixed(4))));

export const partitionPass: Pass<PartitionResult, Promise<PartitionResult>> = {
  name: 'partition',
  summary: 'assign stages to devices under capability, memory and link costs (HEFT + refinement, pipeline DP, exact MILP) with a lower bound',
  requires: ['verify', 'bind', 'profile', 'state', 'stage', 'moe'],
  options: [
    { name: 'objective latency|throughput', description: 'one request (makespan) or pipelined requests (bottleneck stage)' },
    { name: 'solver auto|heuristic|exact', description: `exact = MILP with HiGHS (≤ ${EXACT_MAX_UNITS} units); auto uses it when small` },
    { name: 'time-limit S', description: 'seconds for the exact solver (default 5 under auto, 60 under exact)' },
  ],
  run: partitionGraph,
  statistics(r) {
    return {
      units: r.units.length, objective: r.objective, solver: r.solver, 'makespan s': fmt(r.placement.makespan_s),
      'lower bound s': fmt(r.lower_bound.lower_bound_s), 'heft s': fmt(r.baselines.heft_s), 'refine moves': r.refine.moves,
    };
  },
  dump(r) {
    const lines = [`objective=${r.objective} solver=${r.solver} makespan_s=${fmt(r.placement.makespan_s)} lower_bound_s=${fmt(r.lower_bound.lower_bound_s)} heft_s=${fmt(r.baselines.heft_s)} refined_s=${fmt(r.baselines.refined_s)}`];
    if (r.exact) lines.push(`exact: status=${r.exact.status} objective_s=${r.exact.objective_s === null ? '-' : fmt(r.exact.objective_s)}`);
    if (r.kv) lines.push(`kv: sequences=${r.kv.sequences} context=${r.kv.context} moves=${r.kv.moves}`);
    for (const e of r.explain) lines.push(`${e.unit} -> ${e.device} finish_s=${fmt(e.finish_s)} (${e.reason})`);
    return lines.join('\n') + '\n';
  },
  nodeNote(r, _ctx, i) {
    const u = r.unit_of[i]!;
    return u >= 0 ? `on ${r.problem.device_ids[r.placement.device[u]!]}` : undefined;
  },
};
