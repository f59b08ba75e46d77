// The runtime across processes (issue 16): three `hxc worker` processes on loopback run a shared
// MoE model's plan with --check and decode steps and match the unsplit model; a worker with another
// token is refused; a worker killed mid-run ends `hxc run` at once with a line naming its devices
// and their steps; --spawn leaves no worker behind, killed or not.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { EXAMPLES, FIXTURES, HXC, REPO, SHARED_MODELS, hxc, isOneLineError, tmpDir } from './helpers.js';

interface Started {
  child: ChildProcess;
  address: string;
  stderr: () => string;
}

async function startWorker(tokenFile: string, extra: string[] = []): Promise<Started> {
  const child = spawn(process.execPath, [HXC, 'worker', '--listen', '127.0.0.1:0', '--token-file', tokenFile, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString('utf8')));
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString('utf8');
      const m = /listening on (\S+)/.exec(out) ?? /^\{"listening":"([^"]+)"\}\n/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`worker exited ${code}: ${err}`)));
  });
  return { child, address, stderr: () => err };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether a process holds a listening TCP socket (Linux: its socket inodes against /proc/net/tcp{,6}). */
function listening(pid: number): boolean {
  let inodes: Set<string>;
  try {
    inodes = new Set(
      fs
        .readdirSync(`/proc/${pid}/fd`)
        .map((fd) => {
          try {
            return /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
          } catch {
            return undefined;
          }
        })
        .filter((i): i is string => i !== undefined),
    );
  } catch {
    return false;
  }
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && inodes.has(f[9]!)) return true;
    }
  }
  return false;
}

/** Runs hxc asynchronously; resolves with its exit and output, and when it ended. */
function hxcAsync(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stderr: string; at: number }> } {
  const child = spawn(process.execPath, [HXC, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  child.stdout!.resume();
  const done = new Promise<{ code: number | null; stderr: string; at: number }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stderr, at: Date.now() })),
  );
  return { child, done };
}

