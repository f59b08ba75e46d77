// Graph algorithms the passes share: producer/consumer index, dependency edges (including the
// implicit inputs of nested subgraphs), deterministic topological order, reachability, the
// convexity test for a node set, and extraction of a node set into a standalone subgraph.

import type { Graph, Node, TensorData, TensorType, ValueInfo } from './graph.js';
import { Heap } from '../util/heap.js';
import { StringIds, internInMap as internIn } from '../util/string-ids.js';

/** Read-only name-keyed views over the integer arrays (the Map-like API the passes use). */
export interface NameLookup<T> {
  get(name: string): T | undefined;
  readonly size: number;
}

/**
 * Integer-indexed dependency structure, built once per graph. Value names are interned to ids once;
 * everything else is typed arrays (CSR), so a 200k-node graph costs a few allocations, not 200k.
 */
export class GraphIndex {
  readonly graph: Graph;
  /**
   * Value name → dense id (every value read or written by a node, plus graph inputs and
   * initializers). A Map of its own, or, for a graph derived from an indexed one (GraphIndex.derive),
   * that one's map and a translation of its ids.
   */
  readonly valueIds: NameLookup<number>;
  readonly valueNames: string[];
  /** Value id → index of the node producing it, or -1 (graph inputs, initializers, undefined). */
  readonly producerOf: Int32Array;
  /** Value id → consuming node indices, in node order, each once (CSR). */
  readonly consumerOffsets: Int32Array;
  readonly consumerList: Int32Array;
  /** Predecessor / successor node indices, deduplicated (CSR: offsets into a flat list). */
  readonly predOffsets: Int32Array;
  readonly preds: Int32Array;
  readonly succOffsets: Int32Array;
  readonly succs: Int32Array;
  /** Positional input / output value ids per node (CSR; -1 marks an omitted optional input or output). */
  readonly inputOffsets: Int32Array;
  readonly inputIds: Int32Array;
  readonly outputOffsets: Int32Array;
  readonly outputIds: Int32Array;
  /** Set when a value has two producers: [value, first producer, second producer]. */
  readonly duplicateProducer: [string, number, number] | null = null;
  private nodeByNameMap: Map<string, number> | null;

  /**
   * The index of `graph`, built once per graph object: the import builds it to find dead nodes, and
   * the tp pass and the plain variant's verify read the same one (a graph is not changed once
   * indexed: a transform that edits it returns a new one).
   */
  static of(graph: Graph, nodeByName: Map<string, number> | null = null, columns: ValueColumns | null = null): GraphIndex {
    let index = built.get(graph);
    if (!index) {
      const from = derivedFrom.get(graph);
      built.set(graph, (index = new GraphIndex(graph, nodeByName, (from && built.get(from)) ?? null, columns)));
    }
    return index;
  }

  /**
   * Says that `graph` was made from `from` sharing most of its nodes (a transform's rewrite, the
   * import's graph without its dead nodes): when `from` is indexed, the index of `graph` names its
   * values through that index's map instead of filling one of its own (their names are the same
   * strings, which a Map finds fastest). The ids are the ones a map of its own would give.
   */
  static derive(graph: Graph, from: Graph): void {
    derivedFrom.set(graph, from);
  }

