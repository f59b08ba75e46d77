// The YAML side of the topology reader: plain data plus `file:line` for any path into it (aliases
// resolved and bounded), typed readers that name the field and its line when a value is wrong, id
// ranges, and close matches for a misspelt name.

import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document } from 'yaml';
import { HxcError } from '../diag/diagnostics.js';
import { MAX_ALIAS_COUNT, MAX_EXPANSION, type Obj, type Path } from './load-limits.js';

// ---------------------------------------------------------------------------------------------
// YAML → plain data plus positions.

/** Plain data from the document, and `file:line` for any path into it (resolving aliases). */
export class Source {
  constructor(
    readonly file: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  /** `file:line` of the node at `path`, or of its deepest existing ancestor (for missing fields). */
  where(path: Path): string {
    let node: unknown = this.doc.contents;
    let offset = startOf(node) ?? 0;
    for (const key of path) {
      if (isAlias(node)) node = node.resolve(this.doc);
      let next: unknown;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
        next = pair ? (pair.value ?? pair.key) : undefined;
      } else if (isSeq(node) && typeof key === 'number') {
        next = node.items[key];
      }
      if (next === undefined || next === null) break;
      node = next;
      offset = startOf(node) ?? offset;
    }
    return `${this.file}:${Math.max(1, this.lines.linePos(offset).line)}`;
  }
}

export function startOf(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? range[0] : undefined;
}

export function readYaml(text: string, file: string): { data: unknown; src: Source } {
  const lines = new LineCounter();
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  } catch (err) {
    // Pathological input (e.g. nesting deep enough to exhaust the stack) must not escape as a trace.
    throw new HxcError('HXC2301', `invalid YAML: ${oneLine((err as Error).message)}`, { where: `${file}:1` });
  }
  const firstError = doc.errors[0];
  if (firstError) {
    const line = Math.max(1, lines.linePos(firstError.pos[0]).line);
    throw new HxcError('HXC2301', `invalid YAML: ${oneLine(firstError.message)}`, { where: `${file}:${line}` });
  }
  const src = new Source(file, doc, lines);
  try {
    return { data: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }), src };
  } catch (err) {
    // The library throws a ReferenceError for alias bombs ("Excessive alias count ..."); point at
    // the alias that expands the most, which is where the bomb goes off.
    const alias = largestAlias(doc);
    throw new HxcError('HXC2301', `invalid YAML: ${oneLine((err as Error).message)}`, {
      where: `${file}:${alias === undefined ? 1 : Math.max(1, lines.linePos(alias).line)}`,
      hint: `use fewer aliases (at most ${MAX_ALIAS_COUNT} expanded nodes per alias)`,
    });
  }
}

/** Offset of the alias whose expansion has the most nodes (first in document order on ties). */
export function largestAlias(doc: Document.Parsed): number | undefined {
  const sizes = new Map<unknown, number>();
  let best: { offset: number; size: number } | undefined;
  const size = (node: unknown, depth: number): number => {
    if (depth > 256) return 1;
    if (isAlias(node)) {
      const target = node.resolve(doc);
      let n = sizes.get(target);
      if (n === undefined) {
        sizes.set(target, 1); // guards against a cycle while counting
        n = size(target, depth + 1);
        sizes.set(target, n);
      }
      const offset = startOf(node);
      if (offset !== undefined && (best === undefined || n > best.size)) best = { offset, size: n };
      return n;
    }
    let n = 1;
    if (isMap(node)) for (const pair of node.items) n += size(pair.key, depth + 1) + size(pair.value, depth + 1);
    else if (isSeq(node)) for (const item of node.items) n += size(item, depth + 1);
    return Math.min(n, Number.MAX_SAFE_INTEGER);
  };
  try {
    size(doc.contents, 0);
  } catch {
    return undefined;
  }
  return best?.offset;
}

export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

// ---------------------------------------------------------------------------------------------
// Small typed readers: each names the field and its line when the value is wrong or missing.

