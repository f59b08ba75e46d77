import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { FIXTURES, REPO } from './helpers.js';
import { syntheticJson } from '../src/bench/cases.js';
import type { DeltaV1, PlanV1 } from '../src/plan/format.js';

const schema = JSON.parse(fs.readFileSync(path.join(REPO, 'src', 'schema', 'hxc-graph.v1.schema.json'), 'utf8'));

test('the shipped hxc-graph/v1 schema accepts the graphs hxc accepts and rejects malformed ones', () => {
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  const graphs = fs.readdirSync(path.join(FIXTURES, 'graphs')).filter((f) => f.endsWith('.json'));
  assert.ok(graphs.length > 0);
  for (const f of graphs) {
    const doc = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'graphs', f), 'utf8'));
    assert.ok(validate(doc), `${f}: ${JSON.stringify(validate.errors)}`);
  }
  assert.ok(validate(JSON.parse(syntheticJson(50))));
  assert.ok(!validate({ format: 'hxc-graph/v1', inputs: [], outputs: [], nodes: [{ name: 'n', op: 'Relu', inputs: 'x', outputs: [] }] }));
  assert.ok(!validate({ format: 'hxc-graph/v1', inputs: [{ name: 'x' }], outputs: [], nodes: [] }), 'a value needs dtype+shape or bytes');
  assert.ok(!validate({ format: 'hxc-graph/v2', inputs: [], outputs: [], nodes: [] }));
});

test('the topology, routing and telemetry schemas accept what hxc reads and writes', async () => {
  const { parse } = await import('yaml');
  const { EXAMPLES, SHARED_MODELS, tmpDir } = await import('./helpers.js');
  const ajv = new Ajv({ allErrors: true, strict: false });
  const load = (name: string) => ajv.compile(JSON.parse(fs.readFileSync(path.join(REPO, 'src', 'schema', name), 'utf8')));
  const topology = load('hxc-topology.v1.schema.json');
  for (const f of fs.readdirSync(EXAMPLES)) {
    const doc = parse(fs.readFileSync(path.join(EXAMPLES, f), 'utf8'));
    assert.ok(topology(doc), `${f}: ${JSON.stringify(topology.errors)}`);
  }
  assert.ok(!topology({ format: 'hxc-topology/v1', devices: [{ id: 'x', kind: 'tpu' }] }), 'an unknown kind is refused');
  const routing = load('hxc-routing.v1.schema.json');
  for (const f of fs.readdirSync(SHARED_MODELS).filter((x) => x.endsWith('.expert_routing.json'))) {
    assert.ok(routing(JSON.parse(fs.readFileSync(path.join(SHARED_MODELS, f), 'utf8'))), `${f}: ${JSON.stringify(routing.errors)}`);
  }
  // A real run's telemetry and measured routing.
  const { runPipeline } = await import('../src/cli/run-passes.js');
  const { runPlan } = await import('../src/runtime/run.js');
  const out = path.join(tmpDir(), 'p');
  await runPipeline(
    {
      model_path: path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx'),
      topology_path: path.join(EXAMPLES, 'rack-tiny.yaml'),
      dims: {},
      flags: { out, phase: 'prefill', prompt: 8 },
    },
    null,
  );
  const report = await runPlan({ plan_dir: out, seed: 0, iterations: 2, check: false, decode_steps: 0, dims: {} });
  const telemetry = load('hxc-telemetry.v1.schema.json');
  assert.ok(telemetry(JSON.parse(fs.readFileSync(report.telemetry, 'utf8'))), JSON.stringify(telemetry.errors));
  assert.ok(routing(JSON.parse(fs.readFileSync(report.routing!, 'utf8'))), JSON.stringify(routing.errors));
});

