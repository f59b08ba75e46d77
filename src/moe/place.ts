// Expert placement for one MoE layer, and the two baselines it is measured against. The problem is a
// heterogeneous makespan problem (Graham 1969; Lenstra, Shmoys, Tardos 1990 for unrelated machines):
// expert e carries work tokens_e × flops_e per step, its replicas split that work, device d runs its
// share at `speed` FLOP/s and holds at most `memory_bytes` of expert weights, and the tokens travel
// from the devices that produce them (dispatch) and back (combine) over the topology's routes.
// A layer's time is dispatch + the slowest device's expert compute + combine (DeepEP-style phases).
//   hxc:         replicate (highest work per replica, EPLB's rule, on FLOPs); place replicas largest
//                first on the device whose compute finishes earliest (LPT, Graham 1969), near-ties
//                broken by co-activation affinity, then by the device's own traffic cost; split each
//                expert's tokens over its replicas by water-filling (block coordinate descent to the
//                lexicographically optimal split, Fujishige 1980); then pairwise interchange on the
//                slowest device (Finn & Horowitz 1979), and swaps that put co-activated experts
//                together, both judged on the layer time (traffic priced over the routes).
//   round-robin: replicas in expert order (redundant slots to experts 0, 1, … in turn) dealt to
//                devices in turn; tokens split evenly.
//   greedy:      DeepSeek's EPLB (github.com/deepseek-ai/EPLB, eplb.py): pack expert groups onto
//                hosts, replicate the expert with the highest load per replica, pack replicas onto
//                devices heaviest first into the lightest device with a free slot; tokens split evenly.
// Every placement is scored by the same `evaluate`.

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
export function commModel(n: number, sourceShare: Float64Array, tokenBytes: number, stepTokens: number, topK: number,
  route: (from: number, to: number, bytes: number) => RouteInfo, links: readonly { name: string; shared: boolean; bandwidth_bytes_per_s: number; latency_s: number }[]): CommModel {
  const m: CommModel = {
    in_latency_s: new Float64Array(n), in_per_token_s: new Float64Array(n), out_latency_s: new Float64Array(n), out_per_token_s: new Float64Array(n),
    shared: links.filter((l) => l.shared).map((l) => ({ name: l.name, latency_s: l.latency_s, in_per_token_s: new Float64Array(n), out_per_token_s: new Float64Array(n) })),
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
      for (const [dir, r] of [['in', route(s, d, bytes)], ['out', route(d, s, bytes)]] as const) {
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
          arr[d] += (w * tokenBytes) / bandwidth.get(name)!;
        }
      }
    }
  }
  m.shared = m.shared.filter((l) => l.in_per_token_s.some((v) => v > 0) || l.out_per_token_s.some((v) => v > 0));
  return m;
}

