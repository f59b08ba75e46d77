// The shapes pass against onnxruntime as the oracle: every node output of every runnable shared
// model (and of two hand-built operator zoos) is made a graph output, run on random inputs of the
// bound dims, and each inferred dtype and shape is compared with the tensor ORT returns. Fresh
// symbols (data-dependent sizes) are bound to the first size ORT reports, then must stay consistent.

import { test } from 'node:test';
import { HxcError } from '../src/diag/diagnostics.js';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { bindPass } from '../passes/bind.js';
import { importPass } from '../passes/import.js';
import { shapesPass, valueType } from '../passes/shapes.js';
import { verifyPass } from '../passes/verify.js';
import { declaredEditedFrom, editDeclared, type Graph, type Node, type TensorData, type TensorType } from '../src/ir/graph.js';
import { verifyGraph } from '../src/ir/verify.js';
import { Context } from '../src/pass/context.js';
import { inferShapes, type InferMemo } from '../src/shapes/infer.js';
import { DATA_RULES } from '../src/shapes/ops-data.js';
import { ELEMENTWISE_RULES } from '../src/shapes/ops-elementwise.js';
import { MS_RULES } from '../src/shapes/ops-ms.js';
import { NN_RULES } from '../src/shapes/ops-nn.js';
import { TENSOR_RULES } from '../src/shapes/ops-tensor.js';
import { evalDim } from '../src/shapes/symbolic.js';
import { EXAMPLES, SHARED_MODELS, tmpDir } from './helpers.js';
import { runPipeline } from '../src/cli/run-passes.js';
import type { AnalysisHandoff } from '../src/pass/pass.js';
import { tpPass } from '../passes/tp.js';
import { memoNodes, profilePass, type ProfileResult } from '../passes/profile.js';
import { onnx, valueInfo } from './onnx-builder.js';
import { compareWithOrt, feedsFor, readDims, runOrt, runShapes } from './shapes-oracle.js';

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
  const wrong = { ...result, types: new Map(result.types).set(victim, { dtype: 'float32', shape: [1, 31] }) };
  const real = await runOrt(fs.readFileSync(file), feedsFor(ctx.model.graph, wrong, {}));
  const report = compareWithOrt(ctx.model.graph.nodes, wrong, real, {});
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
      // (s is an output too: a node nothing reads is left out at import, as onnxruntime does.)
      output: [valueInfo('u', 1, ['batch', '?']), valueInfo('v', 1, []), valueInfo('s', 1, ['batch', 3])],
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

test('types kept by value id read as a map by name: the same entries in the same order on real models, and a value written twice keeps its place with the later type', async () => {
  for (const name of ['gpt2_tiny_kv.onnx', 'mixtral_tiny_moe_kv.onnx', 'mobilenet_v3_small.onnx']) {
    const { ctx } = await runShapes(path.join(SHARED_MODELS, name));
    const { index, order } = ctx.get(verifyPass);
    const opts = { opsets: ctx.model.opsets, dims: ctx.get(bindPass).dims };
    const byName = inferShapes(ctx.model.graph, order, opts);
    const byId = inferShapes(ctx.model.graph, order, { ...opts, index });
    assert.ok(!(byId.types instanceof Map), 'with the index, types are kept by id');
    assert.deepEqual([...byId.types.entries()], [...byName.types.entries()], name);
    assert.deepEqual([...byId.types.keys()], [...byName.types.keys()], name);
    assert.deepEqual([...byId.types.values()], [...byName.types.values()], name);
    assert.deepEqual(byId.order, byName.order, name);
    assert.equal(byId.types.size, byName.types.size);
    for (const [v, t] of byName.types) assert.deepEqual(byId.types_by_id![index.valueIds.get(v)!], t);
  }
  // A node writing a graph input's name (verify allows it: one node produces it).
  const g: Graph = {
    name: 'rewrite',
    nodes: [{ name: 'relu', op: 'Relu', domain: '', inputs: ['x'], outputs: ['y'], attrs: {}, outer_refs: [] }],
    inputs: [
      { name: 'x', type: { dtype: 'float32', shape: [2, 3] } },
      { name: 'y', type: { dtype: 'float32', shape: [4] } },
    ],
    outputs: [{ name: 'y', type: null }],
    initializers: new Map(),
    declared: new Map(),
    declared_bytes: new Map(),
  };
  const { index, order } = verifyGraph(g, 'rewrite');
  const byName = inferShapes(g, order, { opsets: { '': 17 }, dims: {} });
  const byId = inferShapes(g, order, { opsets: { '': 17 }, dims: {}, index });
  assert.deepEqual([...byId.types.entries()], [...byName.types.entries()]);
  assert.deepEqual([...byId.types.keys()], ['x', 'y']);
  assert.deepEqual(byId.types.get('y'), { dtype: 'float32', shape: [2, 3] });
  assert.equal(byId.types.size, 2);
  // The walk's value order holds the value written twice twice, past the room made for every id.
  assert.deepEqual(byId.order, ['x', 'y', 'y']);
  assert.deepEqual(byId.order, byName.order);
});

