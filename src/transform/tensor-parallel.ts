// Tensor parallelism as a graph rewrite (Megatron-LM, Shoeybi et al. 2019, §3).
//
// Column-parallel: Y = X·W with W [K, N] becomes Y = Concat(X·W₀, …, X·W_{k−1}) over column
// blocks W_j = W[:, jN/k : (j+1)N/k]. Every output element is computed exactly as before (same dot
// product); the k products are independent nodes the partitioner can put on k devices, and the
// Concat gathers them.
//
// Row-parallel pairs (Megatron's MLP, §3 and Fig. 3a): when a split MatMul's output reaches a
// second weight MatMul only through elementwise ops (an activation, SwiGLU's gate × up, a bias),
// the second is split by rows instead: shard j runs the elementwise chain on its own column block
// and multiplies it by W₂'s row block j, and one Sum adds the k partial products — no gather
// between the two GEMMs, one reduction per pair (the all-reduce Megatron places there). Each
// shard is one unit the partitioner places. Sums in a different order round differently: the
// result matches the unsplit model to floating-point tolerance, not bit for bit.
//
// Head-parallel attention (Megatron-LM §3, Fig. 3b): when the chain between the column and the row
// MatMuls is an attention op that reads its query, key and value from column-split projections
// (com.microsoft GroupQueryAttention, as onnxruntime-genai's model builder writes it, or
// MultiHeadAttention, as onnxruntime's transformer optimizer fuses it: headParallel), shard j runs
// attention on its heads only: the projections' column blocks are whole heads when the head counts
// divide by k, GQA's query heads h·H/k… read kv head ⌊h·Hkv/H⌋, which the same block holds, and the
// output projection is split by rows. Its KV cache, two ways (the caller chooses per node:
// passes/tp.ts): `join`, the past it reads is split by heads for the shards and the present it
// writes joined again, so the graph's inputs and outputs stay as they were (free when the step
// starts with no past); `io`, the cache is the graph's input and output and each shard's heads
// become graph inputs and outputs of their own (`past…/tp0of2`, [batch, kv_heads/k, past,
// head_dim]), so the cache stays with its shard from step to step (Megatron's layout) and the
// runtime splits and joins it only at the boundary (`io` in the result; src/runtime/shards.ts).

import { byteSizeOf, dtypeBits } from '../ir/dtype.js';
import { editDeclared, type Graph, type Node, type TensorData, type ValueInfo } from '../ir/graph.js';
import { GraphIndex } from '../ir/algorithms.js';

export interface Split {
  /** The MatMul split (a row-parallel pair: its second MatMul). */
  node: string;
  /** The k part nodes (a pair: the row parts). */
  parts: string[];
  /** A row-parallel pair: per shard, every node of it (column parts, the elementwise chain, the row part). */
  members?: string[][];
  /** The source MatMuls the entry splits (a pair: the column MatMuls and the row one). */
  covers?: string[];
  /** A pair whose chain is attention run by heads: the attention nodes sharded (head-parallel attention). */
  attention?: string[];
}

/** A graph input or output replaced by its k parts along `axis` (head-parallel attention's KV cache in `io` mode). */
export interface IoShard {
  name: string;
  role: 'input' | 'output';
  axis: number;
  parts: string[];
}

export interface SplitResult {
  graph: Graph;
  splits: Split[];
  /** Graph inputs and outputs now held as parts. */
  io: IoShard[];
}

/** Elementwise ops that act on each element alone, so a column block of the input gives the column block of the output. */
const PARTWISE_UNARY = new Set([
  'Sigmoid',
  'Relu',
  'Tanh',
  'Erf',
  'Neg',
  'Exp',
  'Log',
  'Sqrt',
  'Reciprocal',
  'Abs',
  'Cast',
  'Softplus',
  'Gelu',
  'FastGelu',
  'QuickGelu',
  'Identity',
]);
const PARTWISE_BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow']);

function intAttr(n: Node, name: string): number | undefined {
  const a = n.attrs[name];
  return a?.type === 'int' ? a.value : undefined;
}

