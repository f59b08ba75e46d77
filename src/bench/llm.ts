// Graph-only decoder LLMs of published shapes for the fidelity table (issue 17): the graph
// onnxruntime-genai's model builder writes for onnxruntime's CUDA EP (onnxruntime-genai
// src/python/py/models/builder.py): per layer a (Skip)SimplifiedLayerNormalization or
// LayerNormalization, q/k/v projections, com.microsoft GroupQueryAttention with rotary applied
// inside, the output projection, and the MLP (SwiGLU as Sigmoid·Mul, or GELU); GPT-J and Falcon's
// parallel attention + MLP; Mixtral's experts in the torch-export routing pattern the shared MoE
// models use (router → Softmax → TopK, per expert Equal → NonZero → Gather → SwiGLU → ScatterND).
// Weights are external data in a weights.bin that does not exist. Precision: float16, bfloat16,
// or fp8 (weights in float8e4m3fn and each projection's input cast to it: the fp8 GEMMs of
// TensorRT-LLM and vLLM on Hopper/Ada; the KV cache in fp8 too, as TensorRT-LLM's
// `--fp8_kv_cache`). Shapes from each model's config.json on the Hugging Face Hub (cited per entry).
//
// `node dist/src/bench/llm.js NAME OUT.onnx [--dtype float16|bfloat16|fp8] [--layers N]`

import fs from 'node:fs';
import { FLOAT8E4M3FN, float, int, OnnxBuilder, str, T, valueInfo as vi } from './onnx-builder.js';

export interface LlmShape {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  /** SwiGLU (Llama, Mistral) or a GELU MLP (GPT-J, Falcon). */
  mlp: 'swiglu' | 'gelu';
  /** Attention and MLP read the same normalised input and add to the residual together (GPT-J, Falcon). */
  parallel: boolean;
  norm: 'rms' | 'layer';
  /** Biases on the MLP and the LM head (GPT-J). */
  bias: boolean;
  /** Routed experts (top-k) replacing the MLP; 0 = dense. */
  experts: number;
  topK: number;
  maxPositions: number;
  /**
   * The attention op: GroupQueryAttention with rotary inside (onnxruntime-genai's builder; the
   * default), or MultiHeadAttention as onnxruntime's transformer optimizer fuses it (kvHeads =
   * heads, causal, no rotary: a test form).
   */
  attention?: 'gqa' | 'mha';
}

const llama = (layers: number, hidden: number, heads: number, kvHeads: number, ffn: number, vocab: number): LlmShape => ({
  layers,
  hidden,
  heads,
  kvHeads,
  ffn,
  vocab,
  mlp: 'swiglu',
  parallel: false,
  norm: 'rms',
  bias: false,
  experts: 0,
  topK: 0,
  maxPositions: 8192,
});

/** Published shapes (config.json of each checkpoint on the Hugging Face Hub). */
export const LLM_SHAPES: Readonly<Record<string, LlmShape>> = {
  // meta-llama/Llama-2-7b-hf, -13b-hf, -70b-hf
  'Llama-2-7B': llama(32, 4096, 32, 32, 11008, 32000),
  'Llama-2-13B': llama(40, 5120, 40, 40, 13824, 32000),
  'Llama-2-70B': llama(80, 8192, 64, 8, 28672, 32000),
  // meta-llama/Meta-Llama-3-8B, Llama-3.1-8B (same shape), Meta-Llama-3-70B, Llama-3.1/3.3-70B (same shape)
  'Llama-3-8B': llama(32, 4096, 32, 8, 14336, 128256),
  'Llama-3-70B': llama(80, 8192, 64, 8, 28672, 128256),
  // EleutherAI/gpt-j-6b: 28 layers, n_embd 4096, 16 heads, n_inner 16384 (4·n_embd), vocab 50400,
  // parallel attention + MLP from one LayerNorm, gelu_new, biases on the MLP.
  'GPT-J-6B': {
    layers: 28,
    hidden: 4096,
    heads: 16,
    kvHeads: 16,
    ffn: 16384,
    vocab: 50400,
    mlp: 'gelu',
    parallel: true,
    norm: 'layer',
    bias: true,
    experts: 0,
    topK: 0,
    maxPositions: 2048,
  },
  // tiiuae/falcon-180B: 80 layers, hidden 14848, 232 heads, 8 KV heads, FFN 4·hidden, vocab 65024,
  // parallel attention + MLP (new_decoder_architecture), GELU, no biases.
  'Falcon-180B': {
    layers: 80,
    hidden: 14848,
    heads: 232,
    kvHeads: 8,
    ffn: 59392,
    vocab: 65024,
    mlp: 'gelu',
    parallel: true,
    norm: 'layer',
    bias: false,
    experts: 0,
    topK: 0,
    maxPositions: 2048,
  },
  // mistralai/Mixtral-8x7B-v0.1: 32 layers, hidden 4096, 32 heads, 8 KV heads, 8 experts top-2 of FFN 14336, vocab 32000.
  'Mixtral-8x7B': { ...llama(32, 4096, 32, 8, 14336, 32000), experts: 8, topK: 2, maxPositions: 32768 },
};

