// Neural-network operators: MatMul and Gemm, Conv/ConvTranspose and pooling, normalisations,
// softmax, recurrent layers and (de)quantisation. Output sizes follow the formulas of the ONNX
// operator spec sections named in each comment, with symbolic dims kept exact where possible.

import { dtypeFromOnnx, type DType } from '../ir/dtype.js';
import type { Dim, Shape } from '../ir/graph.js';
import { broadcastShapes, fail, invalid, normAxis, sameAs, type OpCall, type Out, type Rule } from './rule.js';
import { dimAdd, dimCeilDiv, dimFloorDiv, dimMul, dimSub } from './symbolic.js';

/** MatMul-13 (numpy.matmul): 1-D operands are promoted and the promoted axis removed afterwards. */
export function matmulShape(a: Shape, b: Shape): Shape {
  if (a.length === 0 || b.length === 0) fail('MatMul operands must have rank ≥ 1');
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const [ka, kb] = [a2[a2.length - 1]!, b2[b2.length - 2]!];
  if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb)
    invalid(`MatMul of [${a.join(', ')}] by [${b.join(', ')}]: the inner dims ${ka} and ${kb} differ`);
  const batch = broadcastShapes([a2.slice(0, -2), b2.slice(0, -2)]);
  const out = [...batch, a2[a2.length - 2]!, b2[b2.length - 1]!];
  if (b.length === 1) out.pop();
  if (a.length === 1) out.splice(out.length - (b.length === 1 ? 1 : 2), 1);
  return out;
}

function swapLast(s: Shape): Shape {
  if (s.length < 2) return s;
  const out = s.slice();
  [out[s.length - 2], out[s.length - 1]] = [out[s.length - 1]!, out[s.length - 2]!];
  return out;
}

const matmul: Rule = (c) => [{ dtype: c.dtype(0), shape: matmulShape(c.shape(0), c.shape(1)) }];

const matmulInteger: Rule = (c) => [{ dtype: 'int32', shape: matmulShape(c.shape(0), c.shape(1)) }];

/** QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp): dtype of y_zero_point. */
const qlinearMatmul: Rule = (c) => [{ dtype: c.dtype(7), shape: matmulShape(c.shape(0), c.shape(3)) }];

/** Gemm-13: A' [M, K] × B' [K, N] with A' = transA ? Aᵀ : A. */
const gemm: Rule = (c) => {
  const a = c.shape(0);
  const b = c.shape(1);
  if (a.length !== 2 || b.length !== 2) fail('Gemm operands must be 2-D');
  const m = c.attrInt('transA', 0) ? a[1]! : a[0]!;
  const n = c.attrInt('transB', 0) ? b[0]! : b[1]!;
  const [ka, kb] = [c.attrInt('transA', 0) ? a[0]! : a[1]!, c.attrInt('transB', 0) ? b[1]! : b[0]!];
  if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb)
    invalid(`Gemm of A' [${m}, ${ka}] by B' [${kb}, ${n}]: the inner dims ${ka} and ${kb} differ`);
  return [{ dtype: c.dtype(0), shape: [m, n] }];
};

interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  autoPad: string;
}

function windowOf(c: OpCall, spatial: number, kernel: number[] | undefined): Window {
  const k = c.attrInts('kernel_shape') ?? kernel;
  if (!k || k.length !== spatial) fail(`${c.node.op} kernel_shape is unknown or of the wrong rank`);
  const w: Window = {
    kernel: k,
    strides: c.attrInts('strides') ?? new Array<number>(spatial).fill(1),
    dilations: c.attrInts('dilations') ?? new Array<number>(spatial).fill(1),
    pads: c.attrInts('pads') ?? new Array<number>(2 * spatial).fill(0),
    autoPad: c.attrString('auto_pad', 'NOTSET'),
  };
  if (w.strides.length !== spatial || w.dilations.length !== spatial || w.pads.length !== 2 * spatial) {
    fail(`${c.node.op} strides, dilations or pads do not match ${spatial} spatial axes`);
  }
  for (const [what, list] of [
    ['kernel_shape', w.kernel],
    ['strides', w.strides],
    ['dilations', w.dilations],
  ] as const)
    if (list.some((x) => !(x >= 1))) invalid(`${c.node.op} ${what} [${list.join(', ')}]: each must be at least 1`);
  return w;
}

/**
 * Conv-11 / MaxPool-12 output size: SAME_* → ceil(in / s); VALID → ceil((in − eff + 1) / s);
 * NOTSET → floor((in + pads − eff) / s) + 1, or ceil(...) + 1 with ceil_mode, where
 * eff = (k − 1)·d + 1. With ceil_mode the last window must start inside the input or its leading
 * pad (as onnxruntime and PyTorch compute it).
 */
