// Operators that create, measure or summarise data: Shape, Size, Constant, ConstantOfShape, Range,
// NonZero, TopK, OneHot, Unique, reductions, ArgMax/ArgMin, Resize/Upsample, Einsum, random ops.
// Data-dependent sizes (NonZero, Unique, Compress) become fresh symbols named after the node.

import { dtypeFromOnnx, type DType } from '../ir/dtype.js';
import type { Dim, TensorData } from '../ir/graph.js';
import { MAX_FOLD_ELEMENTS, arith, decodeTensor, reduceValues, valueKind } from './constant-fold.js';
import { broadcastDim, broadcastShapes, fail, invalid, normAxis, numericShape, sameAs, type OpCall, type Out, type Rule } from './rule.js';
import { dimAdd, dimCeilDiv, dimFloorDiv, dimMul, dimProduct, dimSub } from './symbolic.js';

function dtypeAttr(c: OpCall, name: string, fallback: DType): DType {
  const code = c.attrIntOpt(name);
  return (code !== undefined ? dtypeFromOnnx(code) : undefined) ?? fallback;
}

/** Shape-15: the dims of the input from `start` to `end` (both clamped, negative from the end). */
const shapeOp: Rule = (c) => {
  const shape = c.shape(0);
  const r = shape.length;
  const clamp = (x: number): number => Math.min(Math.max(x < 0 ? x + r : x, 0), r);
  const start = clamp(c.attrInt('start', 0));
  const end = clamp(c.attrInt('end', r));
  const dims = shape.slice(start, Math.max(start, end));
  return [{ dtype: 'int64', shape: [dims.length], value: dims }];
};

const size: Rule = (c) => {
  const shape = c.shapeOrNull(0);
  return [shape ? { dtype: 'int64', shape: [], value: [dimProduct(shape)] } : { dtype: 'int64', shape: [] }];
};

function tensorOut(t: TensorData): Out {
  const value = decodeTensor(t);
  return value ? { dtype: t.dtype, shape: t.dims.slice(), value } : { dtype: t.dtype, shape: t.dims.slice() };
}

/** Constant-13: exactly one of value, value_float(s), value_int(s), value_string(s), sparse_value. */
const constant: Rule = (c) => {
  const a = c.node.attrs;
  const v = a.value ?? a.sparse_value;
  if (v?.type === 'tensor') return [tensorOut(v.value)];
  if (a.value_float?.type === 'float') return [{ dtype: 'float32', shape: [], value: [a.value_float.value] }];
  if (a.value_floats?.type === 'floats') return [{ dtype: 'float32', shape: [a.value_floats.value.length], value: a.value_floats.value.slice() }];
  if (a.value_int?.type === 'int') return [{ dtype: 'int64', shape: [], value: [a.value_int.value] }];
  if (a.value_ints?.type === 'ints') return [{ dtype: 'int64', shape: [a.value_ints.value.length], value: a.value_ints.value.slice() }];
  if (a.value_string?.type === 'string') return [{ dtype: 'string', shape: [] }];
  if (a.value_strings?.type === 'strings') return [{ dtype: 'string', shape: [a.value_strings.value.length] }];
  fail('Constant has no value attribute');
};

/** ConstantOfShape-9: shape from the input's elements, dtype and fill from the `value` tensor. */
const constantOfShape: Rule = (c) => {
  const a = c.node.attrs.value;
  const fill = a?.type === 'tensor' ? a.value : undefined;
  const dtype = fill?.dtype ?? 'float32';
  const dims = c.value(0);
  if (!dims) {
    const len = numericShape(c.shapeOrNull(0))?.[0];
    if (len === undefined) fail('ConstantOfShape shape is unknown');
    return [{ dtype, shape: Array.from({ length: len }, (_, i) => c.fresh(`const${i}`)) }];
  }
  const out: Out = { dtype, shape: dims };
  const n = numericShape(dims);
  const below = dims.findIndex((d) => typeof d === 'number' && d < 0);
  if (below >= 0) invalid(`ConstantOfShape of shape [${dims.join(', ')}]: dim ${below} is below 0`);
  if (n && n.reduce((x, y) => x * y, 1) <= MAX_FOLD_ELEMENTS) {
    const x = fill ? decodeTensor(fill)?.[0] : 0;
    if (x !== undefined) out.value = new Array<Dim>(n.reduce((p, q) => p * q, 1)).fill(x);
  }
  return [out];
};

