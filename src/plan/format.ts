// The plan directory's formats, declared once: plan.json (`hxc-plan/v1`, PlanV1) and delta.json
// (`hxc-delta/v1`, DeltaV1). The lower pass builds them, src/plan/read.ts validates a plan.json
// against its JSON Schema (src/schema/) and checks it is consistent, and the runtime, the CLI and
// the bench read them through these types — nothing outside passes/ imports a pass to know what a
// plan holds. A field added here is added to the schema too: every plan read back (hxc run,
// simulate, check, diff, replan — and the tests that drive them on real plans) is validated
// against the schema first.

import type { ProgramMeta } from './programs.js';
import type { Considered } from '../partition/narrow.js';
import type { IoShard, Split } from '../transform/tensor-parallel.js';
import type { InputSpec } from './inputs.js';

export const PLAN_FORMAT = 'hxc-plan/v1';
export const DELTA_FORMAT = 'hxc-delta/v1';

/** What a plan is made for: one request's latency, or pipelined requests' throughput. */
export type Objective = 'latency' | 'throughput';

/** A plan judged by the simulator: a candidate or a baseline in plan.json. */
export interface JudgedPlan {
  name: string;
  /** What it is, for people. */
  label: string;
  /** Devices it runs on. */
  devices: string[];
  latency_s: number;
  /**
   * Null when not simulated: a latency plan of a huge graph judges its candidates by latency alone
   * (a run of R requests costs R times one) and simulates the throughput of the plan it ships.
   */
  throughput_per_s: number | null;
  /** The throughput figure is for the pipelined step order (rounds). */
  pipelined: boolean;
  /** The scheduled memory fits every device. */
  fits: boolean;
  /** KV-cache sequences of --context tokens it holds (models with state). */
  kv_sequences?: number;
  /** With tensor-parallel splits: whether every split's parts run on different devices (else it is not eligible). */
  tp_spread?: boolean;
  /** With expert replicas: whether no two copies of an expert share a device (else it is not eligible). */
  copies_apart?: boolean;
  /** When replanning: what going from the running plan to this one moves, and whether it keeps to the limits. */
  migration?: { moves: number; forced: number; bytes: number; optional_bytes: number; seconds: number; within_limits: boolean };
}

export interface ExplainAlternative {
  device: string;
  /** The plan's figure for its objective with this unit moved there, simulated; null when not simulated. */
  latency_s: number | null;
  throughput_per_s: number | null;
  /** When not simulated: a bound that already shows the move loses (contention-free, exact for its model). */
  latency_at_least_s?: number;
  throughput_at_most_per_s?: number;
  why: string;
}

export interface ExplainEntry {
  unit: string;
  stage: string;
  device: string;
  /** When the unit's compute step ends in the shipped schedule. */
  finish_s: number;
  /** What decided it: the user, a capability limit, memory, communication, or the fastest device. */
  reason: string;
  /** Its weights and the state it owns: what moving it to another device moves. */
  resident_bytes: number;
  /** The best other devices for it, each judged by moving this unit there (at most 3). */
  alternatives: ExplainAlternative[];
}

export interface KvCapacity {
  /** Concurrent sequences of `context` tokens the plan's free memory holds (min over state-owning devices). */
  sequences: number;
  context: number;
  /** Per state-owning device: free bytes after weights and activations, state bytes per sequence, sequences. */
  devices: { id: string; free_bytes: number; state_bytes_per_sequence: number; sequences: number }[];
  /** Units moved to raise the smallest device's cap (only with --min-sequences). */
  moves: number;
  /** What was asked (--min-sequences), and the plan before and after the moves that lifted it. */
  asked: number | null;
  before: { sequences: number; latency_s: number; throughput_per_s: number } | null;
  after: { sequences: number; latency_s: number; throughput_per_s: number } | null;
}

/** plan.json `experts`: one entry per expert of each routed or dense MoE layer, as the plan places it. */
export interface PlanExpert {
  layer: number;
  expert: number;
  /** Expected tokens routed to it per step (from --routing, else uniform). */
  tokens: number;
  /**
   * Where its body runs: one replica per executable copy, the copies splitting its tokens evenly;
   * `device` runs the copy's first node, `devices` every device its nodes run on (a body cut into
   * pieces, or with tensor-parallel parts, spans several).
   */
  replicas: { device: string; devices: string[]; tokens: number }[];
  /** IPUs on the route from the router's device to a replica, able to run the layer's dispatch ops. */
  dispatch_via: string[];
}

