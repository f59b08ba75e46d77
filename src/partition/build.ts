// From the analyses to a PlacementProblem: units are the stages, except that a node some device
// cannot run while that device can run the stage's heavy work (a NonZero on a GPU that excludes
// it) is split out as its own unit, so it falls back to a capable device the way onnxruntime's
// execution providers fall back per node, and the stage's work still goes where it runs best.
// A stage whose nodes the user pinned to different devices (`--assign`) is cut where the pin
// changes. Every unit gets a unique name (its id in the plan).

import { computeTime } from '../cost/model.js';
import { HxcError } from '../diag/diagnostics.js';
import { Heap } from '../util/heap.js';
import type { GraphIndex } from '../ir/algorithms.js';
import type { Graph } from '../ir/graph.js';
import type { Device, RouteTable, Topology } from '../topology/index.js';
import { canRun } from '../topology/index.js';
import type { NodeCost } from '../cost/model.js';
import type { EfficiencyTable } from '../cost/model.js';
import type { PlacementProblem, UnitValue } from './problem.js';

export interface Unit {
  name: string;
  /** The expert set (BuildInput.experts index) the unit computes, if any. */
  expert?: number;
  /** The expert set whose tokens the unit selects (an expert's dispatch), if any. */
  dispatch?: number;
  /** The stage it comes from. */
  stage: number;
  /** Node indices in execution order. */
  nodes: number[];
  /** Set when the unit is one node split out because some device cannot run it. */
  fallback: { node: number; excluded: string[] } | null;
}

export interface BuildInput {
  graph: Graph;
  index: GraphIndex;
  topology: Topology;
  routes: RouteTable;
  costs: NodeCost[];
  efficiency: EfficiencyTable;
  /** Bytes of each value by value id. */
  value_bytes_by_id: Float64Array;
  /** Stages: node lists in execution order (contiguous in `order`). */
  stages: { name: string; nodes: number[] }[];
  /** State objects: bytes and the nodes that write them. */
  state: { name: string; bytes: number; writers: number[] }[];
  /** MoE experts' node sets (each becomes a unit), with names for the plan. */
  experts?: number[][];
  expert_names?: string[];
  /** Per expert set, the devices it may run on (null: anywhere it can). */
  expert_devices?: (string[] | null)[];
  /** Per node, the device index the user pinned it to (`--assign`), or -1. */
  pins?: Int32Array;
  /** Where the pins came from, for errors. */
  pins_file?: string;
}

export interface Built {
  problem: PlacementProblem;
  units: Unit[];
  unit_of: Int32Array;
}

const HEAVY = new Set(['matmul', 'conv', 'attention', 'moe']);