export class Reader {
  /** `schema`: the fix a failure says when it has no more precise one (a rack's is HXC2302's own: its schema and an example). */
  constructor(
    readonly src: Source,
    readonly schema?: string,
  ) {}

  at(path: Path): string {
    return this.src.where(path);
  }

  invalid(path: Path, message: string, hint?: string): HxcError {
    return new HxcError('HXC2302', message, { where: this.at(path), hint: hint ?? this.schema });
  }

  object(value: unknown, path: Path, what: string): Obj {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw this.invalid(path, `${what} must be a mapping (key: value lines), found ${describe(value)}`);
    }
    return value as Obj;
  }

  list(value: unknown, path: Path, what: string): unknown[] {
    if (!Array.isArray(value)) throw this.invalid(path, `${what} must be a list, found ${describe(value)}`);
    return value;
  }

  string(value: unknown, path: Path, what: string): string {
    if (typeof value !== 'string' || value === '') {
      throw this.invalid(path, `${what} must be a non-empty string, found ${describe(value)}`, 'quote it if YAML reads it as a number or boolean');
    }
    return value;
  }

  required(obj: Obj, key: string, path: Path, what: string, hint?: string): unknown {
    const value = own(obj, key);
    if (value === undefined || value === null) throw this.invalid(path, `${what}: missing field "${key}"`, hint);
    return value;
  }
}

export function own(obj: Obj, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

// ---------------------------------------------------------------------------------------------
// Id ranges: `gpu[0-7]` → gpu0..gpu7; `x[2-3]`; `n[0-1]g[0-3]` (product, in order); `gpu[0,2,4-5]`;
// `gpu[00-07]` keeps the zero padding. `count: N` on a device with id `gpu` means gpu0..gpu(N-1).

export function expandIds(text: string): string[] | string {
  const open = text.indexOf('[');
  if (open < 0) return text.includes(']') ? `unbalanced "]" in "${text}"` : [text];
  const close = text.indexOf(']', open);
  if (close < 0) return `unbalanced "[" in "${text}"`;
  const items: string[] = [];
  for (const part of text.slice(open + 1, close).split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) return `bad range "[${text.slice(open + 1, close)}]" in "${text}" (write [0-7] or [0,2,4-5])`;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return `range [${m[1]}-${m[2]}] in "${text}" runs backwards`;
    if (hi - lo + 1 + items.length > MAX_EXPANSION) return `range in "${text}" names more than ${MAX_EXPANSION} ids`;
    const width = (m[1] as string).length > 1 && (m[1] as string).startsWith('0') ? (m[1] as string).length : 0;
    for (let k = lo; k <= hi; k++) items.push(String(k).padStart(width, '0'));
  }
  const rest = expandIds(text.slice(close + 1));
  if (typeof rest === 'string') return rest;
  if (items.length * rest.length > MAX_EXPANSION) return `"${text}" names more than ${MAX_EXPANSION} ids`;
  const prefix = text.slice(0, open);
  return items.flatMap((item) => rest.map((tail) => prefix + item + tail));
}

/**
 * Up to three known names within a small edit distance, closest first (ties by name). `limit`: the
 * largest distance taken (default an edit per three letters, at least 2); `ignoreCase`: distances
 * between the lower-cased names ("Matmul" is 0 from MatMul).
 */
export function closeMatches(name: string, known: readonly string[], opts: { limit?: number; ignoreCase?: boolean } = {}): string[] {
  const limit = opts.limit ?? Math.max(2, Math.floor(name.length / 3));
  const fold = (x: string): string => (opts.ignoreCase ? x.toLowerCase() : x);
  const target = fold(name);
  return known
    .map((k) => ({ k, d: editDistance(target, fold(k)) }))
    .filter((x) => x.d <= limit)
    .sort((a, b) => a.d - b.d || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .slice(0, 3)
    .map((x) => x.k);
}

export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}

// ---------------------------------------------------------------------------------------------
