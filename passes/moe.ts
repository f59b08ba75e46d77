// moe: find the MoE layers (src/moe/detect.ts), read routing statistics (`--routing FILE`, else
// uniform with warning HXC1106; src/moe/routing.ts), choose the devices that hold experts and place
// and replicate experts on them (src/moe/place.ts), next to the two baselines it is measured against
// (round-robin, EPLB-style greedy). Its placement is a candidate for the partition pass (`moe-hint`,
// judged like every other), binding only with --pin-experts or when expert placement is steered
// (--routing with --expert-slots / --expert-replicas); plan.json `experts` reports where the
// shipped assignment runs each expert.

import { intOption } from '../src/pass/options.js';
import { ROUTING } from '../src/moe/routing.js';
import type { PlanExpert } from '../src/plan/format.js';
import { narrowForModel } from '../src/partition/narrow.js';
import { modelNeeds } from './stage.js';
import { HxcError } from '../src/diag/diagnostics.js';
import { byteSizeOf, type DType } from '../src/ir/dtype.js';
import { detectMoe, type MoeLayer } from '../src/moe/detect.js';
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
} from '../src/moe/place.js';
import { readRouting, scaledLayer, uniformLayer, type RoutingLayer } from '../src/moe/routing.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import { canRun, peakFlops, type Device, type Route, type RouteTable, type Topology } from '../src/topology/index.js';
import type { Graph } from '../src/ir/graph.js';
import { profilePass } from './profile.js';
import { shapesPass } from './shapes.js';
import { verifyPass } from './verify.js';

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

export type { PlanExpert };

