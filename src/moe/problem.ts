// The expert-placement problem of one MoE layer (the model src/moe/place.ts and its baselines
// share): devices and their speeds, the communication model over the topology's routes, traffic
// and the one `evaluate` every placement is scored by, and EPLB's replication rule.

import type { Topology } from '../topology/index.js';

export interface PlaceDevice {
  id: string;
  /** Effective FLOP/s for the experts' dtype: peak × efficiency. */
  speed: number;
  /** Bytes of this layer's expert weights the device may hold. */
  memory_bytes: number;
  /** Server the device sits in (EPLB packs expert groups per server). */
  host: string;
}

/**
 * Dispatch/combine cost as a function of the tokens each device receives from other devices
 * ("remote tokens"), from the routes (DESIGN.md cost model: latency + bytes / bottleneck bandwidth;
 * a `shared` link splits its bandwidth among all transfers on it, other links carry each transfer at
 * full bandwidth, and a transfer occupies links, not devices).
 */
export interface CommModel {
  /** Per device: the slowest single transfer into it (dispatch): latency, and seconds per remote token. */
  in_latency_s: Float64Array;
  in_per_token_s: Float64Array;
  /** The same out of it (combine). */
  out_latency_s: Float64Array;
  out_per_token_s: Float64Array;
  /** Shared links: seconds of the link per remote token of each device, dispatch and combine. */
  shared: { name: string; latency_s: number; in_per_token_s: Float64Array; out_per_token_s: Float64Array }[];
}

export interface PlacementProblem {
  name: string;
  experts: number;
  top_k: number;
  /** Tokens per step (the bound batch × sequence). */
  step_tokens: number;
  /** Expected token-expert assignments per step, per expert. */
  tokens: Float64Array;
  /** E × E: tokens routed to both a and b per step; the diagonal is `tokens`. */
  coactivation: Float64Array;
  flops_per_token: Float64Array;
  param_bytes: Float64Array;
  /** Bytes one token carries to one device (hidden × dtype); the same comes back. */
  token_bytes: number;
  devices: PlaceDevice[];
  /** Share of the step's tokens produced on each device (sums to 1). */
  source_share: Float64Array;
  comm: CommModel;
  /** Redundant replicas beyond one per expert (`--expert-slots`). */
  slots: number;
  /** Expert groups (DeepSeek-V3's group-limited routing) for the EPLB baseline; 1 when the model has none. */
  groups: number;
}

export interface Replica {
  expert: number;
  device: number;
  /** Expected tokens per step this replica serves. */
  tokens: number;
}

export interface Placement {
  method: 'hxc' | 'round-robin' | 'greedy';
  replicas: Replica[];
}

export interface Metrics {
  /** Seconds of expert compute per device. */
  compute_s: number[];
  /** Tokens each device receives from other devices per step. */
  remote_tokens: number[];
  dispatch_s: number;
  combine_s: number;
  /** The layer's expert time: dispatch + the slowest device's compute + combine. */
  time_s: number;
  /** max / mean of compute_s over the expert devices. */
  imbalance: number;
  /** Dispatch + combine bytes crossing between devices, per token of the step (all-to-all bytes). */
  bytes_per_token: number;
  memory_bytes: number[];
  /** Devices whose expert weights exceed their budget. */
  over_memory: number;
}

// ---------------------------------------------------------------------------------------------
// Communication model from routes.

export interface RouteInfo {
  latency_s: number;
  bandwidth_bytes_per_s: number;
  links: string[];
}

/**
 * Remote tokens of device d come from source s in proportion σ_s / (1 − σ_d). Each (s, d) pair uses
 * the route chosen for its expected message (σ_s·T·k/n tokens of B bytes). Per device the slowest
 * single transfer in and out is kept (max latency, max seconds per token: an upper bound of the max of
 * the affine costs); per shared link, the seconds it spends per remote token of each device.
 */
