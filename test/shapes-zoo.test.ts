// Operator zoos against onnxruntime: hand-built graphs of every op family (opset 18, 11 and 9, and
// com.microsoft) whose inferred shapes are compared with what ORT computes; and 100k nodes of real
// shape arithmetic typed with symbols intact.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { onnx as OnnxNs } from 'onnx-proto';
import { bindPass } from '../passes/bind.js';
import { importPass } from '../passes/import.js';
import { shapesPass, type ShapesResult } from '../passes/shapes.js';
import { verifyPass } from '../passes/verify.js';
import { Diagnostics } from '../src/diag/diagnostics.js';
import { importOnnx } from '../src/import/onnx.js';
import type { Model, Node } from '../src/ir/graph.js';
import { verifyGraph } from '../src/ir/verify.js';
import { Context } from '../src/pass/context.js';
import { inferShapes } from '../src/shapes/infer.js';
import { SHARED_MODELS } from './helpers.js';
import { onnx, valueInfo } from './onnx-builder.js';
import { compareWithOrt, feedsFor, runOrt } from './shapes-oracle.js';

// ---- operator zoos against onnxruntime ------------------------------------------------------------

type AttrValue = number | number[] | string | { f: number } | { floats: number[] } | { tensor: OnnxNs.ITensorProto };
type ZooNode = [op: string, inputs: string[], outputs: string[], attrs?: Record<string, AttrValue>, domain?: string];

function attribute(name: string, v: AttrValue): OnnxNs.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (typeof v === 'string') return { name, type: T.STRING, s: Buffer.from(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('f' in v) return { name, type: T.FLOAT, f: v.f };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.TENSOR, t: v.tensor };
}

function int64s(name: string, dims: number[], values: number[]): OnnxNs.ITensorProto {
  return { name, dataType: 7, dims, rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) };
}

function floats(name: string, dims: number[], values: number[]): OnnxNs.ITensorProto {
  return { name, dataType: 1, dims, rawData: new Uint8Array(Float32Array.from(values).buffer) };
}

interface Zoo {
  opset: number;
  inputs: [string, number, number[]][];
  initializers: OnnxNs.ITensorProto[];
  nodes: ZooNode[];
}

async function checkZoo(t: { diagnostic(m: string): void }, label: string, zoo: Zoo): Promise<void> {
  const bytes = onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [
        { domain: '', version: zoo.opset },
        { domain: 'com.microsoft', version: 1 },
      ],
      graph: {
        name: label,
        node: zoo.nodes.map(([op, input, output, attrs, domain], k) => ({
          name: `${op}_${k}`,
          opType: op,
          domain: domain ?? '',
          input,
          output,
          attribute: Object.entries(attrs ?? {}).map(([n, v]) => attribute(n, v)),
        })),
        input: zoo.inputs.map(([n, e, d]) => valueInfo(n, e, d)),
        initializer: zoo.initializers,
        output: [{ name: zoo.nodes[zoo.nodes.length - 1]![2][0]! }],
      },
    }),
  ).finish();
  const model = importOnnx(`${label}.onnx`, Buffer.from(bytes), new Diagnostics()) as unknown as Model;
  const { order } = verifyGraph(model.graph, label);
  const result = { ...inferShapes(model.graph, order, { opsets: model.opsets, dims: {} }), symbols: [] };
  assert.deepEqual(result.unknown_ops, []);
  assert.deepEqual(result.rule_errors, []);
  assert.deepEqual(
    result.notes.filter((n) => !/fresh symbol/.test(n)),
    [],
  );
  const real = await runOrt(bytes, feedsFor(model.graph, result, {}));
  const report = compareWithOrt(model.graph.nodes, result, real, {});
  t.diagnostic(`${label}: ${report.checked} values checked against onnxruntime`);
  assert.deepEqual(report.mismatches, []);
}

