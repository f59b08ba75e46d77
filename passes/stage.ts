// stage: coarsen nodes into stages, the units the partitioner moves. Stages are intervals of a
// block-grouped topological order (convex by construction, see src/ir/stages.ts): one per
// repeated block (transformer layer, ResNet block) and per stretch between blocks, heavy stretches
// split, then the lightest neighbours merged down to --max-stages. Cheap element-wise chains and
// shape arithmetic stay inside the interval of the block that consumes them.

import { ASSIGN, OBJECTIVE } from './partition-options.js';
import { intOption } from '../src/pass/options.js';
import { computeTime, ridgePoint } from '../src/cost/model.js';
import { present, type NodeCosts } from '../src/cost/node-costs.js';
import { launchesFused } from '../src/cost/fusion.js';
import { blockOrder, blockRanks, cutIntervals } from '../src/ir/stages.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import { profilePass } from './profile.js';
import { verifyPass } from './verify.js';
import { statePass } from './state.js';
import type { ModelNeeds } from '../src/partition/narrow.js';
import { dumpNumber } from '../src/util/format.js';

export interface Stage {
  id: number;
  /** The block label (`layers.3`) when the stage is one block, else `stage<id>`. */
  name: string;
  /** Node indices in execution order. */
  nodes: number[];
  flops: number;
  bytes: number;
  param_bytes: number;
  /** Seconds on the fastest device kind for the stage (sum over its nodes). */
  fastest_s: number;
  /** Op-type signature: stages with equal signatures are repeats of one block. */
  signature: string;
  /** The first stage with the same signature, or null. */
  repeat_of: number | null;
  /** Roofline regime of the whole stage on each device kind. */
  bound: Record<string, 'compute' | 'memory'>;
}

export interface StageResult {
  stages: Stage[];
  /** Node index → stage id. */
  stage_of: Int32Array;
  /** Node order the stages cut (stages are contiguous in it). */
  order: Int32Array;
  /** Distinct repeated blocks: signature groups with more than one stage. */
  repeat_groups: number;
  /** A coarser cut the partition pass plans on too (null when --max-stages is given or the cuts agree). */
  coarse: { stages: Stage[]; stage_of: Int32Array } | null;
}

export const DEFAULT_MAX_STAGES = 256;