/** Range-11: max(ceil((limit - start) / delta), 0) elements of start's dtype. */
const range: Rule = (c) => {
  const dtype = c.dtype(0);
  const start = c.value(0)?.[0];
  const limit = c.value(1)?.[0];
  const delta = c.value(2)?.[0];
  if (start === undefined || limit === undefined || typeof delta !== 'number' || delta === 0) {
    return [{ dtype, shape: [c.fresh('range')] }];
  }
  const span = dimSub(limit, start);
  let count: Dim = delta === 1 ? span : delta > 0 ? dimCeilDiv(span, delta) : dimCeilDiv(dimSub(0, span), -delta);
  if (typeof count === 'number') count = Math.max(0, count);
  const out: Out = { dtype, shape: [count] };
  if (typeof count === 'number' && count <= MAX_FOLD_ELEMENTS) {
    out.value = Array.from({ length: count }, (_, k) => (typeof start === 'number' ? start + k * delta : dimAdd(start, k * delta)));
  }
  return [out];
};

const nonZero: Rule = (c) => [{ dtype: 'int64', shape: [c.shape(0).length, c.fresh('nz')] }];

/** TopK-11: k from the input (attribute before 10), along `axis` (default -1). */
const topK: Rule = (c) => {
  const shape = c.shape(0);
  const axis = normAxis(c.attrInt('axis', -1), shape.length);
  const k = c.has(1) ? c.value(1)?.[0] : c.attrIntOpt('k');
  const out = shape.slice();
  out[axis] = k ?? c.fresh('topk');
  return [
    { dtype: c.dtype(0), shape: out },
    { dtype: 'int64', shape: out.slice() },
  ];
};

/** OneHot-11: a new axis of size `depth` inserted at `axis` (default -1, last). */
const oneHot: Rule = (c) => {
  const shape = c.shape(0);
  const rank = shape.length + 1;
  const axis = normAxis(c.attrInt('axis', -1), rank);
  const raw = c.value(1)?.[0];
  const depth = typeof raw === 'number' ? Math.trunc(raw) : (raw ?? c.fresh('depth'));
  const out = shape.slice();
  out.splice(axis, 0, depth);
  return [{ dtype: c.dtype(2), shape: out }];
};

/** Unique-11: every output's length is data dependent (one symbol for Y, indices and counts). */
const unique: Rule = (c) => {
  const shape = c.shape(0);
  const n = c.fresh('unique');
  const axis = c.attrIntOpt('axis');
  const y = axis === undefined ? [n] : shape.map((d, i) => (i === normAxis(axis, shape.length) ? n : d));
  const inverse = axis === undefined ? [dimProduct(shape)] : [shape[normAxis(axis, shape.length)]!];
  return [
    { dtype: c.dtype(0), shape: y },
    { dtype: 'int64', shape: [n] },
    { dtype: 'int64', shape: inverse },
    { dtype: 'int64', shape: [n] },
  ];
};

const compress: Rule = (c) => {
  const shape = c.shape(0);
  const axis = c.attrIntOpt('axis');
  const n = c.fresh('compress');
  return [{ dtype: c.dtype(0), shape: axis === undefined ? [n] : shape.map((d, i) => (i === normAxis(axis, shape.length) ? n : d)) }];
};

