// Writing what hxc produces without ever losing what it did not: a folder of outputs (a plan, the
// pass dumps, a run's telemetry, a simulation's trace) is written whole into a temporary sibling
// and renamed into place; an existing target is replaced only when hxc wrote it (it holds the
// `.hxc-output` marker, or is a plan directory of an earlier version); symlinks are never followed.
// The swap keeps the old folder until the new one is in place, and a write killed half-way leaves
// only temporaries named for its process, which the next write removes — or, if the kill fell
// between the two renames, puts the previous folder back.

import fs from 'node:fs';
import path from 'node:path';
import { HxcError } from '../diag/diagnostics.js';

/** Written into every output folder: what it is (an hxc format name). */
export const OUTPUT_MARKER = '.hxc-output';

/** A file's text, a hard link to an existing file, parts written one after another (a pack, never concatenated in memory), or bytes a writer hands over in chunks (plan.json). */
export type OutputEntry =
  /** A file's whole text; a function is called when the file is written (after the entries before it). */
  | { file: string; text: string | Uint8Array | (() => string | Uint8Array) }
  | { file: string; link: string }
  | { file: string; parts: readonly Uint8Array[] }
  /** Bytes handed over in order by `write` (each chunk written before the next is made). */
  | { file: string; write: (sink: (bytes: Uint8Array) => void) => void };

export type OutputState = 'absent' | 'empty' | 'ours' | 'foreign';

/** Whether `dir` may be replaced: absent, an empty folder, or a folder hxc wrote. Never follows a symlink. */
export function outputState(dir: string): OutputState {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw writeError(err, dir);
  }
  if (!st.isDirectory()) return 'foreign';
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (err) {
    throw writeError(err, dir);
  }
  if (entries.length === 0) return 'empty';
  if (isRegular(path.join(dir, OUTPUT_MARKER))) return 'ours';
  // A plan directory written before the marker existed: its plan.json says so.
  const plan = path.join(dir, 'plan.json');
  if (isRegular(plan)) {
    try {
      if (JSON.parse(fs.readFileSync(plan, 'utf8')).format === 'hxc-plan/v1') return 'ours';
    } catch {
      // not a plan
    }
  }
  return 'foreign';
}

function isRegular(file: string): boolean {
  try {
    return fs.lstatSync(file).isFile();
  } catch {
    return false;
  }
}

/** One line for a failed write: the folder, the system's reason, and what to do. */
function writeError(err: unknown, where: string): HxcError {
  if (err instanceof HxcError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const why: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'not permitted',
    EROFS: 'read-only file system',
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    ENOTDIR: 'a path component is a file, not a folder',
    EISDIR: 'a folder is in the way',
    EEXIST: 'something is in the way',
    ENAMETOOLONG: 'the name is too long',
    ELOOP: 'too many symbolic links',
    EXDEV: 'crosses file systems',
  };
  return new HxcError('HXC2005', `cannot write there: ${why[code] ?? ((err as Error).message || code)}`, { where, hint: 'choose a folder you can write to' });
}

const TMP_TAG = '.hxc-tmp-';

