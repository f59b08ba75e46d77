// Writing what hxc produces without ever losing what it did not: a folder of outputs (a plan, the
// pass dumps, a run's telemetry, a simulation's trace) is written whole into a temporary sibling
// and renamed into place; an existing target is replaced only when hxc wrote all of it — its
// `.hxc-output` marker lists every file hxc put there, and a file it does not list (one the user
// added) makes the folder the user's; symlinks are never followed.
// The swap keeps the old folder until the new one is in place, and a write killed half-way leaves
// only temporaries named for its process, which the next write removes — or, if the kill fell
// between the two renames, puts the previous folder back.

import fs from 'node:fs';
import path from 'node:path';
import { HxcError } from '../diag/diagnostics.js';
import { holdTemporary, leftoversOfDead, releaseTemporary } from './temporaries.js';

/** Written into every output folder: what it is (an hxc format name). */
export const OUTPUT_MARKER = '.hxc-output';

/** A file's text, a hard link to an existing file, or bytes a writer hands over in chunks (plan.json, a pack of programs). */
export type OutputEntry =
  /** A file's whole text; a function is called when the file is written (after the entries before it). */
  | { file: string; text: string | Uint8Array | (() => string | Uint8Array) }
  | { file: string; link: string }
  /** Bytes handed over in order by `write` (each chunk written before the next is made). */
  | { file: string; write: (sink: (bytes: Uint8Array) => void) => void };

export type OutputState = 'absent' | 'empty' | 'ours' | 'foreign';

/**
 * The marker's text: the kind on its first line, then, as one JSON array, every file hxc writes
 * into the folder (relative paths, `/`-separated). Written first, before those files.
 */
function markerText(kind: string, files: readonly string[]): string {
  return `${kind}\n${JSON.stringify(files.map((f) => path.normalize(f).split(path.sep).join('/')))}\n`;
}

/**
 * Top-level names an output of an earlier version (a marker without its list of files, or a plan
 * directory from before the marker) may hold: a plan's files and folders, a run's, a simulation's,
 * the pass dumps (NN-pass.txt).
 */
const EARLIER_NAMES = new Set([
  OUTPUT_MARKER,
  'plan.json',
  'plan.sha256',
  'trace.json',
  'programs',
  'report.html',
  'delta.json',
  'run',
  'sim',
  'telemetry.json',
  'expert_routing.json',
]);
const EARLIER_DUMP = /^[0-9]{2,}-[a-z][a-z0-9-]*\.txt$/;

/** An HTML report's head as hxc writes it (its generator meta tag): hxc report writes one into a plan directory after it. */
export const HXC_REPORT = /<meta name="generator" content="hxc /;

/** Files other hxc commands add to an output folder later, by top-level name, each told by its head. */
const ADDED_LATER: ReadonlyMap<string, RegExp> = new Map([['report.html', HXC_REPORT]]);

function addedLater(file: string, name: string): boolean {
  const head = ADDED_LATER.get(name);
  if (!head) return false;
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4096);
    return head.test(buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString('utf8'));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * What in output folder `dir` hxc did not write, at most `max` (relative paths, a folder with a
 * trailing /): every file its marker does not list; a folder holding a marker of its own (a run's
 * or a simulation's inside a plan) answers for itself. `listed` null: an earlier version's output,
 * whose top-level names alone can be checked.
 */
function strays(dir: string, listed: ReadonlySet<string> | null, max = 3): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(rel ? path.join(dir, rel) : dir, { withFileTypes: true })) {
      if (out.length >= max) return;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (r === OUTPUT_MARKER) continue;
      if (listed === null) {
        if (!(EARLIER_NAMES.has(e.name) || (e.isFile() && EARLIER_DUMP.test(e.name)))) out.push(e.isDirectory() ? `${r}/` : r);
        continue;
      }
      if (e.isDirectory()) {
        if (isRegular(path.join(dir, r, OUTPUT_MARKER))) {
          if (outputState(path.join(dir, r)) !== 'ours') out.push(`${r}/`);
        } else walk(r);
      } else if (!listed.has(r) && !(rel === '' && e.isFile() && addedLater(path.join(dir, r), e.name))) out.push(r);
    }
  };
  walk('');
  return out;
}

