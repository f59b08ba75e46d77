import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readDrift } from '../src/plan/drift.js';
import { readCalibration } from '../src/cost/calibrate.js';
import { runPipeline } from '../src/cli/run-passes.js';
import type { PlanOptions } from '../src/pass/pass.js';
import { runPlan } from '../src/runtime/run.js';
import { EXAMPLES, FIXTURES, SHARED_MODELS, hxc, isOneLineError, tmpDir } from './helpers.js';
import { profilePass } from '../passes/profile.js';
import type { PlanV1 } from '../src/plan/format.js';

const RUNNABLE = ['gpt2_tiny_kv', 'mixtral_tiny_moe_kv', 'dense_moe_small_kv', 'mobilenet_v3_small', 'ch_PP-OCRv4_det_infer', 'hello_deepa'];
const KV = new Set(['gpt2_tiny_kv', 'mixtral_tiny_moe_kv', 'dense_moe_small_kv']);
const RACKS = ['rack-tiny.yaml', 'rack-8gpu.yaml', 'rack-hetero.yaml'];

function modelPath(name: string): string {
  return path.join(SHARED_MODELS, `${name}.onnx`);
}

function dims(name: string): Record<string, number> {
  const f = path.join(SHARED_MODELS, `${name}.dims.json`);
  return fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')) : {};
}

async function planTo(name: string, rack: string, out: string, flags: PlanOptions['flags'] = {}): Promise<void> {
  await runPipeline({ model_path: modelPath(name), topology_path: path.join(EXAMPLES, rack), dims: dims(name), flags: { out, ...flags } }, null);
}

test('every runnable shared model, planned on every example rack for latency and throughput, runs and matches the unsplit model', async () => {
  const dir = tmpDir();
  let runs = 0;
  for (const name of RUNNABLE) {
    for (const rack of RACKS) {
      for (const objective of ['latency', 'throughput']) {
        const out = path.join(dir, `${name}-${rack}-${objective}`);
        await planTo(name, rack, out, { objective });
        // No device runs programs priced at nothing (views of weights alone on a CPU, sent on every request).
        const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as PlanV1;
        for (const d of plan.devices)
          if (d.steps.some((s) => s.op === 'compute'))
            assert.ok(plan.estimate.devices[d.id]!.busy_s > 0, `${name} ${rack} ${objective}: ${d.id} computes nothing`);
        const report = await runPlan({ plan_dir: out, seed: 1, iterations: 1, check: true, decode_steps: KV.has(name) ? 4 : 0, dims: {} });
        assert.ok(report.check, 'check ran');
        const checks = report.requests.flatMap((r) => r.checks);
        assert.ok(checks.length > 0, `${name} ${rack} ${objective}: outputs compared`);
        for (const c of checks) {
          assert.ok(c.shape_matches, `${name} ${rack} ${objective}: ${c.name} shape`);
          assert.ok(
            c.max_abs_error <= 1e-5 * c.reference_scale + 1e-6,
            `${name} ${rack} ${objective}: ${c.name} error ${c.max_abs_error} (relative ${c.max_rel_error})`,
          );
        }
        assert.equal(report.requests.length, KV.has(name) ? 5 : 1);
        runs++;
      }
    }
  }
  assert.equal(runs, RUNNABLE.length * RACKS.length * 2);
});

