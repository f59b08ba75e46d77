// ONNX import: ModelProto (decoded with onnx-proto's protobufjs classes) → IR. The file is read
// once; tensor bytes stay views into that buffer, external data stays a reference (file, offset,
// length) resolved inside the model's folder only. The file is untrusted: every size is checked
// against the bytes actually there before anything is sized from it.

import { refuseDuplicateProducer } from '../ir/verify.js';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { onnx as OnnxNs } from 'onnx-proto';
import { MAX_DIM, type ModelSplit } from '../ir/graph.js';
import { GraphIndex, ValueColumns } from '../ir/algorithms.js';
import { HxcError, type Diagnostics } from '../diag/diagnostics.js';
import { byteSizeOf, dtypeFromOnnx } from '../ir/dtype.js';
import {
  freeNames,
  newGraph,
  subgraphsOf,
  type Attr,
  type Dim,
  type Graph,
  type Model,
  type Node,
  type TensorData,
  type TensorType,
  type ValueInfo,
} from '../ir/graph.js';
import { convertTensor, toNum, type IntLike } from './onnx-tensors.js';
import { safeRealpath } from './onnx-tensors.js';
import { StringIds } from '../util/string-ids.js';
import { GRAPH_INITIALIZER, protobuf, splitField, splitModel, type FieldSplit } from './onnx-fields.js';

type OnnxReader = InstanceType<typeof protobuf.Reader>;

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto') as { onnx: typeof OnnxNs };

/** protobuf's own limit for one message; larger ONNX files cannot exist without external data. */
export const MAX_ONNX_FILE_BYTES = 2 ** 31;

export interface ImportContext {
  file: string;
  dir: string;
  realDir: string;
  buffer: Buffer;
  diagnostics: Diagnostics;
  /** External files: resolved path → size in bytes, or -1 when missing. Each is stat'ed once. */
  externalFiles: Map<string, number>;
  /** External locations as written → resolved path, each found inside the folder (models name one file thousands of times). */
  resolvedLocations: Map<string, string>;
  /** Attribute sets of scalars only, one object each (sharedAttrs). */
  scalarAttrs?: Map<string, Record<string, Attr>>;
  missingExternal: { count: number; bytes: number; files: Set<string> };
  /** Subgraph nesting while converting. */
  depth?: number;
}

export function importOnnx(file: string, buffer: Buffer, diagnostics: Diagnostics): Omit<Model, 'sha256' | 'file_bytes' | 'path'> {
  if (buffer.length === 0) {
    throw new HxcError('HXC2101', 'the model file is empty', { where: file, hint: 're-export the model or check the path' });
  }
  let decoded: DecodedModel;
  try {
    decoded = decodeModel(buffer);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/index out of range/.test(msg)) {
      throw new HxcError('HXC2103', `the ONNX file ends early (${buffer.length} bytes; protobuf: ${msg})`, {
        where: file,
        hint: 'the file is truncated: copy or download it again',
      });
    }
    throw new HxcError('HXC2102', `not an ONNX model: the bytes do not decode as an ONNX ModelProto (${msg})`, {
      where: file,
      hint: 'give an .onnx file or an hxc-graph/v1 JSON graph',
    });
  }
  const proto = decoded.proto;
  if (!proto.graph) {
    const looksTruncated = buffer.length > 0 && toNum(proto.irVersion as IntLike) > 0;
    throw new HxcError(
      looksTruncated ? 'HXC2103' : 'HXC2102',
      looksTruncated ? 'the ONNX file has no graph (it is probably truncated)' : 'not an ONNX model: it has no graph',
      { where: file, hint: looksTruncated ? 'copy or export the file again' : 'give an .onnx file or an hxc-graph/v1 JSON graph' },
    );
  }
  const dir = path.dirname(path.resolve(file));
  const ctx: ImportContext = {
    file,
    dir,
    realDir: safeRealpath(dir),
    buffer,
    diagnostics,
    externalFiles: new Map(),
    resolvedLocations: new Map(),
    missingExternal: { count: 0, bytes: 0, files: new Set() },
  };
  const opsets: Record<string, number> = {};
  for (const o of proto.opsetImport ?? []) {
    const domain = normalizeDomain(o.domain ?? '');
    opsets[domain] = toNum(o.version as IntLike);
  }
  if (!('' in opsets)) {
    throw new HxcError('HXC2107', 'the model imports no version of the default ONNX operator set (opset_import)', {
      where: file,
      hint: 'export the model again; ONNX requires an opset_import for the ai.onnx domain',
    });
  }
  const main: MainGraph = {
    columns: null,
    ...(decoded.nodes ? { lazy: decoded.nodes } : {}),
    ...(decoded.initializers ? { lazyInitializers: decoded.initializers } : {}),
  };
  const converted = convertGraph(ctx, proto.graph, 'graph', main);
  checkDomains(file, converted, opsets, new Set((proto.functions ?? []).map((f) => normalizeDomain(f.domain ?? ''))));
  const graph = dropDeadNodes(file, converted, main, diagnostics);
  if (ctx.missingExternal.count > 0) {
    diagnostics.warn(
      'HXC1101',
      `${ctx.missingExternal.count} initializers (${ctx.missingExternal.bytes} bytes) point into missing external data ` +
        `(${[...ctx.missingExternal.files].sort().join(', ')}): planning works from dims and dtypes, running needs the weights`,
      { where: file },
    );
  }
  return {
    format: 'onnx',
    dir,
    name: proto.graph.name || path.basename(file, path.extname(file)),
    ir_version: proto.irVersion === null || proto.irVersion === undefined ? null : toNum(proto.irVersion as IntLike),
    producer: [proto.producerName, proto.producerVersion].filter((s) => s).join(' '),
    opsets,
    graph,
    functions: (proto.functions ?? []).map((f) => `${normalizeDomain(f.domain ?? '')}:${f.name ?? ''}`),
    annotations: { state: [], moe: [] },
    weights_present: ctx.missingExternal.count === 0,
    ...(decoded.split ? { source_split: decoded.split } : {}),
  };
}