function plan(dir: string): { out: string; devices: string[] } {
  const out = path.join(dir, 'plan');
  const r = hxc([
    'plan',
    path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx'),
    '--topology',
    path.join(EXAMPLES, 'rack-hetero.yaml'),
    '--prompt',
    '64',
    '--out',
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const p = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as { devices: { id: string; steps: unknown[] }[] };
  return { out, devices: p.devices.filter((d) => d.steps.length > 0).map((d) => d.id) };
}

test('three hxc workers on loopback run a MoE plan with --check and decode steps; another token is refused; a killed worker ends the run at once', async () => {
  const dir = tmpDir();
  const token = path.join(dir, 'token.txt');
  fs.writeFileSync(token, 'a-shared-secret-0123456789\n');
  const other = path.join(dir, 'other.txt');
  fs.writeFileSync(other, 'not-the-same-secret-98765\n');
  const { out, devices } = plan(dir);
  assert.ok(devices.length >= 3, `devices with steps: ${devices}`);
  const workers = await Promise.all([startWorker(token), startWorker(token), startWorker(token)]);
  const stranger = await startWorker(other);
  /** Workers started in place of one killed too early (below). */
  const victims: Started[] = [];
  try {
    const byWorker = workers.map((w, i) => ({ address: w.address, devices: devices.filter((_, k) => k % 3 === i) }));
    const yaml = (list: { address: string; devices: string[] }[]): string =>
      `format: hxc-workers/v1\ntoken_file: token.txt\nworkers:\n${list.map((w) => `  - {address: "${w.address}", devices: [${w.devices.join(', ')}]}`).join('\n')}\n`;
    const good = path.join(dir, 'workers.yaml');
    fs.writeFileSync(good, yaml(byWorker));
    const r = hxc(['run', out, '--workers', good, '--check', '--decode-steps', '4', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.check.passed, true);
    assert.equal(rep.requests.length, 5);
    // Twice on the same workers: a worker serves one coordinator after another.
    const again = hxc(['run', out, '--workers', good, '--check']);
    assert.equal(again.code, 0, again.stderr + workers.map((w) => w.stderr()).join('\n'));

    // A worker started with another token refuses the coordinator, and says so in its log.
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, yaml([byWorker[0]!, byWorker[1]!, { address: stranger.address, devices: byWorker[2]!.devices }]));
    const refused = hxc(['run', out, '--workers', bad, '--check']);
    assert.equal(isOneLineError(refused, 'HXC2603'), null);
    assert.match(refused.stderr, /refused the token/);
    await new Promise((r) => setTimeout(r, 200));
    assert.match(stranger.stderr(), /refused a control call .*wrong or missing token/);

    // A worker killed mid-run: the run ends within moments, naming that worker's devices and their
    // steps. Mid-run means after its devices reported a step: on a loaded machine (a CI run beside
    // helpers, load 13 on 2 cores) 5 s after the start came before the first, so a kill that early
    // is tried again later, a fresh worker in the killed one's place.
    let victim = workers[1]!;
    let line = '';
    for (const wait of [5000, 15_000, 30_000]) {
      const file = path.join(dir, 'kill.yaml');
      fs.writeFileSync(file, yaml(byWorker.map((w, i) => (i === 1 ? { ...w, address: victim.address } : w))));
      const long = hxcAsync(['run', out, '--workers', file, '--decode-steps', '300', '--timeout', '60']);
      await new Promise((r) => setTimeout(r, wait));
      const killedAt = Date.now();
      victim.child.kill('SIGKILL');
      const end = await long.done;
      assert.equal(end.code, 2, end.stderr);
      assert.ok(end.at - killedAt < 10_000, `ended ${end.at - killedAt} ms after the kill`);
      const lines = end.stderr.trim().split('\n');
      assert.equal(lines.length, 1, end.stderr);
      line = lines[0]!;
      assert.match(line, new RegExp(`HXC2603.*${victim.address}.*${byWorker[1]!.devices[0]} (was at step \\d+|had reported no step yet)`));
      if (!line.includes(`${byWorker[1]!.devices[0]} had reported no step yet`)) break;
      victim = await startWorker(token);
      victims.push(victim);
    }
    assert.match(line, new RegExp(`HXC2603.*${victim.address}.*${byWorker[1]!.devices[0]} was at step \\d+`));
  } finally {
    for (const w of [...workers, stranger, ...victims]) w.child.kill('SIGKILL');
  }
});

test('TLS: two hxc workers with a certificate run a plan with --check, tensors going worker to worker over TLS, and no warning printed; another CA, or no TLS, is one HXC2603 line', async () => {
  // fixtures/tls: a self-signed certificate for 127.0.0.1 and localhost (valid to 2126) and another
  // CA, made with `openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -addext subjectAltName=…`.
  const tls = path.join(FIXTURES, 'tls');
  const dir = tmpDir();
  const token = path.join(dir, 'token.txt');
  fs.writeFileSync(token, 'a-shared-secret-0123456789\n');
  const out = path.join(dir, 'plan');
  const planned = hxc([
    'plan',
    path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'),
    '--topology',
    path.join(EXAMPLES, 'rack-tiny.yaml'),
    '--prompt',
    '8',
    '--out',
    out,
  ]);
  assert.equal(planned.code, 0, planned.stderr);
  const p = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as { devices: { id: string; steps: unknown[] }[]; transfers: unknown[] };
  const devices = p.devices.filter((d) => d.steps.length > 0).map((d) => d.id);
  assert.ok(devices.length >= 2 && p.transfers.length > 0, `devices with steps: ${devices}`);
  const certified = ['--tls-cert', path.join(tls, 'cert.pem'), '--tls-key', path.join(tls, 'key.pem')];
  const workers = await Promise.all([startWorker(token, certified), startWorker(token, certified)]);
  try {
    const yaml = (ca: string | null): string =>
      `format: hxc-workers/v1\ntoken_file: token.txt\n${ca ? `tls: {ca: ${JSON.stringify(ca)}}\n` : ''}workers:\n` +
      workers.map((w, i) => `  - {address: "${w.address}", devices: [${devices.filter((_, k) => k % 2 === i).join(', ')}]}`).join('\n') +
      '\n';
    const write = (name: string, text: string): string => {
      fs.writeFileSync(path.join(dir, name), text);
      return path.join(dir, name);
    };
    const r = hxc(['run', out, '--workers', write('tls.yaml', yaml(path.join(tls, 'cert.pem'))), '--check', '--decode-steps', '2']);
    assert.equal(r.code, 0, r.stderr + workers.map((w) => w.stderr()).join('\n'));
    assert.match(r.stdout, /check passed/);
    // Dialled by IP address: Node's DEP0123 (no server name for an IP) is not passed on, and nothing else is said.
    assert.equal(r.stderr, '');
    for (const w of workers) assert.doesNotMatch(w.stderr(), /DEP0123|Warning/);
    const otherCa = hxc(['run', out, '--workers', write('other.yaml', yaml(path.join(tls, 'other-ca.pem'))), '--check']);
    assert.equal(isOneLineError(otherCa, 'HXC2603'), null);
    assert.match(otherCa.stderr, /certificate/);
    const plain = hxc(['run', out, '--workers', write('plain.yaml', yaml(null)), '--check']);
    assert.equal(isOneLineError(plain, 'HXC2603'), null);
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
  }
});

test('hxc run --spawn: one worker process per device, the check passes, and no worker outlives the run, killed or not', async () => {
  const dir = tmpDir();
  const { out, devices } = plan(dir);
  const ok = hxc(['run', out, '--spawn', '--check', '--decode-steps', '4']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /check passed/);

  const long = hxcAsync(['run', out, '--spawn', '--decode-steps', '300', '--timeout', '60']);
  // Kill a worker mid-run: once every worker listens (a loaded machine may take long to start them),
  // and a moment later, while the 300 steps run.
  const children = (): number[] =>
    spawnSync('ps', ['-o', 'pid=', '--ppid', String(long.child.pid)], { encoding: 'utf8' })
      .stdout.split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  let kids = children();
  for (let waited = 0; waited < 60_000 && !(kids.length === devices.length && kids.every(listening)); waited += 250) {
    await new Promise((r) => setTimeout(r, 250));
    kids = children();
  }
  assert.equal(kids.length, devices.length, 'one worker process per device');
  assert.ok(kids.every(listening), 'every spawned worker listens');
  // A socket listens a moment before the worker's "listening on" line reaches hxc: the wait lets the
  // run start its steps, so the kill lands mid-run (HXC2603 naming the step), not during the spawn.
  await new Promise((r) => setTimeout(r, 2000));
  process.kill(kids[0]!, 'SIGKILL');
  const end = await long.done;
  assert.equal(end.code, 2, end.stderr);
  assert.match(end.stderr, /HXC2603/);
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(
    kids.filter((pid) => alive(pid)),
    [],
    'every spawned worker stopped',
  );
});

test('hxc-workers/v1: the reader and the schema agree; a device given twice, a device without a worker, a bad address, a device the plan does not have are one line naming the line', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'token.txt'), 'a-shared-secret-0123456789\n');
  const good =
    'format: hxc-workers/v1\ntoken_file: token.txt\nworkers:\n  - {address: "10.0.0.1:7001", devices: [cpu0, gpu0]}\n  - {address: "10.0.0.2:7001", devices: [gpu1]}\n';
  const file = path.join(dir, 'w.yaml');
  fs.writeFileSync(file, good);
  const { readWorkersFile } = await import('../src/runtime/grpc/workers-file.js');
  const w = readWorkersFile(file, ['cpu0', 'gpu0', 'gpu1']);
  assert.deepEqual(w.workers, [
    { address: '10.0.0.1:7001', devices: ['cpu0', 'gpu0'] },
    { address: '10.0.0.2:7001', devices: ['gpu1'] },
  ]);
  assert.equal(w.token, 'a-shared-secret-0123456789');
  const { createRequire } = await import('node:module');
  const { parse } = await import('yaml');
  const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  const validate = new Ajv({ strict: false }).compile(JSON.parse(fs.readFileSync(path.join(REPO, 'src', 'schema', 'hxc-workers.v1.schema.json'), 'utf8')));
  assert.ok(validate(parse(good)), JSON.stringify(validate.errors));
  const bad: [string, RegExp][] = [
    [good.replace('[gpu1]', '[gpu0]'), /w\.yaml:5.*gpu0 is given to two workers/],
    [good, /no worker serves gpu2/],
    [good.replace('10.0.0.2:7001', '10.0.0.2'), /w\.yaml:5.*not HOST:PORT/],
  ];
  for (const [text, want] of bad) {
    fs.writeFileSync(file, text);
    assert.throws(
      () => readWorkersFile(file, ['cpu0', 'gpu0', 'gpu1', ...(want.source.includes('gpu2') ? ['gpu2'] : [])]),
      (e: unknown) => e instanceof Error && want.test(`${(e as { where?: string }).where} ${e.message}`),
    );
  }
  // A device the plan's rack does not have (a typo) is named, not taken.
  fs.writeFileSync(file, good.replace('[gpu1]', '[gpu1, gpu9]'));
  assert.throws(
    () => readWorkersFile(file, ['cpu0', 'gpu0', 'gpu1'], ['cpu0', 'gpu0', 'gpu1', 'gpu2']),
    (e: unknown) =>
      e instanceof Error &&
      /w\.yaml:5.*device gpu9 is no device of the plan \(cpu0, gpu0, gpu1, gpu2\)/.test(`${(e as { where?: string }).where} ${e.message}`),
  );
});

