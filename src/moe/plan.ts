// The expert placement of every MoE layer (the moe pass runs it; the bench and tests call it on
// synthetic layers): which devices hold experts — device classes added fastest first while they
// cut the estimated layer time — then hxc's placer and the two baselines on each layer.

import type { DType } from '../ir/dtype.js';
import { canRun, deviceClassKey, peakFlops, type Device, type Route, type RouteTable, type Topology } from '../topology/index.js';
import {
  commModel,
  evaluate,
  hostsOf,
  placeGreedy,
  placeHxc,
  placeRoundRobin,
  type CommModel,
  type Metrics,
  type Placement,
  type PlacementProblem,
} from './place.js';

/** Share of a device's memory that expert weights may take, split evenly over the MoE layers. */
export const EXPERT_MEMORY_FRACTION = 0.8;
export const METHODS = ['hxc', 'round-robin', 'greedy'] as const;
/** A slower device class holds experts only if it cuts the estimated layer time by this much (the estimate is coarse). */
const CLASS_GAIN = 0.05;
export type Method = (typeof METHODS)[number];

/** One layer as the placer sees it (from a detected layer and its routing, or synthetic): the placement problem's per-layer part. */
export interface LayerSpec
  extends Pick<PlacementProblem, 'top_k' | 'step_tokens' | 'tokens' | 'coactivation' | 'flops_per_token' | 'param_bytes' | 'token_bytes'> {
  layer: number;
  name: string;
  dtype: DType;
  /** Op types of the layer's dispatch/combine nodes (what an IPU must run to carry the dispatch). */
  dispatch_ops: { op: string; domain: string }[];
}

export interface LayerPlan {
  layer: number;
  name: string;
  problem: PlacementProblem;
  placements: Record<Method, Placement>;
  metrics: Record<Method, Metrics>;
  /** IPUs on the dispatch routes that can run every dispatch/combine op of the layer. */
  dispatch_via: string[];
}

export interface ExpertPlan {
  /** Devices that hold experts, and those whose tokens they receive (evenly). */
  devices: string[];
  sources: string[];
  slots: number;
  layers: LayerPlan[];
  summary: Record<Method, { imbalance_max: number; imbalance_mean: number; bytes_per_token: number; time_s: number; replicas: number }>;
  /** hxc: seconds of expert compute per device, summed over layers. */
  device_load_s: Record<string, number>;
}

export interface PlanOptions {
  slots: number | null;
  /** EPLB expert groups (1 when the model has none). */
  groups: number;
  /** Devices that may hold experts (op capability); all when absent. */
  canHold?: (d: Device) => boolean;
  efficiency?: (d: Device) => number;
  /** Expert devices to use as given (skips the choice of device classes). */
  devices?: string[];
  /** Devices producing the tokens, evenly (default: the fastest class among the candidates). */
  sources?: string[];
}

const speedOf = (d: Device, dtype: DType, eff: number): number => peakFlops(d, dtype) * d.efficiency * eff;

/**
 * Whether two layers make one placement problem on the same devices: every field `build` reads
 * from a layer but its name — the routing arrays the very same (a uniform routing is shared), the
 * expert sizes equal bit for bit.
 */
function placedAlikeAs(a: LayerSpec, b: LayerSpec): boolean {
  return (
    a.tokens === b.tokens &&
    a.coactivation === b.coactivation &&
    a.top_k === b.top_k &&
    a.step_tokens === b.step_tokens &&
    a.token_bytes === b.token_bytes &&
    a.dtype === b.dtype &&
    sameBits(a.flops_per_token, b.flops_per_token) &&
    sameBits(a.param_bytes, b.param_bytes)
  );
}

const sameBits = (a: Float64Array, b: Float64Array): boolean =>
  a.length === b.length && Buffer.compare(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) === 0;

/**
 * Place every layer's experts. Expert devices: device classes (kind, model, speed) are added fastest
 * first while each cuts the sampled layers' hxc time by CLASS_GAIN — a slow CPU or a far-away
 * accelerator joins only when its share of the work clearly outweighs the dispatch it costs. Token sources: the fastest class
 * among them, evenly (data-parallel attention feeding expert-parallel FFNs, DeepSeek-V3 §3.4); the
 * partitioner can later pass the devices that really produce the tokens.
 */