export type LlmDtype = 'float16' | 'bfloat16' | 'fp8' | 'float32';

/**
 * The model as ONNX bytes. Deterministic: the same shape and dtype give the same bytes. float32
 * writes its weights inline (a small shape that runs: the tests check plans of it against the
 * unsplit model); the other dtypes are graph-only.
 */
export function llmOnnx(s: LlmShape, dtype: LlmDtype = 'float16'): Buffer {
  const b = new OnnxBuilder(dtype === 'float32');
  const ACT = dtype === 'bfloat16' ? T.BFLOAT16 : dtype === 'float32' ? T.FLOAT : T.FLOAT16;
  const fp8 = dtype === 'fp8';
  const W = fp8 ? FLOAT8E4M3FN : ACT;
  const KV = fp8 ? FLOAT8E4M3FN : ACT;
  const headDim = s.hidden / s.heads;
  const ms = 'com.microsoft';
  const one = b.one.bind(b);
  const node = b.node.bind(b);
  /** A projection: fp8 GEMMs read their input in fp8 and write the activation type. */
  // Each activation is quantized once, however many projections read it (q, k and v share one).
  const quantized = new Map<string, string>();
  const linear = (scope: string, x: string, name: string, k: number, n: number, bias = false): string => {
    let input = x;
    if (fp8) {
      input = quantized.get(x) ?? one(scope, 'Cast', [x], [int('to', FLOAT8E4M3FN)]);
      quantized.set(x, input);
    }
    let y = one(scope, 'MatMul', [input, b.weight(`${name}.weight`, [k, n], W)]);
    if (fp8) y = one(scope, 'Cast', [y], [int('to', ACT)]);
    if (bias) y = one(scope, 'Add', [y, b.weight(`${name}.bias`, [n], ACT)]);
    return y;
  };
  const norm = (scope: string, x: string, name: string): string => {
    const w = b.weight(`${name}.weight`, [s.hidden], ACT);
    if (s.norm === 'rms') return one(scope, 'SimplifiedLayerNormalization', [x, w], [int('axis', -1), float('epsilon', 1e-5)]);
    return one(scope, 'LayerNormalization', [x, w, b.weight(`${name}.bias`, [s.hidden], ACT)], [int('axis', -1), float('epsilon', 1e-5)]);
  };
  const mlp = (scope: string, x: string, prefix: string, ffn: number): string => {
    if (s.mlp === 'gelu') {
      const h = linear(`${scope}/fc_in`, x, `${prefix}.fc_in`, s.hidden, ffn, s.bias);
      const g = node(`${scope}/act`, 'FastGelu', [h], [], 1, undefined, ms)[0]!;
      return linear(`${scope}/fc_out`, g, `${prefix}.fc_out`, ffn, s.hidden, s.bias);
    }
    const gate = linear(`${scope}/gate_proj`, x, `${prefix}.gate_proj`, s.hidden, ffn);
    const silu = one(`${scope}/act_fn`, 'Mul', [gate, one(`${scope}/act_fn`, 'Sigmoid', [gate])]);
    const up = linear(`${scope}/up_proj`, x, `${prefix}.up_proj`, s.hidden, ffn);
    return linear(`${scope}/down_proj`, one(scope, 'Mul', [silu, up]), `${prefix}.down_proj`, ffn, s.hidden);
  };
  const moe = (scope: string, x: string, prefix: string): string => {
    const shape = one(scope, 'Shape', [x]);
    const flat = one(scope, 'Reshape', [x, b.i64([-1, s.hidden])]);
    const logits = linear(`${scope}/gate`, flat, `${prefix}.gate`, s.hidden, s.experts);
    const probs = one(scope, 'Softmax', [one(scope, 'Cast', [logits], [int('to', T.FLOAT)])], [int('axis', 1)]);
    const [topW, topI] = node(scope, 'TopK', [probs, b.i64([s.topK])], [int('axis', -1), int('largest', 1), int('sorted', 1)], 2) as [string, string];
    const normW = one(scope, 'Div', [topW, one(scope, 'ReduceSum', [topW, b.i64([1])], [int('keepdims', 1)])]);
    const wFlat = one(scope, 'Reshape', [one(scope, 'Cast', [normW], [int('to', ACT)]), b.i64([-1])]);
    let acc = one(scope, 'Mul', [flat, ACT === T.FLOAT ? b.f32(0) : b.f16(0, ACT)]);
    for (let e = 0; e < s.experts; e++) {
      const E = `${scope}/experts.${e}`;
      const hit = one(E, 'NonZero', [one(E, 'Equal', [topI, b.i64([e], true)])]);
      const tok = one(E, 'Gather', [hit, b.i64([0], true)], [int('axis', 0)]);
      const slot = one(E, 'Gather', [hit, b.i64([1], true)], [int('axis', 0)]);
      const y = mlp(E, one(E, 'Gather', [flat, tok], [int('axis', 0)]), `${prefix}.experts.${e}`, s.ffn);
      const at = one(E, 'Add', [one(E, 'Mul', [tok, b.i64([s.topK], true)]), slot]);
      const gw = one(E, 'Unsqueeze', [one(E, 'Gather', [wFlat, at], [int('axis', 0)]), b.i64([1])]);
      acc = one(E, 'ScatterND', [acc, one(E, 'Unsqueeze', [tok, b.i64([1])]), one(E, 'Mul', [y, gw])], [str('reduction', 'add')]);
    }
    return one(scope, 'Reshape', [acc, shape]);
  };

  // Embedding; GroupQueryAttention's sequence lengths from the attention mask (the builder's
  // "attn_mask_reformat": seqlens_k = sum(mask) − 1, total_sequence_length = mask width).
  let x = one('/model/embed_tokens', 'Gather', [b.weight('model.embed_tokens.weight', [s.vocab, s.hidden], ACT), 'input_ids'], [int('axis', 0)]);
  const M = '/model/attn_mask_reformat';
  const seqlens = one(
    M,
    'Cast',
    [one(M, 'Sub', [one(M, 'ReduceSum', ['attention_mask', b.i64([1])], [int('keepdims', 0)]), b.i64([1], true)])],
    [int('to', T.INT32)],
  );
  const total = one(M, 'Cast', [one(M, 'Gather', [one(M, 'Shape', ['attention_mask']), b.i64([1], true)], [int('axis', 0)])], [int('to', T.INT32)]);
  const cosCache = b.weight('model.rotary_emb.cos_cache', [s.maxPositions, headDim / 2], ACT);
  const sinCache = b.weight('model.rotary_emb.sin_cache', [s.maxPositions, headDim / 2], ACT);

  for (let l = 0; l < s.layers; l++) {
    const L = `/model/layers.${l}`;
    const P = `model.layers.${l}`;
    const A = `${L}/self_attn`;
    const h = norm(`${L}/input_layernorm`, x, `${P}.input_layernorm`);
    const q = linear(`${A}/q_proj`, h, `${P}.self_attn.q_proj`, s.hidden, s.hidden);
    const k = linear(`${A}/k_proj`, h, `${P}.self_attn.k_proj`, s.hidden, s.kvHeads * headDim);
    const v = linear(`${A}/v_proj`, h, `${P}.self_attn.v_proj`, s.hidden, s.kvHeads * headDim);
    const past = [`past_key_values.${l}.key`, `past_key_values.${l}.value`];
    const present = [`present.${l}.key`, `present.${l}.value`];
    const [ctx] = (
      s.attention === 'mha'
        ? node(
            `${A}/MultiHeadAttention`,
            'MultiHeadAttention',
            [q, k, v, '', '', '', ...past],
            [int('num_heads', s.heads), int('unidirectional', 1)],
            3,
            [`${A}/MultiHeadAttention_output_0`, ...present],
            ms,
          )
        : node(
            `${A}/GroupQueryAttention`,
            'GroupQueryAttention',
            [q, k, v, ...past, seqlens, total, cosCache, sinCache],
            [int('num_heads', s.heads), int('kv_num_heads', s.kvHeads), int('do_rotary', 1)],
            3,
            [`${A}/GroupQueryAttention_output_0`, ...present],
            ms,
          )
    ) as [string];
    const o = linear(`${A}/o_proj`, ctx, `${P}.self_attn.o_proj`, s.hidden, s.hidden);
    if (s.parallel) {
      const f = mlp(`${L}/mlp`, h, `${P}.mlp`, s.ffn);
      x = one(L, 'Add', [one(L, 'Add', [x, o]), f]);
    } else {
      const res = one(L, 'Add', [x, o]);
      const hn = norm(`${L}/post_attention_layernorm`, res, `${P}.post_attention_layernorm`);
      const f = s.experts > 0 ? moe(`${L}/block_sparse_moe`, hn, `${P}.block_sparse_moe`) : mlp(`${L}/mlp`, hn, `${P}.mlp`, s.ffn);
      x = one(L, 'Add', [res, f]);
    }
  }
  const last = norm('/model/norm', x, 'model.norm');
  const logits = linear('/lm_head', last, 'lm_head', s.hidden, s.vocab, s.bias);
  node('/lm_head', 'Identity', [logits], [], 1, ['logits']);

  const all = 'past_sequence_length + sequence_length';
  const inputs = [vi('input_ids', T.INT64, ['batch_size', 'sequence_length']), vi('attention_mask', T.INT64, ['batch_size', all])];
  const outputs = [vi('logits', ACT, ['batch_size', 'sequence_length', s.vocab])];
  for (let l = 0; l < s.layers; l++) {
    inputs.push(
      vi(`past_key_values.${l}.key`, KV, ['batch_size', s.kvHeads, 'past_sequence_length', headDim]),
      vi(`past_key_values.${l}.value`, KV, ['batch_size', s.kvHeads, 'past_sequence_length', headDim]),
    );
    outputs.push(vi(`present.${l}.key`, KV, ['batch_size', s.kvHeads, all, headDim]), vi(`present.${l}.value`, KV, ['batch_size', s.kvHeads, all, headDim]));
  }
  // float8 types need IR 9 and opset 19. (No standard ONNX op multiplies fp8 tensors — exporters
  // write QuantizeLinear/DequantizeLinear pairs a runtime folds into an fp8 GEMM; here the MatMul
  // reads fp8 directly, which states the same cost and is a graph for planning only.)
  return b.encode(
    'decoder_lm',
    'hxc-bench llm.ts',
    inputs,
    outputs,
    [
      { domain: '', version: fp8 ? 19 : 17 },
      { domain: ms, version: 1 },
    ],
    fp8 ? 9 : 8,
  );
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const [name, out, ...rest] = process.argv.slice(2);
  const shape = name ? LLM_SHAPES[name] : undefined;
  if (!shape || !out) {
    process.stderr.write(
      `usage: node dist/src/bench/llm.js NAME OUT.onnx [--dtype float16|bfloat16|fp8] [--layers N]\n  NAME: ${Object.keys(LLM_SHAPES).join(', ')}\n`,
    );
    process.exit(2);
  }
  let dtype: LlmDtype = 'float16';
  const s = { ...shape };
  for (let i = 0; i < rest.length; i += 2) {
    if (rest[i] === '--dtype') dtype = rest[i + 1] as LlmDtype;
    else if (rest[i] === '--layers') s.layers = Number(rest[i + 1]);
  }
  fs.writeFileSync(out, llmOnnx(s, dtype));
}
