// Terminal output: colour only on a TTY and never with NO_COLOR; errors and progress on stderr.

import { Chalk, type ChalkInstance } from 'chalk';

export function colorEnabled(stream: NodeJS.WriteStream): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0') return true;
  return Boolean(stream.isTTY);
}

export function makeChalk(stream: NodeJS.WriteStream): ChalkInstance {
  return new Chalk({ level: colorEnabled(stream) ? 1 : 0 });
}

/** Stable JSON for machines: two-space indent and a final newline. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

/** Left-aligned text table; `right` lists the columns to right-align (numbers). */
export function table(header: string[], rows: string[][], right: number[] = []): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const fmt = (r: string[]): string =>
    r
      .map((cell, c) => (right.includes(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n') + '\n';
}

/** Lists of device (or link) names up to this long are printed whole; longer ones in runs (idRuns). */
export const LIST_WHOLE = 16;

/** A name's stem and number (`gpu12` → gpu, 12); null without a trailing number, or with a leading zero. */
function stemNumber(id: string): { stem: string; n: number } | null {
  const m = /^(.*?)(\d+)$/.exec(id);
  if (!m || (m[2]!.length > 1 && m[2]!.startsWith('0')) || m[2]!.length > 15) return null;
  return { stem: m[1]!, n: Number(m[2]) };
}

/**
 * Names as the rack file writes a range of them: each stem's numbers ascending, a run of
 * consecutive ones as `gpu[0-255]`, a lone one as itself, names without a number as they are;
 * stems in order of first appearance.
 */
export function idRuns(ids: readonly string[]): string[] {
  // In order of first appearance: a name without a number, or a stem with its numbers.
  const parts: ({ id: string } | { stem: string; ns: number[] })[] = [];
  const stems = new Map<string, number[]>();
  for (const id of new Set(ids)) {
    const sn = stemNumber(id);
    if (!sn) parts.push({ id });
    else {
      let ns = stems.get(sn.stem);
      if (!ns) {
        stems.set(sn.stem, (ns = []));
        parts.push({ stem: sn.stem, ns });
      }
      ns.push(sn.n);
    }
  }
  return parts.flatMap((part) => {
    if ('id' in part) return [part.id];
    const ns = part.ns.sort((a, b) => a - b);
    const runs: string[] = [];
    for (let i = 0; i < ns.length; ) {
      let j = i;
      while (j + 1 < ns.length && ns[j + 1] === ns[j]! + 1) j++;
      runs.push(j > i ? `${part.stem}[${ns[i]}-${ns[j]}]` : `${part.stem}${ns[i]}`);
      i = j + 1;
    }
    return runs;
  });
}

/** Device (or link) names for a line of text: whole up to LIST_WHOLE, in runs past it (idRuns). */
export function nameList(ids: readonly string[]): string {
  return (ids.length <= LIST_WHOLE ? [...ids] : idRuns(ids)).join(', ');
}

/**
 * Names each with a figure (`cpu0 58 / 1.8`): whole up to LIST_WHOLE; past it the names of one
 * figure together, in runs (`cpu[0-31]: 58 / 1.8; gpu96, gpu104: 29 / 0.9`), figures in order of
 * first appearance.
 */
export function namedFigures(entries: readonly (readonly [string, string])[]): string {
  if (entries.length <= LIST_WHOLE) return entries.map(([id, v]) => `${id} ${v}`).join(', ');
  const byFigure = new Map<string, string[]>();
  for (const [id, v] of entries) (byFigure.get(v) ?? byFigure.set(v, []).get(v)!).push(id);
  return [...byFigure].map(([v, ids]) => `${idRuns(ids).join(', ')}: ${v}`).join('; ');
}

/**
 * Table rows of a long table (more than LIST_WHOLE) merged where consecutive rows differ only in
 * their first cell, a name of one stem numbered one more than the last: one row `cpu[2-26]`.
 */
export function mergeRuns(rows: readonly string[][]): string[][] {
  if (rows.length <= LIST_WHOLE) return rows.map((r) => [...r]);
  const merged: { row: string[]; stem: string | null; from: number; to: number }[] = [];
  for (const row of rows) {
    const sn = stemNumber(row[0]!);
    const last = merged[merged.length - 1];
    if (sn && last && last.stem === sn.stem && sn.n === last.to + 1 && row.slice(1).every((c, k) => c === last.row[k + 1])) {
      last.to = sn.n;
      continue;
    }
    merged.push({ row: [...row], stem: sn?.stem ?? null, from: sn?.n ?? 0, to: sn?.n ?? 0 });
  }
  return merged.map((m) => (m.to > m.from ? [`${m.stem}[${m.from}-${m.to}]`, ...m.row.slice(1)] : m.row));
}