/** An attention node that can run as head shards: its head counts and where it reads and writes its KV cache. */
export interface HeadAttention {
  heads: number;
  kvHeads: number;
  /** Input slots of the past key and value ([batch, kv_heads, past, head_dim]), split by heads per shard. */
  past: number[];
  /** Output slots of the present key and value, joined from the shards. */
  present: number[];
}

/** The attention ops head parallelism knows (onnxruntime's com.microsoft contrib ops, docs/ContribOperators.md). */
export const HEAD_ATTENTION_OPS: ReadonlySet<string> = new Set(['GroupQueryAttention', 'MultiHeadAttention']);

/**
 * Whether attention node `n` can run as k head shards, and how: separate query, key and value (not
 * packed) whose projections the pair splits by columns, the head counts divisible by k, and
 * nothing read per head across shards or written per head (the optional QK output). Inputs other
 * than q/k/v and the past are read whole by every shard, so only those with no head axis are
 * allowed: GroupQueryAttention (onnxruntime-genai's decoders) reads sequence lengths and rotary
 * tables (not an attention bias or head sink, slots 10–11); MultiHeadAttention (onnxruntime's
 * transformer optimizer: Whisper, T5 and GPT-2 decoders) a key padding mask, past length and beam
 * indirection (not its packed q/k/v bias, slot 3, nor an attention bias, slot 5).
 */
export function headParallel(n: Node, k: number): HeadAttention | null {
  if (n.domain !== 'com.microsoft' || !n.inputs[1] || !n.inputs[2] || n.outputs.slice(3).some((v) => v)) return null;
  const heads = intAttr(n, 'num_heads');
  if (!heads || heads % k !== 0) return null;
  if (n.op === 'GroupQueryAttention') {
    const kvHeads = intAttr(n, 'kv_num_heads');
    if (!kvHeads || kvHeads % k !== 0 || n.inputs.slice(10).some((v) => v)) return null;
    return { heads, kvHeads, past: [3, 4], present: [1, 2] };
  }
  if (n.op === 'MultiHeadAttention') {
    if (n.inputs[3] || n.inputs[5]) return null;
    return { heads, kvHeads: heads, past: [6, 7], present: [1, 2] };
  }
  return null;
}

/** How a head-sharded attention node's KV cache is held (head-parallel attention, above). */
export type HeadMode = 'join' | 'io';

export interface SplitOptions {
  /** Which attention nodes may run as head shards inside a pair, and how their cache is held; none when absent. */
  heads?: (attention: Node) => HeadMode | null;
  /** The model's default-domain opset: how a Split node names its parts (num_outputs from 18). */
  opset?: number;
}

/** A MatMul whose second input is a 2-D initializer with N divisible by k, and whose bytes we hold (or that holds none: graph-only). */
export function splittable(graph: Graph, node: Node, k: number): boolean {
  if (node.op !== 'MatMul' || node.domain !== '' || node.inputs.length !== 2) return false;
  const w = graph.initializers.get(node.inputs[1]!);
  if (w?.dims.length !== 2 || w.dims[1]! % k !== 0 || dtypeBits(w.dtype) % 8 !== 0) return false;
  return w.location.kind === 'inline' || w.location.kind === 'absent' || (w.location.kind === 'external' && !w.location.present);
}

/** Column block j of a row-major [K, N] tensor: a new inline tensor (or absent when the source has no bytes). */
function columnBlock(w: TensorData, j: number, k: number, name: string): TensorData {
  const [K, N] = w.dims as [number, number];
  const n = N / k;
  const elem = dtypeBits(w.dtype) / 8;
  const byte_size = byteSizeOf(w.dtype, K * n);
  if (w.location.kind !== 'inline') return { name, dtype: w.dtype, dims: [K, n], byte_size, location: { kind: 'absent' } };
  const src = w.location.data;
  const out = new Uint8Array(byte_size);
  for (let r = 0; r < K; r++) out.set(src.subarray((r * N + j * n) * elem, (r * N + (j + 1) * n) * elem), r * n * elem);
  return { name, dtype: w.dtype, dims: [K, n], byte_size, location: { kind: 'inline', data: out } };
}

