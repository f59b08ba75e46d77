// A protobuf message split by one of its fields without decoding it: that field's payloads as byte
// ranges, every other field's bytes kept as they are (a message of the same type without that
// field). The import decodes an ONNX graph's NodeProtos one at a time with it, and the lowering
// copies them by their byte ranges (and writes programs with the same protobufjs).

import { createRequire } from 'node:module';
import type { ModelSplit } from '../ir/graph.js';

const require = createRequire(import.meta.url);
// onnx-proto's own protobufjs (it carries its own copy): its decoders accept only its Reader.
export const protobuf = createRequire(require.resolve('onnx-proto'))('protobufjs/minimal') as typeof import('protobufjs/minimal.js');

/** Field numbers of onnx.proto: ModelProto.graph = 7; GraphProto.node = 1, .initializer = 5, .input = 11, .output = 12 (each a tag of one byte). */
export const MODEL_GRAPH = 7;
export const GRAPH_NODE = 1;
export const GRAPH_INITIALIZER = 5;
export const GRAPH_INPUT = 11;
export const GRAPH_OUTPUT = 12;
/** Wire type of a length-delimited field (bytes, strings, messages). */
export const LENGTH_DELIMITED = 2;

export interface FieldSplit {
  /** Payload byte ranges of the field's occurrences (length-delimited ones), in order. */
  starts: number[];
  ends: number[];
  /** The other fields' bytes, in order. */
  rest: Buffer;
}

/** Splits `buf` by `field` (protobufjs's Reader: a cut-short message throws "index out of range"). */
export function splitField(buf: Uint8Array, field: number): FieldSplit {
  const r = protobuf.Reader.create(buf);
  const starts: number[] = [];
  const ends: number[] = [];
  const rest: Uint8Array[] = [];
  while (r.pos < r.len) {
    const at = r.pos;
    const tag = r.uint32();
    if (tag >>> 3 === field && (tag & 7) === LENGTH_DELIMITED) {
      const len = r.uint32();
      starts.push(r.pos);
      ends.push(r.pos + len);
      r.skip(len);
    } else {
      r.skipType(tag & 7);
      rest.push(buf.subarray(at, r.pos));
    }
  }
  return { starts, ends, rest: Buffer.concat(rest) };
}

/** `buf` (a ModelProto) split by its graph and the graph by its nodes; null when the graph field is not there once. */
export function splitModel(buf: Uint8Array): ModelSplit | null {
  const top = splitField(buf, MODEL_GRAPH);
  return top.starts.length === 1 ? splitGraph(buf, top, 0) : null;
}

/**
 * `buf` (a ModelProto, `top` its split by the graph field) split as splitModel splits it, its graph
 * the k-th graph field (none when k < 0: no nodes).
 */
export function splitGraph(buf: Uint8Array, top: FieldSplit, k: number): ModelSplit {
  const [graph_start, graph_end] = k >= 0 ? [top.starts[k]!, top.ends[k]!] : [0, 0];
  const nodes = splitField(buf.subarray(graph_start, graph_end), GRAPH_NODE);
  return {
    header: top.rest,
    graph_start,
    graph_end,
    node_starts: Float64Array.from(nodes.starts),
    node_ends: Float64Array.from(nodes.ends),
    graph_rest: nodes.rest,
  };
}

/** The bytes of `n` (an unsigned 32-bit length) as a varint, as protobufjs's Writer.uint32 writes it. */
export function varintBytes(n: number): number {
  return n < 1 << 7 ? 1 : n < 1 << 14 ? 2 : n < 1 << 21 ? 3 : n < 1 << 28 ? 4 : 5;
}

/** Writes `n` as a varint into `buf` at `at` (7 bits a byte, low first, as Writer.uint32): where the next byte goes. */
export function writeVarint(buf: Uint8Array, at: number, n: number): number {
  while (n > 127) {
    buf[at++] = (n & 127) | 128;
    n >>>= 7;
  }
  buf[at++] = n;
  return at;
}
