// Where a plan's programs live. A small plan writes one ONNX file per program
// (`programs/<device>/<k>.onnx`, each openable on its own, in Netron say). A plan of many programs
// packs each device's programs into a few files, `programs/<device>/programs-<k>.pack`: the programs'
// bytes one after another, each found by its `offset_bytes` and `bytes` in plan.json. The names
// stay the same either way (steps, telemetry and workers name programs, not files). Thousands of
// small files cost more to create, hash and remove than their bytes do: the 29,444 programs of a
// DeepSeek-V3-shaped plan took 6–20 s to write as files on this machine's disk.

import fs from 'node:fs';
import path from 'node:path';

/** One program in plan.json's `programs`. */
export interface ProgramMeta {
  sha256: string;
  bytes: number;
  inputs: string[];
  outputs: string[];
  /** The pack holding its bytes (a path inside the plan folder), absent when the program is its own file. */
  pack?: string;
  /** Where its bytes start in the pack. */
  offset_bytes?: number;
}

/** A device's packs, inside its program folder: `programs-0.pack`, `programs-1.pack`, … (a new one past PACK_MAX_BYTES). */
export const PACK_NAME = /^programs-[0-9]+\.pack$/;
/** A pack is closed before it would pass this size. */
export const PACK_MAX_BYTES = 1 << 30;

/** Above this many programs, `--pack-programs auto` packs them. */
export const PACK_ABOVE_PROGRAMS = 1000;

/** The file a program's bytes are in and where: its own file from 0, or its pack at its offset. */
export function programLocation(name: string, meta: ProgramMeta): { file: string; offset: number } {
  return meta.pack !== undefined ? { file: meta.pack, offset: meta.offset_bytes ?? 0 } : { file: name, offset: 0 };
}

/**
 * Reads programs, keeping each pack open while it is read from (the caller closes). `dir` is the
 * plan folder; the locations must have been checked to lie inside it (src/plan/read.ts).
 */
export class ProgramReader {
  private readonly fds = new Map<string, number>();
  constructor(private readonly dir: string) {}

  read(name: string, meta: ProgramMeta): Buffer {
    const { file, offset } = programLocation(name, meta);
    if (meta.pack === undefined) return fs.readFileSync(path.join(this.dir, file));
    let fd = this.fds.get(file);
    if (fd === undefined) {
      fd = fs.openSync(path.join(this.dir, file), 'r');
      this.fds.set(file, fd);
    }
    const out = Buffer.allocUnsafe(meta.bytes);
    let done = 0;
    while (done < meta.bytes) {
      const n = fs.readSync(fd, out, done, meta.bytes - done, offset + done);
      if (n === 0) throw new Error(`program ${name}: its pack ${file} ends before byte ${offset + meta.bytes}`);
      done += n;
    }
    return out;
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

/**
 * The files to write for `programs` and each program's place: packed per device folder when
 * `pack`, else one file each; a file lists the programs it holds, by index, in the order written.
 * Names sort, so the same programs give the same packs.
 */
export function layoutPrograms(
  programs: readonly { file: string; size: number }[],
  pack: boolean,
): { files: { file: string; programs: number[] }[]; place: Map<string, { pack?: string; offset_bytes?: number }> } {
  const place = new Map<string, { pack?: string; offset_bytes?: number }>();
  if (!pack) {
    for (const p of programs) place.set(p.file, {});
    return { files: programs.map((p, k) => ({ file: p.file, programs: [k] })), place };
  }
  const byFolder = new Map<string, number[]>();
  const sorted = programs.map((_, k) => k).sort((a, b) => (programs[a]!.file < programs[b]!.file ? -1 : programs[a]!.file > programs[b]!.file ? 1 : 0));
  for (const k of sorted) {
    const folder = path.posix.dirname(programs[k]!.file);
    (byFolder.get(folder) ?? byFolder.set(folder, []).get(folder)!).push(k);
  }
  const files: { file: string; programs: number[] }[] = [];
  for (const [folder, list] of byFolder) {
    let n = 0;
    let held: number[] = [];
    let offset = 0;
    const close = (): void => {
      files.push({ file: `${folder}/programs-${n++}.pack`, programs: held });
      held = [];
      offset = 0;
    };
    for (const k of list) {
      const p = programs[k]!;
      if (held.length > 0 && offset + p.size > PACK_MAX_BYTES) close();
      place.set(p.file, { pack: `${folder}/programs-${n}.pack`, offset_bytes: offset });
      held.push(k);
      offset += p.size;
    }
    close();
  }
  return { files, place };
}
