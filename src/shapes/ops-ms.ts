// onnxruntime contrib operators (domain com.microsoft), after docs/ContribOperators.md and the
// shape-inference functions in onnxruntime/core/graph/contrib_ops/bert_defs.cc. Attention ops
// grow the KV cache: present = past + new tokens, kept symbolic (`past_sequence_length + seq`).

import type { Dim, Shape } from '../ir/graph.js';
import { fail, sameAs, type OpCall, type Out, type Rule } from './rule.js';
import { matmulShape, swapLast } from './ops-nn.js';
import { compareDims } from './constant-fold.js';
import { dimAdd, dimDivExact, dimMul } from './symbolic.js';

function divOrFresh(c: OpCall, a: Dim, b: Dim, tag: string): Dim {
  return dimDivExact(a, b) ?? c.fresh(tag);
}

/**
 * Attention: input [B, S, in_hidden] × merged weights [in_hidden, h + h + v]; output [B, S, v];
 * present [2, B, N, P + S, head] from past [2, B, N, P, head] (same as past with a shared buffer).
 */
const attention: Rule = (c) => {
  const x = c.shape(0, 3);
  const w = c.shape(1, 2);
  const sizes = c.attrInts('qkv_hidden_sizes');
  const v = sizes?.[2] ?? divOrFresh(c, w[1]!, 3, 'v_hidden');
  const hidden = sizes?.[0] ?? v;
  const heads = c.attrInt('num_heads', 1);
  const outs: Out[] = [{ dtype: c.dtype(0), shape: [x[0]!, x[1]!, v] }];
  if (c.node.outputs.length > 1) {
    const past = c.has(4) ? c.shape(4, 5) : null;
    let present: Shape;
    if (past && c.attrInt('past_present_share_buffer', 0)) present = past;
    else if (past) present = [past[0]!, past[1]!, past[2]!, dimAdd(past[3]!, x[1]!), past[4]!];
    else present = [2, x[0]!, heads, x[1]!, divOrFresh(c, hidden, heads, 'head_size')];
    outs.push({ dtype: c.dtype(0), shape: present });
  }
  return outs;
};

/** kv sequence length of MultiHeadAttention's key: [B, L, D], BNSH [B, N, L, H] or packed KV [B, L, N, 2, H]. */
function kvLength(q: Shape, key: Shape | null): Dim {
  if (!key) return q[1]!;
  return key.length === 4 ? key[2]! : key[1]!;
}

/** MultiHeadAttention: output [B, S, v_hidden]; present_key/value [B, N, P + L, H]. */
const multiHeadAttention: Rule = (c) => {
  const q = c.shape(0, 3);
  const key = c.has(1) ? c.shape(1, 3) : null;
  const value = c.has(2) ? c.shapeOrNull(2) : null;
  const heads = c.attrInt('num_heads', 1);
  let v: Dim;
  if (q.length === 5) v = dimMul(q[2]!, q[4]!);
  else if (value && value.length === 3) v = value[2]!;
  else if (value && value.length === 4) v = dimMul(value[1]!, value[3]!);
  else v = q[2]!;
  const outs: (Out | undefined)[] = [{ dtype: c.dtype(0), shape: [q[0]!, q[1]!, v] }];
  if (c.node.outputs.length > 2) {
    const past = c.has(6) ? c.shape(6, 4) : null;
    const head = q.length === 5 ? q[4]! : divOrFresh(c, q[2]!, heads, 'head_size');
    let present: Shape;
    if (past) present = [past[0]!, past[1]!, dimAdd(past[2]!, kvLength(q, key)), past[3]!];
    else if (key && key.length === 4) present = key;
    else present = [q[0]!, heads, kvLength(q, key), head];
    outs.push({ dtype: c.dtype(0), shape: present }, { dtype: c.dtype(0), shape: present.slice() });
  }
  return outs;
};

/**
 * GroupQueryAttention: output [B, S, N·H]; present [B, kvN, T, H] where T is the
 * total_sequence_length input. ORT sizes present as max(past length, T): T when the past length
 * is symbolic or 0, the past buffer when it is a fixed size (past and present share a buffer).
 */
