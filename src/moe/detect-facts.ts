// What MoE detection knows about a graph: the op families it walks through, each node's producer
// and consumers by value, weights and their shapes (Facts), and sets of nodes with one owner (Groups).

import { positions, type GraphIndex } from '../ir/algorithms.js';
import type { Model, TensorData } from '../ir/graph.js';
import { decodeTensor } from '../shapes/constant-fold.js';
import type { MoeLayer } from './detect.js';
import { TRACE_THROUGH } from '../ir/ops.js';

/** Ops that relabel a tensor: followed when tracing data back to its source (only input 0 counts). */
export const VIEW = TRACE_THROUGH;
/** Ops an expert's body is made of (besides views): weight matmuls, element-wise math, activations. */
export const BODY = new Set([
  'MatMul',
  'Gemm',
  'FusedMatMul',
  'MatMulNBits',
  'DequantizeLinear',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Sqrt',
  'Neg',
  'Exp',
  'Erf',
  'Tanh',
  'Sigmoid',
  'Relu',
  'LeakyRelu',
  'Elu',
  'Selu',
  'Gelu',
  'FastGelu',
  'BiasGelu',
  'QuickGelu',
  'Softplus',
  'HardSigmoid',
  'HardSwish',
  'Mish',
  'Clip',
  'Min',
  'Max',
  'BiasAdd',
]);
/** Ops between the router MatMul and the TopK (casts, normalisation, score bias). */
export const ROUTER_CHAIN = new Set(['Cast', 'Identity', 'Reshape', 'Softmax', 'Sigmoid', 'Add', 'Sub', 'Mul', 'Div', 'LogSoftmax']);
export const MATMUL = new Set(['MatMul', 'Gemm', 'FusedMatMul']);
/** Ops between a weight and the MatMul that reads it, followed back to find the weight. */
const WEIGHT_THROUGH = new Set(['Cast', 'Transpose', 'DequantizeLinear', 'Identity', 'Reshape']);
export const EXPERT_NAME = /^(.*?)[/.]experts?[._](\d+)(?:[/._]|$)/;

/** Bits of Facts.opClass: the op families above a node's op belongs to, and a TopK of the default domain. */
export const OP_VIEW = 1;
export const OP_BODY = 2;
export const OP_MATMUL = 4;
export const OP_TOPK = 8;

/** Per-graph facts the detectors share: which values are constants, and the weight behind a value. */
export class Facts {
  readonly constant: Uint8Array;
  readonly pos: Int32Array;
  /**
   * By node index, the OP_* bits of its op: the detectors test each node of a layer's window for
   * these families in three scans, and follow views per matmul, a Set lookup by op name each time.
   */
  readonly opClass: Uint8Array;
  /** By value id: 0 not asked yet, 1 no weight, else weight(id) at weights[code - 2]. */
  private readonly weightCode: Int32Array;
  private readonly weights: TensorData[] = [];
  private marks: Int32Array | null = null;
  /** By value id: the initializer of that name, from the index's initializerOrder (made on first use). */
  private initializerById: (TensorData | undefined)[] | null = null;

  constructor(
    readonly model: Model,
    readonly index: GraphIndex,
    readonly order: Int32Array,
  ) {
    const g = model.graph;
    this.constant = index.initializerIds.slice();
    // Counted loops over the index's CSR arrays, here and in the detectors: a subarray view and
    // for-of iterator results per node were 80 MB of this constructor's allocation (sampled).
    const { inputOffsets, inputIds, outputOffsets, outputIds } = index;
    for (let k = 0; k < order.length; k++) {
      const i = order[k]!;
      const node = g.nodes[i]!;
      const from = inputOffsets[i]!;
      const to = inputOffsets[i + 1]!;
      let all = node.op === 'Constant' || (to > from && node.outer_refs.length === 0 && !node.op.startsWith('Random'));
      if (node.op !== 'Constant') for (let e = from; e < to; e++) if (inputIds[e]! >= 0 && !this.constant[inputIds[e]!]) all = false;
      if (all) for (let e = outputOffsets[i]!; e < outputOffsets[i + 1]!; e++) if (outputIds[e]! >= 0) this.constant[outputIds[e]!] = 1;
    }
    this.pos = positions(order, g.nodes.length);
    this.opClass = new Uint8Array(g.nodes.length);
    for (let i = 0; i < g.nodes.length; i++) {
      const { op, domain } = g.nodes[i]!;
      this.opClass[i] =
        (VIEW.has(op) ? OP_VIEW : 0) | (BODY.has(op) ? OP_BODY : 0) | (MATMUL.has(op) ? OP_MATMUL : 0) | (op === 'TopK' && domain === '' ? OP_TOPK : 0);
    }
    this.weightCode = new Int32Array(index.valueNames.length);
  }

  isConst(id: number): boolean {
    return id >= 0 && this.constant[id] === 1;
  }

  producer(id: number): number {
    return id >= 0 ? this.index.producerOf[id]! : -1;
  }

  /**
   * The tensor behind a constant value: an initializer or a Constant node, through casts and
   * transposes. Kept by value id once found: the detectors ask again for every expert matmul
   * they pass and cost (the map lookup by name was a seventh of detection's time, sampled).
   */
  weight(id: number): TensorData | null {
    if (id < 0) return null;
    let code = this.weightCode[id]!;
    if (code === 0) {
      const w = this.weightOf(id);
      code = w ? this.weights.push(w) + 1 : 1;
      this.weightCode[id] = code;
    }
    return code === 1 ? null : this.weights[code - 2]!;
  }

