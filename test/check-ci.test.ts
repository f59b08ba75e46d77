// hxc check for CI (issue 12): JUnit XML with one testcase per budget, GitHub workflow annotations.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runPipeline } from '../src/cli/run-passes.js';
import { EXAMPLES, FIXTURES, hxc, isOneLineError, tmpDir } from './helpers.js';

/** A small XML well-formedness check: declaration, balanced elements, quoted attributes, only the five entities. */
function wellFormed(text: string): { root: string; elements: { name: string; attrs: Record<string, string> }[] } {
  const entity = /&(amp|lt|gt|quot|apos);/g;
  const clean = (t: string, where: string): void => assert.ok(!/[<&]/.test(t.replace(entity, '')), `raw < or & in ${where}: ${t}`);
  assert.ok(text.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n'));
  let rest = text.slice(text.indexOf('?>') + 2);
  const stack: string[] = [];
  const elements: { name: string; attrs: Record<string, string> }[] = [];
  let root = '';
  while (rest.length > 0) {
    const lt = rest.indexOf('<');
    if (lt < 0) {
      clean(rest, 'text');
      assert.equal(rest.trim(), '');
      break;
    }
    clean(rest.slice(0, lt), 'text');
    const gt = rest.indexOf('>', lt);
    assert.ok(gt > lt, 'unclosed tag');
    const tag = rest.slice(lt + 1, gt);
    rest = rest.slice(gt + 1);
    if (tag.startsWith('/')) {
      assert.equal(stack.pop(), tag.slice(1), 'mismatched end tag');
      continue;
    }
    const m = /^([A-Za-z_][\w.-]*)((?:\s+[A-Za-z_][\w.-]*="[^"]*")*)\s*(\/?)$/.exec(tag);
    assert.ok(m, `malformed tag <${tag}>`);
    const attrs: Record<string, string> = {};
    for (const a of m[2]!.matchAll(/([A-Za-z_][\w.-]*)="([^"]*)"/g)) {
      clean(a[2]!, `attribute ${a[1]}`);
      attrs[a[1]!] = a[2]!;
    }
    elements.push({ name: m[1]!, attrs });
    if (stack.length === 0) root = m[1]!;
    if (!m[3]) stack.push(m[1]!);
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  return { root, elements };
}

test('hxc check --junit: valid XML, one testcase per budget, failures counted; --format github annotates the broken ones', async () => {
  // A folder name with XML's special characters: it lands in the file attributes, escaped.
  const dir = path.join(tmpDir(), 'a&b<c>"d\'');
  await runPipeline(
    {
      model_path: path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'),
      topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'),
      dims: {},
      flags: { out: dir, phase: 'prefill', prompt: 32 },
    },
    null,
  );
  const plan = JSON.parse(fs.readFileSync(path.join(dir, 'plan.json'), 'utf8'));
  const junit = path.join(path.dirname(dir), 'check.xml');
  const r = hxc(['check', dir, '--max-latency', '1us', '--min-throughput', '1', '--max-memory', '90%', '--junit', junit, '--format', 'github']);
  assert.equal(r.code, 1, 'a broken budget fails the check');
  const memoryBudgets = plan.devices.filter((d: { memory: { total_bytes: number } }) => d.memory.total_bytes > 0).length;
  const { root, elements } = wellFormed(fs.readFileSync(junit, 'utf8'));
  assert.equal(root, 'testsuite');
  const suite = elements[0]!;
  const cases = elements.filter((e) => e.name === 'testcase');
  assert.equal(cases.length, 2 + memoryBudgets, 'latency, throughput and one memory budget per device holding bytes');
  assert.equal(suite.attrs.tests, String(cases.length));
  assert.equal(suite.attrs.failures, '1');
  assert.deepEqual(
    elements.filter((e) => e.name === 'failure').map((e) => e.attrs.type),
    ['budget'],
  );
  assert.ok(
    cases.every((c) => c.attrs.file!.includes('a&amp;b&lt;c&gt;&quot;d&apos;')),
    'the plan path, escaped',
  );
  // GitHub: one ::error per broken budget, properties escaped (the title's colon).
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^::error file=.*plan\.json,title=hxc budget%3A latency::latency [\d.]+ms, budget 1us$/);
  // A second run replaces its own file; a file hxc did not write is refused.
  assert.equal(hxc(['check', dir, '--max-latency', '10s', '--junit', junit]).code, 0);
  assert.match(fs.readFileSync(junit, 'utf8'), /tests="1" failures="0"/);
  const foreign = path.join(path.dirname(dir), 'theirs.xml');
  fs.writeFileSync(foreign, '<report/>');
  const refused = hxc(['check', dir, '--max-latency', '10s', '--junit', foreign]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /HXC2004/);
  assert.equal(fs.readFileSync(foreign, 'utf8'), '<report/>');
});

test('hxc check MODEL plans as hxc plan does: an LLM without --phase for its prefill, and --min-sequences asked of the planner as well as checked', () => {
  const dir = tmpDir();
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const rack = path.join(EXAMPLES, 'rack-8gpu.yaml');
  const planned = hxc(['plan', model, '--topology', rack, '--out', path.join(dir, 'p'), '--json']);
  assert.equal(planned.code, 0, planned.stderr);
  const est = JSON.parse(planned.stdout).estimate;
  const checked = hxc(['check', model, '--topology', rack, '--max-latency', '1s', '--json']);
  assert.equal(checked.code, 0, checked.stderr);
  const latency = JSON.parse(checked.stdout).budgets.find((b: { name: string }) => b.name === 'latency');
  assert.equal(Number.parseFloat(latency.actual), Number((est.latency_s * 1e3).toPrecision(6)), 'the latency of the plan hxc plan ships');
  // A KV capacity the plan reaches only when asked: hxc plan raises it, and so does hxc check.
  const tiny = path.join(EXAMPLES, 'rack-tiny.yaml');
  const decode = ['--phase', 'decode', '--batch', '8'];
  const free = hxc(['plan', model, '--topology', tiny, ...decode, '--out', path.join(dir, 'd'), '--json']);
  assert.equal(free.code, 0, free.stderr);
  const asked = JSON.parse(free.stdout).estimate.kv.sequences + 1;
  const lifted = hxc(['plan', model, '--topology', tiny, ...decode, '--min-sequences', String(asked), '--out', path.join(dir, 'l'), '--json']);
  assert.equal(lifted.code, 0, lifted.stderr);
  const reached = JSON.parse(lifted.stdout).estimate.kv.sequences;
  const gate = hxc(['check', model, '--topology', tiny, ...decode, '--min-sequences', String(asked), '--json']);
  assert.equal(gate.code, reached >= asked ? 0 : 1, gate.stderr);
  assert.equal(JSON.parse(gate.stdout).budgets.find((b: { name: string }) => b.name === 'KV sequences').actual, String(reached));
});

test('hxc check prints a broken figure to the digit that breaks it (its own printed figure given back as the budget too), a gap budget in the unit of the gap, and refuses a fractional byte count, a --min-sequences that is no count and a share past 100%', () => {
  const dir = tmpDir();
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const out = path.join(dir, 'p');
  const planned = hxc(['plan', model, '--out', out, '--json']);
  assert.equal(planned.code, 0, planned.stderr);
  const est = JSON.parse(planned.stdout).estimate;
  // A budget a hair below the latency: broken, and the printed figure shows it above the budget.
  const budget = `${Math.floor(est.latency_s * 1e7) / 1e4}ms`;
  const r = hxc(['check', out, '--max-latency', budget]);
  assert.equal(r.code, est.latency_s * 1e3 > Number.parseFloat(budget) ? 1 : 0);
  const shown = /FAIL latency: ([\d.]+)ms/.exec(r.stdout);
  if (r.code === 1) assert.ok(shown && Number.parseFloat(shown[1]!) > Number.parseFloat(budget), r.stdout);
  const gap = hxc(['check', out, '--max-gap', '0.0001']);
  assert.match(gap.stdout, /gap to lower bound: [\d.]+% \(budget 0\.01%\)/);
  assert.equal(isOneLineError(hxc(['check', out, '--max-memory', '0.5']), 'HXC2002'), null);
  // The printed figure given back as the budget: still broken, and printed to the digit that shows it.
  const printed = hxc(['check', out, '--max-latency', '1s']);
  const said = /ok {3}latency: ([\d.]+ms)/.exec(printed.stdout)![1]!;
  const again = hxc(['check', out, '--max-latency', said]);
  let rounded = 0; // figures whose printed digits fall on the budget's side (this plan has both)
  if (est.latency_s * 1e3 > Number.parseFloat(said)) {
    rounded++;
    assert.equal(again.code, 1, again.stdout);
    const figure = /FAIL latency: ([\d.]+)ms/.exec(again.stdout)![1]!;
    assert.notEqual(`${figure}ms`, said, 'the broken figure is not printed as the budget it breaks');
    assert.ok(Number.parseFloat(figure) > Number.parseFloat(said));
  }
  const rate = Number(est.throughput_per_s.toPrecision(7)) > est.throughput_per_s ? est.throughput_per_s.toPrecision(7) : null;
  if (rate !== null) {
    rounded++;
    const thr = hxc(['check', out, '--min-throughput', rate]);
    assert.equal(thr.code, 1, thr.stdout);
    const figure = /FAIL throughput: ([\d.]+)\/s/.exec(thr.stdout)![1]!;
    assert.ok(Number(figure) < Number(rate), `${figure} printed against ${rate}`);
  }
  assert.ok(rounded > 0, 'a printed figure rounded past the plan’s own was tried');
  // Budgets that are not numbers of their kind, or that every plan meets, are bad input.
  for (const bad of [
    ['--min-sequences', 'abc'],
    ['--min-sequences', '-1'],
    ['--min-sequences', '1.5'],
    ['--max-memory', '150%'],
  ])
    assert.equal(isOneLineError(hxc(['check', out, ...bad]), 'HXC2002'), null, bad.join(' '));
});
