// The shapes pass against onnxruntime as the oracle: every node output of every runnable shared
// model (and of two hand-built operator zoos) is made a graph output, run on random inputs of the
// bound dims, and each inferred dtype and shape is compared with the tensor ORT returns. Fresh
// symbols (data-dependent sizes) are bound to the first size ORT reports, then must stay consistent.

import { test } from 'node:test';
import { HxcError } from '../src/diag/diagnostics.js';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import fc from 'fast-check';
import type { onnx as OnnxNs } from 'onnx-proto';
import { bindPass } from '../passes/bind.js';
import { importPass } from '../passes/import.js';
import { shapesPass, valueType, type ShapesResult } from '../passes/shapes.js';
import { verifyPass } from '../passes/verify.js';
import { Diagnostics } from '../src/diag/diagnostics.js';
import { importOnnx } from '../src/import/onnx.js';
import type { Graph, Model, Node } from '../src/ir/graph.js';
import { verifyGraph } from '../src/ir/verify.js';
import { Context } from '../src/pass/context.js';
import { inferShapes } from '../src/shapes/infer.js';
import { DATA_RULES } from '../src/shapes/ops-data.js';
import { ELEMENTWISE_RULES } from '../src/shapes/ops-elementwise.js';
import { MS_RULES } from '../src/shapes/ops-ms.js';
import { NN_RULES } from '../src/shapes/ops-nn.js';
import { TENSOR_RULES } from '../src/shapes/ops-tensor.js';
import { evalDim } from '../src/shapes/symbolic.js';
import { SHARED_MODELS, tmpDir } from './helpers.js';
import { onnx, valueInfo } from './onnx-builder.js';

/** import → verify → bind → shapes, as the pass manager runs them. */
async function runShapes(modelPath: string, dims: Record<string, number> = {}): Promise<{ ctx: Context; result: ShapesResult }> {
  const ctx = new Context({ model_path: modelPath, topology_path: null, dims, flags: {} });
  for (const pass of [importPass, verifyPass, bindPass, shapesPass]) ctx.store(pass.name, await pass.run(ctx));
  return { ctx, result: ctx.get(shapesPass) };
}

