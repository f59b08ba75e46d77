// `hxc run PLAN --spawn`: one `hxc worker` process per device on loopback, for users with one
// machine. Each child gets a fresh random token (in a 0600 file of a private folder), listens on
// a port of its choosing and says which on its first line; it watches its stdin and exits when the
// coordinator does, so no worker outlives the run, killed or not.

import { entriesOfProcesses, holdTemporary, releaseTemporary, scratchDir } from '../../util/temporaries.js';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HxcError } from '../../diag/diagnostics.js';
import type { WorkerSpec } from './remote.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'bin', 'hxc');

export interface Spawned {
  workers: WorkerSpec[];
  token: string;
  pids: number[];
  stop(): Promise<void>;
}

/** A worker that did not start; `said` when it printed why (on the inherited stderr). */
class StartFailure extends Error {
  constructor(
    message: string,
    readonly said: boolean,
  ) {
    super(message);
  }
}

export async function spawnWorkers(devices: readonly string[], timeout_s: number): Promise<Spawned> {
  // Named for this process: one killed outright (kill -9) leaves it, and the next --spawn removes it.
  const dir = scratchDir('spawn');
  holdTemporary(dir); // the workers' token: never left behind, Ctrl-C included
  const token = crypto.randomBytes(24).toString('hex');
  const tokenFile = path.join(dir, 'token');
  fs.writeFileSync(tokenFile, token, { mode: 0o600 });
  const children: ChildProcess[] = [];
  /**
   * Each worker's session folder (hxc-worker-PID-…: copies of the plan and its programs), removed
   * here once it is killed: a worker killed outright cannot remove its own.
   */
  const removeSessions = (): void => {
    const tmp = os.tmpdir();
    const pids = new Set(children.map((c) => c.pid));
    for (const n of entriesOfProcesses(tmp, 'hxc-worker-', (pid) => pids.has(pid))) fs.rmSync(path.join(tmp, n), { recursive: true, force: true });
  };
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    removeSessions();
  };
  process.once('exit', killAll);
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const hard = setTimeout(() => c.kill('SIGKILL'), 5000);
            c.once('exit', () => {
              clearTimeout(hard);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    process.removeListener('exit', killAll);
    removeSessions();
    fs.rmSync(dir, { recursive: true, force: true });
    releaseTemporary(dir);
  };
  try {
    const workers = await Promise.all(
      devices.map(async (device) => {
        const child = spawn(process.execPath, [BIN, 'worker', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--parent-watch'], {
          stdio: ['pipe', 'pipe', 'inherit'],
        });
        children.push(child);
        const address = await new Promise<string>((resolve, reject) => {
          let out = '';
          const timer = setTimeout(() => reject(new StartFailure(`the worker for ${device} did not start within ${timeout_s} s`, false)), timeout_s * 1000);
          child.stdout!.on('data', (b: Buffer) => {
            out += b.toString('utf8');
            const m = /listening on (\S+)/.exec(out);
            if (m) {
              clearTimeout(timer);
              resolve(m[1]!);
            }
          });
          child.once('exit', (code, signal) => {
            clearTimeout(timer);
            // One that exited with a code said why on stderr (inherited); one killed did not.
            reject(new StartFailure(`the worker for ${device} ${signal ? `was killed (${signal})` : `exited with code ${code}`} before listening`, !signal));
          });
        });
        return { address, devices: [device] };
      }),
    );
    return { workers, token, pids: children.map((c) => c.pid!).filter((p) => p !== undefined), stop };
  } catch (err) {
    await stop();
    throw new HxcError('HXC2603', (err as Error).message, {
      where: '--spawn',
      hint: (err as StartFailure).said
        ? "the worker's own message is above; `hxc worker --listen 127.0.0.1:0` shows it alone"
        : 'run `hxc worker --listen 127.0.0.1:0` alone to see whether a worker starts on this machine',
    });
  }
}