test('operator zoo (opset 18) matches onnxruntime', async (t) => {
  const i = int64s;
  await checkZoo(t, 'zoo18', {
    opset: 18,
    inputs: [
      ['x', 1, [2, 3, 4]],
      ['x7', 1, [2, 7, 4]],
      ['img', 1, [1, 4, 9, 9]],
      ['v3', 1, [3]],
      ['seq', 1, [5, 2, 3]],
      ['m34', 1, [3, 4]],
      ['m33', 1, [2, 3, 3]],
      ['boxes', 1, [1, 6, 4]],
      ['scores', 1, [1, 2, 6]],
    ],
    initializers: [
      i('shape0', [2], [0, -1]),
      i('ax1', [1], [1]),
      i('axm1', [1], [-1]),
      i('ax2', [1], [2]),
      i('zero1', [1], [0]),
      i('split25', [2], [2, 5]),
      i('s_neg', [1], [-1]),
      i('e_neg', [1], [-1000]),
      i('st_neg', [1], [-2]),
      i('s1', [1], [1]),
      i('e_max', [1], [2 ** 53]),
      i('e16', [1], [16]),
      i('idx', [2, 2], [0, 1, 2, 0]),
      i('idx0', [], [2]),
      i('idx_el', [2, 2, 4], [0, 1, 2, 0, 1, 1, 0, 2, 2, 2, 1, 0, 0, 0, 1, 1]),
      i('gnd', [2, 1], [1, 0]),
      i('exp', [3], [2, 1, 4]),
      i('reps', [3], [2, 1, 3]),
      i('pads', [6], [0, 1, 0, 0, 2, 0]),
      i('pads_ax', [2], [1, 3]),
      i('k2', [1], [2]),
      i('depth', [], [5]),
      i('onv', [2], [0, 1]),
      i('r0', [], [1]),
      i('r1', [], [10]),
      i('r2', [], [3]),
      i('cshape', [2], [3, 2]),
      i('cumax', [], [1]),
      floats('scales', [4], [1, 1, 2, 0.5]),
      i('sizes', [4], [1, 4, 5, 3]),
      floats('w_conv', [6, 2, 3, 3], new Array(108).fill(0.1)),
      floats('w_ct', [4, 3, 3, 3], new Array(108).fill(0.1)),
      floats('bn', [4], [1, 1, 1, 1]),
      floats('ln', [12], new Array(12).fill(1)),
      floats('mat', [4, 6], new Array(24).fill(0.5)),
      floats('bmat', [5, 4, 2], new Array(40).fill(0.5)),
      floats('vec4', [4], [1, 2, 3, 4]),
      floats('vec6', [6], [1, 2, 3, 4, 5, 6]),
      floats('lw', [2, 16, 3], new Array(96).fill(0.1)),
      floats('lr', [2, 16, 4], new Array(128).fill(0.1)),
      floats('qs', [], [0.1]),
      { name: 'qz', dataType: 2, dims: [], rawData: new Uint8Array([3]) },
      i('max_boxes', [1], [3]),
    ],
    nodes: [
      ['Reshape', ['x', 'shape0'], ['reshape']],
      ['Flatten', ['x'], ['flatten'], { axis: -1 }],
      ['Transpose', ['x'], ['transpose'], { perm: [2, 0, 1] }],
      ['Concat', ['x', 'x7'], ['concat'], { axis: 1 }],
      ['Split', ['x7'], ['split_a', 'split_b', 'split_c'], { axis: 1, num_outputs: 3 }],
      ['Split', ['x7', 'split25'], ['split_d', 'split_e'], { axis: 1 }],
      ['Slice', ['x7', 's_neg', 'e_neg', 'ax1', 'st_neg'], ['slice_rev']],
      ['Slice', ['x7', 's1', 'e_max', 'ax1'], ['slice_max']],
      ['Gather', ['x', 'idx'], ['gather'], { axis: 1 }],
      ['Gather', ['x', 'idx0'], ['gather_scalar'], { axis: -1 }],
      ['Cast', ['gather_scalar'], ['gather_i64'], { to: 7 }],
      ['GatherElements', ['x', 'idx_el'], ['gather_el'], { axis: 1 }],
      ['GatherND', ['x', 'gnd'], ['gather_nd'], { batch_dims: 1 }],
      ['ScatterND', ['x', 'gnd', 'x'], ['scatter_nd']],
      ['ScatterElements', ['x', 'idx_el', 'gather_el'], ['scatter_el'], { axis: 1 }],
      ['Unsqueeze', ['x', 'axm1'], ['unsqueeze']],
      ['Squeeze', ['unsqueeze', 'axm1'], ['squeeze']],
      ['Unsqueeze', ['v3', 'axm1'], ['v3_col']],
      ['Expand', ['v3_col', 'exp'], ['expand']],
      ['Tile', ['x', 'reps'], ['tile']],
      ['Pad', ['x', 'pads'], ['pad']],
      ['Pad', ['x', 'pads_ax', '', 'ax2'], ['pad_axes']],
      ['TopK', ['x7', 'k2'], ['topk_v', 'topk_i'], { axis: 1 }],
      ['OneHot', ['idx', 'depth', 'onv'], ['onehot'], { axis: 1 }],
      ['Transpose', ['m34'], ['m34_tt'], { perm: [1, 0] }],
      ['Transpose', ['m34_tt'], ['m34_t'], { perm: [1, 0] }],
      ['Greater', ['m34', 'm34_t'], ['greater']],
      ['NonZero', ['greater'], ['nonzero']],
      ['Transpose', ['nonzero'], ['nonzero_t']],
      ['Range', ['r0', 'r1', 'r2'], ['range']],
      ['Shape', ['x7'], ['shape_mid'], { start: 1, end: -1 }],
      ['Size', ['x7'], ['size']],
      ['ConstantOfShape', ['cshape'], ['const_shape'], { value: { tensor: int64s('v', [1], [7]) } }],
      ['ReduceSum', ['x', 'ax1'], ['reduce_sum'], { keepdims: 0 }],
      ['ReduceMean', ['x', 'axm1'], ['reduce_mean']],
      ['ReduceMax', ['x'], ['reduce_noop'], { noop_with_empty_axes: 1 }],
      ['ReduceProd', ['x'], ['reduce_all'], { keepdims: 0 }],
      ['ArgMax', ['x'], ['argmax'], { axis: -1, keepdims: 0 }],
      ['Transpose', ['x'], ['x_t'], { perm: [0, 2, 1] }],
      ['Einsum', ['x', 'x_t'], ['einsum_bmm'], { equation: 'bij,bjk->bik' }],
      ['Einsum', ['m34'], ['einsum_sum'], { equation: 'ij->' }],
      ['Einsum', ['m34', 'mat'], ['einsum_implicit'], { equation: 'ij,jk' }],
      ['Resize', ['img', '', 'scales'], ['resize_scales'], { mode: 'nearest' }],
      ['Resize', ['img', '', '', 'sizes'], ['resize_sizes'], { mode: 'nearest' }],
      ['Conv', ['img', 'w_conv'], ['conv'], { strides: [2, 2], pads: [1, 1, 1, 1], dilations: [2, 1], group: 2 }],
      ['ConvTranspose', ['img', 'w_ct'], ['conv_t'], { strides: [2, 2], output_padding: [1, 0], pads: [1, 1, 1, 1] }],
      ['MaxPool', ['img'], ['maxpool', 'maxpool_idx'], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }],
      ['AveragePool', ['img'], ['avgpool'], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' }],
      ['GlobalAveragePool', ['img'], ['gap']],
      ['BatchNormalization', ['img', 'bn', 'bn', 'bn', 'bn'], ['batchnorm']],
      ['Constant', [], ['ln_shape'], { value: { tensor: int64s('c', [2], [3, 4]) } }],
      ['Reshape', ['ln', 'ln_shape'], ['ln_scale']],
      ['LayerNormalization', ['x', 'ln_scale'], ['layernorm', 'ln_mean', 'ln_inv'], { axis: 1 }],
      ['InstanceNormalization', ['img', 'bn', 'bn'], ['instnorm']],
      ['MatMul', ['vec4', 'mat'], ['matmul_vec_mat']],
      ['MatMul', ['mat', 'vec6'], ['matmul_mat_vec']],
      ['Unsqueeze', ['x', 's1'], ['x_4d']],
      ['MatMul', ['x_4d', 'bmat'], ['matmul_batch']],
      ['Transpose', ['mat'], ['mat_t']],
      ['Gemm', ['m34_tt', 'mat_t'], ['gemm'], { transA: 1, transB: 1 }],
      ['Where', ['greater', 'm34', 'vec4'], ['where']],
      ['Equal', ['x', 'x'], ['equal']],
      ['And', ['equal', 'equal'], ['and']],
      ['CastLike', ['and', 'x'], ['castlike']],
      ['Clip', ['x', 'qs', 'qs'], ['clip']],
      ['Trilu', ['m34'], ['trilu'], { upper: 0 }],
      ['CumSum', ['x', 'cumax'], ['cumsum']],
      ['Softmax', ['x'], ['softmax'], { axis: 1 }],
      ['LogSoftmax', ['x'], ['logsoftmax']],
      ['DepthToSpace', ['img'], ['d2s'], { blocksize: 2 }],
      ['Slice', ['d2s', 'zero1', 'e16', 'ax2'], ['d2s_crop']],
      ['SpaceToDepth', ['d2s_crop'], ['s2d'], { blocksize: 2 }],
      ['LSTM', ['seq', 'lw', 'lr'], ['lstm_y', 'lstm_h', 'lstm_c'], { hidden_size: 4, direction: 'bidirectional' }],
      ['QuantizeLinear', ['x', 'qs', 'qz'], ['quant']],
      ['DequantizeLinear', ['quant', 'qs', 'qz'], ['dequant']],
      ['Dropout', ['x'], ['dropout', 'dropout_mask']],
      ['Sum', ['x', 'vec4', 'x'], ['sum']],
      ['Max', ['x', 'vec4'], ['max']],
      ['Mean', ['x', 'x'], ['mean']],
      ['Pow', ['x', 'qs'], ['pow']],
      ['Mod', ['gather_i64', 'r2'], ['mod']],
      ['Sigmoid', ['x'], ['sigmoid']],
      ['Transpose', ['img'], ['grid_pre'], { perm: [0, 2, 3, 1] }],
      ['Slice', ['grid_pre', 'zero1', 'k2', 'axm1'], ['grid']],
      ['GridSample', ['img', 'grid'], ['grid_sample']],
      ['Det', ['m33'], ['det']],
      ['NonMaxSuppression', ['boxes', 'scores', 'max_boxes'], ['nms']],
    ],
  });
});

