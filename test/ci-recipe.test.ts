// The README's CI recipe runs as written: its `npx hxc` lines, on a bundled model and an example rack.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EXAMPLES, FIXTURES, REPO, hxc, tmpDir } from './helpers.js';

test('the README CI recipe: plan, check with JUnit and annotations, the plan kept', () => {
  const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const block = /# \.github\/workflows\/plan\.yml\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'the README holds the workflow');
  const commands = [...block[1]!.matchAll(/^\s*- run: npx hxc (.*)$/gm)].map((m) => m[1]!.trim().split(/\s+/));
  assert.deepEqual(
    commands.map((c) => c[0]),
    ['plan', 'check'],
    'the recipe plans, then checks',
  );
  const cwd = tmpDir();
  // The team's model and rack: a bundled model and an example rack in their places.
  fs.mkdirSync(path.join(cwd, 'models'));
  fs.mkdirSync(path.join(cwd, 'racks'));
  fs.copyFileSync(path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), path.join(cwd, 'models', 'model.onnx'));
  fs.copyFileSync(path.join(EXAMPLES, 'rack-8gpu.yaml'), path.join(cwd, 'racks', 'rack.yaml'));
  const plan = hxc(commands[0]!, { cwd });
  assert.equal(plan.code, 0, plan.stderr);
  assert.ok(fs.existsSync(path.join(cwd, 'hxc-plan', 'plan.json')), 'the plan directory the artifact uploads');
  const check = hxc(commands[1]!, { cwd });
  assert.equal(check.code, 0, `the bundled model holds the recipe's budgets: ${check.stdout}${check.stderr}`);
  assert.match(check.stdout, /^::notice title=hxc budgets::\d+ budget\(s\) hold$/m);
  const junit = fs.readFileSync(path.join(cwd, 'hxc-check.xml'), 'utf8');
  assert.match(junit, /<testsuite name="hxc check" tests="\d+" failures="0"/);
  // The same recipe with a budget the model cannot meet fails the job.
  const strict = commands[1]!.map((a) => (a === '50ms' ? '1us' : a));
  const fail = hxc(strict, { cwd });
  assert.equal(fail.code, 1);
  assert.match(fail.stdout, /^::error file=hxc-plan\/plan\.json,title=hxc budget%3A latency::/m);
});