  /**
   * `nodeByName`: node name → index, when the caller has it already (the import, which makes names
   * unique, has). `base`: the index of a graph this one was derived from (GraphIndex.derive).
   */
  constructor(graph: Graph, nodeByName: Map<string, number> | null = null, base: GraphIndex | null = null, columns: ValueColumns | null = null) {
    this.graph = graph;
    this.nodeByNameMap = nodeByName;
    const n = graph.nodes.length;
    // Interned as this would intern them, in the same order (ValueColumns), when they cover every node.
    const values = columns && base === null && columns.nodeCount === n ? columns.done() : internValues(graph, base);
    this.valueIds = values.valueIds;
    this.valueNames = values.valueNames;
    this.initializerOrder = values.initializerOrder;
    this.inputOffsets = values.inputOffsets;
    this.inputIds = values.inputIds;
    this.outputOffsets = values.outputOffsets;
    this.outputIds = values.outputIds;
    const { readOffsets, reads } = values;
    const names = this.valueNames;
    const read = reads.length;
    const valueCount = names.length;
    this.producerOf = new Int32Array(valueCount).fill(-1);
    for (let i = 0; i < n; i++) {
      for (let e = this.outputOffsets[i]!; e < this.outputOffsets[i + 1]!; e++) {
        const v = this.outputIds[e]!;
        if (v === -1) continue;
        if (this.producerOf[v] !== -1 && this.duplicateProducer === null) {
          (this as { duplicateProducer: [string, number, number] | null }).duplicateProducer = [names[v]!, this.producerOf[v]!, i];
        }
        this.producerOf[v] = i;
      }
    }
    // Consumers per value (CSR), each node once per value.
    const consCount = new Int32Array(valueCount + 1);
    const lastReader = new Int32Array(valueCount).fill(-1);
    for (let i = 0; i < n; i++) {
      for (let e = readOffsets[i]!; e < readOffsets[i + 1]!; e++) {
        const v = reads[e]!;
        if (lastReader[v] !== i) {
          lastReader[v] = i;
          consCount[v + 1]!++;
        }
      }
    }
    for (let v = 0; v < valueCount; v++) consCount[v + 1]! += consCount[v]!;
    this.consumerOffsets = consCount;
    this.consumerList = new Int32Array(consCount[valueCount]!);
    const fillCons = consCount.slice(0, valueCount);
    lastReader.fill(-1);
    // Predecessors per node, deduplicated, in first-read order.
    const mark = new Int32Array(n).fill(-1);
    // At most one per read; cut to size below.
    const predList = new Int32Array(read);
    let pred = 0;
    this.predOffsets = new Int32Array(n + 1);
    const succCount = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      this.predOffsets[i] = pred;
      for (let e = readOffsets[i]!; e < readOffsets[i + 1]!; e++) {
        const v = reads[e]!;
        if (lastReader[v] !== i) {
          lastReader[v] = i;
          this.consumerList[fillCons[v]!++] = i;
        }
        const p = this.producerOf[v]!;
        if (p !== -1 && mark[p] !== i) {
          mark[p] = i;
          predList[pred++] = p;
          succCount[p]!++;
        }
      }
    }
    this.predOffsets[n] = pred;
    this.preds = predList.slice(0, pred);
    this.succOffsets = new Int32Array(n + 1);
    for (let i = 0; i < n; i++) this.succOffsets[i + 1] = this.succOffsets[i]! + succCount[i]!;
    this.succs = new Int32Array(pred);
    const fill = this.succOffsets.slice(0, n);
    for (let i = 0; i < n; i++) {
      for (let e = this.predOffsets[i]!; e < this.predOffsets[i + 1]!; e++) {
        const p = this.preds[e]!;
        this.succs[fill[p]!++] = i;
      }
    }
  }

  get size(): number {
    return this.graph.nodes.length;
  }

  private producerView: NameLookup<number> | null = null;

  /**
   * Value name → producing node index (absent for graph inputs and initializers). One view, its
   * size counted when first asked: a view made per access counted every value each time (the state
   * pass asks once per cache tensor: 0.6 s on a 275k-node graph).
   */
  get producer(): NameLookup<number> {
    if (!this.producerView) {
      const producerOf = this.producerOf;
      const valueIds = this.valueIds;
      let size = -1;
      this.producerView = {
        get: (name) => {
          const id = valueIds.get(name);
          if (id === undefined) return undefined;
          const p = producerOf[id]!;
          return p === -1 ? undefined : p;
        },
        get size(): number {
          if (size < 0) size = producerOf.reduce((c, p) => c + (p === -1 ? 0 : 1), 0);
          return size;
        },
      };
    }
    return this.producerView;
  }

  /** Value name → consuming node indices (absent when nothing reads it). */
  get consumers(): NameLookup<number[]> {
    return {
      get: (name) => {
        const id = this.valueIds.get(name);
        if (id === undefined) return undefined;
        const c = this.consumersOfId(id);
        return c.length === 0 ? undefined : Array.from(c);
      },
      size: this.valueNames.length,
    };
  }

  consumersOfId(id: number): Int32Array {
    return this.consumerList.subarray(this.consumerOffsets[id]!, this.consumerOffsets[id + 1]!);
  }

  /** The value id of each of the graph's initializers, in the order its map holds them (read-only). */
  readonly initializerOrder: Int32Array;

  private initializerMask: Uint8Array | null = null;
  /** Per value id, 1 when the graph has an initializer of that name (made on first use; read-only). */
  get initializerIds(): Uint8Array {
    if (!this.initializerMask) {
      this.initializerMask = new Uint8Array(this.valueNames.length);
      for (let k = 0; k < this.initializerOrder.length; k++) this.initializerMask[this.initializerOrder[k]!] = 1;
    }
    return this.initializerMask;
  }

  private graphInputMask: Uint8Array | null = null;
  /** Whether value `id` is an input of the graph (one a caller feeds, even when an initializer gives it a default). */
  isGraphInput(id: number): boolean {
    if (!this.graphInputMask) {
      this.graphInputMask = new Uint8Array(this.valueNames.length);
      for (const v of this.graph.inputs) {
        const k = this.valueIds.get(v.name);
        if (k !== undefined) this.graphInputMask[k] = 1;
      }
    }
    return this.graphInputMask[id] === 1;
  }

  get nodeByName(): Map<string, number> {
    if (!this.nodeByNameMap) {
      this.nodeByNameMap = new Map();
      this.graph.nodes.forEach((node, i) => this.nodeByNameMap!.set(node.name, i));
    }
    return this.nodeByNameMap;
  }

  /** Value ids of node i's inputs, by position (-1 for an omitted one). */
  inputsOf(i: number): Int32Array {
    return this.inputIds.subarray(this.inputOffsets[i]!, this.inputOffsets[i + 1]!);
  }

  /**
   * Value id of node i's k-th input; -1 when it is omitted or the node has fewer. (No view made: a
   * caller after one input made a subarray per call, 24–60 MB a run in MoE detection.)
   */
  inputAt(i: number, k: number): number {
    const e = this.inputOffsets[i]! + k;
    return e < this.inputOffsets[i + 1]! ? this.inputIds[e]! : -1;
  }

  outputsOf(i: number): Int32Array {
    return this.outputIds.subarray(this.outputOffsets[i]!, this.outputOffsets[i + 1]!);
  }

  predecessors(i: number): Int32Array {
    return this.preds.subarray(this.predOffsets[i]!, this.predOffsets[i + 1]!);
  }

  successors(i: number): Int32Array {
    return this.succs.subarray(this.succOffsets[i]!, this.succOffsets[i + 1]!);
  }
}