/**
 * What a node without attributes or subgraphs holds: one frozen object and one frozen array for
 * all of them, not an empty one each. Every object alive through planning costs the collector
 * again at each collection (a million small objects held from the start: +3 s on the DeepSeek-V3
 * plan), and most of its 273k nodes have neither.
 */
const NO_ATTRS: Record<string, Attr> = Object.freeze({});
const NO_OUTER_REFS: string[] = Object.freeze([]) as unknown as string[];

/**
 * A node's attributes, one frozen object for every node whose attributes are the same scalars
 * (the DeepSeek-V3 shape: 78k attribute sets, almost all `axis` or `reduction` alone); a set with a
 * list, a tensor or a graph stays the node's own.
 */
function sharedAttrs(ctx: ImportContext, attrs: Record<string, Attr>): Record<string, Attr> {
  let key = '';
  for (const name in attrs) {
    const a = attrs[name]!;
    if (a.type !== 'int' && a.type !== 'float' && a.type !== 'string') return attrs;
    // (Object.is tells -0 from 0, which String does not.)
    key += `${JSON.stringify(name)}:${a.type}:${Object.is(a.value, -0) ? '-0' : typeof a.value === 'string' ? JSON.stringify(a.value) : String(a.value)};`;
  }
  const seen = (ctx.scalarAttrs ??= new Map());
  const known = seen.get(key);
  if (known) return known;
  for (const name in attrs) Object.freeze(attrs[name]);
  seen.set(key, Object.freeze(attrs));
  return attrs;
}

/** The main graph's NodeProtos (or TensorProtos), decoded one at a time as they are converted. */
interface Lazy<T> {
  count: number;
  decode(i: number): T;
}
type LazyNodes = Lazy<OnnxNs.INodeProto>;

/** What converting the main graph (not a subgraph) takes and gives. */
interface MainGraph {
  /** Its nodes, when the ModelProto was not decoded whole. */
  lazy?: LazyNodes;
  /** Its initializers, when they were not decoded with the graph. */
  lazyInitializers?: Lazy<OnnxNs.ITensorProto>;
  /** Filled: its values interned node by node, for its index (GraphIndex). */
  columns: ValueColumns | null;
}

interface DecodedModel {
  /** The ModelProto; with `nodes`, its graph has no nodes (they are in `nodes`), with `initializers`, no initializers. */
  proto: OnnxNs.ModelProto;
  nodes?: LazyNodes;
  initializers?: Lazy<OnnxNs.ITensorProto>;
  /** How it was split, when it was (kept for the lowering: src/lower/programs.ts indexSource). */
  split?: ModelSplit;
}

