// Constant folding of small tensors, enough to follow exporters' shape arithmetic
// (Shape → Gather → Unsqueeze → Concat → Reshape, Range, Where(Equal(shape, -1), ...)). Elements
// are numbers or symbolic dims; only tensors of at most MAX_FOLD_ELEMENTS elements with a fully
// numeric shape are tracked. Initializer bytes are read little-endian from the model's buffer.

import type { DType } from '../ir/dtype.js';
import type { Dim, TensorData } from '../ir/graph.js';
import { dimAdd, dimDivExact, dimFloorDiv, dimMul, dimSign, dimSub, polyOf } from './symbolic.js';
import { elementCount } from './rule.js';

/** Largest tensor whose elements are tracked: shape vectors, scalars, small index tensors. */
export const MAX_FOLD_ELEMENTS = 1024;

export type ValueKind = 'int' | 'float' | 'bool' | 'other';

export function valueKind(dtype: DType): ValueKind {
  if (dtype === 'bool') return 'bool';
  if (dtype.startsWith('int') || dtype.startsWith('uint')) return dtype === 'int4' || dtype === 'uint4' ? 'other' : 'int';
  if (dtype === 'float32' || dtype === 'float64' || dtype === 'float16') return 'float';
  return 'other';
}

/** Whether decodeTensor may give `t`'s elements: held inline, and few enough to fold. */
export function mayDecode(t: TensorData): boolean {
  return t.location.kind === 'inline' && !(elementCount(t.dims) > MAX_FOLD_ELEMENTS);
}

/** Elements of an inline tensor (int, float32/64/16, bool), or undefined when absent, large or exotic. */
export function decodeTensor(t: TensorData): Dim[] | undefined {
  if (!mayDecode(t) || t.location.kind !== 'inline') return undefined;
  const count = elementCount(t.dims);
  const bytes = t.location.data;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width: Partial<Record<DType, number>> = {
    int64: 8,
    uint64: 8,
    int32: 4,
    uint32: 4,
    int16: 2,
    uint16: 2,
    int8: 1,
    uint8: 1,
    bool: 1,
    float32: 4,
    float64: 8,
    float16: 2,
  };
  const w = width[t.dtype];
  if (w === undefined || bytes.byteLength < count * w) return undefined;
  const out: Dim[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const o = i * w;
    switch (t.dtype) {
      case 'int64':
        out[i] = Number(view.getBigInt64(o, true));
        break;
      case 'uint64':
        out[i] = Number(view.getBigUint64(o, true));
        break;
      case 'int32':
        out[i] = view.getInt32(o, true);
        break;
      case 'uint32':
        out[i] = view.getUint32(o, true);
        break;
      case 'int16':
        out[i] = view.getInt16(o, true);
        break;
      case 'uint16':
        out[i] = view.getUint16(o, true);
        break;
      case 'int8':
        out[i] = view.getInt8(o);
        break;
      case 'uint8':
        out[i] = view.getUint8(o);
        break;
      case 'bool':
        out[i] = view.getUint8(o) ? 1 : 0;
        break;
      case 'float32':
        out[i] = view.getFloat32(o, true);
        break;
      case 'float64':
        out[i] = view.getFloat64(o, true);
        break;
      case 'float16':
        out[i] = halfToNumber(view.getUint16(o, true));
        break;
      default:
        return undefined;
    }
  }
  return out;
}

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** Row-major strides of a numeric shape. */
function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Element-wise map over broadcast inputs (numeric shapes); `fn` may return undefined to give up. */
export function broadcastMap(
  outShape: readonly number[],
  ins: { shape: readonly number[]; value: readonly Dim[] }[],
  fn: (args: Dim[]) => Dim | undefined,
): Dim[] | undefined {
  let count = 1;
  for (const d of outShape) count *= d;
  if (count > MAX_FOLD_ELEMENTS) return undefined;
  const rank = outShape.length;
  const maps = ins.map(({ shape }) => {
    const st = strides(shape);
    // Stride 0 on broadcast axes: the same element is read along them.
    return outShape.map((_, k) => {
      const j = k - (rank - shape.length);
      return j < 0 || shape[j] === 1 ? 0 : st[j]!;
    });
  });
  const out: Dim[] = new Array(count);
  const idx = new Array<number>(rank).fill(0);
  const args: Dim[] = new Array(ins.length);
  for (let e = 0; e < count; e++) {
    for (let a = 0; a < ins.length; a++) {
      let off = 0;
      const m = maps[a]!;
      for (let k = 0; k < rank; k++) off += idx[k]! * m[k]!;
      args[a] = ins[a]!.value[off]!;
    }
    const r = fn(args);
    if (r === undefined) return undefined;
    out[e] = r;
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k]! < outShape[k]!) break;
      idx[k] = 0;
    }
  }
  return out;
}

