// Cutting stages into units, the parts buildProblem (build.ts) leaves to helpers: an MoE stage into
// its routing, each expert's dispatch and body, and the rest; Shape/Size nodes joined to what they
// measure.

import type { GraphIndex } from '../ir/algorithms.js';
import type { Graph } from '../ir/graph.js';
import { VIEW_OPS } from '../ir/ops.js';
import { canRun, type Device } from '../topology/index.js';
import { Heap } from '../util/heap.js';
import { bucketIndices } from '../util/sort.js';
import type { Unit } from './build.js';

const METADATA_OPS = new Set(['Shape', 'Size']);

/**
 * Whether moveMetadataOps moves node i (to the unit of what it serves, wherever that is): a
 * Constant that something reads, or a Shape or Size of a computed tensor. Such a node is placed by
 * where it goes, pinned or not (placedPins): a program carries its own copy of each Constant it
 * reads, and a Shape runs with what it measures.
 */
export function relocatable(graph: Graph, index: GraphIndex, devices: readonly Pick<Device, 'ops'>[], i: number): boolean {
  const node = graph.nodes[i]!;
  if (node.domain !== '') return false;
  if (node.op === 'Constant' || constantView(graph, index, devices, i)) return index.successors(i).length > 0;
  if (!METADATA_OPS.has(node.op)) return false;
  const id = index.inputsOf(i)[0];
  return id !== undefined && id >= 0 && index.producerOf[id]! >= 0;
}

/**
 * A view of constants (an Identity, Reshape, Squeeze… of an initializer or a Constant's value, as
 * exporters write for a bias or a shared weight): it computes nothing a step needs to wait for, and
 * goes with what reads it as a Constant does. On a unit of its own it was a program of nothing —
 * mobilenet_v3_small's five Identity nodes of biases sat alone on rack-tiny's CPU, priced at 0 s,
 * measured 9.5 ms there, their bytes sent over PCIe every request.
 */
function constantView(graph: Graph, index: GraphIndex, devices: readonly Pick<Device, 'ops'>[], i: number): boolean {
  const op = graph.nodes[i]!.op;
  if (!VIEW_OPS.has(op)) return false;
  // Only a view every device runs: one a device's ops bar stays in its own unit where it can run
  // (joined to a reader there, it would pull the reader off its device, or leave it none).
  if (!everyDeviceRuns(devices, op)) return false;
  const inputs = index.inputsOf(i);
  if (inputs.length === 0) return false;
  const initializer = index.initializerIds;
  for (const id of inputs) {
    if (id < 0) continue;
    const p = index.producerOf[id]!;
    if (p >= 0 ? graph.nodes[p]!.op !== 'Constant' || graph.nodes[p]!.domain !== '' : !initializer[id] || index.isGraphInput(id)) return false;
  }
  return true;
}

const runsEverywhere = new WeakMap<readonly Pick<Device, 'ops'>[], Map<string, boolean>>();

/** Whether every device runs `op` of the default domain, kept per device list and op (asked for every view node). */
function everyDeviceRuns(devices: readonly Pick<Device, 'ops'>[], op: string): boolean {
  let byOp = runsEverywhere.get(devices);
  if (!byOp) runsEverywhere.set(devices, (byOp = new Map()));
  let answer = byOp.get(op);
  if (answer === undefined) byOp.set(op, (answer = devices.every((d) => canRun(d, op, ''))));
  return answer;
}

/**
 * The pins (--assign) that place something: a relocatable node's pin is cleared (it goes where
 * what it serves goes — a plan.json pins it there anyway, and a Constant pinned alone would be a
 * program computing nothing). `cleared` lists them, to say which ones were not followed.
 */
export function placedPins(
  graph: Graph,
  index: GraphIndex,
  devices: readonly Pick<Device, 'ops'>[],
  pins: Int32Array,
): { pins: Int32Array; cleared: number[] } {
  const placed = Int32Array.from(pins);
  const cleared: number[] = [];
  for (let i = 0; i < pins.length; i++)
    if (pins[i]! >= 0 && relocatable(graph, index, devices, i)) {
      placed[i] = -1;
      cleared.push(i);
    }
  return { pins: placed, cleared };
}