/**
 * The ModelProto, its main graph's NodeProtos left as byte ranges and decoded one by one while
 * they are converted. Decoded whole, a DeepSeek-V3-shaped file's nodes (275k) are ~850 MB of
 * objects alive together until converted, which the collector copies and promotes (import 3.8 s);
 * decoded one at a time, each dies young (2.6 s). The file's bytes are read the same either way;
 * a file whose graph field comes more than once is decoded whole, as it always was (the last one
 * is the graph). The graph's initializers are decoded one by one too: decoded with the graph, the
 * DeepSeek-V3 shape's 45k TensorProtos (their dims as Longs, their external-data entries: 49 MB)
 * lived through the whole import, promoted and marked, for the few fields convertTensor keeps.
 */
function decodeModel(buffer: Buffer): DecodedModel {
  const split = splitModel(buffer);
  if (!split) return { proto: onnx.ModelProto.decode(buffer) };
  const graph = buffer.subarray(split.graph_start, split.graph_end);
  const { node_starts: starts, node_ends: ends } = split;
  const proto = onnx.ModelProto.decode(split.header);
  const nodes: LazyNodes = rangesDecoded(graph, starts, ends, onnx.NodeProto);
  const rest = split.graph_rest;
  let inits: FieldSplit | null = null;
  try {
    inits = splitField(rest, GRAPH_INITIALIZER);
    proto.graph = onnx.GraphProto.decode(inits.rest);
  } catch {
    inits = null;
  }
  if (!inits || (proto.graph?.initializer?.length ?? 0) > 0) {
    // A corrupt file (fields that do not decode, an initializer field not length-delimited): the
    // graph decoded whole, as it was, for the same graph or the same error.
    proto.graph = onnx.GraphProto.decode(rest);
    return { proto, nodes, split };
  }
  const { starts: initStarts, ends: initEnds } = inits;
  const initializers = rangesDecoded(rest, initStarts, initEnds, onnx.TensorProto);
  return { proto, nodes, initializers, split };
}

/**
 * The messages in `bytes` at [starts[i], ends[i]), each decoded when asked, through one Reader
 * over `bytes` (a Buffer and a Reader per message, made and dropped, were ~0.1 s of the DeepSeek-V3
 * shape's 320k). A message decoded in place may read past its end into the next one, where alone
 * it would have failed at its end: one that does not end at its end, or fails, is decoded alone,
 * for the same message or the same error as before.
 */
function rangesDecoded<T>(
  bytes: Buffer,
  starts: ArrayLike<number>,
  ends: ArrayLike<number>,
  type: { decode(reader: Uint8Array | OnnxReader, length?: number): T },
): Lazy<T> {
  const reader = protobuf.Reader.create(bytes);
  return {
    count: starts.length,
    decode: (i) => {
      const start = starts[i]!;
      const end = ends[i]!;
      try {
        reader.pos = start;
        const message = type.decode(reader, end - start);
        if (reader.pos === end) return message;
      } catch {
        // decoded alone below
      }
      return type.decode(bytes.subarray(start, end));
    },
  };
}

/**
 * Message i of `lazy`. Its bytes are all there (the graph's own length covered them): one that
 * does not decode is itself corrupt, said in one line.
 */
function decodedAt<T>(ctx: ImportContext, lazy: Lazy<T>, i: number, what: string, type: string): T {
  try {
    return lazy.decode(i);
  } catch (err) {
    throw new HxcError(
      'HXC2102',
      `${what} ${i} of the graph does not decode as an ONNX ${type} (protobuf: ${err instanceof Error ? err.message : String(err)})`,
      {
        where: ctx.file,
        hint: 'the file is corrupt: export or copy it again',
      },
    );
  }
}

function normalizeDomain(d: string): string {
  return d === 'ai.onnx' ? '' : d;
}

/** Subgraphs (If/Loop/Scan bodies) nested deeper than this are refused: real models nest a few levels. */
export const MAX_SUBGRAPH_DEPTH = 64;