export interface MoeResult {
  layers: MoeLayer[];
  routing: { file: string | null; uniform: boolean };
  plan: ExpertPlan | null;
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
  const classKey = (d: Device): string => `${d.kind}|${d.model ?? ''}|${speedOf(d, dtype, eff(d))}`;
  const classes = [...new Set(candidates.map(classKey))].sort((a, b) => Number(b.split('|')[2]) - Number(a.split('|')[2]) || (a < b ? -1 : 1));
  const sourceIds = opts.sources ?? candidates.filter((d) => classKey(d) === classes[0]).map((d) => d.id);
  const hosts = hostsOf(topo);
  const routeCache = new Map<string, Route>();
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
      const key = `${idx[a]},${idx[b]},${bytes}`;
      return routeCache.get(key) ?? routeCache.set(key, routes.routeIdx(idx[a]!, idx[b]!, bytes)).get(key)!;
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
  const plans = layers.map((l): LayerPlan => {
    const problem = build(l, chosen);
    const placements = { hxc: placeHxc(problem), 'round-robin': placeRoundRobin(problem), greedy: placeGreedy(problem) };
    const metrics = {
      hxc: evaluate(problem, placements.hxc),
      'round-robin': evaluate(problem, placements['round-robin']),
      greedy: evaluate(problem, placements.greedy),
    };
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

/** The routing of each detected layer: from the file (checked against the model), else uniform. */
function routingFor(ctx: PassContext, layers: MoeLayer[], stepTokens: number[]): { list: RoutingLayer[]; file: string | null } {
  const file = ctx.option(ROUTING);
  if (typeof file !== 'string' || file === '') {
    ctx.diagnostics.warn('HXC1106', `uniform routing assumed for ${layers.length} MoE layer${layers.length === 1 ? '' : 's'}: every expert equally loaded`, {
      hint: 'give measured counts with --routing FILE (hxc-routing/v1; hxc run writes one)',
    });
    return { list: layers.map((l, i) => uniformLayer(l.layer, l.num_experts, l.top_k, stepTokens[i]!)), file: null };
  }
  const routing = readRouting(file);
  const bad = (at: string, msg: string): never => {
    throw new HxcError('HXC2501', `${at}: ${msg}`, { where: file, hint: 'use a routing trace of this model' });
  };
  const byLayer = new Map(routing.layers.map((l, i) => [l.layer, { l, i }]));
  const list = layers.map((m) => {
    const hit = byLayer.get(m.layer);
    if (!hit) return bad('layers', `no entry for MoE layer ${m.layer} (the model has ${layers.length})`);
    if (hit.l.tokens.length !== m.num_experts)
      bad(`layers[${hit.i}].tokens`, `${hit.l.tokens.length} experts, but MoE layer ${m.layer} ("${m.name}") has ${m.num_experts}`);
    return hit.l;
  });
  routing.layers.forEach((l, i) => {
    if (l.layer >= layers.length) bad(`layers[${i}].layer`, `layer ${l.layer}, but the model has ${layers.length} MoE layers (0..${layers.length - 1})`);
  });
  return { list, file };
}

function runMoe(ctx: PassContext): MoeResult {
  const { index, order } = ctx.get(verifyPass);
  const layers = detectMoe(ctx.model, index, order);
  // On a pod, plan on the hosts the model could use (src/partition/narrow.ts).
  narrowForModel(ctx, modelNeeds(ctx, Math.max(0, ...layers.map((l) => l.num_experts))));
  if (layers.length === 0) return { layers, routing: { file: null, uniform: false }, plan: null };
  const profile = ctx.get(profilePass);
  const types = ctx.get(shapesPass).types;
  const g = ctx.model.graph;
  // Tokens per step: the router input's elements at the bound dims over its width.
  const stepTokens = layers.map((l) => {
    const t = l.input ? types.get(l.input) : undefined;
    const bytes = l.input ? (profile.value_bytes.get(l.input) ?? 0) : 0;
    const width = byteSizeOf(t?.dtype ?? l.token_dtype, l.hidden);
    return bytes > 0 && width > 0 ? Math.max(1, Math.round(bytes / width)) : 1;
  });
  const routing = routingFor(ctx, layers, stepTokens);
  const slots = ctx.option(EXPERT_SLOTS) ?? null;
  const specs = layers.map((l, i): LayerSpec => {
    const T = stepTokens[i]!;
    const dtype = (l.input ? types.get(l.input)?.dtype : undefined) ?? l.token_dtype;
    // The dense form runs every expert on every token: routing decides the gates, not the load.
    const scaled =
      l.form === 'dense'
        ? { tokens: new Float64Array(l.num_experts).fill(T), coactivation: new Float64Array(l.num_experts * l.num_experts).fill(T) }
        : scaledLayer(routing.list[i]!, l.top_k, T);
    const ops = new Map(l.dispatch.map((n) => [`${g.nodes[n]!.domain}.${g.nodes[n]!.op}`, { op: g.nodes[n]!.op, domain: g.nodes[n]!.domain }]));
    return {
      layer: l.layer,
      name: l.name,
      top_k: l.form === 'dense' ? l.num_experts : l.top_k,
      step_tokens: T,
      ...scaled,
      flops_per_token: Float64Array.from(l.experts, (e) => e.flops_per_token),
      param_bytes: Float64Array.from(l.experts, (e) => e.param_bytes),
      token_bytes: byteSizeOf(dtype, l.hidden),
      dtype,
      dispatch_ops: [...ops.values()],
    };
  });
  const expertOps = new Map<string, { op: string; domain: string }>();
  for (const l of layers)
    for (const e of l.experts)
      for (const n of e.nodes) expertOps.set(`${g.nodes[n]!.domain}.${g.nodes[n]!.op}`, { op: g.nodes[n]!.op, domain: g.nodes[n]!.domain });
  const plan = planExperts(ctx.topology(), ctx.routes(), specs, {
    slots,
    groups: 1,
    canHold: (d) => [...expertOps.values()].every((o) => canRun(d, o.op, o.domain)),
    efficiency: (d) => profile.efficiency[d.kind]?.matmul ?? 1,
  });
  return { layers, routing: { file: routing.file, uniform: routing.file === null }, plan };
}

const num = (x: number, digits = 4): string =>
  x === 0 ? '0' : Math.abs(x) >= 1e5 || Math.abs(x) < 1e-3 ? x.toExponential(digits - 1) : String(Number(x.toFixed(digits)));

/**
 * The experts as the shipped plan places them, read from its assignment (the partitioner's, not
 * the moe pass's hint): each expert's body and its executable copies (replicate pass).
 */
export function expertsAsPlaced(
  r: MoeResult,
  graph: Graph,
  deviceOf: (node: number) => string,
  copies: ReadonlyMap<string, string[][]>,
  topo: Topology,
  routes: RouteTable,
  nodeByName: ReadonlyMap<string, number>,
): PlanExpert[] {
  const out: PlanExpert[] = [];
  const ipus = topo.devices.filter((d) => d.kind === 'ipu');
  for (const l of r.layers) {
    if (l.form === 'operator' || l.experts.length === 0) continue;
    const lp = r.plan?.layers.find((x) => x.layer === l.layer);
    const router = l.router.length > 0 ? deviceOf(l.router[0]!) : null;
    const ops = [...new Map(l.dispatch.map((n) => [`${graph.nodes[n]!.domain}.${graph.nodes[n]!.op}`, graph.nodes[n]!])).values()];
    const able = new Set(ipus.filter((ipu) => ops.length > 0 && ops.every((o) => canRun(ipu, o.op, o.domain))).map((d) => d.id));
    for (const e of l.experts) {
      const key = `moe${l.layer}.expert${e.expert}`;
      const tokens = lp ? lp.problem.tokens[e.expert]! : 0;
      const bodies = copies.get(key)?.map((list) => list.map((n) => nodeByName.get(n)!)) ?? [e.nodes];
      const devices = bodies.map((body) => deviceOf(body[0]!));
      const via = new Set<string>();
      if (router !== null && able.size > 0) {
        for (const d of devices)
          if (d !== router) for (const hop of routes.route(router, d, lp?.problem.token_bytes ?? 1).hops.slice(1, -1)) if (able.has(hop)) via.add(hop);
      }
      out.push({
        layer: l.layer,
        expert: e.expert,
        tokens: Number(tokens.toFixed(3)),
        replicas: bodies.map((body, j) => ({
          device: devices[j]!,
          devices: [...new Set(body.map(deviceOf))].sort(),
          tokens: Number((tokens / bodies.length).toFixed(3)),
        })),
        dispatch_via: [...via].sort(),
      });
    }
  }
  return out;
}

/** The moe pass's own placement (a hint for the partitioner): per layer and expert, its replicas with the device and expected tokens per step. */
export function planExpertsJson(r: MoeResult): unknown[] {
  if (!r.plan) return [];
  const plan = r.plan;
  return plan.layers.flatMap((l) => {
    const byExpert = new Map<number, { device: string; tokens: number }[]>();
    for (const rep of l.placements.hxc.replicas) {
      (byExpert.get(rep.expert) ?? byExpert.set(rep.expert, []).get(rep.expert)!).push({
        device: plan.devices[rep.device]!,
        tokens: Number(rep.tokens.toFixed(3)),
      });
    }
    return [...byExpert.entries()]
      .sort(([a], [b]) => a - b)
      .map(([expert, replicas]) => ({
        layer: l.layer,
        expert,
        replicas,
        tokens: Number(l.problem.tokens[expert]!.toFixed(3)),
        dispatch_via: l.dispatch_via,
      }));
  });
}

export const EXPERT_SLOTS = intOption({
  name: 'expert-slots',
  arg: '<n>',
  min: 0,
  example: 8,
  on: ['inspect', 'check'],
  help: 'redundant MoE expert replicas per layer (default: one per expert device)',
});

export const moePass: Pass<MoeResult> = {
  name: 'moe',
  summary: 'find MoE layers (com.microsoft MoE, torch routing patterns, annotations) and place and replicate experts over devices',
  requires: ['verify', 'profile'],
  options: [ROUTING, EXPERT_SLOTS],
  run: runMoe,
  statistics(r) {
    const stats: Record<string, number | string> = { 'moe layers': r.layers.length, experts: r.layers.reduce((s, l) => s + l.num_experts, 0) };
    if (r.plan) {
      stats['replicas placed'] = r.plan.summary.hxc.replicas;
      stats['expert devices'] = r.plan.devices.length;
      for (const m of METHODS) stats[`imbalance ${m}`] = num(r.plan.summary[m].imbalance_max);
      for (const m of METHODS) stats[`bytes/token ${m}`] = Math.round(r.plan.summary[m].bytes_per_token);
    }
    return stats;
  },
  dump(r, ctx) {
    const g = ctx.model.graph;
    const names = (ids: number[]): string => ids.map((i) => g.nodes[i]!.name).join(' ');
    const lines: string[] = [`routing: ${r.routing.file === null ? (r.layers.length ? 'uniform (no --routing)' : 'none') : 'file'}`];
    const plan = r.plan;
    if (plan) lines.push(`expert devices: ${plan.devices.join(' ')}; token sources: ${plan.sources.join(' ')}; redundant slots per layer: ${plan.slots}`);
    for (const l of r.layers) {
      const e0 = l.experts[0];
      lines.push(
        `layer ${l.layer} "${l.name}": form=${l.form} detected_by=${l.detected_by} experts=${l.num_experts} top_k=${l.top_k} hidden=${l.hidden} dtype=${l.token_dtype} flops_per_token=${e0?.flops_per_token ?? 0} param_bytes=${e0?.param_bytes ?? 0} shared=${l.shared.length} dispatch_nodes=${l.dispatch.length}`,
      );
      lines.push(`  router: ${names(l.router)}`);
      for (const e of l.experts) lines.push(`  expert ${e.expert}: ${names(e.nodes)}`);
      const lp = plan?.layers[l.layer];
      if (!lp) continue;
      lines.push(
        `  step tokens=${lp.problem.step_tokens} token_bytes=${lp.problem.token_bytes}${lp.dispatch_via.length ? ` dispatch via ${lp.dispatch_via.join(' ')}` : ''}`,
      );
      for (const m of METHODS) {
        const mt = lp.metrics[m];
        const reps = lp.placements[m].replicas.map((x) => `${x.expert}@${plan.devices[x.device]}:${num(x.tokens)}`).join(' ');
        lines.push(`  ${m}: time_s=${num(mt.time_s)} imbalance=${num(mt.imbalance)} bytes_per_token=${num(mt.bytes_per_token)} replicas ${reps}`);
      }
    }
    if (plan)
      for (const m of METHODS)
        lines.push(
          `summary ${m}: imbalance max=${num(plan.summary[m].imbalance_max)} mean=${num(plan.summary[m].imbalance_mean)} bytes_per_token=${num(plan.summary[m].bytes_per_token)} time_s=${num(plan.summary[m].time_s)}`,
        );
    return lines.join('\n') + '\n';
  },
  nodeNote(r, _ctx, i) {
    return notesOf(r).get(i);
  },
};

/** Per-node notes (`moe 3 expert 5`, `moe 3 router`), built once per result. */
const notes = new WeakMap<MoeResult, Map<number, string>>();
function notesOf(r: MoeResult): Map<number, string> {
  let m = notes.get(r);
  if (!m) {
    m = new Map();
    for (const l of r.layers) {
      for (const i of l.dispatch) m.set(i, `moe ${l.layer} dispatch`);
      if (l.form !== 'operator') for (const e of l.experts) for (const i of e.nodes) m.set(i, `moe ${l.layer} expert ${e.expert}`);
      for (const i of l.router) m.set(i, `moe ${l.layer} router`);
    }
    notes.set(r, m);
  }
  return m;
}
