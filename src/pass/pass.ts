// The pass contract (after MLIR's Pass and TVM's PassContext): a pass is a small declared object
// that reads the IR and earlier analyses from the context and returns its own analysis. The pass
// manager stores it under the pass's name; nothing else writes it. An analysis is read by its pass
// object, as MLIR keys analyses by type: `ctx.get(profilePass)` is a ProfileResult, and a typo
// does not compile.

import type { Diagnostics } from '../diag/diagnostics.js';
import type { Model } from '../ir/graph.js';
import type { RouteTable, Topology } from '../topology/index.js';
import type { OptionSpec, OptionValue } from './options.js';

/** Options every pass may read; each pass documents the ones it uses in `options`. */
export interface PlanOptions {
  model_path: string;
  topology_path: string | null;
  /** Symbolic dims bound by `--dim name=value`. */
  dims: Record<string, number>;
  /** The passes' options by name (`phase`, `objective`, ...), each declared once by its pass (src/pass/options.ts). */
  flags: Record<string, OptionValue>;
  /** The pipeline as resolved (recorded in plan.json). */
  pipeline?: string;
  /** With no --phase, bind a KV-cache LLM's prefill (the `hxc plan` default; analysis commands bind nothing). */
  default_phase?: boolean;
  /** Set by the variant driver (src/cli/run-passes.ts): split only these MatMuls (tp pass). */
  tp_targets?: string[];
  /**
   * Set by the variant driver: the model as the first variant imported it. Variants plan the same
   * file and no pass changes a model in place (tp and replicate make new ones), so it is read once.
   */
  imported?: import('../ir/graph.js').Model;
  /**
   * Set by the variant driver when it plans a variant again (same inputs): the partition it made the
   * first time, judged again instead of searched for (src/partition/result.ts PartitionDecision).
   */
  partition_replay?: import('../partition/result.js').PartitionDecision;
  /**
   * Set by the variant driver on the variant it weighs and lets go: the partition leaves its
   * judged polish to the second planning (replay), made only if the variant leads or trails by
   * less than the polish could plausibly win back (src/cli/run-passes.ts DEFERRED_POLISH_MARGIN).
   */
  defer_polish?: boolean;
  /**
   * Set by tests: above this many nodes the variant driver plans the variant without splits first, lets it go and plans it
   * again only if it ships, and plans no "where it paid" variant (default 100,000: the huge-graph path).
   */
  let_go_above_nodes?: number;
  /**
   * Set by tests: plan the let-go variant in a worker thread (true) or in turn (false); by default
   * in a worker when the machine has four cores or more. The plan is the same either way.
   */
  variant_threads?: boolean;
  /**
   * Set by the variant driver on a huge graph's variant without splits planned in turn (`leave`) and
   * on the tensor-parallel variant planned after it (`reuse`): one handoff, through which the first's
   * per-node results reach the second's same passes, which compute again only what the rewrite
   * changed (src/shapes/infer.ts InferMemo) and drop them once read.
   */
  leave_analyses?: AnalysisHandoff;
  reuse_analyses?: AnalysisHandoff;
  /** Set by the serving planner (src/serve/plan.ts): plan on these devices of the rack only. */
  pool?: string[];
  /** Set by the serving planner: the serve section of the prefill plan it lowers. */
  serve?: import('../plan/format.js').PlanServe;
  /** Set by `hxc replan`: the running plan, whose placement the partitioner moves from, counting the migration. */
  replan?: import('../partition/migration.js').ReplanInput;
}

/** What one variant's passes leave for another's (PlanOptions.leave_analyses), each taken once. */
export interface AnalysisHandoff {
  shapes: import('../shapes/infer.js').InferMemo | null;
  profile: import('../../passes/profile.js').ProfileMemo | null;
}

export interface PassContext {
  readonly options: PlanOptions;
  readonly diagnostics: Diagnostics;
  /** The imported model (set by the import pass). */
  model: Model;
  /** The topology, loaded on first use (default rack when none was given). */
  topology(): Topology;
  /** The topology's route table (built once). */
  routes(): RouteTable;
  /** On a large rack, the devices planned on (src/partition/narrow.ts); undefined until decided, null for all. */
  considered?: import('../partition/narrow.js').Considered | null;
  narrow?(t: Topology, considered: import('../partition/narrow.js').Considered): void;
  /** The analysis a pass provided, typed by the pass (`ctx.get(profilePass)` is a ProfileResult). */
  get<T>(pass: Pass<T, any>): T;
  has(pass: Pass<any, any>): boolean;
  /** Whether the pass of this name stored an analysis: for the pass manager, which knows passes by name only. */
  ran(name: string): boolean;
  /** Drop every analysis but those named (the manager, after a transform); the names dropped. */
  invalidate(keep: ReadonlySet<string>): string[];
  /**
   * Where a long pass is ("judging heft+relieve (candidate 5)"): shown after the pass's name on the
   * status line on a terminal, nothing otherwise; never part of an output.
   */
  progress(detail: string): void;
  /** Set by the pass manager while a pass runs: where progress goes. */
  progressTo?: ((detail: string) => void) | undefined;
  /** An option's value, typed and validated by its declaration (undefined when not given). */
  option<T extends OptionValue>(spec: OptionSpec<T>): T | undefined;
}

/** `R` is what run returns: the analysis T itself, or a Promise of it for passes that await a solver. */
export interface Pass<T = unknown, R extends T | Promise<T> = T> {
  name: string;
  summary: string;
  /** Passes whose analyses this one reads; the manager runs them first. */
  requires: string[];
  /** Passes whose analyses this one reads when they ran (never pulled in): tp, replicate, moe. */
  uses?: string[];
  /**
   * `transform`: it rewrites ctx.model (tp, replicate); every analysis computed before it describes
   * a graph that is gone, so the manager drops them and later passes compute them again.
   * Default `analysis`: it only reads.
   */
  kind?: 'analysis' | 'transform';
  /** The options it reads (declared once, by the pass that owns each; others list the same object). */
  options: readonly OptionSpec[];
  run(ctx: PassContext): R;
  /** Named counters shown by `--time-passes` and in dumps ("nodes: 530"). */
  statistics(result: T, ctx: PassContext): Record<string, number | string>;
  /** The analysis in a stable textual form (for --dump-dir and golden tests). */
  dump(result: T, ctx: PassContext): string;
  /** Optional per-node note appended to that node's line when the IR is printed. */
  nodeNote?(result: T, ctx: PassContext, node: number): string | undefined;
}