/** A row-parallel pair: the column MatMuls feeding it, the elementwise chain between, the row MatMul. */
interface RowGroup {
  sources: Node[];
  chain: Node[];
  row: Node;
  /** Head-sharded attention nodes of the chain: where each keeps its cache, and how it holds it. */
  heads: Map<Node, { attention: HeadAttention; mode: HeadMode }>;
}

/**
 * Row-parallel pairs among the targets: a target MatMul whose input comes from target MatMuls
 * (each splittable into k column blocks of its K) through partwise elementwise ops only, whose
 * values nothing else reads. Other inputs of the chain may be scalars or [K] vectors (a bias),
 * which shard j reads whole or as its block.
 */
function rowGroups(graph: Graph, targets: ReadonlySet<string>, k: number, heads: (attention: Node) => HeadMode | null): Map<string, RowGroup> {
  // Producers and readers from the graph's index (the import built it), not maps of every value of
  // the rewrite's own (three, 0.75 s on a 275k-node graph).
  const index = GraphIndex.of(graph);
  /** The nodes reading `v` (node inputs and subgraph reads), each once. */
  const readersOf = (v: string): Int32Array => {
    const id = index.valueIds.get(v);
    return id === undefined ? new Int32Array(0) : index.consumersOfId(id);
  };
  const outputs = new Set(graph.outputs.map((v) => v.name));
  const inputShape = new Map(graph.inputs.map((v) => [v.name, v.type?.shape]));
  const groups = new Map<string, RowGroup>();
  /** Reads of `v`, a node reading it twice counted twice. */
  const readCount = (v: string): number => {
    let count = 0;
    for (const r of readersOf(v)) for (const list of [graph.nodes[r]!.inputs, graph.nodes[r]!.outer_refs]) for (const x of list) if (x === v) count++;
    return count;
  };
  const graphInputs = new Set(graph.inputs.map((v) => v.name));
  /**
   * `io` mode holds: each past is a graph input of [batch, kv_heads, …] read by this node alone
   * (and not also a graph output), each present a graph output nothing reads (and not an input).
   */
  const ownsCache = (n: Node, a: HeadAttention): boolean =>
    a.past.every((slot) => {
      const v = n.inputs[slot];
      return !v || (inputShape.get(v)?.[1] === a.kvHeads && readCount(v) === 1 && !outputs.has(v));
    }) &&
    a.present.every((slot) => {
      const v = n.outputs[slot];
      return !v || (outputs.has(v) && readCount(v) === 0 && !graphInputs.has(v));
    });
  const claimed = new Set<string>();
  // (A counted loop: this for-of made an iterator result per node, 11 MB a run, sampled.)
  for (let rowAt = 0; rowAt < graph.nodes.length; rowAt++) {
    const row = graph.nodes[rowAt]!;
    if (!targets.has(row.name) || !splittable(graph, row, k)) continue;
    const w = graph.initializers.get(row.inputs[1]!)!;
    const K = w.dims[0]!;
    if (K % k !== 0) continue;
    // Members by name, with their index in the graph.
    const sources = new Map<string, [Node, number]>();
    const chain = new Map<string, [Node, number]>();
    const headModes: RowGroup['heads'] = new Map();
    let ok = true;
    // `width`: the columns of the value `v` (K, or a key/value projection's under attention).
    const visit = (v: string, width: number): void => {
      if (!ok) return;
      const at = index.producer.get(v);
      if (at === undefined) {
        ok = false;
        return;
      }
      const p = graph.nodes[at]!;
      if (p.op === 'MatMul' && targets.has(p.name) && splittable(graph, p, k) && graph.initializers.get(p.inputs[1]!)!.dims[1] === width) {
        if (claimed.has(p.name) || groups.has(p.name)) ok = false;
        else sources.set(p.name, [p, at]);
        return;
      }
      if (chain.has(p.name)) return;
      const attention = headParallel(p, k);
      const mode = attention ? heads(p) : null;
      if (attention && (!mode || (mode === 'io' && !ownsCache(p, attention)))) {
        ok = false;
        return;
      }
      if (attention) {
        // Its output (the heads' context, `width` wide) is the only one the pair reads; q, k and v
        // come from column-split projections, k and v with the kv heads' share of the width.
        if (v !== p.outputs[0] || outputs.has(v) || width % attention.heads !== 0) {
          ok = false;
          return;
        }
        chain.set(p.name, [p, at]);
        headModes.set(p, { attention, mode: mode! });
        const kvWidth = (width / attention.heads) * attention.kvHeads;
        visit(p.inputs[0]!, width);
        visit(p.inputs[1]!, kvWidth);
        visit(p.inputs[2]!, kvWidth);
        return;
      }
      const unary = PARTWISE_UNARY.has(p.op) && (p.domain === '' || p.domain === 'com.microsoft') && p.inputs.length === 1;
      const binary = PARTWISE_BINARY.has(p.op) && p.domain === '' && p.inputs.length === 2;
      if (!(unary || binary) || p.outputs.length !== 1 || outputs.has(v)) {
        ok = false;
        return;
      }
      chain.set(p.name, [p, at]);
      for (const x of p.inputs) {
        const init = graph.initializers.get(x);
        if (init) {
          const numel = init.dims.reduce((a, b) => a * b, 1);
          if (!(numel === 1 || (init.dims.length === 1 && init.dims[0] === width && dtypeBits(init.dtype) % 8 === 0 && p.op !== 'Pow'))) ok = false;
          continue;
        }
        visit(x, width);
      }
    };
    visit(row.inputs[0]!, K);
    if (!ok || sources.size === 0) continue;
    // Every chain value is read inside the group only.
    const inGroup = new Set([...chain.keys(), row.name]);
    for (const [c] of chain.values()) for (const r of readersOf(c.outputs[0]!)) if (!inGroup.has(graph.nodes[r]!.name)) ok = false;
    if (!ok) continue;
    for (const name of sources.keys()) claimed.add(name);
    const inOrder = (m: Map<string, [Node, number]>): Node[] => [...m.values()].sort((a, b) => a[1] - b[1]).map(([n]) => n);
    groups.set(row.name, { sources: inOrder(sources), chain: inOrder(chain), row, heads: headModes });
  }
  return groups;
}