/** Reduce*: axes from the input (ReduceSum since 13, the others since 18) or the attribute. */
const reduce =
  (op: string): Rule =>
  (c) => {
    const shape = c.shape(0);
    const dtype = c.dtype(0);
    const keep = c.attrInt('keepdims', 1) === 1;
    const axes = c.has(1) ? c.ints(1) : c.attrInts('axes');
    if (c.has(1) && !axes) fail(`${op} axes are unknown`);
    if ((!axes || axes.length === 0) && c.attrInt('noop_with_empty_axes', 0) === 1) return [{ ...sameAs(c), value: c.value(0) }];
    const set = new Set(axes && axes.length > 0 ? axes.map((a) => normAxis(a, shape.length)) : shape.map((_, i) => i));
    const out: Out = { dtype, shape: keep ? shape.map((d, i) => (set.has(i) ? 1 : d)) : shape.filter((_, i) => !set.has(i)) };
    const base = { ReduceProd: 'Mul', ReduceSum: 'Add', ReduceMax: 'Max', ReduceMin: 'Min' }[op];
    const v = c.value(0);
    const n = numericShape(shape);
    if (base && v && n) {
      const kind = valueKind(dtype);
      const value = reduceValues(v, n, set, (a, b) => arith(base, kind, a, b));
      if (value) out.value = value;
    }
    return [out];
  };

const argReduce: Rule = (c) => {
  const shape = c.shape(0);
  const axis = normAxis(c.attrInt('axis', 0), shape.length);
  const keep = c.attrInt('keepdims', 1) === 1;
  return [{ dtype: 'int64', shape: keep ? shape.map((d, i) => (i === axis ? 1 : d)) : shape.filter((_, i) => i !== axis) }];
};

/** One output dim of Resize: floor(dim × scale), kept symbolic for integral scales and 1/k. */
function scaleDim(c: OpCall, d: Dim, scale: number): Dim {
  if (typeof d === 'number') return Math.floor(d * scale);
  if (Number.isInteger(scale)) return dimMul(d, scale);
  const inv = 1 / scale;
  if (Number.isInteger(inv)) return dimFloorDiv(d, inv);
  return c.fresh('resize');
}

/** Resize-19 (X, roi, scales, sizes; Resize-10 is X, scales) and Upsample (scales input since 9). */
const resize: Rule = (c) => {
  const shape = c.shape(0);
  const dtype = c.dtype(0);
  const op = c.node.op;
  const old = op === 'Upsample' || (c.opset > 0 && c.opset < 11) || c.node.inputs.length === 2;
  const scalesAt = old ? 1 : 2;
  const axes = (c.attrInts('axes') ?? shape.map((_, i) => i)).map((a) => normAxis(a, shape.length));
  const out = shape.slice();
  const sizes = !old && c.has(3) ? c.value(3) : undefined;
  const scales = op === 'Upsample' && !c.has(1) ? c.attrFloats('scales') : c.has(scalesAt) ? c.value(scalesAt) : undefined;
  if (sizes && sizes.length > 0) {
    axes.forEach((a, i) => {
      out[a] = sizes[i]!;
    });
    if (c.attrString('keep_aspect_ratio_policy', 'stretch') !== 'stretch') c.note('Resize keep_aspect_ratio_policy: sizes taken as given');
  } else if (scales && scales.length > 0) {
    axes.forEach((a, i) => {
      const s = scales[i];
      out[a] = typeof s === 'number' ? scaleDim(c, shape[a]!, s) : c.fresh(`resize${a}`);
    });
  } else {
    axes.forEach((a) => {
      out[a] = c.fresh(`resize${a}`);
    });
  }
  return [{ dtype, shape: out }];
};

