// hxc diff (issue 12, first part): what changes between two plan directories.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runPipeline } from '../src/cli/run-passes.js';
import { Ajv } from 'ajv';
import { EXAMPLES, FIXTURES, REPO, SHARED_MODELS, hxc, tmpDir } from './helpers.js';

const MODEL = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');

async function plan(dir: string, objective: string): Promise<Record<string, any>> {
  await runPipeline(
    { model_path: MODEL, topology_path: path.join(EXAMPLES, 'rack-hetero.yaml'), dims: {}, flags: { out: dir, objective, phase: 'prefill', prompt: 64 } },
    null,
  );
  return JSON.parse(fs.readFileSync(path.join(dir, 'plan.json'), 'utf8'));
}

test('hxc diff: a plan against itself moves nothing; against another objective it names each move and its bytes', async () => {
  const dir = tmpDir();
  const a = await plan(path.join(dir, 'a'), 'latency');
  const b = await plan(path.join(dir, 'b'), 'throughput');
  const self = hxc(['diff', path.join(dir, 'a'), path.join(dir, 'a'), '--json']);
  assert.equal(self.code, 0, self.stderr);
  const same = JSON.parse(self.stdout);
  assert.equal(same.format, 'hxc-diff/v1');
  assert.deepEqual([same.moved, same.migration_bytes, same.nodes_moved, same.experts, same.transfers.added, same.transfers.removed], [[], 0, 0, [], 0, 0]);
  assert.equal(same.a.latency_s, same.b.latency_s);
  const count = Object.keys(a.assignment).length;
  assert.deepEqual(same.nodes, { a: count, b: count, both: count });
  assert.equal(self.stderr, '', 'a plan against itself warns of nothing');

  const r = hxc(['diff', path.join(dir, 'a'), path.join(dir, 'b'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  // The shipped schema takes it (DESIGN.md: every format ships one), and the figures carry memory.
  const validate = new Ajv({ allErrors: true, strict: false }).compile<unknown>(
    JSON.parse(fs.readFileSync(path.join(REPO, 'src', 'schema', 'hxc-diff.v1.schema.json'), 'utf8')),
  );
  assert.equal(validate(d), true, JSON.stringify(validate.errors));
  assert.equal(validate(same), true, JSON.stringify(validate.errors));
  for (const [f, p] of [
    [d.a, a],
    [d.b, b],
  ] as const) {
    const held = Object.values(p.estimate.devices as Record<string, { memory_bytes: number }>).map((x) => x.memory_bytes);
    assert.equal(
      f.memory_bytes,
      held.reduce((x, y) => x + y, 0),
    );
    assert.equal(f.max_device_memory_bytes, Math.max(...held));
  }
  // Every move is a unit of B whose nodes ran mostly on another device in A (the two objectives cut
  // the model into differently named units), from there to B's device, carrying B's resident bytes.
  const eb = new Map(b.explain.map((e: any) => [e.unit, e]));
  const unitNodes = new Map<string, string[]>();
  for (const dev of b.devices) for (const st of dev.steps) if (st.op === 'compute') unitNodes.set(st.unit, [...(unitNodes.get(st.unit) ?? []), ...st.nodes]);
  const expected = new Map<string, string>();
  for (const [unit, nodes] of unitNodes) {
    const count = new Map<string, number>();
    for (const n of nodes) count.set(a.assignment[n], (count.get(a.assignment[n]) ?? 0) + 1);
    const top = [...count].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1))[0]![0];
    if (top !== (eb.get(unit) as any).device) expected.set(unit, top);
  }
  assert.equal(d.moved.length, expected.size);
  for (const m of d.moved) {
    assert.equal(m.from, expected.get(m.unit));
    assert.equal(m.to, (eb.get(m.unit) as any).device);
    assert.equal(m.bytes, (eb.get(m.unit) as any).resident_bytes);
  }
  assert.equal(
    d.migration_bytes,
    d.moved.reduce((s: number, m: any) => s + m.bytes, 0),
  );
  const nodes = Object.keys(b.assignment).filter((n) => a.assignment[n] !== undefined && a.assignment[n] !== b.assignment[n]).length;
  assert.equal(d.nodes_moved, nodes);
  assert.ok(nodes > 0, 'the two objectives place the model differently');
  // Every moved node is listed: in a unit that moved, or in one whose majority stayed (partly_moved).
  const inMoved = d.moved.reduce((n: number, m: any) => n + unitNodes.get(m.unit)!.filter((x) => a.assignment[x] !== undefined).length, 0);
  const inPartly = d.partly_moved.reduce((n: number, x: any) => n + x.nodes, 0);
  for (const x of d.partly_moved) {
    assert.ok(!expected.has(x.unit), `${x.unit} is listed once`);
    assert.equal(x.nodes, unitNodes.get(x.unit)!.filter((n) => a.assignment[n] !== undefined && a.assignment[n] !== b.assignment[n]).length);
  }
  const movedUnitsStill = d.moved.reduce((n: number, m: any) => n + unitNodes.get(m.unit)!.filter((x) => a.assignment[x] === b.assignment[x]).length, 0);
  assert.equal(inMoved - movedUnitsStill + inPartly, nodes, 'moved and partly moved units hold every moved node');
  assert.deepEqual(
    [d.a.latency_s, d.b.latency_s, d.a.throughput_per_s, d.b.throughput_per_s],
    [a.estimate.latency_s, b.estimate.latency_s, a.estimate.throughput_per_s, b.estimate.throughput_per_s],
  );
  // The table for a terminal says the same.
  const text = hxc(['diff', path.join(dir, 'a'), path.join(dir, 'b')]);
  assert.equal(text.code, 0);
  assert.match(text.stdout, new RegExp(`${d.moved.length} unit\\(s\\) moved`));
  assert.match(text.stdout, /^latency {5}[\d.]+ ms → [\d.]+ ms/m);
});

test('hxc diff of plans of two models: it compares them, and warns once that they share few nodes (HXC1112)', () => {
  const dir = tmpDir();
  const gpt2 = path.join(dir, 'gpt2');
  const cnn = path.join(dir, 'cnn');
  assert.equal(hxc(['plan', path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), '--out', gpt2]).code, 0);
  assert.equal(hxc(['plan', path.join(SHARED_MODELS, 'mobilenet_v3_small.onnx'), '--dim', 'batch=2', '--out', cnn]).code, 0);
  const r = hxc(['diff', gpt2, cnn, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  const nodes = (p: string): string[] => Object.keys(JSON.parse(fs.readFileSync(path.join(p, 'plan.json'), 'utf8')).assignment);
  const inA = new Set(nodes(gpt2));
  assert.deepEqual(d.nodes, { a: inA.size, b: nodes(cnn).length, both: nodes(cnn).filter((n) => inA.has(n)).length });
  const warned = r.stderr.split('\n').filter((l) => l.includes('HXC1112'));
  assert.equal(warned.length, 1, r.stderr);
  assert.match(
    warned[0]!,
    new RegExp(
      `A and B share ${d.nodes.both} of their ${d.nodes.a} and ${d.nodes.b} nodes: plans of different models \\(gpt2_tiny_kv\\.onnx, mobilenet_v3_small\\.onnx\\)\\?`,
    ),
  );
});

test('hxc diff: a folder that is not a plan is one line and exit 2', () => {
  const dir = tmpDir();
  const r = hxc(['diff', dir, dir]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^hxc: error HXC2001: .*no plan\.json here/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});
