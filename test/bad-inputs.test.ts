import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { encodeModel, tinyGraph, valueInfo, writeExternalAddModel } from './onnx-builder.js';
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
    tinyGraph('proto', [
      { name: '__proto__', opType: 'Relu', input: ['x'], output: ['h'] },
      { name: 'constructor', opType: 'Neg', input: ['h'], output: ['y'] },
    ]),
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
    tinyGraph('twice', [
      { name: 'a', opType: 'Relu', input: ['x'], output: ['y'] },
      { name: 'b', opType: 'Neg', input: ['x'], output: ['y'] },
    ]),
  );
  const r = hxc(['plan', model, '--out', path.join(dir, 'plan')]);
  assert.equal(isOneLineError(r, 'HXC2205'), null);
  assert.match(r.stderr, /value "y" is produced by both node "a" and node "b"/);
  assert.ok(!fs.existsSync(path.join(dir, 'plan')));
});

test('a node that breaks its operator with numbers known for sure (MatMul inner dims, a Conv stride or a pool kernel of 0, Cast to an unknown type, a Softmax axis past the rank, an Einsum output label no input has, a Slice step of 0, ConstantOfShape or Expand to a negative dim, a value past 2^53 bytes) is refused when planned, naming the node, not when run', () => {
  const dir = tmpDir();
  const f32 = 1;
  const cases = [
    {
      name: 'matmul',
      node: [{ name: 'mm', opType: 'MatMul', input: ['a', 'b'], output: ['y'] }],
      input: [valueInfo('a', f32, [1, 3, 8, 8]), valueInfo('b', f32, [5, 7])],
      output: [valueInfo('y', f32, [1, 3, 8, 7])],
      match: /node "mm": MatMul of \[1, 3, 8, 8\] by \[5, 7\]: the inner dims 8 and 5 differ/,
    },
    {
      name: 'conv',
      node: [{ name: 'cv', opType: 'Conv', input: ['x', 'w'], output: ['y'], attribute: [{ name: 'strides', type: 7, ints: [0, 1] }] }],
      input: [valueInfo('x', f32, [1, 2, 8, 8]), valueInfo('w', f32, [4, 2, 3, 3])],
      output: [valueInfo('y', f32, [1, 4, 6, 6])],
      match: /node "cv": Conv strides \[0, 1\]: each must be at least 1/,
    },
    {
      name: 'pool',
      node: [{ name: 'mp', opType: 'MaxPool', input: ['x'], output: ['y'], attribute: [{ name: 'kernel_shape', type: 7, ints: [0, 2] }] }],
      input: [valueInfo('x', f32, [1, 2, 8, 8])],
      output: [valueInfo('y', f32, [1, 2, 8, 7])],
      match: /node "mp": MaxPool kernel_shape \[0, 2\]: each must be at least 1/,
    },
    {
      name: 'cast',
      node: [{ name: 'ct', opType: 'Cast', input: ['x'], output: ['y'], attribute: [{ name: 'to', type: 2, i: 9999 }] }],
      input: [valueInfo('x', f32, [4])],
      output: [valueInfo('y', f32, [4])],
      match: /node "ct": Cast to=9999 is not an ONNX data type/,
    },
    {
      name: 'softmax',
      node: [{ name: 'sm', opType: 'Softmax', input: ['x'], output: ['y'], attribute: [{ name: 'axis', type: 2, i: 99 }] }],
      input: [valueInfo('x', f32, [2, 4])],
      output: [valueInfo('y', f32, [2, 4])],
      match: /node "sm": Softmax axis 99 is not an axis of its rank-2 input/,
    },
    {
      name: 'einsum',
      node: [{ name: 'es', opType: 'Einsum', input: ['x', 'w'], output: ['y'], attribute: [{ name: 'equation', type: 3, s: Buffer.from('ij,jk->il') }] }],
      input: [valueInfo('x', f32, [2, 3]), valueInfo('w', f32, [3, 4])],
      output: [valueInfo('y', f32, [2, 4])],
      match: /node "es": Einsum output label l is not an input label/,
    },
    {
      name: 'slice',
      node: [{ name: 'sl', opType: 'Slice', input: ['x', 'starts', 'ends', 'axes', 'steps'], output: ['y'] }],
      input: [valueInfo('x', f32, [8])],
      output: [valueInfo('y', f32, [4])],
      initializer: ['starts', 'ends', 'axes', 'steps'].map((name, k) => ({ name, dataType: 7, dims: [1], int64Data: [[0, 4, 0, 0][k]!] })),
      match: /node "sl": Slice step 0 on axis 0: a step must not be 0/,
    },
    {
      name: 'constant-of-shape',
      node: [
        { name: 'cs', opType: 'ConstantOfShape', input: ['s'], output: ['z'] },
        { name: 'ad', opType: 'Add', input: ['x', 'z'], output: ['y'] },
      ],
      input: [valueInfo('x', f32, [4])],
      output: [valueInfo('y', f32, [4])],
      initializer: [{ name: 's', dataType: 7, dims: [1], int64Data: [-7] }],
      match: /node "cs": ConstantOfShape of shape \[-7\]: dim 0 is below 0/,
    },
    {
      name: 'expand-negative',
      node: [{ name: 'xp', opType: 'Expand', input: ['x', 's'], output: ['y'] }],
      input: [valueInfo('x', f32, [1])],
      output: [valueInfo('y', f32, [4])],
      initializer: [{ name: 's', dataType: 7, dims: [2], int64Data: [2, -3] }],
      match: /node "xp": Expand to shape \[2, -3\]: dim 1 is below 0/,
    },
    {
      name: 'past-2-53-bytes',
      node: [
        { name: 'ex', opType: 'Expand', input: ['x', 's'], output: ['z'] },
        { name: 'rs', opType: 'ReduceSum', input: ['z'], output: ['y'], attribute: [{ name: 'keepdims', type: 2, i: 0 }] },
      ],
      input: [valueInfo('x', f32, [1])],
      output: [valueInfo('y', f32, [])],
      initializer: [{ name: 's', dataType: 7, dims: [3], int64Data: [1e9, 1e9, 1e5] }],
      match: /node "ex": output "z" would be \[1000000000, 1000000000, 100000\] float32, 4\.00e\+23 bytes: past 2\^53 bytes/,
    },
  ];
  for (const c of cases) {
    const model = path.join(dir, `${c.name}.onnx`);
    fs.writeFileSync(
      model,
      encodeModel({ name: c.name, node: c.node as never, input: c.input, output: c.output, initializer: 'initializer' in c ? c.initializer : [] }),
    );
    const r = hxc(['plan', model, '--out', path.join(dir, `plan-${c.name}`)]);
    assert.equal(isOneLineError(r, 'HXC2107'), null, c.name);
    assert.match(r.stderr, c.match, c.name);
  }
});

