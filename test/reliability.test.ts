import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { planHashText } from '../src/plan/read.js';
import { onnx } from './onnx-builder.js';
import { EXAMPLES, FIXTURES, HXC, hxc, isOneLineError, tmpDir } from './helpers.js';

const MODEL = path.join(FIXTURES, 'models', 'hello_deepa.onnx');
const RACK = path.join(EXAMPLES, 'rack-tiny.yaml');

/** Every file under `dir` with its bytes, for "nothing changed" comparisons. */
function snapshot(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, f);
    const st = fs.lstatSync(p);
    m.set(f, st.isFile() ? fs.readFileSync(p).toString('base64') : st.isSymbolicLink() ? `-> ${fs.readlinkSync(p)}` : 'dir');
  }
  return m;
}

test("--out and --dump-dir never replace what hxc did not write: a file, a user folder, the model's folder, the current folder", () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'my notes\n');
  fs.mkdirSync(path.join(dir, 'project'));
  fs.writeFileSync(path.join(dir, 'project', 'a.txt'), 'keep\n');
  const models = path.join(dir, 'models');
  fs.mkdirSync(models);
  fs.copyFileSync(MODEL, path.join(models, 'm.onnx'));
  const before = snapshot(dir);
  const model = path.join(models, 'm.onnx');
  for (const [flag, target, cwd] of [
    ['--out', 'notes.txt', dir],
    ['--out', 'project', dir],
    ['--out', models, dir],
    ['--out', '.', path.join(dir, 'project')],
    ['--dump-dir', 'project', dir],
  ] as const) {
    const r = hxc(['plan', model, '--topology', RACK, flag, target, ...(flag === '--dump-dir' ? ['--out', path.join(dir, 'x')] : [])], { cwd });
    assert.equal(isOneLineError(r, 'HXC2004'), null, `${flag} ${target}`);
  }
  fs.rmSync(path.join(dir, 'x'), { recursive: true, force: true });
  assert.deepEqual(snapshot(dir), before, 'nothing hxc did not write was touched');
  // Its own output it replaces, again and again, leaving no temporaries.
  for (let k = 0; k < 2; k++) assert.equal(hxc(['plan', model, '--topology', RACK, '--out', path.join(dir, 'plan')]).code, 0);
  assert.equal(hxc(['plan', model, '--topology', RACK, '--out', path.join(dir, 'empty-folder-is-fine')]).code, 0);
  assert.deepEqual(
    fs.readdirSync(dir).filter((f) => f.includes('.hxc-tmp-')),
    [],
  );
});

test("hxc replaces only a folder it wrote all of: not a copied plan.json beside the user's files, not its plan once the user added a file (there or in sim/); the report it added is its own", () => {
  const dir = tmpDir();
  const planAt = (name: string): string => {
    const out = path.join(dir, name);
    assert.equal(hxc(['plan', MODEL, '--topology', RACK, '--out', out]).code, 0);
    return out;
  };
  const mine = path.join(dir, 'mine');
  fs.mkdirSync(mine);
  fs.copyFileSync(path.join(planAt('source'), 'plan.json'), path.join(mine, 'plan.json'));
  fs.writeFileSync(path.join(mine, 'thesis.tex'), 'keep\n');
  const noted = planAt('noted');
  fs.writeFileSync(path.join(noted, 'notes.txt'), 'mine\n');
  const simNoted = planAt('sim-noted');
  assert.equal(hxc(['simulate', simNoted]).code, 0);
  fs.writeFileSync(path.join(simNoted, 'sim', 'mine.txt'), 'mine\n');
  const before = snapshot(dir);
  for (const [target, stray] of [
    [mine, 'thesis.tex'],
    [noted, 'notes.txt'],
    [simNoted, 'sim/'],
  ] as const) {
    const r = hxc(['plan', MODEL, '--topology', RACK, '--out', target]);
    assert.equal(isOneLineError(r, 'HXC2004'), null, target);
    assert.match(r.stderr, new RegExp(`holds files hxc did not write \\(${stray}`), target);
  }
  assert.deepEqual(snapshot(dir), before, 'nothing was touched');
  // What hxc itself adds to its plan later (a report, a simulation) keeps the folder its own.
  const reported = planAt('reported');
  assert.equal(hxc(['report', reported]).code, 0);
  assert.equal(hxc(['simulate', reported]).code, 0);
  assert.equal(hxc(['plan', MODEL, '--topology', RACK, '--out', reported]).code, 0);
});