/** Binary arithmetic on elements; ints stay exact (symbolic allowed), floats are numbers only. */
export function arith(op: string, kind: ValueKind, a: Dim, b: Dim): Dim | undefined {
  const numeric = typeof a === 'number' && typeof b === 'number';
  if (kind === 'float' && !numeric && op !== 'Add' && op !== 'Sub' && op !== 'Mul' && op !== 'Div') return undefined;
  switch (op) {
    case 'Add':
      return dimAdd(a, b);
    case 'Sub':
      return dimSub(a, b);
    case 'Mul':
      return dimMul(a, b);
    case 'Div':
      if (numeric) {
        if (b === 0) return undefined;
        // Integer Div truncates toward zero (C semantics, as onnxruntime computes it).
        return kind === 'float' ? (a as number) / (b as number) : Math.trunc((a as number) / (b as number));
      }
      if (kind === 'float') return dimDivExact(a, b);
      return dimDivExact(a, b) ?? (dimSign(a) !== 'unknown' && dimSign(b) === 'pos' ? dimFloorDiv(a, b) : undefined);
    case 'Mod': {
      if (!numeric || b === 0) return undefined;
      const x = a as number;
      const y = b as number;
      // ONNX Mod with fmod=0 takes the sign of the divisor (Python semantics).
      return kind === 'float' ? x - y * Math.floor(x / y) : ((x % y) + y) % y;
    }
    case 'Pow':
      return numeric ? (a as number) ** (b as number) : undefined;
    case 'Max':
      return numeric ? Math.max(a as number, b as number) : compareDims(a, b) === 'gt' ? a : compareDims(a, b) === 'lt' ? b : a === b ? a : undefined;
    case 'Min':
      return numeric ? Math.min(a as number, b as number) : compareDims(a, b) === 'lt' ? a : compareDims(a, b) === 'gt' ? b : a === b ? a : undefined;
    case 'And':
      return numeric ? (a && b ? 1 : 0) : undefined;
    case 'Or':
      return numeric ? (a || b ? 1 : 0) : undefined;
    case 'Xor':
      return numeric ? (a ? 1 : 0) ^ (b ? 1 : 0) : undefined;
    case 'BitShift':
      return undefined;
    default:
      return undefined;
  }
}

/** Ordering of two dims when it is certain (symbols ≥ 0): via the sign of a − b. */
export function compareDims(a: Dim, b: Dim): 'lt' | 'eq' | 'gt' | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? 'lt' : a > b ? 'gt' : 'eq';
  if (a === b) return 'eq';
  switch (polyOf(a).sub(polyOf(b)).sign()) {
    case 'zero':
      return 'eq';
    case 'pos':
      return 'gt';
    case 'neg':
      return 'lt';
    default:
      return undefined;
  }
}

/** Comparison ops as 0/1 elements, when the order is certain. */
export function compare(op: string, a: Dim, b: Dim): Dim | undefined {
  const c = compareDims(a, b);
  if (c === undefined) {
    // a − b ≥ 0 still settles GreaterOrEqual / Less; ≤ 0 settles LessOrEqual / Greater.
    const s = polyOf(a).sub(polyOf(b)).sign();
    if (s === 'nonneg') return op === 'GreaterOrEqual' ? 1 : op === 'Less' ? 0 : undefined;
    if (s === 'nonpos') return op === 'LessOrEqual' ? 1 : op === 'Greater' ? 0 : undefined;
    return undefined;
  }
  switch (op) {
    case 'Equal':
      return c === 'eq' ? 1 : 0;
    case 'Less':
      return c === 'lt' ? 1 : 0;
    case 'LessOrEqual':
      return c !== 'gt' ? 1 : 0;
    case 'Greater':
      return c === 'gt' ? 1 : 0;
    case 'GreaterOrEqual':
      return c !== 'lt' ? 1 : 0;
    default:
      return undefined;
  }
}