/** A graph's value ids, and each node's by slot (GraphIndex's columns), and what each node reads. */
interface NodeValues {
  valueIds: NameLookup<number>;
  valueNames: string[];
  initializerOrder: Int32Array;
  inputOffsets: Int32Array;
  inputIds: Int32Array;
  outputOffsets: Int32Array;
  outputIds: Int32Array;
  /** Node i reads reads[readOffsets[i] .. readOffsets[i + 1]): its inputs' ids (omitted ones left out), then its outer refs'. */
  readOffsets: Int32Array;
  reads: Int32Array;
}

/** A column of int32s filled in order, grown by doubling; done() gives it cut to size. */
class IntColumn {
  private data: Int32Array;
  length = 0;
  constructor(capacity: number) {
    this.data = new Int32Array(Math.max(16, capacity));
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const more = new Int32Array(2 * this.data.length);
      more.set(this.data);
      this.data = more;
    }
    this.data[this.length++] = v;
  }
  done(): Int32Array {
    return this.data.slice(0, this.length);
  }
}

/**
 * A graph's values interned while its nodes are made (the ONNX import), as GraphIndex would intern
 * them: the graph's inputs, its initializers, then node by node. Each node's names become the
 * interned strings as they come (a name decoded again for each node that reads it dies young,
 * instead of living on until an index replaces it), and GraphIndex takes the ids as they are
 * instead of looking every name up again.
 */
export class ValueColumns {
  /** Interned in a StringIds table, not a Map (src/util/string-ids.ts says why), which the index keeps as its valueIds. */
  readonly ids: StringIds;
  readonly names: string[];
  nodeCount = 0;
  private initializerOrder: Int32Array | null = null;
  private readonly inputOffsets: IntColumn;
  private readonly inputIds: IntColumn;
  private readonly outputOffsets: IntColumn;
  private readonly outputIds: IntColumn;
  private readonly readOffsets: IntColumn;
  private readonly reads: IntColumn;

