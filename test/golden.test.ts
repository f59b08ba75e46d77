// Golden pass dumps: `hxc plan --dump-dir` on the bundled GPT-2 (KV cache) on the tiny example rack
// writes one stable text file per pass; each is compared with fixtures/golden/. A change to what a
// pass computes shows up here as a diff to read; once read, `npm run golden` accepts it (it runs
// this file with --update, which writes the dumps instead of comparing them).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { EXAMPLES, FIXTURES, hxc, tmpDir } from './helpers.js';

const GOLDEN = path.join(FIXTURES, 'golden', 'gpt2_tiny_kv.rack-tiny');
const UPDATE = process.argv.includes('--update');

/** Where the model and rack were, relative to the plan folder, depends on where the test ran. */
const normalise = (text: string): string => text.replace(/"path_from_plan": "[^"]*"/g, '"path_from_plan": "<relative path>"');

/** The first line where two texts differ, with a line of context each side. */
function firstDifference(want: string, got: string): string {
  const a = want.split('\n');
  const b = got.split('\n');
  let k = 0;
  while (k < a.length && k < b.length && a[k] === b[k]) k++;
  return `line ${k + 1}:\n  golden: ${a.slice(k, k + 2).join('\n          ')}\n  now:    ${b.slice(k, k + 2).join('\n          ')}`;
}

test('every pass dumps what it did on the bundled GPT-2, as the golden files say (npm run golden accepts a read diff)', () => {
  const dir = tmpDir();
  const r = hxc([
    'plan',
    path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'),
    '--topology',
    path.join(EXAMPLES, 'rack-tiny.yaml'),
    '--out',
    path.join(dir, 'plan'),
    '--dump-dir',
    path.join(dir, 'dump'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  const dumps = fs
    .readdirSync(path.join(dir, 'dump'))
    .filter((f) => f.endsWith('.txt'))
    .sort();
  assert.ok(dumps.length >= 14, `one dump per pass (${dumps.join(', ')})`);
  if (UPDATE) {
    fs.rmSync(GOLDEN, { recursive: true, force: true });
    fs.mkdirSync(GOLDEN, { recursive: true });
    for (const f of dumps) fs.writeFileSync(path.join(GOLDEN, f), normalise(fs.readFileSync(path.join(dir, 'dump', f), 'utf8')));
    return;
  }
  assert.ok(fs.existsSync(GOLDEN), `${GOLDEN} is missing: run npm run golden`);
  assert.deepEqual(dumps, fs.readdirSync(GOLDEN).sort(), 'the same passes dump');
  const changed: string[] = [];
  for (const f of dumps) {
    const got = normalise(fs.readFileSync(path.join(dir, 'dump', f), 'utf8'));
    const want = fs.readFileSync(path.join(GOLDEN, f), 'utf8');
    if (got !== want) changed.push(`${f}: ${firstDifference(want, got)}`);
  }
  assert.deepEqual(changed, [], `pass dumps changed (read the diff, then npm run golden):\n${changed.join('\n')}`);
});