test("--dump-dir and --out are checked before planning: the same folder (or one in the other) is refused, and so is a folder of the user's, before any plan is written", () => {
  const dir = tmpDir();
  const user = path.join(dir, 'user');
  fs.mkdirSync(user);
  fs.writeFileSync(path.join(user, 'a.txt'), 'keep\n');
  const before = snapshot(dir);
  for (const [dumps, out, match] of [
    ['same', 'same', /--dump-dir and --out name the same folder/],
    [path.join('outer', 'dumps'), 'outer', /--dump-dir and --out name the same folder, or one holds the other/],
    ['user', 'fresh', /exists and is not a folder hxc wrote/],
    ['dumps', 'user', /exists and is not a folder hxc wrote/],
  ] as const) {
    const r = hxc(['plan', MODEL, '--topology', RACK, '--dump-dir', dumps, '--out', out], { cwd: dir });
    assert.equal(isOneLineError(r, 'HXC2004'), null, `--dump-dir ${dumps} --out ${out}`);
    assert.match(r.stderr, match, `--dump-dir ${dumps} --out ${out}`);
  }
  assert.deepEqual(snapshot(dir), before, 'nothing was written');
});

test("Ctrl-C (SIGINT) at any instant leaves no temporaries: not the folder being written, and a check's scratch plan goes with the next check", async () => {
  const dir = tmpDir();
  const scratch = path.join(dir, 'tmp');
  fs.mkdirSync(scratch);
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const codes = new Set<string>();
  for (const delay_ms of [200, 400, 600, 800, 1000, 1300]) {
    for (const args of [
      ['plan', model, '--topology', RACK, '--out', path.join(dir, 'plan')],
      ['check', model, '--topology', RACK, '--max-latency', '10s'],
    ]) {
      const child = spawn(process.execPath, [HXC, ...args], { stdio: 'ignore', env: { ...process.env, TMPDIR: scratch } });
      const exited = new Promise<string>((r) => child.on('exit', (code, signal) => r(signal ?? String(code))));
      await new Promise((r) => setTimeout(r, delay_ms));
      child.kill('SIGINT');
      const how = await exited;
      codes.add(how);
      // Done (0 for plan, 1 or 0 for check's verdict), stopped by the signal itself, or stopped after removing what it held (130).
      assert.ok(['0', '1', 'SIGINT', '130'].includes(how), `${args[0]} interrupted at ${delay_ms} ms: ${how}`);
      // A check's scratch plan is named for its process and removed by the next check (its process is gone).
      if (args[0] === 'check') assert.equal(hxc(['check', model, '--topology', RACK, '--max-latency', '10s'], { env: { TMPDIR: scratch } }).code, 0);
      assert.deepEqual(fs.readdirSync(scratch), [], `${args[0]} at ${delay_ms} ms: nothing left in the temporary folder`);
      assert.deepEqual(
        fs.readdirSync(dir).filter((f) => f.includes('.hxc-tmp-')),
        [],
        `${args[0]} at ${delay_ms} ms: no temporary beside the plan`,
      );
    }
  }
  assert.ok(codes.has('SIGINT') || codes.has('130'), `some runs were interrupted: ${[...codes].join(', ')}`);
});

