// Temporaries hxc makes — a folder or file being written before its rename, a token file, a
// scratch plan — never outlive the command. One being written is removed if the command is
// interrupted (Ctrl-C, SIGTERM, SIGHUP) while it is held: a handler is installed only while
// something is held, since Node runs it between synchronous steps, and a long synchronous
// computation (planning a frontier graph) must still stop at once on Ctrl-C. A scratch folder that
// lives through such a computation is named for its process instead, and the next command that
// makes one removes those of processes that are gone.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const held = new Set<string>();
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
const handlers = new Map<string, () => void>();

function removeHeld(): void {
  for (const p of held) {
    try {
      fs.rmSync(p, { recursive: true, force: true });
    } catch {
      // best effort: the next write of the same target removes a leftover of a dead process
    }
  }
  held.clear();
}

/** Remove `p` (a path hxc made) if the command is interrupted before `releaseTemporary(p)`. */
export function holdTemporary(p: string): void {
  if (held.size === 0)
    for (const [signal, n] of Object.entries(SIGNALS)) {
      const handler = (): void => {
        removeHeld();
        process.exit(128 + n);
      };
      handlers.set(signal, handler);
      process.on(signal, handler);
    }
  held.add(p);
}

/** `p` is gone or kept on purpose: an interruption leaves it alone (and, with nothing held, stops the process as usual). */
export function releaseTemporary(p: string): void {
  if (!held.delete(p) || held.size > 0) return;
  for (const [signal, handler] of handlers) process.off(signal, handler);
  handlers.clear();
}

/** Whether process `pid` is running (ours, or another user's). */
function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The entries of `parent` named `PREFIX<pid>-…` whose process is gone (what a killed command left),
 * sorted; none when `parent` cannot be read. A name without a process id is no leftover of hxc's.
 */
export function leftoversOfDead(parent: string, prefix: string): string[] {
  return entriesOfProcesses(parent, prefix, (pid) => !alive(pid));
}

/** The entries of `parent` named `PREFIX<pid>-…` for the processes `of` picks, sorted; none when `parent` cannot be read. */
export function entriesOfProcesses(parent: string, prefix: string, of: (pid: number) => boolean): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(parent).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
  return names
    .filter((n) => {
      const pid = Number(n.slice(prefix.length).split('-')[0]);
      return Number.isInteger(pid) && pid > 0 && of(pid);
    })
    .sort();
}

/**
 * A fresh scratch folder in the system's temporary folder, `hxc-NAME-PID-XXXXXX`; those an earlier
 * command of this kind left when it was killed (its process gone) are removed first.
 */
export function scratchDir(name: string): string {
  const tmp = os.tmpdir();
  const prefix = `hxc-${name}-`;
  for (const n of leftoversOfDead(tmp, prefix)) {
    try {
      fs.rmSync(path.join(tmp, n), { recursive: true, force: true });
    } catch {
      // another user's, or in use: left
    }
  }
  return fs.mkdtempSync(path.join(tmp, `${prefix}${process.pid}-`));
}