  /** `graph`: its inputs and initializers as they will be indexed; `nodes`: about how many nodes will come. */
  constructor(graph: Graph, nodes: number) {
    // (Values: about one and a fifth a node on the DeepSeek-V3 shape.)
    this.ids = new StringIds(nodes + (nodes >> 2) + graph.initializers.size + graph.inputs.length);
    this.names = this.ids.names;
    for (const v of graph.inputs) this.intern(v.name);
    this.initializerOrder = new Int32Array(graph.initializers.size);
    let at = 0;
    for (const name of graph.initializers.keys()) this.initializerOrder[at++] = this.intern(name);
    this.inputOffsets = new IntColumn(nodes + 1);
    this.outputOffsets = new IntColumn(nodes + 1);
    this.readOffsets = new IntColumn(nodes + 1);
    this.inputIds = new IntColumn(3 * nodes);
    this.outputIds = new IntColumn(nodes);
    this.reads = new IntColumn(3 * nodes);
  }

  private intern(name: string): number {
    return this.ids.intern(name);
  }

  /** The graph's next node: its value names interned (and replaced by the interned strings) in order. */
  add(node: Node): void {
    this.nodeCount++;
    this.inputOffsets.push(this.inputIds.length);
    this.readOffsets.push(this.reads.length);
    this.outputOffsets.push(this.outputIds.length);
    const { inputs, outputs, outer_refs: refs } = node;
    for (let k = 0; k < inputs.length; k++) {
      const v = inputs[k]!;
      if (!v) {
        this.inputIds.push(-1);
        continue;
      }
      const id = this.intern(v);
      inputs[k] = this.names[id]!;
      this.inputIds.push(id);
      this.reads.push(id);
    }
    for (let k = 0; k < refs.length; k++) this.reads.push(this.intern(refs[k]!));
    for (let k = 0; k < outputs.length; k++) {
      const v = outputs[k]!;
      if (!v) {
        this.outputIds.push(-1);
        continue;
      }
      const id = this.intern(v);
      outputs[k] = this.names[id]!;
      this.outputIds.push(id);
    }
  }

  /** The columns for GraphIndex (once: they are given away). */
  done(): NodeValues {
    const initializerOrder = this.initializerOrder;
    if (!initializerOrder) throw new Error('ValueColumns.done called twice');
    this.initializerOrder = null;
    this.inputOffsets.push(this.inputIds.length);
    this.readOffsets.push(this.reads.length);
    this.outputOffsets.push(this.outputIds.length);
    return {
      valueIds: this.ids,
      valueNames: this.names,
      initializerOrder,
      inputOffsets: this.inputOffsets.done(),
      inputIds: this.inputIds.done(),
      outputOffsets: this.outputOffsets.done(),
      outputIds: this.outputIds.done(),
      readOffsets: this.readOffsets.done(),
      reads: this.reads.done(),
    };
  }
}

/**
 * `graph`'s values interned in the order GraphIndex gives ids: its inputs, its initializers (in
 * the map's order), then each node's inputs, outer refs and outputs; `base`: the index of a graph
 * this one was derived from (GraphIndex.derive).
 */
