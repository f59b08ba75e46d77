import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { classifyPass, nodeClass } from '../passes/classify.js';
import { runPipeline } from '../src/cli/run-passes.js';
import type { PassContext, PlanOptions } from '../src/pass/pass.js';
import { computeTime, groupedLaunchSeconds } from '../src/cost/model.js';
import { GROUPED_MOE_KERNELS } from '../src/cost/fusion.js';
import { EXAMPLES, FIXTURES, SHARED_MODELS, hxc, tmpDir } from './helpers.js';
import { encodeModel, valueInfo } from './onnx-builder.js';
import { NodeCosts, profilePass, type NodeCost } from '../passes/profile.js';
import { moePass } from '../passes/moe.js';
import { statePass } from '../passes/state.js';
import { stagePass } from '../passes/stage.js';
import { verifyPass } from '../passes/verify.js';
import { importPass } from '../passes/import.js';
import { buildProblem } from '../src/partition/build.js';

const options = (model: string, extra: Partial<PlanOptions> = {}): PlanOptions => ({ model_path: model, topology_path: null, dims: {}, flags: {}, ...extra });

test('FLOPs of the hand-made transformer block equal the hand count', async () => {
  const B = 2,
    S = 128,
    D = 256,
    F = 1024;
  const run = await runPipeline(options(path.join(FIXTURES, 'graphs', 'transformer_block.json'), { dims: { batch: B } }), ['profile']);
  const p = run.ctx.get(profilePass);
  const byName = new Map(run.ctx.model.graph.nodes.map((n, i) => [n.name, p.nodes.at(i).flops]));
  // By hand: a [m,k]×[k,n] product is 2mkn; LayerNorm 8 per element; softmax 5; Gelu 8; add/div 1.
  const expected: Record<string, number> = {
    ln1: 8 * B * S * D,
    q_proj: 2 * B * S * D * D,
    k_proj: 2 * B * S * D * D,
    v_proj: 2 * B * S * D * D,
    k_t: 0,
    scores: 2 * B * S * S * D,
    scale: B * S * S,
    softmax: 5 * B * S * S,
    context: 2 * B * S * S * D,
    o_proj: 2 * B * S * D * D,
    residual1: B * S * D,
    ln2: 8 * B * S * D,
    fc1: 2 * B * S * D * F,
    fc1_bias: B * S * F,
    gelu: 8 * B * S * F,
    fc2: 2 * B * S * F * D,
    residual2: B * S * D,
  };
  for (const [name, flops] of Object.entries(expected)) assert.equal(byName.get(name), flops, name);
  const total = Object.values(expected).reduce((a, b) => a + b, 0);
  assert.equal(p.totals.flops, total);
  assert.equal(total, 439_943_168);
  // Parameters: every initializer is read exactly once here.
  assert.equal(p.totals.param_bytes, 4 * (4 * D + 4 * D * D + 2 * D * F + F + 1));
});

test('profile counts each weight once, however many nodes read it: what the import counts (GPT-2 ties its embedding; mobilenet reads biases through Identity nodes)', async () => {
  for (const [model, dims] of [
    [path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), {}],
    [path.join(SHARED_MODELS, 'mobilenet_v3_small.onnx'), { batch: 2 }],
  ] as const) {
    const r = await runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, 'rack-tiny.yaml'), dims, flags: {} }, ['profile']);
    const imported = importPass.statistics(r.ctx.model, r.ctx) as Record<string, number>;
    assert.equal(r.ctx.get(profilePass).totals.param_bytes, imported['param bytes']! + imported['constant bytes']!, path.basename(model));
  }
});