test('decode steps keep the KV cache on its owner device: no state crosses to the coordinator until the last step', async () => {
  const out = path.join(tmpDir(), 'gpt2');
  await runPipeline(
    {
      model_path: path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'),
      topology_path: path.join(EXAMPLES, 'rack-hetero.yaml'),
      dims: {},
      flags: { out, phase: 'prefill', batch: 2, prompt: 16 },
    },
    null,
  );
  const report = await runPlan({ plan_dir: out, seed: 3, iterations: 1, check: true, decode_steps: 3, dims: {} });
  // Presents are compared only at the last step: before it they stayed in the workers.
  for (const r of report.requests.slice(0, -1))
    assert.deepEqual(
      r.checks.map((c) => c.name),
      ['logits'],
    );
  assert.ok(report.requests.at(-1)!.checks.some((c) => c.name.startsWith('present.')));
  assert.equal(report.requests[1]!.dims.sequence_length, 1);
  assert.equal(report.requests[3]!.dims.past_sequence_length, 16 + 2);
  assert.ok(report.check!.passed);
  const trace = JSON.parse(fs.readFileSync(report.trace, 'utf8'));
  assert.ok(Array.isArray(trace.traceEvents));
  for (const e of trace.traceEvents) {
    assert.equal(typeof e.name, 'string');
    assert.ok(e.ph === 'X' || e.ph === 'M');
    if (e.ph === 'X') assert.ok(typeof e.ts === 'number' && typeof e.dur === 'number' && e.dur >= 0 && Number.isInteger(e.pid));
  }
  // Every unit the plan runs is named in the trace (a program's run names all the units it runs).
  const named = new Set<string>(
    trace.traceEvents.filter((e: { ph: string }) => e.ph === 'X').flatMap((e: { name: string }) => e.name.replace(/ \(\d+ units\)$/, '').split(', ')),
  );
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
  for (const d of plan.devices)
    for (const st of d.steps) if (st.op === 'compute') assert.ok(named.has(st.unit), `${st.unit} (${d.id}) is not named in the run's trace`);
  const telemetry = JSON.parse(fs.readFileSync(report.telemetry, 'utf8'));
  assert.equal(telemetry.format, 'hxc-telemetry/v1');
  assert.ok(telemetry.steps.length > 0 && telemetry.steps.every((s: { end_s: number; start_s: number }) => s.end_s >= s.start_s));
  // A send carries its bytes (read before postMessage detaches the buffer), as its recv does; a
  // transfer runs from its send to its arrival, the receiver's wait apart.
  const sends = trace.traceEvents.filter((e: { cat?: string }) => e.cat === 'send');
  assert.ok(sends.length > 0 && sends.every((e: { args: { bytes: number } }) => e.args.bytes > 0), 'every send in the trace has its bytes');
  type Moved = { value: string; request: number; start_s: number; end_s: number; wait_s: number; bytes: number };
  assert.ok(telemetry.transfers.length > 0);
  for (const t of telemetry.transfers as Moved[]) {
    assert.ok(t.end_s >= t.start_s && t.wait_s >= 0 && t.bytes > 0, JSON.stringify(t));
    const sent = trace.traceEvents.find(
      (e: { cat?: string; name: string; args: { request: number } }) => e.cat === 'send' && e.name === t.value && e.args.request === t.request,
    );
    assert.ok(sent && Math.abs(sent.ts / 1e6 - t.start_s) < 1e-9, `${t.value}: starts when it was sent`);
  }
  // Each measured step names the plan's units its program ran: every unit of the plan, measured.
  const measuredUnits = new Set<string>(telemetry.steps.flatMap((s: { units: string[] }) => s.units));
  for (const d of plan.devices)
    for (const st of d.steps) if (st.op === 'compute' && st.program) assert.ok(measuredUnits.has(st.unit), `${st.unit} (${d.id}) is in no telemetry step`);
  // The plan estimates its prefill: the measured side is the prefill's busy time, not a median
  // over the decode steps after it (whose shapes the plan did not price).
  const prefill = telemetry.requests.find((r: { kind: string }) => r.kind === 'prefill').request;
  for (const m of report.measured_vs_estimated) {
    assert.equal(m.requests, 1, `${m.device}: compared over the prefill alone`);
    const busy = telemetry.steps
      .filter((s: { device: string; request: number }) => s.device === m.device && s.request === prefill)
      .reduce((a: number, s: { start_s: number; end_s: number }) => a + s.end_s - s.start_s, 0);
    assert.ok(m.measured_busy_s >= busy * (1 - 1e-9), `${m.device}: measured ${m.measured_busy_s} s, its prefill steps ${busy} s`);
  }
  // hxc check --max-drift and --calibrate read the same telemetry alike: the prefill's steps alone.
  const drift = readDrift(report.telemetry, plan);
  for (const d of drift.devices) {
    const busy = telemetry.steps
      .filter((s: { device: string; request: number; nodes: string[] }) => s.device === d.device && s.request === prefill && s.nodes.length > 0)
      .reduce((a: number, s: { start_s: number; end_s: number }) => a + s.end_s - s.start_s, 0);
    assert.ok(Math.abs(d.measured_s - busy) <= busy * 1e-9, `${d.device}: drift measured ${d.measured_s} s, its prefill steps ${busy} s`);
  }
  // A device the plan priced at nothing that measured busy is past any budget, not left out.
  const busiest = drift.devices.reduce((a, d) => (d.measured_s > a.measured_s ? d : a));
  const nothing = {
    ...plan,
    estimate: { ...plan.estimate, devices: { ...plan.estimate.devices, [busiest.device]: { ...plan.estimate.devices[busiest.device], busy_s: 0 } } },
  };
  const unpriced = readDrift(report.telemetry, nothing).devices.find((d) => d.device === busiest.device);
  assert.equal(unpriced?.drift, Infinity);
  const groups = readCalibration(report.telemetry).groups;
  assert.ok(groups.length > 0);
  for (const g of groups) {
    const runs = telemetry.steps.filter(
      (s: { request: number; device_kind: string; nodes: string[] }) => s.request === prefill && s.device_kind === g.kind && s.nodes.join() === g.nodes.join(),
    );
    assert.equal(runs.length, 1, 'one prefill run of the program');
    assert.ok(
      Math.abs(runs[0].end_s - runs[0].start_s - g.seconds) <= 1e-12,
      `calibrated on the prefill's ${runs[0].end_s - runs[0].start_s} s, not ${g.seconds} s`,
    );
  }
});

