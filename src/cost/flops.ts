// FLOPs per node from its numeric input/output shapes. Each rule names where it comes from; a
// multiply-add counts 2 FLOPs (the convention of vendor peak numbers and of Kaplan et al. 2020).
// Ops that only move or reinterpret data count 0 FLOPs.

import type { Node } from '../ir/graph.js';
import type { ComputeClass } from '../topology/catalog.js';
import { VIEW_OPS } from '../ir/ops.js';

/** Numeric shapes of a node's inputs and outputs ('' inputs are null). */
export interface NodeShapes {
  inputs: (number[] | null)[];
  outputs: (number[] | null)[];
}

/** The op classes (a device may state an efficiency for each: src/topology/catalog.ts COMPUTE_CLASSES), and control flow. */
export type OpClass = ComputeClass | 'control';

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);
const numel = (s: number[] | null | undefined): number => (s ? prod(s) : 0);

/** Per-element FLOPs of element-wise ops; transcendental ops are costed as a few FLOPs (an approximation; calibration corrects it). */
const ELEMENTWISE: Record<string, number> = {
  Add: 1,
  Sub: 1,
  Mul: 1,
  Div: 1,
  Pow: 1,
  Neg: 1,
  Abs: 1,
  Relu: 1,
  LeakyRelu: 2,
  PRelu: 2,
  Max: 1,
  Min: 1,
  Mod: 1,
  Equal: 1,
  Less: 1,
  LessOrEqual: 1,
  Greater: 1,
  GreaterOrEqual: 1,
  And: 1,
  Or: 1,
  Xor: 1,
  Not: 1,
  Where: 1,
  Sqrt: 1,
  Reciprocal: 1,
  Floor: 1,
  Ceil: 1,
  Round: 1,
  Sign: 1,
  Clip: 2,
  Exp: 4,
  Log: 4,
  Erf: 4,
  Tanh: 4,
  Sigmoid: 4,
  HardSigmoid: 3,
  HardSwish: 4,
  Softplus: 4,
  Elu: 4,
  Selu: 4,
  Gelu: 8,
  FastGelu: 8,
  BiasGelu: 9,
  QuickGelu: 5,
  Sin: 4,
  Cos: 4,
  Mish: 8,
  Celu: 4,
  ThresholdedRelu: 1,
  IsNaN: 1,
  IsInf: 1,
  BitShift: 1,
  Sum: 1,
  Mean: 1,
  CumSum: 1,
  Trilu: 1,
  QuantizeLinear: 3,
  DequantizeLinear: 2,
  DynamicQuantizeLinear: 4,
};

const DATA_MOVEMENT = new Set([
  'Reshape',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Identity',
  'Shape',
  'Size',
  'Constant',
  'ConstantOfShape',
  'Transpose',
  'Concat',
  'Split',
  'Slice',
  'Gather',
  'GatherElements',
  'GatherND',
  'ScatterND',
  'ScatterElements',
  'Scatter',
  'Expand',
  'Tile',
  'Pad',
  'Cast',
  'CastLike',
  'Range',
  'NonZero',
  'OneHot',
  'Resize',
  'Upsample',
  'DepthToSpace',
  'SpaceToDepth',
  'Dropout',
  'EyeLike',
  'Compress',
  'ReverseSequence',
  'TopK',
  'ArgMax',
  'ArgMin',
  'Optional',
  'OptionalGetElement',
]);

/** Ops that read no data and write none: the views (onnxruntime aliases them), metadata, constants, inference-time Dropout. */
export const FREE_OPS: ReadonlySet<string> = new Set([...VIEW_OPS, 'Shape', 'Size', 'Constant', 'Dropout']);

/**
 * Op class by op type, each type classed once (opClassOf): asked per node several times a plan
 * (profile, fusion, tiles), and most ops (elementwise, data movement) reach the name patterns.
 * Bounded: a model naming more op types than this is classed without the cache past it.
 */
const classByOp = new Map<string, OpClass>();
const MAX_CACHED_OPS = 4096;

export function opClass(node: Node): OpClass {
  let c = classByOp.get(node.op);
  if (c === undefined) {
    c = opClassOf(node.op);
    if (classByOp.size < MAX_CACHED_OPS) classByOp.set(node.op, c);
  }
  return c;
}