/** The files an output folder's marker lists; null for an earlier version's marker (its kind alone); undefined when it has none. */
function listedIn(dir: string): Set<string> | null | undefined {
  const marker = path.join(dir, OUTPUT_MARKER);
  if (!isRegular(marker)) return undefined;
  const lines = fs.readFileSync(marker, 'utf8').split('\n');
  if (lines.length < 2 || lines[1] === '') return null;
  try {
    const files = JSON.parse(lines[1]!) as unknown;
    return Array.isArray(files) ? new Set(files.filter((f): f is string => typeof f === 'string')) : new Set();
  } catch {
    return new Set(); // a marker hxc did not write: nothing in the folder counts as hxc's
  }
}

/** Whether `dir` may be replaced: absent, an empty folder, or a folder hxc wrote all of. Never follows a symlink. */
export function outputState(dir: string): OutputState {
  return outputCheck(dir).state;
}

/** outputState, with what makes a folder that holds hxc's marker the user's too (files hxc did not write). */
function outputCheck(dir: string): { state: OutputState; strays: string[] } {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'absent', strays: [] };
    throw writeError(err, dir);
  }
  if (!st.isDirectory()) return { state: 'foreign', strays: [] };
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (err) {
    throw writeError(err, dir);
  }
  if (entries.length === 0) return { state: 'empty', strays: [] };
  let listed: Set<string> | null | undefined;
  try {
    listed = listedIn(dir);
    if (listed === undefined) {
      // A plan directory written before the marker existed: its plan.json says so, and it holds nothing else.
      const plan = path.join(dir, 'plan.json');
      if (!isRegular(plan)) return { state: 'foreign', strays: [] };
      try {
        if (JSON.parse(fs.readFileSync(plan, 'utf8')).format !== 'hxc-plan/v1') return { state: 'foreign', strays: [] };
      } catch {
        return { state: 'foreign', strays: [] };
      }
      listed = null;
    }
    const found = strays(dir, listed);
    return { state: found.length === 0 ? 'ours' : 'foreign', strays: found };
  } catch (err) {
    throw writeError(err, dir);
  }
}

/** The kind of output a folder of hxc's holds (its marker's first line; a plan before the marker: a plan). */
function kindOf(dir: string): string {
  const marker = path.join(dir, OUTPUT_MARKER);
  return isRegular(marker) ? (fs.readFileSync(marker, 'utf8').split('\n', 1)[0] ?? '') : 'hxc-plan/v1';
}

/** What each kind of output is, for the line that refuses to replace one with another. */
const KIND_NAMES: Record<string, string> = {
  'hxc-plan/v1': 'a plan',
  'hxc-run/v1': "a run's telemetry",
  'hxc-dump/v1': 'pass dumps',
  'hxc-sim/v1': "a simulation's trace",
};

/**
 * Refuses (exit 2, nothing touched) a target hxc may not replace: a file, a folder of the user's,
 * a folder of hxc's to which the user added files, or — given the `kind` about to be written — one
 * of hxc's holding another kind of output (a run's telemetry is not replaced by a plan). Returns its
 * state otherwise.
 */