export function commModel(
  n: number,
  sourceShare: Float64Array,
  tokenBytes: number,
  stepTokens: number,
  topK: number,
  route: (from: number, to: number, bytes: number) => RouteInfo,
  links: readonly { name: string; shared: boolean; bandwidth_bytes_per_s: number; latency_s: number }[],
): CommModel {
  const m: CommModel = {
    in_latency_s: new Float64Array(n),
    in_per_token_s: new Float64Array(n),
    out_latency_s: new Float64Array(n),
    out_per_token_s: new Float64Array(n),
    shared: links
      .filter((l) => l.shared)
      .map((l) => ({ name: l.name, latency_s: l.latency_s, in_per_token_s: new Float64Array(n), out_per_token_s: new Float64Array(n) })),
  };
  const sharedIndex = new Map(m.shared.map((l, i) => [l.name, i]));
  const bandwidth = new Map(links.map((l) => [l.name, l.bandwidth_bytes_per_s]));
  for (let d = 0; d < n; d++) {
    const elsewhere = 1 - sourceShare[d]!;
    for (let s = 0; s < n; s++) {
      const share = sourceShare[s]!;
      if (s === d || share <= 0 || tokenBytes <= 0 || elsewhere <= 0) continue;
      const w = share / elsewhere;
      const bytes = (share * stepTokens * topK * tokenBytes) / n;
      for (const [dir, r] of [
        ['in', route(s, d, bytes)],
        ['out', route(d, s, bytes)],
      ] as const) {
        const perToken = (w * tokenBytes) / r.bandwidth_bytes_per_s;
        if (dir === 'in') {
          m.in_latency_s[d] = Math.max(m.in_latency_s[d]!, r.latency_s);
          m.in_per_token_s[d] = Math.max(m.in_per_token_s[d]!, perToken);
        } else {
          m.out_latency_s[d] = Math.max(m.out_latency_s[d]!, r.latency_s);
          m.out_per_token_s[d] = Math.max(m.out_per_token_s[d]!, perToken);
        }
        for (const name of r.links) {
          const k = sharedIndex.get(name);
          if (k === undefined) continue;
          const arr = dir === 'in' ? m.shared[k]!.in_per_token_s : m.shared[k]!.out_per_token_s;
          arr[d]! += (w * tokenBytes) / bandwidth.get(name)!;
        }
      }
    }
  }
  m.shared = m.shared.filter((l) => l.in_per_token_s.some((v) => v > 0) || l.out_per_token_s.some((v) => v > 0));
  return m;
}

/** No communication (one device, or tokens that cost nothing to move). */
export function noComm(n: number): CommModel {
  return {
    in_latency_s: new Float64Array(n),
    in_per_token_s: new Float64Array(n),
    out_latency_s: new Float64Array(n),
    out_per_token_s: new Float64Array(n),
    shared: [],
  };
}

