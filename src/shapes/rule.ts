// What an operator's shape rule sees (OpCall) and returns (Out), plus the shape helpers rules
// share: ONNX multidirectional broadcasting, axis normalisation, attribute readers. A rule throws
// InferError when it cannot decide (an input of unknown rank, a malformed node); the driver then
// falls back to the declared value_info type.

import type { DType } from '../ir/dtype.js';
import type { Dim, Node, Shape, TensorType } from '../ir/graph.js';
import { dimAdd, dimSign } from './symbolic.js';

/** A value a rule computed: its type, and for small integer/float tensors the folded elements. */
export interface Out {
  dtype: DType;
  shape: Shape | null;
  /** Row-major elements when known (only with a fully numeric shape); ints may be symbolic. */
  value?: Dim[];
}

export interface OpCall {
  readonly node: Node;
  /** Opset of the node's domain (ai.onnx for '' nodes); 0 when the model does not say. */
  readonly opset: number;
  /** True when input slot i names a value (ONNX marks omitted optional inputs with ''). */
  has(i: number): boolean;
  type(i: number): TensorType | undefined;
  /** dtype of input i; throws InferError when the input is omitted or untyped. */
  dtype(i: number): DType;
  /** Shape of input i; throws InferError when omitted, of unknown rank, or of rank < minRank. */
  shape(i: number, minRank?: number): Shape;
  shapeOrNull(i: number): Shape | null;
  /** Folded elements of input i, when known. */
  value(i: number): Dim[] | undefined;
  /** Folded elements of input i when they are all numbers. */
  ints(i: number): number[] | undefined;
  attrInt(name: string, fallback: number): number;
  attrIntOpt(name: string): number | undefined;
  attrInts(name: string): number[] | undefined;
  attrFloat(name: string, fallback: number): number;
  attrFloats(name: string): number[] | undefined;
  attrString(name: string, fallback: string): string;
  /** A deterministic fresh symbol owned by this node (`nz_<node>` for tag `nz`). */
  fresh(tag: string): string;
  /** An observation for the analysis (an assumption made, a fallback taken). */
  note(message: string): void;
}

export type Rule = (call: OpCall) => (Out | undefined)[];

export class InferError extends Error {}

export function fail(message: string): never {
  throw new InferError(message);
}

/** The node breaks the ONNX spec with numbers known for sure (a perm out of range, a reshape that cannot hold): the model is invalid. */
export class InvalidNode extends Error {}

export function invalid(message: string): never {
  throw new InvalidNode(message);
}

/** Axis in [0, rank), from an ONNX axis that may count from the end. */
export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < rank)) fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/**
 * One dim of a multidirectional broadcast (ONNX "Broadcasting in ONNX"): equal dims stay, a 1
 * stretches. A number other than 1 against a symbol wins (the symbol must equal it or be 1); two
 * different symbols cannot be decided statically and the first is kept (they must be equal or 1).
 */
export function broadcastDim(a: Dim, b: Dim): Dim {
  if (a === b) return a;
  if (a === 1) return b;
  if (b === 1) return a;
  if (typeof a === 'number' && typeof b === 'number') fail(`dims ${a} and ${b} do not broadcast`);
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return a;
}

export function broadcastShapes(shapes: readonly Shape[]): Shape {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: Dim[] = new Array(rank).fill(1);
  for (const s of shapes) {
    const off = rank - s.length;
    for (let i = 0; i < s.length; i++) out[off + i] = broadcastDim(out[off + i]!, s[i]!);
  }
  return out;
}

// (Counted loops in these two, called per node: their for-ofs made iterator results where the
// caller was not optimised, 9–20 MB a run, sampled.)

/** Elements of a shape when every dim is a number. */
export function numericShape(shape: Shape | null | undefined): number[] | undefined {
  if (!shape) return undefined;
  for (let k = 0; k < shape.length; k++) if (typeof shape[k] !== 'number') return undefined;
  return shape as number[];
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (let k = 0; k < shape.length; k++) n *= shape[k]!;
  return n;
}

/** Output 0 with the type of input i (element-wise unary ops, normalisations, RoPE, ...). */
export function sameAs(c: OpCall, i = 0): Out {
  return { dtype: c.dtype(i), shape: c.shapeOrNull(i) };
}

/** Clamps a Slice/Pad-style index into [0, dim] (ONNX Slice: negative counts from the end). */
export function clampIndex(index: Dim, dim: Dim, lower: number, upperOffset: number): Dim {
  // Numbers near ±2^63 are "to the end" sentinels; JS loses their low bits but not their size.
  if (typeof index === 'number' && Math.abs(index) >= 2 ** 31) return index > 0 ? addOffset(dim, upperOffset) : lower;
  if (typeof index === 'number' && typeof dim === 'number') {
    const i = index < 0 ? index + dim : index;
    return Math.min(Math.max(i, lower), dim + upperOffset);
  }
  if (typeof index === 'number' && index < 0) return dimAdd(dim, index);
  // `-seq` (every coefficient negative) counts from the end like a negative number.
  const s = dimSign(index);
  if (s === 'neg' || s === 'nonpos') return dimAdd(dim, index);
  // A symbolic index inside a fixed-size buffer (a causal mask sliced to the key length) is
  // assumed in range: exporters slice by the current length, which never exceeds the buffer.
  return index;
}

function addOffset(dim: Dim, off: number): Dim {
  return off === 0 ? dim : dimAdd(dim, off);
}