/** No communication (one device, or tokens that cost nothing to move). */
export function noComm(n: number): CommModel {
  return { in_latency_s: new Float64Array(n), in_per_token_s: new Float64Array(n), out_latency_s: new Float64Array(n), out_per_token_s: new Float64Array(n), shared: [] };
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
function settle(remote: number, scale: number): number {
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
    flops[r.device] += r.tokens * p.flops_per_token[r.expert]!;
    const slot = onDevice[r.device]!;
    const k = slot.experts.indexOf(r.expert);
    if (k >= 0) slot.x[k] += r.tokens; // two replicas of one expert on one device act as one
    else {
      slot.experts.push(r.expert);
      slot.x.push(r.tokens);
      memory[r.device] += p.param_bytes[r.expert]!;
    }
  }
  const compute_s = Array.from(flops, (f, d) => f / p.devices[d]!.speed);
  const remote = onDevice.map((o, d) => remoteTokens(p, d, o.experts, o.x));
  const { dispatch, combine } = commTimes(p.comm, remote, n);
  const mean = compute_s.reduce((a, b) => a + b, 0) / Math.max(1, n);
  const slowest = Math.max(0, ...compute_s);
  return {
    compute_s, remote_tokens: remote, dispatch_s: dispatch, combine_s: combine, time_s: dispatch + slowest + combine,
    imbalance: mean > 0 ? slowest / mean : 1,
    bytes_per_token: p.step_tokens > 0 ? (remote.reduce((a, b) => a + b, 0) * 2 * p.token_bytes) / p.step_tokens : 0,
    memory_bytes: memory, over_memory: memory.filter((m, d) => m > p.devices[d]!.memory_bytes).length,
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

function sortReplicas(replicas: Replica[]): Replica[] {
  return replicas.sort((a, b) => a.expert - b.expert || a.device - b.device);
}

// ---------------------------------------------------------------------------------------------
// Baselines.

/** Round-robin: replicas in expert order, redundant slots to experts 0, 1, …; dealt to devices in turn. */
export function placeRoundRobin(p: PlacementProblem): Placement {
  const n = p.devices.length;
  const list: number[] = [];
  for (let e = 0; e < p.experts; e++) list.push(e);
  for (let s = 0; s < p.slots; s++) list.push(s % p.experts);
  const count = new Int32Array(p.experts);
  for (const e of list) count[e]!++;
  const holds = new Set<number>();
  const replicas: Replica[] = [];
  let cursor = 0;
  for (const e of list) {
    let d = cursor % n;
    for (let tries = 0; tries < n && holds.has(e * n + d); tries++) d = (d + 1) % n;
    holds.add(e * n + d);
    replicas.push({ expert: e, device: d, tokens: p.tokens[e]! / count[e]! });
    cursor = d + 1;
  }
  return { method: 'round-robin', replicas: sortReplicas(replicas) };
}

/**
 * eplb.py balanced_packing: items heaviest first, each into the lightest pack that still has room;
 * packs hold ceil(items / packs) (EPLB requires an exact multiple; the ceiling generalises it).
 */
function balancedPacking(weights: number[], packs: number): number[] {
  const cap = Math.ceil(weights.length / packs);
  const load = new Array<number>(packs).fill(0);
  const items = new Array<number>(packs).fill(0);
  const order = weights.map((w, i) => i).sort((a, b) => weights[b]! - weights[a]! || a - b);
  const out = new Array<number>(weights.length).fill(0);
  for (const i of order) {
    let best = -1;
    for (let k = 0; k < packs; k++) if (items[k]! < cap && (best < 0 || load[k]! < load[best]!)) best = k;
    out[i] = best;
    load[best] += weights[i]!;
    items[best]!++;
  }
  return out;
}

/**
 * EPLB (eplb.py rebalance_experts): hierarchical when the expert groups divide evenly over hosts —
 * groups packed onto hosts, replicas made per host, replicas packed onto the host's devices — else
 * the global policy (one group, one host). Load = work (tokens × FLOPs per token; EPLB counts tokens,
 * the same when experts are equal). Device speeds and memory are not EPLB's concern.
 */
export function placeGreedy(p: PlacementProblem): Placement {
  const hostNames = [...new Set(p.devices.map((d) => d.host))];
  const perHost = hostNames.map((h) => p.devices.map((d, i) => (d.host === h ? i : -1)).filter((i) => i >= 0));
  const equalHosts = perHost.every((ds) => ds.length === perHost[0]!.length);
  const total = p.experts + p.slots;
  const hierarchical = hostNames.length > 1 && p.groups % hostNames.length === 0 && p.experts % p.groups === 0 && equalHosts && total % hostNames.length === 0;
  const hosts = hierarchical ? perHost : [p.devices.map((_, i) => i)];
  const groups = hierarchical ? p.groups : 1;
  const work = (e: number): number => p.tokens[e]! * p.flops_per_token[e]!;
  // Step 1: expert groups onto hosts.
  const groupSize = p.experts / groups;
  const groupWork = Array.from({ length: groups }, (_, g) => Array.from({ length: groupSize }, (_, j) => work(g * groupSize + j)).reduce((a, b) => a + b, 0));
  const groupHost = hosts.length === 1 ? new Array<number>(groups).fill(0) : balancedPacking(groupWork, hosts.length);
  const replicas: Replica[] = [];
  hosts.forEach((devices, h) => {
    const experts: number[] = [];
    for (let g = 0; g < groups; g++) if (groupHost[g] === h) for (let j = 0; j < groupSize; j++) experts.push(g * groupSize + j);
    // Step 2: replicate within the host (replicate_experts).
    const count = new Array<number>(experts.length).fill(1);
    const physical = total / hosts.length;
    for (let s = experts.length; s < physical; s++) {
      let best = 0;
      for (let k = 1; k < experts.length; k++) if (work(experts[k]!) / count[k]! > work(experts[best]!) / count[best]!) best = k;
      count[best]!++;
    }
    // Step 3: replicas onto the host's devices (balanced_packing).
    const items: { expert: number; load: number }[] = [];
    experts.forEach((e, k) => { for (let r = 0; r < count[k]!; r++) items.push({ expert: e, load: work(e) / count[k]! }); });
    const pack = balancedPacking(items.map((it) => it.load), devices.length);
    items.forEach((it, k) => replicas.push({ expert: it.expert, device: devices[pack[k]!]!, tokens: p.tokens[it.expert]! / count[experts.indexOf(it.expert)]! }));
  });
  return { method: 'greedy', replicas: sortReplicas(replicas) };
}

// ---------------------------------------------------------------------------------------------
// hxc.

/**
 * Mutable placement: replicas, their token shares, and per-device aggregates kept exact, so that a
 * what-if (one replica out, one in) costs O(replicas on the device), not a recount.
 */
class State {
  readonly n: number;
  readonly expert: number[] = [];
  readonly device: number[] = [];
  readonly x: number[] = [];
  readonly onDevice: number[][];
  readonly ofExpert: number[][];
  readonly flops: Float64Array;
  readonly compute: Float64Array;
  readonly memory: Float64Array;
  /** Per device: Σ x, tokens served locally, the pairwise overlap, and the tokens from elsewhere. */
  readonly sum: Float64Array;
  readonly local: Float64Array;
  readonly pairs: Float64Array;
  readonly remote: Float64Array;
  /** Shared-link seconds of dispatch and combine at the current remote tokens. */
  readonly linkIn: Float64Array;
  readonly linkOut: Float64Array;
  /**
   * A device's own traffic cost (its slowest transfers in and out), to steer the greedy placement
   * toward devices near the token sources; the interchange prices the whole layer exactly.
   */
  readonly proxyFixed: Float64Array;
  readonly proxyPerToken: Float64Array;

  constructor(readonly p: PlacementProblem) {
    const n = (this.n = p.devices.length);
    this.onDevice = Array.from({ length: n }, () => []);
    this.ofExpert = Array.from({ length: p.experts }, () => []);
    this.flops = new Float64Array(n);
    this.compute = new Float64Array(n);
    this.memory = new Float64Array(n);
    this.sum = new Float64Array(n);
    this.local = new Float64Array(n);
    this.pairs = new Float64Array(n);
    this.remote = new Float64Array(n);
    this.linkIn = new Float64Array(p.comm.shared.length);
    this.linkOut = new Float64Array(p.comm.shared.length);
    const c = p.comm;
    this.proxyFixed = Float64Array.from({ length: n }, (_, d) => c.in_latency_s[d]! + c.out_latency_s[d]!);
    this.proxyPerToken = Float64Array.from({ length: n }, (_, d) => c.in_per_token_s[d]! + c.out_per_token_s[d]!);
  }

  holds(d: number, e: number): boolean {
    for (const r of this.onDevice[d]!) if (this.expert[r] === e) return true;
    return false;
  }

  pairOverlap(a: number, xa: number, b: number, xb: number): number {
    return this.pair(a, xa, b, xb);
  }

  private pair(a: number, xa: number, b: number, xb: number): number {
    const p = this.p;
    const ta = p.tokens[a]!;
    const tb = p.tokens[b]!;
    return a === b || ta <= 0 || tb <= 0 ? 0 : (p.coactivation[a * p.experts + b]! * xa * xb) / (ta * tb);
  }

  private localOf(d: number, e: number, x: number): number {
    return Math.min(x, this.p.source_share[d]! * this.p.tokens[e]!);
  }

  /** Remote tokens from the aggregates (see remoteTokens). */
  private remoteFrom(sum: number, local: number, pairs: number, most: number): number {
    if (sum <= 0) return 0;
    const T = this.p.step_tokens;
    const hits = Math.min(T > 0 ? Math.max(T, most) : sum, Math.max(most, sum - pairs));
    return settle(hits * Math.max(0, 1 - local / sum), sum);
  }

  /** Device d's remote tokens with replica `out` taken out and expert `inE` with `inX` tokens put in (either may be -1). */
  remoteWith(d: number, out: number, inE: number, inX: number): number {
    let sum = this.sum[d]!;
    let local = this.local[d]!;
    let pairs = this.pairs[d]!;
    let most = inE >= 0 ? inX : 0;
    if (out >= 0) {
      sum -= this.x[out]!;
      local -= this.localOf(d, this.expert[out]!, this.x[out]!);
    }
    if (inE >= 0) {
      sum += inX;
      local += this.localOf(d, inE, inX);
    }
    for (const r of this.onDevice[d]!) {
      if (r === out) continue;
      const e = this.expert[r]!;
      const x = this.x[r]!;
      if (x > most) most = x;
      if (out >= 0) pairs -= this.pair(this.expert[out]!, this.x[out]!, e, x);
      if (inE >= 0) pairs += this.pair(inE, inX, e, x);
    }
    return this.remoteFrom(sum, local, pairs, most);
  }

  /** Recount device d's aggregates and its share of the shared links. */
  refresh(d: number): void {
    const rs = this.onDevice[d]!;
    let sum = 0;
    let local = 0;
    let pairs = 0;
    let most = 0;
    let flops = 0;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i]!;
      const e = this.expert[r]!;
      const x = this.x[r]!;
      flops += x * this.p.flops_per_token[e]!;
      sum += x;
      local += this.localOf(d, e, x);
      if (x > most) most = x;
      for (let j = 0; j < i; j++) pairs += this.pair(e, x, this.expert[rs[j]!]!, this.x[rs[j]!]!);
    }
    this.flops[d] = flops;
    this.compute[d] = flops / this.p.devices[d]!.speed;
    this.sum[d] = sum;
    this.local[d] = local;
    this.pairs[d] = pairs;
    const before = this.remote[d]!;
    this.remote[d] = this.remoteFrom(sum, local, pairs, most);
    const delta = this.remote[d]! - before;
    const c = this.p.comm;
    for (let l = 0; l < c.shared.length; l++) {
      this.linkIn[l] += delta * c.shared[l]!.in_per_token_s[d]!;
      this.linkOut[l] += delta * c.shared[l]!.out_per_token_s[d]!;
    }
  }

  add(e: number, d: number, x: number): void {
    const r = this.expert.length;
    this.expert.push(e);
    this.device.push(d);
    this.x.push(x);
    this.onDevice[d]!.push(r);
    this.ofExpert[e]!.push(r);
    this.memory[d] += this.p.param_bytes[e]!;
    this.refresh(d);
  }

  /** Move replica r to device d (its share travels with it). */
  move(r: number, d: number): void {
    const from = this.device[r]!;
    const e = this.expert[r]!;
    const list = this.onDevice[from]!;
    list.splice(list.indexOf(r), 1);
    this.onDevice[d]!.push(r);
    this.device[r] = d;
    this.memory[from] -= this.p.param_bytes[e]!;
    this.memory[d] += this.p.param_bytes[e]!;
    this.refresh(from);
    this.refresh(d);
  }

  proxyTime(d: number, compute: number, remote: number): number {
    return compute + (remote > 0 ? this.proxyFixed[d]! + remote * this.proxyPerToken[d]! : 0);
  }

  /** Device d's compute seconds with replica `out` replaced by `inR` (either may be -1). */
  computeWith(d: number, out: number, inR: number): number {
    let f = this.flops[d]!;
    if (out >= 0) f -= this.x[out]! * this.p.flops_per_token[this.expert[out]!]!;
    if (inR >= 0) f += this.x[inR]! * this.p.flops_per_token[this.expert[inR]!]!;
    return f / this.p.devices[d]!.speed;
  }

  fits(d: number, out: number, inExpert: number): boolean {
    const p = this.p;
    return this.memory[d]! - (out >= 0 ? p.param_bytes[this.expert[out]!]! : 0) + p.param_bytes[inExpert]! <= p.devices[d]!.memory_bytes;
  }

  /** The slowest compute among devices other than a and b. */
  slowestExcept(a: number, b: number): number {
    let m = 0;
    for (let d = 0; d < this.n; d++) if (d !== a && d !== b && this.compute[d]! > m) m = this.compute[d]!;
    return m;
  }

  /** Dispatch + combine seconds, with devices a and b (when ≥ 0) at remote tokens ra, rb. */
  commWith(a = -1, ra = 0, b = -1, rb = 0): number {
    const c = this.p.comm;
    let din = 0;
    let dout = 0;
    for (let d = 0; d < this.n; d++) {
      const r = d === a ? ra : d === b ? rb : this.remote[d]!;
      if (r <= 0) continue;
      din = Math.max(din, c.in_latency_s[d]! + r * c.in_per_token_s[d]!);
      dout = Math.max(dout, c.out_latency_s[d]! + r * c.out_per_token_s[d]!);
    }
    for (let l = 0; l < c.shared.length; l++) {
      const link = c.shared[l]!;
      let tin = this.linkIn[l]!;
      let tout = this.linkOut[l]!;
      if (a >= 0) { tin += (ra - this.remote[a]!) * link.in_per_token_s[a]!; tout += (ra - this.remote[a]!) * link.out_per_token_s[a]!; }
      if (b >= 0) { tin += (rb - this.remote[b]!) * link.in_per_token_s[b]!; tout += (rb - this.remote[b]!) * link.out_per_token_s[b]!; }
      if (tin > 1e-15) din = Math.max(din, link.latency_s + tin);
      if (tout > 1e-15) dout = Math.max(dout, link.latency_s + tout);
    }
    return din + dout;
  }

  slowest(): { device: number; compute: number } {
    let best = 0;
    for (let d = 1; d < this.n; d++) if (this.compute[d]! > this.compute[best]!) best = d;
    return { device: best, compute: this.compute[best]! };
  }

  /**
   * Water-filling of each replicated expert's tokens over its replicas' devices, the others' loads
   * held: a device's compute time is affine in the share, so the level λ with Σ max(0, (λ − b_d)/a_d)
   * = t_e follows from the sorted intercepts. Sweeps are block coordinate descent toward the
   * lexicographically optimal split (Fujishige 1980). Traffic is not a device's own cost (dispatch
   * and combine are layer-wide phases), so it is left to the interchange, which prices the layer.
   */
  waterfill(sweeps: number, only?: readonly number[]): void {
    const p = this.p;
    const experts = only ?? Array.from({ length: p.experts }, (_, e) => e);
    let cap = 8;
    let rep = new Int32Array(cap);
    let slope = new Float64Array(cap);
    let base = new Float64Array(cap);
    for (let sweep = 0; sweep < sweeps; sweep++) {
      let moved = 0;
      for (const e of experts) {
        const rs = this.ofExpert[e]!;
        const c = rs.length;
        if (c < 2 || p.tokens[e]! <= 0) continue;
        if (c > cap) {
          cap = 2 * c;
          rep = new Int32Array(cap);
          slope = new Float64Array(cap);
          base = new Float64Array(cap);
        }
        const fe = p.flops_per_token[e]!;
        // Replicas by intercept (insertion sort: an expert has few replicas).
        for (let i = 0; i < c; i++) {
          const r = rs[i]!;
          const d = this.device[r]!;
          const speed = p.devices[d]!.speed;
          const b = (this.flops[d]! - this.x[r]! * fe) / speed;
          let j = i;
          while (j > 0 && (base[j - 1]! > b || (base[j - 1]! === b && this.device[rep[j - 1]!]! > d))) {
            rep[j] = rep[j - 1]!;
            slope[j] = slope[j - 1]!;
            base[j] = base[j - 1]!;
            j--;
          }
          rep[j] = r;
          slope[j] = fe / speed;
          base[j] = b;
        }
        let sumInv = 0;
        let sumBase = 0;
        let level = 0;
        let k = 0;
        for (; k < c; k++) {
          sumInv += 1 / slope[k]!;
          sumBase += base[k]! / slope[k]!;
          level = (p.tokens[e]! + sumBase) / sumInv;
          if (k + 1 === c || level <= base[k + 1]!) break;
        }
        for (let j = 0; j < c; j++) {
          const r = rep[j]!;
          const x = j <= k ? Math.max(0, (level - base[j]!) / slope[j]!) : 0;
          moved += Math.abs(x - this.x[r]!);
          this.x[r] = x;
        }
        for (let j = 0; j < c; j++) this.refresh(this.device[rep[j]!]!);
      }
      if (moved <= 1e-4 * p.step_tokens) break;
    }
  }

  /**
   * The layer time and slowest compute if replica r moved to device d (swapping with q when q ≥ 0)
   * and the experts on both devices were re-split; the state is restored afterwards.
   */
  trial(r: number, d: number, q: number): { time: number; slowest: number } {
    const b = this.device[r]!;
    // Small layers re-split every expert (a plateau of tied devices falls only together); big ones
    // the experts on the two devices.
    const whole = this.expert.length <= SMALL_LAYER;
    const experts = whole ? Array.from({ length: this.p.experts }, (_, e) => e) : [...new Set([...this.onDevice[b]!, ...this.onDevice[d]!].map((x) => this.expert[x]!))];
    const reps = experts.flatMap((e) => this.ofExpert[e]!);
    const saved = reps.map((x) => this.x[x]!);
    this.move(r, d);
    if (q >= 0) this.move(q, b);
    this.waterfill(whole ? 16 : 3, experts);
    const slowest = this.slowest().compute;
    const time = slowest + this.commWith();
    this.move(r, b);
    if (q >= 0) this.move(q, d);
    reps.forEach((x, i) => (this.x[x] = saved[i]!));
    for (const dev of new Set(reps.map((x) => this.device[x]!))) this.refresh(dev);
    return { time, slowest };
  }

  placement(): Placement {
    return { method: 'hxc', replicas: sortReplicas(this.expert.map((e, r) => ({ expert: e, device: this.device[r]!, tokens: this.x[r]! }))) };
  }
}