/**
 * Nodes none of whose results reach a graph output (directly, through other nodes, or read by a
 * subgraph) are left out, as onnxruntime leaves them out of a session (its graph optimizer removes
 * unused nodes before anything runs): a plan would otherwise price work no runtime does, and a
 * program of them would have no output to ask for. ONNX nodes have no side effects. The main
 * graph's nodes keep their NodeProto index (source_index), so the lowering still copies each
 * kept node's bytes. They are found on the graph's index (GraphIndex.of), which, when every node
 * is kept, the tp pass and the variant without splits then read as it is: no name-keyed maps of
 * their own, one index fewer (import, tp and both variants' verify on the DeepSeek-V3 shape: 3.7
 * against 5.1 s, the least of six runs each).
 */
function dropDeadNodes(file: string, graph: Graph, main: MainGraph, diagnostics: Diagnostics): Graph {
  if (graph.outputs.length === 0) return graph; // nothing to reach: the later checks say what is wrong
  const index = GraphIndex.of(graph, null, main.columns);
  refuseDuplicateProducer(graph, index, file);
  const { producerOf, predOffsets, preds } = index;
  const alive = new Uint8Array(index.size);
  const stack: number[] = [];
  for (const v of graph.outputs) {
    const id = index.valueIds.get(v.name);
    if (id !== undefined && producerOf[id] !== -1) stack.push(producerOf[id]!);
  }
  while (stack.length > 0) {
    const p = stack.pop()!;
    if (alive[p]) continue;
    alive[p] = 1;
    for (let e = predOffsets[p]!; e < predOffsets[p + 1]!; e++) if (!alive[preds[e]!]) stack.push(preds[e]!);
  }
  if (!alive.includes(0)) return graph;
  const dead = graph.nodes.filter((_, i) => !alive[i]);
  // A new graph: the index stays with the one it was built for. Weights only dead nodes read go too
  // (as onnxruntime drops an initializer nothing reads): the parameters counted are the ones planned.
  const nodes = graph.nodes.filter((_, i) => alive[i]);
  const read = new Set<string>(graph.outputs.map((o) => o.name));
  for (const n of nodes) {
    for (const v of n.inputs) if (v) read.add(v);
    for (const v of n.outer_refs) read.add(v);
  }
  const initializers = new Map([...graph.initializers].filter(([name]) => read.has(name)));
  const live = { ...graph, nodes, initializers };
  GraphIndex.derive(live, graph);
  diagnostics.warn('HXC1108', `${dead.length} node(s) compute values nothing reads (e.g. ${dead[0]!.op} "${dead[0]!.name}"): left out of the plan`, {
    where: file,
  });
  return live;
}

function convertGraph(ctx: ImportContext, g: OnnxNs.IGraphProto, where: string, main?: MainGraph): Graph {
  ctx.depth = (ctx.depth ?? 0) + 1;
  try {
    if (ctx.depth > MAX_SUBGRAPH_DEPTH) {
      const top = where.split(' attribute ')[0];
      throw new HxcError('HXC2107', `subgraphs are nested more than ${MAX_SUBGRAPH_DEPTH} deep`, {
        where: `${ctx.file}: ${top}`,
        hint: 'flatten the control flow, or export the model again',
      });
    }
    return convertGraphAt(ctx, g, where, main);
  } finally {
    ctx.depth!--;
  }
}