test('state: bytes per token of the KV-cache models, checked by hand', async () => {
  // kv bytes/token = layers × 2 (K and V) × kv_heads × head_dim × dtype bytes (MANIFEST.md shapes).
  const cases: [string, number][] = [
    ['gpt2_tiny_kv.onnx', 2 * 2 * 4 * 32 * 4],
    ['mixtral_tiny_moe_kv.onnx', 2 * 2 * 2 * 32 * 4],
    ['dense_moe_small_kv.onnx', 3 * 2 * 1 * 32 * 4],
    ['mixtral_8x7b_shaped.graph_only.onnx', 32 * 2 * 8 * 128 * 2],
  ];
  for (const [file, perToken] of cases) {
    const run = await runPipeline(options(path.join(SHARED_MODELS, file), { flags: { context: 4096, batch: 8 } }), ['state']);
    const s = run.ctx.get(statePass);
    assert.equal(s.totals.bytes_per_token, perToken, file);
    assert.equal(s.totals.bytes, perToken * 4096 * 8, file);
    const layers = s.objects.map((o) => o.layer);
    assert.deepEqual(
      layers,
      layers.map((_, i) => i),
      `${file}: one object per layer, in order`,
    );
    for (const o of s.objects) {
      assert.equal(o.inputs.length, 2);
      assert.ok(o.writers.length >= 1 && o.readers.length >= 1, `${file} ${o.name} has readers and writers`);
      const writerOps = o.writers.map((w) => run.ctx.model.graph.nodes[w]!.op);
      assert.ok(
        writerOps.every((op) => op === 'Concat'),
        `${file}: KV writers are the cache concats (${writerOps})`,
      );
    }
  }
  const none = await runPipeline(options(path.join(SHARED_MODELS, 'mobilenet_v3_small.onnx')), ['state']);
  assert.equal(none.ctx.get(statePass).objects.length, 0);
});

test('--phase binds the LLM symbols: prefill seq=prompt past=0, decode seq=1 past=context', async () => {
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const prefill = (await runPipeline(options(model, { flags: { phase: 'prefill', prompt: 64, batch: 2 } }), ['profile'])).ctx.get(profilePass);
  assert.deepEqual(prefill.bindings, { batch_size: 2, sequence_length: 64, past_sequence_length: 0 });
  const decode = (await runPipeline(options(model, { flags: { phase: 'decode', context: 200 } }), ['profile'])).ctx.get(profilePass);
  assert.deepEqual(decode.bindings, { batch_size: 1, sequence_length: 1, past_sequence_length: 200 }); // GPT-2 tiny holds 256 positions
  assert.ok(prefill.totals.flops > 50 * decode.totals.flops, 'prefill of 2×64 tokens costs far more than one decode token');
  // --dim wins over the phase.
  const pinned = (await runPipeline(options(model, { dims: { past_sequence_length: 7 }, flags: { phase: 'decode' } }), ['profile'])).ctx.get(profilePass);
  assert.equal(pinned.bindings.past_sequence_length, 7);
});

test('classify: GEMMs are compute-bound on a GPU and element-wise ops memory-bound; decode is latency-sensitive', async () => {
  const model = path.join(FIXTURES, 'graphs', 'transformer_block.json');
  const run = await runPipeline(options(model, { dims: { batch: 8 }, topology_path: path.join(EXAMPLES, 'rack-tiny.yaml') }), ['classify']);
  const c = run.ctx.get(classifyPass);
  const idx = (name: string): number => run.ctx.model.graph.nodes.findIndex((n) => n.name === name);
  assert.deepEqual(c.kinds, ['cpu', 'gpu']);
  assert.equal(nodeClass(c, idx('fc1')).by_kind.gpu!.bound, 'compute');
  assert.equal(nodeClass(c, idx('residual2')).by_kind.gpu!.bound, 'memory');
  assert.ok(nodeClass(c, idx('fc1')).by_kind.gpu!.time_s < nodeClass(c, idx('fc1')).by_kind.cpu!.time_s);
  // The block is a chain apart from q/k/v: the projections off the critical path have slack.
  assert.equal(nodeClass(c, idx('fc2')).slack_s, 0);
  assert.ok(nodeClass(c, idx('fc2')).latency_sensitive);
  assert.ok(c.critical_path_s > 0);
  const decode = (await runPipeline(options(path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), { flags: { phase: 'decode' } }), ['classify'])).ctx.get(
    classifyPass,
  );
  assert.ok(decode.latency_sensitive.every((x) => x === 1));
});

