// The graph IR every pass reads. Values are named (SSA, as in ONNX); nodes refer to them by name.
// Weight bytes are never copied in: a tensor records where its bytes live (a view of the model
// file, an external file range, or nothing), so planning a 140 GB model needs none of them.

import type { DType } from './dtype.js';

/** A dimension: a number, or a symbol / symbolic expression such as `past_seq + seq`. */
/** Largest size a dim may have, from a file or a --dim binding: 2^32 (a tensor's element count stays exact in a double). */
export const MAX_DIM = 2 ** 32;

export type Dim = number | string;
export type Shape = Dim[];

/** dtype plus shape; `shape: null` means the rank itself is unknown. */
export interface TensorType {
  dtype: DType;
  shape: Shape | null;
}

export interface ValueInfo {
  name: string;
  type: TensorType | null;
  /** Declared size in bytes for values with no tensor type (abstract task graphs). */
  bytes?: number;
}

export type TensorLocation =
  /** Bytes held by the model file (a view into the buffer it was decoded from, not a copy). */
  | { kind: 'inline'; data: Uint8Array }
  /** Bytes in an external file, resolved inside the model's folder; `present` is false when the file is missing. */
  | { kind: 'external'; file: string; path: string; offset: number; length: number; present: boolean }
  /** No bytes anywhere (a JSON graph's initializer, or a graph-only model). */
  | { kind: 'absent' };

export interface TensorData {
  name: string;
  dtype: DType;
  dims: number[];
  byte_size: number;
  location: TensorLocation;
}

export type Attr =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: number[] }
  | { type: 'floats'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: TensorData }
  | { type: 'tensors'; value: TensorData[] }
  | { type: 'graph'; value: Graph }
  | { type: 'graphs'; value: Graph[] }
  | { type: 'type'; value: TensorType | null }
  | { type: 'ref'; value: string };

/** Cost of an abstract task: explicit seconds per device kind or id, or FLOPs and bytes. */
export interface TaskCost {
  time_s?: Record<string, number>;
  flops?: number;
  bytes?: number;
}

export interface Node {
  /** Unique within its graph (import makes it so: empty ONNX names become `<op>_<index>`). */
  name: string;
  op: string;
  /** '' is the default ONNX domain (ai.onnx). */
  domain: string;
  /** '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
  /** Values from this graph that nested subgraphs read (implicit inputs, as onnxruntime calls them). */
  outer_refs: string[];
  task?: TaskCost;
  /**
   * Where the node came from: the index of its NodeProto in the source model's main graph (set
   * by the ONNX import; a transform's rebuilt graph keeps it, sharing the node), or null for a
   * node a transform made (lowering then writes it from these fields). Absent on a JSON graph's
   * and a subgraph's nodes (there a node's own index is it).
   */
  source_index?: number | null;
}

export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, TensorData>;
  /** Declared types of values: graph inputs, outputs, value_info, initializers. */
  declared: Map<string, TensorType>;
  /** Declared byte sizes of values without a tensor type (abstract graphs). */
  declared_bytes: Map<string, number>;
}

export interface StateAnnotation {
  name: string;
  inputs: string[];
  outputs: string[];
  kind?: string;
}

export interface MoeAnnotation {
  layer: number;
  router?: string[];
  experts: string[][];
  top_k?: number;
}

export interface Model {
  format: 'onnx' | 'hxc-graph/v1';
  /** The path as the user gave it, and the folder external data must stay within. */
  path: string;
  dir: string;
  sha256: string;
  file_bytes: number;
  name: string;
  ir_version: number | null;
  producer: string;
  /** Domain ('' = ai.onnx) → opset version. */
  opsets: Record<string, number>;
  graph: Graph;
  /** Model-local functions (ONNX FunctionProto), kept by `domain:name`. */
  functions: string[];
  annotations: { state: StateAnnotation[]; moe: MoeAnnotation[] };
  /** True when every initializer's bytes are available (inline, or an external file that exists). */
  weights_present: boolean;
  /**
   * The ONNX file's bytes as they were imported (inline initializers are views into them anyway):
   * lowering cuts its programs from these, the bytes that were planned, without reading the file again.
   */
  source?: Uint8Array;
  /**
   * How the import split `source` (src/import/onnx-fields.ts): the lowering finds the NodeProtos by
   * these ranges instead of splitting the file again (~0.1 s on the DeepSeek-V3 shape's 59 MB; kept:
   * its graph's 5.9 MB of other fields and two doubles per node).
   */
  source_split?: ModelSplit;
}

/**
 * A ModelProto split as the import split it (src/import/onnx-fields.ts splitModel) (one graph field): its header (every other top-level
 * field), where its graph is, each NodeProto's payload range in the graph, and the graph's other
 * fields. The lowering cuts programs from the same bytes by these ranges without splitting them again.
 */
export interface ModelSplit {
  header: Buffer;
  /** The graph's payload in the file: [graph_start, graph_end). */
  graph_start: number;
  graph_end: number;
  /** Node i's NodeProto payload in the graph: [node_starts[i], node_ends[i]). */
  node_starts: Float64Array;
  node_ends: Float64Array;
  /** The graph's fields but its nodes, in order. */
  graph_rest: Buffer;
}

