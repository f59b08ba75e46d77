// classify: for each node and each device kind of the topology, whether it is compute- or
// memory-bound (which of its roofline terms is larger there: src/cost/model.ts computeBound, with
// the kind's efficiency for its op class and its waves over the SMs), how heavy its outgoing
// edges are against its compute (what a cut after it would cost), and how latency-sensitive it is
// (slack in a critical-path analysis on the fastest device for each node; decode work is always
// latency-sensitive). The stage pass bounds each stage from its own totals;
// `hxc inspect --costs` shows these per-node labels.

import { deviceClasses } from '../src/topology/classes.js';
import { LARGE_RACK_DEVICES } from '../src/topology/render.js';
import { computeBound, computeTime } from '../src/cost/model.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import { canRun, type Device } from '../src/topology/index.js';
import { deviceClassKey } from '../src/topology/device.js';
import { bindPass } from './bind.js';
import { profilePass } from './profile.js';
import { verifyPass } from './verify.js';

export interface KindClass {
  /** Roofline regime on this kind. */
  bound: 'compute' | 'memory';
  /** Estimated seconds on the kind's fastest part that can run the node (Infinity when none can). */
  time_s: number;
  /** Seconds to send the node's outputs over the topology's typical link ÷ its compute time. */
  comm_ratio: number;
}

export interface NodeClass {
  by_kind: Record<string, KindClass>;
  /** Latest start − earliest start on the fastest devices (0 = on the critical path). */
  slack_s: number;
  latency_sensitive: boolean;
}

/** Columnar: per kind (index into `kinds`) one typed array over nodes, so 100k nodes cost a few allocations. */
export interface ClassifyResult {
  kinds: string[];
  time_s: Float64Array[];
  compute_bound: Uint8Array[];
  comm_ratio: Float64Array[];
  slack_s: Float64Array;
  latency_sensitive: Uint8Array;
  /** Critical path length on the fastest device for each node, transfers ignored: a lower bound on any makespan. */
  critical_path_s: number;
  /** Bandwidth (bytes/s) and latency of the median device-to-device route, used for comm_ratio. */
  typical_link: { bandwidth_bytes_per_s: number; latency_s: number };
}

/** One node's classification as an object (for display and JSON). */
export function nodeClass(r: ClassifyResult, i: number): NodeClass {
  const by_kind: Record<string, KindClass> = {};
  r.kinds.forEach((k, j) => {
    by_kind[k] = { bound: r.compute_bound[j]![i] ? 'compute' : 'memory', time_s: r.time_s[j]![i]!, comm_ratio: r.comm_ratio[j]![i]! };
  });
  return { by_kind, slack_s: r.slack_s[i]!, latency_sensitive: r.latency_sensitive[i] === 1 };
}

export function classifyGraph(ctx: PassContext): ClassifyResult {
  const topo = ctx.topology();
  const profile = ctx.get(profilePass);
  const { index, order } = ctx.get(verifyPass);
  const phase = ctx.get(bindPass).phase;
  // Each distinct part once (identical devices time a node alike), in file order; a node's time on
  // a kind is its time on the fastest part of that kind that can run it (Infinity when none can),
  // and the critical path takes every node at its fastest anywhere it runs.
  // (An abstract task graph's times are per device id: there every device is a part of its own.)
  const perId = ctx.model.graph.nodes.some((x) => x.task !== undefined);
  const parts = new Map<string, Device>();
  for (const d of topo.devices) {
    const key = perId ? d.id : deviceClassKey(d);
    if (!parts.has(key)) parts.set(key, d);
  }
  const devices = [...parts.values()];
  const kinds = [...new Set(devices.map((d) => d.kind))];
  const kindOf = devices.map((d) => kinds.indexOf(d.kind));
  const typical = typicalLink(ctx);
  const n = index.size;
  const time_s = kinds.map(() => new Float64Array(n));
  const compute_bound = kinds.map(() => new Uint8Array(n));
  const comm_ratio = kinds.map(() => new Float64Array(n));
  const fastest = new Float64Array(n);
  const nodes = ctx.model.graph.nodes;
  // Counted loops over the index's CSR arrays here and below: a subarray view per node and edge
  // direction was 120 MB of this pass's allocation (sampled).
  const { outputOffsets, outputIds, predOffsets, preds, succOffsets, succs } = index;
  for (let i = 0; i < n; i++) {
    const cost = profile.nodes.view(i);
    let outBytes = 0;
    for (let e = outputOffsets[i]!; e < outputOffsets[i + 1]!; e++) {
      const id = outputIds[e]!;
      if (id >= 0) outBytes += profile.value_bytes_by_id[id]!;
    }
    const send = outBytes > 0 ? typical.latency_s + outBytes / typical.bandwidth_bytes_per_s : 0;
    let best = Infinity;
    for (let j = 0; j < kinds.length; j++) time_s[j]![i] = Infinity;
    const node = nodes[i]!;
    for (let j = 0; j < devices.length; j++) {
      const d = devices[j]!;
      if (!canRun(d, node.op, node.domain)) continue;
      const t = computeTime(cost, d, profile.efficiency);
      if (t < best) best = t;
      const k = kindOf[j]!;
      if (t < time_s[k]![i]!) {
        time_s[k]![i] = t;
        compute_bound[k]![i] = computeBound(cost, d, profile.efficiency) ? 1 : 0;
        comm_ratio[k]![i] = t > 0 && Number.isFinite(t) ? send / t : 0;
      }
    }
    fastest[i] = Number.isFinite(best) ? best : 0;
  }
  // Critical path (CPM): earliest finish forward, latest finish backward, slack = difference.
  const eft = new Float64Array(n);
  let cp = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    let est = 0;
    for (let e = predOffsets[i]!; e < predOffsets[i + 1]!; e++) est = Math.max(est, eft[preds[e]!]!);
    eft[i] = est + fastest[i]!;
    cp = Math.max(cp, eft[i]!);
  }
  const lft = new Float64Array(n).fill(cp);
  for (let k = order.length - 1; k >= 0; k--) {
    const i = order[k]!;
    for (let e = succOffsets[i]!; e < succOffsets[i + 1]!; e++) {
      const s = succs[e]!;
      lft[i] = Math.min(lft[i]!, lft[s]! - fastest[s]!);
    }
  }
  const tolerance = cp * 1e-9;
  const slack_s = new Float64Array(n);
  const latency_sensitive = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const slack = Math.max(0, lft[i]! - eft[i]!);
    slack_s[i] = slack;
    latency_sensitive[i] = phase === 'decode' || slack <= tolerance ? 1 : 0;
  }
  return { kinds, time_s, compute_bound, comm_ratio, slack_s, latency_sensitive, critical_path_s: cp, typical_link: typical };
}