function windowDims(inDims: Shape, w: Window, ceilMode: boolean): Dim[] {
  return inDims.map((d, i) => {
    const s = w.strides[i]!;
    const eff = (w.kernel[i]! - 1) * w.dilations[i]! + 1;
    if (w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER') return dimCeilDiv(d, s);
    if (w.autoPad === 'VALID') return dimCeilDiv(dimSub(d, eff - 1), s);
    const padded = dimSub(dimAdd(d, w.pads[i]! + w.pads[i + inDims.length]!), eff);
    if (!ceilMode) return dimAdd(dimFloorDiv(padded, s), 1);
    let out = dimAdd(dimCeilDiv(padded, s), 1);
    if (typeof out === 'number' && typeof d === 'number' && (out - 1) * s >= d + w.pads[i]!) out -= 1;
    return out;
  });
}

const conv =
  (dtypeOf: (c: OpCall) => DType, weightAt: number): Rule =>
  (c) => {
    const x = c.shape(0, 3);
    const w = c.shape(weightAt, 3);
    const kernel = w.slice(2).every((d) => typeof d === 'number') ? (w.slice(2) as number[]) : undefined;
    const win = windowOf(c, x.length - 2, kernel);
    return [{ dtype: dtypeOf(c), shape: [x[0]!, w[0]!, ...windowDims(x.slice(2), win, false)] }];
  };

/** ConvTranspose-11: out = s·(in − 1) + output_padding + eff − pads, or output_shape when given. */
const convTranspose: Rule = (c) => {
  const x = c.shape(0, 3);
  const w = c.shape(1, 3);
  const n = x.length - 2;
  const kernel = w.slice(2).every((d) => typeof d === 'number') ? (w.slice(2) as number[]) : undefined;
  const win = windowOf(c, n, kernel);
  const channels = dimMul(w[1]!, c.attrInt('group', 1));
  const given = c.attrInts('output_shape');
  if (given) return [{ dtype: c.dtype(0), shape: [x[0]!, channels, ...given.slice(given.length - n)] }];
  const outPad = c.attrInts('output_padding') ?? new Array<number>(n).fill(0);
  if (outPad.length !== n) fail('ConvTranspose output_padding does not match the spatial axes');
  const spatial = x.slice(2).map((d, i) => {
    const s = win.strides[i]!;
    if (win.autoPad === 'SAME_UPPER' || win.autoPad === 'SAME_LOWER') return dimMul(d, s);
    const eff = (win.kernel[i]! - 1) * win.dilations[i]! + 1;
    const pads = win.autoPad === 'VALID' ? 0 : win.pads[i]! + win.pads[i + n]!;
    return dimAdd(dimMul(s, dimSub(d, 1)), outPad[i]! + eff - pads);
  });
  return [{ dtype: c.dtype(0), shape: [x[0]!, channels, ...spatial] }];
};

const pool: Rule = (c) => {
  const x = c.shape(0, 3);
  const win = windowOf(c, x.length - 2, undefined);
  const shape = [x[0]!, x[1]!, ...windowDims(x.slice(2), win, c.attrInt('ceil_mode', 0) === 1)];
  return [
    { dtype: c.dtype(0), shape },
    { dtype: 'int64', shape: shape.slice() },
  ];
};

const globalPool: Rule = (c) => {
  const x = c.shape(0, 2);
  return [{ dtype: c.dtype(0), shape: [x[0]!, x[1]!, ...x.slice(2).map(() => 1)] }];
};

/** RoiAlign-16 / MaxRoiPool: [num_rois, C, output_height, output_width]. */
const roiAlign: Rule = (c) => {
  const x = c.shape(0, 2);
  const rois = c.shape(1, 1);
  const pooled = c.attrInts('pooled_shape');
  const h = pooled?.[0] ?? c.attrInt('output_height', 1);
  const w = pooled?.[1] ?? c.attrInt('output_width', 1);
  return [{ dtype: c.dtype(0), shape: [rois[0]!, x[1]!, h, w] }];
};

/** BatchNormalization-15: Y like X; training outputs (running mean/var) like the scale [C]. */
const batchNorm: Rule = (c) => c.node.outputs.map((_, i) => (i === 0 ? sameAs(c) : { dtype: c.dtype(1), shape: c.shapeOrNull(1) }));

/** LayerNormalization-17: Mean / InvStdDev keep dims before `axis`, then 1s; stash type float32. */
const layerNorm: Rule = (c) => {
  const x = c.shapeOrNull(0);
  let stats: Shape | null = null;
  if (x) {
    const axis = normAxis(c.attrInt('axis', -1), x.length);
    stats = x.map((d, i) => (i < axis ? d : 1));
  }
  const stash = dtypeFromOnnx(c.attrInt('stash_type', 1)) ?? 'float32';
  return c.node.outputs.map((_, i) => (i === 0 ? sameAs(c) : { dtype: stash, shape: stats }));
};

/** RNN-14 / GRU-14 / LSTM-14: Y [seq, dirs, batch, hidden], Y_h / Y_c [dirs, batch, hidden]; layout=1 puts batch first. */
const recurrent: Rule = (c) => {
  const x = c.shape(0, 3);
  const layout = c.attrInt('layout', 0);
  const [seq, batch] = layout === 0 ? [x[0]!, x[1]!] : [x[1]!, x[0]!];
  const dirs = c.attrString('direction', 'forward') === 'bidirectional' ? 2 : 1;
  const hidden = c.attrIntOpt('hidden_size') ?? c.shape(2, 3)[2]!;
  const dtype = c.dtype(0);
  const y: Out = { dtype, shape: layout === 0 ? [seq, dirs, batch, hidden] : [batch, seq, dirs, hidden] };
  const state: Out = { dtype, shape: layout === 0 ? [dirs, batch, hidden] : [batch, dirs, hidden] };
  return [y, state, { ...state }];
};

/** QuantizeLinear-21: output type from output_dtype, else the zero point's, else uint8. */
const quantize: Rule = (c) => {
  const attr = c.attrIntOpt('output_dtype');
  const dtype = (attr ? dtypeFromOnnx(attr) : undefined) ?? (c.has(2) ? c.dtype(2) : 'uint8');
  return [{ dtype, shape: c.shapeOrNull(0) }];
};

/** DequantizeLinear-21: output type of the scale (float32 before opset 19). */
const dequantize: Rule = (c) => {
  const attr = c.attrIntOpt('output_dtype');
  const dtype = (attr ? dtypeFromOnnx(attr) : undefined) ?? (c.has(1) ? c.type(1)?.dtype : undefined) ?? 'float32';
  return [{ dtype, shape: c.shapeOrNull(0) }];
};

const dynamicQuantize: Rule = (c) => [
  { dtype: 'uint8', shape: c.shapeOrNull(0) },
  { dtype: 'float32', shape: [] },
  { dtype: 'uint8', shape: [] },
];

/** GridSample-16: [N, C] of the input, then the grid's output locations [N, H_out, W_out, 2]. */
const gridSample: Rule = (c) => {
  const x = c.shape(0, 2);
  const grid = c.shape(1, 3);
  return [{ dtype: c.dtype(0), shape: [x[0]!, x[1]!, ...grid.slice(1, -1)] }];
};

const same: Rule = (c) => [sameAs(c)];

/** Softmax / LogSoftmax: the input's type; `axis` (default -1 from opset 13, 1 before) must be one of its axes. */
const softmax: Rule = (c) => {
  const shape = c.shapeOrNull(0);
  const axis = c.attrInt('axis', c.opset >= 13 ? -1 : 1);
  if (shape && (axis < -shape.length || axis >= Math.max(1, shape.length)))
    invalid(`${c.node.op} axis ${axis} is not an axis of its rank-${shape.length} input`);
  return [sameAs(c)];
};

export const NN_RULES: Record<string, Rule> = {
  MatMul: matmul,
  MatMulInteger: matmulInteger,
  QLinearMatMul: qlinearMatmul,
  Gemm: gemm,
  Conv: conv((c) => c.dtype(0), 1),
  ConvInteger: conv(() => 'int32', 1),
  QLinearConv: conv((c) => c.dtype(7), 3),
  ConvTranspose: convTranspose,
  MaxPool: pool,
  AveragePool: pool,
  LpPool: pool,
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  GlobalLpPool: globalPool,
  RoiAlign: roiAlign,
  GridSample: gridSample,
  MaxRoiPool: roiAlign,
  BatchNormalization: batchNorm,
  LayerNormalization: layerNorm,
  // onnxruntime registers SimplifiedLayerNormalization (RMSNorm) in the ONNX domain.
  SimplifiedLayerNormalization: layerNorm,
  RMSNormalization: layerNorm,
  InstanceNormalization: same,
  GroupNormalization: same,
  LRN: same,
  LpNormalization: same,
  MeanVarianceNormalization: same,
  Softmax: softmax,
  LogSoftmax: softmax,
  Hardmax: same,
  RNN: recurrent,
  GRU: recurrent,
  LSTM: recurrent,
  QuantizeLinear: quantize,
  DequantizeLinear: dequantize,
  DynamicQuantizeLinear: dynamicQuantize,
};

export { swapLast };