function readDims(modelPath: string): Record<string, number> {
  const file = modelPath.replace(/\.onnx$/, '.dims.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, number>) : {};
}

/** Seeded PRNG (mulberry32) so that feeds, and so data-dependent sizes, are reproducible. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random inputs at the inferred (bound) input shapes; LM inputs get valid ids, masks and positions. */
function feedsFor(graph: Graph, result: ShapesResult, dims: Record<string, number>): Record<string, ort.Tensor> {
  const rand = random(42);
  const feeds: Record<string, ort.Tensor> = {};
  const past = dims.past_sequence_length ?? 0;
  for (const input of graph.inputs) {
    if (graph.initializers.has(input.name)) continue;
    const t = result.types.get(input.name)!;
    const shape = t.shape!.map((d) => {
      assert.equal(typeof d, 'number', `input ${input.name} has unbound dim ${d}`);
      return d as number;
    });
    const count = shape.reduce((a, b) => a * b, 1);
    if (t.dtype === 'int64') {
      // The vocabulary is the row count of the embedding table the ids index.
      const embedding = graph.nodes.find((n) => n.op === 'Gather' && n.inputs[1] === input.name);
      const vocab = embedding ? (result.types.get(embedding.inputs[0]!)!.shape![0] as number) : 1;
      const last = shape[shape.length - 1] ?? 1;
      const data = BigInt64Array.from({ length: count }, (_, k) => {
        if (input.name === 'input_ids') return BigInt(Math.floor(rand() * vocab));
        if (input.name === 'attention_mask') return 1n;
        if (input.name === 'position_ids') return BigInt(past + (k % last));
        return 0n;
      });
      feeds[input.name] = new ort.Tensor('int64', data, shape);
    } else if (t.dtype === 'float32') {
      feeds[input.name] = new ort.Tensor(
        'float32',
        Float32Array.from({ length: count }, () => rand() * 2 - 1),
        shape,
      );
    } else if (t.dtype === 'int32') {
      feeds[input.name] = new ort.Tensor('int32', new Int32Array(count), shape);
    } else {
      throw new Error(`no feed for ${input.name}: ${t.dtype}`);
    }
  }
  return feeds;
}

/** The model with every node output also a graph output (ORT accepts outputs without a type). */
function exposeAllValues(bytes: Uint8Array): Uint8Array {
  const proto = onnx.ModelProto.decode(bytes);
  const graph = proto.graph!;
  const outputs = new Set(graph.output!.map((o) => o.name));
  for (const n of graph.node!) {
    for (const o of n.output!) {
      if (o && !outputs.has(o)) {
        graph.output!.push(onnx.ValueInfoProto.create({ name: o }));
        outputs.add(o);
      }
    }
  }
  return onnx.ModelProto.encode(proto).finish();
}

interface OracleReport {
  checked: number;
  mismatches: string[];
}

/** Compares every node output's inferred type with what ORT produced, binding fresh symbols on first sight. */
function compareWithOrt(nodes: Node[], result: ShapesResult, real: ort.InferenceSession.OnnxValueMapType, dims: Record<string, number>): OracleReport {
  const bindings: Record<string, number> = { ...dims };
  const fresh = new Set(result.fresh_symbols);
  const report: OracleReport = { checked: 0, mismatches: [] };
  for (const node of nodes) {
    for (const name of node.outputs) {
      if (!name) continue;
      const tensor = real[name] as ort.Tensor | undefined;
      const ours = result.types.get(name);
      if (!tensor) {
        report.mismatches.push(`%${name}: onnxruntime returned nothing`);
        continue;
      }
      report.checked++;
      const shape = ours?.shape;
      let ok = ours !== undefined && ours.dtype === tensor.type && shape !== null && shape !== undefined && shape.length === tensor.dims.length;
      if (ok) {
        shape!.forEach((d, k) => {
          const actual = tensor.dims[k]!;
          if (typeof d === 'string' && fresh.has(d) && bindings[d] === undefined) bindings[d] = actual;
          if (evalDim(d, bindings) !== actual) ok = false;
        });
      }
      if (!ok) {
        report.mismatches.push(
          `%${name} (${node.op} "${node.name}"): inferred ${ours?.dtype}[${shape?.join(', ') ?? '?'}], onnxruntime ${tensor.type}[${tensor.dims.join(', ')}]`,
        );
      }
    }
  }
  return report;
}

async function runOrt(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(exposeAllValues(bytes), { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

// ---- (b) real models against onnxruntime -------------------------------------------------------

const RUNNABLE = ['gpt2_tiny_kv', 'mixtral_tiny_moe_kv', 'dense_moe_small_kv', 'mobilenet_v3_small', 'ch_PP-OCRv4_det_infer', 'hello_deepa'];

for (const name of RUNNABLE) {
  test(`onnxruntime agrees with every inferred dtype and shape of ${name}`, async (t) => {
    const file = path.join(SHARED_MODELS, `${name}.onnx`);
    const dims = readDims(file);
    const { ctx, result } = await runShapes(file, dims);
    assert.deepEqual(result.unknown_ops, []);
    assert.deepEqual(result.rule_errors, []);
    assert.deepEqual(result.unknown_values, []);
    assert.deepEqual(result.disagreements, []);
    const real = await runOrt(fs.readFileSync(file), feedsFor(ctx.model.graph, result, dims));
    const report = compareWithOrt(ctx.model.graph.nodes, result, real, dims);
    t.diagnostic(`${name}: ${report.checked} values checked against onnxruntime`);
    assert.deepEqual(report.mismatches, []);
    assert.equal(
      report.checked,
      ctx.model.graph.nodes.reduce((n, node) => n + node.outputs.filter((o) => o).length, 0),
    );
  });
}

test('the oracle catches a wrong shape (negative control)', async () => {
  const file = path.join(SHARED_MODELS, 'hello_deepa.onnx');
  const { ctx, result } = await runShapes(file);
  const victim = ctx.model.graph.nodes.find((n) => n.op === 'Gemm')!.outputs[0]!;
  result.types.set(victim, { dtype: 'float32', shape: [1, 31] });
  const real = await runOrt(fs.readFileSync(file), feedsFor(ctx.model.graph, result, {}));
  const report = compareWithOrt(ctx.model.graph.nodes, result, real, {});
  assert.equal(report.mismatches.length, 1);
  assert.match(report.mismatches[0]!, /inferred float32\[1, 31\], onnxruntime float32\[1, 32\]/);
});

test('with no dims bound, gpt2 keeps its symbols through the KV cache and the logits', async () => {
  const { ctx, result } = await runShapes(path.join(SHARED_MODELS, 'gpt2_tiny_kv.onnx'));
  assert.deepEqual(valueType(ctx, 'present.0.key'), { dtype: 'float32', shape: ['batch_size', 4, 'past_sequence_length + sequence_length', 32] });
  assert.deepEqual(valueType(ctx, 'present.1.value'), { dtype: 'float32', shape: ['batch_size', 4, 'past_sequence_length + sequence_length', 32] });
  assert.deepEqual(valueType(ctx, 'logits'), { dtype: 'float32', shape: ['batch_size', 'sequence_length', 2048] });
  assert.deepEqual(result.symbols, ['batch_size', 'past_sequence_length', 'sequence_length']);
  assert.deepEqual(result.fresh_symbols, []);
  // The exporter's Shape → Gather → Unsqueeze → Concat feeding the head split is folded symbolically.
  const headSplit = ctx.model.graph.nodes.find((n) => n.name === '/transformer/h.0/attn/Reshape')!;
  assert.deepEqual(result.values.get(headSplit.inputs[1]!), ['batch_size', 'sequence_length', 4, 32]);
  assert.deepEqual(result.types.get(headSplit.outputs[0]!)!.shape, ['batch_size', 'sequence_length', 4, 32]);
  const dump = shapesPass.dump(result, ctx);
  assert.match(dump, /^%present\.0\.key: float32\[batch_size, 4, past_sequence_length \+ sequence_length, 32\]$/m);
  assert.match(dump, /^%\/transformer\/h\.0\/attn\/Concat_output_0: int64\[4\] = \[batch_size, sequence_length, 4, 32\]$/m);
  assert.equal(shapesPass.dump((await runShapes(path.join(SHARED_MODELS, 'gpt2_tiny_kv.onnx'))).result, ctx), dump, 'the dump is stable');
});

test('with no dims bound, the MoE decoders keep symbolic KV caches; only NonZero counts are fresh', async () => {
  const cases: [string, number, number][] = [
    ['mixtral_tiny_moe_kv', 2, 2048],
    ['dense_moe_small_kv', 1, 1024],
    ['mixtral_8x7b_shaped.graph_only', 8, 32000],
  ];
  for (const [name, kvHeads, vocab] of cases) {
    const { ctx, result } = await runShapes(path.join(SHARED_MODELS, `${name}.onnx`));
    const headDim = valueType(ctx, 'past_key_values.0.key')!.shape![3]!;
    assert.deepEqual(valueType(ctx, 'present.0.key')!.shape, ['batch_size', kvHeads, 'past_sequence_length + sequence_length', headDim], name);
    assert.deepEqual(valueType(ctx, 'logits')!.shape, ['batch_size', 'sequence_length', vocab], name);
    assert.ok(
      result.fresh_symbols.every((s) => s.startsWith('nz_')),
      `${name}: ${result.fresh_symbols.join(', ')}`,
    );
    assert.equal(result.fresh_symbols.length, ctx.model.graph.nodes.filter((n) => n.op === 'NonZero').length, name);
    assert.deepEqual(result.unknown_values, [], name);
    assert.deepEqual(result.notes, [], name);
  }
});

test('the Paddle OCR model keeps its dynamic height and width as exact floor expressions', async () => {
  const { ctx, result } = await runShapes(path.join(SHARED_MODELS, 'ch_PP-OCRv4_det_infer.onnx'));
  // Five stride-2 stages then ×32 back up: the map is H rounded up to a multiple of 32.
  const out = valueType(ctx, 'sigmoid_0.tmp_0')!;
  assert.deepEqual(out.shape, ['p2o.DynamicDimension.0', 1, '32*floor((p2o.DynamicDimension.1 + 31)/32)', '32*floor((p2o.DynamicDimension.2 + 31)/32)']);
  assert.equal(evalDim(out.shape![2]!, { 'p2o.DynamicDimension.1': 736 }), 736);
  assert.equal(evalDim(out.shape![2]!, { 'p2o.DynamicDimension.1': 700 }), 704);
  assert.deepEqual(result.symbols, ['p2o.DynamicDimension.0', 'p2o.DynamicDimension.1', 'p2o.DynamicDimension.2']);
  assert.deepEqual(result.unknown_values, []);
});

test('symbolic rules: Reshape -1, Slice from -seq, Range, Conv, NonZero, Expand via Where(Equal(shape, -1))', () => {
  const graph: Graph = { name: 'sym', nodes: [], inputs: [], outputs: [], initializers: new Map(), declared: new Map(), declared_bytes: new Map() };
  const i64 = (name: string, values: number[]): void => {
    graph.initializers.set(name, {
      name,
      dtype: 'int64',
      dims: [values.length],
      byte_size: 8 * values.length,
      location: { kind: 'inline', data: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) },
    });
  };
  graph.inputs.push({ name: 'x', type: { dtype: 'float32', shape: ['b', 'seq', 64] } });
  graph.inputs.push({ name: 'img', type: { dtype: 'float32', shape: ['n', 3, 'h', 'w'] } });
  graph.initializers.set('w', { name: 'w', dtype: 'float32', dims: [8, 3, 3, 3], byte_size: 864, location: { kind: 'absent' } });
  i64('heads', [0, 0, 4, -1]);
  i64('zero', [0]);
  i64('one', [1]);
  i64('minus1', [-1]);
  const node = (op: string, inputs: string[], outputs: string[], attrs: Node['attrs'] = {}): void => {
    graph.nodes.push({ name: `${op}_${graph.nodes.length}`, op, domain: '', inputs, outputs, attrs, outer_refs: [] });
  };
  node('Reshape', ['x', 'heads'], ['split_heads']);
  node('Shape', ['x'], ['shape']);
  node('Gather', ['shape', 'one'], ['seq_len']);
  node('Neg', ['seq_len'], ['minus_seq']);
  node('Concat', ['shape', 'zero'], ['shape4'], { axis: { type: 'int', value: 0 } });
  node('Slice', ['split_heads', 'minus_seq', 'minus1', 'one'], ['tail']);
  node('Squeeze', ['seq_len', 'zero'], ['seq_scalar']);
  node('Range', ['zero_scalar', 'seq_scalar', 'one_scalar'], ['positions']);
  node('Squeeze', ['zero', 'zero'], ['zero_scalar']);
  node('Squeeze', ['one', 'zero'], ['one_scalar']);
  node('Conv', ['img', 'w'], ['conv'], { strides: { type: 'ints', value: [2, 2] }, pads: { type: 'ints', value: [1, 1, 1, 1] } });
  node('NonZero', ['x'], ['nz']);
  node('Equal', ['shape', 'minus1'], ['is_minus1']);
  node('Where', ['is_minus1', 'one', 'shape'], ['expand_shape']);
  node('Expand', ['x', 'expand_shape'], ['expanded']);
  const { order } = verifyGraph(graph, 'sym');
  const r = inferShapes(graph, order, { opsets: { '': 17 }, dims: {} });
  assert.deepEqual(r.types.get('split_heads')!.shape, ['b', 'seq', 4, 16]);
  assert.deepEqual(r.values.get('minus_seq'), ['-seq']);
  assert.deepEqual(r.types.get('tail')!.shape, ['b', 'seq - 1', 4, 16], 'a start of -seq counts from the end');
  assert.deepEqual(r.types.get('positions'), { dtype: 'int64', shape: ['seq'] });
  assert.deepEqual(r.types.get('conv')!.shape, ['n', 8, 'floor((h + 1)/2)', 'floor((w + 1)/2)']);
  assert.deepEqual(r.types.get('nz')!.shape, [3, 'nz_NonZero_11']);
  assert.deepEqual(r.values.get('expand_shape'), ['b', 'seq', 64], 'Equal(dim, -1) folds to false: dims are never negative');
  assert.deepEqual(r.types.get('expanded')!.shape, ['b', 'seq', 64]);
  assert.deepEqual(r.values.get('shape4'), ['b', 'seq', 64, 0]);
  assert.deepEqual(r.fresh_symbols, ['nz_NonZero_11']);
});

// ---- (c) the graph-only Mixtral-8x7B ----------------------------------------------------------

test('graph-only Mixtral-8x7B: every value typed from its dims.json, only NonZero counts stay symbolic', async () => {
  const file = path.join(SHARED_MODELS, 'mixtral_8x7b_shaped.graph_only.onnx');
  const dims = readDims(file);
  assert.deepEqual(dims, { batch_size: 1, sequence_length: 512, past_sequence_length: 0 });
  const ctx = new Context({ model_path: file, topology_path: null, dims, flags: {} });
  for (const pass of [importPass, verifyPass, bindPass]) ctx.store(pass.name, await pass.run(ctx));
  // (Its time is in npm run bench: analysis of this model.)
  const result = await shapesPass.run(ctx);
  assert.deepEqual(result.unknown_ops, []);
  assert.deepEqual(result.unknown_values, []);
  assert.deepEqual(result.rule_errors, []);
  assert.equal(
    result.types.size,
    ctx.model.graph.inputs.length + ctx.model.graph.initializers.size + ctx.model.graph.nodes.reduce((n, x) => n + x.outputs.length, 0),
  );
  const nonZero = ctx.model.graph.nodes.filter((n) => n.op === 'NonZero');
  assert.equal(nonZero.length, 256);
  assert.equal(result.fresh_symbols.length, 256);
  assert.deepEqual(result.symbols, result.fresh_symbols, 'the only free symbols are the data-dependent counts');
  assert.ok(result.fresh_symbols.every((s) => s.startsWith('nz_')));
  for (const [name, t] of result.types) {
    for (const d of t.shape!) assert.ok(typeof d === 'number' || d.startsWith('nz_'), `${name}: ${d}`);
  }
  assert.deepEqual(result.types.get('logits'), { dtype: 'float16', shape: [1, 512, 32000] });
  for (let layer = 0; layer < 32; layer++) {
    for (const kv of ['key', 'value']) assert.deepEqual(result.types.get(`present.${layer}.${kv}`), { dtype: 'float16', shape: [1, 8, 512, 128] });
  }
  // After each expert's ScatterND the token count is the full sequence again.
  const scatter = ctx.model.graph.nodes.find((n) => n.op === 'ScatterND')!;
  assert.deepEqual(result.types.get(scatter.outputs[0]!)!.shape, [512, 4096]);
});

// ---- (d) operators without a rule ---------------------------------------------------------------

test('an unknown custom op falls back to value_info or an unknown shape, with one warning, no crash', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'custom.onnx');
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'custom', version: 1 },
    ],
    graph: {
      name: 'custom',
      node: [
        { name: 'foo', opType: 'Foo', domain: 'custom', input: ['x'], output: ['y'] },
        { name: 'relu_y', opType: 'Relu', input: ['y'], output: ['z'] },
        { name: 'bar', opType: 'Bar', domain: 'custom', input: ['x'], output: ['w'] },
        { name: 'relu_w', opType: 'Relu', input: ['w'], output: ['u'] },
        { name: 'foo2', opType: 'Foo', domain: 'custom', input: ['z'], output: ['v'] },
        { name: 'add', opType: 'Add', input: ['x', 'x'], output: ['s'] },
      ],
      input: [valueInfo('x', 1, ['batch', 3])],
      output: [valueInfo('u', 1, ['batch', '?']), valueInfo('v', 1, [])],
      valueInfo: [valueInfo('y', 1, ['batch', 5])],
    },
  });
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
  const { ctx, result } = await runShapes(file, { batch: 2 });
  const warnings = ctx.diagnostics.warnings.filter((w) => w.code === 'HXC1102');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.message, /2 operator type\(s\) \(3 nodes\): custom\.Bar, custom\.Foo/);
  assert.deepEqual(result.unknown_ops, ['custom.Bar', 'custom.Foo']);
  assert.deepEqual(result.types.get('y'), { dtype: 'float32', shape: [2, 5] }, 'declared value_info, dims bound');
  assert.deepEqual(result.types.get('z'), { dtype: 'float32', shape: [2, 5] }, 'inference continues after the fallback');
  assert.equal(result.types.get('w')!.shape, null);
  assert.deepEqual(result.types.get('u'), { dtype: 'float32', shape: [2, 'u_dim1'] }, 'no rule could say: the declared output type, ? made a symbol');
  assert.deepEqual(result.types.get('v'), { dtype: 'float32', shape: [] });
  assert.deepEqual(result.types.get('s'), { dtype: 'float32', shape: [2, 3] });
  assert.deepEqual(result.unknown_values, ['w']);
  assert.deepEqual(result.declared_fallback, ['y', 'u', 'v']);
  const stats = shapesPass.statistics(result, ctx);
  assert.equal(stats['values unknown'], 1);
  assert.equal(stats['unknown ops'], 2);
  assert.match(shapesPass.dump(result, ctx), /^%w: float32\?$/m);
  assert.equal(shapesPass.nodeNote!(result, ctx, 0), '→ float32[2, 5]');
});