/** The class of op type `op` (opClass caches it). */
export function opClassOf(op: string): OpClass {
  if (op === 'MatMul' || op === 'Gemm' || op === 'FusedMatMul' || op === 'MatMulInteger' || op === 'QLinearMatMul' || op === 'MatMulNBits' || op === 'Einsum')
    return 'matmul';
  if (op === 'Conv' || op === 'ConvTranspose' || op === 'ConvInteger' || op === 'QLinearConv' || op === 'FusedConv') return 'conv';
  if (op === 'Attention' || op === 'MultiHeadAttention' || op === 'GroupQueryAttention' || op === 'PackedAttention') return 'attention';
  if (op === 'MoE' || op === 'QMoE') return 'moe';
  if (op === 'If' || op === 'Loop' || op === 'Scan') return 'control';
  if (/Normalization$/.test(op) || op === 'LpNormalization') return 'normalization';
  if (op.startsWith('Reduce') || /Pool$/.test(op) || op === 'Softmax' || op === 'LogSoftmax') return 'reduction';
  if (DATA_MOVEMENT.has(op)) return 'data-movement';
  if (ELEMENTWISE[op] !== undefined || op === 'RotaryEmbedding') return 'elementwise';
  return 'other';
}

function intAttr(node: Node, name: string, dflt: number): number {
  const a = node.attrs[name];
  return a && a.type === 'int' ? a.value : dflt;
}

/** FLOPs of one node. `inner` is the FLOPs of a control-flow node's subgraphs (one iteration/branch). */
export function nodeFlops(node: Node, s: NodeShapes): number {
  const op = node.op;
  const [a, b, c] = s.inputs;
  const y = s.outputs[0];
  switch (op) {
    case 'MatMul':
    case 'FusedMatMul':
    case 'MatMulInteger': {
      // ONNX MatMul (numpy matmul semantics): out [..., m, n] with inner dim k → 2·(prod out)·k.
      if (!a || !y || a.length === 0) return 0;
      const k = a[a.length - 1]!;
      return 2 * numel(y) * k;
    }
    case 'Gemm': {
      // Y = alpha·A'·B' + beta·C: 2·M·N·K for the product, M·N for the bias (ONNX Gemm spec).
      if (!a || !y || a.length < 2) return 0;
      const k = intAttr(node, 'transA', 0) ? a[0]! : a[1]!;
      return 2 * numel(y) * k + (c ? numel(y) : 0);
    }
    case 'Conv':
    case 'ConvInteger':
    case 'FusedConv': {
      // Each output element: (C_in/group)·prod(kernel) MACs (ONNX Conv; W is [C_out, C_in/group, k...]).
      if (!b || !y) return 0;
      const macsPerOut = prod(b.slice(1));
      return 2 * numel(y) * macsPerOut + (c ? numel(y) : 0);
    }
    case 'ConvTranspose': {
      // Each input element scatters into C_out/group·prod(kernel) outputs (W is [C_in, C_out/group, k...]).
      if (!a || !b) return 0;
      return 2 * numel(a) * prod(b.slice(1)) + (c && y ? numel(y) : 0);
    }
    case 'Einsum': {
      // Contraction cost: 2 · product of the sizes of every distinct index (opt_einsum's FLOP count for one pairwise contraction).
      const eq = node.attrs.equation?.type === 'string' ? node.attrs.equation.value.replace(/\s/g, '') : '';
      const [lhs] = eq.split('->');
      const sizes = new Map<string, number>();
      (lhs ?? '').split(',').forEach((term, i) => {
        const shape = s.inputs[i];
        if (!shape) return;
        const letters = term.replace('...', '');
        const offset = shape.length - letters.length;
        [...letters].forEach((ch, j) => sizes.set(ch, shape[offset + j]!));
      });
      return 2 * prod([...sizes.values()]);
    }
    case 'Softmax':
    case 'LogSoftmax':
      return 5 * numel(y); // max, subtract, exp, sum, divide per element
    case 'LayerNormalization':
    case 'SimplifiedLayerNormalization':
    case 'SkipLayerNormalization':
    case 'SkipSimplifiedLayerNormalization':
      return 8 * numel(y); // mean, variance (2), normalise (2), scale and shift (2), skip add (1)
    case 'BatchNormalization':
    case 'InstanceNormalization':
    case 'GroupNormalization':
      return 2 * numel(y); // inference: one scale and one shift
    case 'MaxPool':
    case 'AveragePool':
    case 'LpPool': {
      const k = node.attrs.kernel_shape?.type === 'ints' ? prod(node.attrs.kernel_shape.value) : 1;
      return numel(y) * k;
    }
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
    case 'GlobalLpPool':
      return numel(a);
    case 'RotaryEmbedding':
      return 3 * numel(y); // two multiplies and an add per element (rotate-half form)
    case 'Attention':
    case 'MultiHeadAttention':
    case 'GroupQueryAttention':
      return attentionFlops(node, s);
    case 'MoE':
    case 'QMoE': {
      // com.microsoft MoE: each of T tokens runs k experts; an expert costs 2 FLOPs per weight
      // element of its fc1/fc2(/fc3) matrices (inputs 2, 4, 6 are [E, in, out]).
      const tokens = a && a.length >= 2 ? numel(a) / a[a.length - 1]! : 0;
      const k = intAttr(node, 'k', 1);
      let perExpert = 0;
      for (const i of [2, 4, 6]) {
        const w = s.inputs[i];
        if (w && w.length === 3) perExpert += w[1]! * w[2]!;
      }
      return 2 * tokens * k * perExpert;
    }
    default:
      if (op.startsWith('Reduce') || op === 'ArgMax' || op === 'ArgMin') return numel(a);
      if (ELEMENTWISE[op] !== undefined) return ELEMENTWISE[op]! * numel(y);
      return 0;
  }
}