test('calibration from a real onnxruntime profile changes the estimates and reports fitted factors', async () => {
  const dir = tmpDir();
  const model = path.join(FIXTURES, 'models', 'hello_deepa.onnx');
  // Optimisations off so onnxruntime's kernels keep the model's node names.
  const session = await ort.InferenceSession.create(model, {
    enableProfiling: true,
    profileFilePrefix: path.join(dir, 'ort'),
    graphOptimizationLevel: 'disabled',
  });
  const x = new ort.Tensor(
    'float32',
    Float32Array.from({ length: 25 * 96 }, (_, i) => Math.sin(i)),
    [1, 25, 96],
  );
  for (let i = 0; i < 5; i++) await session.run({ 'onnx::Flatten_0': x });
  session.endProfiling();
  await session.release();
  const profileFile = fs.readdirSync(dir).find((f) => f.startsWith('ort') && f.endsWith('.json'));
  assert.ok(profileFile, 'onnxruntime wrote a profile');
  const base = await runPipeline(options(model), ['classify']);
  const cal = await runPipeline(options(model, { flags: { calibrate: path.join(dir, profileFile) } }), ['classify']);
  const p = cal.ctx.get(profilePass);
  assert.ok(p.calibration);
  assert.ok(p.calibration.matched_nodes >= 20, `matched ${p.calibration.matched_nodes}`);
  const gemm = p.calibration.factors.find((f) => f.kind === 'cpu' && f.op_class === 'matmul');
  assert.ok(gemm && gemm.factor > 0 && Number.isFinite(gemm.factor) && gemm.nodes === 3, JSON.stringify(p.calibration.factors));
  const i = cal.ctx.model.graph.nodes.findIndex((n) => n.op === 'Gemm');
  const before = nodeClass(base.ctx.get(classifyPass), i).by_kind.cpu!.time_s;
  const after = nodeClass(cal.ctx.get(classifyPass), i).by_kind.cpu!.time_s;
  assert.notEqual(before, after);
  assert.equal(after, p.nodes.at(i).measured_s!.cpu, 'the measured time replaces the estimate on the measured kind');
  const cli = hxc(['inspect', model, '--costs', '--calibrate', path.join(dir, profileFile)]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /calibration \(onnxruntime-profile, \d+ nodes matched\)/);
  assert.match(cli.stdout, /cpu\s+matmul\s+\S+\s+3/);
  // With onnxruntime's optimisations on (its default), the profile times fused kernels that are no
  // node of the model: their share of the time is said, with how to time node by node.
  const fused = await ort.InferenceSession.create(model, { enableProfiling: true, profileFilePrefix: path.join(dir, 'fused'), graphOptimizationLevel: 'all' });
  for (let i = 0; i < 3; i++) await fused.run({ 'onnx::Flatten_0': x });
  fused.endProfiling();
  await fused.release();
  const fusedFile = fs.readdirSync(dir).find((f) => f.startsWith('fused') && f.endsWith('.json'))!;
  const warned = hxc(['inspect', model, '--costs', '--calibrate', path.join(dir, fusedFile)]);
  assert.equal(warned.code, 0, warned.stderr);
  assert.match(
    warned.stderr,
    /HXC1105: .*: \d+ measured names are no node of this model \(.*Fusion.*; \d+\.\d% of the measured time, not used; \d+ matched\).*graphOptimizationLevel: 'disabled'/,
  );
});

test('bad calibration and phase inputs are one-line errors', async () => {
  const dir = tmpDir();
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, '{"format": "something-else"}');
  const model = path.join(FIXTURES, 'models', 'hello_deepa.onnx');
  const r = hxc(['inspect', model, '--costs', '--calibrate', bad]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /HXC2502/);
  assert.equal(hxc(['inspect', model, '--phase', 'middle']).code, 2);
  assert.equal(hxc(['inspect', model, '--batch', '0']).code, 2);
});