/**
 * Balance first: a move may raise the slowest device's compute only up to this fraction above the
 * balanced time (total work over total speed); within it, traffic decides.
 */
const BALANCE_TOLERANCE = 0.02;
/** In the greedy placement, devices within this fraction of the balanced time of the earliest finish count as tied. */
const AFFINITY_BAND = 0.005;
/** Co-location candidates must overlap by at least this fraction of the two devices' remote tokens. */
const MATERIAL = 0.005;
/** Layer times this close (relative) count as equal, so that compute balance still decides when traffic latency dominates. */
const SAME_TIME = 1e-4;
/** Layers with at most this many replicas are re-split whole in interchange trials. */
const SMALL_LAYER = 64;
/** Re-split trials an interchange may spend breaking plateaus of tied devices (fewer on big layers: PLATEAU_WORK / replicas). */
const PLATEAU_TRIALS = 256;
const PLATEAU_WORK = 2048;
/** Candidate devices per interchange step: the least loaded ones. */
const INTERCHANGE_TARGETS = 8;

export function placeHxc(p: PlacementProblem): Placement {
  const n = p.devices.length;
  const st = new State(p);
  const work = (e: number): number => p.tokens[e]! * p.flops_per_token[e]!;
  const count = replicaCounts(p, work, p.slots, n, true);
  let totalWork = 0;
  for (let e = 0; e < p.experts; e++) totalWork += work(e);
  const balanced = totalWork / p.devices.reduce((s, d) => s + d.speed, 0);
  // LPT: replicas by work per replica, largest first; ties by expert, so the order is stable.
  const items: number[] = [];
  for (let e = 0; e < p.experts; e++) for (let k = 0; k < count[e]!; k++) items.push(e);
  items.sort((a, b) => work(b) / count[b]! - work(a) / count[a]! || a - b);
  for (const e of items) {
    const x = p.tokens[e]! / count[e]!;
    // Earliest compute finish; devices within a narrow band of it compete on co-activation
    // affinity, then on their own traffic cost (nearer the token sources), then by index.
    let earliest = Infinity;
    const finish = new Float64Array(n).fill(Infinity);
    for (let d = 0; d < n; d++) {
      if (st.holds(d, e)) continue;
      finish[d] = (st.flops[d]! + x * p.flops_per_token[e]!) / p.devices[d]!.speed + (st.fits(d, -1, e) ? 0 : 1e6);
      earliest = Math.min(earliest, finish[d]!);
    }
    if (earliest === Infinity) continue; // every device holds this expert already
    const room = earliest + AFFINITY_BAND * balanced;
    let pick = -1;
    let pickAffinity = 0;
    let pickTraffic = Infinity;
    for (let d = 0; d < n; d++) {
      if (finish[d]! > room) continue;
      // Tokens this replica shares with the experts already there: sent once, not twice.
      let affinity = 0;
      for (const r of st.onDevice[d]!) affinity += (p.coactivation[e * p.experts + st.expert[r]!]! * st.x[r]!) / (p.tokens[st.expert[r]!]! * count[e]! || 1);
      affinity *= 1 - p.source_share[d]!;
      if (affinity === 0 && finish[d]! > earliest) continue;
      const traffic = st.proxyTime(d, 0, st.remote[d]! + Math.max(0, x - p.source_share[d]! * p.tokens[e]!));
      if (pick < 0 || affinity > pickAffinity || (affinity === pickAffinity && traffic < pickTraffic)) {
        pick = d;
        pickAffinity = affinity;
        pickTraffic = traffic;
      }
    }
    st.add(e, pick, x);
  }
  st.waterfill(32);
  const cap = balanced * (1 + BALANCE_TOLERANCE);
  const partners = topPartners(p, 2);
  for (let round = 0; round < 2; round++) {
    const a = interchange(st, 2 * n);
    const b = colocate(st, cap, partners);
    st.waterfill(32);
    if (!a && !b) break;
  }
  const lpt = st.placement();
  // With a replica to spare per device boundary, the wrap-around chain balances exactly; keep it
  // when the layer (traffic included) is no slower.
  const chain = placeChain(p);
  if (!chain) return lpt;
  const [a, b] = [evaluate(p, lpt), evaluate(p, chain)];
  return b.over_memory === 0 && (b.time_s < a.time_s * (1 - 1e-9) || (b.time_s <= a.time_s * (1 + 1e-9) && b.imbalance < a.imbalance - 1e-9)) ? chain : lpt;
}