const groupQueryAttention: Rule = (c) => {
  const q = c.shape(0, 3);
  const heads = c.attrInt('num_heads', 1);
  const kvHeads = c.attrInt('kv_num_heads', heads);
  const packed = !c.has(2);
  const head = packed ? divOrFresh(c, q[2]!, heads + 2 * kvHeads, 'head_size') : divOrFresh(c, q[2]!, heads, 'head_size');
  const outs: (Out | undefined)[] = [{ dtype: c.dtype(0), shape: [q[0]!, q[1]!, packed ? dimMul(head, heads) : q[2]!] }];
  if (c.node.outputs.length > 2) {
    const past = c.has(3) ? c.shape(3, 4) : null;
    const kvSeq = packed ? q[1]! : c.shape(1, 2)[1]!;
    const total = c.has(6) ? c.value(6)?.[0] : undefined;
    let length: Dim;
    if (past) {
      const p = past[2]!;
      if (total === undefined) length = dimAdd(p, kvSeq);
      else if (typeof p === 'number' && p > 0) length = compareDims(total, p) === 'gt' ? total : p;
      else length = total;
    } else length = total ?? kvSeq;
    const present: Shape = [q[0]!, kvHeads, length, past ? past[3]! : head];
    const dtype = past ? c.dtype(3) : c.dtype(0);
    outs.push({ dtype, shape: present }, { dtype, shape: present.slice() });
  }
  return outs;
};

/** SkipLayerNormalization / SkipSimplifiedLayerNormalization: output, mean, inv_std_var, input+skip(+bias). */
const skipLayerNorm: Rule = (c) => {
  const x = c.shapeOrNull(0);
  const stats: Out = { dtype: 'float32', shape: x ? [...x.slice(0, -1), 1] : null };
  return [sameAs(c), stats, { ...stats }, sameAs(c)];
};

/** FusedMatMul: MatMul with transA / transB on the last two axes, times alpha. */
const fusedMatMul: Rule = (c) => {
  if (c.attrInt('transBatchA', 0) || c.attrInt('transBatchB', 0)) fail('FusedMatMul transBatch is not supported');
  let a = c.shape(0);
  let b = c.shape(1);
  if (c.attrInt('transA', 0)) a = swapLast(a);
  if (c.attrInt('transB', 0)) b = swapLast(b);
  return [{ dtype: c.dtype(0), shape: matmulShape(a, b) }];
};

/** MatMulNBits: A [..., K] times a packed [N, blocks, blob] weight: [..., N] with N an attribute. */
const matMulNBits: Rule = (c) => {
  const a = c.shape(0);
  return [{ dtype: c.dtype(0), shape: [...a.slice(0, -1), c.attrInt('N', 0)] }];
};

/** GemmFastGelu: MatMul(X, W) + bias then FastGelu. */
const gemmFastGelu: Rule = (c) => [{ dtype: c.dtype(0), shape: matmulShape(c.shape(0), c.shape(1)) }];

/** BiasSplitGelu: the last dim is halved (left half × gelu(right half)). */
const biasSplitGelu: Rule = (c) => {
  const x = c.shape(0, 1);
  return [{ dtype: c.dtype(0), shape: [...x.slice(0, -1), divOrFresh(c, x[x.length - 1]!, 2, 'half')] }];
};

/** EmbedLayerNormalization: output [B, S, hidden], mask_index [B] int32, embedding_sum like output. */
const embedLayerNorm: Rule = (c) => {
  const ids = c.shape(0, 2);
  const word = c.shape(2, 2);
  const out: Out = { dtype: c.dtype(2), shape: [ids[0]!, ids[1]!, word[1]!] };
  return [out, { dtype: 'int32', shape: [ids[0]!] }, { ...out }];
};

const same: Rule = (c) => [sameAs(c)];

export const MS_RULES: Record<string, Rule> = {
  Attention: attention,
  MultiHeadAttention: multiHeadAttention,
  DecoderMaskedMultiHeadAttention: multiHeadAttention,
  GroupQueryAttention: groupQueryAttention,
  SkipLayerNormalization: skipLayerNorm,
  SkipSimplifiedLayerNormalization: skipLayerNorm,
  RotaryEmbedding: same,
  FusedMatMul: fusedMatMul,
  TransposeMatMul: fusedMatMul,
  MatMulNBits: matMulNBits,
  GemmFastGelu: gemmFastGelu,
  BiasGelu: same,
  FastGelu: same,
  QuickGelu: same,
  Gelu: same,
  BiasAdd: same,
  BiasSplitGelu: biasSplitGelu,
  BiasSoftmax: same,
  GroupNorm: same,
  SkipGroupNorm: (c) => [sameAs(c), sameAs(c)],
  EmbedLayerNormalization: embedLayerNorm,
  // MoE / QMoE: routed expert FFNs; the output has the input's shape ([tokens, hidden] or [B, S, hidden]).
  MoE: same,
  QMoE: same,
};