test('property: random graphs of every known op with random attributes never crash and never trip a rule (an invalid node is one HXC2107)', () => {
  const ops = [...new Set([ELEMENTWISE_RULES, TENSOR_RULES, DATA_RULES, NN_RULES, MS_RULES].flatMap((table) => Object.keys(table)))];
  const names = [
    'axis',
    'perm',
    'axes',
    'kernel_shape',
    'strides',
    'pads',
    'equation',
    'num_heads',
    'kv_num_heads',
    'split',
    'to',
    'blocksize',
    'hidden_size',
    'group',
    'output_shape',
    'batch_dims',
    'start',
    'end',
    'k',
    'num_outputs',
    'keepdims',
    'transA',
    'transB',
    'qkv_hidden_sizes',
    'dtype',
    'shape',
    'direction',
    'ceil_mode',
    'auto_pad',
    'output_padding',
    'allowzero',
    'scales',
    'N',
    'noop_with_empty_axes',
  ];
  const attrArb = fc.dictionary(
    fc.constantFrom(...names),
    fc.oneof(
      fc.integer({ min: -4, max: 4 }).map((value) => ({ type: 'int' as const, value })),
      fc.array(fc.integer({ min: -3, max: 5 }), { maxLength: 5 }).map((value) => ({ type: 'ints' as const, value })),
      fc.constantFrom('ab,bc->ac', '...i->i', 'ij,jk', 'x', '', 'SAME_UPPER', 'bidirectional').map((value) => ({ type: 'string' as const, value })),
    ),
  );
  const nodeArb = fc.record({
    op: fc.constantFrom(...ops),
    ms: fc.boolean(),
    inputs: fc.array(fc.nat(), { maxLength: 5 }),
    attrs: attrArb,
    outs: fc.integer({ min: 1, max: 3 }),
  });
  const shapeArb = fc.array(fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constantFrom('a', 'b', 'a + b', '?')), { maxLength: 4 });
  fc.assert(
    fc.property(fc.array(nodeArb, { maxLength: 12 }), fc.array(shapeArb, { minLength: 1, maxLength: 3 }), (specs, inputShapes) => {
      const graph: Graph = { name: 'fuzz', nodes: [], inputs: [], outputs: [], initializers: new Map(), declared: new Map(), declared_bytes: new Map() };
      const values: string[] = [];
      inputShapes.forEach((shape, i) => {
        graph.inputs.push({ name: `in${i}`, type: { dtype: i === 1 ? 'int64' : 'float32', shape } });
        values.push(`in${i}`);
      });
      specs.forEach((s, k) => {
        const outputs = Array.from({ length: s.outs }, (_, j) => `n${k}_${j}`);
        graph.nodes.push({
          name: `n${k}`,
          op: s.op,
          domain: s.ms ? 'com.microsoft' : '',
          inputs: s.inputs.map((i) => values[i % values.length]!),
          outputs,
          attrs: s.attrs,
          outer_refs: [],
        });
        values.push(...outputs);
      });
      const { order } = verifyGraph(graph, 'fuzz');
      let result: ReturnType<typeof inferShapes>;
      try {
        result = inferShapes(graph, order, { opsets: { '': 18 }, dims: { a: 3 } });
      } catch (err) {
        // A node that breaks the spec with known numbers is refused with one diagnostic, naming it.
        assert.ok(err instanceof HxcError && err.code === 'HXC2107' && /^node "n\d+"$/.test(err.where ?? ''), String(err));
        return;
      }
      for (const v of values) assert.ok(result.types.has(v), v);
      assert.deepEqual(result.rule_errors, []);
    }),
    { numRuns: 500 },
  );
});

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