/** The median route between distinct devices for a 1 MiB transfer: what "crossing a cut" typically costs. */
function typicalLink(ctx: PassContext): ClassifyResult['typical_link'] {
  const topo = ctx.topology();
  const routes = ctx.routes();
  // Every ordered pair on a small rack; on a large one, from each device class's first member to
  // every device, weighted by the class's size (the same median when a class's members see the
  // rack alike, which is what makes them a class) — N routes per class, not N².
  const sources =
    topo.devices.length <= LARGE_RACK_DEVICES
      ? topo.devices.map((d) => ({ id: d.id, weight: 1 }))
      : deviceClasses(topo).map((c) => ({ id: c.representative, weight: c.devices.length }));
  const samples: { bw: number; lat: number; weight: number }[] = [];
  for (const a of sources) {
    for (const b of topo.devices) {
      if (a.id === b.id) continue;
      const r = routes.route(a.id, b.id, 1 << 20);
      samples.push({ bw: r.bandwidth_bytes_per_s, lat: r.latency_s, weight: a.weight });
    }
  }
  if (samples.length === 0) return { bandwidth_bytes_per_s: Infinity, latency_s: 0 };
  samples.sort((x, y) => x.bw - y.bw || x.lat - y.lat);
  const total = samples.reduce((s, x) => s + x.weight, 0);
  // The weighted median: the sample at which half of all pairs lie before (index N >> 1 when unweighted).
  let m = samples[samples.length - 1]!;
  for (let k = 0, acc = 0; k < samples.length; k++) {
    acc += samples[k]!.weight;
    if (acc > Math.floor(total / 2)) {
      m = samples[k]!;
      break;
    }
  }
  return { bandwidth_bytes_per_s: m.bw, latency_s: m.lat };
}

const fmt = (x: number): string => (x === 0 ? '0' : Math.abs(x) >= 1e4 || Math.abs(x) < 1e-2 ? x.toExponential(3) : String(Number(x.toFixed(3))));

export const classifyPass: Pass<ClassifyResult> = {
  name: 'classify',
  summary: 'per node and device kind: compute- or memory-bound, communication weight of a cut, latency sensitivity (critical-path slack)',
  requires: ['bind', 'profile'],
  options: [],
  run: classifyGraph,
  statistics(r) {
    const count = (a: Uint8Array): number => a.reduce((s, x) => s + x, 0);
    const stats: Record<string, number | string> = { 'critical path s': fmt(r.critical_path_s), 'latency-sensitive nodes': count(r.latency_sensitive) };
    r.kinds.forEach((k, j) => (stats[`compute-bound on ${k}`] = count(r.compute_bound[j]!)));
    return stats;
  },
  dump(r, ctx) {
    const lines = [
      `kinds: ${r.kinds.join(', ')}`,
      `critical_path_s: ${fmt(r.critical_path_s)}`,
      `typical link: ${fmt(r.typical_link.bandwidth_bytes_per_s)} B/s, ${fmt(r.typical_link.latency_s)} s`,
    ];
    ctx.model.graph.nodes.forEach((node, i) => {
      const c = nodeClass(r, i);
      const per = r.kinds.map((k) => `${k}:${c.by_kind[k]!.bound}/${fmt(c.by_kind[k]!.time_s)}s/comm=${fmt(c.by_kind[k]!.comm_ratio)}`).join(' ');
      lines.push(`${node.name}: slack=${fmt(c.slack_s)}s${c.latency_sensitive ? ' latency-sensitive' : ''} ${per}`);
    });
    return lines.join('\n') + '\n';
  },
  nodeNote(r, _ctx, i) {
    const c = nodeClass(r, i);
    return `${r.kinds.map((k) => `${k}:${c.by_kind[k]!.bound}`).join(',')}${c.latency_sensitive ? ' critical' : ''}`;
  },
};