export function planExperts(topo: Topology, routes: RouteTable, layers: LayerSpec[], opts: PlanOptions): ExpertPlan | null {
  if (layers.length === 0) return null;
  const dtype = layers[0]!.dtype;
  const eff = (d: Device): number => opts.efficiency?.(d) ?? 1;
  const candidates = topo.devices.filter((d) => (opts.canHold ? opts.canHold(d) : true) && speedOf(d, dtype, eff(d)) > 0);
  if (candidates.length === 0) return null;
  // Classes of identical devices (src/topology/device.ts), fastest first.
  const classKey = deviceClassKey;
  const speedOfClass = new Map(candidates.map((d) => [classKey(d), speedOf(d, dtype, eff(d))]));
  const classes = [...speedOfClass.keys()].sort((a, b) => speedOfClass.get(b)! - speedOfClass.get(a)! || (a < b ? -1 : 1));
  const sourceIds = opts.sources ?? candidates.filter((d) => classKey(d) === classes[0]).map((d) => d.id);
  const hosts = hostsOf(topo);
  // Routes by size, then by (from, to) as one number: all-to-all over 256 expert devices asks 130k.
  const routeCache = new Map<number, Map<number, Route>>();
  const deviceCount = routes.devices.length;
  // Layers of one model share token size, top-k and step: their communication model is the same.
  const commCache = new Map<string, CommModel>();
  const commFor = (set: Device[], share: Float64Array, l: LayerSpec, route: (a: number, b: number, bytes: number) => Route): CommModel => {
    const key = `${set.map((d) => d.id).join(',')}|${l.token_bytes}|${l.step_tokens}|${l.top_k}`;
    return commCache.get(key) ?? commCache.set(key, commModel(set.length, share, l.token_bytes, l.step_tokens, l.top_k, route, topo.links)).get(key)!;
  };
  const build = (l: LayerSpec, set: Device[]): PlacementProblem => {
    const n = set.length;
    const share = Float64Array.from(set, (d) => (sourceIds.includes(d.id) ? 1 : 0));
    const sum = share.reduce((a, b) => a + b, 0);
    for (let i = 0; i < n; i++) share[i] = sum > 0 ? share[i]! / sum : 1 / n;
    const idx = set.map((d) => routes.indexOf(d.id));
    const route = (a: number, b: number, bytes: number): Route => {
      let bySize = routeCache.get(bytes);
      if (!bySize) routeCache.set(bytes, (bySize = new Map()));
      const key = idx[a]! * deviceCount + idx[b]!;
      let r = bySize.get(key);
      if (!r) bySize.set(key, (r = routes.routeIdx(idx[a]!, idx[b]!, bytes)));
      return r;
    };
    return {
      name: l.name,
      experts: l.tokens.length,
      top_k: l.top_k,
      step_tokens: l.step_tokens,
      tokens: l.tokens,
      coactivation: l.coactivation,
      flops_per_token: l.flops_per_token,
      param_bytes: l.param_bytes,
      token_bytes: l.token_bytes,
      devices: set.map((d) => ({
        id: d.id,
        speed: speedOf(d, l.dtype, eff(d)),
        memory_bytes: (d.memory_capacity_bytes * EXPERT_MEMORY_FRACTION) / layers.length,
        host: hosts.get(d.id) ?? d.id,
      })),
      source_share: share,
      comm: commFor(set, share, l, route),
      slots: opts.slots ?? n,
      groups: opts.groups,
    };
  };
  // Device classes join fastest first while the hxc time of sampled layers keeps falling.
  const sample = [...new Set([0, layers.length >> 1])].map((i) => layers[i]!);
  let chosen: Device[] = [];
  let bestTime = Infinity;
  for (let c = opts.devices ? classes.length + 1 : 1; c <= classes.length; c++) {
    const set = candidates.filter((d) => classes.slice(0, c).includes(classKey(d)));
    const capacity = (set.reduce((s, d) => s + d.memory_capacity_bytes, 0) * EXPERT_MEMORY_FRACTION) / layers.length;
    const fits = layers.every((l) => l.param_bytes.reduce((a, b) => a + b, 0) <= capacity);
    if (!fits && chosen.length > 0) continue;
    let time = 0;
    for (const l of sample) {
      const problem = build(l, set);
      time += evaluate(problem, placeHxc(problem)).time_s;
    }
    if (time < bestTime * (1 - CLASS_GAIN) || chosen.length === 0) {
      chosen = set;
      bestTime = time;
    }
  }
  if (opts.devices) chosen = candidates.filter((d) => opts.devices!.includes(d.id));
  if (chosen.length === 0) return null;
  const ipus = topo.devices.filter((d) => d.kind === 'ipu');
  // IPUs relaying tokens from any source to each expert device (routes for a token's size).
  const relays = new Map<string, string[]>();
  const relaysTo = (d: string, bytes: number): string[] => {
    const key = `${d}|${bytes}`;
    let list = relays.get(key);
    if (!list) {
      const set = new Set<string>();
      for (const s of sourceIds) for (const hop of routes.route(s, d, bytes).hops.slice(1, -1)) if (ipus.some((i) => i.id === hop)) set.add(hop);
      relays.set(key, (list = [...set]));
    }
    return list;
  };
  // A layer the placer sees exactly as an earlier one (same routing arrays, equal expert sizes
  // and step) is placed as that one was: the placements read nothing else of it, and decide
  // nothing by the layer's name or place. Its placements and metrics are shared, read only.
  // (Under uniform routing the DeepSeek-V3 shape's 58 MoE layers are one problem: 3 placers and
  // their evaluations 58 times a variant, ~0.15 s.)
  const placedAlike: { l: LayerSpec; placements: LayerPlan['placements']; metrics: LayerPlan['metrics'] }[] = [];
  const plans = layers.map((l): LayerPlan => {
    const problem = build(l, chosen);
    const alike = placedAlike.find((a) => placedAlikeAs(a.l, l));
    const placements = alike?.placements ?? { hxc: placeHxc(problem), 'round-robin': placeRoundRobin(problem), greedy: placeGreedy(problem) };
    const metrics = alike?.metrics ?? {
      hxc: evaluate(problem, placements.hxc),
      'round-robin': evaluate(problem, placements['round-robin']),
      greedy: evaluate(problem, placements.greedy),
    };
    if (!alike) placedAlike.push({ l, placements, metrics });
    // IPUs relaying a source's tokens to an expert device, able to run the layer's dispatch ops.
    const able = ipus.filter((ipu) => l.dispatch_ops.length > 0 && l.dispatch_ops.every((o) => canRun(ipu, o.op, o.domain))).map((d) => d.id);
    const via = new Set<string>();
    if (able.length > 0) {
      for (const d of new Set(placements.hxc.replicas.map((r) => chosen[r.device]!.id)))
        for (const hop of relaysTo(d, l.token_bytes)) if (able.includes(hop)) via.add(hop);
    }
    return { layer: l.layer, name: l.name, problem, placements, metrics, dispatch_via: [...via].sort() };
  });
  const summary = Object.fromEntries(
    METHODS.map((m) => {
      const ms = plans.map((p) => p.metrics[m]);
      return [
        m,
        {
          imbalance_max: Math.max(...ms.map((x) => x.imbalance)),
          imbalance_mean: ms.reduce((s, x) => s + x.imbalance, 0) / ms.length,
          bytes_per_token: ms.reduce((s, x) => s + x.bytes_per_token, 0),
          time_s: ms.reduce((s, x) => s + x.time_s, 0),
          replicas: plans.reduce((s, p) => s + p.placements[m].replicas.length, 0),
        },
      ];
    }),
  ) as ExpertPlan['summary'];
  const device_load_s: Record<string, number> = {};
  chosen.forEach((d, i) => (device_load_s[d.id] = plans.reduce((s, p) => s + p.metrics.hxc.compute_s[i]!, 0)));
  return {
    devices: chosen.map((d) => d.id),
    sources: sourceIds.filter((id) => chosen.some((d) => d.id === id)),
    slots: opts.slots ?? chosen.length,
    layers: plans,
    summary,
    device_load_s,
  };
}