/**
 * com.microsoft attention ops: scores Q·Kᵀ and context P·V are each 2·D FLOPs per query-key pair,
 * softmax 5 per pair; B·H·S·T pairs (T = total, past + new, length), fewer when causal (below);
 * `Attention` also projects the input (2·B·S·D_in·3D).
 */
function attentionFlops(node: Node, s: NodeShapes): number {
  const q = s.inputs[0];
  const y = s.outputs[0];
  if (!q || !y || q.length < 3) return 0;
  const batch = q[0]!;
  const seq = q[1]!;
  const hidden = y[y.length - 1]!;
  const present = s.outputs[1];
  let total = seq;
  if (present && present.length >= 4) total = present[present.length - 2]!;
  else if (present && present.length === 5) total = present[3]!;
  const heads = intAttr(node, 'num_heads', 1);
  const headDim = hidden / Math.max(1, heads);
  // Query-key pairs computed. Causal attention (GroupQueryAttention always; Attention with
  // unidirectional=1) lets query i see the past and the new keys up to i: S·P + S(S+1)/2 pairs,
  // and the kernels skip the blocks above the diagonal (FlashAttention-2, Dao 2023, §3.1.1, which
  // measures 1.7–1.8× from it).
  const causal = node.op === 'GroupQueryAttention' || intAttr(node, 'unidirectional', 0) === 1;
  const past = Math.max(0, total - seq);
  const pairs = batch * heads * (causal && seq > 1 ? seq * past + (seq * (seq + 1)) / 2 : seq * total);
  const scores = 2 * pairs * headDim;
  let flops = 2 * scores + 5 * pairs;
  if (node.op === 'Attention') {
    const w = s.inputs[1];
    if (w && w.length === 2) flops += 2 * batch * seq * w[0]! * w[1]!;
  }
  return flops;
}

/** Output tile edge of a GPU GEMM or attention kernel (one thread block computes a 128×128 tile). */
export const TILE = 128;

/** nodeTiles of a node that is not tiled (most are): one record, not one made per node (85 MB a run, sampled). */
const NOT_TILED: Readonly<{ tiles: number; k_splits: number }> = { tiles: 0, k_splits: 1 };

/**
 * Thread-block tiles a kernel launches for the node, or 0 when the node is not tiled (only GEMMs
 * and attention are): the work items a GPU spreads over its SMs in waves (src/cost/model.ts
 * waveEfficiency). A GEMM of output [..., M, N] makes ⌈M/128⌉·⌈N/128⌉ output tiles per product
 * (a 2-D weight folds the leading dims into M: one GEMM of the flattened tokens); when those are
 * fewer than the SMs, the library splits K across blocks too (CUTLASS, docs/efficient_gemm.md,
 * "Parallelized Reductions": split-K for small M·N and large K), each block keeping at least 512
 * of K: `k_splits` is how many ways K may be split. Attention makes one per (batch, head,
 * 128-query block) (FlashAttention-2, Dao 2023, §3.2: parallel over batch, heads and sequence length).
 */
export function nodeTiles(node: Node, s: NodeShapes): Readonly<{ tiles: number; k_splits: number }> {
  const y = s.outputs[0];
  if (!y || y.length === 0) return NOT_TILED;
  const cls = opClass(node);
  if (cls === 'matmul' && (node.op === 'MatMul' || node.op === 'Gemm' || node.op === 'FusedMatMul')) {
    const a = s.inputs[0];
    const b = s.inputs[1];
    if (!a || a.length === 0) return NOT_TILED;
    const n = y[y.length - 1]!;
    const k = intAttr(node, 'transA', 0) ? a[Math.max(0, a.length - 2)]! : a[a.length - 1]!;
    const folded = !b || b.length <= 2;
    const m = folded ? numel(y) / Math.max(1, n) : (y[y.length - 2] ?? 1);
    const batch = folded ? 1 : numel(y) / Math.max(1, m * n);
    return { tiles: batch * Math.ceil(m / TILE) * Math.ceil(n / TILE), k_splits: Math.max(1, Math.floor(k / (4 * TILE))) };
  }
  if (cls === 'attention') {
    const q = s.inputs[0];
    if (!q || q.length < 3) return NOT_TILED;
    return { tiles: q[0]! * intAttr(node, 'num_heads', 1) * Math.ceil(q[1]! / TILE), k_splits: 1 };
  }
  return NOT_TILED;
}
