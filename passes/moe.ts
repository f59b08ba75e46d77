// moe: find the MoE layers (src/moe/detect.ts), read routing statistics (`--routing FILE`, else
// uniform with warning HXC1106; src/moe/routing.ts), choose the devices that hold experts and place
// and replicate experts on them (src/moe/plan.ts, src/moe/place.ts), next to the two baselines it
// is measured against (round-robin, EPLB-style greedy). Its placement is a candidate for the
// partition pass (`moe-hint`, judged like every other), binding only with --pin-experts; plan.json
// `experts` reports where the shipped assignment runs each expert.

import { intOption } from '../src/pass/options.js';
import { ROUTING } from '../src/moe/routing.js';
import type { PlanExpert } from '../src/plan/format.js';
import { narrowForModel } from '../src/partition/narrow.js';
import { modelNeeds } from './stage.js';
import { HxcError } from '../src/diag/diagnostics.js';
import { byteSizeOf } from '../src/ir/dtype.js';
import { detectMoe, type MoeLayer } from '../src/moe/detect.js';
import { readRouting, scaledLayer, uniformScaled, type ScaledRouting } from '../src/moe/routing.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import {
  EXPERT_MEMORY_FRACTION,
  METHODS,
  planExperts,
  type ExpertPlan,
  type LayerPlan,
  type LayerSpec,
  type Method,
  type PlanOptions,
} from '../src/moe/plan.js';
import { canRun, type RouteTable, type Topology } from '../src/topology/index.js';
import type { Graph, Node } from '../src/ir/graph.js';
import { profilePass } from './profile.js';
import { shapesPass } from './shapes.js';
import { verifyPass } from './verify.js';
import { dumpNumber } from '../src/util/format.js';

export type { PlanExpert };
export { EXPERT_MEMORY_FRACTION, METHODS, planExperts, type ExpertPlan, type LayerPlan, type LayerSpec, type Method, type PlanOptions };

export interface MoeResult {
  layers: MoeLayer[];
  routing: { file: string | null; uniform: boolean };
  plan: ExpertPlan | null;
}

/**
 * The routing of each detected layer (by its place in `layers`): from the file (checked against
 * the model), else uniform — each layer's as the placement reads it (scaled to the step's tokens).
 * Uniform routing is one and the same for layers of equal experts, top-k and step tokens: it is
 * made once and those layers share it (read only, as every reader of a ScaledRouting treats it).
 * The DeepSeek-V3 shape's 58 layers held 58 × 256² numbers a variant (30 MB, made and written).
 */
function routingFor(ctx: PassContext, layers: MoeLayer[], stepTokens: number[]): { scaled: (i: number) => ScaledRouting; file: string | null } {
  const file = ctx.option(ROUTING);
  if (typeof file !== 'string' || file === '') {
    ctx.diagnostics.warn('HXC1106', `uniform routing assumed for ${layers.length} MoE layer${layers.length === 1 ? '' : 's'}: every expert equally loaded`, {
      hint: 'give measured counts with --routing FILE (hxc-routing/v1; hxc run writes one)',
    });
    const made = new Map<string, ScaledRouting>();
    const scaled = (i: number): ScaledRouting => {
      const l = layers[i]!;
      const key = `${l.num_experts},${l.top_k},${stepTokens[i]!}`;
      let r = made.get(key);
      if (!r) made.set(key, (r = uniformScaled(l.num_experts, l.top_k, stepTokens[i]!)));
      return r;
    };
    return { scaled, file: null };
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
  return { scaled: (i) => scaledLayer(list[i]!, layers[i]!.top_k, stepTokens[i]!), file };
}

/**
 * Adds node's op to `ops` (keyed `domain.op`) unless it is there: no entry pair and record made per
 * node, as a Map built from one per node did (a layer's dispatch and experts: 150k nodes a variant).
 */
function opOnce(ops: Map<string, { op: string; domain: string }>, node: Node): void {
  const key = `${node.domain}.${node.op}`;
  if (!ops.has(key)) ops.set(key, { op: node.op, domain: node.domain });
}

function runMoe(ctx: PassContext): MoeResult {
  const { index, order } = ctx.get(verifyPass);
  const layers = detectMoe(ctx.model, index, order);
  // On a pod, plan on the hosts the model could use (src/partition/narrow.ts).
  narrowForModel(ctx, modelNeeds(ctx, Math.max(0, ...layers.map((l) => l.num_experts))));
  if (layers.length === 0) {
    // A routing trace for a model with no MoE layer routes nothing: said, not silently dropped.
    const file = ctx.option(ROUTING);
    if (typeof file === 'string' && file !== '')
      ctx.diagnostics.warn('HXC1111', 'given with --routing, but the model has no MoE layer: it routes nothing', { where: file });
    return { layers, routing: { file: null, uniform: false }, plan: null };
  }
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
        : routing.scaled(i);
    const ops = new Map<string, { op: string; domain: string }>();
    for (let k = 0; k < l.dispatch.length; k++) opOnce(ops, g.nodes[l.dispatch[k]!]!);
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
  for (const l of layers) for (const e of l.experts) for (let k = 0; k < e.nodes.length; k++) opOnce(expertOps, g.nodes[e.nodes[k]!]!);
  const plan = planExperts(ctx.topology(), ctx.routes(), specs, {
    slots,
    groups: 1,
    canHold: (d) => [...expertOps.values()].every((o) => canRun(d, o.op, o.domain)),
    efficiency: (d) => profile.efficiency[d.kind]?.matmul ?? 1,
  });
  return { layers, routing: { file: routing.file, uniform: routing.file === null }, plan };
}

const num = (x: number, digits = 4): string => dumpNumber(x, digits);

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
        tokens,
        replicas: bodies.map((body, j) => ({
          device: devices[j]!,
          devices: [...new Set(body.map(deviceOf))].sort(),
          tokens: tokens / bodies.length,
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
        tokens: rep.tokens,
      });
    }
    return [...byExpert.entries()]
      .sort(([a], [b]) => a - b)
      .map(([expert, replicas]) => ({
        layer: l.layer,
        expert,
        replicas,
        tokens: l.problem.tokens[expert]!,
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
  uses: ['state', 'stage'],
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