function internValues(graph: Graph, base: GraphIndex | null): NodeValues {
  const nodes = graph.nodes;
  const n = nodes.length;
  const names: string[] = [];
  let valueIds: NameLookup<number>;
  let intern: (name: string) => number;
  // For a derived graph: the base id of a value by the base index's arrays (base.translate below).
  let translate: ((b: number) => number) | null = null;
  if (base) {
    // A value of the base graph: its id there translated to one here, given on first sight (in
    // the order a map of its own would have given it). A value new to this graph: its own map.
    // (Filling a map of every value's name was most of the DeepSeek-V3 tensor-parallel
    // variant's index: 278k names.)
    const baseIds = base.valueIds;
    const translated = new Int32Array(base.valueNames.length).fill(-1);
    const own = new Map<string, number>();
    const baseNames = base.valueNames;
    translate = (b) => {
      let id = translated[b]!;
      if (id === -1) {
        id = names.length;
        translated[b] = id;
        names.push(baseNames[b]!);
      }
      return id;
    };
    intern = (name) => {
      const b = baseIds.get(name);
      return b !== undefined ? translate!(b) : internIn(own, names, name);
    };
    valueIds = {
      get: (name) => {
        const b = baseIds.get(name);
        if (b === undefined) return own.get(name);
        const id = translated[b]!;
        return id === -1 ? undefined : id;
      },
      get size(): number {
        return names.length;
      },
    };
  } else {
    const ids = new Map<string, number>();
    valueIds = ids;
    intern = (name) => internIn(ids, names, name);
  }
  for (const v of graph.inputs) intern(v.name);
  // (Each initializer's id kept as interned, in the map's order: initializerIds and the shapes
  // pass find them here rather than by name again, 46k lookups each on the DeepSeek-V3 shape.)
  const initializerOrder = new Int32Array(graph.initializers.size);
  let at = 0;
  for (const name of graph.initializers.keys()) initializerOrder[at++] = intern(name);
  // Reads per node (CSR), interned in one sweep into typed arrays sized by a count of the slots
  // first, not number arrays grown by push and copied (the DeepSeek-V3 shape's index: least of 16
  // builds 0.30 against 0.48 s of CPU).
  // (Counted loops over nodes and their names: built once a graph, for-ofs here stayed unoptimised
  // and made an iterator result per node and name, 29 MB a run, sampled.)
  let inputSlots = 0;
  let outputSlots = 0;
  let refSlots = 0;
  for (let i = 0; i < n; i++) {
    const node = nodes[i]!;
    inputSlots += node.inputs.length;
    outputSlots += node.outputs.length;
    refSlots += node.outer_refs.length;
  }
  const readOffsets = new Int32Array(n + 1);
  const reads = new Int32Array(inputSlots + refSlots);
  const inputOffsets = new Int32Array(n + 1);
  const inputIds = new Int32Array(inputSlots);
  const outputOffsets = new Int32Array(n + 1);
  const outputIds = new Int32Array(outputSlots);
  // A node the base graph holds too (the same object: most of a tp rewrite's): its slots' base ids
  // read from the base index's arrays, not its names looked up again (the DeepSeek-V3 shape's
  // tensor-parallel graph: ~800k lookups of names scattered over the heap, a cache miss or more
  // each). The same ids in the same order: the base gave each slot the id of its name.
  const bySource = base ? nodesBySource(base.graph) : null;
  let read = 0;
  let input = 0;
  let output = 0;
  for (let i = 0; i < n; i++) {
    const node = nodes[i]!;
    readOffsets[i] = read;
    inputOffsets[i] = input;
    const p = bySource ? sameNodeIn(base!.graph, bySource, node) : -1;
    if (p !== -1 && node.outer_refs.length === 0) {
      const { inputOffsets: bi, inputIds: bin, outputOffsets: bo, outputIds: bout } = base!;
      for (let e = bi[p]!; e < bi[p + 1]!; e++) {
        const id = bin[e] === -1 ? -1 : translate!(bin[e]!);
        inputIds[input++] = id;
        if (id >= 0) reads[read++] = id;
      }
      outputOffsets[i] = output;
      for (let e = bo[p]!; e < bo[p + 1]!; e++) outputIds[output++] = bout[e] === -1 ? -1 : translate!(bout[e]!);
      continue;
    }
    for (let k = 0; k < node.inputs.length; k++) {
      const v = node.inputs[k]!;
      const id = v ? intern(v) : -1;
      inputIds[input++] = id;
      if (id >= 0) reads[read++] = id;
    }
    for (let k = 0; k < node.outer_refs.length; k++) reads[read++] = intern(node.outer_refs[k]!);
    outputOffsets[i] = output;
    for (let k = 0; k < node.outputs.length; k++) {
      const v = node.outputs[k]!;
      outputIds[output++] = v ? intern(v) : -1;
    }
  }
  readOffsets[n] = read;
  inputOffsets[n] = input;
  outputOffsets[n] = output;
  return { valueIds, valueNames: names, initializerOrder, inputOffsets, inputIds, outputOffsets, outputIds, readOffsets, reads: reads.subarray(0, read) };
}

/**
 * A graph's node index by source_index, -1 where no node has it: where a graph derived from it (the
 * tp rewrite) finds the same node, which keeps its source_index (src/shapes/infer.ts InferMemo).
 * (Counted loops: over every node, once a variant.)
 */
export function nodesBySource(graph: Graph): Int32Array {
  let last = -1;
  for (let i = 0; i < graph.nodes.length; i++) {
    const s = graph.nodes[i]!.source_index;
    if (typeof s === 'number' && s > last) last = s;
  }
  const at = new Int32Array(last + 1).fill(-1);
  for (let i = 0; i < graph.nodes.length; i++) {
    const s = graph.nodes[i]!.source_index;
    if (typeof s === 'number') at[s] = i;
  }
  return at;
}