test('hxc worker on an address in use, or one this machine does not have, or with a certificate that is no PEM: one line saying why and what to do, exit 2 (not grpc-js its own log line too)', async () => {
  const dir = tmpDir();
  const tokenFile = path.join(dir, 'token.txt');
  fs.writeFileSync(tokenFile, `${'ab'.repeat(32)}\n`);
  // --json (DESIGN.md: every command): the address as one JSON line.
  const first = await startWorker(tokenFile, ['--json']);
  try {
    assert.match(first.address, /^127\.0\.0\.1:\d+$/);
    const taken = hxc(['worker', '--listen', first.address, '--token-file', tokenFile]);
    assert.equal(isOneLineError(taken, 'HXC2002'), null);
    assert.match(
      taken.stderr,
      new RegExp(`--listen: cannot listen on ${first.address.replace(/\./g, '\\.')}: the address is in use \\(fix: choose another port`),
    );
  } finally {
    first.child.kill('SIGKILL');
  }
  // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): no machine's interface.
  const absent = hxc(['worker', '--listen', '192.0.2.1:7001', '--token-file', tokenFile]);
  assert.equal(isOneLineError(absent, 'HXC2002'), null);
  assert.match(absent.stderr, /cannot listen on 192\.0\.2\.1:7001: no interface of this machine has that address/);
  // A certificate that is no PEM: the files are named, not the address.
  const pem = path.join(dir, 'bad.pem');
  fs.writeFileSync(pem, 'not a certificate\n');
  const badTls = hxc(['worker', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--tls-cert', pem, '--tls-key', pem]);
  assert.equal(isOneLineError(badTls, 'HXC2002'), null);
  assert.match(badTls.stderr, /--tls-cert: the TLS certificate or key cannot be used: /);
});

test('a worker that stalls (SIGSTOP) ends hxc run at --timeout with one HXC2603 line naming the worker, its device and the step it was at, and the run exits then', {
  timeout: 120_000,
}, async () => {
  const dir = tmpDir();
  const token = path.join(dir, 'token.txt');
  fs.writeFileSync(token, 'a-shared-secret-0123456789\n');
  const { out, devices } = plan(dir);
  const worker = await startWorker(token);
  try {
    const file = path.join(dir, 'workers.yaml');
    fs.writeFileSync(file, `format: hxc-workers/v1\ntoken_file: token.txt\nworkers:\n  - {address: "${worker.address}", devices: [${devices.join(', ')}]}\n`);
    const long = hxcAsync(['run', out, '--workers', file, '--decode-steps', '300', '--timeout', '4']);
    await new Promise((r) => setTimeout(r, 4000));
    const stoppedAt = Date.now();
    worker.child.kill('SIGSTOP');
    const end = await long.done;
    assert.equal(end.code, 2, end.stderr);
    assert.ok(end.at - stoppedAt < 4000 + 6000, `exited ${end.at - stoppedAt} ms after the stall (timeout 4 s)`);
    const lines = end.stderr.trim().split('\n');
    assert.equal(lines.length, 1, end.stderr);
    assert.match(
      lines[0]!,
      new RegExp(
        `HXC2603: .*did not finish within 4 s \\(--timeout\\); still running: .*\\(the worker at ${worker.address.replace(/\./g, '\\.')}\\) was at step \\d+`,
      ),
    );
  } finally {
    worker.child.kill('SIGCONT');
    worker.child.kill('SIGKILL');
  }
});

test('hxc run --spawn leaves nothing in the temporary folder: not on Ctrl-C of its process group, and what a kill -9 left is removed by the next --spawn', {
  timeout: 240_000,
}, async () => {
  const dir = tmpDir();
  const { out } = plan(dir);
  const tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  const ours = (): string[] => fs.readdirSync(tmp).filter((n) => n.startsWith('hxc-'));
  const start = (): ChildProcess =>
    spawn(process.execPath, [HXC, 'run', out, '--spawn', '--decode-steps', '300', '--timeout', '60'], {
      stdio: 'ignore',
      detached: true,
      env: { ...process.env, TMPDIR: tmp },
    });
  // Mid-run: once every worker holds its session folder (hxc-worker-PID-…) and a moment more.
  const midRun = async (): Promise<void> => {
    for (let waited = 0; waited < 60_000 && ours().filter((n) => n.startsWith('hxc-worker-')).length === 0; waited += 250)
      await new Promise((r) => setTimeout(r, 250));
    await new Promise((r) => setTimeout(r, 2000));
  };
  const exited = (c: ChildProcess): Promise<void> => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

  const first = start();
  await midRun();
  assert.ok(
    ours().some((n) => n.startsWith('hxc-worker-')),
    `sessions held mid-run: ${ours()}`,
  );
  process.kill(-first.pid!, 'SIGINT');
  await exited(first);
  await new Promise((r) => setTimeout(r, 3000));
  assert.deepEqual(ours(), [], 'Ctrl-C of the group leaves no session folder and no token');

  const second = start();
  await midRun();
  process.kill(-second.pid!, 'SIGKILL');
  await exited(second);
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok(ours().length > 0, 'a kill -9 leaves its folders');
  const again = spawnSync(process.execPath, [HXC, 'run', out, '--spawn'], { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp } });
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(ours(), [], 'the next --spawn removed what the killed one left');
});
