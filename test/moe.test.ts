// The moe pass's detection: the real MoE models (sparse routed and dense forms), the com.microsoft
// MoE operator and JSON annotations.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EXAMPLES, FIXTURES, SHARED_MODELS, hxc, tmpDir } from './helpers.js';
import type { PlanV1 } from '../src/plan/format.js';
import { onnx, valueInfo } from './onnx-builder.js';
import { checkExpertNames, DENSE, detect, MIXTRAL_8X7B, MIXTRAL_TINY, moe } from './moe-helpers.js';
import { runPipeline } from '../src/cli/run-passes.js';
import { verifyPass } from '../passes/verify.js';
import { Facts } from '../src/moe/detect-facts.js';

test('detects the sparse routed Mixtral exports: expert count, top-k, FLOPs and bytes per expert', async () => {
  const tiny = await detect(MIXTRAL_TINY);
  assert.equal(tiny.layers.length, 2);
  for (const l of tiny.layers) {
    assert.deepEqual([l.form, l.num_experts, l.top_k, l.experts.length, l.hidden, l.detected_by], ['sparse', 4, 2, 4, 128, 'structure']);
    // SwiGLU 128 → 256 → 128: three matrices of 128 × 256, 2 FLOPs per weight per token.
    for (const e of l.experts) assert.deepEqual([e.flops_per_token, e.param_bytes], [2 * 3 * 128 * 256, 3 * 128 * 256 * 4]);
    assert.ok(tiny.names[l.router[0]!]!.endsWith('block_sparse_moe/gate/MatMul'));
    assert.ok(
      l.dispatch.some((i) => tiny.names[i]!.includes('ScatterElements')),
      'the scatter-add is a combine node',
    );
  }
  checkExpertNames(tiny.layers, tiny.names);
  const big = await detect(MIXTRAL_8X7B);
  assert.equal(big.layers.length, 32);
  for (const l of big.layers) {
    assert.deepEqual([l.form, l.num_experts, l.top_k, l.hidden, l.token_dtype], ['sparse', 8, 2, 4096, 'float16']);
    for (const e of l.experts) assert.deepEqual([e.flops_per_token, e.param_bytes], [2 * 3 * 4096 * 14336, 3 * 4096 * 14336 * 2]);
  }
  checkExpertNames(big.layers, big.names);
  assert.deepEqual(
    big.layers.map((l) => l.layer),
    Array.from({ length: 32 }, (_, i) => i),
  );
});

test('Facts.sortByPos: the nodes once each in graph order, as a sort by position with a Set gives (a node outside the order kept as given)', async () => {
  const { ctx } = await runPipeline({ model_path: MIXTRAL_TINY, topology_path: null, dims: {}, flags: {} }, ['verify']);
  const v = ctx.get(verifyPass);
  const facts = new Facts(ctx.model, v.index, v.order);
  const reference = (nodes: number[]): number[] => [...new Set(nodes)].sort((a, b) => facts.pos[a]! - facts.pos[b]!);
  const n = ctx.model.graph.nodes.length;
  let seed = 7;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  for (let round = 0; round < 50; round++) {
    const nodes = Array.from({ length: 1 + (round % 17) * 3 }, next);
    nodes.push(nodes[0]!, nodes[nodes.length >> 1]!); // repeats come out once
    assert.deepEqual(facts.sortByPos(nodes), reference(nodes));
    assert.deepEqual(facts.sortByPos(new Set(nodes)), reference(nodes));
  }
  assert.deepEqual(facts.sortByPos([]), []);
  // A graph whose order leaves a node out: that node sorts first, as the comparator leaves it.
  const partial = new Facts(ctx.model, v.index, v.order.subarray(1));
  const out = v.order[0]!;
  const list = [v.order[5]!, out, v.order[2]!, out];
  assert.deepEqual(
    partial.sortByPos(list),
    [...new Set(list)].sort((a, b) => partial.pos[a]! - partial.pos[b]!),
  );
  assert.equal(partial.sortByPos(list)[0], out);
});

test('detects the dense form: every expert on every token, gates scattered into [tokens, E]', async () => {
  const { layers, names } = await detect(DENSE);
  assert.equal(layers.length, 3);
  for (const l of layers) {
    assert.deepEqual([l.form, l.num_experts, l.top_k, l.hidden], ['dense', 6, 2, 96]);
    for (const e of l.experts) assert.equal(e.flops_per_token, 2 * 3 * 96 * 192);
    const ops = new Set(l.dispatch.map((i) => names[i]!.split('/').pop()!.replace(/_\d+$/, '')));
    assert.ok(ops.has('ScatterElements') && ops.has('Concat') && ops.has('ReduceSum'), [...ops].join(','));
  }
  checkExpertNames(layers, names);
});

test('models without MoE have no MoE layers', async () => {
  for (const m of [path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), path.join(SHARED_MODELS, 'mobilenet_v3_small.onnx')]) {
    assert.ok(fs.existsSync(m), `missing model ${m}`);
    assert.equal((await detect(m)).layers.length, 0, m);
  }
});