export interface DeviceMemoryV1 {
  weights_bytes: number;
  peak_activation_bytes: number;
  state_bytes: number;
  total_bytes: number;
  capacity_bytes: number;
}

export type PlanStep =
  | {
      op: 'compute';
      unit: string | undefined;
      nodes: string[] | undefined;
      program: string | null;
      duration_s: number;
      round: number;
      start_s: number;
      end_s: number;
    }
  | {
      op: 'send' | 'recv';
      value: string | undefined;
      bytes: number | undefined;
      peer: string | undefined;
      transfer: number | undefined;
      round: number;
      start_s: number;
      end_s: number;
    };

export interface PlanDevice {
  id: string;
  kind: string | undefined;
  /** The device's folder of ONNX programs (one per run of consecutive compute steps), null without programs. */
  program: string | null;
  steps: PlanStep[];
  memory: DeviceMemoryV1;
}

export interface PlanTransfer {
  value: string;
  bytes: number;
  from: string;
  to: string;
  route: string[];
  hops: string[];
  /** When its bytes leave (the send step). */
  start_s: number;
  /** When its bytes are all across the links (trace.json's transfer bar); the receiving device takes them at its recv step, when it gets there. */
  end_s: number;
}

export interface PlanState {
  name: string;
  kind: 'kv-cache' | 'annotated';
  bytes: number;
  bytes_per_token: number;
  /** The device holding most of its bytes: each tensor lives where it is written. */
  owner: string | null;
  /** Every device holding some of it, most first, when they are several (a layer's key and value written apart). */
  owners?: { device: string; bytes: number }[];
  inputs: string[];
  outputs: string[];
  /** Readers placed away from a tensor they read: each node, where it runs, the state bytes it reads per step from tensors held elsewhere. */
  moves: { node: string; device: string; bytes: number }[];
}

export interface PlanEstimate {
  /** Everything here is the simulator's (src/partition/judge.ts), the model that chose the plan. */
  latency_s: number;
  throughput_per_s: number;
  throughput_requests: number;
  /** Throughput simulated with pipeline rounds (a device runs an early segment of the next request while a late one waits). */
  pipelined: boolean;
  lower_bound_s: number;
  throughput_upper_per_s: number;
  /** For the objective: latency over its lower bound, or the throughput bound over throughput, minus 1. */
  gap: number | null;
  /** `milp_s`: the exact MILP's proven bound, when it ran (src/partition/bounds.ts withMilpBound). */
  lower_bounds: { critical_path_s: number; work_over_speed_s: number; memory_spread_s: number; milp_s?: number };
  devices: Record<string, { busy_s: number; utilisation: number; memory_bytes: number; capacity_bytes: number }>;
  link_bytes: Record<string, number>;
  /** Which candidate was shipped, and every candidate judged (the shipped plan is the best of them for the objective). */
  chosen: string;
  candidates: JudgedPlan[];
  baselines: {
    heft: JudgedPlan | null;
    single_device: JudgedPlan | null;
    fallback: JudgedPlan | null;
    even_split: JudgedPlan | null;
    tensor_parallel: JudgedPlan | null;
    exact: { status: string; contention_free_s: number | null; gap: number | null } | null;
  };
  search: {
    refine_moves: number;
    refine_sweeps: number;
    polish_moves: number;
    polish_sweeps: number;
    /** Single moves explain's scan found better, taken (src/partition/pool.ts takeBetterMoves). */
    explain_moves: number;
    evaluations: number;
    simulations: number;
  };
  /** Pipeline variants weighed (with and without tensor-parallel splits), when there were several. */
  variants: { name: string; splits: number; latency_s: number; throughput_per_s: number | null; eligible: boolean; shipped: boolean }[] | null;
  /** The stage cuts weighed (fine and coarse), when there were two (passes/stage.ts). */
  stage_cuts: { stages: number; units: number; latency_s: number; throughput_per_s: number | null; shipped: boolean }[] | null;
  pipeline: { bottleneck_s: number; chain: string; segments: { device: string; units: [number, number]; compute_s: number; transfer_in_s: number }[] } | null;
  kv: KvCapacity | null;
}