/** Unary math on elements; only negation and integer-preserving ops keep symbols. */
export function unary(op: string, kind: ValueKind, a: Dim): Dim | undefined {
  if (typeof a !== 'number') {
    if (op === 'Neg') return dimSub(0, a);
    if (op === 'Floor' || op === 'Ceil' || op === 'Round' || op === 'Identity') return a;
    if (op === 'Abs' || op === 'Relu') return dimSign(a) === 'pos' || dimSign(a) === 'nonneg' ? a : undefined;
    return undefined;
  }
  switch (op) {
    case 'Neg':
      return -a;
    case 'Abs':
      return Math.abs(a);
    case 'Floor':
      return Math.floor(a);
    case 'Ceil':
      return Math.ceil(a);
    case 'Round':
      return roundHalfEven(a);
    case 'Sqrt':
      return Math.sqrt(a);
    case 'Exp':
      return Math.exp(a);
    case 'Log':
      return Math.log(a);
    case 'Reciprocal':
      return kind === 'int' ? undefined : 1 / a;
    case 'Relu':
      return Math.max(a, 0);
    case 'Sign':
      return Math.sign(a);
    case 'Not':
      return a ? 0 : 1;
    case 'Identity':
      return a;
    default:
      return undefined;
  }
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Cast of one element to a kind: truncation to int, 0/1 for bool; symbols survive int↔float. */
export function castElement(a: Dim, to: ValueKind): Dim | undefined {
  if (to === 'other') return undefined;
  if (typeof a !== 'number') {
    if (to === 'bool') return dimSign(a) === 'pos' ? 1 : undefined;
    return a;
  }
  if (to === 'bool') return a !== 0 ? 1 : 0;
  if (to === 'int') return Number.isFinite(a) ? Math.trunc(a) : undefined;
  return a;
}

/** Gather along `axis` (ONNX Gather): out = data[:axis] + indices.shape + data[axis+1:]. */
export function gatherValues(data: readonly Dim[], shape: readonly number[], indices: readonly number[], axis: number): Dim[] | undefined {
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = shape[axis]!;
  if (outer * indices.length * inner > MAX_FOLD_ELEMENTS) return undefined;
  const out: Dim[] = [];
  for (let o = 0; o < outer; o++) {
    for (const raw of indices) {
      const i = raw < 0 ? raw + n : raw;
      if (i < 0 || i >= n) return undefined;
      const base = (o * n + i) * inner;
      for (let k = 0; k < inner; k++) out.push(data[base + k]!);
    }
  }
  return out;
}

/** Concat along `axis` of tensors with numeric shapes. */
export function concatValues(parts: { shape: readonly number[]; value: readonly Dim[] }[], axis: number): Dim[] {
  const first = parts[0]!.shape;
  const outer = first.slice(0, axis).reduce((a, b) => a * b, 1);
  const out: Dim[] = [];
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const block = p.shape.slice(axis).reduce((a, b) => a * b, 1);
      for (let k = 0; k < block; k++) out.push(p.value[o * block + k]!);
    }
  }
  return out;
}

/** Slice with per-axis numeric [start, end) and step already clamped (ONNX Slice semantics). */
export function sliceValues(data: readonly Dim[], shape: readonly number[], ranges: { start: number; step: number; count: number }[]): Dim[] {
  const st = strides(shape);
  const out: Dim[] = [];
  const rank = shape.length;
  const walk = (axis: number, off: number): void => {
    if (axis === rank) {
      out.push(data[off]!);
      return;
    }
    const r = ranges[axis]!;
    for (let k = 0; k < r.count; k++) walk(axis + 1, off + (r.start + k * r.step) * st[axis]!);
  };
  walk(0, 0);
  return out;
}

/** Transpose of a tensor with a numeric shape. */
export function transposeValues(data: readonly Dim[], shape: readonly number[], perm: readonly number[]): Dim[] {
  const st = strides(shape);
  const outShape = perm.map((p) => shape[p]!);
  const out: Dim[] = [];
  const rank = shape.length;
  const walk = (k: number, off: number): void => {
    if (k === rank) {
      out.push(data[off]!);
      return;
    }
    for (let i = 0; i < outShape[k]!; i++) walk(k + 1, off + i * st[perm[k]!]!);
  };
  walk(0, 0);
  return out;
}

/** Reduction over `axes` of a numeric-shaped tensor (keepdims does not change element order). */
export function reduceValues(
  data: readonly Dim[],
  shape: readonly number[],
  axes: ReadonlySet<number>,
  combine: (a: Dim, b: Dim) => Dim | undefined,
): Dim[] | undefined {
  const outShape = shape.map((d, i) => (axes.has(i) ? 1 : d));
  const outStrides = strides(outShape);
  const out: (Dim | undefined)[] = new Array(outShape.reduce((a, b) => a * b, 1)).fill(undefined);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  for (let e = 0; e < data.length; e++) {
    let o = 0;
    for (let k = 0; k < rank; k++) if (!axes.has(k)) o += idx[k]! * outStrides[k]!;
    const prev = out[o];
    const next = prev === undefined ? data[e]! : combine(prev, data[e]!);
    if (next === undefined) return undefined;
    out[o] = next;
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k]! < shape[k]!) break;
      idx[k] = 0;
    }
  }
  return out.some((v) => v === undefined) ? undefined : (out as Dim[]);
}