test('operator zoo (opset 11: axes, splits and pads as attributes or early inputs) matches onnxruntime', async (t) => {
  const i = int64s;
  await checkZoo(t, 'zoo11', {
    opset: 11,
    inputs: [
      ['x', 1, [2, 3, 4]],
      ['img', 1, [1, 2, 5, 6]],
    ],
    initializers: [
      i('st', [2], [1, 0]),
      i('en', [2], [3, -1]),
      i('ax', [2], [1, 2]),
      i('pads', [6], [1, 0, 0, 0, 0, 2]),
      i('k', [1], [2]),
      i('z', [1], [0]),
      i('m1', [1], [-1]),
      floats('roi', [0], []),
      floats('scales', [4], [1, 1, 2, 3]),
      floats('lo', [], [0]),
      floats('hi', [], [1]),
    ],
    nodes: [
      ['Unsqueeze', ['x'], ['unsq'], { axes: [0, 4] }],
      ['Squeeze', ['unsq'], ['sq'], { axes: [0] }],
      ['Squeeze', ['sq'], ['sq_all']],
      ['Split', ['x'], ['sp_a', 'sp_b'], { axis: 2, split: [1, 3] }],
      ['Split', ['x'], ['sp_c', 'sp_d'], { axis: 2 }],
      ['ReduceMean', ['x'], ['rmean'], { axes: [1, -1], keepdims: 1 }],
      ['ReduceSum', ['x'], ['rsum'], { axes: [0], keepdims: 0 }],
      ['Slice', ['x', 'st', 'en', 'ax'], ['slice']],
      ['Pad', ['x', 'pads'], ['pad'], { mode: 'reflect' }],
      ['TopK', ['x', 'k'], ['tk_v', 'tk_i']],
      ['Resize', ['img', 'roi', 'scales'], ['resize'], { mode: 'nearest' }],
      ['Clip', ['x', 'lo', 'hi'], ['clip']],
      ['Shape', ['x'], ['shape']],
      ['Gather', ['shape', 'z'], ['dim0']],
      ['Concat', ['dim0', 'm1'], ['newshape'], { axis: 0 }],
      ['Reshape', ['slice', 'newshape'], ['reshaped']],
      ['ArgMin', ['x'], ['argmin'], { axis: 1 }],
    ],
  });
});