function convertGraphAt(ctx: ImportContext, g: OnnxNs.IGraphProto, where: string, main?: MainGraph): Graph {
  const graph = newGraph(g.name ?? '');
  const lazyInits = main?.lazyInitializers;
  const protoInits = g.initializer ?? [];
  const initCount = lazyInits ? lazyInits.count : protoInits.length;
  for (let i = 0; i < initCount; i++) {
    const t = lazyInits ? decodedAt(ctx, lazyInits, i, 'initializer', 'TensorProto') : protoInits[i]!;
    const tensor = convertTensor(ctx, t, `${where}.initializer "${t.name ?? ''}"`);
    graph.initializers.set(tensor.name, tensor);
    graph.declared.set(tensor.name, { dtype: tensor.dtype, shape: tensor.dims.slice() });
  }
  for (const s of g.sparseInitializer ?? []) {
    // Sparse initializers: sized as their dense shape (that is what the graph computes with).
    const values = s.values ? convertTensor(ctx, s.values, `${where}.sparse_initializer`) : null;
    if (!values) continue;
    const dims = (s.dims ?? []).map((d) => toNum(d as IntLike));
    const tensor: TensorData = {
      name: values.name,
      dtype: values.dtype,
      dims,
      byte_size: byteSizeOf(
        values.dtype,
        dims.reduce((a, b) => a * b, 1),
      ),
      location: values.location,
    };
    graph.initializers.set(tensor.name, tensor);
    graph.declared.set(tensor.name, { dtype: tensor.dtype, shape: dims.slice() });
  }
  const info = (v: OnnxNs.IValueInfoProto): ValueInfo => ({ name: v.name ?? '', type: convertType(v.type, `${ctx.file}: ${where} value "${v.name ?? ''}"`) });
  graph.inputs = (g.input ?? []).map(info);
  graph.outputs = (g.output ?? []).map(info);
  for (const v of [...(g.valueInfo ?? []).map(info), ...graph.inputs, ...graph.outputs]) {
    if (v.type) graph.declared.set(v.name, v.type);
  }
  const lazy = main?.lazy;
  const protoNodes = g.node ?? [];
  const count = lazy ? lazy.count : protoNodes.length;
  const columns = main ? (main.columns = new ValueColumns(graph, count)) : null;
  // Node names, each node's id its index (each node adds one name). Not kept for the index:
  // nothing on an ONNX model's way asks for nodes by name (GraphIndex.nodeByName makes its map if asked).
  const used = new StringIds(count);
  // One string per op type, not the copy each NodeProto decoded (275k on the DeepSeek-V3 shape).
  const ops = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const p = lazy ? decodedAt(ctx, lazy, i, 'node', 'NodeProto') : protoNodes[i]!;
    let op = ops.get(p.opType ?? '');
    if (op === undefined) {
      op = p.opType ?? '';
      ops.set(op, op);
    }
    let name = p.name || `${op}_${i}`;
    if (used.intern(name) !== graph.nodes.length) {
      // Taken by an earlier node: the first free `name__k`.
      let k = 2;
      while (used.get(`${name}__${k}`) !== undefined) k++;
      name = `${name}__${k}`;
      used.intern(name);
    }
    let attrs: Record<string, Attr> = NO_ATTRS;
    const protoAttrs = p.attribute;
    if (protoAttrs && protoAttrs.length > 0) {
      // (Named for its attributes only: a string per node made for nothing on most.)
      const nodeWhere = `${where}.node "${name}" (${op})`;
      for (const a of protoAttrs) {
        const attr = convertAttr(ctx, a, nodeWhere);
        if (attr) (attrs === NO_ATTRS ? (attrs = {}) : attrs)[a.name ?? ''] = attr;
      }
      if (attrs !== NO_ATTRS) attrs = sharedAttrs(ctx, attrs);
    }
    const domain = normalizeDomain(p.domain ?? '');
    const inputs = (p.input ?? []).slice();
    const outputs = (p.output ?? []).slice();
    // The main graph's nodes: their NodeProto's index, which a transform's rebuilt graph keeps.
    // (Two literals, not a spread of `{ source_index }`: an object made and copied per node.)
    const node: Node = main
      ? { name, op, domain, inputs, outputs, attrs, outer_refs: NO_OUTER_REFS, source_index: i }
      : { name, op, domain, inputs, outputs, attrs, outer_refs: NO_OUTER_REFS };
    const subs = subgraphsOf(node);
    if (subs.length > 0) {
      const refs = new Set<string>();
      for (const s of subs) for (const f of freeNames(s)) refs.add(f);
      node.outer_refs = [...refs].sort();
    }
    columns?.add(node);
    graph.nodes.push(node);
  }
  if (main && graph.nodes.length === 0 && graph.outputs.length === 0) {
    throw new HxcError('HXC2107', 'the ONNX graph has no nodes and no outputs', {
      where: ctx.file,
      hint: 'check that this is the exported model, not an empty placeholder',
    });
  }
  return graph;
}

/** Every node's domain is one the model imports (or defines functions in); subgraphs included. */
function checkDomains(file: string, graph: Graph, opsets: Record<string, number>, functionDomains: Set<string>): void {
  // (A counted loop: run once, this for-of stayed unoptimised and made an iterator result per node, 10 MB, sampled.)
  for (let i = 0; i < graph.nodes.length; i++) {
    const n = graph.nodes[i]!;
    const d = normalizeDomain(n.domain);
    if (!(d in opsets) && !functionDomains.has(d)) {
      throw new HxcError('HXC2107', `node "${n.name}" uses domain "${n.domain}", which the model does not import`, {
        where: file,
        hint: `add an opset_import for "${n.domain}", or export the model again`,
      });
    }
    const subs = subgraphsOf(n);
    for (let s = 0; s < subs.length; s++) checkDomains(file, subs[s]!, opsets, functionDomains);
  }
}