/**
 * `node`'s index in `other` when `other` holds that very Node object, found by its source_index
 * through `bySource` (nodesBySource(other)); else -1. How a variant finds its nodes in another's
 * graph (src/shapes/infer.ts InferMemo, passes/profile.ts ProfileMemo).
 */
export function sameNodeIn(other: Graph, bySource: Int32Array, node: Node): number {
  const s = node.source_index;
  const p = typeof s === 'number' && s >= 0 && s < bySource.length ? bySource[s]! : -1;
  return p >= 0 && other.nodes[p] === node ? p : -1;
}

const built = new WeakMap<Graph, GraphIndex>();
/** Graph → the graph it was derived from (GraphIndex.derive). */
const derivedFrom = new WeakMap<Graph, Graph>();

/** Every value a node reads: its explicit inputs, then its subgraphs' outer-scope references. */
export function readsOf(node: Node): string[] {
  const reads: string[] = [];
  for (const i of node.inputs) if (i) reads.push(i);
  for (const r of node.outer_refs) reads.push(r);
  return reads;
}

export interface TopoResult {
  /** Node indices in a topological order; among ready nodes, the lowest original index goes first. */
  order: Int32Array;
  /** Non-empty when the graph has a cycle: indices of nodes that could not be ordered. */
  cyclic: number[];
}

/**
 * Kahn's algorithm with a min-heap on the original index: the result is the file's own order when
 * that order is already topological, and deterministic otherwise.
 */
export function topoOrder(index: GraphIndex): TopoResult {
  // A file whose every node comes after its predecessors (an exported model's, the tp rewrite's) is
  // its own order: with nodes 0..i-1 ordered, node i is ready and the least ready index, so Kahn's
  // algorithm below takes it next. Checked over the edges instead of run through the heap (~45 ms a
  // verify on the DeepSeek-V3 shape, two a plan). A self-read or a later predecessor goes to Kahn's.
  const n = index.size;
  const { predOffsets, preds } = index;
  let inOrder = true;
  for (let i = 0; i < n && inOrder; i++) {
    for (let e = predOffsets[i]!; e < predOffsets[i + 1]!; e++) {
      if (preds[e]! >= i) {
        inOrder = false;
        break;
      }
    }
  }
  if (inOrder) {
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    return { order, cyclic: [] };
  }
  const { order, waiting } = kahnOrder(index.size, index.predOffsets, index.succOffsets, index.succs, (a, b) => a < b);
  const cyclic: number[] = [];
  if (order.length < index.size) for (let i = 0; i < index.size; i++) if (waiting[i]! > 0) cyclic.push(i);
  return { order, cyclic };
}

/**
 * Kahn's algorithm over adjacency in CSR form — node i's predecessors counted by
 * predOffsets[i + 1] − predOffsets[i], its successors succs[succOffsets[i] .. succOffsets[i + 1]),
 * each edge once each way — taking, among the ready nodes, the one `less` puts first. The order is
 * shorter than n when nodes wait on each other; `waiting` counts, per node, its predecessors left
 * unordered (> 0 on a cycle and behind one).
 */
export function kahnOrder(
  n: number,
  predOffsets: Int32Array,
  succOffsets: Int32Array,
  succs: Int32Array,
  less: (a: number, b: number) => boolean,
): { order: Int32Array; waiting: Int32Array } {
  const waiting = new Int32Array(n);
  for (let i = 0; i < n; i++) waiting[i] = predOffsets[i + 1]! - predOffsets[i]!;
  const heap = new Heap<number>(less);
  for (let i = 0; i < n; i++) if (waiting[i] === 0) heap.push(i);
  const order = new Int32Array(n);
  let k = 0;
  while (heap.size > 0) {
    const i = heap.pop()!;
    order[k++] = i;
    for (let e = succOffsets[i]!; e < succOffsets[i + 1]!; e++) if (--waiting[succs[e]!]! === 0) heap.push(succs[e]!);
  }
  return { order: order.subarray(0, k), waiting };
}

/** Position of each node in `order` (inverse permutation). */
export function positions(order: Int32Array, n: number): Int32Array {
  const pos = new Int32Array(n).fill(-1);
  for (let k = 0; k < order.length; k++) pos[order[k]!] = k;
  return pos;
}

