// What the partition pass returns: the shipped placement, the judge and its verdict, bounds, every
// candidate judged, the baselines, KV capacity, explanations and, when replanning, the migration.

import type { DiagCode, DiagInfo } from '../diag/diagnostics.js';
import type { LowerBound } from './bounds.js';
import type { Unit } from './build.js';
import type { ExactResult } from './exact.js';
import type { Judge, LatencyVerdict, Verdict } from './judge.js';
import type { PipelineResult } from './pipeline.js';
import type { Placement, PlacementProblem } from './problem.js';
import type { ExplainEntry, JudgedPlan, KvCapacity, Objective, PlanEstimate } from '../plan/format.js';
import type { MigrationReport } from './migration.js';

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
  /** Warnings about this plan, given when it is the one planned (not per stage cut weighed, nor again when a decision is replayed). */
  said: { code: DiagCode; message: string; info: DiagInfo }[];
  problem: PlacementProblem;
  /** The shipped placement: devices, and the start times that order each device's steps. */
  placement: Placement;
  /** Throughput is simulated with pipeline rounds (simulate.ts). */
  pipelined: boolean;
  judge: Judge;
  /**
   * The shipped placement judged. A variant weighed and let go (polish_deferred) is weighed by its
   * latency alone: its throughput is simulated only if it ships, when it is planned again.
   */
  verdict: Verdict | LatencyVerdict;
  lower_bound: LowerBound;
  throughput_bound: ThroughputBound;
  /** Every candidate considered, judged; the baselines plan.json reports are among them. */
  candidates: JudgedPlan[];
  /** The plans a user would write by hand, as plan.json reports them (the exact solver's record apart). */
  baselines: Omit<PlanEstimate['baselines'], 'exact'>;
  exact: ExactResult | null;
  pipeline: PipelineResult | null;
  search: PlanEstimate['search'];
  kv: KvCapacity | null;
  /** Why each unit is where it is, on the shipped plan (computed when first asked: a pipeline variant that is not shipped never pays for it). */
  explain(): ExplainEntry[];
  /** Tensor-parallel splits (by MatMul name) whose parts the best plan ignoring the spread rule put on different devices. */
  tp_paid: string[];
  /** The shipped plan has no split, or every split's parts on different devices. */
  tp_eligible: boolean;
  /** The judged polish was left to a second planning (PlanOptions.defer_polish): the decision records the plan before it. */
  polish_deferred: boolean;
  /** Set by the variant driver: the pipeline variants weighed (with and without tensor parallelism). */
  variants?: NonNullable<PlanEstimate['variants']>;
  /** The stage cuts planned on (fine and coarse), when there were two: each one's best plan. */
  stage_cuts?: NonNullable<PlanEstimate['stage_cuts']>;
  /** When replanning (`hxc replan`): the migration from the running plan. */
  migration: MigrationReport | null;
  /** The stage cut it was planned on: 0 the stage pass's fine cut, 1 its coarse cut. */
  cut: number;
}

/**
 * What a partition decided: enough to remake its result on the same inputs without searching
 * again. The variant driver (src/cli/run-passes.ts) lets a huge graph's first pipeline variant go
 * while it plans the next and, when the first is the one shipped, plans it again with this record:
 * every pass runs as before, and the partition rebuilds its problem and judges the recorded
 * placement instead of weighing every candidate again (same inputs, same plan).
 */
export type PartitionDecision = Pick<
  PartitionResult,
  | 'objective'
  | 'solver'
  | 'chosen'
  | 'placement'
  | 'candidates'
  | 'baselines'
  | 'exact'
  | 'pipeline'
  | 'search'
  | 'kv'
  | 'tp_paid'
  | 'tp_eligible'
  | 'polish_deferred'
  | 'cut'
  | 'stage_cuts'
> & {
  /** The problem it was made on, to check a replay plans the same one: its unit names and devices. */
  unit_names: readonly string[];
  device_ids: readonly string[];
};

/** The decision of a partition made without a migration (hxc replan's searches are not replayed). */
export function partitionDecision(r: PartitionResult): PartitionDecision | null {
  if (r.migration) return null;
  const { objective, solver, chosen, placement, candidates, baselines, exact, pipeline, search, kv, tp_paid, tp_eligible, polish_deferred, cut, stage_cuts } =
    r;
  return {
    objective,
    solver,
    chosen,
    placement,
    candidates,
    baselines,
    exact,
    pipeline,
    search,
    kv,
    tp_paid,
    tp_eligible,
    polish_deferred,
    cut,
    ...(stage_cuts ? { stage_cuts } : {}),
    unit_names: r.problem.unit_names,
    device_ids: r.problem.device_ids,
  };
}
