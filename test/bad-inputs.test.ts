import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { encodeModel, valueInfo } from './onnx-builder.js';
import { EXAMPLES, FIXTURES, SHARED, hxc, isOneLineError, tmpDir } from './helpers.js';
import { planHashText } from '../src/plan/read.js';

/** `edit`: applied to a fresh copy of {plan} (or {gpt2}) with plan.sha256 updated, as someone who knows the format would. */
interface Edit {
  path: string[];
  op: 'delete' | 'set';
  value?: unknown;
}
interface Case {
  argv: string[];
  code: string | null;
  match: string;
  edit?: Edit[];
}

/** Each path key, '*' for every key of an object or element of an array. */
function applyEdit(root: unknown, e: Edit): void {
  const walk = (node: unknown, keys: string[]): void => {
    if (node === null || typeof node !== 'object') return;
    const [k, ...rest] = keys;
    const obj = node as Record<string, unknown>;
    const targets = k === '*' ? Object.keys(obj) : [k!];
    for (const t of targets) {
      if (rest.length > 0) walk(obj[t], rest);
      else if (e.op === 'delete') delete obj[t];
      else obj[t] = e.value;
    }
  };
  walk(root, e.path);
}

test('every hostile input in fixtures/bad gets its one line and exit code (or plans, when it is valid)', () => {
  const dir = tmpDir();
  const bad = path.join(FIXTURES, 'bad');
  const { cases } = JSON.parse(fs.readFileSync(path.join(bad, 'cases.json'), 'utf8')) as { cases: Case[] };
  const plan = path.join(dir, 'plan');
  const gpt2 = path.join(dir, 'gpt2');
  assert.equal(hxc(['plan', path.join(FIXTURES, 'models', 'hello_deepa.onnx'), '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--out', plan]).code, 0);
  assert.equal(
    hxc([
      'plan',
      path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'),
      '--topology',
      path.join(EXAMPLES, 'rack-tiny.yaml'),
      '--phase',
      'prefill',
      '--prompt',
      '2',
      '--out',
      gpt2,
    ]).code,
    0,
  );
  cases.forEach((c, k) => {
    let [planK, gpt2K] = [plan, gpt2];
    if (c.edit) {
      [planK, gpt2K] = [path.join(dir, `plan-${k}`), path.join(dir, `gpt2-${k}`)];
      for (const [from, to] of [
        [plan, planK],
        [gpt2, gpt2K],
      ] as const) {
        fs.cpSync(from, to, { recursive: true });
        const p = JSON.parse(fs.readFileSync(path.join(to, 'plan.json'), 'utf8')) as unknown;
        for (const e of c.edit) applyEdit(p, e);
        const text = JSON.stringify(p, null, 1) + '\n';
        fs.writeFileSync(path.join(to, 'plan.json'), text);
        fs.writeFileSync(path.join(to, 'plan.sha256'), planHashText(text));
      }
    }
    const argv = c.argv.map((a) =>
      a
        .replace('{bad}', bad)
        .replace('{fixtures}', FIXTURES)
        .replace('{shared}', SHARED)
        .replace('{out}', path.join(dir, `out-${k}`))
        .replace('{plan}', planK)
        .replace('{gpt2}', gpt2K),
    );
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
  const leaf = (k: number) => ({
    name: `leaf${k}`,
    node: [{ name: `idl${k}`, opType: 'Identity', input: ['c'], output: [`l${k}`] }],
    output: [valueInfo(`l${k}`, 9, [])],
  });
  let g: ReturnType<typeof leaf> = leaf(0);
  for (let k = 1; k < 2000; k++)
    g = {
      name: `g${k}`,
      node: [
        {
          name: `if${k}`,
          opType: 'If',
          input: ['c'],
          output: [`o${k}`],
          attribute: [
            { name: 'then_branch', type: 5, g },
            { name: 'else_branch', type: 5, g: leaf(k) },
          ],
        } as never,
      ],
      output: [valueInfo(`o${k}`, 9, [])],
    };
  fs.writeFileSync(path.join(dir, 'deep.onnx'), encodeModel({ name: 'top', node: g.node, input: [valueInfo('c', 9, [])], output: g.output }));
  const r = hxc(['plan', path.join(dir, 'deep.onnx'), '--out', path.join(dir, 'out')]);
  assert.equal(isOneLineError(r, 'HXC2107'), null);
  assert.match(r.stderr, /nested more than 64 deep/);
});

test('a node named __proto__ is a node like any other: planned, listed in the assignment, and the plan reads back', () => {
  const dir = tmpDir();
  const model = path.join(dir, 'proto.onnx');
  fs.writeFileSync(
    model,
    encodeModel({
      name: 'proto',
      node: [
        { name: '__proto__', opType: 'Relu', input: ['x'], output: ['h'] },
        { name: 'constructor', opType: 'Neg', input: ['h'], output: ['y'] },
      ],
      input: [valueInfo('x', 1, [4])],
      output: [valueInfo('y', 1, [4])],
    }),
  );
  const out = path.join(dir, 'plan');
  const r = hxc(['plan', model, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const p = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as { assignment: Record<string, string> };
  assert.deepEqual(Object.keys(p.assignment).sort(), ['__proto__', 'constructor']);
  for (const cmd of [['simulate'], ['check', '--max-latency', '1s'], ['report']])
    assert.equal(hxc([cmd[0]!, out, ...cmd.slice(1)]).code, 0, `hxc ${cmd[0]} reads it back`);
  const run = hxc(['run', out, '--check']);
  assert.equal(run.code, 0, run.stderr);
});

test('two nodes writing one value are refused at once, even when one of them is dead code (onnxruntime refuses the model too)', () => {
  const dir = tmpDir();
  const model = path.join(dir, 'twice.onnx');
  fs.writeFileSync(
    model,
    encodeModel({
      name: 'twice',
      node: [
        { name: 'a', opType: 'Relu', input: ['x'], output: ['y'] },
        { name: 'b', opType: 'Neg', input: ['x'], output: ['y'] },
      ],
      input: [valueInfo('x', 1, [4])],
      output: [valueInfo('y', 1, [4])],
    }),
  );
  const r = hxc(['plan', model, '--out', path.join(dir, 'plan')]);
  assert.equal(isOneLineError(r, 'HXC2205'), null);
  assert.match(r.stderr, /value "y" is produced by both node "a" and node "b"/);
  assert.ok(!fs.existsSync(path.join(dir, 'plan')));
});
