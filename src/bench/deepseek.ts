// A DeepSeek-V3-shaped, graph-only ONNX decoder for the scale benchmark: N layers (the first few
// dense), E routed experts with top-k routing plus a shared expert, multi-head latent attention
// with its compressed KV cache, bfloat16 weights as external data in a weights.bin that does not
// exist. The MoE block follows the torch-export pattern of the shared MoE models
// (../shared/models/mixtral_8x7b_shaped.graph_only.onnx: router MatMul → Softmax → TopK, then per
// expert Equal → NonZero → Gather rows → SwiGLU → weighted ScatterND(add)), so hxc's MoE detection
// reads it as it reads them. Sizes default to DeepSeek-V3 (arXiv:2412.19437, config.json of
// deepseek-ai/DeepSeek-V3): 61 layers (3 dense), hidden 7168, 128 heads, q_lora 1536, kv_lora 512,
// qk_nope 128, qk_rope 64, v_head 128, 256 experts top-8 of FFN 2048, one shared expert, dense FFN
// 18432, vocab 129280: 274,617 nodes, 671 B parameters (1.34 TB in bfloat16).
//
// `node dist/src/bench/deepseek.js OUT.onnx [--layers N] [--dense N] [--experts E] [--top-k K]`

import fs from 'node:fs';
import { int, ints, OnnxBuilder, str, T, valueInfo as vi } from './onnx-builder.js';

export interface DeepseekShape {
  layers: number;
  denseLayers: number;
  experts: number;
  topK: number;
  hidden: number;
  heads: number;
  qLora: number;
  kvLora: number;
  qkNope: number;
  qkRope: number;
  vHead: number;
  moeFfn: number;
  denseFfn: number;
  sharedExperts: number;
  vocab: number;
  maxPositions: number;
}

export const DEEPSEEK_V3: DeepseekShape = {
  layers: 61,
  denseLayers: 3,
  experts: 256,
  topK: 8,
  hidden: 7168,
  heads: 128,
  qLora: 1536,
  kvLora: 512,
  qkNope: 128,
  qkRope: 64,
  vHead: 128,
  moeFfn: 2048,
  denseFfn: 18432,
  sharedExperts: 1,
  vocab: 129280,
  maxPositions: 163840,
};

const WEIGHT = T.BFLOAT16;