export function buildProblem(inp: BuildInput): Built {
  const { graph, index, topology, costs } = inp;
  const devices = topology.devices;
  const nd = devices.length;
  const capability = new Map<Device, Map<string, boolean>>();
  const runs = (i: number, d: Device): boolean => {
    const node = graph.nodes[i]!;
    if (costs[i]!.time_s) return Number.isFinite(computeTime(costs[i]!, d));
    let m = capability.get(d);
    if (!m) capability.set(d, (m = new Map()));
    const key = `${node.domain}:${node.op}`;
    let ok = m.get(key);
    if (ok === undefined) m.set(key, (ok = canRun(d, node.op, node.domain)));
    return ok;
  };
  // Devices with the same numbers and op set give every node the same time: price each node once
  // per class of identical devices, not once per device (64 H100s are one class).
  const abstract = costs.some((c) => c.time_s !== undefined);
  const classKey = (d: Device): string =>
    abstract
      ? d.id
      : JSON.stringify([
          d.kind,
          d.peak_flops,
          d.memory_bandwidth_bytes_per_s,
          d.launch_s,
          d.efficiency,
          Object.entries(d.class_efficiency).sort(),
          d.memory_efficiency,
          d.compute_units,
          d.ops,
        ]);
  const classOf = new Int32Array(nd);
  const classes: Device[] = [];
  const keys = new Map<string, number>();
  devices.forEach((d, k) => {
    const key = classKey(d);
    let c = keys.get(key);
    if (c === undefined) {
      c = classes.length;
      keys.set(key, c);
      classes.push(d);
    }
    classOf[k] = c;
  });
  const classDevices = classes.map((_, c) => devices.filter((_, k) => classOf[k] === c).map((d) => d.id));
  const units: Unit[] = [];
  // MoE experts become units of their own (experts of one layer are independent: they can run on
  // different devices at once); each stage is first cut into expert and non-expert segments.
  const segments: { name: string; stage: number; nodes: number[]; expert?: number; dispatch?: number }[] = [];
  const expertOf = new Int32Array(graph.nodes.length).fill(-1);
  (inp.experts ?? []).forEach((set, k) => {
    for (const i of set) expertOf[i] = k;
  });
  inp.stages.forEach((stage, s) => {
    if (!stage.nodes.some((i) => expertOf[i]! >= 0)) {
      segments.push({ name: stage.name, stage: s, nodes: stage.nodes });
      return;
    }
    const seen = new Map<string, number>();
    for (const seg of splitExperts(index, stage.nodes, expertOf)) {
      const expertName = seg.expert >= 0 ? (inp.expert_names?.[seg.expert] ?? `expert${seg.expert}`) : '';
      const base = seg.expert < 0 ? `${stage.name}/${seg.part}` : seg.dispatch ? `${stage.name}/${expertName}.dispatch` : `${stage.name}/${expertName}`;
      const k = seen.get(base) ?? 0;
      seen.set(base, k + 1);
      segments.push({
        name: k === 0 ? base : `${base}.${k}`,
        stage: s,
        nodes: seg.nodes,
        ...(seg.expert < 0 ? {} : seg.dispatch ? { dispatch: seg.expert } : { expert: seg.expert }),
      });
    }
  });
  // An expert is atomic: when stage cuts fall inside its body (fine stages cut anywhere), its
  // pieces join into one segment, at the place of its last piece — unless something between the
  // pieces depends on an earlier one (its MatMuls split for tensor parallelism: the parts are
  // segments of their own between the expert's pieces, and joining around them would be a cycle).
  const pieces = new Map<number, number[]>();
  segments.forEach((seg, k) => {
    if (seg.expert !== undefined && seg.expert >= 0) (pieces.get(seg.expert) ?? pieces.set(seg.expert, []).get(seg.expert)!).push(k);
  });
  const between = new Int32Array(graph.nodes.length).fill(-1);
  for (const [expert, list] of pieces) {
    if (list.length < 2) continue;
    const lo = list[0]!;
    const hi = list[list.length - 1]!;
    for (let k = lo + 1; k < hi; k++) if (segments[k]!.expert !== expert) for (const i of segments[k]!.nodes) between[i] = expert;
    const stack = list.slice(0, -1).flatMap((k) => segments[k]!.nodes);
    const reached = new Set<number>();
    let depends = false;
    while (stack.length > 0 && !depends) {
      const i = stack.pop()!;
      for (const id of index.outputsOf(i))
        for (const c of index.consumersOfId(id)) {
          if (between[c] !== expert || reached.has(c)) continue;
          depends = true;
          reached.add(c);
          stack.push(c);
        }
    }
    if (depends) continue;
    const first = segments[list[0]!]!;
    const last = segments[list[list.length - 1]!]!;
    last.nodes = list.flatMap((k) => segments[k]!.nodes);
    last.stage = first.stage;
    last.name = first.name;
    for (const k of list.slice(0, -1)) segments[k]!.nodes = [];
  }
  for (let k = segments.length - 1; k >= 0; k--) if (segments[k]!.nodes.length === 0) segments.splice(k, 1);
  segments.forEach((stage) => {
    const s = stage.stage;
    const heavy = stage.nodes.filter((i) => HEAVY.has(costs[i]!.op_class));
    const core = heavy.length > 0 ? heavy : stage.nodes;
    const heavyClasses = classes.map((_, c) => c).filter((c) => core.every((i) => runs(i, classes[c]!)));
    let run: number[] = [];
    let runPin = -1;
    let part = 0;
    const flush = (): void => {
      if (run.length === 0) return;
      units.push({
        name: part === 0 && run.length === stage.nodes.length ? stage.name : `${stage.name}#${part}`,
        stage: s,
        nodes: run,
        fallback: null,
        ...(stage.expert !== undefined && stage.expert >= 0 ? { expert: stage.expert } : {}),
        ...(stage.dispatch !== undefined ? { dispatch: stage.dispatch } : {}),
      });
      part++;
      run = [];
    };
    for (const i of stage.nodes) {
      const pin = inp.pins ? inp.pins[i]! : -1;
      if (pin >= 0 && !runs(i, devices[pin]!)) {
        const node = graph.nodes[i]!;
        throw new HxcError(
          'HXC2503',
          `node "${node.name}" is assigned to ${devices[pin]!.id}, which cannot run ${node.domain ? `${node.domain}.` : ''}${node.op}`,
          { where: inp.pins_file ?? '--assign', hint: `assign it to a device that runs ${node.op}, or leave it out of the file and hxc places it` },
        );
      }
      const excluded = pin >= 0 ? [] : heavyClasses.filter((c) => !runs(i, classes[c]!)).flatMap((c) => classDevices[c]!);
      if (excluded.length > 0 && heavy.length > 0) {
        flush();
        units.push({ name: `${stage.name}#${part}:${graph.nodes[i]!.name}`, stage: s, nodes: [i], fallback: { node: i, excluded } });
        part++;
      } else {
        if (run.length > 0 && pin !== runPin) flush();
        runPin = pin;
        run.push(i);
      }
    }
    flush();
  });
  // Unique names: a stage name repeats when a block is cut into several stages (gpt2: nine "h.0").
  const seenNames = new Map<string, number>();
  for (const u of units) seenNames.set(u.name, (seenNames.get(u.name) ?? 0) + 1);
  const ordinal = new Map<string, number>();
  for (const u of units) {
    if (seenNames.get(u.name)! < 2) continue;
    const k = ordinal.get(u.name) ?? 0;
    ordinal.set(u.name, k + 1);
    u.name = `${u.name}@${k}`;
  }
  moveMetadataOps(graph, index, units, inp.pins);
  const nu = units.length;
  const unit_of = new Int32Array(graph.nodes.length).fill(-1);
  units.forEach((u, k) => {
    for (const i of u.nodes) unit_of[i] = k;
  });

  const nodeTime = classes.map((d) => {
    const t = new Float64Array(graph.nodes.length);
    for (let i = 0; i < graph.nodes.length; i++) t[i] = runs(i, d) ? computeTime(costs[i]!, d, inp.efficiency) : Infinity;
    return t;
  });
  const time_s = new Float64Array(nu * nd);
  const weight_bytes = new Float64Array(nu);
  const activation_bytes = new Float64Array(nu);
  const state_bytes = new Float64Array(nu);
  const weightIds = new Uint8Array(index.valueNames.length);
  for (let id = 0; id < weightIds.length; id++) {
    const p = index.producerOf[id]!;
    if (graph.initializers.has(index.valueNames[id]!) || (p >= 0 && graph.nodes[p]!.op === 'Constant')) weightIds[id] = 1;
  }
  const isWeight = (id: number): boolean => weightIds[id] === 1;
  units.forEach((u, k) => {
    const perClass = nodeTime.map((t) => {
      let sum = 0;
      for (const i of u.nodes) sum += t[i]!;
      return sum;
    });
    for (let d = 0; d < nd; d++) time_s[k * nd + d] = perClass[classOf[d]!]!;
    // An expert pinned by the moe pass stays on its devices (when it can run on one of them).
    const allowed = u.expert !== undefined ? inp.expert_devices?.[u.expert] : null;
    if (allowed?.some((id) => Number.isFinite(time_s[k * nd + devices.findIndex((d) => d.id === id)]!))) {
      for (let d = 0; d < nd; d++) if (!allowed.includes(devices[d]!.id)) time_s[k * nd + d] = Infinity;
    }
    // A unit the user pinned runs only there (its nodes share one pin: runs were cut where it changes).
    const pin = inp.pins ? inp.pins[u.nodes[0]!]! : -1;
    if (pin >= 0) for (let d = 0; d < nd; d++) if (d !== pin) time_s[k * nd + d] = Infinity;
    const weights = new Set<number>();
    let peak = 0;
    for (const i of u.nodes) {
      let live = 0;
      for (const id of index.inputsOf(i)) {
        if (id < 0) continue;
        if (isWeight(id)) weights.add(id);
        else live += inp.value_bytes_by_id[id]!;
      }
      for (const id of index.outputsOf(i)) if (id >= 0 && !isWeight(id)) live += inp.value_bytes_by_id[id]!;
      peak = Math.max(peak, live);
    }
    for (const id of weights) {
      // Constant nodes inside the unit produce their own weights; count them once, as weights.
      weight_bytes[k]! += inp.value_bytes_by_id[id]!;
    }
    activation_bytes[k] = peak;
  });
  for (const st of inp.state) {
    const w = st.writers.length > 0 ? unit_of[st.writers[0]!]! : -1;
    if (w >= 0) state_bytes[w]! += st.bytes;
  }
  // Values crossing units: produced in one unit, read by others (weights travel with their readers).
  const values: UnitValue[] = [];
  for (let id = 0; id < index.valueNames.length; id++) {
    const p = index.producerOf[id]!;
    if (p < 0 || isWeight(id)) continue;
    const pu = unit_of[p]!;
    const cons = new Set<number>();
    for (const c of index.consumersOfId(id)) if (unit_of[c] !== pu) cons.add(unit_of[c]!);
    if (cons.size === 0) continue;
    values.push({ name: index.valueNames[id]!, producer: pu, consumers: [...cons].sort((a, b) => a - b), bytes: inp.value_bytes_by_id[id]! });
  }
  // Units are cut from one topological order of stages, so their creation order is topological.
  const order = Int32Array.from({ length: nu }, (_, k) => k);
  const routes = inp.routes;
  const problem: PlacementProblem = {
    unit_names: units.map((u) => u.name),
    device_ids: devices.map((d) => d.id),
    time_s,
    values,
    weight_bytes,
    state_bytes,
    activation_bytes,
    capacity_bytes: Float64Array.from(devices, (d) => d.memory_capacity_bytes),
    transfer_s: (a, b, bytes) => (a === b ? 0 : routes.timeIdx(a, b, bytes)),
    order,
  };
  return { problem, units, unit_of };
}

