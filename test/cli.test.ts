import { GRAPH_NODE, MODEL_GRAPH, splitField } from '../src/import/onnx-fields.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { onnx } from './onnx-builder.js';
import { EXAMPLES, FIXTURES, HXC, hxc, isOneLineError, sharedModels, tmpDir } from './helpers.js';
import fc from 'fast-check';
import { idRuns, mergeRuns, namedFigures, nameList } from '../src/cli/output.js';
import { expandIds } from '../src/topology/yaml-source.js';

test('hxc --help works and lists the commands', () => {
  const r = hxc(['--help']);
  assert.equal(r.code, 0);
  for (const c of ['plan', 'inspect', 'passes', 'topology']) assert.match(r.stdout, new RegExp(`\\b${c}\\b`));
});

test('inspect --json reports the node count each shared model holds', () => {
  for (const file of sharedModels()) {
    const r = hxc(['inspect', file, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    const raw = onnx.ModelProto.decode(fs.readFileSync(file));
    assert.equal(report.counts.nodes, raw.graph!.node!.length, file);
    assert.equal(report.counts.initializers, raw.graph!.initializer!.length, file);
    const histogram = Object.values(report.op_types as Record<string, number>).reduce((a, b) => a + b, 0);
    assert.equal(histogram, report.counts.nodes);
    assert.ok(Array.isArray(report.inputs) && report.inputs.length > 0);
    assert.equal(typeof report.param_bytes, 'number');
  }
});

test('inspect on the bundled GPT-2 gives its inputs, outputs and opset', () => {
  const r = hxc(['inspect', path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), '--json']);
  const report = JSON.parse(r.stdout);
  assert.deepEqual(report.opsets, { 'ai.onnx': 13 });
  assert.deepEqual(report.inputs[0], { name: 'input_ids', dtype: 'int64', shape: ['batch_size', 'sequence_length'] });
  assert.equal(report.outputs.length, 5);
  assert.equal(report.op_types.Gemm, 8);
  assert.equal(report.weights_present, true);
  const text = hxc(['inspect', path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx')]);
  assert.match(text.stdout, /nodes 530 /);
});

test('every example rack prints with hxc topology, as text and JSON', () => {
  const counts: Record<string, number> = { 'rack-8gpu.yaml': 9, 'rack-hetero.yaml': 11, 'rack-tiny.yaml': 2 };
  for (const [file, n] of Object.entries(counts)) {
    const text = hxc(['topology', path.join(EXAMPLES, file)]);
    assert.equal(text.code, 0, text.stderr);
    const json = JSON.parse(hxc(['topology', path.join(EXAMPLES, file), '--json']).stdout);
    assert.equal(json.devices.length, n);
    for (const d of json.devices) assert.match(text.stdout, new RegExp(`\\b${d.id}\\b`));
  }
  const def = hxc(['topology', '--default', '--json']);
  assert.equal(def.code, 0);
  assert.ok(JSON.parse(def.stdout).devices.length >= 2);
});

test('bad inputs: one line on stderr, exit 2, no stack trace', () => {
  const dir = tmpDir();
  const unknownDevice = path.join(dir, 'unknown-device.yaml');
  fs.writeFileSync(unknownDevice, fs.readFileSync(path.join(EXAMPLES, 'rack-tiny.yaml'), 'utf8').replace('connects: [cpu0, gpu0]', 'connects: [cpu0, gpu9]'));
  // A model whose bytes are all there but whose first node starts with a field of wire type 7 (none exists).
  const corruptNode = path.join(dir, 'corrupt-node.onnx');
  const good = fs.readFileSync(path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'));
  const top = splitField(good, MODEL_GRAPH);
  const nodes = splitField(good.subarray(top.starts[0]!, top.ends[0]!), GRAPH_NODE);
  const bad = Buffer.from(good);
  bad[top.starts[0]! + nodes.starts[0]!] = (15 << 3) | 7;
  fs.writeFileSync(corruptNode, bad);
  const badUnit = path.join(dir, 'bad-unit.yaml');
  fs.writeFileSync(badUnit, fs.readFileSync(path.join(EXAMPLES, 'rack-tiny.yaml'), 'utf8').replace('bandwidth: 16GB/s', 'bandwidth: 80 GB/'));
  // A rack none of whose devices runs Gather (or the model's other ops) by its ops lists.
  const noGather = path.join(dir, 'no-gather.yaml');
  fs.writeFileSync(
    noGather,
    fs
      .readFileSync(path.join(EXAMPLES, 'rack-tiny.yaml'), 'utf8')
      .replace('ops: {exclude: [Loop, If, NonZero]}', 'ops: {include: [Add]}')
      .replace('kind: cpu\n', 'kind: cpu\n    ops: {include: [MatMul, Add]}\n'),
  );
  const cases: [string[], string][] = [
    [['plan', path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), '--topology', noGather, '--out', path.join(dir, 'nc')], 'HXC2308'],
    [['inspect', path.join(FIXTURES, 'bad', 'truncated.onnx')], 'HXC2103'],
    [['inspect', path.join(FIXTURES, 'bad', 'not-onnx.onnx')], 'HXC2102'],
    [['inspect', corruptNode], 'HXC2102'],
    [['inspect', path.join(FIXTURES, 'bad', 'empty.onnx')], 'HXC2101'],
    [['inspect', path.join(FIXTURES, 'bad', 'cycle.json')], 'HXC2204'],
    [['inspect', path.join(FIXTURES, 'bad', 'undefined-value.json')], 'HXC2203'],
    [['inspect', path.join(dir, 'does-not-exist.onnx')], 'HXC2001'],
    [['plan', path.join(FIXTURES, 'graphs', 'mlp.json'), '--topology', path.join(dir, 'nope.yaml')], 'HXC2001'],
    [['topology', unknownDevice], 'HXC2304'],
    [['topology', badUnit], 'HXC2303'],
    [['plan', path.join(FIXTURES, 'graphs', 'mlp.json'), '--passes', 'nosuchpass'], 'HXC2401'],
    [['plan', path.join(FIXTURES, 'graphs', 'mlp.json'), '--dim', 'batch'], 'HXC2206'],
    [['inspect'], 'HXC2002'],
    [['plan', 'x.onnx', '--no-such-flag'], 'HXC2002'],
  ];
  for (const [args, code] of cases) {
    const problem = isOneLineError(hxc(args), code);
    assert.equal(problem, null, `${args.join(' ')}: ${problem}`);
  }
  assert.match(hxc(['inspect', corruptNode]).stderr, /node 0 of the graph does not decode as an ONNX NodeProto/);
  assert.match(
    hxc(['plan', path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), '--topology', noGather, '--out', path.join(dir, 'nc')]).stderr,
    /no-gather\.yaml: no device of the rack runs [A-Za-z, ]*Gather[A-Za-z, ]*.*by its ops lists \(the first in the model: node ".*"\).*fix: add the ops to a device's ops\.include/,
  );
  assert.ok(!fs.existsSync(path.join(dir, 'nc')), 'nothing written');
  const where = hxc(['topology', unknownDevice]).stderr;
  assert.match(where, /unknown-device\.yaml:\d+/);
  assert.match(where, /gpu9/);
  // A stderr that cannot be written (a full disk) loses the line, not the status: 2, not a crash's 1.
  if (fs.existsSync('/dev/full')) {
    const full = fs.openSync('/dev/full', 'w');
    try {
      const r = spawnSync(process.execPath, [HXC, 'inspect', path.join(dir, 'does-not-exist.onnx')], { stdio: ['ignore', 'pipe', full] });
      assert.equal(r.status, 2, 'bad input with stderr on /dev/full');
      assert.equal(r.stdout.length, 0);
    } finally {
      fs.closeSync(full);
    }
  }
});

test('plan runs the pipeline; --passes pulls in prerequisites; --strict-passes names the missing one', () => {
  const model = path.join(FIXTURES, 'graphs', 'mlp.json');
  const ok = hxc(['plan', model, '--passes', 'verify']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /added prerequisite passes: import/);
  assert.match(ok.stdout, /pipeline: import,verify/);
  const strict = hxc(['plan', model, '--passes', 'verify', '--strict-passes']);
  assert.equal(isOneLineError(strict, 'HXC2402'), null);
  assert.match(strict.stderr, /needs pass "import"/);
});

test('plan instrumentation: print-after, time-passes, dump-dir with stable dumps', () => {
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const dir = tmpDir();
  const r = hxc(['plan', model, '--out', path.join(dir, 'p1'), '--print-after', 'import', '--time-passes', '--dump-dir', path.join(dir, 'd1')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /----- IR after import -----/);
  assert.match(r.stderr, /%logits = Gemm|= MatMul\(/);
  assert.match(r.stderr, /pass execution timing/);
  // Each pass: its time, its share, and the peak resident memory when it ended (never less than the pass before's).
  const peaks = [...r.stderr.matchAll(/^ +[\d.]+ ms +[\d.]+% +(\d+) MiB {2}(\S+)/gm)].map((m) => ({ mib: Number(m[1]), pass: m[2] }));
  assert.deepEqual(peaks.map((p) => p.pass).slice(0, 3), ['import', 'tp', 'replicate']);
  assert.equal(peaks.at(-1)!.pass, 'total');
  assert.ok(
    peaks.every((p, k) => p.mib > 0 && (k === 0 || p.mib >= peaks[k - 1]!.mib)),
    JSON.stringify(peaks),
  );
  const files = fs
    .readdirSync(path.join(dir, 'd1'))
    .filter((f) => f !== '.hxc-output')
    .sort();
  assert.deepEqual(files.slice(0, 4), ['00-import.txt', '01-tp.txt', '02-replicate.txt', '03-verify.txt']);
  hxc(['plan', model, '--out', path.join(dir, 'p2'), '--dump-dir', path.join(dir, 'd2')]);
  for (const f of files) {
    assert.equal(fs.readFileSync(path.join(dir, 'd1', f), 'utf8'), fs.readFileSync(path.join(dir, 'd2', f), 'utf8'), `${f} is deterministic`);
  }
  assert.deepEqual(
    fs.readdirSync(dir).filter((f) => f.includes('.hxc-tmp-')),
    [],
    'no temporary folder left behind',
  );
});

test('hxc passes lists the registry with prerequisites', () => {
  const r = JSON.parse(hxc(['passes', '--json']).stdout);
  assert.equal(r.passes[0].name, 'import');
  assert.deepEqual(r.passes[1].requires, ['import']);
});

test('hxc check: exit 1 with one line when a budget breaks, 0 when all hold; on a plan or a model', () => {
  const out = path.join(tmpDir(), 'p');
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  assert.equal(hxc(['plan', model, '--topology', path.join(EXAMPLES, 'rack-tiny.yaml'), '--phase', 'prefill', '--prompt', '32', '--out', out]).code, 0);
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
  const latency = plan.estimate.latency_s;
  const pass = hxc(['check', out, '--max-latency', `${(latency * 2e3).toFixed(3)}ms`, '--max-memory', '90%', '--json']);
  assert.equal(pass.code, 0, pass.stderr);
  assert.equal(JSON.parse(pass.stdout).passed, true);
  const fail = hxc(['check', out, '--max-latency', `${(latency * 0.5e3).toFixed(6)}ms`]);
  assert.equal(fail.code, 1);
  assert.match(fail.stdout, /FAIL latency/);
  assert.match(fail.stderr, /HXC3002: 1 budget\(s\) broken: latency/);
  assert.equal(fail.stderr.trim().split('\n').length, 1);
  const fromModel = hxc([
    'check',
    model,
    '--topology',
    path.join(EXAMPLES, 'rack-tiny.yaml'),
    '--phase',
    'decode',
    '--context',
    '128',
    '--min-sequences',
    '1000000000',
  ]);
  assert.equal(fromModel.code, 1, fromModel.stderr);
  assert.match(fromModel.stdout, /FAIL KV sequences/);
  assert.match(fromModel.stderr, /broken: KV sequences \d+ < 1000000000 /, 'a floor is broken from below');
  assert.match(fail.stderr, /broken: latency \S+ > \S+ /, 'a ceiling from above');
  assert.equal(isOneLineError(hxc(['check', out]), 'HXC2002'), null);
});

test('hxc plan shows which pass runs on a terminal, erases it, and prints nothing of it to a pipe or with --json', () => {
  const dir = tmpDir();
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  // script(1) (util-linux, in every Debian) gives the command a pseudo-terminal.
  const tty = (args: string[]): string => {
    const cmd = [process.execPath, HXC, ...args].map((a) => `'${a}'`).join(' ');
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', TERM: 'xterm' } });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    return r.stdout;
  };
  const shown = tty(['plan', model, '--out', path.join(dir, 'a')]);
  const statuses = shown.split('\r').filter((s) => s.includes('(pass '));
  assert.ok(statuses.length >= 13, `a status per pass: ${statuses.length}`);
  assert.match(statuses[0]!, /import \(pass 1 of \d+\)/);
  // Long passes say where they are within them: each candidate the partition judges, the lower pass's steps.
  const partition = statuses.filter((s) => /partition \(pass \d+ of \d+\): /.test(s)).map((s) => s.replace(/^.*\): /, ''));
  assert.ok(partition.includes('judging heft (candidate 1)'), partition.join(' | '));
  assert.ok(
    partition.some((s) => /^judging the chosen plan, /.test(s)),
    partition.join(' | '),
  );
  const counts = partition.flatMap((s) => /\(candidate (\d+)\)$/.exec(s)?.[1] ?? []).map(Number);
  assert.ok(counts.length >= 5 && counts.every((c, k) => k === 0 || c === counts[k - 1]! + 1 || c === 1), `candidates counted: ${counts.join(',')}`);
  assert.ok(statuses.some((s) => /lower \(pass \d+ of \d+\): writing /.test(s)));
  assert.match(shown, /\r\x1b\[2Kmodel /, 'the status line is erased before the summary');
  assert.doesNotMatch(tty(['plan', model, '--out', path.join(dir, 'b'), '--json']), /\(pass \d/, 'no status with --json');
  const piped = hxc(['plan', model, '--out', path.join(dir, 'c')]);
  assert.equal(piped.code, 0);
  assert.doesNotMatch(piped.stderr + piped.stdout, /\(pass \d|\x1b/, 'no status when stderr is not a terminal');
});

test('every shared model binds the dims its dims.json gives (0 included: an empty KV cache at prefill)', () => {
  const files = sharedModels()
    .map((m) => m.replace(/\.onnx$/, '.dims.json'))
    .filter((f) => fs.existsSync(f));
  assert.ok(files.length >= 5, `dims files: ${files.length}`);
  assert.ok(
    files.some((f) => Object.values(JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, number>).includes(0)),
    'a dims file binds a 0',
  );
  for (const f of files) {
    const dims = JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, number>;
    const r = hxc(['plan', f.replace(/\.dims\.json$/, '.onnx'), '--passes', 'profile', ...Object.entries(dims).flatMap(([k, v]) => ['--dim', `${k}=${v}`])]);
    assert.equal(r.code, 0, `${path.basename(f)}: ${r.stderr}`);
  }
});

test('usage, as an audit typed it: an empty --passes, a misspelled option or command, --dim before the model, dims in another order, --min-sequences on a plan without KV state, budgets of 1e400', async () => {
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const empty = hxc(['plan', model, '--passes', ',']);
  assert.equal(isOneLineError(empty, 'HXC2002'), null);
  assert.match(empty.stderr, /--passes names no pass/);
  // commander's suggestion stays on the one line.
  // The hint names the help of the command the error was made in.
  for (const [args, help] of [
    [['plan', model, '--topolgy', 'r.yaml'], 'hxc plan --help'],
    [['plna', model], 'hxc --help'],
  ] as const) {
    const r = hxc([...args]);
    assert.equal(isOneLineError(r, 'HXC2002'), null);
    assert.match(r.stderr, /\(Did you mean (--topology|plan)\?\) \(fix:/);
    assert.ok(r.stderr.includes(`(fix: see \`${help}\`)`), r.stderr);
  }
  // --dim takes one value: the model after it is the model.
  const inspect = hxc(['inspect', '--dim', 'batch_size=4', model, '--json']);
  assert.equal(inspect.code, 0, inspect.stderr);
  // The same bindings in another order record the same plan.
  const dir = tmpDir();
  const plans = [
    ['batch_size=1,sequence_length=8', 'a'],
    ['sequence_length=8,batch_size=1', 'b'],
  ].map(([dims, name]) => {
    const out = path.join(dir, name!);
    const r = hxc(['plan', model, '--dim', dims!, '--dim', 'past_sequence_length=0', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    return fs.readFileSync(path.join(out, 'plan.json'));
  });
  assert.ok(plans[0]!.equals(plans[1]!), 'byte-identical plan.json');
  const noKv = path.join(dir, 'cnn');
  assert.equal(hxc(['plan', path.join(FIXTURES, 'models', 'hello_deepa.onnx'), '--out', noKv]).code, 0);
  const kv = hxc(['check', noKv, '--min-sequences', '5']);
  assert.equal(isOneLineError(kv, 'HXC2002'), null);
  assert.match(kv.stderr, /this plan has no KV state/);
  for (const flag of ['--min-throughput', '--max-gap']) assert.equal(isOneLineError(hxc(['check', noKv, flag, '1e400']), 'HXC2002'), null, flag);
  // NaN for NaN and the same infinity are the same output; anything else against them is not.
  const { compare } = await import('../src/runtime/tensors.js');
  const ort = await import('onnxruntime-node');
  const t = (v: number[]): InstanceType<typeof ort.Tensor> => new ort.Tensor('float32', Float32Array.from(v), [v.length]);
  assert.ok(compare('o', t([Number.NaN, Number.POSITIVE_INFINITY, 1]), t([Number.NaN, Number.POSITIVE_INFINITY, 1])).within_tolerance);
  assert.ok(!compare('o', t([Number.NaN, 1]), t([0, 1])).within_tolerance);
  assert.ok(!compare('o', t([Number.NEGATIVE_INFINITY, 1]), t([Number.POSITIVE_INFINITY, 1])).within_tolerance);
  assert.ok(!compare('o', t([5, 1]), t([Number.NaN, 1])).within_tolerance);
});

test('inspect counts what the plan has: a node whose result reaches no output is left out (HXC1108), and so is the weight only it reads', () => {
  const base = onnx.ModelProto.decode(fs.readFileSync(path.join(FIXTURES, 'models', 'hello_deepa.onnx')));
  const dir = tmpDir();
  const g = base.graph!;
  const first = g.input![0]!.name!;
  // A MatMul of the input by a weight of its own, whose result nothing reads.
  g.initializer!.push({ name: 'dead_w', dataType: 1, dims: [96, 1000], rawData: new Uint8Array(96 * 1000 * 4) });
  g.node!.push({ name: 'dead_mm', opType: 'MatMul', input: [first, 'dead_w'], output: ['dead_out'] });
  const file = path.join(dir, 'dead.onnx');
  fs.writeFileSync(file, onnx.ModelProto.encode(base).finish());
  const inspect = (model: string) => {
    const r = hxc(['inspect', model, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return { stderr: r.stderr, json: JSON.parse(r.stdout) };
  };
  const dead = inspect(file);
  const clean = inspect(path.join(FIXTURES, 'models', 'hello_deepa.onnx'));
  assert.match(dead.stderr, /HXC1108.*1 node\(s\)/);
  assert.deepEqual(dead.json.counts, clean.json.counts);
  assert.ok(clean.json.param_bytes > 0);
  assert.equal(dead.json.param_bytes, clean.json.param_bytes);
});

test('long lists of names print in runs the rack file would expand back: every name once, nothing added', () => {
  assert.deepEqual(idRuns(['gpu2', 'gpu0', 'cpu0', 'gpu1', 'spine', 'gpu5', 'gpu07', 'cpu1']), ['gpu[0-2]', 'gpu5', 'cpu[0-1]', 'spine', 'gpu07']);
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('gpu', 'cpu', 'nic', 'x1-'), fc.nat(40)), { maxLength: 60 }), (pairs) => {
      const ids = pairs.map(([s, n]) => `${s}${n}`);
      const back = idRuns(ids).flatMap((r) => {
        const e = expandIds(r);
        assert.ok(Array.isArray(e), `${r} is not a range the rack file reads`);
        return e;
      });
      assert.deepEqual([...back].sort(), [...new Set(ids)].sort());
    }),
  );
  // Short lists stay whole; a long table merges rows only where all but the name agree.
  assert.equal(nameList(['gpu0', 'gpu1']), 'gpu0, gpu1');
  const rows = Array.from({ length: 20 }, (_, k) => [`gpu${k}`, k === 7 ? 'busy' : 'idle']);
  assert.deepEqual(mergeRuns(rows), [
    ['gpu[0-6]', 'idle'],
    ['gpu7', 'busy'],
    ['gpu[8-19]', 'idle'],
  ]);
  assert.equal(namedFigures(Array.from({ length: 20 }, (_, k) => [`cpu${k}`, k < 10 ? '1 / 2' : '3 / 4'] as const)), 'cpu[0-9]: 1 / 2; cpu[10-19]: 3 / 4');
});
