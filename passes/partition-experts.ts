// The partition pass's MoE glue: experts (and their copies and tensor-parallel parts) as units of
// their own, grouped with --expert-units; the moe pass's placement as a candidate's restriction.

import { EXPERT_UNITS, PIN_EXPERTS } from './partition-options.js';
import type { Unit } from '../src/partition/build.js';
import type { PlacementProblem } from '../src/partition/problem.js';
import { ranges, restrictToExpertDevices } from '../src/partition/experts.js';
import type { PassContext } from '../src/pass/pass.js';
import type { GraphIndex } from '../src/ir/algorithms.js';
import type { StageResult } from './stage.js';
import { moePass } from './moe.js';
import { replicatePass } from './replicate.js';
import { tpPass } from './tp.js';
import { verifyPass } from './verify.js';

export interface ExpertSets {
  experts?: number[][];
  expert_names?: string[];
  expert_devices?: (readonly string[] | null)[];
  /** Per expert set, the experts it computes (`moe3.expert5`; a copy names its original; none for tensor-parallel parts). */
  expert_keys?: string[][];
}

/**
 * The experts of routed MoE layers, as units of their own (the moe pass found them). With
 * `--expert-units N` and more than N experts in the model (DeepSeek-V3: 14,848), a layer's experts
 * are grouped: those of one stage the moe pass put on the same devices, ordered by their expected tokens, in
 * runs of ceil(experts / N), one unit per run. Experts of a layer are interchangeable until routing
 * tells them apart, and the moe pass's placement has told them apart; grouping trades the
 * partitioner's freedom per expert (measured on the DeepSeek-V3 shape, rack-8gpu: a 3% longer
 * estimate) for a placement problem, a schedule and a program per group (30,063 → 7,292 units,
 * 29,882 → 7,111 program files, 97 → 86 s).
 */
export function expertUnits(ctx: PassContext, stages: StageResult): ExpertSets {
  const experts: number[][] = [];
  const expert_names: string[] = [];
  const expert_devices: (readonly string[] | null)[] = [];
  const expert_keys: string[][] = [];
  // Experts are free units unless the user pins them to the moe pass's devices (--pin-experts);
  // otherwise that placement is one candidate among others (moeHint).
  const hinted = moeDevices(ctx);
  const pinned = ctx.option(PIN_EXPERTS) === true;
  const devicesOf = (key: string): readonly string[] | null => (pinned ? (hinted.get(key) ?? null) : null);
  if (ctx.has(moePass)) {
    const moe = ctx.get(moePass);
    const keyOf = expertKeys(moe);
    const layers = moe.layers.filter((l) => l.form === 'sparse' || l.form === 'dense');
    const total = layers.reduce((s, l) => s + l.experts.length, 0);
    const budget = ctx.option(EXPERT_UNITS) ?? Infinity;
    const size = Math.ceil(total / budget);
    // (Read only to group experts: 14,848 keys made for nothing on the DeepSeek-V3 shape otherwise.)
    const tokens = size > 1 ? expectedTokens(ctx) : new Map<string, number>();
    // A group stays within one stage (a stage cut between its experts would cut the group).
    const stageOf = new Int32Array(size > 1 ? ctx.model.graph.nodes.length : 0);
    if (size > 1)
      stages.stages.forEach((st, k) => {
        for (const i of st.nodes) stageOf[i] = k;
      });
    for (const l of layers) {
      const key = (e: number): string => keyOf(l.layer, e);
      if (size <= 1) {
        for (const e of l.experts) {
          experts.push(e.nodes);
          expert_names.push(key(e.expert));
          expert_devices.push(devicesOf(key(e.expert)));
          expert_keys.push([key(e.expert)]);
        }
        continue;
      }
      // Buckets by the moe pass's devices, each ordered by expected tokens (hot first), then cut
      // into runs of near-equal length.
      const buckets = new Map<string, typeof l.experts>();
      for (const e of l.experts) {
        const b = `${stageOf[e.nodes[0]!]} ${[...(hinted.get(key(e.expert)) ?? [])].sort().join(',')}`;
        (buckets.get(b) ?? buckets.set(b, []).get(b)!).push(e);
      }
      for (const b of [...buckets.keys()].sort((x, y) => parseInt(x, 10) - parseInt(y, 10) || (x < y ? -1 : x > y ? 1 : 0))) {
        const list = buckets.get(b)!.sort((x, y) => (tokens.get(key(y.expert)) ?? 0) - (tokens.get(key(x.expert)) ?? 0) || x.expert - y.expert);
        const runs = Math.ceil(list.length / size);
        for (let r = 0, at = 0; r < runs; r++) {
          const len = Math.floor(list.length / runs) + (r < list.length % runs ? 1 : 0);
          const run = list.slice(at, at + len);
          at += len;
          experts.push(run.flatMap((e) => e.nodes));
          expert_names.push(`moe${l.layer}.experts${ranges(run.map((e) => e.expert))}`);
          expert_devices.push(devicesOf(key(run[0]!.expert)));
          expert_keys.push(run.map((e) => key(e.expert)));
        }
      }
    }
  }
  // Expert replicas: each copy its own unit, so copies can go to different devices.
  const named = splitAndCopyNodes(ctx);
  if (ctx.has(replicatePass)) {
    for (const r of ctx.get(replicatePass).replicated)
      r.replicas.forEach((names, j) => {
        experts.push(names.map((n) => named.get(n)!));
        expert_names.push(`${r.key}.copy${j}`);
        expert_devices.push(devicesOf(r.key));
        expert_keys.push([r.key]);
      });
  }
  // Tensor-parallel parts are independent too: each its own unit, so they can go to k devices.
  if (ctx.has(tpPass)) {
    for (const s of ctx.get(tpPass).splits)
      s.parts.forEach((part, j) => {
        // A row-parallel pair's shard is one unit: its column parts, elementwise chain and row part.
        experts.push((s.members?.[j] ?? [part]).map((name) => named.get(name)!));
        expert_names.push(`tp${j}`);
        expert_devices.push(null);
        expert_keys.push([]);
      });
  }
  return experts.length > 0 ? { experts, expert_names, expert_devices, expert_keys } : {};
}