function tmpPrefix(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}${TMP_TAG}`);
}

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
 * Temporaries left by a killed write of `target`: each named `.NAME.hxc-tmp-PID-XXXXXX[.old]`.
 * A `.old` one holds the previous folder, moved aside just before the new one was renamed in: if
 * the target is missing, it goes back; otherwise, like every other leftover of a dead process, it
 * is removed (only when it carries the marker — nothing else is ever deleted).
 */
export function recoverStale(target: string): void {
  const parent = path.dirname(target);
  const prefix = `.${path.basename(target)}${TMP_TAG}`;
  let names: string[];
  try {
    names = fs
      .readdirSync(parent)
      .filter((n) => n.startsWith(prefix))
      .sort();
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (alive(pid)) continue;
    const stale = path.join(parent, name);
    const state = outputState(stale);
    // Ours (the marker is the first file written), or empty (killed right after it was made).
    if (state === 'empty') {
      fs.rmdirSync(stale);
      continue;
    }
    if (state !== 'ours') continue;
    if (name.endsWith('.old') && outputState(target) === 'absent') fs.renameSync(stale, target);
    else fs.rmSync(stale, { recursive: true, force: true });
  }
}

/**
 * Write `files` as the folder `dir`, `kind` naming what it is (written into the marker). An
 * existing `dir` is replaced only if hxc wrote it (or it is empty); anything else is exit 2 and
 * nothing is touched. `link` entries are hard links to an existing file (weights are never
 * copied); where the file system refuses a hard link (another device), the file is copied.
 */
export function writeOutputDir(dir: string, files: OutputEntry[], kind: string): void {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  try {
    fs.mkdirSync(parent, { recursive: true });
  } catch (err) {
    throw writeError(err, parent);
  }
  recoverStale(target);
  const state = outputState(target);
  if (state === 'foreign') {
    throw new HxcError('HXC2004', 'exists and is not a folder hxc wrote; hxc replaces only its own outputs', {
      where: dir,
      hint: 'choose a new or empty folder, or one hxc wrote before',
    });
  }
  const cwd = path.resolve('.');
  if (state !== 'absent' && (cwd === target || cwd.startsWith(target + path.sep))) {
    throw new HxcError('HXC2004', 'is the current folder (or holds it); hxc does not replace the folder it runs in', {
      where: dir,
      hint: 'choose a folder inside it, e.g. --out hxc-plan',
    });
  }
  let tmp: string;
  try {
    tmp = fs.mkdtempSync(`${tmpPrefix(target)}${process.pid}-`);
  } catch (err) {
    throw writeError(err, parent);
  }
  try {
    // The marker first: a temporary killed at any later point is recognisably hxc's (recoverStale).
    fs.writeFileSync(path.join(tmp, OUTPUT_MARKER), `${kind}\n`);
    // Each folder is made once: a recursive mkdir of a folder that exists, per file, made the
    // next open of a file in it slow (30k programs: 15 s against 1.8 s on this machine).
    const made = new Set<string>([tmp]);
    for (const f of files) {
      const p = path.join(tmp, f.file);
      if (!p.startsWith(tmp + path.sep)) throw new Error(`output entry ${f.file} leaves its folder`);
      const folder = path.dirname(p);
      if (!made.has(folder)) {
        fs.mkdirSync(folder, { recursive: true });
        made.add(folder);
      }
      if ('link' in f) {
        try {
          fs.linkSync(f.link, p);
        } catch {
          fs.copyFileSync(f.link, p);
        }
      } else if ('parts' in f || 'write' in f) {
        const fd = fs.openSync(p, 'wx');
        try {
          if ('parts' in f) writeParts(fd, f.parts);
          else f.write((part) => writeRest(fd, part, 0));
        } finally {
          fs.closeSync(fd);
        }
      } else fs.writeFileSync(p, typeof f.text === 'function' ? f.text() : f.text);
    }
    if (state === 'absent') fs.renameSync(tmp, target);
    else {
      // Keep the old folder until the new one is in place; a kill between the renames leaves it
      // as `.old`, which the next write restores (recoverStale).
      const old = `${tmp}.old`;
      fs.renameSync(target, old);
      fs.renameSync(tmp, target);
      fs.rmSync(old, { recursive: true, force: true });
    }
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw writeError(err, dir);
  }
}

/** Parts given to one writev call: Linux's IOV_MAX. */
const WRITEV_PARTS = 1024;

/**
 * Writes `parts` one after another at the file's position, a thousand in one call: a pack is
 * thousands of programs of a few KB each, and a call per program was most of its writing.
 */
function writeParts(fd: number, parts: readonly Uint8Array[]): void {
  for (let from = 0; from < parts.length; from += WRITEV_PARTS) {
    const batch = parts.slice(from, from + WRITEV_PARTS);
    // A call may write less than asked: whatever it left goes on part by part.
    let wrote = fs.writevSync(fd, batch);
    for (const part of batch) {
      if (wrote >= part.length) wrote -= part.length;
      else {
        writeRest(fd, part, wrote);
        wrote = 0;
      }
    }
  }
}

/** Writes `part` from byte `done` on; writeSync may write less than asked (Linux stops one write at 2 GiB - 4 KiB): until all is written. */
function writeRest(fd: number, part: Uint8Array, done: number): void {
  while (done < part.length) done += fs.writeSync(fd, part, done);
}

/**
 * Write one file the user named (a trace): through a temporary sibling and a rename, never through
 * a symlink, and over an existing file only when `ours(text)` says hxc wrote it.
 */
export function writeOutputFile(file: string, text: string, ours: (existing: string) => boolean): void {
  const target = path.resolve(file);
  let st: fs.Stats | null = null;
  try {
    st = fs.lstatSync(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw writeError(err, file);
  }
  if (st) {
    let mine = false;
    if (st.isFile() && st.size < 1 << 30) {
      try {
        mine = ours(fs.readFileSync(target, 'utf8'));
      } catch {
        mine = false;
      }
    }
    if (!mine)
      throw new HxcError('HXC2004', 'exists and is not a file hxc wrote; hxc replaces only its own outputs', { where: file, hint: 'choose a new file name' });
  }
  const tmp = `${target}.hxc-tmp-${process.pid}`;
  try {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.rmSync(tmp, { force: true }); // a leftover of a killed run with this pid (a symlink is removed, not followed)
    fs.writeFileSync(tmp, text, { flag: 'wx' });
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw writeError(err, file);
  }
}