export function newGraph(name: string): Graph {
  return {
    name,
    nodes: [],
    inputs: [],
    outputs: [],
    initializers: new Map(),
    declared: new Map(),
    declared_bytes: new Map(),
  };
}

/** Declared types made as a copy of another graph's with some names set or deleted (editDeclared). */
const declaredEdits = new WeakMap<ReadonlyMap<string, TensorType>, { from: ReadonlyMap<string, TensorType>; names: ReadonlySet<string> }>();

/**
 * A copy of `from` (a graph's declared types) for a transform's rewrite to set and delete names in
 * through `set` and `delete`, which remember the names: a reader comparing the declarations of the
 * two graphs (src/shapes/infer.ts InferMemo) then looks up only those (declaredEditedFrom), not
 * every value in both maps (the DeepSeek-V3 shape: 320k values, two lookups in maps of 320k names
 * each, 0.13 s of the tensor-parallel variant's shapes pass). The copy is the graph's once made.
 */
export function editDeclared(from: Map<string, TensorType>): {
  declared: Map<string, TensorType>;
  set(name: string, t: TensorType): void;
  delete(name: string): void;
} {
  const declared = new Map(from);
  const names = new Set<string>();
  declaredEdits.set(declared, { from, names });
  return {
    declared,
    set: (name, t) => {
      names.add(name);
      declared.set(name, t);
    },
    delete: (name) => {
      names.add(name);
      declared.delete(name);
    },
  };
}

/**
 * The names whose declared type may differ between `a` and `b`: none when they are one map, the
 * names edited when one was made from the other by editDeclared; null when nothing is known (any name may).
 */
export function declaredEditedFrom(a: ReadonlyMap<string, TensorType>, b: ReadonlyMap<string, TensorType>): ReadonlySet<string> | null {
  if (a === b) return new Set();
  const edit = declaredEdits.get(a);
  if (edit?.from === b) return edit.names;
  const back = declaredEdits.get(b);
  return back?.from === a ? back.names : null;
}

/** Total parameter bytes: initializers, computed from dims, present or not. */
export function paramBytes(graph: Graph): number {
  let total = 0;
  graph.initializers.forEach((t) => {
    total += t.byte_size;
  });
  return total;
}

// The import's statistics below walk every node once: counted loops and forEach, as for-ofs there
// stayed unoptimised and made an iterator result per node (and an array of its attributes), 60 MB a
// run (sampled).

/** Bytes held in Constant nodes (some exporters keep weights there). */
export function constantBytes(graph: Graph): number {
  let total = 0;
  for (let i = 0; i < graph.nodes.length; i++) {
    const n = graph.nodes[i]!;
    if (n.op === 'Constant' && n.domain === '' && n.attrs.value?.type === 'tensor') total += n.attrs.value.value.byte_size;
  }
  return total;
}

export function nodesInSubgraphs(graph: Graph): number {
  let count = 0;
  for (let i = 0; i < graph.nodes.length; i++) {
    const subs = subgraphsOf(graph.nodes[i]!);
    for (let s = 0; s < subs.length; s++) count += subs[s]!.nodes.length + nodesInSubgraphs(subs[s]!);
  }
  return count;
}

const NO_SUBGRAPHS: readonly Graph[] = [];

/**
 * The graphs in a node's attributes. Asked of every node by the import and its statistics: a node
 * without any (nearly all) costs no allocation — not an Object.values array and an empty list each
 * (30–40 MB a run, sampled).
 */
export function subgraphsOf(node: Node): readonly Graph[] {
  let out: Graph[] | null = null;
  for (const key in node.attrs) {
    const a = node.attrs[key]!;
    if (a.type === 'graph') (out ??= []).push(a.value);
    else if (a.type === 'graphs') (out ??= []).push(...a.value);
  }
  return out ?? NO_SUBGRAPHS;
}

/** Names a nested graph reads from enclosing scopes (not defined inside it). */
export function freeNames(graph: Graph): Set<string> {
  const defined = new Set<string>();
  for (const v of graph.inputs) defined.add(v.name);
  for (const k of graph.initializers.keys()) defined.add(k);
  for (const n of graph.nodes) for (const o of n.outputs) if (o) defined.add(o);
  const free = new Set<string>();
  for (const n of graph.nodes) {
    for (const i of n.inputs) if (i && !defined.has(i)) free.add(i);
    for (const sub of subgraphsOf(n)) for (const f of freeNames(sub)) if (!defined.has(f)) free.add(f);
  }
  for (const o of graph.outputs) if (!defined.has(o.name)) free.add(o.name);
  return free;
}

export function shapeToString(shape: Shape | null): string {
  if (shape === null) return '?';
  return `[${shape.map((d) => String(d)).join(', ')}]`;
}

export function typeToString(t: TensorType | null | undefined): string {
  if (!t) return '?';
  return `${t.dtype}${shapeToString(t.shape)}`;
}
