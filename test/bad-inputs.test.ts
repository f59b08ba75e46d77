import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { encodeModel, valueInfo } from './onnx-builder.js';
import { EXAMPLES, FIXTURES, SHARED, hxc, isOneLineError, tmpDir } from './helpers.js';

interface Case { argv: string[]; code: string | null; match: string }

test('every hostile input in fixtures/bad gets its one line and exit code (or plans, when it is valid)', () => {
  const dir = tmpDir();
  const bad = path.join(FIXTURES, 'bad');
  const { cases } = JSON.parse(fs.readFileSync(path.join(bad, 'cases.json'), 'utf8')) as { cases: Case[] };
  const plan = path.join(dir, 'plan');
  const gpt2 = path.join(dir, 'gpt2');
  assert.equal(hxc(['plan', path.join(FIXTURES, 'models', 'hello_deepa.onnx'), '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--out', plan]).code, 0);
  assert.equal(hxc(['plan', path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--phase', 'prefill', '--prompt', '2', '--out', gpt2]).code, 0);
  cases.forEach((c, k) => {
    const argv = c.argv.map((a) => a.replace('{bad}', bad).replace('{fixtures}', FIXTURES).replace('{shared}', SHARED).replace('{out}', path.join(dir, `out-${k}`)).replace('{plan}', plan).replace('{gpt2}', gpt2));
    const r = hxc(argv);
    const what = `case ${k}: hxc ${c.argv.join(' ')}`;
    if (c.code === null) {
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      return;
    }
    assert.equal(isOneLineError(r, c.code), null, what);
    assert.match(r.stderr, new RegExp(c.match), what);
    assert.match(r.stderr, /\(fix: .+\)\n?$/, `${what}: says how to fix it`);
    if (c.argv.includes('{out}')) assert.ok(!fs.existsSync(path.join(dir, `out-${k}`)), `${what}: nothing written`);
  });
});

test('If/Loop bodies nested 2000 deep are refused in one line, not a stack overflow', () => {
  const dir = tmpDir();
  const leaf = (k: number) => ({ name: `leaf${k}`, node: [{ name: `idl${k}`, opType: 'Identity', input: ['c'], output: [`l${k}`] }], output: [valueInfo(`l${k}`, 9, [])] });
  let g: ReturnType<typeof leaf> = leaf(0);
  for (let k = 1; k < 2000; k++) g = { name: `g${k}`, node: [{ name: `if${k}`, opType: 'If', input: ['c'], output: [`o${k}`], attribute: [{ name: 'then_branch', type: 5, g }, { name: 'else_branch', type: 5, g: leaf(k) }] } as never], output: [valueInfo(`o${k}`, 9, [])] };
  fs.writeFileSync(path.join(dir, 'deep.onnx'), encodeModel({ name: 'top', node: g.node, input: [valueInfo('c', 9, [])], output: g.output }));
  const r = hxc(['plan', path.join(dir, 'deep.onnx'), '--out', path.join(dir, 'out')]);
  assert.equal(isOneLineError(r, 'HXC2107'), null);
  assert.match(r.stderr, /nested more than 64 deep/);
});
