import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runPipeline } from '../src/cli/run-passes.js';
import { newGraph } from '../src/ir/graph.js';
import { runPlan } from '../src/runtime/run.js';
import { splitMatMuls } from '../src/transform/tensor-parallel.js';
import { loadTopology } from '../src/topology/index.js';
import { tensorParallelGroup } from '../passes/tp.js';
import { encodeModel, valueInfo } from './onnx-builder.js';
import { EXAMPLES, tmpDir } from './helpers.js';

function mlp(K: number, N: number): Buffer {
  const f32 = (name: string, dims: number[], n: number) => ({ name, dataType: 1, dims, rawData: new Uint8Array(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) / 16).buffer) });
  return encodeModel({
    name: 'mlp',
    node: [
      { name: 'up', opType: 'MatMul', input: ['x', 'w1'], output: ['h'] },
      { name: 'act', opType: 'Relu', input: ['h'], output: ['a'] },
      { name: 'down', opType: 'MatMul', input: ['a', 'w2'], output: ['y'] },
    ],
    initializer: [f32('w1', [K, N], K * N), f32('w2', [N, K], N * K)],
    input: [valueInfo('x', 1, ['batch', K])],
    output: [valueInfo('y', 1, ['batch', K])],
  });
}

test('column split: each block holds the right columns, the gather restores the output', () => {
  const g = newGraph('g');
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [2, 3] } });
  const data = new Float32Array([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]); // [3, 4] row-major
  g.initializers.set('w', { name: 'w', dtype: 'float32', dims: [3, 4], byte_size: 48, location: { kind: 'inline', data: new Uint8Array(data.buffer) } });
  g.nodes.push({ name: 'mm', op: 'MatMul', domain: '', inputs: ['x', 'w'], outputs: ['y'], attrs: {}, outer_refs: [] });
  g.outputs.push({ name: 'y', type: null });
  const { graph, splits } = splitMatMuls(g, new Set(['mm']), 2);
  assert.deepEqual(splits, [{ node: 'mm', parts: ['mm/tp0of2', 'mm/tp1of2'] }]);
  const block = (j: number): number[] => {
    const t = graph.initializers.get(`w/tp${j}of2`)!;
    assert.deepEqual(t.dims, [3, 2]);
    return Array.from(new Float32Array((t.location as { data: Uint8Array }).data.slice().buffer));
  };
  assert.deepEqual(block(0), [0, 1, 10, 11, 20, 21]);
  assert.deepEqual(block(1), [2, 3, 12, 13, 22, 23]);
  assert.ok(!graph.initializers.has('w'), 'the whole weight is gone');
  const gather = graph.nodes.find((n) => n.op === 'Concat')!;
  assert.deepEqual(gather.inputs, ['y/tp0of2', 'y/tp1of2']);
  assert.deepEqual(gather.outputs, ['y']);
});

test('tensor-parallel parts go to different devices and the plan still matches the unsplit model', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'mlp.onnx'), mlp(256, 512));
  for (const objective of ['latency', 'throughput']) {
    const out = path.join(dir, objective);
    await runPipeline({ model_path: path.join(dir, 'mlp.onnx'), topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'), dims: { batch: 64 }, flags: { out, objective, 'tensor-parallel': 2 } }, null);
    const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
    assert.equal(plan.tensor_parallel.splits.length, 2);
    const up = plan.tensor_parallel.splits.find((s: { node: string }) => s.node === 'up').parts.map((p: string) => plan.assignment[p]);
    if (objective === 'throughput') assert.notEqual(up[0], up[1], `parts of "up" on ${up.join(' and ')}`);
    const report = await runPlan({ plan_dir: out, seed: 4, iterations: 1, check: true, decode_steps: 0, dims: {} });
    assert.ok(report.check!.passed);
    assert.equal(report.check!.worst!.max_abs_error, 0, 'a column split computes every element exactly as before');
  }
});

test('auto proposes splits of large weights over an NVLink-class group; a plan ships them only spread over devices and only when they win', async () => {
  assert.deepEqual(tensorParallelGroup(loadTopology(path.join(EXAMPLES, 'rack-8gpu.yaml'))).length, 8);
  assert.deepEqual(tensorParallelGroup(loadTopology(path.join(EXAMPLES, 'rack-hetero.yaml'))), ['gpu0', 'gpu1', 'gpu2', 'gpu3']);
  assert.deepEqual(tensorParallelGroup(loadTopology(path.join(EXAMPLES, 'rack-tiny.yaml'))), []);
  // A graph-only model: weights declared, no bytes (planning does not need them).
  const dir = tmpDir();
  const model = path.join(dir, 'big.json');
  fs.writeFileSync(model, JSON.stringify({
    format: 'hxc-graph/v1', name: 'big',
    inputs: [{ name: 'x', dtype: 'float16', shape: ['batch', 4096] }], outputs: [{ name: 'y', dtype: 'float16', shape: ['batch', 14336] }],
    initializers: [{ name: 'w', dtype: 'float16', shape: [4096, 14336] }],
    nodes: [{ name: 'proj', op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }],
  }));
  const proposed = async (objective: string, rack: string) => {
    const run = await runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, rack), dims: { batch: 512 }, flags: { objective } }, ['tp']);
    return run.ctx.get<{ k: number; splits: unknown[] }>('tp');
  };
  for (const objective of ['latency', 'throughput']) assert.deepEqual([(await proposed(objective, 'rack-8gpu.yaml')).k, (await proposed(objective, 'rack-8gpu.yaml')).splits.length], [4, 1]);
  assert.equal((await proposed('throughput', 'rack-tiny.yaml')).splits.length, 0);
  for (const objective of ['latency', 'throughput']) {
    const out = path.join(dir, `plan-${objective}`);
    await runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'), dims: { batch: 512 }, flags: { objective, out } }, null);
    const p = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
    const variants = p.estimate.variants as { name: string; splits: number; latency_s: number; throughput_per_s: number; eligible: boolean; shipped: boolean }[];
    assert.ok(variants.some((v) => v.splits === 0) && variants.some((v) => v.splits > 0), 'planned with and without the split');
    const figure = (v: { latency_s: number; throughput_per_s: number }): number => (objective === 'latency' ? v.latency_s : -v.throughput_per_s);
    const shipped = variants.find((v) => v.shipped)!;
    const atMost = (a: number, b: number): boolean => a <= b + Math.abs(b) * 1e-12;
    for (const v of variants.filter((x) => x.eligible)) assert.ok(atMost(figure(shipped), figure(v)), `${objective}: shipped ${shipped.name}, but ${v.name} is better`);
    assert.equal(figure(shipped), figure(p.estimate), 'the shipped variant is the plan written');
    // Every split that is shipped runs its parts on at least two devices.
    for (const s of p.tensor_parallel.splits as { parts: string[] }[]) assert.ok(new Set(s.parts.map((part) => p.assignment[part])).size >= 2, `parts of a shipped split on one device`);
    const tpBaseline = p.estimate.baselines.tensor_parallel;
    if (tpBaseline) assert.ok(atMost(figure(p.estimate), figure(tpBaseline)), 'never worse than the tensor-parallel baseline');
  }
});
