// Lowering a plan to ONNX programs onnxruntime can load: one program per compute step (a device
// must stop between steps to exchange tensors with its peers, so one session per step), cut from
// the source model's own NodeProtos — attributes and nested subgraphs travel unchanged — with the
// initializers it reads (inline bytes copied; external data kept as a reference into the source
// model's weights file), the Constant nodes of other steps that it reads duplicated (they are
// weights, never transferred), and typed graph inputs/outputs for the values crossing its boundary.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { onnx as OnnxNs } from 'onnx-proto';
import { HxcError } from '../diag/diagnostics.js';
import { VERSION } from '../version.js';
import { dtypeToOnnx } from '../ir/dtype.js';
import type { GraphIndex } from '../ir/algorithms.js';
import type { Model, ModelSplit, TensorData, TensorType } from '../ir/graph.js';
import { sha256 } from '../util/hash.js';
import {
  GRAPH_INPUT,
  GRAPH_NODE,
  GRAPH_OUTPUT,
  LENGTH_DELIMITED,
  MODEL_GRAPH,
  splitField,
  splitGraph,
  varintBytes,
  writeVarint,
} from '../import/onnx-fields.js';

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto') as { onnx: typeof OnnxNs };

export interface ProgramSpec {
  /** File name inside the plan directory. */
  file: string;
  /** Node indices in execution order. */
  nodes: number[];
}

/** A program as lowered: its bytes are put together only when written (LoweredPrograms.write). */
export interface LoweredProgram {
  file: string;
  /** Its size in bytes. */
  size: number;
  inputs: string[];
  outputs: string[];
}

export interface LoweredPrograms {
  programs: LoweredProgram[];
  /**
   * Writes programs `ks` (indices into `programs`) one after another to `sink`, in chunks of a
   * buffer reused from one call to the next (each chunk is valid only during the call, as with
   * writeJson), telling `hashed` each program's sha256.
   */
  write(ks: readonly number[], sink: (bytes: Uint8Array) => void, hashed: (k: number, sha256: string) => void): void;
}

/**
 * The source model, read for lowering without decoding it whole: the model's header fields and
 * initializers decoded, each NodeProto found by its byte range and decoded when a program takes
 * it. Decoding a DeepSeek-V3-shaped file (275k nodes) at once costs ~850 MB of JavaScript
 * objects; the ranges cost two numbers per node.
 */
export interface SourceModel {
  irVersion: OnnxNs.IModelProto['irVersion'];
  opsetImport: OnnxNs.IOperatorSetIdProto[];
  functions: OnnxNs.IFunctionProto[];
  graphName: string;
  nodeCount: number;
  /** Node i's NodeProto bytes as the file holds them (a view, not a copy). */
  nodeBytes(i: number): Uint8Array;
  /** The graph's initializers by name (a name given twice: the later one). */
  initializers: ReadonlyMap<string, OnnxNs.ITensorProto>;
}

/** The source model of `model`: the bytes imported (as the import split them), or the file read again (checking it is the file that was planned). */
export function decodeSource(model: Model): SourceModel {
  if (model.source) return indexSource(model.source, model.source_split);
  const buf = fs.readFileSync(model.path);
  const sha = sha256(buf);
  if (sha !== model.sha256) {
    throw new HxcError('HXC2001', 'the model file changed while it was being planned', { where: model.path, hint: 'plan again' });
  }
  return indexSource(buf, model.source_split);
}

/** `buf` indexed: `split` is how the import split these same bytes (splitModel's), when it did. */
export function indexSource(buf: Uint8Array, split?: ModelSplit): SourceModel {
  // The header is every top-level field but the graph; the graph's nodes stay byte ranges. (A file
  // whose graph field comes more than once, which the import did not split: the last is the graph.)
  if (!split) {
    const top = splitField(buf, MODEL_GRAPH);
    split = splitGraph(buf, top, top.starts.length - 1);
  }
  const head = onnx.ModelProto.decode(split.header);
  const graph = buf.subarray(split.graph_start, split.graph_end);
  const rest = onnx.GraphProto.decode(split.graph_rest);
  const inits = new Map<string, OnnxNs.ITensorProto>();
  for (const t of rest.initializer) inits.set(t.name ?? '', t);
  const { node_starts: nodeStart, node_ends: nodeEnd } = split;
  return {
    irVersion: head.irVersion,
    opsetImport: head.opsetImport ?? [],
    functions: head.functions ?? [],
    graphName: rest.name ?? '',
    nodeCount: nodeStart.length,
    nodeBytes: (i) => graph.subarray(nodeStart[i]!, nodeEnd[i]!),
    initializers: inits,
  };
}