export function replaceableOutput(dir: string, kind?: string): OutputState {
  const { state, strays } = outputCheck(path.resolve(dir));
  if (state === 'ours' && kind !== undefined) {
    const held = kindOf(path.resolve(dir));
    if (held !== kind)
      throw new HxcError(
        'HXC2004',
        `holds ${KIND_NAMES[held] ?? held} hxc wrote, not ${KIND_NAMES[kind] ?? kind}; hxc replaces an output only with one of its kind`,
        {
          where: dir,
          hint: 'choose another folder',
        },
      );
  }
  if (state !== 'foreign') return state;
  if (strays.length > 0)
    throw new HxcError('HXC2004', `holds files hxc did not write (${strays.join(', ')}); hxc replaces only its own outputs`, {
      where: dir,
      hint: 'move those files out of it, or choose another folder',
    });
  throw new HxcError('HXC2004', 'exists and is not a folder hxc wrote; hxc replaces only its own outputs', {
    where: dir,
    hint: 'choose a new or empty folder, or one hxc wrote before',
  });
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

/**
 * Temporaries left by a killed write of `target`: each named `.NAME.hxc-tmp-PID-XXXXXX[.old]`.
 * A `.old` one holds the previous folder, moved aside just before the new one was renamed in: if
 * the target is missing, it goes back; otherwise, like every other leftover of a dead process, it
 * is removed (only when it carries the marker — nothing else is ever deleted).
 */
export function recoverStale(target: string): void {
  const parent = path.dirname(target);
  for (const name of leftoversOfDead(parent, `.${path.basename(target)}${TMP_TAG}`)) {
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
/**
 * Refuses an output folder that is, or holds, a file or folder the command reads: replacing the
 * folder would lose that input (the running plan a replan reads, the telemetry a plan is
 * calibrated with). hxc wrote them, so the folder alone would not stop it.
 */
export function refuseHoldingInputs(dir: string, inputs: readonly (string | null | undefined)[]): void {
  const target = path.resolve(dir);
  for (const input of inputs) {
    if (!input) continue;
    const at = path.resolve(input);
    if (at !== target && !at.startsWith(target + path.sep)) continue;
    throw new HxcError(
      'HXC2004',
      `holds ${path.relative(process.cwd(), at) || at}, which this command reads; hxc does not replace a folder holding its inputs`,
      {
        where: dir,
        hint: 'choose another folder for the output',
      },
    );
  }
}

/**
 * Refuses (exit 2) an output folder that could not be written: the nearest folder on its way that
 * exists does not let hxc make entries in it. Asked before planning, so an hour of planning is not
 * lost to a read-only --out at the end.
 */
export function refuseUnwritable(dir: string): void {
  let at = path.dirname(path.resolve(dir));
  while (!fs.existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  try {
    fs.accessSync(at, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw writeError(err, at);
  }
}

/** Why a hard link cannot be made: another file system, one without hard links, or a file the user may not link (protected_hardlinks: EPERM). */
const LINKLESS = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP']);

/** Writes the output; the linked files it had to copy (once each: their source on another file system). */
export function writeOutputDir(dir: string, files: OutputEntry[], kind: string): { copied: { file: string; bytes: number }[] } {
  const copied: { file: string; bytes: number }[] = [];
  const copies = new Map<string, string>();
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  try {
    fs.mkdirSync(parent, { recursive: true });
  } catch (err) {
    throw writeError(err, parent);
  }
  recoverStale(target);
  const state = replaceableOutput(dir, kind);
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
  holdTemporary(tmp);
  try {
    // The marker first, listing every file to come: a temporary killed at any later point is
    // recognisably hxc's (recoverStale), and a file added to the folder later is not.
    fs.writeFileSync(
      path.join(tmp, OUTPUT_MARKER),
      markerText(
        kind,
        files.map((f) => f.file),
      ),
    );
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
        } catch (err) {
          // Weights on another file system (or one without hard links). A symbolic link will not
          // do: onnxruntime refuses external data whose real path leaves the program's folder. So
          // one copy in the output, which every other device's folder hard-links — never a copy
          // per device (a Mixtral-8x7B's weights are 93 GB). A clone where the file system has them.
          if (!LINKLESS.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
          const copy = copies.get(f.link);
          if (copy !== undefined) fs.linkSync(copy, p);
          else {
            fs.copyFileSync(f.link, p, fs.constants.COPYFILE_FICLONE);
            copies.set(f.link, p);
            copied.push({ file: f.file, bytes: fs.statSync(p).size });
          }
        }
      } else if ('write' in f) {
        const fd = fs.openSync(p, 'wx');
        try {
          f.write((part) => writeRest(fd, part, 0));
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
    return { copied };
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw writeError(err, dir);
  } finally {
    releaseTemporary(tmp);
  }
}

/** Writes `part` from byte `done` on; writeSync may write less than asked (Linux stops one write at 2 GiB - 4 KiB): until all is written. */
function writeRest(fd: number, part: Uint8Array, done: number): void {
  while (done < part.length) done += fs.writeSync(fd, part, done);
}

/** Whether `file` is one of the files an output folder of hxc's lists (a plan's trace.json). */
export function heldByOutput(file: string): boolean {
  const listed = listedIn(path.dirname(path.resolve(file)));
  return listed !== undefined && (listed === null || listed.has(path.basename(file)));
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
    holdTemporary(tmp);
    fs.writeFileSync(tmp, text, { flag: 'wx' });
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw writeError(err, file);
  } finally {
    releaseTemporary(tmp);
  }
}