/** The model as ONNX bytes. Deterministic: the same shape gives the same bytes. */
export function deepseekOnnx(s: DeepseekShape = DEEPSEEK_V3): Buffer {
  const b = new OnnxBuilder();
  const weight = (name: string, dims: number[]): string => b.weight(name, dims, WEIGHT);
  const i64 = (values: number[], scalar = false): string => b.i64(values, scalar);
  const f32 = (value: number): string => b.f32(value);
  const act = (value: number): string => b.f16(value, WEIGHT);
  const node = b.node.bind(b);
  const one = b.one.bind(b);

  /** RMSNorm computed in float32, as the Hugging Face modules export. */
  const rmsNorm = (scope: string, x: string, weightName: string, dim: number): string => {
    const w = weight(weightName, [dim]);
    const xf = one(scope, 'Cast', [x], [int('to', T.FLOAT)]);
    const sq = one(scope, 'Pow', [xf, f32(2)]);
    const mean = one(scope, 'ReduceMean', [sq], [ints('axes', [-1]), int('keepdims', 1)]);
    const eps = one(scope, 'Add', [mean, f32(1e-6)]);
    const root = one(scope, 'Sqrt', [eps]);
    const inv = one(scope, 'Div', [f32(1), root]);
    const normed = one(scope, 'Mul', [xf, inv]);
    const back = one(scope, 'Cast', [normed], [int('to', WEIGHT)]);
    return one(scope, 'Mul', [w, back]);
  };
  const rotary = (scope: string, x: string, cos: string, sin: string): string => {
    const [lo, hi] = node(scope, 'Split', [x, i64([s.qkRope / 2, s.qkRope / 2])], [int('axis', -1)], 2) as [string, string];
    const neg = one(scope, 'Neg', [hi]);
    const rot = one(scope, 'Concat', [neg, lo], [int('axis', -1)]);
    return one(scope, 'Add', [one(scope, 'Mul', [x, cos]), one(scope, 'Mul', [rot, sin])]);
  };
  const swiglu = (scope: string, x: string, prefix: string, ffn: number): string => {
    const w1 = one(`${scope}/gate_proj`, 'MatMul', [x, weight(`${prefix}.gate_proj.weight`, [s.hidden, ffn])]);
    const sig = one(`${scope}/act_fn`, 'Sigmoid', [w1]);
    const silu = one(`${scope}/act_fn`, 'Mul', [w1, sig]);
    const w3 = one(`${scope}/up_proj`, 'MatMul', [x, weight(`${prefix}.up_proj.weight`, [s.hidden, ffn])]);
    const h = one(scope, 'Mul', [silu, w3]);
    return one(`${scope}/down_proj`, 'MatMul', [h, weight(`${prefix}.down_proj.weight`, [ffn, s.hidden])]);
  };

  // Embedding, attention mask and rotary tables (shared by every layer).
  let x = one('/model/embed_tokens', 'Gather', [weight('model.embed_tokens.weight', [s.vocab, s.hidden]), 'input_ids'], [int('axis', 0)]);
  const maskBool = one('/model/mask', 'Cast', ['attention_mask'], [int('to', T.BOOL)]);
  const maskWide = one('/model/mask', 'Unsqueeze', [maskBool, i64([1, 2])]);
  const mask = one('/model/mask', 'Where', [maskWide, act(0), act(-3.0e38)]);
  const cos = one('/model/rotary_emb', 'Unsqueeze', [
    one('/model/rotary_emb', 'Gather', [weight('model.rotary_emb.cos_cached', [s.maxPositions, s.qkRope]), 'position_ids'], [int('axis', 0)]),
    i64([1]),
  ]);
  const sin = one('/model/rotary_emb', 'Unsqueeze', [
    one('/model/rotary_emb', 'Gather', [weight('model.rotary_emb.sin_cached', [s.maxPositions, s.qkRope]), 'position_ids'], [int('axis', 0)]),
    i64([1]),
  ]);
  const qkHead = s.qkNope + s.qkRope;

  for (let l = 0; l < s.layers; l++) {
    const L = `/model/layers.${l}`;
    const P = `model.layers.${l}`;
    // Multi-head latent attention: queries through a low-rank bottleneck; keys and values from a
    // compressed latent (kv_lora) plus a shared rotary key (qk_rope) — the two tensors cached.
    const A_ = `${L}/self_attn`;
    const h = rmsNorm(`${L}/input_layernorm`, x, `${P}.input_layernorm.weight`, s.hidden);
    const qa = one(`${A_}/q_a_proj`, 'MatMul', [h, weight(`${P}.self_attn.q_a_proj.weight`, [s.hidden, s.qLora])]);
    const qan = rmsNorm(`${A_}/q_a_layernorm`, qa, `${P}.self_attn.q_a_layernorm.weight`, s.qLora);
    const q = one(`${A_}/q_b_proj`, 'MatMul', [qan, weight(`${P}.self_attn.q_b_proj.weight`, [s.qLora, s.heads * qkHead])]);
    const qh = one(A_, 'Transpose', [one(A_, 'Reshape', [q, i64([0, 0, s.heads, qkHead])])], [ints('perm', [0, 2, 1, 3])]);
    const [qNope, qPe] = node(A_, 'Split', [qh, i64([s.qkNope, s.qkRope])], [int('axis', -1)], 2) as [string, string];
    const qRot = rotary(`${A_}/rotary_q`, qPe, cos, sin);
    const kva = one(`${A_}/kv_a_proj_with_mqa`, 'MatMul', [h, weight(`${P}.self_attn.kv_a_proj_with_mqa.weight`, [s.hidden, s.kvLora + s.qkRope])]);
    const [ckv, kPe] = node(A_, 'Split', [kva, i64([s.kvLora, s.qkRope])], [int('axis', -1)], 2) as [string, string];
    const ckvn = rmsNorm(`${A_}/kv_a_layernorm`, ckv, `${P}.self_attn.kv_a_layernorm.weight`, s.kvLora);
    const ckv4 = one(A_, 'Unsqueeze', [ckvn, i64([1])]);
    const kPe4 = one(A_, 'Transpose', [one(A_, 'Reshape', [kPe, i64([0, 0, 1, s.qkRope])])], [ints('perm', [0, 2, 1, 3])]);
    const kRot = rotary(`${A_}/rotary_k`, kPe4, cos, sin);
    const latent = node(A_, 'Concat', [`past_key_values.${l}.key`, ckv4], [int('axis', 2)], 1, [`present.${l}.key`])[0]!;
    const rope = node(A_, 'Concat', [`past_key_values.${l}.value`, kRot], [int('axis', 2)], 1, [`present.${l}.value`])[0]!;
    const kv = one(`${A_}/kv_b_proj`, 'MatMul', [latent, weight(`${P}.self_attn.kv_b_proj.weight`, [s.kvLora, s.heads * (s.qkNope + s.vHead)])]);
    const kvh = one(A_, 'Transpose', [one(A_, 'Reshape', [kv, i64([0, -1, s.heads, s.qkNope + s.vHead])])], [ints('perm', [0, 2, 1, 3])]);
    const [kNope, v] = node(A_, 'Split', [kvh, i64([s.qkNope, s.vHead])], [int('axis', -1)], 2) as [string, string];
    const kShape = one(A_, 'Shape', [kNope]);
    const kPeAll = one(A_, 'Expand', [rope, one(A_, 'Concat', [one(A_, 'Slice', [kShape, i64([0]), i64([3])]), i64([s.qkRope])], [int('axis', 0)])]);
    const k = one(A_, 'Concat', [kNope, kPeAll], [int('axis', -1)]);
    const qAll = one(A_, 'Concat', [qNope, qRot], [int('axis', -1)]);
    const scores = one(A_, 'Add', [
      one(A_, 'Mul', [one(A_, 'MatMul', [qAll, one(A_, 'Transpose', [k], [ints('perm', [0, 1, 3, 2])])]), act(1 / Math.sqrt(qkHead))]),
      mask,
    ]);
    const probs = one(A_, 'Softmax', [scores], [int('axis', -1)]);
    const ctx = one(A_, 'Reshape', [one(A_, 'Transpose', [one(A_, 'MatMul', [probs, v])], [ints('perm', [0, 2, 1, 3])]), i64([0, 0, s.heads * s.vHead])]);
    const o = one(`${A_}/o_proj`, 'MatMul', [ctx, weight(`${P}.self_attn.o_proj.weight`, [s.heads * s.vHead, s.hidden])]);
    const res = one(L, 'Add', [x, o]);
    const hn = rmsNorm(`${L}/post_attention_layernorm`, res, `${P}.post_attention_layernorm.weight`, s.hidden);

    let ffnOut: string;
    if (l < s.denseLayers) {
      ffnOut = swiglu(`${L}/mlp`, hn, `${P}.mlp`, s.denseFfn);
    } else {
      // Routed experts as torch exports them, and the shared expert on every token.
      const M = `${L}/mlp`;
      const shape = one(M, 'Shape', [hn]);
      const flat = one(M, 'Reshape', [hn, i64([-1, s.hidden])]);
      const logits = one(`${M}/gate`, 'MatMul', [flat, weight(`${P}.mlp.gate.weight`, [s.hidden, s.experts])]);
      const probsE = one(M, 'Softmax', [one(M, 'Cast', [logits], [int('to', T.FLOAT)])], [int('axis', 1)]);
      const [topW, topI] = node(M, 'TopK', [probsE, i64([s.topK])], [int('axis', -1), int('largest', 1), int('sorted', 1)], 2) as [string, string];
      const norm = one(M, 'Div', [topW, one(M, 'ReduceSum', [topW, i64([1])], [int('keepdims', 1)])]);
      const wFlat = one(M, 'Reshape', [one(M, 'Cast', [norm], [int('to', WEIGHT)]), i64([-1])]);
      let acc = one(M, 'Mul', [flat, act(0)]);
      for (let e = 0; e < s.experts; e++) {
        const E = `${M}/experts.${e}`;
        const hit = one(E, 'NonZero', [one(E, 'Equal', [topI, i64([e], true)])]);
        const tok = one(E, 'Gather', [hit, i64([0], true)], [int('axis', 0)]);
        const slot = one(E, 'Gather', [hit, i64([1], true)], [int('axis', 0)]);
        const rows = one(E, 'Gather', [flat, tok], [int('axis', 0)]);
        const y = swiglu(E, rows, `${P}.mlp.experts.${e}`, s.moeFfn);
        const at = one(E, 'Add', [one(E, 'Mul', [tok, i64([s.topK], true)]), slot]);
        const gw = one(E, 'Unsqueeze', [one(E, 'Gather', [wFlat, at], [int('axis', 0)]), i64([1])]);
        acc = one(E, 'ScatterND', [acc, one(E, 'Unsqueeze', [tok, i64([1])]), one(E, 'Mul', [y, gw])], [str('reduction', 'add')]);
      }
      let shared = acc;
      for (let k = 0; k < s.sharedExperts; k++)
        shared = one(M, 'Add', [shared, swiglu(`${M}/shared_experts${k ? `.${k}` : ''}`, flat, `${P}.mlp.shared_experts${k ? `.${k}` : ''}`, s.moeFfn)]);
      ffnOut = one(M, 'Reshape', [shared, shape]);
    }
    x = one(L, 'Add', [res, ffnOut]);
  }
  const last = rmsNorm('/model/norm', x, 'model.norm.weight', s.hidden);
  node('/lm_head', 'MatMul', [last, weight('lm_head.weight', [s.hidden, s.vocab])], [], 1, ['logits']);

  const total = 'past_sequence_length + sequence_length';
  const inputs = [
    vi('input_ids', T.INT64, ['batch_size', 'sequence_length']),
    vi('attention_mask', T.INT64, ['batch_size', total]),
    vi('position_ids', T.INT64, ['batch_size', 'sequence_length']),
  ];
  const outputs = [vi('logits', WEIGHT, ['batch_size', 'sequence_length', s.vocab])];
  for (let l = 0; l < s.layers; l++) {
    inputs.push(
      vi(`past_key_values.${l}.key`, WEIGHT, ['batch_size', 1, 'past_sequence_length', s.kvLora]),
      vi(`past_key_values.${l}.value`, WEIGHT, ['batch_size', 1, 'past_sequence_length', s.qkRope]),
    );
    outputs.push(vi(`present.${l}.key`, WEIGHT, ['batch_size', 1, total, s.kvLora]), vi(`present.${l}.value`, WEIGHT, ['batch_size', 1, total, s.qkRope]));
  }
  return b.encode('deepseek_v3_shaped', 'hxc-bench deepseek.ts', inputs, outputs);
}

/** Write the model (and a dims file) to `file`; returns the node count. */
export function writeDeepseek(file: string, shape: DeepseekShape = DEEPSEEK_V3): void {
  fs.writeFileSync(file, deepseekOnnx(shape));
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const [out, ...rest] = process.argv.slice(2);
  if (!out) {
    process.stderr.write('usage: node dist/src/bench/deepseek.js OUT.onnx [--layers N] [--dense N] [--experts E] [--top-k K]\n');
    process.exit(2);
  }
  const shape = { ...DEEPSEEK_V3 };
  for (let i = 0; i < rest.length; i += 2) {
    const v = Number(rest[i + 1]);
    if (rest[i] === '--layers') shape.layers = v;
    else if (rest[i] === '--dense') shape.denseLayers = v;
    else if (rest[i] === '--experts') shape.experts = v;
    else if (rest[i] === '--top-k') shape.topK = v;
  }
  writeDeepseek(out, shape);
}
