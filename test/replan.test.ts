// hxc replan: from a running plan, counting the migration. A plan replanned with nothing changed
// moves nothing; a rack that lost a device moves that device's units and only what pays back, and
// the new plan runs and matches the unsplit model; the adaptive loop on a real MoE model — plan
// with uniform routing, run it on skewed inputs, replan with the routing the run measured — moves
// fewer units than a fresh plan for a simulated latency within 2% of it and below the running plan's.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { createRequire } from 'node:module';
import { EXAMPLES, hxc, isOneLineError, REPO, SHARED_MODELS, servingPlan, tmpDir } from './helpers.js';
import type { DeltaV1 } from '../src/plan/format.js';

const MIXTRAL = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx');
const RACK = path.join(EXAMPLES, 'rack-8gpu.yaml');

type Delta = DeltaV1;

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

function planMixtral(dir: string, extra: string[] = []): string {
  const out = path.join(dir, 'running');
  const r = hxc(['plan', MIXTRAL, '--topology', RACK, '--out', out, ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

/** The delta.json schema (hxc-delta/v1) shipped in src/schema. */
function validateDelta(delta: unknown): void {
  const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  const validate = new Ajv({ strict: false }).compile(readJson(path.join(REPO, 'src', 'schema', 'hxc-delta.v1.schema.json')));
  assert.ok(validate(delta), JSON.stringify(validate.errors));
}

test('replanning an unchanged plan moves nothing and keeps its estimate', () => {
  const dir = tmpDir();
  const running = planMixtral(dir);
  const out = path.join(dir, 'again');
  const r = hxc(['replan', running, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const delta = readJson<Delta>(path.join(out, 'delta.json'));
  validateDelta(delta);
  assert.equal(delta.moves, 0, JSON.stringify(delta.moved.slice(0, 3)));
  assert.equal(delta.migration_bytes, 0);
  const old = readJson<{ estimate: { latency_s: number } }>(path.join(running, 'plan.json'));
  assert.ok(Math.abs(delta.new.latency_s - old.estimate.latency_s) <= old.estimate.latency_s * 1e-9, `${delta.new.latency_s} vs ${old.estimate.latency_s}`);
  assert.ok(
    Math.abs(delta.running_now!.latency_s - old.estimate.latency_s) <= old.estimate.latency_s * 1e-9,
    'the running plan judged again gives its own estimate',
  );
  assert.match(r.stdout, /replan of .*: 0 units moved/);
  assert.doesNotMatch(r.stderr, /HXC1112/, 'a replan of its own model warns of nothing');
  const diff = hxc(['diff', running, out, '--json']);
  assert.equal(diff.code, 0, diff.stderr);
  assert.equal((JSON.parse(diff.stdout) as { moved: unknown[] }).moved.length, 0);
});

test('replan --model of another model plans it, and warns once that the running plan shares few of its nodes (HXC1112)', () => {
  const dir = tmpDir();
  const running = planMixtral(dir);
  const other = path.join(SHARED_MODELS, 'gpt2_tiny_kv.onnx');
  const out = path.join(dir, 'other');
  const r = hxc(['replan', running, '--model', other, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const was = Object.keys(readJson<{ assignment: Record<string, string> }>(path.join(running, 'plan.json')).assignment);
  const now = Object.keys(readJson<{ assignment: Record<string, string> }>(path.join(out, 'plan.json')).assignment);
  const shared = new Set(was);
  const warned = r.stderr.split('\n').filter((l) => l.includes('HXC1112'));
  assert.equal(warned.length, 1, r.stderr);
  assert.match(
    warned[0]!,
    new RegExp(
      `the running plan assigns ${was.length} nodes and this model has ${now.length}, ${now.filter((n) => shared.has(n)).length} of them: a plan of another model\\?`,
    ),
  );
});

test('a rack that lost a device: its units move, the rest only when they pay back, and the new plan runs and matches the model', () => {
  const dir = tmpDir();
  const running = planMixtral(dir);
  const plan = readJson<{ assignment: Record<string, string> }>(path.join(running, 'plan.json'));
  // Remove the GPU holding the most nodes.
  const counts = new Map<string, number>();
  for (const d of Object.values(plan.assignment)) if (d.startsWith('gpu')) counts.set(d, (counts.get(d) ?? 0) + 1);
  const gone = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
  const keep = ['gpu0', 'gpu1', 'gpu2', 'gpu3', 'gpu4', 'gpu5', 'gpu6', 'gpu7'].filter((g) => g !== gone);
  const rack = fs
    .readFileSync(RACK, 'utf8')
    .replace('id: gpu[0-7]', `id: gpu[${keep.map((g) => g.slice(3)).join(',')}]`)
    .replace(/connects: \[gpu0, gpu1, gpu2, gpu3, gpu4, gpu5, gpu6, gpu7\]/, `connects: [${keep.join(', ')}]`)
    .replace(/connects: \[cpu0, gpu0, gpu1, gpu2, gpu3, gpu4, gpu5, gpu6, gpu7\]/, `connects: [cpu0, ${keep.join(', ')}]`);
  const rackFile = path.join(dir, 'rack-7gpu.yaml');
  fs.writeFileSync(rackFile, rack);
  assert.equal(hxc(['topology', rackFile]).code, 0, 'the edited rack is valid');

  for (const limits of [[], ['--max-moves', '0']]) {
    const out = path.join(dir, `failover${limits.length}`);
    const r = hxc(['replan', running, '--topology', rackFile, '--out', out, ...limits]);
    assert.equal(r.code, 0, r.stderr);
    const delta = readJson<Delta>(path.join(out, 'delta.json'));
    validateDelta(delta);
    const newPlan = readJson<{ assignment: Record<string, string>; devices: { id: string }[] }>(path.join(out, 'plan.json'));
    assert.ok(!newPlan.devices.some((d) => d.id === gone), `${gone} is not in the new plan`);
    assert.ok(!Object.values(newPlan.assignment).includes(gone));
    const forced = delta.moved.filter((m) => m.from === gone);
    assert.ok(forced.length > 0 && forced.length === delta.forced_moves, 'every unit of the lost device moved');
    for (const m of forced) assert.match(m.why, new RegExp(`its device ${gone} is not in the rack`));
    for (const m of delta.moved.filter((x) => x.from !== gone)) assert.match(m.why, /pays back|must be made/, `${m.unit}: ${m.why}`);
    if (limits.length > 0) assert.equal(delta.moves, delta.forced_moves, '--max-moves 0: only what must move');
    assert.ok(delta.migration_bytes >= forced.reduce((s, m) => s + m.bytes, 0) && delta.migration_s > 0);
    assert.equal(
      delta.running_now === null || delta.new.latency_s <= delta.running_now.latency_s * (1 + 1e-9),
      true,
      'no slower than the running plan placed around the loss',
    );
  }
  const run = hxc(['run', path.join(dir, 'failover0'), '--check']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /check against the unsplit model/, 'exit 0 with --check: every output within tolerance');
});

test('the adaptive loop on a real MoE model: measured skewed routing, replan moves fewer units than a fresh plan, within 2% of it, faster than the running plan', () => {
  const dir = tmpDir();
  const running = planMixtral(dir);
  // Skewed inputs: two token ids only, so the router sends every token to the same few experts.
  const plan = readJson<{ inputs: { name: string; dtype: string; shape: (string | number)[] }[]; dims: Record<string, number> }>(
    path.join(running, 'plan.json'),
  );
  const dims = plan.dims;
  const inputs: Record<string, { dtype: string; shape: number[]; data: number[] }> = {};
  for (const i of plan.inputs) {
    const shape = i.shape.map((d) => (typeof d === 'number' ? d : d.split('+').reduce((s, t) => s + (dims[t.trim()] ?? 0), 0)));
    const size = shape.reduce((a, b) => a * b, 1);
    const data =
      i.name === 'input_ids'
        ? Array.from({ length: size }, (_, k) => (k % 4 === 3 ? 19 : 7))
        : i.name === 'attention_mask'
          ? new Array(size).fill(1)
          : i.name === 'position_ids'
            ? Array.from({ length: size }, (_, k) => k % shape[shape.length - 1]!)
            : new Array(size).fill(0);
    inputs[i.name] = { dtype: i.dtype, shape, data };
  }
  const inputsFile = path.join(dir, 'skewed.json');
  fs.writeFileSync(inputsFile, JSON.stringify(inputs));
  const run = hxc(['run', running, '--inputs', inputsFile]);
  assert.equal(run.code, 0, run.stderr);
  const routing = path.join(dir, 'measured_routing.json');
  fs.copyFileSync(path.join(running, 'run', 'expert_routing.json'), routing);
  const measured = readJson<{ layers: { tokens: number[] }[] }>(routing);
  const skew = Math.max(...measured.layers.map((l) => Math.max(...l.tokens) / (l.tokens.reduce((a, b) => a + b, 0) / l.tokens.length)));
  assert.ok(skew >= 1.5, `the inputs skew the routing (max/mean ${skew})`);

  const out = path.join(dir, 'replanned');
  const r = hxc(['replan', running, '--routing', routing, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const delta = readJson<Delta>(path.join(out, 'delta.json'));
  const freshDir = path.join(dir, 'fresh');
  const f = hxc(['plan', MIXTRAL, '--topology', RACK, '--routing', routing, '--out', freshDir]);
  assert.equal(f.code, 0, f.stderr);
  const fresh = readJson<{ estimate: { latency_s: number } }>(path.join(freshDir, 'plan.json'));
  // Units moved whole, and units whose majority stayed while some nodes moved (delta.json counts both: what moves is counted by node).
  const movesTo = (b: string): number => {
    const d = JSON.parse(hxc(['diff', running, b, '--json']).stdout) as { moved: unknown[]; partly_moved: unknown[] };
    return d.moved.length + d.partly_moved.length;
  };
  const freshMoves = movesTo(freshDir);
  const replanMoves = movesTo(out);
  assert.equal(replanMoves, delta.moves, 'hxc diff and delta.json count the same moves');
  assert.ok(delta.moves > 0, 'the skew is worth moving for');
  assert.ok(delta.moves < freshMoves, `replan moves ${delta.moves} units, a fresh plan ${freshMoves}`);
  assert.ok(delta.new.latency_s <= fresh.estimate.latency_s * 1.02, `replan ${delta.new.latency_s} s within 2% of fresh ${fresh.estimate.latency_s} s`);
  assert.ok(delta.running_now !== null && delta.new.latency_s < delta.running_now.latency_s, 'faster than the running plan under the measured routing');
  // The running plan is one plan: judged the same whatever the limits on moving away from it.
  const limited = path.join(dir, 'limited');
  const l = hxc(['replan', running, '--routing', routing, '--max-moves', '1', '--out', limited]);
  assert.equal(l.code, 0, l.stderr);
  const ld = readJson<Delta>(path.join(limited, 'delta.json'));
  assert.equal(ld.running_now!.latency_s, delta.running_now!.latency_s, 'the running plan judged alike under --max-moves 1');
  assert.ok(
    ld.moves - ld.forced_moves <= 1,
    JSON.stringify({ moves: ld.moves, forced: ld.forced_moves, within: ld.within_limits, moved: ld.moved.slice(0, 4) }),
  );
});

test('replan refuses what is not a plan, bad limits and a serving plan, with one line and exit 2', () => {
  const dir = tmpDir();
  assert.equal(isOneLineError(hxc(['replan', dir, '--out', path.join(dir, 'x')]), 'HXC2001'), null);
  const running = planMixtral(dir);
  assert.equal(isOneLineError(hxc(['replan', running, '--max-moves', 'many', '--out', path.join(dir, 'x')]), 'HXC2002'), null);
  assert.equal(isOneLineError(hxc(['replan', running, '--migration-budget', 'lots', '--out', path.join(dir, 'x')]), 'HXC2'), null);
  assert.equal(isOneLineError(hxc(['replan', running, '--min-gain', '-1%', '--out', path.join(dir, 'x')]), 'HXC2002'), null);
  assert.equal(isOneLineError(hxc(['replan', running, '--out', running]), 'HXC2004'), null);
  assert.ok(fs.existsSync(path.join(running, 'plan.json')), 'the running plan is untouched');
  // A serving plan is two plans on two pools: replanning it as one would move units across them.
  const serving = path.join(dir, 'serving');
  const made = servingPlan(RACK, serving);
  assert.equal(made.code, 0, made.stderr);
  const refused = hxc(['replan', serving, '--out', path.join(dir, 'x')]);
  assert.equal(isOneLineError(refused, 'HXC2002'), null);
  assert.match(
    refused.stderr,
    /is a serving plan \(prefill and decode pools\): hxc replan replans one plan, not its pools \(fix: plan it again with hxc plan --phase serve --workload \S*chat\.yaml/,
  );
  assert.ok(!fs.existsSync(path.join(dir, 'x')), 'nothing written');
});

test('a unit that ran on two devices moves what ran away from where it goes: counted by node, its bytes from where they ran, a gone device forced', async () => {
  const { Migration } = await import('../src/partition/migration.js');
  const { independentUnits } = await import('./exact-helpers.js');
  // Two units over three devices, 1 byte/s from anywhere to anywhere; unit 0 holds nodes a (100
  // bytes of weights) and b (50), unit 1 node c (30). The running plan ran a and c on d0, b on d1.
  const p = {
    ...independentUnits(
      [
        [1, 1, 1],
        [1, 1, 1],
      ],
      [150, 30],
      [0, 0],
      [1e9, 1e9, 1e9],
    ),
    transfer_s: (_a: number, _b: number, bytes: number) => bytes,
  };
  const names = [['a', 'b'], ['c']];
  const bytes = [[100, 50], [30]];
  const input = { assignment: { a: 'd0', b: 'd1', c: 'd0' }, amortize: 1, max_moves: 0, migration_budget_bytes: null, min_gain: 0 };
  const m = new Migration(p, names, input, bytes);
  // Unit 0 stays with its majority (d0): b comes over from d1 — one optional move of 50 bytes, which --max-moves 0 refuses.
  const stay = m.cost(Int32Array.from([0, 0]));
  assert.deepEqual(stay, { moves: 1, forced: 0, bytes: 50, optional_bytes: 50, seconds: 50 });
  assert.equal(m.within(stay), false);
  assert.deepEqual(
    m.moved(Int32Array.from([0, 0]), ['u0', 'u1']).map((x) => [x.unit, x.from, x.to, x.bytes]),
    [['u0', 'd1', 'd0', 50]],
  );
  // Unit 0 to d1: a comes from d0 (100 bytes); nothing of b moves.
  assert.deepEqual(m.cost(Int32Array.from([1, 0])), { moves: 1, forced: 0, bytes: 100, optional_bytes: 100, seconds: 100 });
  // b's device is gone: keeping unit 0 on d0 loads b afresh — a forced move, within the limits.
  const gone = new Migration(p, names, { ...input, assignment: { a: 'd0', b: 'gone', c: 'd0' } }, bytes);
  const forced = gone.cost(Int32Array.from([0, 0]));
  assert.deepEqual(forced, { moves: 1, forced: 1, bytes: 50, optional_bytes: 0, seconds: 50 });
  assert.equal(gone.within(forced), true);
});