test('the hxc-assignment schema accepts what --assign reads — a plan.json assignment among them, and a plan.json — and rejects what it refuses', async () => {
  const { EXAMPLES, tmpDir, hxc } = await import('./helpers.js');
  const validate = new Ajv({ allErrors: true, strict: false }).compile(
    JSON.parse(fs.readFileSync(path.join(REPO, 'src', 'schema', 'hxc-assignment.v1.schema.json'), 'utf8')),
  );
  const dir = tmpDir();
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  assert.equal(hxc(['plan', model, '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--out', path.join(dir, 'a')]).code, 0);
  const doc = { format: 'hxc-assignment/v1', assignment: JSON.parse(fs.readFileSync(path.join(dir, 'a', 'plan.json'), 'utf8')).assignment };
  assert.ok(validate(doc), JSON.stringify(validate.errors));
  fs.writeFileSync(path.join(dir, 'assign.json'), JSON.stringify(doc));
  assert.equal(
    hxc(['plan', model, '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--assign', path.join(dir, 'assign.json'), '--out', path.join(dir, 'b')]).code,
    0,
    'hxc reads it back',
  );
  // A plan.json itself is read as its assignment: planning again on it ships the same placement.
  assert.equal(
    hxc(['plan', model, '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--assign', path.join(dir, 'a', 'plan.json'), '--out', path.join(dir, 'c')]).code,
    0,
  );
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'c', 'plan.json'), 'utf8')).assignment, doc.assignment);
  // A plan with split MatMuls names their parts, which a variant without the split lacks: left free, with a warning.
  const rack8 = path.join(EXAMPLES, 'rack-8gpu.yaml');
  assert.equal(hxc(['plan', model, '--topology', rack8, '--tensor-parallel', '2', '--out', path.join(dir, 'tp')]).code, 0);
  const again = hxc(['plan', model, '--topology', rack8, '--assign', path.join(dir, 'tp', 'plan.json'), '--out', path.join(dir, 'tp-again')]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /warning HXC1109: .*node\(s\) the plan assigns are not in this graph \(\/lm_head\/MatMul\/tp0of2/);
  assert.ok(!validate({ format: 'hxc-assignment/v1', assignment: { n: 7 } }));
  assert.ok(!validate({ format: 'hxc-assignment/v2', assignment: {} }));
  assert.ok(!validate({ format: 'hxc-assignment/v1' }));
});

test('plan.json and delta.json: the TypeScript types (src/plan/format.ts) and the JSON Schemas name the same top-level fields', () => {
  // Each record must list every key of its type, and only those: the compiler checks the lists.
  const planKeys: Record<keyof PlanV1, true> = {
    format: true,
    model: true,
    topology: true,
    dims: true,
    estimated_dims: true,
    inputs: true,
    outputs: true,
    phase: true,
    roles: true,
    max_positions: true,
    objective: true,
    solver: true,
    options: true,
    pipeline: true,
    assignment: true,
    devices: true,
    transfers: true,
    state: true,
    experts: true,
    estimate: true,
    explain: true,
    expert_replicas: true,
    tensor_parallel: true,
    expert_probes: true,
    programs: true,
    serve: true,
  };
  const deltaKeys: Record<keyof DeltaV1, true> = {
    format: true,
    from: true,
    objective: true,
    amortize_requests: true,
    limits: true,
    moved: true,
    moves: true,
    forced_moves: true,
    migration_bytes: true,
    migration_s: true,
    within_limits: true,
    running_now: true,
    new: true,
    fresh: true,
  };
  for (const [file, keys] of [
    ['hxc-plan.v1.schema.json', planKeys],
    ['hxc-delta.v1.schema.json', deltaKeys],
  ] as const) {
    const s = JSON.parse(fs.readFileSync(path.join(REPO, 'src', 'schema', file), 'utf8')) as { properties: Record<string, unknown>; required: string[] };
    assert.deepEqual(Object.keys(s.properties).sort(), Object.keys(keys).sort(), `${file} and its type name the same fields`);
    for (const r of s.required) assert.ok(r in keys, `${file} requires ${r}, which its type has`);
  }
});