/** Nodes reachable from `start` (not including start nodes unless reached again) following edges forward or backward. */
export function reachable(index: GraphIndex, start: Iterable<number>, direction: 'forward' | 'backward'): Uint8Array {
  const seen = new Uint8Array(index.size);
  const stack: number[] = [];
  const next = direction === 'forward' ? (i: number) => index.successors(i) : (i: number) => index.predecessors(i);
  for (const s of start) {
    const adj = next(s);
    for (let e = 0; e < adj.length; e++) stack.push(adj[e]!);
  }
  while (stack.length > 0) {
    const i = stack.pop()!;
    if (seen[i]) continue;
    seen[i] = 1;
    const adj = next(i);
    for (let e = 0; e < adj.length; e++) if (!seen[adj[e]!]) stack.push(adj[e]!);
  }
  return seen;
}

/**
 * A node set S is convex when no path leaves S and comes back: contracting S into one node then
 * creates no cycle. Search forward from S's outside successors; reaching S again means not convex.
 * `pos` (topological positions) prunes the search to nodes that can still lead back into S.
 */
export function isConvex(index: GraphIndex, set: ReadonlySet<number>, pos?: Int32Array): boolean {
  let maxPos = Infinity;
  if (pos) {
    maxPos = -1;
    for (const i of set) maxPos = Math.max(maxPos, pos[i]!);
  }
  const seen = new Uint8Array(index.size);
  const stack: number[] = [];
  for (const i of set) {
    const s = index.successors(i);
    for (let e = 0; e < s.length; e++) if (!set.has(s[e]!)) stack.push(s[e]!);
  }
  while (stack.length > 0) {
    const i = stack.pop()!;
    if (seen[i]) continue;
    seen[i] = 1;
    if (pos && pos[i]! > maxPos) continue;
    const s = index.successors(i);
    for (let e = 0; e < s.length; e++) {
      const j = s[e]!;
      if (set.has(j)) return false;
      if (!seen[j]) stack.push(j);
    }
  }
  return true;
}

export interface Extracted {
  graph: Graph;
  /** Values read by the set but produced outside it (graph inputs included, initializers not). */
  boundary_inputs: string[];
  /** Values produced in the set and read outside it, or outputs of the whole graph. */
  boundary_outputs: string[];
}

/**
 * Cut a node set out as a standalone graph. Initializers it reads come along (by reference, no
 * bytes copied); values produced outside become graph inputs; values it produces that anything
 * outside reads (or that are graph outputs) become graph outputs. Nodes keep their relative order.
 */
export function extractSubgraph(index: GraphIndex, nodes: Iterable<number>, name: string): Extracted {
  const g = index.graph;
  const members = [...new Set(nodes)].sort((a, b) => a - b);
  const inSet = new Set(members);
  const produced = new Set<string>();
  for (const i of members) for (const o of g.nodes[i]!.outputs) if (o) produced.add(o);
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const graphInputs = new Set(g.inputs.map((x) => x.name));

  const inputs: string[] = [];
  const seenInput = new Set<string>();
  const initializers = new Map<string, TensorData>();
  for (const i of members) {
    for (const v of readsOf(g.nodes[i]!)) {
      if (produced.has(v) || seenInput.has(v)) continue;
      const init = g.initializers.get(v);
      if (init && !graphInputs.has(v)) initializers.set(v, init);
      else inputs.push(v);
      seenInput.add(v);
    }
  }
  const outputs: string[] = [];
  for (const i of members) {
    for (const o of g.nodes[i]!.outputs) {
      if (!o) continue;
      const readers = index.consumers.get(o) ?? [];
      if (graphOutputs.has(o) || readers.some((r) => !inSet.has(r))) outputs.push(o);
    }
  }
  const info = (v: string): ValueInfo => {
    const t = g.declared.get(v);
    const b = g.declared_bytes.get(v);
    return b !== undefined ? { name: v, type: t ?? null, bytes: b } : { name: v, type: t ?? null };
  };
  const declared = new Map<string, TensorType>();
  const declaredBytes = new Map<string, number>();
  for (const v of [...inputs, ...outputs, ...produced, ...initializers.keys()]) {
    const t = g.declared.get(v);
    if (t) declared.set(v, t);
    const b = g.declared_bytes.get(v);
    if (b !== undefined) declaredBytes.set(v, b);
  }
  return {
    graph: {
      name,
      nodes: members.map((i) => g.nodes[i]!),
      inputs: inputs.map(info),
      outputs: outputs.map(info),
      initializers,
      declared,
      declared_bytes: declaredBytes,
    },
    boundary_inputs: inputs,
    boundary_outputs: outputs,
  };
}