/** Servers per device: the topology's hosts, else groups joined by links inside a server (not ethernet/infiniband). */
export function hostsOf(topo: Pick<Topology, 'devices' | 'links' | 'hosts'>): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of topo.devices) if (d.host) out.set(d.id, d.host);
  if (out.size === topo.devices.length) return out;
  const parent = new Map(topo.devices.map((d) => [d.id, d.id]));
  const find = (x: string): string => {
    while (parent.get(x) !== x) x = parent.get(x)!;
    return x;
  };
  for (const l of topo.links) {
    if (l.kind === 'ethernet' || l.kind === 'infiniband') continue;
    for (const other of l.devices.slice(1)) {
      const a = find(l.devices[0]!);
      const b = find(other);
      // biome-ignore lint/complexity/useMathMinMax: device ids are strings
      if (a !== b) parent.set(a < b ? b : a, a < b ? a : b);
    }
  }
  for (const d of topo.devices) if (!out.has(d.id)) out.set(d.id, `host:${find(d.id)}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Traffic and evaluation, shared by all methods.

/**
 * Tokens device d receives from other devices, given the experts it holds and their token shares.
 * A token is sent to a device once however many of its experts the token chose there (top-k
 * dispatch); by inclusion–exclusion to pairs the tokens a device serves are
 * hits = Σ_e x_e − Σ_{a<b} C_ab·(x_a/t_a)·(x_b/t_b), clamped to [max x_e, min(T, Σ x_e)], a replica's
 * tokens taken as an independent share of its expert's. A token produced on d whose expert has a
 * replica on d is served there (local-first replica choice, as SGLang's EPLB dispatch map does:
 * sglang/srt/eplb/expert_location.py, compute_logical_to_rank_dispatch_physical_map): replica r serves
 * min(x_r, σ_d·t_e) local tokens. The rest of the hits, pro rata, come from elsewhere.
 */
export function remoteTokens(p: PlacementProblem, d: number, experts: ArrayLike<number>, x: ArrayLike<number>, count = experts.length): number {
  const n = p.experts;
  let sum = 0;
  let most = 0;
  let pairs = 0;
  let local = 0;
  const share = p.source_share[d]!;
  for (let i = 0; i < count; i++) {
    const a = experts[i]!;
    const xa = x[i]!;
    if (xa <= 0) continue;
    sum += xa;
    if (xa > most) most = xa;
    const ta = p.tokens[a]!;
    local += Math.min(xa, share * ta);
    for (let j = 0; j < i; j++) {
      const b = experts[j]!;
      const tb = p.tokens[b]!;
      if (a !== b && tb > 0 && x[j]! > 0) pairs += (p.coactivation[a * n + b]! * xa * x[j]!) / (ta * tb);
    }
  }
  if (sum <= 0) return 0;
  const hits = Math.min(p.step_tokens > 0 ? Math.max(p.step_tokens, most) : sum, Math.max(most, sum - pairs));
  return settle(hits * Math.max(0, 1 - local / sum), sum);
}

/** Rounding residue of "everything is local" is nothing, not a transfer that pays route latency. */
export function settle(remote: number, scale: number): number {
  return remote <= 1e-9 * scale ? 0 : remote;
}

/** Dispatch and combine seconds: the slowest single transfer or the busiest shared link, each way. */
export function commTimes(c: CommModel, remote: ArrayLike<number>, n: number): { dispatch: number; combine: number } {
  let din = 0;
  let dout = 0;
  for (let d = 0; d < n; d++) {
    const r = remote[d]!;
    if (r <= 0) continue;
    din = Math.max(din, c.in_latency_s[d]! + r * c.in_per_token_s[d]!);
    dout = Math.max(dout, c.out_latency_s[d]! + r * c.out_per_token_s[d]!);
  }
  for (const l of c.shared) {
    let tin = 0;
    let tout = 0;
    for (let d = 0; d < n; d++) {
      const r = remote[d]!;
      tin += r * l.in_per_token_s[d]!;
      tout += r * l.out_per_token_s[d]!;
    }
    if (tin > 0) din = Math.max(din, l.latency_s + tin);
    if (tout > 0) dout = Math.max(dout, l.latency_s + tout);
  }
  return { dispatch: din, combine: dout };
}

export function evaluate(p: PlacementProblem, placement: Placement): Metrics {
  const n = p.devices.length;
  const flops = new Float64Array(n);
  const memory = new Array<number>(n).fill(0);
  const onDevice: { experts: number[]; x: number[] }[] = Array.from({ length: n }, () => ({ experts: [], x: [] }));
  for (const r of placement.replicas) {
    flops[r.device]! += r.tokens * p.flops_per_token[r.expert]!;
    const slot = onDevice[r.device]!;
    const k = slot.experts.indexOf(r.expert);
    if (k >= 0)
      slot.x[k]! += r.tokens; // two replicas of one expert on one device act as one
    else {
      slot.experts.push(r.expert);
      slot.x.push(r.tokens);
      memory[r.device]! += p.param_bytes[r.expert]!;
    }
  }
  const compute_s = Array.from(flops, (f, d) => f / p.devices[d]!.speed);
  const remote = onDevice.map((o, d) => remoteTokens(p, d, o.experts, o.x));
  const { dispatch, combine } = commTimes(p.comm, remote, n);
  const mean = compute_s.reduce((a, b) => a + b, 0) / Math.max(1, n);
  const slowest = Math.max(0, ...compute_s);
  return {
    compute_s,
    remote_tokens: remote,
    dispatch_s: dispatch,
    combine_s: combine,
    time_s: dispatch + slowest + combine,
    imbalance: mean > 0 ? slowest / mean : 1,
    bytes_per_token: p.step_tokens > 0 ? (remote.reduce((a, b) => a + b, 0) * 2 * p.token_bytes) / p.step_tokens : 0,
    memory_bytes: memory,
    over_memory: memory.filter((m, d) => m > p.devices[d]!.memory_bytes).length,
  };
}

// ---------------------------------------------------------------------------------------------
// Replication: EPLB's rule (eplb.py replicate_experts) — each extra slot to the expert with the most
// work per replica — on FLOP work so that experts of different sizes compare; at most one replica per
// device, and only while the weights still fit somewhere.

export function replicaCounts(p: PlacementProblem, weight: (e: number) => number, slots: number, maxPerExpert: number, memoryAware: boolean): Int32Array {
  const count = new Int32Array(p.experts).fill(1);
  let free = p.devices.reduce((s, d) => s + d.memory_bytes, 0) - p.param_bytes.reduce((s, b) => s + b, 0);
  for (let s = 0; s < slots; s++) {
    let best = -1;
    for (let e = 0; e < p.experts; e++) {
      if (count[e]! >= maxPerExpert || (memoryAware && p.param_bytes[e]! > free)) continue;
      if (best < 0 || weight(e) / count[e]! > weight(best) / count[best]!) best = e;
    }
    if (best < 0) break;
    count[best]!++;
    free -= p.param_bytes[best]!;
  }
  return count;
}

export function sortReplicas(replicas: Replica[]): Replica[] {
  return replicas.sort((a, b) => a.expert - b.expert || a.device - b.device);
}