/**
 * McNaughton's wrap-around rule (McNaughton 1959, preemptive scheduling on parallel machines): lay
 * the experts' work end to end — hottest first — and cut it where each device's share ends (its
 * speed's share of the total, so heterogeneous devices finish together); an expert cut at a
 * boundary becomes replicas on both sides whose token shares differ as the cut falls. Every device
 * then computes for exactly the balanced time, with at most one extra replica per boundary — so it
 * needs `slots ≥ devices − 1`. Devices in host order, so chains stay inside servers where they can.
 * Null when the slots are too few or a device's weights would not fit.
 */
export function placeChain(p: PlacementProblem): Placement | null {
  const n = p.devices.length;
  if (n < 2 || p.slots < n - 1) return null;
  const work = (e: number): number => p.tokens[e]! * p.flops_per_token[e]!;
  const total = Array.from({ length: p.experts }, (_, e) => work(e)).reduce((a, b) => a + b, 0);
  const speed = p.devices.reduce((s, d) => s + d.speed, 0);
  if (!(total > 0) || !(speed > 0)) return null;
  const hosts = [...new Set(p.devices.map((d) => d.host))];
  const devices = p.devices.map((_, d) => d).sort((a, b) => hosts.indexOf(p.devices[a]!.host) - hosts.indexOf(p.devices[b]!.host) || a - b);
  const experts = Array.from({ length: p.experts }, (_, e) => e).sort((a, b) => work(b) - work(a) || a - b);
  const replicas: Replica[] = [];
  const memory = new Float64Array(n);
  let k = 0;
  let room = (total * p.devices[devices[0]!]!.speed) / speed;
  for (const e of experts) {
    let left = work(e);
    const perToken = p.flops_per_token[e]!;
    while (left > 1e-12 * total) {
      const d = devices[Math.min(k, n - 1)]!;
      const take = k >= n - 1 ? left : Math.min(left, room);
      if (take > 1e-12 * total) {
        replicas.push({ expert: e, device: d, tokens: perToken > 0 ? take / perToken : p.tokens[e]! });
        memory[d] += p.param_bytes[e]!;
      }
      left -= take;
      room -= take;
      if (room <= 1e-12 * total && k < n - 1) {
        k++;
        room = (total * p.devices[devices[k]!]!.speed) / speed;
      }
    }
  }
  if (replicas.length > p.experts + p.slots) return null;
  for (let d = 0; d < n; d++) if (memory[d]! > p.devices[d]!.memory_bytes) return null;
  return { method: 'hxc', replicas: sortReplicas(replicas) };
}