test('tampered plans and wrong inputs: one clear line, exit 2', async () => {
  const dir = tmpDir();
  const out = path.join(dir, 'p');
  const r0 = hxc(['plan', path.join(FIXTURES, 'models', 'hello_deepa.onnx'), '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--out', out]);
  assert.equal(r0.code, 0, r0.stderr);
  const ok = hxc(['run', out, '--check', '--iterations', '3']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /check passed/);
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
  const program = Object.keys(plan.programs)[0]!;
  // Inputs of the wrong shape and dtype.
  const bad = path.join(dir, 'inputs.json');
  fs.writeFileSync(bad, JSON.stringify({ 'onnx::Flatten_0': { dtype: 'float32', shape: [1, 24, 96], data: new Array(24 * 96).fill(0) } }));
  assert.equal(isOneLineError(hxc(['run', out, '--inputs', bad]), 'HXC2602'), null);
  fs.writeFileSync(bad, JSON.stringify({ 'onnx::Flatten_0': { dtype: 'int64', shape: [1, 25, 96], data: new Array(25 * 96).fill(0) } }));
  assert.equal(isOneLineError(hxc(['run', out, '--inputs', bad]), 'HXC2602'), null);
  const good = path.join(dir, 'good.json');
  fs.writeFileSync(
    good,
    JSON.stringify({ 'onnx::Flatten_0': { dtype: 'float32', shape: [1, 25, 96], data: Array.from({ length: 2400 }, (_, i) => Math.cos(i)) } }),
  );
  assert.equal(hxc(['run', out, '--inputs', good, '--check']).code, 0);
  // A misspelt name is said as one, not as the right name missing.
  fs.writeFileSync(bad, JSON.stringify({ 'onnx::Flaten_0': JSON.parse(fs.readFileSync(good, 'utf8'))['onnx::Flatten_0'] }));
  const slip = hxc(['run', out, '--inputs', bad]);
  assert.equal(isOneLineError(slip, 'HXC2602'), null);
  assert.match(slip.stderr, /unknown input "onnx::Flaten_0" \(did you mean onnx::Flatten_0\?\)/);
  // Values a kernel refuses (token ids past GPT-2's 2,048-row table): the inputs file is named.
  const gpt2 = path.join(dir, 'gpt2');
  assert.equal(hxc(['plan', path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--out', gpt2]).code, 0);
  const specs = (JSON.parse(fs.readFileSync(path.join(gpt2, 'plan.json'), 'utf8')) as PlanV1).inputs;
  const pastIds = Object.fromEntries(
    specs.map((i) => {
      const shape = (i.shape ?? []).map((d) => (typeof d === 'number' ? d : 1));
      const n = shape.reduce((a, b) => a * b, 1);
      return [i.name, { dtype: i.dtype, shape, data: new Array(n).fill(i.name === 'input_ids' ? 5000 : i.name === 'attention_mask' ? 1 : 0) }];
    }),
  );
  fs.writeFileSync(bad, JSON.stringify(pastIds));
  const refused = hxc(['run', gpt2, '--inputs', bad]);
  assert.equal(isOneLineError(refused, 'HXC2601'), null);
  assert.ok(refused.stderr.includes(`${bad}: device`), refused.stderr);
  assert.match(refused.stderr, /check the values in the inputs file/);
  // --iterations with --decode-steps (the run is one prompt and its steps): refused, not ignored.
  const both = hxc(['run', out, '--iterations', '3', '--decode-steps', '2']);
  assert.equal(isOneLineError(both, 'HXC2002'), null);
  assert.match(both.stderr, /--iterations repeats one request; with --decode-steps a run is one prompt and its decode steps/);
  assert.equal(hxc(['run', out, '--seed', String(2 ** 31 - 1)]).code, 0, 'a seed as large as a workload may give');
  // A changed program, then a missing one.
  const file = path.join(out, program);
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 1]! ^= 0xff;
  fs.writeFileSync(file, bytes);
  assert.equal(isOneLineError(hxc(['run', out]), 'HXC2601'), null);
  fs.rmSync(file);
  assert.equal(isOneLineError(hxc(['run', out]), 'HXC2601'), null);
  assert.equal(isOneLineError(hxc(['run', path.join(dir, 'nowhere')]), 'HXC2001'), null);
});

test('lowered programs keep external weights as references instead of copying them', async () => {
  const { writeExternalAddModel } = await import('./onnx-builder.js');
  const dir = tmpDir();
  const model = writeExternalAddModel(dir);
  const out = path.join(dir, 'plan');
  await runPipeline({ model_path: model, topology_path: path.join(FIXTURES, 'topology', 'cpu-only.yaml'), dims: {}, flags: { out } }, null);
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
  const program = fs.readFileSync(path.join(out, Object.keys(plan.programs)[0]!));
  assert.ok(program.includes(Buffer.from('w.bin')), 'the program names the external file');
  assert.ok(program.length < 400, `no weight bytes copied into the program (${program.length} bytes)`);
  // The device folder holds a hard link to the weights (same inode), and the plan runs from it.
  const linked = fs.readdirSync(path.join(out, 'programs', 'cpu0')).find((f) => f.endsWith('w.bin'))!;
  assert.equal(fs.statSync(path.join(out, 'programs', 'cpu0', linked)).ino, fs.statSync(path.join(dir, 'm', 'w.bin')).ino);
  const report = await runPlan({ plan_dir: out, seed: 0, iterations: 1, check: true, decode_steps: 0, dims: {} });
  assert.ok(report.check!.passed);
});

test('hxc run telemetry calibrates the next plan (the feedback loop)', async () => {
  const dir = tmpDir();
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const dims = { batch_size: 2, sequence_length: 8, past_sequence_length: 0 };
  const out = path.join(dir, 'p');
  await runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, 'rack-tiny.yaml'), dims, flags: { out } }, null);
  const report = await runPlan({ plan_dir: out, seed: 0, iterations: 3, check: false, decode_steps: 0, dims: {} });
  const again = await runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, 'rack-tiny.yaml'), dims, flags: { calibrate: report.telemetry } }, [
    'profile',
  ]);
  const calibration = again.ctx.get(profilePass).calibration;
  assert.ok(calibration, 'the profile pass calibrated');
  assert.equal(calibration.source, 'hxc-telemetry');
  assert.equal(calibration.matched_nodes, 530, 'every node of the model was timed through its program');
  assert.ok(calibration.factors.length > 0);
  assert.ok(!again.ctx.diagnostics.warnings.some((w) => w.code === 'HXC1117'), 'every kind of the rack measured');
  // The first request runs every session cold: a warm-up, left out; each program's time is the
  // median of the two after it.
  const telemetry = JSON.parse(fs.readFileSync(report.telemetry, 'utf8')) as { steps: { request: number; nodes: string[]; start_s: number; end_s: number }[] };
  const measured = readCalibration(report.telemetry);
  assert.equal(measured.cold, false);
  for (const g of measured.groups) {
    const runs = telemetry.steps.filter((st) => st.nodes.join() === g.nodes.join());
    const later = runs.filter((st) => st.request !== 0).map((st) => st.end_s - st.start_s);
    assert.equal(runs.length, 3);
    assert.ok(Math.abs(g.seconds - (later[0]! + later[1]!) / 2) <= 1e-12, `${g.nodes[0]}: ${g.seconds} s is not the warm requests' median`);
  }
  assert.ok(!again.ctx.diagnostics.warnings.some((w) => w.code === 'HXC1105'));
  // Two requests: run's measured busy time and check --max-drift's are one median (of the two).
  const twice = await runPlan({ plan_dir: out, seed: 0, iterations: 2, check: false, decode_steps: 0, dims: {} });
  const planned = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as PlanV1;
  for (const d of readDrift(twice.telemetry, planned).devices) {
    const m = twice.measured_vs_estimated.find((x) => x.device === d.device)!;
    assert.ok(Math.abs(m.measured_busy_s - d.measured_s) <= 1e-9 * d.measured_s, `${d.device}: run says ${m.measured_busy_s} s, check ${d.measured_s} s`);
  }
  // One request: the cold one is all there is, said.
  const once = await runPlan({ plan_dir: out, seed: 0, iterations: 1, check: false, decode_steps: 0, dims: {} });
  const cold = await runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, 'rack-tiny.yaml'), dims, flags: { calibrate: once.telemetry } }, [
    'profile',
  ]);
  assert.match(
    cold.ctx.diagnostics.warnings.find((w) => w.code === 'HXC1105')?.message ?? '',
    /one request at the plan's dims: every program's first, cold run/,
  );
  // On a rack with kinds the run never used, the plan weighs measured times against datasheet ones: said.
  const mixed = await runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, 'rack-hetero.yaml'), dims, flags: { calibrate: report.telemetry } }, [
    'profile',
  ]);
  const said = mixed.ctx.diagnostics.warnings.find((w) => w.code === 'HXC1117');
  assert.match(said?.message ?? '', /^calibrated cpu, gpu from measurement; accel, dataflow, ipu keep their catalog numbers/);
});