  private weightOf(id: number): TensorData | null {
    const byId = this.initializers();
    for (let depth = 0; depth < 6 && id >= 0; depth++) {
      const init = byId ? byId[id] : this.model.graph.initializers.get(this.index.valueNames[id]!);
      if (init) return init;
      const p = this.producer(id);
      if (p < 0) return null;
      const node = this.model.graph.nodes[p]!;
      if (node.op === 'Constant') return node.attrs.value?.type === 'tensor' ? node.attrs.value.value : null;
      if (!WEIGHT_THROUGH.has(node.op)) return null;
      id = this.index.inputAt(p, 0);
    }
    return null;
  }

  /**
   * The initializers by value id: the index interned their names in the map's order
   * (GraphIndex.initializerOrder), so the k-th value of the map is the k-th id's. A lookup by name
   * per weight was 0.07 s of a cold detection on the DeepSeek-V3 shape (46k weights; sampled). Null
   * (look up by name) if the map no longer has the index's count.
   */
  private initializers(): (TensorData | undefined)[] | null {
    if (this.initializerById) return this.initializerById;
    const { initializerOrder, valueNames } = this.index;
    const map = this.model.graph.initializers;
    if (map.size !== initializerOrder.length) return null;
    const byId = new Array<TensorData | undefined>(valueNames.length).fill(undefined);
    let k = 0;
    for (const t of map.values()) byId[initializerOrder[k++]!] = t;
    this.initializerById = byId;
    return byId;
  }

  /** A scalar constant's value (TopK's K, an expert's index in an Equal or Gather). */
  scalar(id: number): number | null {
    if (!this.isConst(id)) return null;
    const t = this.weight(id);
    const v = t ? decodeTensor(t) : undefined;
    return v && v.length === 1 && typeof v[0] === 'number' ? v[0] : null;
  }

  /** Follow views back from a value: the value they relabel, and the view nodes passed. */
  viewRoot(id: number): { root: number; chain: number[] } {
    const chain: number[] = [];
    for (let p = this.producer(id); p >= 0 && (this.opClass[p]! & OP_VIEW) !== 0; p = this.producer(id)) {
      chain.push(p);
      id = this.index.inputAt(p, 0);
    }
    return { root: id, chain };
  }

  /** A MatMul/Gemm whose B operand is a constant weight of rank ≥ 2. */
  weightMatmul(i: number): TensorData | null {
    if ((this.opClass[i]! & OP_MATMUL) === 0) return null;
    const b = this.index.inputAt(i, 1);
    if (!this.isConst(b)) return null;
    const w = this.weight(b);
    return w && w.dims.length >= 2 ? w : null;
  }

  /** 2 FLOPs per weight element per token, and the bytes of every constant the nodes read. */
  cost(nodes: readonly number[]): { flops_per_token: number; param_bytes: number } {
    let flops = 0;
    let params = 0;
    const seen = new Set<string>();
    const { inputOffsets, inputIds } = this.index;
    for (const i of nodes) {
      const w = this.weightMatmul(i);
      if (w) flops += 2 * w.dims.reduce((a, b) => a * b, 1);
      const task = this.model.graph.nodes[i]!.task;
      if (!w && task?.flops) flops += task.flops;
      for (let e = inputOffsets[i]!; e < inputOffsets[i + 1]!; e++) {
        const id = inputIds[e]!;
        if (!this.isConst(id)) continue;
        const t = this.weight(id);
        if (t && !seen.has(t.name) && t.byte_size > 64) {
          seen.add(t.name);
          params += t.byte_size;
        }
      }
    }
    return { flops_per_token: flops, param_bytes: params };
  }

  /**
   * A zeroed Int32Array by node index for one detector step at a time, which zeroes the entries it
   * set (giveBack) before the next borrows it: one array a detection, not one of every node a layer.
   */
  lend(): Int32Array {
    const marks = this.marks ?? new Int32Array(this.model.graph.nodes.length);
    this.marks = null;
    return marks;
  }

  giveBack(marks: Int32Array, set: readonly number[]): void {
    for (let k = 0; k < set.length; k++) marks[set[k]!] = 0;
    this.marks = marks;
  }

  /**
   * The nodes once each, in graph order. Their positions sorted as numbers and read back through
   * the order: the same list as sorting the nodes by position (positions are distinct), without a
   * Set and a comparator call per pair (an eighth of detection's time, sampled). A node outside the
   * order (position -1) takes the comparator sort, which keeps such nodes as given.
   */
  sortByPos(nodes: Iterable<number>): number[] {
    const list = Array.isArray(nodes) ? (nodes as number[]) : [...nodes];
    const { pos, order } = this;
    const at = new Int32Array(list.length);
    // Counted loops: a few hundred thousand nodes a detection.
    for (let k = 0; k < list.length; k++) {
      const i = list[k]!;
      const p = Number.isInteger(i) && i >= 0 && i < pos.length ? pos[i]! : -1;
      if (p < 0) return [...new Set(list)].sort((a, b) => pos[a]! - pos[b]!);
      at[k] = p;
    }
    at.sort();
    const out: number[] = [];
    for (let k = 0; k < at.length; k++) if (k === 0 || at[k] !== at[k - 1]) out.push(order[at[k]!]!);
    return out;
  }
}

/** Union-find over expert groups (path halving). */
export class Groups {
  private readonly parent: number[] = [];
  add(): number {
    this.parent.push(this.parent.length);
    return this.parent.length - 1;
  }
  find(x: number): number {
    while (this.parent[x] !== x) x = this.parent[x] = this.parent[this.parent[x]!]!;
    return x;
  }
  union(a: number, b: number): number {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent[Math.max(ra, rb)] = Math.min(ra, rb);
    return Math.min(ra, rb);
  }
}

/** A layer as a detector finds it, before layers are numbered in graph order. */
export type Found = Omit<MoeLayer, 'layer'> & { at: number };