test('values of one dtype and dims share one type object, and only those: a dim text with a comma and a quote is not another shape', () => {
  const input = (name: string, shape: (number | string)[]) => ({ name, type: { dtype: 'float32' as const, shape } });
  const inputs = [input('a', ['s', 't']), input('b', [2, 3]), input('c', ["s,'t"]), input('d', ['s', 't']), input('e', [2, 3])];
  const g: Graph = {
    name: 'types',
    nodes: inputs.map((v) => ({ name: `n_${v.name}`, op: 'Identity', domain: '', inputs: [v.name], outputs: [`${v.name}_out`], attrs: {}, outer_refs: [] })),
    inputs,
    outputs: [],
    initializers: new Map(),
    declared: new Map(),
    declared_bytes: new Map(),
  };
  const { index, order } = verifyGraph(g, 'types');
  const r = inferShapes(g, order, { opsets: { '': 17 }, dims: {}, index });
  const t = (v: string) => r.types.get(v)!;
  assert.equal(t('a'), t('d'));
  assert.equal(t('a'), t('a_out'));
  assert.equal(t('b'), t('e'));
  assert.notEqual(t('a'), t('b'));
  // (Interned by a key text, ["s,'t"] read as ["s", "t"]: c took a's rank-2 type.)
  assert.notEqual(t('c'), t('a'));
  assert.deepEqual(t('c').shape, ["s,'t"]);
  assert.deepEqual(t('c_out').shape, ["s,'t"]);
});