/** A pid that is certainly dead: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test('a write killed between its two renames leaves the previous plan, which a reader or the next write puts back; stale temporaries go', () => {
  const dir = tmpDir();
  const plan = path.join(dir, 'plan');
  assert.equal(hxc(['plan', MODEL, '--topology', RACK, '--out', plan]).code, 0);
  const old = snapshot(plan);
  // What a kill -9 between the renames leaves: the previous plan moved aside, the new one not in place.
  const pid = deadPid();
  fs.renameSync(plan, path.join(dir, `.plan.hxc-tmp-${pid}-abcdef.old`));
  fs.mkdirSync(path.join(dir, `.plan.hxc-tmp-${pid}-ghijkl`));
  fs.writeFileSync(path.join(dir, `.plan.hxc-tmp-${pid}-ghijkl`, '.hxc-output'), 'hxc-plan/v1\n');
  const r = hxc(['simulate', plan, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    snapshot(plan),
    new Map([...old, ['sim', 'dir'], ['sim/.hxc-output', snapshot(plan).get('sim/.hxc-output')!], ['sim/trace.json', snapshot(plan).get('sim/trace.json')!]]),
    'the previous plan is back, intact',
  );
  assert.equal(hxc(['plan', MODEL, '--topology', RACK, '--out', plan]).code, 0);
  assert.deepEqual(
    fs.readdirSync(dir).filter((f) => f !== 'plan'),
    [],
    'no litter after the next write',
  );
});

test('kill -9 at any instant of a plan write leaves a plan that reads, and no litter after the next run', async () => {
  const dir = tmpDir();
  const plan = path.join(dir, 'plan');
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  assert.equal(hxc(['plan', model, '--topology', RACK, '--out', plan]).code, 0);
  for (const delay_ms of [150, 300, 450, 600, 750, 900, 1100]) {
    const child = spawn(process.execPath, [HXC, 'plan', model, '--topology', RACK, '--out', plan, '--objective', 'throughput'], { stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    await new Promise((r) => setTimeout(r, delay_ms));
    child.kill('SIGKILL');
    await exited;
    const r = hxc(['simulate', plan, '--json']);
    assert.equal(r.code, 0, `after a kill at ${delay_ms} ms: ${r.stderr}`);
  }
  assert.equal(hxc(['plan', model, '--topology', RACK, '--out', plan]).code, 0);
  assert.deepEqual(fs.readdirSync(dir), ['plan']);
});

test('run/ and sim/ are written inside the plan, never through a symlink; a trace file hxc did not write is not replaced', () => {
  const dir = tmpDir();
  const plan = path.join(dir, 'plan');
  const elsewhere = path.join(dir, 'elsewhere');
  fs.mkdirSync(elsewhere);
  fs.writeFileSync(path.join(elsewhere, 'telemetry.json'), 'mine\n');
  assert.equal(hxc(['plan', MODEL, '--topology', RACK, '--out', plan]).code, 0);
  fs.symlinkSync(elsewhere, path.join(plan, 'run'));
  fs.symlinkSync(elsewhere, path.join(plan, 'sim'));
  assert.equal(isOneLineError(hxc(['run', plan]), 'HXC2004'), null);
  assert.equal(isOneLineError(hxc(['simulate', plan]), 'HXC2004'), null);
  assert.deepEqual(fs.readdirSync(elsewhere), ['telemetry.json']);
  assert.equal(fs.readFileSync(path.join(elsewhere, 'telemetry.json'), 'utf8'), 'mine\n');
  assert.equal(isOneLineError(hxc(['simulate', plan, '--trace', path.join(elsewhere, 'telemetry.json')]), 'HXC2004'), null);
  fs.rmSync(path.join(plan, 'run'));
  fs.rmSync(path.join(plan, 'sim'));
  assert.equal(hxc(['run', plan]).code, 0);
  assert.equal(hxc(['simulate', plan, '--trace', path.join(dir, 't.json')]).code, 0);
  assert.equal(hxc(['simulate', plan, '--trace', path.join(dir, 't.json')]).code, 0, 'its own trace it replaces');
});

test('a tampered plan is refused before anything runs, naming the file: edits, paths out of the folder, mismatched programs, sends without recvs', () => {
  const dir = tmpDir();
  const plan = path.join(dir, 'plan');
  assert.equal(hxc(['plan', MODEL, '--topology', RACK, '--out', plan]).code, 0);
  const original = fs.readFileSync(path.join(plan, 'plan.json'), 'utf8');
  const write = (p: unknown, rehash: boolean): void => {
    const text = JSON.stringify(p, null, 1) + '\n';
    fs.writeFileSync(path.join(plan, 'plan.json'), text);
    if (rehash) fs.writeFileSync(path.join(plan, 'plan.sha256'), planHashText(text));
  };
  const refused = (what: string, edit: (p: any) => void, rehash = true, args: string[] = []): string => {
    const p = JSON.parse(original);
    edit(p);
    write(p, rehash);
    const r = hxc(['run', plan, ...args]);
    assert.equal(isOneLineError(r, 'HXC2'), null, what);
    assert.ok(!fs.existsSync(path.join(plan, 'run')), `${what}: nothing ran`);
    return r.stderr;
  };
  assert.match(
    refused(
      'an edit without its hash',
      (p) => {
        p.estimate.latency_s = 1;
      },
      false,
    ),
    /HXC2601.*plan\.json does not match plan\.sha256/,
  );
  assert.match(
    refused('a program path out of the folder', (p) => {
      const [file, meta] = Object.entries(p.programs)[0]!;
      delete p.programs[file];
      p.programs['../../x.onnx'] = meta;
      for (const d of p.devices) for (const s of d.steps) if (s.program === file) s.program = '../../x.onnx';
    }),
    /HXC2601.*leaves the plan directory/,
  );
  assert.match(
    refused('a program whose inputs were renamed', (p) => {
      const meta = Object.values(p.programs)[0] as { inputs: string[] };
      meta.inputs[0] = 'renamed';
    }),
    /HXC2601.*other inputs or outputs/,
  );
  assert.match(
    refused('a device renamed in one place', (p) => {
      p.devices.find((d: { steps: unknown[] }) => d.steps.length > 0).id = 'gpu9';
    }),
    /HXC2601/,
  );
  assert.match(
    refused('a node assigned elsewhere', (p) => {
      const n = Object.keys(p.assignment)[0]!;
      p.assignment[n] = p.assignment[n] === 'cpu0' ? 'gpu0' : 'cpu0';
    }),
    /HXC2601.*assigned/,
  );
  assert.match(
    refused('a schema violation', (p) => {
      p.devices = { a: 1 };
    }),
    /HXC2601.*hxc-plan\/v1/,
  );
  assert.match(
    refused(
      '--check against a file the plan points at',
      (p) => {
        p.model.path_from_plan = '../../../../../../etc/passwd';
      },
      true,
      ['--check'],
    ),
    /HXC2601.*not the model this plan was made from/,
  );
  assert.match(
    refused(
      'an emptied output list',
      (p) => {
        p.outputs = [];
      },
      true,
      ['--check'],
    ),
    /HXC2601.*outputs/,
  );
  assert.match(
    refused('an emptied output list, run without the model', (p) => {
      p.outputs = [];
    }),
    /HXC2601.*lists no model outputs/,
  );
  write(JSON.parse(original), true);
  assert.equal(hxc(['run', plan, '--check']).code, 0, 'the untouched plan still runs');
});

test('a plan whose transfers disagree with their steps is refused (a recv that would wait forever)', () => {
  const dir = tmpDir();
  const plan = path.join(dir, 'plan');
  // Placed on two devices so there are transfers.
  assert.equal(
    hxc([
      'plan',
      path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'),
      '--topology',
      path.join(EXAMPLES, 'rack-hetero.yaml'),
      '--objective',
      'throughput',
      '--out',
      plan,
    ]).code,
    0,
  );
  const original = fs.readFileSync(path.join(plan, 'plan.json'), 'utf8');
  const p = JSON.parse(original);
  assert.ok(p.transfers.length > 0, 'the plan moves tensors');
  // Found by npm run fuzz: 65536 requests of this plan made a trace too long for one JSON string.
  const long = hxc(['simulate', plan, '--requests', '65536', '--json']);
  assert.equal(long.code, 0, long.stderr);
  const sim = JSON.parse(long.stdout) as { traced_requests: number; request_finish_s: number[] };
  assert.equal(sim.request_finish_s.length, 65536);
  assert.ok(sim.traced_requests >= 1 && sim.traced_requests < 65536, `the trace holds the first ${sim.traced_requests} requests`);
  const trace = JSON.parse(fs.readFileSync(path.join(plan, 'sim', 'trace.json'), 'utf8')) as { traceEvents: { args?: { request?: number } }[] };
  assert.ok(trace.traceEvents.every((e) => (e.args?.request ?? 0) < sim.traced_requests));
  for (const d of p.devices)
    for (const s of d.steps)
      if (s.op === 'recv') {
        s.value = `${s.value}-renamed`;
        break;
      }
  const text = JSON.stringify(p, null, 1) + '\n';
  fs.writeFileSync(path.join(plan, 'plan.json'), text);
  fs.writeFileSync(path.join(plan, 'plan.sha256'), planHashText(text));
  const r = hxc(['run', plan]);
  assert.equal(isOneLineError(r, 'HXC2601'), null);
  assert.match(r.stderr, /does not match transfer/);
  // One model output cut from the list (the others left): the program that yields it is refused.
  const q = JSON.parse(original);
  assert.ok(q.outputs.length > 1, 'gpt2 has several outputs');
  q.outputs = q.outputs.slice(1);
  const cut = JSON.stringify(q, null, 1) + '\n';
  fs.writeFileSync(path.join(plan, 'plan.json'), cut);
  fs.writeFileSync(path.join(plan, 'plan.sha256'), planHashText(cut));
  const r2 = hxc(['run', plan]);
  assert.equal(isOneLineError(r2, 'HXC2601'), null);
  assert.match(r2.stderr, /yields "logits", which plan.json sends nowhere/);
  // A program onnxruntime refuses to load while the other devices are still loading theirs: one
  // line and exit 2 — stopping a worker in the middle of its session creation aborted the process.
  const q2 = JSON.parse(original);
  const files = Object.keys(q2.programs);
  const file = files[files.length - 1]!;
  const model = onnx.ModelProto.decode(fs.readFileSync(path.join(plan, file)));
  model.graph!.node!.find((x) => x.opType !== 'Constant')!.opType = 'NoSuchOp';
  const bytes = onnx.ModelProto.encode(model).finish();
  fs.writeFileSync(path.join(plan, file), bytes);
  q2.programs[file].sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
  q2.programs[file].bytes = bytes.length;
  const broken = JSON.stringify(q2, null, 1) + '\n';
  fs.writeFileSync(path.join(plan, 'plan.json'), broken);
  fs.writeFileSync(path.join(plan, 'plan.sha256'), planHashText(broken));
  for (let k = 0; k < 3; k++) {
    const r3 = hxc(['run', plan]);
    assert.equal(isOneLineError(r3, 'HXC2601'), null, 'no abort, one line');
    assert.match(r3.stderr, /NoSuchOp/);
  }
});

test('sizes from flags are checked before anything is allocated: --requests 1e9 is one line, not an out-of-memory crash', () => {
  const dir = tmpDir();
  assert.equal(hxc(['plan', MODEL, '--topology', RACK, '--out', path.join(dir, 'p')]).code, 0);
  const r = hxc(['simulate', path.join(dir, 'p'), '--requests', '1000000000']);
  assert.equal(isOneLineError(r, 'HXC2002'), null);
});

test('an audit of untrusted inputs: a device or a pipe given as a file is one line (not gigabytes read); outputs of one kind never replace another; a huge --dim run is refused before it allocates', () => {
  const dir = tmpDir();
  const plan = path.join(dir, 'plan');
  assert.equal(hxc(['plan', MODEL, '--topology', RACK, '--out', plan]).code, 0);
  const fifo = path.join(dir, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  // stat says 0 bytes for both: each was read whole (/dev/zero forever), a pipe waited for a writer.
  for (const file of ['/dev/zero', fifo]) {
    // (Every reader on /dev/zero; a pipe, whose open would wait, on two of them.)
    for (const args of [
      ['topology', file],
      ['plan', file, '--out', path.join(dir, 'x')],
      ['plan', MODEL, '--topology', file, '--out', path.join(dir, 'x')],
      ['plan', MODEL, '--assign', file, '--out', path.join(dir, 'x')],
      ['plan', MODEL, '--calibrate', file, '--out', path.join(dir, 'x')],
      ['run', plan, '--inputs', file],
      ['run', plan, '--workers', file],
      ['check', plan, '--telemetry', file, '--max-drift', '20%'],
    ].slice(0, file === fifo ? 2 : undefined)) {
      const r = hxc(args);
      assert.equal(isOneLineError(r, 'HXC2001'), null, args.join(' '));
      assert.match(r.stderr, /is not a regular file/, args.join(' '));
    }
  }
  assert.ok(!fs.existsSync(path.join(dir, 'x')));
  // A run's telemetry is not replaced by a plan, nor a plan's estimated trace by a simulation's.
  assert.equal(hxc(['run', plan]).code, 0);
  const before = snapshot(plan);
  const replan = hxc(['replan', plan, '--out', path.join(plan, 'run')]);
  assert.equal(isOneLineError(replan, 'HXC2004'), null);
  assert.match(replan.stderr, /holds a run's telemetry hxc wrote, not a plan/);
  const dumps = hxc(['plan', MODEL, '--topology', RACK, '--dump-dir', plan, '--out', path.join(dir, 'other')]);
  assert.equal(isOneLineError(dumps, 'HXC2004'), null);
  assert.ok(!fs.existsSync(path.join(dir, 'other')), 'refused before planning');
  const sim = hxc(['simulate', plan, '--trace', path.join(plan, 'trace.json')]);
  assert.equal(isOneLineError(sim, 'HXC2004'), null);
  assert.deepEqual(snapshot(plan), before);
  // At 100,000 times the planned batch the activations alone are far past any machine here.
  const gpt2 = path.join(dir, 'gpt2');
  assert.equal(hxc(['plan', path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), '--topology', RACK, '--prompt', '8', '--out', gpt2]).code, 0);
  const huge = hxc(['run', gpt2, '--dim', 'batch_size=100000']);
  assert.equal(isOneLineError(huge, 'HXC2602'), null);
  assert.match(huge.stderr, /the run needs about [\d.]+ GiB here .*× 1\.00e\+5.*more than this machine's/);
});

test("weights on another file system than the plan's folder are copied once into the plan (HXC1115), each device hard-linking that copy, and the plan runs", () => {
  // /dev/shm (tmpfs) against the temporary folder's file system: a hard link across them fails (EXDEV).
  const shm = '/dev/shm';
  assert.ok(fs.existsSync(shm), '/dev/shm is needed for this test');
  const dir = tmpDir();
  assert.notEqual(fs.statSync(shm).dev, fs.statSync(dir).dev, 'the test needs /dev/shm on a file system of its own');
  const src = fs.mkdtempSync(path.join(shm, 'hxc-test-'));
  try {
    // Four 64×64 MatMul layers whose weights are external data in weights.bin.
    const D = 64;
    const weights = new Float32Array(4 * D * D).map((_, i) => Math.sin(i) * 0.2);
    fs.writeFileSync(path.join(src, 'weights.bin'), Buffer.from(weights.buffer));
    const nodes: { name: string; opType: string; input: string[]; output: string[] }[] = [];
    let x = 'x';
    for (let l = 0; l < 4; l++) {
      nodes.push({ name: `/l${l}/MatMul`, opType: 'MatMul', input: [x, `w${l}`], output: [`m${l}`] });
      nodes.push({ name: `/l${l}/Relu`, opType: 'Relu', input: [`m${l}`], output: [l === 3 ? 'y' : `r${l}`] });
      x = `r${l}`;
    }
    const vi = (name: string) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 8 }, { dimValue: D }] } } } });
    const initializer = [0, 1, 2, 3].map((l) => ({
      name: `w${l}`,
      dataType: 1,
      dims: [D, D],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: 'weights.bin' },
        { key: 'offset', value: String(l * D * D * 4) },
        { key: 'length', value: String(D * D * 4) },
      ],
    }));
    const model = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: { name: 'g', node: nodes, initializer, input: [vi('x')], output: [vi('y')] },
    }).finish();
    fs.writeFileSync(path.join(src, 'm.onnx'), model);
    const assign = path.join(dir, 'assign.json');
    fs.writeFileSync(
      assign,
      JSON.stringify({ format: 'hxc-assignment/v1', assignment: { '/l0/MatMul': 'gpu0', '/l1/MatMul': 'gpu1', '/l2/MatMul': 'gpu2', '/l3/MatMul': 'gpu3' } }),
    );
    const out = path.join(dir, 'plan');
    const r = hxc([
      'plan',
      path.join(src, 'm.onnx'),
      '--topology',
      path.join(EXAMPLES, 'rack-8gpu.yaml'),
      '--tensor-parallel',
      'off',
      '--assign',
      assign,
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /HXC1115.*1 weight file\(s\) copied once into the plan \(65536 bytes\)/);
    const linked = (fs.readdirSync(out, { recursive: true }) as string[]).filter((f) => path.basename(f).startsWith('weights-'));
    assert.ok(linked.length >= 4, linked.join(', '));
    const inodes = new Set(linked.map((f) => fs.lstatSync(path.join(out, f)).ino));
    assert.equal(inodes.size, 1, 'one copy, hard-linked into every device folder');
    assert.ok(linked.every((f) => fs.lstatSync(path.join(out, f)).isFile()));
    const run = hxc(['run', out, '--check']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /check passed/);
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
  }
});