function convertType(t: OnnxNs.ITypeProto | null | undefined, where?: string): TensorType | null {
  const tt = t?.tensorType;
  if (!tt) return null;
  const dtype = dtypeFromOnnx(tt.elemType ?? 0);
  if (!dtype) return null;
  if (!tt.shape) return { dtype, shape: null };
  const shape: Dim[] = (tt.shape.dim ?? []).map((d) => {
    if (d.dimParam) return d.dimParam;
    if (d.dimValue !== null && d.dimValue !== undefined && (typeof d.dimValue === 'number' || 'low' in (d.dimValue as object))) {
      const v = toNum(d.dimValue as IntLike);
      // ONNX: dim_value is a non-negative size; a negative one is a corrupt or hand-broken model.
      if (!(v >= 0))
        throw new HxcError('HXC2107', `a tensor dim is ${v}`, {
          ...(where ? { where } : {}),
          hint: 'export the model again; dims are sizes ≥ 0 or named symbols',
        });
      if (v > MAX_DIM)
        throw new HxcError('HXC2107', `a tensor dim is ${v}, more than the ${MAX_DIM} hxc accepts`, {
          ...(where ? { where } : {}),
          hint: 'export the model again with a symbolic dim (bind it with --dim) or real sizes',
        });
      return v;
    }
    return '?';
  });
  return { dtype, shape };
}

function convertAttr(ctx: ImportContext, a: OnnxNs.IAttributeProto, where: string): Attr | null {
  const T = onnx.AttributeProto.AttributeType;
  const text = (b: Uint8Array | string | null | undefined): string =>
    typeof b === 'string' ? b : b ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8') : '';
  if (a.refAttrName) return { type: 'ref', value: a.refAttrName };
  const at = `${where} attribute "${a.name ?? ''}"`;
  switch (a.type) {
    case T.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case T.INT:
      return { type: 'int', value: toNum(a.i as IntLike) };
    case T.STRING:
      return { type: 'string', value: text(a.s) };
    case T.FLOATS:
      return { type: 'floats', value: (a.floats ?? []).slice() };
    case T.INTS:
      return { type: 'ints', value: (a.ints ?? []).map((x) => toNum(x as IntLike)) };
    case T.STRINGS:
      return { type: 'strings', value: (a.strings ?? []).map(text) };
    case T.TENSOR:
      return a.t ? { type: 'tensor', value: convertTensor(ctx, a.t, at) } : null;
    case T.TENSORS:
      return { type: 'tensors', value: (a.tensors ?? []).map((t) => convertTensor(ctx, t, at)) };
    case T.GRAPH:
      return a.g ? { type: 'graph', value: convertGraph(ctx, a.g, `${at}`) } : null;
    case T.GRAPHS:
      return { type: 'graphs', value: (a.graphs ?? []).map((g) => convertGraph(ctx, g, at)) };
    case T.SPARSE_TENSOR:
      return a.sparseTensor?.values ? { type: 'tensor', value: convertTensor(ctx, a.sparseTensor.values, at) } : null;
    case T.TYPE_PROTO:
      return { type: 'type', value: convertType(a.tp) };
    default:
      // IR < 3 files may leave `type` unset: infer it from the field that holds a value.
      if (a.g) return { type: 'graph', value: convertGraph(ctx, a.g, at) };
      if (a.t) return { type: 'tensor', value: convertTensor(ctx, a.t, at) };
      if (a.ints?.length) return { type: 'ints', value: a.ints.map((x) => toNum(x as IntLike)) };
      if (a.floats?.length) return { type: 'floats', value: a.floats.slice() };
      if (a.s?.length) return { type: 'string', value: text(a.s) };
      if (a.i !== null && a.i !== undefined && toNum(a.i as IntLike) !== 0) return { type: 'int', value: toNum(a.i as IntLike) };
      return { type: 'float', value: a.f ?? 0 };
  }
}
