// hxc check --telemetry --max-drift (issue 12): a run's measurements against its plan.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runPipeline } from '../src/cli/run-passes.js';
import { runPlan } from '../src/runtime/run.js';
import { EXAMPLES, SHARED_MODELS, hxc, tmpDir } from './helpers.js';

test('drift: measured busy time per device and token shares per MoE layer, held to a budget, worst named', async () => {
  const model = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx');
  assert.ok(fs.existsSync(model), `missing model ${model}`);
  const dir = path.join(tmpDir(), 'plan');
  await runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, 'rack-tiny.yaml'), dims: {}, flags: { out: dir } }, null);
  const plan = JSON.parse(fs.readFileSync(path.join(dir, 'plan.json'), 'utf8'));
  const report = await runPlan({ plan_dir: dir, seed: 1, iterations: 3, check: false, decode_steps: 0, dims: {} });
  const telemetry = report.telemetry;
  const loose = hxc(['check', dir, '--telemetry', telemetry, '--max-drift', '100000%', '--json']);
  assert.equal(loose.code, 0, loose.stderr);
  const budgets = JSON.parse(loose.stdout).budgets as { name: string; actual: string; ok: boolean }[];
  // One budget per device the plan keeps busy, one per MoE layer.
  const busy = Object.entries(plan.estimate.devices)
    .filter(([, e]) => (e as { busy_s: number }).busy_s > 0)
    .map(([id]) => `drift ${id}`)
    .sort();
  assert.deepEqual(
    budgets
      .filter((b) => b.name.startsWith('drift '))
      .map((b) => b.name)
      .sort(),
    busy,
  );
  const layers = [...new Set(plan.experts.map((e: { layer: number }) => e.layer))].sort();
  assert.deepEqual(
    budgets.filter((b) => b.name.startsWith('routing')).map((b) => b.name),
    layers.map((l) => `routing drift layer ${l}`),
  );
  // The measured times: the run's compute steps per device, median over requests.
  const t = JSON.parse(fs.readFileSync(telemetry, 'utf8'));
  const device = busy[0]!.slice('drift '.length);
  const per = new Map<number, number>();
  for (const s of t.steps) if (s.device === device && s.nodes?.length) per.set(s.request, (per.get(s.request) ?? 0) + s.end_s - s.start_s);
  const sorted = [...per.values()].sort((a, b) => a - b);
  const med = sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  assert.match(budgets.find((b) => b.name === `drift ${device}`)!.actual, new RegExp(`measured ${(med * 1e3).toFixed(4)}ms`));
  // onnxruntime's CPU stands in for every device here, so a tight budget breaks: exit 1, the worst named, a replan suggested.
  const tight = hxc(['check', dir, '--telemetry', telemetry, '--max-drift', '1%']);
  assert.equal(tight.code, 1);
  assert.match(tight.stdout, /^FAIL drift \S+: [+-][\d.]+% \(measured/m);
  assert.match(tight.stderr, /HXC3002: .*budget\(s\) broken: .*fix: replan from what was measured: hxc replan \S+ --telemetry/);
  // Bad input: one line, exit 2.
  const half = hxc(['check', dir, '--max-drift', '20%']);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /--max-drift needs --telemetry FILE/);
  const notTelemetry = path.join(path.dirname(dir), 'x.json');
  fs.writeFileSync(notTelemetry, '{"format": "hxc-plan/v1"}');
  const wrong = hxc(['check', dir, '--telemetry', notTelemetry, '--max-drift', '20%']);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /HXC2502: .*\$\.format: expected "hxc-telemetry\/v1"/);
  // The telemetry says which plan it measured: another plan's is refused, so is a run at other dims.
  const sha = fs.readFileSync(path.join(dir, 'plan.sha256'), 'utf8').split(/\s+/)[0]!;
  assert.equal(t.plan_sha256, sha);
  const other = path.join(path.dirname(dir), 'other.json');
  fs.writeFileSync(other, JSON.stringify({ ...t, plan_sha256: 'f'.repeat(64) }));
  const foreign = hxc(['check', dir, '--telemetry', other, '--max-drift', '100000%']);
  assert.equal(foreign.code, 2, foreign.stdout);
  assert.match(foreign.stderr, /HXC2502: .*is the telemetry of another plan \(its plan\.json sha256 ffffffffffff…/);
  assert.equal(foreign.stderr.trim().split('\n').length, 1);
  const elsewhere = path.join(path.dirname(dir), 'elsewhere.json');
  const batch = Object.keys(plan.dims)[0]!;
  fs.writeFileSync(
    elsewhere,
    JSON.stringify({ ...t, requests: t.requests.map((r: { dims: Record<string, number> }) => ({ ...r, dims: { ...r.dims, [batch]: plan.dims[batch] + 7 } })) }),
  );
  const otherDims = hxc(['check', dir, '--telemetry', elsewhere, '--max-drift', '100000%']);
  assert.equal(otherDims.code, 2, otherDims.stdout);
  assert.match(otherDims.stderr, /HXC2502: .*no request of the telemetry ran at the plan's dims/);
});