/**
 * Metadata is not data: a Shape or Size node whose input is produced in another unit joins the
 * producer's unit, so what crosses devices is the shape (8 bytes a dim), not the tensor — and a
 * node reading only a KV cache's shape does not pull it away from its owner. Safe for convexity:
 * the node's only input is in the producer's unit, and everything it feeds already depended on
 * that unit. Units left empty are dropped.
 */
export function moveMetadataOps(graph: Graph, index: GraphIndex, devices: readonly Pick<Device, 'ops'>[], units: Unit[]): void {
  const nodes = graph.nodes;
  const unitOf = new Int32Array(nodes.length).fill(-1);
  // (Counted loops: for-of iterators over every unit's nodes, in code not yet optimised, were most
  // of what this allocated on the DeepSeek-V3 shape.)
  for (let k = 0; k < units.length; k++) {
    const list = units[k]!.nodes;
    for (let j = 0; j < list.length; j++) unitOf[list[j]!] = k;
  }
  // Nodes moved, marked (and listed); their units of origin are the ones to drop them from.
  const moved = new Uint8Array(nodes.length);
  const movedList: number[] = [];
  // A Constant, or a view of constants, joins the unit of its first reader (in unit order): a unit
  // of nothing but constants would be a program with nothing to compute and nothing to send
  // (programs carry their own copies of the constants they read; src/lower/programs.ts). A view
  // moves first, then the Constant it reads goes where the view went: last first in the units'
  // order, a topological one (units in order, each unit's nodes in order).
  const home = Int32Array.from(unitOf);
  const constants: number[] = [];
  // Per node: 1 a relocatable Constant or view, 2 a relocatable Shape or Size (asked once a node).
  const kind = new Uint8Array(nodes.length);
  for (let k = 0; k < units.length; k++) {
    const list = units[k]!.nodes;
    for (let j = 0; j < list.length; j++) {
      const i = list[j]!;
      if (!relocatable(graph, index, devices, i)) continue;
      if (METADATA_OPS.has(nodes[i]!.op)) kind[i] = 2;
      else {
        kind[i] = 1;
        constants.push(i);
      }
    }
  }
  constants.reverse();
  for (const i of constants) {
    let first = -1;
    for (const id of index.outputsOf(i)) for (const c of index.consumersOfId(id)) if (unitOf[c]! >= 0 && (first < 0 || unitOf[c]! < first)) first = unitOf[c]!;
    if (first < 0 || first === unitOf[i]) continue;
    units[first]!.nodes.unshift(i);
    if (!moved[i]) movedList.push(i);
    moved[i] = 1;
    unitOf[i] = first;
  }
  // (A unit's list may grow while it is read: a Shape moved on to a later unit is read again there.)
  for (let k = 0; k < units.length; k++) {
    const list = units[k]!.nodes;
    for (let j = 0; j < list.length; j++) {
      const i = list[j]!;
      if (kind[i] !== 2) continue;
      const p = index.producerOf[index.inputsOf(i)[0]!]!;
      if (unitOf[p] === k || unitOf[p]! < 0) continue;
      units[unitOf[p]!]!.nodes.push(i);
      if (!moved[i]) movedList.push(i);
      moved[i] = 1;
    }
  }
  if (movedList.length === 0) return;
  // A moved node leaves the unit it came from (only those units change: the others are not copied).
  const left = new Uint8Array(units.length);
  for (const i of movedList) if (home[i]! >= 0) left[home[i]!] = 1;
  for (let k = 0; k < units.length; k++) if (left[k]) units[k]!.nodes = units[k]!.nodes.filter((i) => !moved[i] || home[i] !== k);
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
export function splitExperts(index: GraphIndex, nodes: number[], expertOf: Int32Array): { expert: number; dispatch: boolean; part: number; nodes: number[] }[] {
  // Each stage node's position in `nodes`, -1 outside the stage (a scratch kept per index and reset
  // on the way out: a stage's sets and maps by node were most of what splitting allocated).
  const local = stageScratch(index);
  for (let k = 0; k < nodes.length; k++) local[nodes[k]!] = k;
  try {
    return splitStage(index, nodes, expertOf, local);
  } finally {
    for (const i of nodes) local[i] = -1;
  }
}

const scratchByIndex = new WeakMap<GraphIndex, Int32Array>();
function stageScratch(index: GraphIndex): Int32Array {
  let local = scratchByIndex.get(index);
  if (!local) scratchByIndex.set(index, (local = new Int32Array(index.predOffsets.length - 1).fill(-1)));
  return local;
}

/** splitExperts with `local[i]` the position of node i in `nodes` (a topological order of the stage), -1 outside it. */
function splitStage(
  index: GraphIndex,
  nodes: number[],
  expertOf: Int32Array,
  local: Int32Array,
): { expert: number; dispatch: boolean; part: number; nodes: number[] }[] {
  const m = nodes.length;
  // Which single expert a node's inputs come from, within the stage (-1 none, -2 several), by position.
  const MIXED = -2;
  const after = new Int32Array(m);
  const { predOffsets, preds } = index;
  for (let k = 0; k < m; k++) {
    const i = nodes[k]!;
    let from = -1;
    for (let j = predOffsets[i]!; j < predOffsets[i + 1]!; j++) {
      const q = preds[j]!;
      const lq = local[q]!;
      if (lq < 0) continue;
      const e = expertOf[q]! >= 0 ? expertOf[q]! : after[lq]!;
      if (e === -1) continue;
      from = from === -1 ? e : from === e ? from : MIXED;
    }
    after[k] = from;
  }
  // Group: -1 routing (feeds several experts), 2e dispatch of expert e, 2e+1 expert e, BIG the rest; by position.
  const BIG = 1 << 30;
  const ROUTING = -1;
  const groupAt = new Int32Array(m);
  const expertGroup = (g: number): number => (g >= 0 && g !== BIG ? g >> 1 : -1);
  // The groups a node's readers are in, and the experts they feed, are read only as none, one (which)
  // or several: so tracked, not listed (a router's output feeds every expert of its layer — 256
  // readers, each looked up in the list of those before, 65k steps a node on the DeepSeek-V3 shape).
  // The index's CSR arrays are read in place: no allocation per node.
  const { succOffsets, succs, inputOffsets, inputIds } = index;
  const NONE = -3;
  const SEVERAL = -4;
  for (let k = m - 1; k >= 0; k--) {
    const i = nodes[k]!;
    if (expertOf[i]! >= 0) {
      groupAt[k] = 2 * expertOf[i]! + 1;
      continue;
    }
    // The one group (or NONE, or SEVERAL) of its readers in the stage, and the one expert they feed
    // (ROUTING for the routing group; BIG feeds none).
    let group = NONE;
    let feed = NONE;
    for (let e = succOffsets[i]!; e < succOffsets[i + 1]!; e++) {
      const ls = local[succs[e]!]!;
      if (ls < 0) continue;
      const g = groupAt[ls]!;
      group = group === NONE || group === g ? g : SEVERAL;
      if (g === BIG) continue;
      const f = g === ROUTING ? ROUTING : expertGroup(g);
      feed = feed === NONE || feed === f ? f : SEVERAL;
    }
    let constant = true;
    for (let e = inputOffsets[i]!; e < inputOffsets[i + 1]! && constant; e++) if (inputIds[e]! >= 0) constant = false;
    if (constant) {
      // A constant: with what reads it, when one group does.
      groupAt[k] = group === NONE ? BIG : group === SEVERAL ? ROUTING : group;
      continue;
    }
    const only = feed === NONE || feed === SEVERAL ? ROUTING : feed;
    groupAt[k] = feed === NONE ? BIG : only === ROUTING ? ROUTING : after[k] === only ? 2 * only + 1 : 2 * only;
  }
  // Order the groups: routing first, then by key (dispatch before body, expert by expert), combine
  // last — checked against the edges between groups (Kahn's algorithm on the quotient graph). Groups
  // are numbered in key order (G of them: ~500 in a DeepSeek-V3 MoE stage), their members and edges
  // kept flat (a map of lists and a set of successors per group were most of what a stage allocated).
  const sortedKeys = Int32Array.from(groupAt).sort();
  let G = 0;
  for (let k = 0; k < m; k++) if (k === 0 || sortedKeys[k] !== sortedKeys[k - 1]) sortedKeys[G++] = sortedKeys[k]!;
  const keys = sortedKeys.subarray(0, G);
  const gid = new Int32Array(m);
  for (let k = 0; k < m; k++) {
    let lo = 0;
    let hi = G - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (keys[mid]! < groupAt[k]!) lo = mid + 1;
      else hi = mid;
    }
    gid[k] = lo;
  }
  // Members of each group, in the stage's order: positions memberAt[x] .. memberAt[x + 1] of byGroup.
  const { start: memberAt, items: byGroup } = bucketIndices(gid, G);
  // Edges between groups, each once, group by group (marked with the group they leave).
  const edgeAt = new Int32Array(G + 1);
  const edges: number[] = [];
  const indeg = new Int32Array(G);
  const from = new Int32Array(G).fill(-1);
  for (let x = 0; x < G; x++) {
    edgeAt[x] = edges.length;
    for (let j = memberAt[x]!; j < memberAt[x + 1]!; j++) {
      const i = nodes[byGroup[j]!]!;
      for (let e = succOffsets[i]!; e < succOffsets[i + 1]!; e++) {
        const ls = local[succs[e]!]!;
        if (ls < 0) continue;
        const y = gid[ls]!;
        if (y === x || from[y] === x) continue;
        from[y] = x;
        edges.push(y);
        indeg[y]!++;
      }
    }
  }
  edgeAt[G] = edges.length;
  const order: number[] = [];
  // The least ready group first, from a heap (the ready list sorted again for every group taken
  // was 107 MB of sorts over the DeepSeek-V3 plan's MoE stages: 500 groups each).
  const ready = new Heap<number>((a, b) => a < b);
  for (let x = 0; x < G; x++) if (indeg[x] === 0) ready.push(x);
  while (ready.size > 0) {
    const x = ready.pop()!;
    order.push(x);
    for (let j = edgeAt[x]!; j < edgeAt[x + 1]!; j++) if (--indeg[edges[j]!]! === 0) ready.push(edges[j]!);
  }
  let part = 0;
  const segment = (g: number, list: number[]): { expert: number; dispatch: boolean; part: number; nodes: number[] } => {
    const e = expertGroup(g);
    return { expert: e, dispatch: e >= 0 && g % 2 === 0, part: e < 0 ? part++ : 0, nodes: list };
  };
  if (order.length === G)
    return order.map((x) => {
      const list: number[] = new Array(memberAt[x + 1]! - memberAt[x]!);
      for (let j = memberAt[x]!; j < memberAt[x + 1]!; j++) list[j - memberAt[x]!] = nodes[byGroup[j]!]!;
      return segment(keys[x]!, list);
    });
  // The groups form a cycle (nested sets: tensor-parallel parts inside an expert's body): cut a
  // topological order keyed by group into runs instead — intervals of a topological order are
  // convex — with each constant placed just before the first node that reads it.
  const isConstant = (i: number): boolean => index.inputsOf(i).every((id) => id < 0);
  const nodeIndeg = new Map<number, number>();
  for (const i of nodes) nodeIndeg.set(i, [...index.predecessors(i)].filter((q) => local[q]! >= 0).length);
  const heap = new Heap<number>((a, b) => groupAt[local[a]!]! < groupAt[local[b]!]! || (groupAt[local[a]!]! === groupAt[local[b]!]! && local[a]! < local[b]!));
  for (const i of nodes) if (nodeIndeg.get(i) === 0 && !isConstant(i)) heap.push(i);
  const constantsBefore = new Map<number, number[]>();
  for (const i of nodes) {
    if (!isConstant(i)) continue;
    const first = [...index.successors(i)].filter((s) => local[s]! >= 0).sort((a, b) => local[a]! - local[b]!)[0];
    (constantsBefore.get(first ?? -1) ?? constantsBefore.set(first ?? -1, []).get(first ?? -1)!).push(i);
  }
  const runs: { g: number; nodes: number[] }[] = [];
  const emit = (i: number, g: number): void => {
    const last = runs[runs.length - 1];
    if (last && last.g === g) last.nodes.push(i);
    else runs.push({ g, nodes: [i] });
  };
  for (const c of constantsBefore.get(-1) ?? []) emit(c, groupAt[local[c]!]!);
  while (heap.size > 0) {
    const i = heap.pop()!;
    for (const c of constantsBefore.get(i) ?? []) emit(c, groupAt[local[i]!]!);
    emit(i, groupAt[local[i]!]!);
    for (const s of index.successors(i)) {
      if (local[s]! < 0) continue;
      nodeIndeg.set(s, nodeIndeg.get(s)! - 1);
      if (nodeIndeg.get(s) === 0) heap.push(s);
    }
  }
  return runs.map((r) => segment(r.g, r.nodes));
}