export function buildStages(ctx: PassContext): StageResult {
  const { index } = ctx.get(verifyPass);
  const profile = ctx.get(profilePass);
  const topo = ctx.topology();
  const maxStages = ctx.option(MAX_STAGES) ?? DEFAULT_MAX_STAGES;
  const n = index.size;
  const kinds = new Map<string, (typeof topo.devices)[number]>();
  for (const d of topo.devices) if (!kinds.has(d.kind)) kinds.set(d.kind, d);
  const weight = new Float64Array(n);
  // (One device per kind as an array: a for-of over the map's values per node made iterator results, 12 MB a run, sampled.)
  const kindDevices = [...kinds.values()];
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    const cost = profile.nodes.view(i);
    for (let j = 0; j < kindDevices.length; j++) best = Math.min(best, computeTime(cost, kindDevices[j]!, profile.efficiency));
    weight[i] = Number.isFinite(best) ? best : 0;
  }
  const verified = ctx.get(verifyPass);
  const { rank: keyed, labels } = blockRanks(index, verified.order);
  const g = ctx.model.graph;
  const constant = (i: number): boolean => g.nodes[i]!.op === 'Constant' || (profile.nodes.flops[i] === 0 && profile.nodes.bytes[i] === 0);
  const { order, rank } = blockOrder(index, keyed, constant);
  const joined = fusionJoins(
    order,
    profile.fused_into,
    profile.nodes,
    topo.devices.some((d) => launchesFused(d.kind)),
  );
  // Two cuts, both weighed by the partition pass (the better plan ships): as many pieces as
  // --max-stages allows, and a coarse one of max(2 × devices, blocks) pieces. Fine units let the
  // partitioner overlap work that coarse ones serialise (latency: mixtral_tiny on rack-hetero
  // 0.428 → 0.350 ms, gpt2_tiny on rack-tiny 1.035 → 0.900 ms); coarse ones give the pipeline and
  // its search fewer, whole pieces (throughput: mixtral_tiny on rack-hetero 6252 vs 4754 /s;
  // Mixtral-8x7B decode latency on rack-8gpu 11.64 vs 12.86 ms). Neither wins everywhere. With
  // --max-stages given, that cut alone.
  const abstract = n > 0 && g.nodes.every((node) => node.task !== undefined);
  const cut = (target: number): { stages: Stage[]; stage_of: Int32Array } => {
    // Abstract task graphs are already coarse: every task is a unit of placement.
    const intervals = abstract
      ? cutIntervals(
          order,
          Int32Array.from(order, (_, k) => k),
          weight,
          maxStages,
          0,
        )
      : cutIntervals(order, rank, weight, maxStages, target, joined);
    const stage_of = new Int32Array(n);
    const bySignature = new Map<string, number>();
    const stages: Stage[] = intervals.map((iv, id) => {
      // (Copied and walked with counted loops: Array.from over a typed array and a for-of made
      // iterator results per node, 41–67 MB a run, sampled.)
      const nodes: number[] = [];
      for (let k = iv.start; k < iv.end; k++) nodes.push(order[k]!);
      let flops = 0;
      let bytes = 0;
      let params = 0;
      let fastest = 0;
      const ops = new Map<string, number>();
      // The one block rank among the nodes, or -2 when they have several (-1: none yet).
      let block = -1;
      for (let k = 0; k < nodes.length; k++) {
        const i = nodes[k]!;
        const r = keyed[i]!;
        if (r >= 0 && r !== block) block = block === -1 ? r : -2;
        stage_of[i] = id;
        flops += profile.nodes.flops[i]!;
        bytes += profile.nodes.bytes[i]!;
        params += profile.nodes.param_bytes[i]!;
        fastest += weight[i]!;
        const op = g.nodes[i]!.op;
        ops.set(op, (ops.get(op) ?? 0) + 1);
      }
      const signature = [...ops.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([o, c]) => `${o}:${c}`)
        .join(',');
      const repeat_of = bySignature.get(signature) ?? null;
      if (repeat_of === null) bySignature.set(signature, id);
      const name = block >= 0 ? labels[block]! : `stage${id}`;
      const intensity = bytes > 0 ? flops / bytes : 0;
      const bound: Stage['bound'] = {};
      for (const [kind, d] of kinds) {
        const dtype = nodes.length ? profile.nodes.dtypeAt(nodes[0]!) : 'float32';
        bound[kind] = intensity >= ridgePoint(d, dtype) ? 'compute' : 'memory';
      }
      return { id, name, nodes, flops, bytes, param_bytes: params, fastest_s: fastest, signature, repeat_of, bound };
    });
    return { stages, stage_of };
  };
  const coarseTarget = Math.min(maxStages, Math.max(2 * topo.devices.length, labels.length));
  const { stages, stage_of } = cut(maxStages);
  const coarse = !abstract && ctx.option(MAX_STAGES) === undefined && coarseTarget < maxStages ? cut(coarseTarget) : null;
  const groups = new Map<number, number>();
  for (const s of stages) if (s.repeat_of !== null) groups.set(s.repeat_of, (groups.get(s.repeat_of) ?? 0) + 1);
  return { stages, stage_of, order, repeat_groups: groups.size, coarse: coarse && coarse.stages.length < stages.length ? coarse : null };
}