test('operator zoo (opset 9: Upsample, Slice by attributes) matches onnxruntime', async (t) => {
  await checkZoo(t, 'zoo9', {
    opset: 9,
    inputs: [['img', 1, [1, 2, 3, 5]]],
    initializers: [floats('scales', [4], [1, 1, 2, 2])],
    nodes: [
      ['Upsample', ['img', 'scales'], ['up'], { mode: 'nearest' }],
      ['Slice', ['up'], ['slice'], { starts: [1, -3], ends: [5, 1000], axes: [2, 3] }],
      ['Flatten', ['slice'], ['flat'], { axis: 2 }],
    ],
  });
});

test('com.microsoft operators match onnxruntime (attention with past, GQA, fused norms, MoE)', async (t) => {
  const ms = 'com.microsoft';
  await checkZoo(t, 'zoo_ms', {
    opset: 17,
    inputs: [
      ['x', 1, [2, 3, 16]],
      ['pk', 1, [2, 2, 4, 8]],
      ['pv', 1, [2, 2, 4, 8]],
      ['past', 1, [2, 2, 2, 4, 8]],
      ['q1', 1, [1, 3, 16]],
      ['gk', 1, [1, 1, 4, 8]],
      ['gv', 1, [1, 1, 4, 8]],
      ['tok', 1, [6, 8]],
    ],
    initializers: [
      floats('w', [16, 48], new Array(768).fill(0.01)),
      floats('bias', [48], new Array(48).fill(0)),
      floats('g16', [16], new Array(16).fill(1)),
      floats('kv8', [16, 8], new Array(128).fill(0.01)),
      floats('cos', [10, 4], new Array(40).fill(1)),
      floats('sin', [10, 4], new Array(40).fill(0)),
      int64s('pos', [2, 3], [4, 5, 6, 4, 5, 6]),
      { name: 'seqlens', dataType: 6, dims: [1], rawData: new Uint8Array(Int32Array.from([6]).buffer) },
      { name: 'total', dataType: 6, dims: [], rawData: new Uint8Array(Int32Array.from([7]).buffer) },
      floats('router_w', [8, 4], new Array(32).fill(0.1)),
      floats('w1', [4, 16, 8], new Array(512).fill(0.01)),
      floats('w2', [4, 8, 16], new Array(512).fill(0.01)),
      floats('b16', [16], new Array(16).fill(0)),
    ],
    nodes: [
      ['SkipLayerNormalization', ['x', 'x', 'g16', 'g16'], ['sln', 'sln_mean', 'sln_inv', 'sln_sum'], {}, ms],
      ['SkipSimplifiedLayerNormalization', ['x', 'x', 'g16'], ['ssln', 'ssln_mean', 'ssln_inv', 'ssln_sum'], {}, ms],
      ['SimplifiedLayerNormalization', ['x', 'g16'], ['rms', 'rms_inv'], {}],
      ['FusedMatMul', ['x', 'w'], ['fmm'], { alpha: { f: 0.5 } }, ms],
      ['FusedMatMul', ['x', 'kv8'], ['fmm_t'], { transB: 0 }, ms],
      ['BiasGelu', ['x', 'b16'], ['bgelu'], {}, ms],
      ['FastGelu', ['x'], ['fgelu'], {}, ms],
      ['QuickGelu', ['x'], ['qgelu'], {}, ms],
      ['RotaryEmbedding', ['x', 'pos', 'cos', 'sin'], ['rope'], { num_heads: 2 }, ms],
      ['MatMul', ['x', 'kv8'], ['k_proj']],
      ['MultiHeadAttention', ['x', 'x', 'x', '', '', '', 'pk', 'pv'], ['mha', 'mha_k', 'mha_v'], { num_heads: 2 }, ms],
      ['Attention', ['x', 'w', 'bias', '', 'past'], ['attn', 'attn_present'], { num_heads: 2 }, ms],
      ['MatMul', ['q1', 'kv8'], ['gqa_k']],
      [
        'GroupQueryAttention',
        ['q1', 'gqa_k', 'gqa_k', 'gk', 'gv', 'seqlens', 'total'],
        ['gqa', 'gqa_k_out', 'gqa_v_out'],
        { num_heads: 2, kv_num_heads: 1 },
        ms,
      ],
      ['MatMul', ['tok', 'router_w'], ['router']],
      ['MoE', ['tok', 'router', 'w1', '', 'w2'], ['moe'], { k: 2 }, ms],
    ],
  });
});