/** Ops that read only their input's shape, never its data (ONNX Shape, Size). */
const METADATA_OPS = new Set(['Shape', 'Size']);

/**
 * Metadata is not data: a Shape or Size node whose input is produced in another unit joins the
 * producer's unit, so what crosses devices is the shape (8 bytes a dim), not the tensor — and a
 * node reading only a KV cache's shape does not pull it away from its owner. Safe for convexity:
 * the node's only input is in the producer's unit, and everything it feeds already depended on
 * that unit. A node the user pinned stays where it was pinned. Units left empty are dropped.
 */
function moveMetadataOps(graph: Graph, index: GraphIndex, units: Unit[], pins: Int32Array | undefined): void {
  const unitOf = new Int32Array(graph.nodes.length).fill(-1);
  units.forEach((u, k) => {
    for (const i of u.nodes) unitOf[i] = k;
  });
  const moved = new Set<number>();
  // A Constant joins the unit of its first reader (in unit order): a unit of nothing but
  // constants would be a program with nothing to compute and nothing to send (programs carry
  // their own copies of the constants they read; src/lower/programs.ts).
  units.forEach((u, k) => {
    for (const i of u.nodes) {
      const node = graph.nodes[i]!;
      if (node.op !== 'Constant' || node.domain !== '' || (pins && pins[i]! >= 0)) continue;
      let first = -1;
      for (const id of index.outputsOf(i))
        for (const c of index.consumersOfId(id)) if (unitOf[c]! >= 0 && (first < 0 || unitOf[c]! < first)) first = unitOf[c]!;
      if (first < 0 || first === k) continue;
      units[first]!.nodes.unshift(i);
      moved.add(i);
    }
  });
  units.forEach((u, k) => {
    for (const i of u.nodes) {
      const node = graph.nodes[i]!;
      if (!METADATA_OPS.has(node.op) || node.domain !== '' || (pins && pins[i]! >= 0)) continue;
      const id = index.inputsOf(i)[0];
      if (id === undefined || id < 0) continue;
      const p = index.producerOf[id]!;
      if (p < 0 || unitOf[p] === k || unitOf[p]! < 0) continue;
      units[unitOf[p]!]!.nodes.push(i);
      moved.add(i);
    }
  });
  if (moved.size === 0) return;
  units.forEach((u, k) => {
    u.nodes = u.nodes.filter((i) => !moved.has(i) || unitOf[i] !== k);
  });
  // A moved node is listed once, in its new unit (a Constant read first there, then a Shape moved there too).
  for (let k = units.length - 1; k >= 0; k--) if (units[k]!.nodes.length === 0) units.splice(k, 1);
}