/**
 * Where a cut would break a kernel fusion (src/cost/fusion.ts): per position k of `order`, 1 when
 * positions k − 1 and k lie between a fused chain's head and one of its nodes. A chain is one
 * kernel on a device that fuses, and the cost model prices it so; cut, its parts would land in
 * units a placement may put on two devices (or in two programs of one), where nothing fuses them,
 * and the plan would claim a fusion it does not run (23 of gpt2-tiny's 63 fused nodes on
 * rack-tiny sat on another device than their kernel). So a chain is never cut: a unit holds whole
 * kernels. Not when no device of the rack fuses (nothing to keep), nor for a routed layer's expert
 * ops, which run in the layer's grouped kernels, priced per device (src/partition/problem.ts).
 */
export function fusionJoins(order: Int32Array, fusedInto: Int32Array, costs: NodeCosts, fuses: boolean): Uint8Array | undefined {
  if (!fuses) return undefined;
  const n = order.length;
  const pos = new Int32Array(fusedInto.length).fill(-1);
  order.forEach((i, k) => (pos[i] = k));
  // reach[k]: the furthest position a chain whose head sits at k reaches.
  const reach = new Int32Array(n).fill(-1);
  let any = false;
  for (let i = 0; i < fusedInto.length; i++) {
    const h = fusedInto[i]!;
    if (h < 0 || pos[i]! < 0 || pos[h]! < 0) continue;
    if (present(costs.launch_group[i]!) !== undefined || present(costs.launch_group[h]!) !== undefined) continue;
    reach[pos[h]!] = Math.max(reach[pos[h]!]!, pos[i]!);
    any = true;
  }
  if (!any) return undefined;
  const joined = new Uint8Array(n + 1);
  let open = -1;
  for (let k = 0; k < n; k++) {
    if (k <= open) joined[k] = 1;
    open = Math.max(open, reach[k]!);
  }
  return joined;
}

const fmt = (x: number): string => dumpNumber(x, 3);

export const MAX_STAGES = intOption({
  name: 'max-stages',
  arg: '<n>',
  min: 1,
  example: 64,
  on: ['inspect', 'check'],
  help: `at most N stages (default ${DEFAULT_MAX_STAGES}); the lightest neighbours are merged`,
});

export const stagePass: Pass<StageResult> = {
  name: 'stage',
  summary: 'coarsen nodes into convex stages (repeated blocks, fused cheap chains) that the partitioner moves',
  requires: ['verify', 'profile'],
  options: [MAX_STAGES],
  run: buildStages,
  statistics(r) {
    return { stages: r.stages.length, 'repeated blocks': r.repeat_groups, 'largest stage nodes': Math.max(0, ...r.stages.map((s) => s.nodes.length)) };
  },
  dump(r, ctx) {
    const g = ctx.model.graph;
    const lines: string[] = [];
    for (const s of r.stages) {
      const bound = Object.entries(s.bound)
        .map(([k, b]) => `${k}:${b}`)
        .join(',');
      lines.push(
        `stage ${s.id} "${s.name}": nodes=${s.nodes.length} flops=${s.flops} bytes=${s.bytes} params=${s.param_bytes} fastest_s=${fmt(s.fastest_s)} bound=${bound}${s.repeat_of !== null ? ` repeat_of=${s.repeat_of}` : ''}`,
      );
      lines.push(`  ${s.nodes.map((i) => g.nodes[i]!.name).join(' ')}`);
    }
    return lines.join('\n') + '\n';
  },
  nodeNote(r, _ctx, i) {
    return `stage ${r.stage_of[i]}`;
  },
};

/** What src/partition/narrow.ts sizes a large rack's cut by, from the analyses that ran. */
export function modelNeeds(ctx: PassContext, widestMoe: number): ModelNeeds {
  return {
    param_bytes: ctx.has(profilePass) ? ctx.get(profilePass).totals.param_bytes : 0,
    state_bytes: ctx.has(statePass) ? ctx.get(statePass).totals.bytes : 0,
    stages: ctx.has(stagePass) ? new Set(ctx.get(stagePass).stages.map((s) => s.name)).size : 0,
    widest_moe: widestMoe,
    assigned: ctx.option(ASSIGN) !== undefined,
    throughput: ctx.option(OBJECTIVE) === 'throughput',
  };
}