test('com.microsoft MoE: experts from the fc weights, top-k from k, the router behind router_probs', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'moe_op.onnx');
  const w = (name: string, dims: number[]) => ({ name, dataType: 1, dims, rawData: Buffer.alloc(4 * dims.reduce((a, b) => a * b, 1)) });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'hxc-test',
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: 'moe_op',
      node: [
        { name: 'router', opType: 'MatMul', input: ['x', 'wr'], output: ['logits'] },
        {
          name: 'moe',
          opType: 'MoE',
          domain: 'com.microsoft',
          input: ['x', 'logits', 'fc1', '', 'fc2', '', 'fc3'],
          output: ['y'],
          attribute: [
            { name: 'k', type: onnx.AttributeProto.AttributeType.INT, i: 2 },
            { name: 'activation_type', type: onnx.AttributeProto.AttributeType.STRING, s: Buffer.from('silu') },
          ],
        },
      ],
      input: [valueInfo('x', 1, ['tokens', 8])],
      output: [valueInfo('y', 1, ['tokens', 8])],
      initializer: [w('wr', [8, 4]), w('fc1', [4, 8, 16]), w('fc2', [4, 16, 8]), w('fc3', [4, 8, 16])],
    },
  });
  fs.writeFileSync(file, Buffer.from(onnx.ModelProto.encode(model).finish()));
  const { layers, names } = await detect(file);
  assert.equal(layers.length, 1);
  const l = layers[0]!;
  assert.deepEqual([l.form, l.num_experts, l.top_k, l.hidden, l.detected_by], ['operator', 4, 2, 8, 'operator']);
  assert.deepEqual(
    l.router.map((i) => names[i]),
    ['router'],
  );
  for (const e of l.experts) assert.deepEqual([e.flops_per_token, e.param_bytes], [2 * 3 * 8 * 16, (3 * 8 * 16 * 4 * 4) / 4]);
  const { result } = await moe(file, 'rack-8gpu.yaml', { 'expert-slots': 4 });
  assert.equal(result.plan!.layers[0]!.placements.hxc.replicas.length, 8);
});

test('JSON graphs: the `moe` annotation names router and experts', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'annotated.json');
  const nodes = [
    { name: 'gate', op: 'MatMul', inputs: ['x', 'wg'], outputs: ['logits'] },
    { name: 'topk', op: 'TopK', inputs: ['logits', 'k'], outputs: ['vals', 'idx'] },
  ];
  const experts: string[][] = [];
  for (let e = 0; e < 3; e++) {
    nodes.push(
      { name: `e${e}.up`, op: 'MatMul', inputs: ['x', `w${e}a`], outputs: [`h${e}`] },
      { name: `e${e}.down`, op: 'MatMul', inputs: [`h${e}`, `w${e}b`], outputs: [`o${e}`] },
    );
    experts.push([`e${e}.up`, `e${e}.down`]);
  }
  nodes.push({ name: 'sum', op: 'Sum', inputs: ['o0', 'o1', 'o2'], outputs: ['y'] });
  const inits = [
    { name: 'wg', dtype: 'float16', shape: [64, 3] },
    { name: 'k', dtype: 'int64', shape: [1] },
  ];
  for (let e = 0; e < 3; e++) inits.push({ name: `w${e}a`, dtype: 'float16', shape: [64, 128] }, { name: `w${e}b`, dtype: 'float16', shape: [128, 64] });
  fs.writeFileSync(
    file,
    JSON.stringify({
      format: 'hxc-graph/v1',
      name: 'annotated',
      inputs: [{ name: 'x', dtype: 'float16', shape: [16, 64] }],
      outputs: [{ name: 'y', dtype: 'float16', shape: [16, 64] }],
      initializers: inits,
      nodes,
      annotations: { moe: [{ layer: 0, router: ['gate', 'topk'], experts, top_k: 2 }] },
    }),
  );
  const { layers } = await detect(file);
  assert.equal(layers.length, 1);
  assert.deepEqual([layers[0]!.form, layers[0]!.num_experts, layers[0]!.top_k, layers[0]!.hidden, layers[0]!.token_dtype], ['annotated', 3, 2, 64, 'float16']);
  assert.equal(layers[0]!.experts[1]!.flops_per_token, 2 * 2 * 64 * 128);
});

test('a layer whose every expert has executable replicas (--expert-replicas) is still found: its experts by name, its token counts at their expectation, the layers numbered as the model has them', async () => {
  const dir = tmpDir();
  const dims = ['--dim', 'batch_size=2,sequence_length=5,past_sequence_length=3'];
  // mixtral_tiny has 2 layers of 4 experts: 4 replicas go to layer 0's four (uniform routing), 8 to all of both.
  for (const replicas of ['4', '8']) {
    const out = path.join(dir, `r${replicas}`);
    const r = hxc(['plan', MIXTRAL_TINY, '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), ...dims, '--expert-replicas', replicas, '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /HXC1104/, `${replicas} replicas: no token count costed at 1`);
    const p = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as PlanV1;
    assert.deepEqual([...new Set(p.experts.map((e) => e.layer))], [0, 1], `${replicas} replicas: both layers, numbered 0 and 1`);
    assert.ok(
      p.experts.every((e) => e.tokens > 0),
      `${replicas} replicas: every expert has expected tokens`,
    );
    const nonzero = Object.entries(p.estimated_dims).filter(([k]) => k.startsWith('nz_model_layers.0'));
    assert.equal(nonzero.length, 4, `${replicas} replicas: layer 0's four token counts estimated`);
  }
});