// ---- (e) size ------------------------------------------------------------------------------------

test('100k nodes of real shape arithmetic (gpt2 ×189) are all typed, symbols intact (time: npm run bench)', async (t) => {
  const file = path.join(SHARED_MODELS, 'gpt2_tiny_kv.onnx');
  const ctx = new Context({ model_path: file, topology_path: null, dims: {}, flags: {} });
  ctx.store('import', await importPass.run(ctx));
  ctx.store('bind', await bindPass.run(ctx));
  const g = ctx.model.graph;
  const shared = new Set([...g.inputs.map((v) => v.name), ...g.initializers.keys()]);
  const nodes: Node[] = [];
  let copy = 0;
  for (; nodes.length < 100_000; copy++) {
    const rename = (v: string): string => (v === '' || shared.has(v) ? v : `c${copy}${v}`);
    for (const n of g.nodes) nodes.push({ ...n, name: `c${copy}${n.name}`, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename) });
  }
  ctx.model = { ...ctx.model, graph: { ...g, nodes, outputs: [], declared: new Map() } };
  ctx.store('verify', await verifyPass.run(ctx));
  // Speed is the benchmark's business (this machine is shared); this checks the result at scale.
  const t0 = performance.now();
  const result: ShapesResult = await shapesPass.run(ctx);
  t.diagnostic(`shapes: ${(performance.now() - t0).toFixed(0)} ms for ${nodes.length} nodes, ${result.types.size} values`);
  assert.equal(result.unknown_values.length, 0);
  assert.deepEqual(result.types.get(`c${copy - 1}present.0.key`)!.shape, ['batch_size', 4, 'past_sequence_length + sequence_length', 32]);
  assert.deepEqual(result.types.get('c0present.0.key')!.shape, ['batch_size', 4, 'past_sequence_length + sequence_length', 32]);
});