/** The `k` experts each expert is most often chosen with (a linear scan per expert). */
function topPartners(p: PlacementProblem, k: number): number[][] {
  const E = p.experts;
  return Array.from({ length: E }, (_, a) => {
    const best: number[] = [];
    for (let b = 0; b < E; b++) {
      const c = p.coactivation[a * E + b]!;
      if (b === a || c <= 0) continue;
      let i = best.length;
      while (i > 0 && c > p.coactivation[a * E + best[i - 1]!]!) i--;
      if (i < k) {
        best.splice(i, 0, b);
        if (best.length > k) best.pop();
      }
    }
    return best;
  });
}

/**
 * Pairwise interchange on the slowest device: move one of its replicas to one of the least loaded
 * devices, or swap it with one of theirs, when the layer time (dispatch + slowest compute + combine)
 * drops — or stays, the traffic not growing, while both devices end below the current slowest (a
 * plateau of tied devices is flattened one device at a time; Σ compute² falls, so it ends). Returns
 * whether anything moved.
 */
function interchange(st: State, limit: number): boolean {
  let changed = false;
  let plateauTrials = Math.min(PLATEAU_TRIALS, Math.ceil(PLATEAU_WORK / st.expert.length));
  const n = st.n;
  const order = Array.from({ length: n }, (_, d) => d);
  for (let step = 0; step < limit; step++) {
    const { device: b, compute: top } = st.slowest();
    const comm = st.commWith();
    const now = comm + top;
    let best = { r: -1, q: -1, d: -1, time: Infinity, pair: Infinity };
    const targets = order.filter((d) => d !== b).sort((x, y) => st.compute[x]! - st.compute[y]! || x - y).slice(0, INTERCHANGE_TARGETS);
    for (const d of targets) {
      const rest = st.slowestExcept(b, d);
      for (const r of st.onDevice[b]!) {
        const e = st.expert[r]!;
        if (st.holds(d, e)) continue;
        const consider = (q: number): void => {
          const cb = st.computeWith(b, r, q);
          const cd = st.computeWith(d, q, r);
          const pair = Math.max(cb, cd);
          if (pair >= top * (1 - 1e-9)) return;
          const rb = st.remoteWith(b, r, q >= 0 ? st.expert[q]! : -1, q >= 0 ? st.x[q]! : 0);
          const rd = st.remoteWith(d, q, e, st.x[r]!);
          const c = st.commWith(b, rb, d, rd);
          const t = Math.max(rest, pair) + c;
          const better = t < now * (1 - SAME_TIME) || (t <= now * (1 + SAME_TIME) && c <= comm + SAME_TIME * now);
          if (better && (t < best.time * (1 - 1e-12) || (t <= best.time * (1 + 1e-12) && pair < best.pair))) best = { r, q, d, time: t, pair };
        };
        if (st.fits(d, -1, e)) consider(-1);
        for (const q of st.onDevice[d]!) if (!st.holds(b, st.expert[q]!) && st.fits(d, q, e) && st.fits(b, r, st.expert[q]!)) consider(q);
      }
    }
    if (best.r < 0 && plateauTrials > 0) {
      // Tied devices that no single move can relieve: try swaps with the two least loaded devices,
      // each judged after re-splitting the experts involved.
      for (const d of targets.slice(0, 2)) {
        for (const r of st.onDevice[b]!) {
          if (st.holds(d, st.expert[r]!)) continue;
          for (const q of [-1, ...st.onDevice[d]!]) {
            if (plateauTrials-- <= 0) break;
            if (q >= 0 ? st.holds(b, st.expert[q]!) || !st.fits(d, q, st.expert[r]!) || !st.fits(b, r, st.expert[q]!) : !st.fits(d, -1, st.expert[r]!)) continue;
            const t = st.trial(r, d, q);
            if ((t.time < now * (1 - SAME_TIME) || (t.time <= now * (1 + SAME_TIME) && t.slowest < top * (1 - 1e-6))) && t.time < best.time + SAME_TIME * now) best = { r, q, d, time: t.time, pair: t.slowest };
          }
        }
      }
    }
    if (best.r < 0) break;
    st.move(best.r, best.d);
    if (best.q >= 0) st.move(best.q, b);
    st.waterfill(4);
    changed = true;
  }
  return changed;
}