test("the tensor-parallel variant's shapes and profile reuse the plain variant's per-node results (the nodes the rewrite kept): field by field what a fresh inference and profile give, the handoff read once", async () => {
  const cases: [string, Record<string, number>, string][] = [
    // A decode step split 8 ways (attention heads as shards, the KV cache as graph inputs and outputs per shard).
    ['mixtral_8x7b_shaped.graph_only', { batch_size: 1, sequence_length: 1, past_sequence_length: 1024 }, 'auto'],
    ['mixtral_tiny_moe_kv', { batch_size: 2, sequence_length: 5, past_sequence_length: 0 }, '2'],
    ['gpt2_tiny_kv', { batch_size: 3, sequence_length: 1, past_sequence_length: 7 }, '4'],
  ];
  for (const [name, dims, mode] of cases) {
    const base = { model_path: path.join(SHARED_MODELS, `${name}.onnx`), topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'), dims };
    const handoff: AnalysisHandoff = { shapes: null, profile: null };
    const plain = await runPipeline({ ...base, flags: { 'tensor-parallel': 'off' }, leave_analyses: handoff }, ['tp', 'profile']);
    const memo = handoff.shapes;
    const profileMemo = handoff.profile;
    assert.ok(memo && profileMemo, `${name}: the plain inference and profile left their memos`);
    const imported = plain.ctx.get(importPass);
    const split = { ...base, flags: { 'tensor-parallel': mode }, imported };
    const fresh = (await runPipeline(split, ['tp', 'profile'])).ctx;
    const reusing = (await runPipeline({ ...split, reuse_analyses: handoff }, ['tp', 'profile'])).ctx;
    assert.deepEqual([handoff.shapes, handoff.profile], [null, null], `${name}: read once`);
    assert.ok(reusing.get(tpPass).splits.length > 0, `${name}: split`);
    const a = fresh.get(shapesPass);
    const b = reusing.get(shapesPass);
    assert.deepEqual([...b.types.entries()], [...a.types.entries()], name);
    assert.deepEqual(b.types_by_id, a.types_by_id, name);
    assert.deepEqual([...b.values.entries()], [...a.values.entries()], name);
    for (const field of [
      'order',
      'unknown_ops',
      'unknown_op_nodes',
      'declared_fallback',
      'unknown_values',
      'fresh_symbols',
      'disagreements',
      'notes',
      'rule_errors',
      'symbols',
    ] as const)
      assert.deepEqual(b[field], a[field], `${name}: ${field}`);
    assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort(), name);
    // Reused, not inferred again: the folded elements of nodes the rewrite kept are the plain inference's arrays.
    const kept = [...b.values].filter(([v, x]) => memo.values.get(v) === x).length;
    assert.ok(kept > 0 && kept >= b.values.size * 0.5, `${name}: ${kept} of ${b.values.size} folded values reused`);
    // The profile: every field a fresh one's, its per-node results taken for most nodes.
    const pa = fresh.get(profilePass);
    const pb = reusing.get(profilePass);
    assert.deepEqual(Object.keys(pb).sort(), Object.keys(pa).sort(), name);
    for (const field of Object.keys(pa) as (keyof ProfileResult)[])
      if (field !== 'value_bytes') assert.deepEqual(pb[field], pa[field], `${name}: profile ${field}`);
    const { index } = reusing.get(verifyPass);
    const taken = memoNodes(profileMemo, reusing.model.graph, index, b.types_by_id!).filter((p) => p >= 0).length;
    const own = new Set(plain.ctx.model.graph.nodes);
    const same = reusing.model.graph.nodes.filter((n) => own.has(n)).length;
    assert.ok(taken >= same * 0.5, `${name}: ${taken} of the ${same} nodes the rewrite kept reused their costs`);
    for (const v of index.valueNames) assert.equal(pb.value_bytes.get(v), pa.value_bytes.get(v), `${name}: bytes of ${v}`);
    // A value of another type object (as after a rewrite that changed it): its producer and readers are computed again.
    const at = memoNodes(profileMemo, reusing.model.graph, index, b.types_by_id!);
    const victim = index.outputIds.findIndex((id) => id >= 0 && at[index.producerOf[id]!]! >= 0 && index.consumersOfId(id).length > 0);
    const id = index.outputIds[victim]!;
    const altered = b.types_by_id!.slice();
    altered[id] = { ...altered[id]! };
    const after = memoNodes(profileMemo, reusing.model.graph, index, altered);
    for (const i of [index.producerOf[id]!, ...index.consumersOfId(id)])
      assert.equal(after[i], -1, `${name}: node ${i} reads or writes ${index.valueNames[id]}`);
    assert.equal(after.filter((p) => p >= 0).length, taken - 1 - index.consumersOfId(id).filter((i) => at[i]! >= 0).length, name);
    // Other dims than the memo's: nothing is reused, and the inference is still the fresh one.
    handoff.shapes = memo;
    const other = { ...dims, past_sequence_length: dims.past_sequence_length! + 1 };
    const freshOther = (await runPipeline({ ...split, dims: other }, ['tp', 'shapes'])).ctx.get(shapesPass);
    const otherDims = (await runPipeline({ ...split, dims: other, reuse_analyses: handoff }, ['tp', 'shapes'])).ctx.get(shapesPass);
    assert.equal([...otherDims.values].filter(([v, x]) => memo.values.get(v) === x).length, 0, name);
    assert.deepEqual([...otherDims.types.entries()], [...freshOther.types.entries()], name);
  }
});