/**
 * Cut a stage holding MoE experts into segments, one per group: the routing (what feeds several
 * experts), then expert by expert its dispatch and its body, then the combine and the rest (what
 * feeds no expert). Each segment lists its nodes in the stage's order; the segments' order is a
 * topological order of the groups, so each is convex and the units stay acyclic. Should the groups
 * of some unusual graph form a cycle, the stage stays whole.
 *
 * An expert's dispatch — the nodes that select its tokens (Equal → NonZero → Gather of the token
 * rows), feeding that expert alone — is a unit of its own: on the router's device it sends the
 * expert only its gathered rows (DeepSeek-V3's dispatch moves routed tokens, not the hidden
 * state); on the expert's device it reads the whole hidden state but runs in parallel with the
 * other experts' dispatch. The partitioner chooses. A node computed from an expert and feeding it
 * alone stays in that expert; a constant goes with what reads it.
 */
function splitExperts(index: GraphIndex, nodes: number[], expertOf: Int32Array): { expert: number; dispatch: boolean; part: number; nodes: number[] }[] {
  const inStage = new Set(nodes);
  // Which single expert a node's inputs come from, within the stage (-1 none, -2 several).
  const MIXED = -2;
  const after = new Map<number, number>();
  for (const i of nodes) {
    let from = -1;
    for (const q of index.predecessors(i)) {
      if (!inStage.has(q)) continue;
      const e = expertOf[q]! >= 0 ? expertOf[q]! : after.get(q)!;
      if (e === -1) continue;
      from = from === -1 ? e : from === e ? from : MIXED;
    }
    after.set(i, from);
  }
  // Group: -1 routing (feeds several experts), 2e dispatch of expert e, 2e+1 expert e, BIG the rest.
  const BIG = 1 << 30;
  const ROUTING = -1;
  const group = new Map<number, number>();
  const expertGroup = (g: number): number => (g >= 0 && g !== BIG ? g >> 1 : -1);
  for (let k = nodes.length - 1; k >= 0; k--) {
    const i = nodes[k]!;
    if (expertOf[i]! >= 0) {
      group.set(i, 2 * expertOf[i]! + 1);
      continue;
    }
    const groups = new Set<number>();
    for (const s of index.successors(i)) if (inStage.has(s)) groups.add(group.get(s)!);
    if (index.inputsOf(i).every((id) => id < 0)) {
      // A constant: with what reads it, when one group does.
      group.set(i, groups.size === 1 ? [...groups][0]! : groups.size === 0 ? BIG : ROUTING);
      continue;
    }
    const feeds = new Set<number>();
    for (const g of groups) if (g !== BIG) feeds.add(g === ROUTING ? ROUTING : expertGroup(g));
    const only = feeds.size === 1 ? [...feeds][0]! : ROUTING;
    group.set(i, feeds.size === 0 ? BIG : only === ROUTING ? ROUTING : after.get(i) === only ? 2 * only + 1 : 2 * only);
  }
  // Order the groups: routing first, then by key (dispatch before body, expert by expert), combine
  // last — checked against the edges between groups (Kahn's algorithm on the quotient graph).
  const members = new Map<number, number[]>();
  for (const i of nodes) (members.get(group.get(i)!) ?? members.set(group.get(i)!, []).get(group.get(i)!)!).push(i);
  const keys = [...members.keys()].sort((a, b) => a - b);
  const succ = new Map<number, Set<number>>(keys.map((g) => [g, new Set<number>()]));
  const indeg = new Map<number, number>(keys.map((g) => [g, 0]));
  for (const i of nodes) {
    const g = group.get(i)!;
    for (const s of index.successors(i)) {
      if (!inStage.has(s)) continue;
      const h = group.get(s)!;
      if (h !== g && !succ.get(g)!.has(h)) {
        succ.get(g)!.add(h);
        indeg.set(h, indeg.get(h)! + 1);
      }
    }
  }
  const order: number[] = [];
  const ready = keys.filter((g) => indeg.get(g) === 0);
  while (ready.length > 0) {
    ready.sort((a, b) => a - b);
    const g = ready.shift()!;
    order.push(g);
    for (const h of succ.get(g)!) {
      indeg.set(h, indeg.get(h)! - 1);
      if (indeg.get(h) === 0) ready.push(h);
    }
  }
  let part = 0;
  const segment = (g: number, list: number[]): { expert: number; dispatch: boolean; part: number; nodes: number[] } => {
    const e = expertGroup(g);
    return { expert: e, dispatch: e >= 0 && g % 2 === 0, part: e < 0 ? part++ : 0, nodes: list };
  };
  if (order.length === keys.length) return order.map((g) => segment(g, members.get(g)!));
  // The groups form a cycle (nested sets: tensor-parallel parts inside an expert's body): cut a
  // topological order keyed by group into runs instead — intervals of a topological order are
  // convex — with each constant placed just before the first node that reads it.
  const pos = new Map(nodes.map((i, k) => [i, k]));
  const isConstant = (i: number): boolean => index.inputsOf(i).every((id) => id < 0);
  const nodeIndeg = new Map<number, number>();
  for (const i of nodes) nodeIndeg.set(i, [...index.predecessors(i)].filter((q) => inStage.has(q)).length);
  const heap = new Heap<number>((a, b) => group.get(a)! < group.get(b)! || (group.get(a) === group.get(b) && pos.get(a)! < pos.get(b)!));
  for (const i of nodes) if (nodeIndeg.get(i) === 0 && !isConstant(i)) heap.push(i);
  const constantsBefore = new Map<number, number[]>();
  for (const i of nodes) {
    if (!isConstant(i)) continue;
    const first = [...index.successors(i)].filter((s) => inStage.has(s)).sort((a, b) => pos.get(a)! - pos.get(b)!)[0];
    (constantsBefore.get(first ?? -1) ?? constantsBefore.set(first ?? -1, []).get(first ?? -1)!).push(i);
  }
  const runs: { g: number; nodes: number[] }[] = [];
  const emit = (i: number, g: number): void => {
    const last = runs[runs.length - 1];
    if (last && last.g === g) last.nodes.push(i);
    else runs.push({ g, nodes: [i] });
  };
  for (const c of constantsBefore.get(-1) ?? []) emit(c, group.get(c)!);
  while (heap.size > 0) {
    const i = heap.pop()!;
    for (const c of constantsBefore.get(i) ?? []) emit(c, group.get(i)!);
    emit(i, group.get(i)!);
    for (const s of index.successors(i)) {
      if (!inStage.has(s)) continue;
      nodeIndeg.set(s, nodeIndeg.get(s)! - 1);
      if (nodeIndeg.get(s) === 0) heap.push(s);
    }
  }
  return runs.map((r) => segment(r.g, r.nodes));
}
