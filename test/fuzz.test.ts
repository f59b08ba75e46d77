import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, reportTable } from '../src/fuzz/main.js';

test('fuzz: 300 mutated models, graphs, racks, traces, telemetry, plan directories, inputs and flags — every outcome a plan, one clear line, or a budget', async () => {
  const report = await fuzz({ cases: 300, seed: 20261201, jobs: 2, timeout_s: 60 });
  const summary = report.findings
    .slice(0, 5)
    .map(
      (f) =>
        `#${f.case.index} ${f.case.target} (${f.case.what}) → ${f.outcome}: hxc ${f.case.argv.join(' ')} :: ${f.stderr.split('\n').find((l) => l.trim()) ?? ''}`,
    )
    .join('\n');
  assert.equal(report.findings.length, 0, `\n${reportTable(report)}${summary}`);
  // The harness reaches every target and sees both outcomes a good input and a bad one have.
  for (const [target, counts] of Object.entries(report.counts)) assert.ok(Object.values(counts).reduce((a, b) => a + b, 0) > 0, `${target} was fuzzed`);
  const all = Object.values(report.counts).reduce((s, c) => ({ ok: s.ok + c.ok, refused: s.refused + c.refused }), { ok: 0, refused: 0 });
  assert.ok(all.ok > 20 && all.refused > 100, JSON.stringify(all));
});