test('a node is reused only as its own rule would type it: an input of another type, or of other folded elements, and what its rule noted or named afresh, infer it again', () => {
  // One tensor object per name and elements, as a rewrite keeps the weights it does not split.
  const tensors = new Map<string, TensorData>();
  const int64 = (name: string, values: number[]): TensorData => {
    const key = `${name}=${values.join(',')}`;
    let t = tensors.get(key);
    if (!t) {
      const data = new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);
      tensors.set(key, (t = { name, dtype: 'int64', dims: [values.length], byte_size: 8 * values.length, location: { kind: 'inline', data } }));
    }
    return t;
  };
  const node = (name: string, op: string, inputs: string[], outputs: string[]): Node => ({
    name,
    op,
    domain: '',
    inputs,
    outputs,
    attrs: {},
    outer_refs: [],
    source_index: 0,
  });
  const nodes = [
    node('relu', 'Relu', ['x'], ['y']),
    node('shape', 'Shape', ['y'], ['s']),
    node('reshape', 'Reshape', ['y', 'to'], ['z']),
    node('nonzero', 'NonZero', ['z'], ['nz']),
    node('gather', 'Gather', ['s', 'at'], ['g']),
  ];
  nodes.forEach((n, i) => (n.source_index = i));
  const graph = (x: number[], to: number[], declaredZ: number[]): Graph => ({
    name: 'kept',
    nodes,
    inputs: [{ name: 'x', type: { dtype: 'float32', shape: x } }],
    outputs: [{ name: 'g', type: null }],
    initializers: new Map([
      ['to', int64('to', to)],
      ['at', int64('at', [0])],
    ]),
    declared: new Map([['z', { dtype: 'float32' as const, shape: declaredZ }]]),
    declared_bytes: new Map(),
  });
  const infer = (g: Graph, extra: Partial<Parameters<typeof inferShapes>[2]> = {}) => {
    const { index, order } = verifyGraph(g, g.name);
    return inferShapes(g, order, { opsets: { '': 17 }, dims: {}, index, ...extra });
  };
  const first = graph([2, 3], [3, 2], [3, 2]);
  // The first graph's declarations copied and edited, as a rewrite makes its graph's (editDeclared):
  // only the names edited are compared with the memo's.
  const edited = (edit: (e: ReturnType<typeof editDeclared>) => void): Graph => {
    const e = editDeclared(first.declared);
    edit(e);
    return { ...graph([2, 3], [3, 2], [3, 2]), declared: e.declared };
  };
  for (const [what, other] of [
    ['the same graph', graph([2, 3], [3, 2], [3, 2])],
    ['another input type', graph([4, 3], [3, 4], [3, 4])],
    ['other folded elements of a type alike', graph([2, 3], [6, 1], [6, 1])],
    ['another declaration (a disagreement)', graph([2, 3], [3, 2], [2, 3])],
    ['another declaration edited in (a disagreement)', edited((e) => e.set('z', { dtype: 'float32', shape: [2, 3] }))],
    ['a declaration edited out', edited((e) => e.delete('z'))],
    ['other names edited', edited((e) => e.set('unread', { dtype: 'float32', shape: [5] }))],
  ] as const) {
    let memo: InferMemo | undefined;
    infer(first, { leave: (m) => (memo = m) });
    assert.ok(memo);
    const fresh = infer(other);
    const reused = infer(other, { reuse: memo });
    assert.deepEqual([...reused.types.entries()], [...fresh.types.entries()], what);
    assert.deepEqual([...reused.values.entries()], [...fresh.values.entries()], what);
    for (const field of ['order', 'fresh_symbols', 'notes', 'disagreements', 'declared_fallback', 'unknown_values'] as const)
      assert.deepEqual(reused[field], fresh[field], `${what}: ${field}`);
    // (Shape's folded elements are the memo's array exactly when Shape was reused.)
    assert.equal(reused.values.get('s') === memo.values.get('s'), what !== 'another input type', what);
  }
  assert.equal(infer(edited((e) => e.set('z', { dtype: 'float32', shape: [2, 3] }))).disagreements.length, 1, 'the edit is a disagreement');
});

test('declarations edited from a copy: every name whose declared type differs between the two maps is among the edited names', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 1, max: 3 })), { maxLength: 12 }),
      (edits) => {
        const from = new Map<string, TensorType>([0, 1, 2, 3].map((k) => [`v${k}`, { dtype: 'float32', shape: [k] }]));
        const e = editDeclared(from);
        for (const [kind, k, d] of edits) {
          if (kind === 0) e.delete(`v${k}`);
          else e.set(`v${k}`, kind === 1 ? (from.get(`v${k}`) ?? { dtype: 'int64', shape: [d] }) : { dtype: 'int64', shape: [d] });
        }
        for (const [a, b] of [
          [e.declared, from],
          [from, e.declared],
        ]) {
          const names = declaredEditedFrom(a!, b!);
          assert.ok(names);
          for (const k of [0, 1, 2, 3, 4, 5, 6, 7]) if (a!.get(`v${k}`) !== b!.get(`v${k}`)) assert.ok(names.has(`v${k}`), `v${k}`);
        }
        assert.equal(declaredEditedFrom(from, from)?.size, 0);
        assert.equal(declaredEditedFrom(e.declared, new Map(from)), null, 'unrelated maps: any name may differ');
        assert.equal(from.size, 4, 'the copy is edited, not the map it copies');
      },
    ),
  );
});
