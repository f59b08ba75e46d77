import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { PlanV1 } from '../src/plan/format.js';
import { runPipeline } from '../src/cli/run-passes.js';
import { loadTopology } from '../src/topology/index.js';
import type { PlanOptions } from '../src/pass/pass.js';
import { EXAMPLES, FIXTURES, SHARED_MODELS, hxc, isOneLineError, tmpDir } from './helpers.js';
import { checkShippedBeatsCandidates, checkTruth, replay } from './truth.js';

const GPT2 = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
const MIXTRAL_TINY = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx');
const MOBILENET = path.join(SHARED_MODELS, 'mobilenet_v3_small.onnx');
const MIXTRAL = path.join(SHARED_MODELS, 'mixtral_8x7b_shaped.graph_only.onnx');

function dimsFor(model: string): Record<string, number> {
  const f = path.join(SHARED_MODELS, path.basename(model).replace(/\.onnx$/, '.dims.json'));
  assert.ok(fs.existsSync(f), `${f} is missing`);
  return JSON.parse(fs.readFileSync(f, 'utf8'));
}

async function plan(model: string, rack: string, out: string, flags: PlanOptions['flags'] = {}) {
  const { ctx } = await runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, rack), dims: dimsFor(model), flags: { out, ...flags } }, null);
  return { p: JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as PlanV1, ctx };
}

const figure = (p: PlanV1, objective: string): number =>
  objective === 'latency' ? replay(p, 1).latency_s : -replay(p, p.estimate.throughput_requests).throughput_per_s;

/** The placements users write by hand, at node level, from the layers of a plan (its explain's stages in order). */
function userPlacements(p: PlanV1): Record<string, Record<string, string>> {
  const unitNodes = new Map(p.devices.flatMap((d) => d.steps.filter((s) => s.op === 'compute').map((s) => [s.unit!, s.nodes!] as const)));
  const layerOf: number[] = [];
  let layer = -1;
  p.explain.forEach((x, k) => {
    if (k === 0 || x.stage !== p.explain[k - 1]!.stage) layer++;
    layerOf.push(layer);
  });
  const layers = layer + 1;
  const gpus = p.devices.filter((d) => d.kind === 'gpu').map((d) => d.id);
  const one: Record<string, string> = {};
  const even: Record<string, string> = {};
  const k = Math.min(gpus.length, layers);
  p.explain.forEach((x, u) => {
    for (const n of unitNodes.get(x.unit)!) {
      one[n] = gpus[0]!;
      even[n] = gpus[Math.min(k - 1, Math.floor((layerOf[u]! * k) / layers))]!;
    }
  });
  return { 'all on one accelerator': one, 'even contiguous split': even };
}

test("a placement a user writes by hand (--assign) is planned as written, and hxc's own plan is never worse", async () => {
  const dir = tmpDir();
  let compared = 0;
  for (const [model, rack] of [
    [GPT2, 'rack-8gpu.yaml'],
    [GPT2, 'rack-hetero.yaml'],
    [MIXTRAL_TINY, 'rack-8gpu.yaml'],
    [MOBILENET, 'rack-8gpu.yaml'],
  ] as const) {
    for (const objective of ['latency', 'throughput']) {
      const where = `${path.basename(model)} on ${rack} (${objective})`;
      const free = await plan(model, rack, path.join(dir, `free-${compared}`), { objective });
      for (const [name, assignment] of Object.entries(userPlacements(free.p))) {
        const file = path.join(dir, `assign-${compared}.json`);
        fs.writeFileSync(file, JSON.stringify({ format: 'hxc-assignment/v1', assignment }));
        const user = await plan(model, rack, path.join(dir, `user-${compared}`), { objective, assign: file });
        for (const [node, device] of Object.entries(assignment))
          assert.equal(user.p.assignment[node], device, `${where}, ${name}: ${node} pinned to ${device}`);
        checkShippedBeatsCandidates(user.p, `${where}, ${name}`);
        const [ours, theirs] = [figure(free.p, objective), figure(user.p, objective)];
        assert.ok(ours <= theirs + Math.abs(theirs) * 1e-12, `${where}: the user's ${name} (${theirs}) beats hxc's plan (${ours})`);
        compared++;
      }
    }
  }
  assert.equal(compared, 16);
});

