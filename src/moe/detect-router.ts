// MoE layers found from their router (torch exports): the top-k behind a softmax or sigmoid, the
// experts each token row goes to (sparse: gathered by index; dense: every expert, gates scattered),
// their order by name or position, and the dispatch nodes that select each expert's tokens.

import type { DType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import { EXPERT_NAME, type Facts, OP_BODY, OP_TOPK, OP_VIEW, ROUTER_CHAIN, VIEW, type Found } from './detect-facts.js';
import type { MoeExpert } from './detect.js';
import { Groups } from './detect-facts.js';

export function dtypeOf(facts: Facts, value: string | null, fallback: DType): DType {
  return (value ? facts.model.graph.declared.get(value)?.dtype : undefined) ?? fallback;
}

/** From the router's TopK: trace back to the gate MatMul, then find the experts behind the routing. */
export function fromRouter(facts: Facts, topk: number): Found | null {
  const { model, index } = facts;
  const g = model.graph;
  // Back from TopK's scores, through casts/softmax/score bias, to a weight MatMul: the router.
  const chain: number[] = [topk];
  let id = index.inputAt(topk, 0);
  let gate = -1;
  for (let depth = 0; depth < 8; depth++) {
    const p = facts.producer(id);
    if (p < 0) return null;
    if (facts.weightMatmul(p)) {
      gate = p;
      break;
    }
    const node = g.nodes[p]!;
    if (!ROUTER_CHAIN.has(node.op)) return null;
    const live = Array.from(index.inputsOf(p)).filter((v) => v >= 0 && !facts.isConst(v));
    if (live.length !== 1 || (VIEW.has(node.op) && live[0] !== index.inputAt(p, 0))) return null;
    chain.push(p);
    id = live[0]!;
  }
  if (gate < 0) return null;
  chain.push(gate);
  const w = facts.weightMatmul(gate)!;
  const transB = g.nodes[gate]!.attrs.transB;
  const gemmTransB = g.nodes[gate]!.op === 'Gemm' && transB?.type === 'int' && transB.value === 1;
  const width = gemmTransB ? w.dims[0]! : w.dims[w.dims.length - 1]!;
  const hidden = gemmTransB ? w.dims[1]! : w.dims[w.dims.length - 2]!;
  const k = facts.scalar(index.inputAt(topk, 1)) ?? (g.nodes[topk]!.attrs.k?.type === 'int' ? g.nodes[topk]!.attrs.k.value : null);
  if (width < 2 || k === null || k < 1 || k > width) return null;
  const x = index.inputAt(gate, 0);
  const layer = expertsBehind(facts, topk, gate, x, width);
  if (!layer) return null;
  const router = facts.sortByPos(chain);
  const input = index.valueNames[x]!;
  const { routed: _routed, end: _end, ...rest } = layer;
  return {
    at: topk,
    router,
    num_experts: width,
    top_k: k,
    input,
    hidden,
    token_dtype: dtypeOf(facts, input, w.dtype),
    ...rest,
    dispatch: dispatchNodes(facts, topk, router, layer),
  };
}

export interface Behind {
  name: string;
  form: 'sparse' | 'dense';
  experts: MoeExpert[];
  shared: number[][];
  detected_by: 'structure' | 'names';
  /** Nodes downstream of the TopK (by node index), up to the next MoE layer's router. */
  routed: Uint8Array;
  /** Position (in graph order) of the next MoE layer's TopK, or the node count. */
  end: number;
}

/**
 * The experts fed by router `gate` (scores → `topk`) over tokens `x`. Seeds are weight MatMuls
 * reading x directly (dense form, or shared experts) or through a Gather whose row indices depend
 * on the TopK (sparse form: the tokens routed to one expert). A seed's group grows in graph order
 * over body ops whose every non-constant input is already in a group (two groups a node joins, as
 * SwiGLU's `act(w1·x) * (w3·x)`, become one); the routing-weight multiply and the scatter/concat
 * that combine experts read values from outside and stop it.
 */
export function expertsBehind(facts: Facts, topk: number, gate: number, x: number, width: number): Behind | null {
  const { model } = facts;
  const g = model.graph;
  const n = g.nodes.length;
  // The scans over the layer are functions of their own: in one function, each call's later code
  // had no type feedback when an earlier loop's optimised code reached it, and deoptimised (199 times
  // in the DeepSeek-V3 shape's two detections, about once a layer), running the next layer's scans
  // unoptimised again — most of what a first detection costs over a second.
  const routed = new Uint8Array(n);
  const end = markRouted(facts, topk, routed);
  const rootX = facts.viewRoot(x).root;
  const groups = new Groups();
  // By node index, 1 + its group (0: none), and the nodes in the order they joined: Facts' scratch
  // array, zeroed again once the groups are collected (a Map here was a tenth of detection, sampled).
  const memberOf = facts.lend();
  const members: number[] = [];
  const gathered = new Set<number>();
  const gatherOf = new Map<number, number>();
  seedGroups(facts, gate, end, rootX, routed, { groups, memberOf, members, gathered, gatherOf });
  if (members.length === 0) {
    facts.giveBack(memberOf, members);
    // No expert reads the routed tokens itself — each one's rows split over its executable replicas
    // (src/transform/replicate.ts), every expert of the layer replicated: the module path in node
    // names, when every expert it names runs behind this router.
    const byName = expertsByName(facts, g.nodes[gate]!.name, width);
    if (!byName?.every((e) => e.nodes.some((i) => routed[i] === 1))) return null;
    const name = scopeOfNodes(
      g,
      g.nodes[gate]!.name,
      byName.map((e) => e.nodes),
    );
    return { name, form: 'sparse', experts: byName, shared: [], detected_by: 'names', routed, end };
  }
  growGroups(facts, gate, end, groups, memberOf, members);
  // Collect groups; a group is routed when any of its seeds read gathered tokens.
  const byRoot = new Map<number, number[]>();
  for (let k = 0; k < members.length; k++) {
    const i = members[k]!;
    const r = groups.find(memberOf[i]! - 1);
    (byRoot.get(r) ?? byRoot.set(r, []).get(r)!).push(i);
  }
  facts.giveBack(memberOf, members);
  const routedRoots = new Set([...gathered].map((grp) => groups.find(grp)));
  const sets = [...byRoot.entries()]
    .map(([r, nodes]) => ({ root: r, nodes: facts.sortByPos(nodes) }))
    .sort((a, b) => facts.pos[a.nodes[0]!]! - facts.pos[b.nodes[0]!]!);
  const sparse = sets.filter((s) => routedRoots.has(s.root));
  const form: Behind['form'] = sparse.length > 0 ? 'sparse' : 'dense';
  const experts = form === 'sparse' ? sparse : sets;
  const shared = form === 'sparse' ? sets.filter((s) => !routedRoots.has(s.root)).map((s) => s.nodes) : [];
  const name = scopeOfNodes(
    g,
    g.nodes[gate]!.name,
    experts.map((s) => s.nodes),
  );
  if (experts.length === width) {
    // Each group's first gather, by root (a scan of every gather per expert was width² per layer).
    const gatherByRoot = new Map<number, number>();
    for (const [grp, q] of gatherOf) {
      const r = groups.find(grp);
      if (!gatherByRoot.has(r)) gatherByRoot.set(r, q);
    }
    const gatherIds = experts.map((s) => {
      const q = gatherByRoot.get(s.root);
      return q === undefined ? null : expertIndexOfGather(facts, q, routed);
    });
    const ids =
      permutation(gatherIds, width) ??
      permutation(
        concatPositions(
          facts,
          experts.map((s) => s.nodes),
        ),
        width,
      ) ??
      permutation(
        experts.map((s) => nameIndex(s.nodes.map((i) => g.nodes[i]!.name))),
        width,
      ) ??
      experts.map((_, e) => e);
    const list = experts.map((s, k) => ({ expert: ids[k]!, nodes: s.nodes, ...facts.cost(s.nodes) })).sort((a, b) => a.expert - b.expert);
    return { name, form, experts: list, shared, detected_by: 'structure', routed, end };
  }
  // Structure did not give one group per router column: fall back on the module path in node names.
  const byName = expertsByName(facts, g.nodes[gate]!.name, width);
  return byName ? { name, form, experts: byName, shared, detected_by: 'names', routed, end } : null;
}

/**
 * Marks the nodes downstream of `topk` in `routed`, in graph order, and returns the position of the
 * next routed TopK (the next MoE layer's router), or the node count. The next layer's router reads
 * this layer's combined output, so every expert and the combine come before it in any topological
 * order; scanning no further keeps detection linear in the graph, not layers × graph.
 */
function markRouted(facts: Facts, topk: number, routed: Uint8Array): number {
  const n = routed.length;
  // Counted loops over the index's CSR arrays in this file: a subarray view per node visited was
  // 200 MB of MoE detection's allocation (sampled).
  const { predOffsets, preds } = facts.index;
  const { opClass, order } = facts;
  routed[topk] = 1;
  for (let k = facts.pos[topk]! + 1; k < n; k++) {
    const i = order[k]!;
    for (let e = predOffsets[i]!; e < predOffsets[i + 1]!; e++)
      if (routed[preds[e]!]) {
        routed[i] = 1;
        break;
      }
    if (routed[i] && (opClass[i]! & OP_TOPK) !== 0) return k;
  }
  return n;
}

/** The expert groups of a layer as they are found: union-find, membership by node, and gathers by group. */
interface Grouping {
  groups: Groups;
  memberOf: Int32Array;
  members: number[];
  gathered: Set<number>;
  gatherOf: Map<number, number>;
}

function joinGroup(memberOf: Int32Array, members: number[], i: number, group: number): void {
  if (memberOf[i] === 0) members.push(i);
  memberOf[i] = group + 1;
}

/** The seeds, from the gate to the layer's end: weight MatMuls reading x, or x's rows gathered by the routing. */
function seedGroups(facts: Facts, gate: number, end: number, rootX: number, routed: Uint8Array, at: Grouping): void {
  const { index } = facts;
  const g = facts.model.graph;
  const { groups, memberOf, members, gathered, gatherOf } = at;
  for (let k = facts.pos[gate]! + 1; k < end; k++) {
    const i = facts.order[k]!;
    if (!facts.weightMatmul(i)) continue;
    const { root, chain } = facts.viewRoot(index.inputAt(i, 0));
    let group = -1;
    if (root === rootX) group = groups.add();
    else {
      const q = facts.producer(root);
      if (q >= 0 && g.nodes[q]!.op === 'Gather' && facts.viewRoot(index.inputAt(q, 0)).root === rootX && routed[facts.producer(index.inputAt(q, 1))] === 1) {
        group = groups.add();
        gathered.add(group);
        gatherOf.set(group, q);
      }
    }
    if (group < 0) continue;
    joinGroup(memberOf, members, i, group);
    // Views between an expert's token gather and its matmul are its own; views of x are shared.
    if (gathered.has(group)) for (const v of chain) joinGroup(memberOf, members, v, group);
  }
}

/**
 * Grows the seeds' groups in graph order over body ops whose every non-constant input is already in
 * a group (two groups a node joins become one).
 */
function growGroups(facts: Facts, gate: number, end: number, groups: Groups, memberOf: Int32Array, members: number[]): void {
  const { inputOffsets, inputIds } = facts.index;
  const { opClass } = facts;
  const first = Math.min(...members.map((i) => facts.pos[i]!));
  for (let k = Math.max(first, facts.pos[gate]! + 1); k < end; k++) {
    const i = facts.order[k]!;
    if (memberOf[i] !== 0 || (opClass[i]! & (OP_BODY | OP_VIEW)) === 0) continue;
    const from = inputOffsets[i]!;
    const to = (opClass[i]! & OP_VIEW) !== 0 ? Math.min(from + 1, inputOffsets[i + 1]!) : inputOffsets[i + 1]!;
    let joined = -1;
    let ok = true;
    for (let e = from; e < to; e++) {
      const id = inputIds[e]!;
      if (id < 0 || facts.isConst(id)) continue;
      const p = facts.producer(id);
      const grp = p >= 0 ? memberOf[p]! - 1 : -1;
      if (grp < 0) {
        ok = false;
        break;
      }
      joined = joined < 0 ? groups.find(grp) : groups.union(joined, grp);
    }
    if (ok && joined >= 0) joinGroup(memberOf, members, i, joined);
  }
}

/** Expert index from the mask that selects its tokens: Equal(topk_indices, e) or Gather(one_hot, e). */
export function expertIndexOfGather(facts: Facts, gather: number, routed: Uint8Array): number | null {
  const { index, model } = facts;
  const stack = [facts.producer(index.inputAt(gather, 1))];
  const seen = new Set<number>();
  while (stack.length > 0 && seen.size < 24) {
    const i = stack.pop()!;
    if (i < 0 || seen.has(i) || !routed[i]) continue;
    seen.add(i);
    const node = model.graph.nodes[i]!;
    const ins = index.inputsOf(i);
    if (node.op === 'Equal') {
      const c = facts.scalar(ins[1]!) ?? facts.scalar(ins[0]!);
      if (c !== null) return c;
    }
    if (node.op === 'Gather' && routed[facts.producer(ins[0]!)]) {
      const c = facts.scalar(ins[1]!);
      if (c !== null) return c;
    }
    for (const id of ins) if (id >= 0 && !facts.isConst(id)) stack.push(facts.producer(id));
  }
  return null;
}

/** Dense form: the position of each expert's output in the Concat that stacks them. */
export function concatPositions(facts: Facts, sets: number[][]): (number | null)[] {
  const { index, model } = facts;
  const { outputOffsets, outputIds, consumerOffsets, consumerList } = index;
  return sets.map((nodes) => {
    const inSet = new Set(nodes);
    for (const i of nodes) {
      for (let e = outputOffsets[i]!; e < outputOffsets[i + 1]!; e++) {
        const out = outputIds[e]!;
        if (out < 0) continue;
        for (let f = consumerOffsets[out]!; f < consumerOffsets[out + 1]!; f++) {
          const c = consumerList[f]!;
          if (inSet.has(c) || model.graph.nodes[c]!.op !== 'Concat') continue;
          return Array.from(index.inputsOf(c)).indexOf(out);
        }
      }
    }
    return null;
  });
}

export function nameIndex(names: string[]): number | null {
  for (const name of names) {
    const m = EXPERT_NAME.exec(name);
    if (m) return Number(m[2]);
  }
  return null;
}

/** ids when they are exactly 0..n-1, each once. */
export function permutation(ids: (number | null)[], n: number): number[] | null {
  const seen = new Set<number>();
  for (const id of ids) {
    if (id === null || !Number.isInteger(id) || id < 0 || id >= n || seen.has(id)) return null;
    seen.add(id);
  }
  return seen.size === n ? (ids as number[]) : null;
}

/** Nodes named `<scope>/experts.<e>/…` where the scope is the router's, grouped by e. */
export function expertsByName(facts: Facts, routerName: string, width: number): MoeExpert[] | null {
  const g = facts.model.graph;
  const byId = new Map<number, number[]>();
  let scope: string | null = null;
  for (const i of facts.order) {
    const m = EXPERT_NAME.exec(g.nodes[i]!.name);
    if (!m || !routerName.startsWith(m[1]!)) continue;
    if (scope !== null && m[1] !== scope) continue;
    scope = m[1]!;
    (byId.get(Number(m[2])) ?? byId.set(Number(m[2]), []).get(Number(m[2]))!).push(i);
  }
  const ids = [...byId.keys()].sort((a, b) => a - b);
  if (ids.length !== width || ids[0] !== 0 || ids[width - 1] !== width - 1) return null;
  return ids.map((e) => ({ expert: e, nodes: facts.sortByPos(byId.get(e)!), ...facts.cost(byId.get(e)!) }));
}

/** The longest name prefix (cut at `/`) shared by the router and its experts. */
export function scopeOf(routerName: string, names: string[]): string {
  let prefix = routerName;
  for (const name of names) prefix = within(prefix, name);
  return prefix || routerName;
}

/** scopeOf over the names of these nodes, read in place (not gathered into a list of every expert node's name). */
function scopeOfNodes(g: Graph, routerName: string, sets: readonly (readonly number[])[]): string {
  let prefix = routerName;
  for (const nodes of sets) for (let k = 0; k < nodes.length; k++) prefix = within(prefix, g.nodes[nodes[k]!]!.name);
  return prefix || routerName;
}

/** `prefix` cut at `/` until `name` starts with it. */
function within(prefix: string, name: string): string {
  while (prefix && !name.startsWith(prefix)) prefix = prefix.slice(0, Math.max(0, prefix.lastIndexOf('/')));
  return prefix;
}

/**
 * Per position of the window from `first`, how many experts reach it (bits set in `desc` once filled:
 * the union over its predecessors of theirs and of the experts they belong to, `own`). Its own
 * function: inside dispatchNodes, the code after the loop deoptimised the loop's code each layer.
 */
function reachCounts(facts: Facts, first: number, span: number, words: number, desc: Int32Array, own: Int32Array): Int32Array {
  const { index } = facts;
  const reachAt = new Int32Array(span);
  for (let k = 0; k < span; k++) {
    const base = k * words;
    const i = facts.order[first + k]!;
    for (let e = index.predOffsets[i]!; e < index.predOffsets[i + 1]!; e++) {
      const kp = facts.pos[index.preds[e]!]! - first;
      if (kp < 0 || kp >= k) continue;
      for (let w = 0; w < words; w++) desc[base + w]! |= desc[kp * words + w]! | own[kp * words + w]!;
    }
    let c = 0;
    for (let w = 0; w < words; w++) for (let v = desc[base + w]!; v !== 0; v &= v - 1) c++;
    reachAt[k] = c;
  }
  return reachAt;
}

/**
 * The layer's routing, dispatch and combine nodes: those routed (downstream of the TopK) or fed by
 * an expert, up to the join — the first routed node every expert's output reaches (the last
 * scatter-add, or the gate multiply of the dense form) — minus router and experts.
 */
export function dispatchNodes(facts: Facts, topk: number, router: number[], layer: Behind): number[] {
  const { index, model } = facts;
  const n = model.graph.nodes.length;
  // Router, experts and shared experts marked in Facts' scratch array, zeroed again before returning.
  const owned = facts.lend();
  const ownedList: number[] = [...router];
  for (const e of layer.experts) for (let k = 0; k < e.nodes.length; k++) ownedList.push(e.nodes[k]!);
  for (const nodes of layer.shared) for (let k = 0; k < nodes.length; k++) ownedList.push(nodes[k]!);
  for (let k = 0; k < ownedList.length; k++) owned[ownedList[k]!] = 1;
  const lastExpert = Math.max(...layer.experts.map((e) => facts.pos[e.nodes[e.nodes.length - 1]!]!));
  const limit = Math.min(layer.end - 1, lastExpert + (lastExpert - facts.pos[topk]!) + 16);
  // How many experts reach each node of the window (from the TopK to the limit) through at least
  // one edge: a bitset per node, the union over its predecessors of theirs and of the expert they
  // belong to, in topological order — one pass over the window, not one forward closure per expert
  // (256 experts × a layer's nodes on DeepSeek-V3).
  const first = facts.pos[topk]!;
  const span = Math.max(0, limit - first + 1);
  const words = (layer.experts.length + 31) >>> 5;
  const desc = new Int32Array(span * words);
  const own = new Int32Array(span * words);
  layer.experts.forEach((e, k) => {
    for (const i of e.nodes) {
      const at = facts.pos[i]! - first;
      if (at >= 0 && at < span) own[at * words + (k >>> 5)]! |= 1 << (k & 31);
    }
  });
  const reachAt = reachCounts(facts, first, span, words, desc, own);
  const reach = (i: number): number => {
    const k = facts.pos[i]! - first;
    return k >= 0 && k < span ? reachAt[k]! : 0;
  };
  let join = -1;
  for (let k = facts.pos[topk]!; k <= limit; k++) {
    const i = facts.order[k]!;
    if (reach(i) === layer.experts.length && layer.routed[i] && owned[i] === 0) {
      join = i;
      break;
    }
  }
  if (join < 0) {
    facts.giveBack(owned, ownedList);
    return [];
  }
  // The combine may end in a reduction or reshape of the join (dense form: ReduceSum over experts).
  for (
    let s = index.successors(join);
    s.length === 1 && ['ReduceSum', 'Reshape', 'Squeeze', 'Cast'].includes(model.graph.nodes[s[0]!]!.op);
    s = index.successors(join)
  )
    join = s[0]!;
  // Ancestors of the join within the layer (from the TopK on), that are routed or expert-fed.
  const out: number[] = [];
  const seen = new Uint8Array(n);
  const stack = [join];
  seen[join] = 1;
  while (stack.length > 0) {
    const i = stack.pop()!;
    if (owned[i] === 0) out.push(i);
    for (let e = index.predOffsets[i]!; e < index.predOffsets[i + 1]!; e++) {
      const p = index.preds[e]!;
      if (seen[p] || facts.pos[p]! < facts.pos[topk]!) continue;
      seen[p] = 1;
      stack.push(p);
    }
  }
  facts.giveBack(owned, ownedList);
  return facts.sortByPos(out.filter((i) => reach(i) > 0 || layer.routed[i]));
}