test('--dim: a name the model does not have is warned of once (HXC1110), a dim bound to two values is refused; --routing for a model without MoE layers is warned of (HXC1111)', () => {
  const dir = tmpDir();
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const typo = hxc(['plan', model, '--dim', 'batch_sise=2', '--out', path.join(dir, 'a')]);
  assert.equal(typo.code, 0, typo.stderr);
  const warned = typo.stderr.split('\n').filter((l) => l.includes('HXC1110'));
  assert.equal(warned.length, 1, typo.stderr);
  assert.match(warned[0]!, /--dim batch_sise: the model's inputs and outputs have no dim of that name \(did you mean batch_size\?\)/);
  // A name near none of the model's: its dims are listed.
  const far = hxc(['plan', model, '--dim', 'tokens=2', '--out', path.join(dir, 'far')]);
  assert.match(far.stderr, /--dim tokens: the model's inputs and outputs have no dim of that name \(theirs: batch_size, /);
  const twice = hxc(['plan', model, '--dim', 'batch_size=2,batch_size=3', '--out', path.join(dir, 'b')]);
  assert.equal(isOneLineError(twice, 'HXC2206'), null);
  assert.match(twice.stderr, /dim batch_size is bound twice, to 2 and to 3/);
  const same = hxc(['plan', model, '--dim', 'batch_size=2', '--dim', 'batch_size=2', '--out', path.join(dir, 'c')]);
  assert.equal(same.code, 0, same.stderr);
  assert.ok(!same.stderr.includes('HXC1110'), same.stderr);
  // A routing trace given for a model with no MoE layer is said to route nothing.
  const routing = path.join(SHARED, 'models', 'mixtral_tiny_moe_kv.expert_routing.json');
  const unrouted = hxc(['plan', model, '--routing', routing, '--out', path.join(dir, 'd')]);
  assert.equal(unrouted.code, 0, unrouted.stderr);
  assert.match(
    unrouted.stderr,
    /HXC1111: .*mixtral_tiny_moe_kv\.expert_routing\.json: given with --routing, but the model has no MoE layer: it routes nothing/,
  );
});

test('a delta.json that does not follow hxc-delta/v1 (plan.sha256 does not cover it) is refused by hxc report in one line', () => {
  const dir = tmpDir();
  const plan = path.join(dir, 'plan');
  assert.equal(hxc(['plan', path.join(FIXTURES, 'models', 'hello_deepa.onnx'), '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--out', plan]).code, 0);
  fs.writeFileSync(path.join(plan, 'delta.json'), JSON.stringify({ format: 'hxc-delta/v1' }));
  const r = hxc(['report', plan, '--out', path.join(dir, 'r.html')]);
  assert.equal(isOneLineError(r, 'HXC2601'), null);
  assert.match(r.stderr, /delta\.json: \$: delta\.json does not follow hxc-delta\/v1: must have required property/);
  assert.ok(!fs.existsSync(path.join(dir, 'r.html')));
});

test('running a plan made without its weights file says so (HXC1101 when planned; when run, where the weights are missing and how to fix it, not --dim)', () => {
  const dir = tmpDir();
  const model = writeExternalAddModel(dir);
  fs.rmSync(path.join(path.dirname(model), 'w.bin'));
  const plan = path.join(dir, 'plan');
  const planned = hxc(['plan', model, '--out', plan]);
  assert.equal(planned.code, 0, planned.stderr);
  assert.match(planned.stderr, /HXC1101/);
  const r = hxc(['run', plan]);
  assert.equal(isOneLineError(r, 'HXC2601'), null);
  assert.match(
    r.stderr,
    /program programs\/cpu0\/000\.onnx reads weights from weights-0-w\.bin, which the plan folder does not hold \(fix: the model was planned without its weights file/,
  );
});

test('the serving planner’s options without --phase serve are refused in one line, not dropped (--workload, --disaggregate)', () => {
  const dir = tmpDir();
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const cases: [string, string][] = [
    ['--workload', path.join(FIXTURES, 'workloads', 'chat.yaml')],
    ['--disaggregate', 'on'],
  ];
  for (const [flag, value] of cases) {
    const out = path.join(dir, flag.slice(2));
    const r = hxc(['plan', model, flag, value, '--out', out]);
    assert.equal(isOneLineError(r, 'HXC2002'), null, flag);
    assert.match(r.stderr, new RegExp(`${flag}: ${flag} is an option of --phase serve \\(fix: add --phase serve, or drop ${flag}\\)`));
    assert.ok(!fs.existsSync(out), 'nothing written');
  }
});

test('--phase on a model with no sequence or cache dims is said to bind nothing (HXC1110); --tensor-parallel with more parts than the rack has devices is refused; a KV capacity below --min-sequences is warned of once, with the count plan.json gives', () => {
  const dir = tmpDir();
  const cnn = hxc([
    'plan',
    path.join(FIXTURES, 'models', 'hello_deepa.onnx'),
    '--topology',
    path.join(EXAMPLES, 'rack-tiny.yaml'),
    '--phase',
    'decode',
    '-o',
    path.join(dir, 'a'),
  ]);
  assert.equal(cnn.code, 0, cnn.stderr);
  assert.match(cnn.stderr, /HXC1110: --phase: decode binds nothing: the model has no sequence or past-length dim/);
  const gpt2 = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const many = hxc(['plan', gpt2, '--topology', path.join(EXAMPLES, 'rack-8gpu.yaml'), '--tensor-parallel', '16', '-o', path.join(dir, 'b')]);
  assert.equal(isOneLineError(many, 'HXC2403'), null);
  assert.match(many.stderr, /16 parts need 16 devices, and the rack has 9 \(fix: give at most 9 \(its NVLink-class group has 8: gpu0, /);
  assert.ok(!fs.existsSync(path.join(dir, 'b')));
  // gpt2_tiny on rack-tiny has two stage cuts, each weighed with its own count: one warning, the shipped plan's.
  const out = path.join(dir, 'c');
  const kv = hxc([
    'plan',
    gpt2,
    '--topology',
    path.join(EXAMPLES, 'rack-tiny.yaml'),
    '--phase',
    'decode',
    '--context',
    '255',
    '--batch',
    '4',
    '--min-sequences',
    '200000',
    '-o',
    out,
    '--json',
  ]);
  assert.equal(kv.code, 0, kv.stderr);
  const warned = kv.stderr.split('\n').filter((l) => l.includes('HXC1107'));
  assert.equal(warned.length, 1, kv.stderr);
  const sequences = (JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as { estimate: { kv: { sequences: number } } }).estimate.kv.sequences;
  assert.match(warned[0]!, new RegExp(`the KV cache holds ${sequences} sequences of 255 tokens, fewer than the 200000 asked`));
});