/** Einsum-12: labels map to dims; `...` broadcasts; implicit output = sorted labels seen once. */
const einsum: Rule = (c) => {
  const eq = c.attrString('equation', '').replace(/\s+/g, '');
  const [lhs, rhs] = eq.split('->');
  const terms = lhs!.split(',');
  // (Spec breaks with the equation and ranks in hand: the model is invalid, not merely unknown.)
  if (!/^([A-Za-z]|\.\.\.)*(,([A-Za-z]|\.\.\.)*)*(->([A-Za-z]|\.\.\.)*)?$/.test(eq) || terms.length !== c.node.inputs.length)
    invalid(`Einsum equation "${eq}" is malformed for its ${c.node.inputs.length} input(s)`);
  const dims = new Map<string, Dim>();
  const counts = new Map<string, number>();
  const ellipses: Dim[][] = [];
  terms.forEach((term, i) => {
    const shape = c.shape(i);
    const labels = term.replace('...', '');
    const ellRank = term.includes('...') ? shape.length - labels.length : 0;
    if (ellRank < 0 || (!term.includes('...') && labels.length !== shape.length))
      invalid(`Einsum term "${term}" does not match its input's rank ${shape.length}`);
    let k = 0;
    for (let p = 0; p < term.length; p++) {
      if (term.startsWith('...', p)) {
        ellipses.push(shape.slice(k, k + ellRank));
        k += ellRank;
        p += 2;
        continue;
      }
      const l = term[p]!;
      const d = shape[k++]!;
      const prev = dims.get(l);
      dims.set(l, prev === undefined ? d : broadcastDim(prev, d));
      counts.set(l, (counts.get(l) ?? 0) + 1);
    }
  });
  const ell = broadcastShapes(ellipses);
  const outLabels =
    rhs ??
    (ellipses.length > 0 ? '...' : '') +
      [...counts]
        .filter(([, n]) => n === 1)
        .map(([l]) => l)
        .sort()
        .join('');
  const out: Dim[] = [];
  for (let p = 0; p < outLabels.length; p++) {
    if (outLabels.startsWith('...', p)) {
      out.push(...ell);
      p += 2;
    } else {
      const d = dims.get(outLabels[p]!);
      if (d === undefined) invalid(`Einsum output label ${outLabels[p]} is not an input label`);
      out.push(d);
    }
  }
  return [{ dtype: c.dtype(0), shape: out }];
};

/** NonMaxSuppression-11: [selected, 3] rows of (batch, class, box), a data-dependent count. */
const nonMaxSuppression: Rule = (c) => [{ dtype: 'int64', shape: [c.fresh('nms'), 3] }];

/** Det-11: one determinant per trailing square matrix. */
const det: Rule = (c) => [{ dtype: c.dtype(0), shape: c.shape(0, 2).slice(0, -2) }];

const likeInput = (c: OpCall): Out[] => [{ dtype: dtypeAttr(c, 'dtype', c.dtype(0)), shape: c.shapeOrNull(0) }];

const randomOf = (c: OpCall): Out[] => [{ dtype: dtypeAttr(c, 'dtype', 'float32'), shape: c.attrInts('shape') ?? fail('random op has no shape') }];

export const DATA_RULES: Record<string, Rule> = {
  Shape: shapeOp,
  Size: size,
  Constant: constant,
  ConstantOfShape: constantOfShape,
  Range: range,
  NonZero: nonZero,
  NonMaxSuppression: nonMaxSuppression,
  Det: det,
  TopK: topK,
  OneHot: oneHot,
  Unique: unique,
  Compress: compress,
  ...Object.fromEntries(
    ['ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'].map(
      (op) => [op, reduce(op)],
    ),
  ),
  ArgMax: argReduce,
  ArgMin: argReduce,
  Resize: resize,
  Upsample: resize,
  Einsum: einsum,
  EyeLike: likeInput,
  RandomNormalLike: likeInput,
  RandomUniformLike: likeInput,
  Bernoulli: likeInput,
  RandomNormal: randomOf,
  RandomUniform: randomOf,
  Multinomial: (c) => [{ dtype: dtypeAttr(c, 'dtype', 'int32'), shape: [c.shape(0, 1)[0]!, c.attrInt('sample_size', 1)] }],
  Dropout: (c) => [sameAs(c), { dtype: 'bool', shape: c.shapeOrNull(0) }],
  Trilu: (c) => [sameAs(c)],
  CumSum: (c) => [sameAs(c)],
  ReverseSequence: (c) => [sameAs(c)],
};
