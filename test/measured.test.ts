// The fidelity table's data (issue 17): public measured LLM inference results, each row with its
// source and the quoted table row it was copied from. hxc's estimates are compared against it by
// the benchmark; here, the rows themselves are held to their format.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { FIXTURES } from './helpers.js';

interface Row {
  id: number;
  model: string;
  hardware: string;
  gpu_norm: string;
  gpu_count: number;
  precision: string;
  batch_size: number | string;
  tp: number | null;
  metric: string;
  value: number;
  unit: string;
  regime: string;
  source: string;
  quote: string;
}

test('fixtures/measured: every row is a finite positive measurement with a unit, a regime, a source and its quote', () => {
  const file = path.join(FIXTURES, 'measured', 'llm_measured.json');
  const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { format: string; rows: Row[] };
  assert.equal(data.format, 'hxc-measured/v1');
  assert.ok(data.rows.length >= 100, `${data.rows.length} rows`);
  const ids = new Set<number>();
  const units = new Set(['ms', 'ms/token', 'tokens/s', 'output tokens/s', 'output tokens/s/GPU']);
  for (const r of data.rows) {
    const where = `row ${r.id} (${r.model} on ${r.hardware})`;
    assert.ok(!ids.has(r.id), `${where}: id repeated`);
    ids.add(r.id);
    assert.ok(Number.isFinite(r.value) && r.value > 0, `${where}: value ${r.value}`);
    assert.ok(units.has(r.unit), `${where}: unit ${r.unit}`);
    assert.ok(Number.isInteger(r.gpu_count) && r.gpu_count >= 1, `${where}: gpu_count`);
    for (const k of ['model', 'hardware', 'gpu_norm', 'metric', 'regime', 'source', 'quote'] as const)
      assert.ok(typeof r[k] === 'string' && r[k].length > 0, `${where}: ${k} missing`);
    assert.match(r.source, /^(https?:\/\/|github:[\w.-]+\/[\w.-]+:)/, `${where}: source is a URL or github:owner/repo:path`);
  }
  // The grid the issue asks for: two GPU generations, batch 1–8, tensor parallelism 1–8.
  const gpus = new Set(data.rows.map((r) => r.gpu_norm.split('-')[0]));
  assert.ok(gpus.has('A100') && gpus.has('H100'), [...gpus].join(', '));
  for (const b of [1, 2, 4, 8])
    assert.ok(
      data.rows.some((r) => r.batch_size === b),
      `batch ${b}`,
    );
  for (const tp of [1, 2, 4, 8])
    assert.ok(
      data.rows.some((r) => r.tp === tp),
      `tp ${tp}`,
    );
});