/**
 * A boundary value's type. Programs must serve every phase (prefill, then decode with other
 * sequence lengths), so shapes are not the bound ones: the source model's own declaration when it
 * has one (symbolic dims kept), else the inferred rank with every dim left dynamic.
 */
function valueInfo(name: string, inferred: TensorType | undefined, declared: TensorType | undefined): OnnxNs.IValueInfoProto {
  const t = declared ?? inferred;
  if (!t) return { name };
  const tensorType: OnnxNs.TypeProto.ITensor = { elemType: dtypeToOnnx(t.dtype) };
  if (declared?.shape) tensorType.shape = { dim: declared.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  else if (inferred?.shape) tensorType.shape = { dim: inferred.shape.map(() => ({})) };
  return { name, type: { tensorType } };
}

/**
 * Build the programs. `typeOf` gives every value's type by its id in `index` (the shapes pass);
 * `relocate` rewrites an external-data location (relative to the source model's folder) for the
 * program's folder.
 */
export function buildPrograms(
  model: Model,
  index: GraphIndex,
  source: SourceModel,
  specs: ProgramSpec[],
  typeOf: (id: number) => TensorType | undefined,
  relocate: (location: string) => string,
  probes: ReadonlySet<string> = new Set(),
): LoweredPrograms {
  const g = model.graph;
  const values = index.valueNames.length;
  const flag = (names: Iterable<string>): Uint8Array => {
    const out = new Uint8Array(values);
    for (const v of names) {
      const id = index.valueIds.get(v);
      if (id !== undefined) out[id] = 1;
    }
    return out;
  };
  const graphOutput = flag(g.outputs.map((o) => o.name));
  const graphInput = flag(g.inputs.map((i) => i.name));
  const probe = flag(probes);
  const constantOf = new Int32Array(values).fill(-1); // value id → Constant node index producing it
  g.nodes.forEach((n, i) => {
    if (n.op === 'Constant' && n.domain === '') for (const id of index.outputsOf(i)) if (id >= 0) constantOf[id] = i;
  });
  // A node's NodeProto bytes: the source's own, copied as the file holds them (attributes and
  // subgraphs unchanged), or written from the IR for a node a transform made (tensor-parallel parts
  // and their Concat), once: they are asked for again when the program is written.
  const madeBytes = new Map<number, Uint8Array>();
  const nodeBytes = (i: number): Uint8Array => {
    const n = g.nodes[i]!;
    if (n.source_index === undefined) return source.nodeBytes(i);
    if (n.source_index !== null) return source.nodeBytes(n.source_index);
    let made = madeBytes.get(i);
    if (made === undefined) madeBytes.set(i, (made = madeNodeBytes(i)));
    return made;
  };
  const madeNodeBytes = (i: number): Uint8Array => {
    const n = g.nodes[i]!;
    const attribute: OnnxNs.IAttributeProto[] = Object.entries(n.attrs).map(([name, a]) => {
      const T = onnx.AttributeProto.AttributeType;
      if (a.type === 'int') return { name, type: T.INT, i: a.value };
      if (a.type === 'ints') return { name, type: T.INTS, ints: a.value };
      if (a.type === 'float') return { name, type: T.FLOAT, f: a.value };
      if (a.type === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(a.value) };
      throw new Error(`cannot write attribute ${name} of made node ${n.name}`);
    });
    return onnx.NodeProto.encode({ name: n.name, opType: n.op, domain: n.domain, input: n.inputs, output: n.outputs, attribute }).finish();
  };
  // ModelProto's fields before its graph (7) and after it: the same in every program, encoded once.
  const before = onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: source.irVersion, producerName: 'hxc', producerVersion: VERSION })).finish();
  const after = onnx.ModelProto.encode(onnx.ModelProto.create({ opsetImport: source.opsetImport, functions: source.functions })).finish();
  const programOf = new Int32Array(g.nodes.length).fill(-1);
  specs.forEach((s, k) => s.nodes.forEach((i) => (programOf[i] = k)));
  // Per value id: which program produced it / has already taken it as input (stamps, no string sets).
  const producedIn = new Int32Array(values).fill(-1);
  const seenIn = new Int32Array(values).fill(-1);
  const pulledIn = new Int32Array(g.nodes.length).fill(-1);
  // Per value id: the initializer it names (the source's own, else one a transform made), found
  // by name once per initializer, not once per read; and its ValueInfoProto's bytes, encoded once
  // (a boundary value is an output of one program and an input of others: 63k values for 154k
  // inputs and outputs on the DeepSeek-V3 shape).
  const initializerOf: (OnnxNs.ITensorProto | undefined)[] = new Array(values);
  for (const [v, t] of source.initializers) {
    const id = index.valueIds.get(v);
    if (id !== undefined) initializerOf[id] = t;
  }
  for (const [v, t] of g.initializers) {
    const id = index.valueIds.get(v);
    if (id !== undefined) initializerOf[id] ??= synthesizedTensor(t);
  }
  const infoBytes: (Uint8Array | undefined)[] = new Array(values);
  const info = (id: number): Uint8Array => {
    const v = index.valueNames[id]!;
    return (infoBytes[id] ??= onnx.ValueInfoProto.encode(valueInfo(v, typeOf(id), g.declared.get(v))).finish());
  };
  // (The index's CSR arrays read in place: a view per node and per value was 93 MB over the
  // DeepSeek-V3 plan's 29,662 programs.)
  const { inputOffsets, inputIds: nodeInputIds, outputOffsets, outputIds: nodeOutputIds, consumerOffsets, consumerList } = index;
  // Per program, what its bytes are made of: its nodes (the Constants it pulls in, then its own),
  // and the graph's fields after them.
  const nodeLists: Int32Array[] = [];
  const graphRests: Uint8Array[] = [];
  const graphSizes: number[] = [];
  const programs = specs.map((spec, k): LoweredProgram => {
    for (const i of spec.nodes) for (let e = outputOffsets[i]!; e < outputOffsets[i + 1]!; e++) if (nodeOutputIds[e]! >= 0) producedIn[nodeOutputIds[e]!] = k;
    const initializers: OnnxNs.ITensorProto[] = [];
    const inputs: string[] = [];
    const inputIds: number[] = [];
    const pulledConstants: number[] = [];
    const read = (id: number): void => {
      if (producedIn[id] === k || seenIn[id] === k) return;
      seenIn[id] = k;
      const init = initializerOf[id];
      const c = constantOf[id]!;
      if (init && !graphInput[id]) initializers.push(relocated(init, relocate));
      else if (c >= 0 && programOf[c] !== k) {
        if (pulledIn[c] !== k) pulledConstants.push(c);
        pulledIn[c] = k;
      } else {
        inputs.push(index.valueNames[id]!);
        inputIds.push(id);
      }
    };
    // A node's reads in readsOf's order: its inputs, then the outer values its subgraphs use.
    for (const i of spec.nodes) {
      for (let e = inputOffsets[i]!; e < inputOffsets[i + 1]!; e++) if (nodeInputIds[e]! >= 0) read(nodeInputIds[e]!);
      for (const v of g.nodes[i]!.outer_refs) read(index.valueIds.get(v)!);
    }
    pulledConstants.sort((a, b) => a - b);
    const nodeList = new Int32Array(pulledConstants.length + spec.nodes.length);
    nodeList.set(pulledConstants);
    nodeList.set(spec.nodes, pulledConstants.length);
    const outputs: string[] = [];
    const outputIds: number[] = [];
    for (const i of spec.nodes) {
      for (let e = outputOffsets[i]!; e < outputOffsets[i + 1]!; e++) {
        const id = nodeOutputIds[e]!;
        if (id < 0) continue;
        let readElsewhere = false;
        for (let j = consumerOffsets[id]!; j < consumerOffsets[id + 1]!; j++)
          if (programOf[consumerList[j]!] !== k) {
            readElsewhere = true;
            break;
          }
        // A Constant's value is a weight: other programs carry their own copy of the node.
        // Probes (the per-expert NonZero counts hxc run measures) are outputs too.
        if (graphOutput[id] || probe[id] || (readElsewhere && constantOf[id]! < 0)) {
          outputs.push(index.valueNames[id]!);
          outputIds.push(id);
        }
      }
    }
    // The graph's fields after its nodes, in GraphProto.encode's order: name, initializers, then
    // inputs (11) and outputs (12) as their encoded ValueInfoProtos.
    const rest = onnx.GraphProto.encode({ name: `${source.graphName || 'graph'}:${path.basename(spec.file, '.onnx')}`, initializer: initializers });
    for (const id of inputIds) rest.uint32((GRAPH_INPUT << 3) | LENGTH_DELIMITED).bytes(info(id));
    for (const id of outputIds) rest.uint32((GRAPH_OUTPUT << 3) | LENGTH_DELIMITED).bytes(info(id));
    const graphRest = rest.finish();
    // GraphProto's bytes: each node as a field 1 record, then the fields after them.
    let graphBytes = graphRest.length;
    for (const i of nodeList) {
      const n = nodeBytes(i).length;
      graphBytes += 1 + varintBytes(n) + n;
    }
    nodeLists.push(nodeList);
    graphRests.push(graphRest);
    graphSizes.push(graphBytes);
    return { file: spec.file, size: before.length + 1 + varintBytes(graphBytes) + graphBytes + after.length, inputs, outputs };
  });
  // The program's bytes, in the field order ModelProto.encode writes: the model's fields before
  // its graph, the graph — its nodes (GraphProto field 1) as the source holds them, then its
  // other fields — and the model's fields after it. Put together here, the same bytes a protobufjs
  // writer made, without its three records per node (tag, length, bytes) and its copy.
  const put = (k: number, bytes: Uint8Array, at: number): void => {
    const graphRest = graphRests[k]!;
    bytes.set(before, at);
    at += before.length;
    bytes[at++] = (MODEL_GRAPH << 3) | LENGTH_DELIMITED;
    at = writeVarint(bytes, at, graphSizes[k]!);
    for (const i of nodeLists[k]!) {
      const node = nodeBytes(i);
      bytes[at++] = (GRAPH_NODE << 3) | LENGTH_DELIMITED;
      at = writeVarint(bytes, at, node.length);
      bytes.set(node, at);
      at += node.length;
    }
    bytes.set(graphRest, at);
    bytes.set(after, at + graphRest.length);
  };
  // Written through one buffer, not kept until the plan is written: the 71 MB of the DeepSeek-V3
  // plan's 29,662 programs, held, were fresh memory (~12 µs a 4 KiB page on this machine) and
  // external memory that set off one more full collection of the heap.
  let buffer = Buffer.allocUnsafeSlow(0);
  return {
    programs,
    write(ks, sink, hashed) {
      if (buffer.length === 0) buffer = Buffer.allocUnsafeSlow(WRITE_BUFFER_BYTES);
      let used = 0;
      for (const k of ks) {
        const size = programs[k]!.size;
        if (used + size > buffer.length && used > 0) {
          sink(buffer.subarray(0, used));
          used = 0;
        }
        // A program larger than the buffer gets a buffer of its own.
        const into = size > buffer.length ? Buffer.allocUnsafe(size) : buffer;
        const at = into === buffer ? used : 0;
        put(k, into, at);
        const bytes = into.subarray(at, at + size);
        hashed(k, sha256(bytes));
        if (into === buffer) used += size;
        else sink(bytes);
      }
      if (used > 0) sink(buffer.subarray(0, used));
    },
  };
}

/** Programs are put together in a buffer of this size (one larger gets its own) and written from it. */
const WRITE_BUFFER_BYTES = 1 << 22;

/** An initializer a transform made (a weight block): written inline from the IR's bytes. */
function synthesizedTensor(t: TensorData | undefined): OnnxNs.ITensorProto | undefined {
  if (t?.location.kind !== 'inline') return undefined;
  return { name: t.name, dataType: dtypeToOnnx(t.dtype), dims: t.dims, rawData: t.location.data };
}

function relocated(t: OnnxNs.ITensorProto, relocate: (location: string) => string): OnnxNs.ITensorProto {
  if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return t;
  return { ...t, externalData: (t.externalData ?? []).map((e) => (e.key === 'location' ? { key: 'location', value: relocate(e.value ?? '') } : e)) };
}