export interface PlanV1 {
  format: typeof PLAN_FORMAT;
  model: {
    name: string;
    file: string;
    sha256: string;
    format: string;
    file_bytes: number;
    /** Where the source model was, relative to the plan directory (hxc run --check and hxc replan read it). */
    path_from_plan: string;
  };
  topology: {
    name: string;
    sha256: string;
    /** Where the rack file was, relative to the plan directory; null for the built-in rack (hxc replan reads it). */
    path_from_plan?: string | null;
    links: { name: string; kind: string; bandwidth_bytes_per_s: number; latency_s: number; shared: boolean }[];
    /** On a large rack, the devices planned on and why (src/partition/narrow.ts). */
    considered?: Considered;
  };
  /** Symbolic dims bound (by the user, or by --phase and its lengths). */
  dims: Record<string, number>;
  /** Data-dependent sizes costed at their expectation (tokens per expert), not bound by anyone. */
  estimated_dims: Record<string, number>;
  inputs: InputSpec[];
  outputs: { name: string; dtype: string | null; shape: (number | string)[] | null }[];
  phase: string | null;
  /** The LLM symbols (batch, seq, past, total) hxc run uses for --decode-steps. */
  roles: { batch?: string; seq?: string; past?: string; total?: string };
  /** Positions the model can address (a position table's rows), null when unbounded. */
  max_positions: number | null;
  objective: Objective;
  solver: 'heuristic' | 'exact';
  /** The planning options it was made with (files relative to the plan directory): what hxc replan makes it again with. */
  options?: { flags: Record<string, string | number | boolean>; dims: Record<string, number>; pool?: string[] };
  pipeline: string;
  /** Every source node name → device id. */
  assignment: Record<string, string>;
  devices: PlanDevice[];
  transfers: PlanTransfer[];
  state: PlanState[];
  experts: PlanExpert[];
  estimate: PlanEstimate;
  explain: ExplainEntry[];
  /** Executable expert replicas (the replicate pass): per expert, its share input, row-part values and each copy's device. */
  expert_replicas: { key: string; input: string; parts: string[]; devices: string[] }[];
  /** Tensor parallelism applied (the tp pass): MatMuls split column-wise (or in Megatron pairs) into k parts. */
  tensor_parallel: {
    k: number;
    /** Why k (the tp pass): `auto: k-way over …` names the group it proposed the splits for. */
    reason: string;
    /** The identical accelerators the tp pass proposed the splits for; the parts run where `assignment` puts them (the partitioner may choose others). */
    group: string[];
    splits: Split[];
    /** Graph inputs and outputs the plan holds as parts (a head-sharded KV cache): `inputs` and `outputs` list the parts; hxc run joins and splits at the boundary. */
    io?: IoShard[];
  } | null;
  /** Values whose second dim counts one expert's routed tokens (hxc run writes them as hxc-routing/v1). */
  expert_probes: { value: string; layer: number; expert: number }[];
  /** A serving plan (`--phase serve`): this is its prefill plan; the decode plan is the folder `serve.decode_plan`. */
  serve?: PlanServe;
  /** Program → sha256, size and boundary values (tampering is caught by the hash), and its pack when packed (src/plan/programs.ts). */
  programs: Record<string, ProgramMeta>;
}

/** delta.json: what `hxc replan` moved from the running plan, and what it buys. */
export interface DeltaV1 {
  format: typeof DELTA_FORMAT;
  /** The running plan: its directory (relative to this one), plan.json's sha256 and what it estimated when it was made. */
  from: { dir: string; plan_sha256: string; latency_s: number; throughput_per_s: number };
  objective: 'latency' | 'throughput';
  amortize_requests: number;
  limits: { max_moves: number | null; migration_budget_bytes: number | null };
  moved: { unit: string; from: string | null; to: string; bytes: number; seconds: number; why: string }[];
  moves: number;
  forced_moves: number;
  migration_bytes: number;
  /** Over the routes, transfers into different devices at once: the busiest receiving device's sum. */
  migration_s: number;
  within_limits: boolean;
  /** The running plan judged under today's inputs (routing, calibration, rack); null when it cannot run as it was. */
  running_now: { latency_s: number; throughput_per_s: number; moves: number } | null;
  new: { latency_s: number; throughput_per_s: number };
  /** The best plan made from scratch under the same inputs, and what going there would move. */
  fresh: { name: string; latency_s: number; throughput_per_s: number; moves: number; bytes: number; seconds: number } | null;
}