test('an If whose branches read outer-scope values across a device boundary runs and matches', async () => {
  const { ifModel } = await import('./onnx-builder.js');
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'if.onnx'), ifModel());
  const out = path.join(dir, 'plan');
  await runPipeline(
    { model_path: path.join(dir, 'if.onnx'), topology_path: path.join(EXAMPLES, 'rack-tiny.yaml'), dims: {}, flags: { out, 'max-stages': 1 } },
    null,
  );
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
  assert.equal(plan.assignment.choose, 'cpu0', 'the tiny GPU cannot run If');
  assert.equal(plan.assignment.mm, 'gpu0');
  const ifProgram = Object.entries(plan.programs as Record<string, { inputs: string[] }>).find(([f]) => f.startsWith('programs/cpu0/'))!;
  assert.ok(ifProgram[1].inputs.includes('h'), "the outer-scope value the branches read is an input of the If's program");
  for (const seed of [0, 1]) {
    const report = await runPlan({ plan_dir: out, seed, iterations: 1, check: true, decode_steps: 0, dims: {} });
    assert.ok(report.check!.passed, JSON.stringify(report.check));
  }
});

test('hxc run measures expert routing on a routed MoE model and the next plan takes it with --routing', async () => {
  const dir = tmpDir();
  const out = path.join(dir, 'p');
  const model = modelPath('mixtral_tiny_moe_kv');
  await runPipeline(
    { model_path: model, topology_path: path.join(EXAMPLES, 'rack-hetero.yaml'), dims: {}, flags: { out, phase: 'prefill', batch: 2, prompt: 16 } },
    null,
  );
  const report = await runPlan({ plan_dir: out, seed: 5, iterations: 1, check: true, decode_steps: 2, dims: {} });
  assert.ok(report.check!.passed);
  assert.ok(report.routing, 'a routing file was written');
  const routing = JSON.parse(fs.readFileSync(report.routing!, 'utf8'));
  assert.equal(routing.format, 'hxc-routing/v1');
  assert.equal(routing.layers.length, 2);
  // Every token of every request picks top-2 of 4 experts: (2×16 prefill + 2×1 + 2×1 decode) × 2.
  for (const l of routing.layers) {
    assert.equal(l.tokens.length, 4);
    assert.equal(
      l.tokens.reduce((a: number, b: number) => a + b, 0),
      (32 + 2 + 2) * 2,
    );
  }
  const telemetry = JSON.parse(fs.readFileSync(report.telemetry, 'utf8'));
  assert.equal(telemetry.expert_tokens.length, 2 * 4 * 3, 'per layer, expert and request');
  const r = hxc([
    'plan',
    model,
    '--topology',
    path.join(EXAMPLES, 'rack-hetero.yaml'),
    '--phase',
    'prefill',
    '--routing',
    report.routing!,
    '--out',
    path.join(dir, 'p2'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /routing from expert_routing\.json/);
});

test('MoE experts are units of their own: a prefill spreads them over devices and still matches the unsplit model', async () => {
  const out = path.join(tmpDir(), 'moe');
  await runPipeline(
    {
      model_path: modelPath('mixtral_tiny_moe_kv'),
      topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'),
      dims: {},
      flags: { out, phase: 'prefill', batch: 8, prompt: 128 },
    },
    null,
  );
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
  const expertUnits = plan.explain.filter((e: { unit: string }) => /moe\d+\.expert\d+/.test(e.unit));
  assert.ok(expertUnits.length >= 8, 'every expert of both layers is a unit');
  const devices = new Set(expertUnits.map((e: { device: string }) => e.device));
  assert.ok(devices.size >= 2, `experts spread over devices (${[...devices].join(', ')})`);
  const report = await runPlan({ plan_dir: out, seed: 2, iterations: 1, check: true, decode_steps: 1, dims: {} });
  assert.ok(report.check!.passed, JSON.stringify(report.check!.worst));
});

test('decode-phase plans run their decode steps on every KV model, the cache moving when a reader sits away from it', async () => {
  const dir = tmpDir();
  for (const name of ['gpt2_tiny_kv', 'mixtral_tiny_moe_kv', 'dense_moe_small_kv']) {
    const out = path.join(dir, name);
    await runPipeline(
      { model_path: modelPath(name), topology_path: path.join(EXAMPLES, 'rack-hetero.yaml'), dims: {}, flags: { out, phase: 'decode', batch: 4 } },
      null,
    );
    const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
    assert.ok(
      plan.max_positions === null || plan.dims.past_sequence_length + 1 + 4 <= plan.max_positions,
      `${name}: the default context leaves room for decode steps`,
    );
    const report = await runPlan({ plan_dir: out, seed: 9, iterations: 1, check: true, decode_steps: 4, dims: {} });
    assert.ok(report.check!.passed, `${name}: ${JSON.stringify(report.check!.worst)}`);
  }
  const gpt2 = path.join(dir, 'gpt2_tiny_kv');
  const tooFar = hxc(['run', gpt2, '--decode-steps', '500']);
  assert.equal(isOneLineError(tooFar, 'HXC2002'), null);
  assert.match(tooFar.stderr, /the model has 256/);
});

test("expert replicas: hot experts get executable copies, rows split by the copies' live queue depth, outputs unchanged", async () => {
  const out = path.join(tmpDir(), 'rep');
  const routing = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.expert_routing.json');
  await runPipeline(
    {
      model_path: modelPath('mixtral_tiny_moe_kv'),
      topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'),
      dims: {},
      flags: { out, phase: 'prefill', batch: 4, prompt: 64, routing, 'expert-replicas': 3 },
    },
    null,
  );
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
  const reps = plan.expert_replicas as { key: string; devices: string[]; parts: string[] }[];
  assert.equal(
    reps.reduce((s, r) => s + r.devices.length - 1, 0),
    3,
    'three extra copies handed out',
  );
  // Copies run side by side: no two of an expert's on one device.
  for (const r of reps) assert.equal(new Set(r.devices).size, r.devices.length, `${r.key} on ${r.devices.join('+')}`);
  // EPLB's rule gives copies to the most loaded experts of the skewed trace.
  const trace = JSON.parse(fs.readFileSync(routing, 'utf8'));
  const hottest = (layer: number): number => trace.layers[layer].tokens.indexOf(Math.max(...trace.layers[layer].tokens));
  assert.ok(
    reps.some((r) => r.key === `moe0.expert${hottest(0)}` || r.key === `moe1.expert${hottest(1)}`),
    reps.map((r) => r.key).join(', '),
  );
  const report = await runPlan({ plan_dir: out, seed: 3, iterations: 3, check: true, decode_steps: 0, dims: {} });
  assert.ok(report.check!.passed, JSON.stringify(report.check!.worst));
  const telemetry = JSON.parse(fs.readFileSync(report.telemetry, 'utf8'));
  const tokens = telemetry.replica_tokens as { key: string; replica: number; request: number; tokens: number }[];
  const first = reps[0]!;
  const perRequest = (r: number): number[] =>
    first.parts.map((_, j) => tokens.find((t) => t.key === first.key && t.request === r && t.replica === j)?.tokens ?? -1);
  const r0 = perRequest(0);
  assert.ok(
    r0.every((t) => t >= 0),
    'every copy reports its tokens',
  );
  // The split follows the live queue depths: a copy with a shorter queue never gets fewer rows (±1 rounding).
  const dispatch = telemetry.replica_dispatch as { key: string; request: number; queue_depths: number[] }[];
  assert.ok(dispatch.length >= 3 * reps.length, 'one split per replicated expert per request');
  for (const d of dispatch) {
    const rep = reps.find((x) => x.key === d.key)!;
    const rows = rep.parts.map((_, j) => tokens.find((t) => t.key === d.key && t.request === d.request && t.replica === j)!.tokens);
    for (let a = 0; a < rows.length; a++)
      for (let b = 0; b < rows.length; b++) {
        if (d.queue_depths[a]! < d.queue_depths[b]!)
          assert.ok(rows[a]! + 1 >= rows[b]!, `${d.key} request ${d.request}: depths ${d.queue_depths} rows ${rows}`);
      }
  }
  // Each request routes differently (fresh inputs): the copies share exactly that request's rows of the expert.
  const [layer, expert] = /moe(\d+)\.expert(\d+)/.exec(first.key)!.slice(1).map(Number) as [number, number];
  for (const r of [0, 1, 2]) {
    const routed = (telemetry.expert_tokens as { layer: number; expert: number; request: number; tokens: number }[]).find(
      (t) => t.layer === layer && t.expert === expert && t.request === r,
    )!.tokens;
    assert.equal(
      perRequest(r).reduce((a, b) => a + b, 0),
      routed,
      `request ${r}`,
    );
  }
});

test("expert copies, as an audit planned them: never two on one device, what that costs said when it costs; hxc run --inputs needs only the model's inputs (the copies' shares are the plan's)", async () => {
  const dir = tmpDir();
  const dims = ['--dim', 'batch_size=2,sequence_length=5,past_sequence_length=3'];
  for (const rack of ['rack-8gpu.yaml', 'rack-hetero.yaml']) {
    const out = path.join(dir, rack);
    const r = hxc(['plan', modelPath('mixtral_tiny_moe_kv'), '--topology', path.join(EXAMPLES, rack), ...dims, '--expert-replicas', '2', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
    const reps = plan.expert_replicas as { key: string; devices: string[] }[];
    assert.equal(reps.length, 2);
    for (const rep of reps) assert.equal(new Set(rep.devices).size, 2, `${rack}: ${rep.key} on ${rep.devices.join('+')}`);
    // The shipped plan is one with its copies apart; a faster one that keeps two together is a
    // candidate shown as such, and its lead is said.
    const cands = plan.estimate.candidates as { name: string; latency_s: number; fits: boolean; copies_apart?: boolean }[];
    assert.equal(cands.find((c) => c.name === plan.estimate.chosen)!.copies_apart, true);
    const together = cands.filter((c) => c.copies_apart === false && c.fits).sort((a, b) => a.latency_s - b.latency_s)[0];
    if (together && together.latency_s < plan.estimate.latency_s) {
      const cost = ((plan.estimate.latency_s / together.latency_s - 1) * 100).toFixed(1);
      assert.match(r.stdout, new RegExp(`copies on devices of their own cost ${cost.replace('.', '\\.')}% against the best plan with two on one device`));
    }
    assert.match(r.stdout, /\(two copies of an expert on one device\)/);
  }
  // Inputs from a file: the model's seven, not the copies' shares.
  const out = path.join(dir, 'rack-hetero.yaml');
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
  const shapes: Record<string, number[]> = { input_ids: [2, 5], attention_mask: [2, 8], position_ids: [2, 5] };
  const inputs: Record<string, { dtype: string; shape: number[]; data: number[] }> = {};
  for (const i of plan.inputs as { name: string; dtype: string }[]) {
    if (i.name.startsWith('hxc.share.')) continue;
    const shape = shapes[i.name] ?? [2, 2, 3, 32];
    const n = shape.reduce((a, b) => a * b, 1);
    inputs[i.name] = {
      dtype: i.dtype,
      shape,
      data: Array.from({ length: n }, (_, k) =>
        i.name === 'attention_mask' ? 1 : i.name === 'position_ids' ? k % 5 : i.dtype === 'int64' ? (k * 7) % 50 : Math.sin(k),
      ),
    };
  }
  assert.equal(Object.keys(inputs).length, 7);
  assert.ok(
    (plan.inputs as { name: string }[]).some((i) => i.name.startsWith('hxc.share.')),
    'the plan has share inputs',
  );
  const file = path.join(dir, 'inputs.json');
  fs.writeFileSync(file, JSON.stringify(inputs));
  const run = hxc(['run', out, '--check', '--inputs', file, '--decode-steps', '2']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /check passed/);
});

test('with --pin-experts, experts and their copies stay on the devices the moe pass chose', async () => {
  const out = path.join(tmpDir(), 'pinned');
  await runPipeline(
    {
      model_path: modelPath('mixtral_tiny_moe_kv'),
      topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'),
      dims: {},
      flags: {
        out,
        phase: 'prefill',
        batch: 4,
        prompt: 64,
        routing: path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.expert_routing.json'),
        'expert-replicas': 2,
        'pin-experts': true,
      },
    },
    null,
  );
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
  const chosen = new Map<string, string[]>(
    (plan.experts as { layer: number; expert: number; replicas: { device: string }[] }[]).map((e) => [
      `moe${e.layer}.expert${e.expert}`,
      e.replicas.map((r) => r.device),
    ]),
  );
  let checked = 0;
  for (const e of plan.explain as { unit: string; device: string }[]) {
    const m = /(moe\d+\.expert\d+)/.exec(e.unit);
    if (!m || /\.dispatch/.test(e.unit)) continue; // an expert's dispatch is not the expert
    assert.ok(chosen.get(m[1]!)!.includes(e.device), `${e.unit} on ${e.device}, outside ${chosen.get(m[1]!)}`);
    checked++;
  }
  assert.ok(checked >= 8);
  const report = await runPlan({ plan_dir: out, seed: 1, iterations: 1, check: true, decode_steps: 0, dims: {} });
  assert.ok(report.check!.passed);
});