/**
 * Co-location: swap a replica onto a device holding one of the experts it is most often chosen
 * with, when that lowers the tokens crossing between devices, keeps compute within the balance
 * cap, and does not lengthen the layer.
 */
function colocate(st: State, cap: number, partners: number[][]): boolean {
  const p = st.p;
  let changed = false;
  let { compute: top } = st.slowest();
  let time = top + st.commWith();
  const limit = Math.max(top, cap);
  for (let r = 0; r < st.expert.length; r++) {
    const a = st.expert[r]!;
    for (const b of partners[a]!) {
      for (const rb of st.ofExpert[b]!) {
        const d1 = st.device[r]!;
        const d2 = st.device[rb]!;
        if (d2 === d1 || st.holds(d2, a)) continue;
        const before = st.remote[d1]! + st.remote[d2]!;
        // Worth a look only when the pair's overlap is a visible part of the two devices' traffic.
        if (st.pairOverlap(a, st.x[r]!, b, st.x[rb]!) < MATERIAL * before) continue;
        let best = { q: -1, gain: 1e-9 * p.step_tokens, time: 0 };
        for (const q of st.onDevice[d2]!) {
          const c = st.expert[q]!;
          if (q === rb || st.holds(d1, c) || !st.fits(d2, q, a) || !st.fits(d1, r, c)) continue;
          const c1 = st.computeWith(d1, r, q);
          const c2 = st.computeWith(d2, q, r);
          if (Math.max(c1, c2) > limit) continue;
          const r1 = st.remoteWith(d1, r, c, st.x[q]!);
          const r2 = st.remoteWith(d2, q, a, st.x[r]!);
          const gain = before - r1 - r2;
          if (gain <= best.gain) continue;
          const t = Math.max(c1, c2, st.slowestExcept(d1, d2)) + st.commWith(d1, r1, d2, r2);
          if (t <= time * (1 + 1e-9)) best = { q, gain, time: t };
        }
        if (best.q >= 0) {
          st.move(r, d2);
          st.move(best.q, d1);
          top = st.slowest().compute;
          time = best.time;
          changed = true;
          break;
        }
      }
    }
  }
  return changed;
}