/** What a serving deployment's simulator replays: service times from the plans of each phase (src/serve/sim.ts). */
export interface ServeModelV1 {
  disaggregated: boolean;
  prefill: { replicas: number; prompt_tokens: number; latency_s: number; interval_s: number };
  decode: { replicas: number; context_tokens: number; max_batch: number; step_s_batch1: number; step_s_batch_max: number };
  /**
   * The KV cache's move from the prefill to the decode pool: bytes_per_token in all; `lanes` move at
   * once (one per pair of KV owners over its route, one per shared link several pairs cross) and
   * the handoff takes the slowest; bandwidth and latency are the slowest lane's at the planned
   * prompt. A plan without `lanes` (written before them) moves over its one route.
   */
  handoff: {
    bytes_per_token: number;
    bandwidth_bytes_per_s: number;
    latency_s: number;
    layers: number;
    lanes?: HandoffLane[];
  } | null;
}

/** One lane of a KV handoff (src/serve/plan.ts handoffPairs): bytes per prompt token over a bandwidth, after a latency. */
export interface HandoffLane {
  bytes_per_token: number;
  bandwidth_bytes_per_s: number;
  latency_s: number;
}

export interface ServeFiguresV1 {
  rate_per_s: number;
  goodput_per_s: number;
  slo_attainment: number;
  ttft_p50_s: number;
  ttft_p90_s: number;
  tpot_p50_s: number;
  tpot_p90_s: number;
}

/** plan.json `serve`: the pools, the KV handoff, and the goodput the workload gets (src/serve/plan.ts). */
export interface PlanServe {
  workload: {
    file: string;
    rates_per_s: number[];
    prompt_tokens_mean: number;
    output_tokens_mean: number;
    slo: { ttft_p90_s: number; tpot_p90_s: number };
    requests: number;
    seed: number;
  };
  disaggregated: boolean;
  /** The candidate shipped, and why. */
  choice: string;
  why: string;
  pools: { prefill: string[]; decode: string[] };
  replicas: { prefill: number; decode: number };
  /** Per request of the mean prompt: the state pass's bytes per token × prompt tokens, over the route between the pools' KV owners. */
  kv_handoff: {
    bytes_per_token: number;
    prompt_tokens: number;
    bytes_per_request: number;
    from: string;
    to: string;
    route: string[];
    hops: string[];
    seconds_per_request: number;
    streamed_layers: number;
    /** Every pair of KV owners the cache moves between at once, slowest first (`from`, `to` and `route` above are the first's). */
    pairs?: { from: string; to: string; bytes_per_token: number; route: string[] }[];
  } | null;
  /** Mean over the workload's rates (the ranking figure), and per rate. */
  goodput_per_s: number;
  colocated_goodput_per_s: number | null;
  /** The highest arrival rate at which 90% of requests still meet both SLOs (DistServe's measure). */
  capacity_per_s: number;
  /** The 90th percentiles of time to first token and time per output token: over a rate sweep, the worst rate's. */
  ttft_p90_s: number;
  tpot_p90_s: number;
  /** Mean over the rates. */
  slo_attainment: number;
  rates: ServeFiguresV1[];
  model: ServeModelV1;
  /** The decode plan's folder, relative to this plan. */
  decode_plan: string;
  candidates: {
    name: string;
    disaggregated: boolean;
    pools: { prefill: string[]; decode: string[] };
    replicas: { prefill: number; decode: number };
    goodput_per_s: number;
    capacity_per_s: number;
    ttft_p90_s: number;
    tpot_p90_s: number;
  }[];
}