/** Row block j of a row-major [K, N] tensor (or of a [K] vector): a new inline tensor, or absent when the source has no bytes. */
function rowBlock(w: TensorData, j: number, k: number, name: string): TensorData {
  const [K, N = 1] = w.dims as [number, number?];
  const rows = K / k;
  const dims = w.dims.length === 1 ? [rows] : [rows, N];
  const byte_size = byteSizeOf(w.dtype, rows * N);
  if (w.location.kind !== 'inline') return { name, dtype: w.dtype, dims, byte_size, location: { kind: 'absent' } };
  const elem = dtypeBits(w.dtype) / 8;
  const data = w.location.data.slice(j * rows * N * elem, (j + 1) * rows * N * elem);
  return { name, dtype: w.dtype, dims, byte_size, location: { kind: 'inline', data } };
}

export function splitMatMuls(graph: Graph, targets: ReadonlySet<string>, k: number, options: SplitOptions = {}): SplitResult {
  const groups = rowGroups(graph, targets, k, options.heads ?? (() => null));
  const inGroup = new Map<string, RowGroup>();
  for (const g of groups.values()) for (const n of [...g.sources, ...g.chain, g.row]) inGroup.set(n.name, g);
  const nodes: Node[] = [];
  const initializers = new Map(graph.initializers);
  const edit = editDeclared(graph.declared);
  const declared = edit.declared;
  const splits: SplitResult['splits'] = [];
  /** Column part outputs of each split MatMul's output value. */
  const partOutputs = new Map<string, string[]>();
  const part = (name: string, j: number): string => `${name}/tp${j}of${k}`;
  const pastSplit = new Set<string>();
  const io: IoShard[] = [];
  // Where in `nodes` the graph's nodes went as they were (their slots as the graph's index has them),
  // and from where: typed arrays of room for all, not number arrays grown by push (2 x 273k).
  const keptAt = new Int32Array(graph.nodes.length);
  const keptFrom = new Int32Array(graph.nodes.length);
  let keptCount = 0;
  graph.nodes.forEach((node, i) => {
    const source_index = node.source_index === undefined ? i : node.source_index;
    const group = inGroup.get(node.name);
    if (group && group.row === node) {
      // The pair's shards, at the row MatMul's place: chain copies on each column block, the row part, one Sum.
      const members: string[][] = [];
      const rowParts: string[] = [];
      const partials: string[] = [];
      const w = graph.initializers.get(node.inputs[1]!)!;
      const attentions = [...group.heads].map(([c, h]) => ({ c, ...h }));
      for (const { c, attention, mode } of attentions)
        if (mode === 'io')
          for (const [role, list] of [
            ['input', attention.past.map((slot) => c.inputs[slot])],
            ['output', attention.present.map((slot) => c.outputs[slot])],
          ] as const)
            for (const name of list) if (name) io.push({ name, role, axis: 1, parts: Array.from({ length: k }, (_, j) => part(name, j)) });
      for (const { c, attention } of attentions.filter((a) => a.mode === 'join'))
        for (const [at, slot] of attention.past.entries()) {
          const past = c.inputs[slot];
          // One split per past value, however many attention nodes read it.
          if (!past || pastSplit.has(past)) continue;
          pastSplit.add(past);
          // [batch, kv_heads, past, head_dim] split on the heads axis, one part per shard.
          nodes.push({
            name: `${c.name}/tp_split_${at === 0 ? 'key' : 'value'}`,
            op: 'Split',
            domain: '',
            inputs: [past],
            outputs: Array.from({ length: k }, (_, j) => part(past, j)),
            attrs: { axis: { type: 'int', value: 1 }, ...((options.opset ?? 0) >= 18 ? { num_outputs: { type: 'int' as const, value: k } } : {}) },
            outer_refs: [],
            source_index: null,
          });
        }
      for (let j = 0; j < k; j++) {
        const shard: string[] = group.sources.map((src) => part(src.name, j));
        const mapped = (v: string): string => {
          const cols = partOutputs.get(v);
          if (cols) return cols[j]!;
          if (group.chain.some((c) => c.outputs[0] === v)) return part(v, j);
          const init = graph.initializers.get(v);
          if (init && init.dims.length === 1 && init.dims[0]! > 1) {
            const b = part(v, j);
            if (!initializers.has(b)) {
              initializers.set(b, rowBlock(init, j, k, b));
              edit.set(b, { dtype: init.dtype, shape: [init.dims[0]! / k] });
            }
            return b;
          }
          return v;
        };
        for (const c of group.chain) {
          const attention = group.heads.get(c)?.attention;
          if (attention) {
            // Its heads' share: q, k and v its column blocks, the past split by heads (above), its
            // present parts joined after; the sequence lengths and rotary tables whole (a 1-D
            // constant there is per batch row, not per head).
            const inputs = c.inputs.map((v, slot) => (!v ? v : attention.past.includes(slot) ? part(v, j) : slot <= 2 ? mapped(v) : v));
            const attrs = {
              ...c.attrs,
              num_heads: { type: 'int' as const, value: attention.heads / k },
              ...(c.attrs.kv_num_heads ? { kv_num_heads: { type: 'int' as const, value: attention.kvHeads / k } } : {}),
            };
            nodes.push({ ...c, name: part(c.name, j), inputs, outputs: c.outputs.map((o) => (o ? part(o, j) : o)), attrs, source_index: null });
          } else nodes.push({ ...c, name: part(c.name, j), inputs: c.inputs.map(mapped), outputs: [part(c.outputs[0]!, j)], source_index: null });
          shard.push(part(c.name, j));
        }
        const wj = part(node.inputs[1]!, j);
        initializers.set(wj, rowBlock(w, j, k, wj));
        edit.set(wj, { dtype: w.dtype, shape: [w.dims[0]! / k, w.dims[1]!] });
        const name = part(node.name, j);
        partials.push(part(node.outputs[0]!, j));
        nodes.push({
          name,
          op: 'MatMul',
          domain: '',
          inputs: [mapped(node.inputs[0]!), wj],
          outputs: [partials[j]!],
          attrs: {},
          outer_refs: [],
          source_index: null,
        });
        rowParts.push(name);
        shard.push(name);
        members.push(shard);
      }
      // The reduction is a unit of its own, placed where its result is wanted (joining it to shard 0
      // ties that shard to the next layer's device and made plans worse).
      nodes.push({
        name: `${node.name}/tp_reduce`,
        op: 'Sum',
        domain: '',
        inputs: partials,
        outputs: [node.outputs[0]!],
        attrs: {},
        outer_refs: [],
        source_index: null,
      });
      for (const { c, attention } of attentions.filter((a) => a.mode === 'join'))
        for (const [at, slot] of attention.present.entries()) {
          const present = c.outputs[slot];
          if (!present) continue;
          nodes.push({
            name: `${c.name}/tp_join_${at === 0 ? 'key' : 'value'}`,
            op: 'Concat',
            domain: '',
            inputs: Array.from({ length: k }, (_, j) => part(present, j)),
            outputs: [present],
            attrs: { axis: { type: 'int', value: 1 } },
            outer_refs: [],
            source_index: null,
          });
        }
      splits.push({
        node: node.name,
        parts: rowParts,
        members,
        covers: [...group.sources.map((s) => s.name), node.name],
        ...(attentions.length > 0 ? { attention: attentions.map((a) => a.c.name) } : {}),
      });
      return;
    }
    if (group?.chain.includes(node)) return; // copied per shard at the row MatMul
    if (!targets.has(node.name) || !splittable(graph, node, k)) {
      // The imported graph's nodes carry their index: shared with it, not copied.
      keptAt[keptCount] = nodes.length;
      keptFrom[keptCount++] = i;
      nodes.push(node.source_index === source_index ? node : { ...node, source_index });
      return;
    }
    const [x, wName] = node.inputs as [string, string];
    const w = graph.initializers.get(wName)!;
    const y = node.outputs[0]!;
    const parts: string[] = [];
    const outs: string[] = [];
    for (let j = 0; j < k; j++) {
      const wj = part(wName, j);
      initializers.set(wj, columnBlock(w, j, k, wj));
      edit.set(wj, { dtype: w.dtype, shape: [w.dims[0]!, w.dims[1]! / k] });
      const name = part(node.name, j);
      parts.push(name);
      outs.push(part(y, j));
      nodes.push({ name, op: 'MatMul', domain: '', inputs: [x, wj], outputs: [part(y, j)], attrs: {}, outer_refs: [], source_index: null });
    }
    partOutputs.set(y, outs);
    nodes.push({
      name: `${node.name}/tp_gather`,
      op: 'Concat',
      domain: '',
      inputs: outs,
      outputs: [y],
      attrs: { axis: { type: 'int', value: -1 } },
      outer_refs: [],
      source_index: null,
    });
    // A pair's column MatMuls are listed with their pair.
    if (!group) splits.push({ node: node.name, parts });
  });
  // Gathers nothing reads any more (a pair's shards read the blocks) are gone, and then weights only
  // the split MatMuls read (their blocks replace them): reads counted once, not gathered into sets
  // of every value read, once with the gathers and once without (0.5 s on a 275k-node graph).
  const gather = (n: Node): boolean => n.op === 'Concat' && n.name.endsWith('/tp_gather');
  // The graph's nodes kept as they were (nearly all) are counted by value id on the graph's index,
  // the nodes made here by name; reads(v) is the sum, a node reading v twice counting twice (an
  // omitted input, '', has no id: counted apart). Looking every slot's name up in a map of the
  // gathers and weights was ~800k lookups of names scattered over the heap on the DeepSeek-V3 shape.
  // (Counted loops and forEach over the 275k nodes and the weights: run once a variant, for-ofs
  // here stayed unoptimised and made an iterator result per element, 33 MB a run, sampled.)
  const index = GraphIndex.of(graph);
  const { inputOffsets, inputIds } = index;
  const readsById = new Int32Array(index.valueNames.length);
  let omittedReads = 0;
  for (let k = 0; k < keptCount; k++) {
    const i = keptFrom[k]!;
    for (let e = inputOffsets[i]!; e < inputOffsets[i + 1]!; e++) {
      if (inputIds[e] === -1) omittedReads++;
      else readsById[inputIds[e]!]!++;
    }
    const refs = graph.nodes[i]!.outer_refs;
    for (let r = 0; r < refs.length; r++) readsById[index.valueIds.get(refs[r]!)!]!++;
  }
  const madeReads = new Map<string, number>();
  const count = (n: Node, by: number): void => {
    const inputs = n.inputs.length;
    for (let s = 0; s < inputs + n.outer_refs.length; s++) {
      const v = s < inputs ? n.inputs[s]! : n.outer_refs[s - inputs]!;
      madeReads.set(v, (madeReads.get(v) ?? 0) + by);
    }
  };
  for (let i = 0, kept = 0; i < nodes.length; i++) {
    if (kept < keptCount && keptAt[kept] === i) kept++;
    else count(nodes[i]!, 1);
  }
  const reads = (v: string): number => {
    const id = index.valueIds.get(v);
    return (id === undefined ? 0 : readsById[id]!) + (madeReads.get(v) ?? 0) + (v === '' ? omittedReads : 0);
  };
  const graphOutputs = new Set(graph.outputs.map((v) => v.name));
  const unread = (n: Node): boolean => gather(n) && reads(n.outputs[0]!) === 0 && !graphOutputs.has(n.outputs[0]!);
  const gone = nodes.filter(unread);
  const live = gone.length > 0 ? nodes.filter((n) => !unread(n)) : nodes;
  for (const n of gone) count(n, -1);
  for (const name of [...initializers.keys()]) if (reads(name) === 0 && !graph.inputs.some((v) => v.name === name)) initializers.delete(name);
  // A cache held by its shards: each graph input and output in its k parts, kv_heads/k heads each.
  const partsOf = <V extends { name: string; type: ValueInfo['type'] }>(list: V[], role: IoShard['role']): V[] =>
    list.flatMap((v) => {
      const shard = io.find((x) => x.role === role && x.name === v.name);
      if (!shard) return [v];
      const shape = v.type?.shape?.map((d, axis) => (axis === shard.axis && typeof d === 'number' ? d / k : d));
      return shard.parts.map((name) => ({ ...v, name, type: v.type && shape ? { ...v.type, shape } : v.type }));
    });
  for (const shard of io) {
    const t = declared.get(shard.name);
    if (!t) continue;
    edit.delete(shard.name);
    const shape = t.shape?.map((d, axis) => (axis === shard.axis && typeof d === 'number' ? d / k : d)) ?? null;
    for (const name of shard.parts) edit.set(name, { ...t, shape });
  }
  const inputs = io.length > 0 ? partsOf(graph.inputs, 'input') : graph.inputs;
  const outputs = io.length > 0 ? partsOf(graph.outputs, 'output') : graph.outputs;
  const rewritten: Graph = { ...graph, nodes: live, initializers, declared, inputs, outputs };
  // Most of its nodes are the graph's own, naming values by the same strings: its index (verify's)
  // reads them through the graph's (built above), not a map of its own.
  GraphIndex.derive(rewritten, graph);
  return { graph: rewritten, splits, io };
}