const namedOf = new WeakMap<GraphIndex, Map<string, number>>();

/**
 * Node indices by name of the nodes the partition looks up by name: every tensor-parallel part and
 * shard member (tp pass) and every expert copy's node (replicate pass). Found by one walk over the
 * nodes for those names, not through the index's map of every node's name (GraphIndex.nodeByName:
 * 278k names, ~0.15 s on the DeepSeek-V3 shape, for ~4k lookups); kept per index.
 */
export function splitAndCopyNodes(ctx: PassContext): ReadonlyMap<string, number> {
  const index = ctx.get(verifyPass).index;
  const kept = namedOf.get(index);
  if (kept) return kept;
  const wanted = new Set<string>();
  if (ctx.has(replicatePass)) for (const r of ctx.get(replicatePass).replicated) for (const names of r.replicas) for (const n of names) wanted.add(n);
  if (ctx.has(tpPass))
    for (const s of ctx.get(tpPass).splits) {
      for (const part of s.parts) wanted.add(part);
      for (const list of s.members ?? []) for (const name of list) wanted.add(name);
    }
  const named = new Map<string, number>();
  if (wanted.size > 0) {
    // (In node order, the last of a repeated name winning, as in the index's map.)
    const nodes = index.graph.nodes;
    for (let i = 0; i < nodes.length; i++) if (wanted.has(nodes[i]!.name)) named.set(nodes[i]!.name, i);
  }
  namedOf.set(index, named);
  return named;
}

const keysOf = new WeakMap<object, Map<number, string>>();

/**
 * Expert keys (`moe3.expert5`), one string per layer and expert of a moe result, made once and
 * shared by the maps keyed by them and the expert sets that look them up (a string a map holds
 * keeps its hash; a key made again is hashed again: 14,848 per lookup on the DeepSeek-V3 shape).
 */
function expertKeys(moe: object): (layer: number, expert: number) => string {
  let table = keysOf.get(moe);
  if (!table) keysOf.set(moe, (table = new Map()));
  const t = table;
  return (layer, expert) => {
    const at = layer * 2 ** 24 + expert;
    let key = t.get(at);
    if (key === undefined) t.set(at, (key = `moe${layer}.expert${expert}`));
    return key;
  };
}

/** Per expert key, the tokens per step the moe pass expects it to take (summed over its replicas). */
export function expectedTokens(ctx: PassContext): Map<string, number> {
  const m = new Map<string, number>();
  const plan = ctx.has(moePass) ? ctx.get(moePass).plan : null;
  if (!plan) return m;
  const keyOf = expertKeys(ctx.get(moePass));
  for (const l of plan.layers)
    for (const rep of l.placements.hxc.replicas) {
      const key = keyOf(l.layer, rep.expert);
      m.set(key, (m.get(key) ?? 0) + rep.tokens);
    }
  return m;
}

/** The problem with each expert unit restricted to the moe pass's devices for it (null without a moe plan, or with --pin-experts). */
export function moeHint(ctx: PassContext, units: Unit[], p: PlacementProblem, keys: string[][]): PlacementProblem | null {
  if (ctx.option(PIN_EXPERTS)) return null;
  const devices = moeDevices(ctx);
  return devices.size === 0 ? null : restrictToExpertDevices(units, p, keys, devices);
}

const moeDevicesOf = new WeakMap<object, ReadonlyMap<string, readonly string[]>>();

/** Per expert key (`moe3.expert5`), the devices the moe pass gave its replicas (kept per moe result: read-only). */
export function moeDevices(ctx: PassContext): ReadonlyMap<string, readonly string[]> {
  if (!ctx.has(moePass)) return new Map();
  const moe = ctx.get(moePass);
  const kept = moeDevicesOf.get(moe);
  if (kept) return kept;
  const m = new Map<string, string[]>();
  moeDevicesOf.set(moe, m);
  const plan = moe.plan;
  if (!plan) return m;
  const keyOf = expertKeys(moe);
  for (const l of plan.layers)
    for (const rep of l.placements.hxc.replicas) {
      const key = keyOf(l.layer, rep.expert);
      const id = plan.devices[rep.device]!;
      const list = m.get(key) ?? m.set(key, []).get(key)!;
      if (!list.includes(id)) list.push(id);
    }
  return m;
}