test('tokens per expert of routed MoE layers are costed at their expectation, from the routing file when given', async () => {
  const model = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx');
  const flags = { phase: 'prefill', prompt: 32, batch: 2 };
  const uniform = (await runPipeline(options(model, { flags }), ['profile'])).ctx.get(profilePass);
  const counts = Object.entries(uniform.estimated);
  assert.equal(counts.length, 2 * 4, 'one NonZero count per expert per layer');
  // 64 tokens × top-2 over 4 experts.
  for (const [, c] of counts) assert.equal(c, 32);
  assert.deepEqual(uniform.defaulted, []);
  const routed = (
    await runPipeline(options(model, { flags: { ...flags, routing: path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.expert_routing.json') } }), ['profile'])
  ).ctx.get(profilePass);
  const byLayer = new Map<string, number>();
  for (const [sym, c] of Object.entries(routed.estimated)) {
    const layer = /layers\.(\d+)/.exec(sym)![1]!;
    byLayer.set(layer, (byLayer.get(layer) ?? 0) + c);
  }
  for (const total of byLayer.values()) assert.ok(Math.abs(total - 128) <= 2, `assignments per layer ≈ tokens × top-k (${total})`);
  assert.ok(new Set(Object.values(routed.estimated)).size > 1, 'a skewed trace gives experts different loads');
});

test("a routed layer's expert, dispatch and combine nodes launch nothing of their own on a GPU (the layer's grouped kernels are launched once per device), each their own on a CPU; other nodes their own", async () => {
  const model = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx');
  const run = await runPipeline(options(model, { topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'), flags: { phase: 'decode', batch: 2, context: 16 } }), [
    'moe',
  ]);
  const profile = run.ctx.get(profilePass);
  const layers = run.ctx.get(moePass).layers.filter((l) => l.form === 'sparse');
  assert.ok(layers.length > 0, 'the model has routed MoE layers');
  const topo = run.ctx.topology();
  const gpu = topo.devices.find((d) => d.kind === 'gpu')!;
  const cpu = topo.devices.find((d) => d.kind === 'cpu')!;
  const inExpert = new Set<number>();
  let checked = 0;
  for (const l of layers) {
    assert.ok(l.dispatch.length >= l.num_experts, `layer ${l.layer}: each expert has dispatch and combine nodes`);
    for (const e of [...l.experts.map((x) => x.nodes), l.dispatch]) {
      for (const i of e) {
        inExpert.add(i);
        const c = profile.nodes.at(i);
        assert.equal(c.launch_group, l.layer, 'its layer, whose grouped kernels it runs in');
        if (c.flops === 0 && c.bytes === 0) continue; // no kernel at all
        const whole = computeTime({ ...c, launch_group: undefined }, gpu);
        if (!c.fused) {
          assert.ok(Math.abs(whole - computeTime(c, gpu) - gpu.launch_s) < 1e-15, 'the GPU pays no launch for the node');
          checked++;
        }
        assert.equal(computeTime(c, cpu), computeTime({ ...c, launch_group: undefined }, cpu), 'a CPU launches every node');
      }
    }
  }
  assert.ok(checked > 0, 'some expert nodes launch kernels');
  profile.nodes.toArray().forEach((c, i) => {
    if (!inExpert.has(i)) assert.equal(c.launch_group, undefined, "nodes outside the layers' routed parts launch as they are");
  });
  // The layer's launches: GROUPED_MOE_KERNELS on a GPU, once per device that runs its experts; none extra on a CPU.
  assert.equal(groupedLaunchSeconds(gpu), GROUPED_MOE_KERNELS * gpu.launch_s);
  assert.equal(groupedLaunchSeconds(cpu), 0);
});

/** mixtral_tiny decoding on rack-hetero, analysed up to its expert placement. */
async function mixtralTinyDecode(): Promise<PassContext> {
  const model = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx');
  const flags = { phase: 'decode', batch: 2, context: 16 };
  return (await runPipeline(options(model, { topology_path: path.join(EXAMPLES, 'rack-hetero.yaml'), flags }), ['state', 'stage', 'moe'])).ctx;
}

/** The placement problem built from `ctx`'s analyses, with `costs` for the profile's node costs. */
function builtFrom(ctx: PassContext, costs: NodeCosts = ctx.get(profilePass).nodes): ReturnType<typeof buildProblem> {
  const profile = ctx.get(profilePass);
  return buildProblem({
    graph: ctx.model.graph,
    index: ctx.get(verifyPass).index,
    topology: ctx.topology(),
    routes: ctx.routes(),
    costs,
    efficiency: profile.efficiency,
    value_bytes_by_id: profile.value_bytes_by_id,
    stages: ctx.get(stagePass).stages.map((s) => ({ name: s.name, nodes: s.nodes })),
    state: ctx.get(statePass).objects,
  });
}

test("a built problem's values are what cross units: each value produced in one unit and read in others, its reading units ascending, each once", async () => {
  const ctx = await mixtralTinyDecode();
  const built = builtFrom(ctx);
  // From the graph: per value a node makes, the units of its readers other than its maker's.
  const crossing = new Map<string, { producer: number; consumers: number[] }>();
  ctx.model.graph.nodes.forEach((node, i) => {
    for (const out of node.outputs) {
      if (!out) continue;
      const readers = ctx.model.graph.nodes.flatMap((r, j) => (r.inputs.includes(out) ? [built.unit_of[j]!] : []));
      const units = [...new Set(readers)].filter((u) => u !== built.unit_of[i]).sort((a, b) => a - b);
      if (units.length > 0) crossing.set(out, { producer: built.unit_of[i]!, consumers: units });
    }
  });
  const values = built.problem.values.filter((v) => crossing.has(v.name));
  assert.ok(values.length > 10, 'values cross units');
  assert.deepEqual(
    Object.fromEntries(values.map((v) => [v.name, { producer: v.producer, consumers: v.consumers }])),
    Object.fromEntries(values.map((v) => [v.name, crossing.get(v.name)])),
  );
  // Weights travel with their readers: every value listed is made by a node (no initializer crosses).
  assert.equal(built.problem.values.length, values.length, 'every value listed is made by a node and read elsewhere');
});

test('a routed layer measured on a kind (calibration) pays no grouped launch there: the measured times hold the launches the runtime made', async () => {
  const ctx = await mixtralTinyDecode();
  const profile = ctx.get(profilePass);
  const topology = ctx.topology();
  const build = (costs: NodeCost[]) => builtFrom(ctx, NodeCosts.from(costs)).problem;
  const layers = [
    ...new Set(
      profile.nodes
        .toArray()
        .map((c) => c.launch_group)
        .filter((l) => l !== undefined),
    ),
  ].sort((a, b) => a! - b!);
  assert.ok(layers.length >= 2, 'two routed layers at least');
  const nd = topology.devices.length;
  const fusing = topology.devices.map((d, j) => [d, j] as const).filter(([d]) => groupedLaunchSeconds(d) > 0);
  assert.ok(fusing.length > 0 && fusing.length < nd, 'the rack has devices that group launches and devices that do not');
  const kind = fusing[0]![0].kind;
  // The first layer measured on that kind (as calibration from a profile sets measured_s).
  const measured = profile.nodes.toArray().map((c) => (c.launch_group === layers[0] ? { ...c, measured_s: { [kind]: 1e-6 } } : c));
  const before = build(profile.nodes.toArray()).grouped_launch!;
  const after = build(measured).grouped_launch!;
  assert.equal(before.groups, layers.length);
  topology.devices.forEach((d, j) => {
    for (let g = 0; g < before.groups; g++)
      assert.equal(before.launch_s[g * nd + j], groupedLaunchSeconds(d), 'estimated: the layer launches its grouped kernels');
  });
  // Exactly the measured layer's launches on the measured kind are gone.
  let zeroed = 0;
  topology.devices.forEach((d, j) => {
    for (let g = 0; g < after.groups; g++) {
      const v = after.launch_s[g * nd + j]!;
      if (v !== before.launch_s[g * nd + j]) {
        assert.equal(v, 0);
        assert.equal(d.kind, kind);
        zeroed++;
      }
    }
  });
  assert.equal(zeroed, topology.devices.filter((d) => d.kind === kind).length, 'one group, on every device of the measured kind');
  // Measured in part (a profile where some of its experts never ran): the rest launch nothing of
  // their own, so the layer still pays its grouped launches.
  let seen = 0;
  const partly = profile.nodes
    .toArray()
    .map((c) => (c.launch_group === layers[0] && (c.flops > 0 || c.bytes > 0) && seen++ % 2 === 0 ? { ...c, measured_s: { [kind]: 1e-6 } } : c));
  assert.ok(seen >= 2);
  assert.deepEqual(Array.from(build(partly).grouped_launch!.launch_s), Array.from(before.launch_s));
});

test('fusion: a bias Add and an activation after a MatMul run in its kernel on a GPU (no launch), launch on a CPU; a value read twice is not fused', async () => {
  // x → MatMul(w1) → Reshape → Add(b) → Relu → MatMul(w2) → y, and the Relu output also read by a Sub (not fusible past it).
  const dir = tmpDir();
  const file = path.join(dir, 'fuse.onnx');
  const f32 = (name: string, dims: number[]) => ({ name, dataType: 1, dims, rawData: Buffer.alloc(4 * dims.reduce((a, b) => a * b, 1)) });
  fs.writeFileSync(
    file,
    encodeModel({
      name: 'fuse',
      node: [
        { name: 'mm1', opType: 'MatMul', input: ['x', 'w1'], output: ['h'] },
        { name: 'view', opType: 'Reshape', input: ['h', 'shape'], output: ['hv'] },
        { name: 'bias', opType: 'Add', input: ['hv', 'b'], output: ['hb'] },
        { name: 'act', opType: 'Relu', input: ['hb'], output: ['a'] },
        { name: 'mm2', opType: 'MatMul', input: ['a', 'w2'], output: ['y'] },
        { name: 'twice', opType: 'Sub', input: ['a', 'b'], output: ['z'] },
      ],
      input: [valueInfo('x', 1, [4, 8])],
      output: [valueInfo('y', 1, [4, 8]), valueInfo('z', 1, [4, 8])],
      initializer: [
        f32('w1', [8, 8]),
        f32('w2', [8, 8]),
        f32('b', [8]),
        { name: 'shape', dataType: 7, dims: [2], rawData: Buffer.from(new BigInt64Array([4n, 8n]).buffer) },
      ],
    }),
  );
  const run = await runPipeline(options(file, { topology_path: path.join(EXAMPLES, 'rack-tiny.yaml') }), ['profile']);
  const profile = run.ctx.get(profilePass);
  const g = run.ctx.model.graph;
  const at = (name: string): number => g.nodes.findIndex((n) => n.name === name);
  const head = (name: string): string | null => (profile.fused_into[at(name)]! >= 0 ? g.nodes[profile.fused_into[at(name)]!]!.name : null);
  assert.equal(head('bias'), 'mm1', 'the bias Add runs in the MatMul (through the view)');
  assert.equal(head('act'), 'mm1', 'the chain has one head');
  assert.equal(head('mm2'), null, 'a MatMul launches');
  assert.equal(head('twice'), null, 'the Relu output is read twice: the Sub launches its own kernel');
  assert.equal(profile.totals.fused, 2);
  const topo = run.ctx.topology();
  const gpu = topo.devices.find((d) => d.kind === 'gpu')!;
  const cpu = topo.devices.find((d) => d.kind === 'cpu')!;
  const c = profile.nodes.at(at('bias'));
  assert.ok(Math.abs(computeTime(c, gpu) + gpu.launch_s - computeTime({ ...c, fused: false }, gpu)) < 1e-15, 'no launch on the GPU');
  assert.equal(computeTime(c, cpu), computeTime({ ...c, fused: false }, cpu), 'a CPU launches it');
  // The chain's intermediates stay in registers on the GPU: mm1 does not write h, bias does not
  // read hv (it reads b), act neither reads hb nor writes a second time what it hands on — except
  // `a`, read twice, which is written.
  const bytesOf = (n: number[]): number => 4 * n.reduce((x, y) => x * y, 1);
  assert.equal(profile.nodes.at(at('mm1')).bytes_written, 0, 'mm1 hands h on in registers');
  assert.equal(profile.nodes.at(at('mm1')).fused_bytes, bytesOf([4, 8]));
  assert.equal(profile.nodes.at(at('bias')).bytes_read, bytesOf([8]), 'the bias Add reads only its bias');
  assert.equal(profile.nodes.at(at('bias')).bytes_written, 0);
  assert.equal(profile.nodes.at(at('act')).bytes_read, 0);
  assert.equal(profile.nodes.at(at('act')).bytes_written, bytesOf([4, 8]), 'a (read twice) is written');
  // A CPU moves them: the same node costs its round trip there.
  const m = profile.nodes.at(at('mm1'));
  assert.ok(computeTime(m, cpu) >= (m.bytes + m.fused_bytes!) / (cpu.memory_bandwidth_bytes_per_s * cpu.memory_efficiency) - 1e-15);
  // On a real model: every fused node is pointwise, and every chain's head launches.
  const gpt2 = await runPipeline(options(path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), { flags: { phase: 'prefill', prompt: 16 } }), ['profile']);
  const pg = gpt2.ctx.get(profilePass);
  const ng = gpt2.ctx.model.graph.nodes;
  let fused = 0;
  pg.fused_into.forEach((h, i) => {
    if (h < 0) return;
    fused++;
    assert.ok(pg.nodes.at(i).op_class === 'elementwise' || ng[i]!.op === 'Cast', `${ng[i]!.name} (${ng[i]!.op}) is not pointwise`);
    assert.equal(pg.fused_into[h], -1, 'a head launches');
  });
  assert.ok(fused > 20 && fused === pg.totals.fused, `fused ${fused}`);
});

test('inspect --costs times each node on the fastest device of a kind that runs it: the order of two GPU models changes nothing, a GPU that cannot run MatMul shows -, and the critical path takes the CPU there', () => {
  const dir = tmpDir();
  const rack = (gpus: string[], exclude = ''): string => {
    const file = path.join(dir, `${gpus.join('-')}${exclude ? '-no' : ''}.yaml`);
    fs.writeFileSync(
      file,
      `format: hxc-topology/v1\nname: r\ndevices:\n  - {id: cpu0, kind: cpu, model: xeon-8480}\n${gpus
        .map((m, i) => `  - {id: gpu${i}, kind: gpu, model: ${m}${exclude ? `, ops: {exclude: [${exclude}]}` : ''}}`)
        .join('\n')}\nlinks:\n  - {name: pcie, kind: pcie, connects: [cpu0, ${gpus.map((_, i) => `gpu${i}`).join(', ')}], bandwidth: 64GB/s, latency: 2us}\n`,
    );
    return file;
  };
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const costs = (file: string) => {
    const r = hxc(['inspect', model, '--costs', '--phase', 'prefill', '--prompt', '128', '--topology', file, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).costs as { critical_path_s: number; nodes: { op: string; by_kind: Record<string, { time_s: number | null }> }[] };
  };
  const a = costs(rack(['a10g', 'h100-sxm']));
  const b = costs(rack(['h100-sxm', 'a10g']));
  assert.equal(a.critical_path_s, b.critical_path_s);
  assert.deepEqual(
    a.nodes.map((x) => x.by_kind.gpu!.time_s),
    b.nodes.map((x) => x.by_kind.gpu!.time_s),
  );
  const h100 = costs(rack(['h100-sxm']));
  assert.deepEqual(
    a.nodes.map((x) => x.by_kind.gpu!.time_s),
    h100.nodes.map((x) => x.by_kind.gpu!.time_s),
    'the faster part of the kind',
  );
  const no = rack(['h100-sxm'], 'MatMul, Gemm');
  const without = costs(no);
  const matmuls = without.nodes.filter((x) => x.op === 'MatMul' || x.op === 'Gemm');
  assert.ok(matmuls.length > 0);
  for (const m of matmuls) assert.equal(m.by_kind.gpu!.time_s, null, 'JSON null: no GPU runs it');
  assert.ok(without.critical_path_s > h100.critical_path_s, `${without.critical_path_s} against ${h100.critical_path_s}`);
  const text = hxc(['inspect', model, '--costs', '--phase', 'prefill', '--prompt', '128', '--topology', no]);
  assert.match(text.stdout, /\n\S+\s+MatMul\s+.*\s-\s/);
});