test('--assign: a partial map pins the nodes it names and hxc places the rest; a bad entry is one line, exit 2', async () => {
  const dir = tmpDir();
  const free = await plan(GPT2, 'rack-8gpu.yaml', path.join(dir, 'free'));
  const nodes = Object.keys(free.p.assignment)
    .filter((n) => /MatMul|Gemm/.test(n))
    .slice(0, 3);
  const file = path.join(dir, 'partial.json');
  fs.writeFileSync(file, JSON.stringify({ format: 'hxc-assignment/v1', assignment: Object.fromEntries(nodes.map((n) => [n, 'gpu5'])) }));
  const pinned = await plan(GPT2, 'rack-8gpu.yaml', path.join(dir, 'pinned'), { assign: file });
  for (const n of nodes) assert.equal(pinned.p.assignment[n], 'gpu5');
  assert.ok(
    Object.values(pinned.p.assignment).some((d) => d !== 'gpu5'),
    'the rest is placed by hxc',
  );
  checkTruth(pinned.p, pinned.ctx, 'partial --assign');
  assert.ok(pinned.p.explain.some((x) => x.reason === 'assigned by the user (--assign)'));
  // A whole block pinned but its Constants (they join the unit of their first reader, in front of
  // its pinned nodes): every pin holds, and every unit holding a pinned node says it was assigned.
  const block = Object.keys(free.p.assignment).filter((n) => /\/h\.1\//.test(n) && !/Constant/.test(n));
  const blockFile = path.join(dir, 'block.json');
  fs.writeFileSync(blockFile, JSON.stringify({ format: 'hxc-assignment/v1', assignment: Object.fromEntries(block.map((n) => [n, 'cpu0'])) }));
  const blockPlan = await plan(GPT2, 'rack-8gpu.yaml', path.join(dir, 'block'), { assign: blockFile });
  for (const n of block) assert.equal(blockPlan.p.assignment[n], 'cpu0', `${n} pinned to cpu0`);
  const pinnedSet = new Set(block);
  for (const d of blockPlan.p.devices)
    for (const st of d.steps)
      if (st.op === 'compute' && st.nodes!.some((n) => pinnedSet.has(n)))
        assert.equal(blockPlan.p.explain.find((x) => x.unit === st.unit)!.reason, 'assigned by the user (--assign)', `${st.unit} holds pinned nodes`);
  // Pins that split a fused kernel (the attention scores' MatMul on the CPU, the Div fused into
  // it on a GPU): the Div runs as its own kernel, and its step is priced with its own launch.
  const splitFile = path.join(dir, 'split.json');
  const div = '/transformer/h.0/attn/Div';
  fs.writeFileSync(splitFile, JSON.stringify({ format: 'hxc-assignment/v1', assignment: { '/transformer/h.0/attn/MatMul': 'cpu0', [div]: 'gpu0' } }));
  const split = await plan(GPT2, 'rack-tiny.yaml', path.join(dir, 'split'), { assign: splitFile });
  const gpu = loadTopology(path.join(EXAMPLES, 'rack-tiny.yaml')).devices.find((d) => d.id === 'gpu0')!;
  const divStep = split.p.devices.find((d) => d.id === 'gpu0')!.steps.find((st) => st.op === 'compute' && st.nodes!.includes(div));
  assert.ok(divStep?.op === 'compute', `${div} runs on gpu0`);
  assert.ok(divStep.duration_s >= gpu.launch_s, `${div} split from its kernel: ${divStep.duration_s} s, a launch is ${gpu.launch_s} s`);
  const bad = (name: string, content: unknown, rack = 'rack-8gpu.yaml'): string => {
    const f = path.join(dir, `${name}.json`);
    fs.writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
    const model = rack === 'rack-tiny.yaml' ? MIXTRAL_TINY : GPT2;
    const r = hxc(['plan', model, '--topology', path.join(EXAMPLES, rack), '--assign', f, '--out', path.join(dir, `out-${name}`)]);
    const err = isOneLineError(r, 'HXC');
    assert.equal(err, null, `${name}: ${err}`);
    assert.ok(!fs.existsSync(path.join(dir, `out-${name}`)), `${name}: nothing written`);
    return r.stderr;
  };
  assert.match(bad('node', { format: 'hxc-assignment/v1', assignment: { 'no/such/node': 'gpu0' } }), /HXC2503.*no node "no\/such\/node"/);
  assert.match(bad('device', { format: 'hxc-assignment/v1', assignment: { [nodes[0]!]: 'gpu99' } }), /HXC2503.*no device "gpu99"/);
  assert.match(bad('format', { format: 'hxc-routing/v1', assignment: {} }), /HXC2503.*format/);
  assert.match(bad('json', '{"format": '), /HXC2201/);
  const nonzero = Object.keys((await plan(MIXTRAL_TINY, 'rack-tiny.yaml', path.join(dir, 'tiny'))).p.assignment).find((n) => /NonZero/.test(n))!;
  assert.match(
    bad('capability', { format: 'hxc-assignment/v1', assignment: { [nonzero]: 'gpu0' } }, 'rack-tiny.yaml'),
    /HXC2503.*gpu0, which cannot run NonZero/,
  );
});

test('the same inputs give a byte-identical plan.json on an idle and on a loaded machine', async () => {
  const dir = tmpDir();
  const cases = [
    [MOBILENET, 'rack-8gpu.yaml'],
    [MIXTRAL_TINY, 'rack-hetero.yaml'],
  ] as const;
  const idle: Buffer[] = [];
  for (const [k, [model, rack]] of cases.entries()) {
    await plan(model, rack, path.join(dir, `idle-${k}`));
    idle.push(fs.readFileSync(path.join(dir, `idle-${k}`, 'plan.json')));
  }
  // Two busy loops: this machine has two cores.
  const hogs = [0, 1].map(() => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  try {
    for (const [k, [model, rack]] of cases.entries()) {
      await plan(model, rack, path.join(dir, `busy-${k}`));
      assert.ok(fs.readFileSync(path.join(dir, `busy-${k}`, 'plan.json')).equals(idle[k]!), `${path.basename(model)} on ${rack}: plan.json differs under load`);
    }
  } finally {
    for (const h of hogs) h.kill('SIGKILL');
  }
});

test('KV capacity is a trade the user asks for (--min-sequences), shown before and after; never taken silently', async () => {
  const dir = tmpDir();
  const decode = { phase: 'decode' };
  const free = await runPipeline(
    { model_path: MIXTRAL, topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'), dims: {}, flags: { out: path.join(dir, 'free'), ...decode } },
    null,
  );
  const p0 = JSON.parse(fs.readFileSync(path.join(dir, 'free', 'plan.json'), 'utf8')) as PlanV1;
  checkTruth(p0, free.ctx, 'decode, no --min-sequences');
  const kv0 = p0.estimate.kv!;
  assert.equal(kv0.moves, 0);
  assert.equal(kv0.before, null);
  const asked = kv0.sequences * 3;
  const lifted = await runPipeline(
    {
      model_path: MIXTRAL,
      topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'),
      dims: {},
      flags: { out: path.join(dir, 'lifted'), ...decode, 'min-sequences': asked },
    },
    null,
  );
  const p1 = JSON.parse(fs.readFileSync(path.join(dir, 'lifted', 'plan.json'), 'utf8')) as PlanV1;
  checkTruth(p1, lifted.ctx, `decode, --min-sequences ${asked}`);
  const kv1 = p1.estimate.kv!;
  assert.equal(kv1.asked, asked);
  assert.ok(kv1.sequences >= asked, `holds ${kv1.sequences} of ${asked}`);
  assert.ok(kv1.before && kv1.after && kv1.before.sequences < asked && kv1.after.sequences === kv1.sequences);
  assert.equal(kv1.after.latency_s, p1.estimate.latency_s, 'after is the shipped plan');
  assert.ok(kv1.before.latency_s <= kv1.after.latency_s, 'the lift is paid for in latency, and plan.json says how much');
});

test("plan.json's transfers are trace.json's: each leaves at its send and is across when the trace's bar ends, before its receiver takes it", async () => {
  const dir = tmpDir();
  for (const [model, rack] of [
    [GPT2, 'rack-tiny.yaml'],
    [MIXTRAL_TINY, 'rack-hetero.yaml'],
  ] as const) {
    const out = path.join(dir, path.basename(model, '.onnx'));
    const { p } = await plan(model, rack, out);
    const where = `${path.basename(model)} on ${rack}`;
    assert.ok(p.transfers.length > 0, `${where}: a plan with transfers`);
    const trace = JSON.parse(fs.readFileSync(path.join(out, 'trace.json'), 'utf8')) as {
      traceEvents: { cat?: string; ts: number; dur?: number; tid: number; args?: { request?: number } }[];
    };
    const bars = new Map(trace.traceEvents.filter((e) => e.cat === 'transfer' && e.args?.request === 0).map((e) => [e.tid, e]));
    const near = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
    let waited = 0;
    p.transfers.forEach((t, k) => {
      const bar = bars.get(k)!;
      assert.ok(bar, `${where}: transfer ${k} has its bar in trace.json`);
      assert.ok(
        near(t.start_s * 1e6, bar.ts) && near(t.end_s * 1e6, bar.ts + bar.dur!),
        `${where}: transfer ${k} ${t.start_s}..${t.end_s} s, trace ${bar.ts}+${bar.dur} µs`,
      );
    });
    for (const d of p.devices)
      for (const s of d.steps) {
        if (s.op === 'compute') continue;
        const t = p.transfers[s.transfer!]!;
        if (s.op === 'send') assert.ok(near(s.start_s, t.start_s), `${where}: transfer ${s.transfer} leaves with its send`);
        if (s.op !== 'recv') continue;
        assert.ok(t.end_s <= s.start_s * (1 + 1e-12) + 1e-15, `${where}: transfer ${s.transfer} is taken before it is across`);
        if (s.start_s > t.end_s * (1 + 1e-9)) waited++;
      }
    // The case in point: some receivers were busy when their bytes landed (the trace's bar is the link's time, not the wait).
    if (rack === 'rack-tiny.yaml') assert.ok(waited > 0, `${where}: some transfer waits for its receiver`);
  }
});

test('with pins (--pin-experts, --assign) the one-device plans keep the pinned units where they are pinned, and count like any other baseline', async () => {
  const dir = tmpDir();
  const dims = Object.entries(dimsFor(MIXTRAL_TINY)).flatMap(([k, v]) => ['--dim', `${k}=${v}`]);
  // A partial assignment: one node the free plan runs on the GPU pinned to the CPU, the rest free.
  const gpt2Plan = path.join(dir, 'gpt2');
  assert.equal(hxc(['plan', GPT2, '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--out', gpt2Plan]).code, 0);
  const first = JSON.parse(fs.readFileSync(path.join(gpt2Plan, 'plan.json'), 'utf8')) as PlanV1;
  const pinned = first.devices.find((d) => d.id === 'gpu0')!.steps.find((s) => s.op === 'compute')!.nodes![0]!;
  const assign = path.join(dir, 'assign.json');
  fs.writeFileSync(assign, JSON.stringify({ format: 'hxc-assignment/v1', assignment: { [pinned]: 'cpu0' } }));
  for (const [model, rack, flags, away] of [
    [MIXTRAL_TINY, 'rack-8gpu.yaml', ['--pin-experts', ...dims], 'single:cpu0'],
    [GPT2, 'rack-tiny.yaml', ['--assign', assign], 'single:gpu0'],
  ] as const) {
    const out = path.join(dir, `${path.basename(model, '.onnx')}-${rack}`);
    const r = hxc(['plan', model, '--topology', path.join(EXAMPLES, rack), ...flags, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const p = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as PlanV1;
    const where = `${path.basename(model)} ${flags[0]}`;
    // The one-device plan on a device the pins keep units off: judged, the pinned units elsewhere.
    const held = p.estimate.candidates.find((c) => c.name === away);
    assert.ok(held, `${where}: ${away} judged`);
    assert.match(held.label, /, pinned units where pinned$/, where);
    assert.ok(held.devices.length > 1, `${where}: the pinned units run elsewhere`);
    const single = p.estimate.baselines.single_device!;
    assert.ok(single, `${where}: a one-device baseline`);
    const line = r.stdout.split('\n').find((l) => l.startsWith('baselines'))!;
    assert.ok(line.includes(`all on ${single.name.replace(/^single:/, '')}${single.devices.length > 1 ? ' but the pinned units' : ''} `), `${where}: ${line}`);
    assert.doesNotMatch(line, /no single device/, where);
    checkShippedBeatsCandidates(p, where);
  }
});

test("--assign with a plan.json plans its devices in its own step order too (a candidate of its own), not only HEFT's order", async () => {
  const dir = tmpDir();
  const free = await plan(GPT2, 'rack-tiny.yaml', path.join(dir, 'free'));
  const again = await plan(GPT2, 'rack-tiny.yaml', path.join(dir, 'again'), { assign: path.join(dir, 'free', 'plan.json') });
  assert.deepEqual(again.p.assignment, free.p.assignment, 'every node where the plan put it');
  const rows = new Map(again.p.estimate.candidates.map((c) => [c.name, c]));
  const asAssigned = rows.get('as-assigned');
  assert.ok(asAssigned, 'the plan in its own order is judged');
  assert.match(asAssigned.label, /in its own step order/);
  // HEFT's order of the same devices is slower here; the plan's own order wins it back.
  assert.ok(asAssigned.latency_s < rows.get('heft')!.latency_s, `as assigned ${asAssigned.latency_s} s, HEFT's order ${rows.get('heft')!.latency_s} s`);
  checkShippedBeatsCandidates(again.p, 'gpt2 --assign plan.json');
});

test('--assign with a plan.json is planned again as it ran: the same units in the same order, never slower than the plan given; a pin on a Constant alone goes with what reads it (HXC1114), and the plan runs', async () => {
  const dir = tmpDir();
  const routing = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.expert_routing.json');
  // Each unit's nodes as a set (a Constant joins its reader's unit first, in the order they are met).
  const computes = (p: PlanV1): string[] =>
    p.devices.flatMap((d) => d.steps.filter((s) => s.op === 'compute').map((s) => [...s.nodes!].sort().join(' '))).sort();
  for (const objective of ['latency', 'throughput']) {
    const free = await plan(MIXTRAL_TINY, 'rack-tiny.yaml', path.join(dir, `free-${objective}`), { routing, objective });
    const again = await plan(MIXTRAL_TINY, 'rack-tiny.yaml', path.join(dir, `again-${objective}`), {
      routing,
      objective,
      assign: path.join(dir, `free-${objective}`, 'plan.json'),
    });
    // Constants and Shapes went with what they serve: the units are the plan's own (before: 277 against 190).
    assert.deepEqual(computes(again.p), computes(free.p), `${objective}: the same units`);
    assert.deepEqual(again.p.assignment, free.p.assignment, `${objective}: every node where the plan put it`);
    const given = figure(free.p, objective);
    const shipped = figure(again.p, objective);
    assert.ok(shipped <= given + Math.abs(given) * 1e-9, `${objective}: planned again ${shipped}, the plan given ${given}`);
    checkShippedBeatsCandidates(again.p, `mixtral_tiny ${objective} --assign plan.json`);
  }
  // One Constant pinned where nothing reads it: it goes with its reader, said once; no program computes nothing.
  const model = path.join(SHARED_MODELS, 'hello_deepa.onnx');
  const file = path.join(dir, 'constant.json');
  fs.writeFileSync(file, JSON.stringify({ format: 'hxc-assignment/v1', assignment: { '/layernorm1/Constant': 'cpu0' } }));
  const out = path.join(dir, 'constant');
  const r = hxc(['plan', model, '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--assign', file, '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  const warned = r.stderr.split('\n').filter((l) => l.includes('HXC1114'));
  assert.equal(warned.length, 1, r.stderr);
  assert.match(warned[0]!, /"\/layernorm1\/Constant" \(Constant\) to cpu0/);
  const p = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as PlanV1;
  assert.deepEqual(
    Object.entries(p.programs).filter(([, v]) => v.outputs.length === 0),
    [],
    'every program computes something',
  );
  const run = hxc(['run', out, '--check']);
  assert.equal(run.code, 0, run.stderr);
});
