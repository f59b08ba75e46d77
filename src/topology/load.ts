// Reads a topology (`hxc-topology/v1` YAML) into a normalized, fully numeric Topology: ranges
// expanded, units turned into SI numbers, catalog defaults filled in, every name checked. Every
// error is an HxcError whose `where` is `file:line` of the offending YAML node. Relies on `yaml`
// (parseDocument + LineCounter for positions, maxAliasCount against alias bombs), units.ts, catalog.ts.

import { readFileSync, statSync } from 'node:fs';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document } from 'yaml';
import { HxcError } from '../diag/diagnostics.js';
import { CATALOG_NAMES, COMPUTE_CLASSES, DEVICE_KINDS, KIND_DEFAULTS, OP_SETS, catalogEntry } from './catalog.js';
import type { CatalogEntry, ComputeClass, DeviceKind } from './catalog.js';
import { parseBandwidth, parseBytes, parseFlops, parseSeconds } from './units.js';
import { sha256 } from '../util/hash.js';

export type { DeviceKind } from './catalog.js';

export const TOPOLOGY_FORMAT = 'hxc-topology/v1';
export const LINK_KINDS = ['nvlink', 'pcie', 'ethernet', 'cxl', 'infiniband', 'other'] as const;
/** dtype names used in `flops:` and in Device.peak_flops. */
export const DTYPES = ['fp64', 'fp32', 'tf32', 'fp16', 'bf16', 'fp8', 'int8', 'fp4', 'int4'] as const;

export interface Device {
  id: string;
  kind: DeviceKind;
  model: string | null;
  host: string | null;
  /** FLOP/s per dtype name (fp32, tf32, fp16, bf16, fp8, int8, ...); see peakFlops() for ONNX names. */
  peak_flops: Record<string, number>;
  memory_capacity_bytes: number;
  memory_bandwidth_bytes_per_s: number;
  launch_s: number;
  /** Fraction of peak FLOP/s achieved (every op class without its own entry below). */
  efficiency: number;
  /** Per op class where it differs from `efficiency`. */
  class_efficiency: Partial<Record<ComputeClass, number>>;
  /** Fraction of memory_bandwidth_bytes_per_s achieved. */
  memory_efficiency: number;
  /** SMs a tiled kernel fills in waves (GPUs); null: not modelled. */
  compute_units: number | null;
  /** include: null = every op (minus exclude); otherwise only these. Entries: `Op` or `domain.Op`. */
  ops: { include: string[] | null; exclude: string[] };
}

export interface Link {
  name: string;
  kind: string;
  devices: string[];
  bandwidth_bytes_per_s: number;
  latency_s: number;
  shared: boolean;
}

export interface Topology {
  format: 'hxc-topology/v1';
  name: string;
  devices: Device[];
  links: Link[];
  hosts: { id: string; devices: string[] }[];
  source: { file: string | null; sha256: string };
}

/** Aliases may be used (anchors for shared settings) but a billion-laughs expansion may not. */
const MAX_ALIAS_COUNT = 64;
/** Largest topology file read; a rack description is kilobytes. */
const MAX_FILE_BYTES = 16 * 2 ** 20;
/** Most ids one range or `count` may produce. */
const MAX_EXPANSION = 4096;
const ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

type Path = readonly (string | number)[];
type Obj = Record<string, unknown>;

/** Reads and parses a topology file. Missing or unreadable file → HXC2001 naming the path. */
export function loadTopology(path: string): Topology {
  let bytes: Buffer;
  try {
    const size = statSync(path).size;
    if (size > MAX_FILE_BYTES) {
      throw new HxcError('HXC2106', `topology file is ${size} bytes, more than the ${MAX_FILE_BYTES} allowed`, { where: path });
    }
    bytes = readFileSync(path);
  } catch (err) {
    if (err instanceof HxcError) throw err;
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new HxcError('HXC2001', `cannot read topology file: ${reason}`, { where: path, hint: 'check the --topology path' });
  }
  return build(bytes.toString('utf8'), path, sha256(bytes));
}

/** Parses topology text; `file` is used in error locations and recorded as source.file. */
export function parseTopology(text: string, file: string): Topology {
  return build(text, file, sha256(Buffer.from(text, 'utf8')));
}

export { sha256 } from '../util/hash.js';

// ---------------------------------------------------------------------------------------------
// YAML → plain data plus positions.

/** Plain data from the document, and `file:line` for any path into it (resolving aliases). */
class Source {
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

function startOf(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? range[0] : undefined;
}

function readYaml(text: string, file: string): { data: unknown; src: Source } {
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
function largestAlias(doc: Document.Parsed): number | undefined {
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

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

// ---------------------------------------------------------------------------------------------
// Small typed readers: each names the field and its line when the value is wrong or missing.

class Reader {
  constructor(readonly src: Source) {}

  at(path: Path): string {
    return this.src.where(path);
  }

  invalid(path: Path, message: string, hint?: string): HxcError {
    return new HxcError('HXC2302', message, { where: this.at(path), hint });
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

function own(obj: Obj, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function describe(value: unknown): string {
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

/** Up to three known names within a small edit distance, closest first. */
export function closeMatches(name: string, known: readonly string[]): string[] {
  const limit = Math.max(2, Math.floor(name.length / 3));
  return known
    .map((k) => ({ k, d: editDistance(name, k) }))
    .filter((x) => x.d <= limit)
    .sort((a, b) => a.d - b.d || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .slice(0, 3)
    .map((x) => x.k);
}

function editDistance(a: string, b: string): number {
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
// The topology itself.

function build(text: string, file: string, digest: string): Topology {
  const { data, src } = readYaml(text, file);
  const r = new Reader(src);
  const top = r.object(data ?? null, [], 'a topology file');

  const format = own(top, 'format');
  if (format !== TOPOLOGY_FORMAT) {
    const found = format === undefined ? 'no "format" field' : `format ${describe(format)}`;
    throw r.invalid(['format'], `expected format "${TOPOLOGY_FORMAT}", found ${found}`, `start the file with "format: ${TOPOLOGY_FORMAT}"`);
  }
  const name = r.string(r.required(top, 'name', [], 'topology'), ['name'], 'name');

  const rawDevices = r.list(r.required(top, 'devices', [], 'topology', 'list the devices'), ['devices'], 'devices');
  if (rawDevices.length === 0) throw r.invalid(['devices'], 'devices is empty: a topology needs at least one device');
  const devices: Device[] = [];
  const defined = new Map<string, Path>();
  rawDevices.forEach((raw, i) => {
    for (const device of readDevice(r, raw, ['devices', i])) {
      const first = defined.get(device.id);
      if (first) {
        throw new HxcError('HXC2306', `device id "${device.id}" is defined twice (first at ${r.at(first)})`, {
          where: r.at(['devices', i, 'id']),
          hint: 'give each device its own id',
        });
      }
      defined.set(device.id, ['devices', i, 'id']);
      devices.push(device);
    }
  });
  const ids = devices.map((d) => d.id);
  const known = new Set(ids);

  const rawLinks = own(top, 'links') ?? [];
  const links = r.list(rawLinks, ['links'], 'links').map((raw, i) => readLink(r, raw, ['links', i], ids, known));
  const linkNames = new Map<string, number>();
  links.forEach((link, i) => {
    const first = linkNames.get(link.name);
    if (first !== undefined) {
      throw r.invalid(
        ['links', i, 'name'],
        `link name "${link.name}" is used twice (first at ${r.at(['links', first, 'name'])})`,
        'routes name links, so names must be unique',
      );
    }
    linkNames.set(link.name, i);
  });

  const hosts = readHosts(r, own(top, 'hosts'), ids, known);
  const hostOf = new Map<string, string>();
  for (const host of hosts) for (const id of host.devices) hostOf.set(id, host.id);
  for (const device of devices) device.host = hostOf.get(device.id) ?? null;

  checkConnected(r, devices, links, defined);
  return { format: TOPOLOGY_FORMAT, name, devices, links, hosts, source: { file, sha256: digest } };
}

function readDevice(r: Reader, raw: unknown, path: Path): Device[] {
  const d = r.object(raw, path, `device ${path[1]}`);
  const idText = r.string(r.required(d, 'id', path, `device ${path[1]}`), [...path, 'id'], 'device id');
  const what = `device "${idText}"`;
  const ids = deviceIds(r, d, idText, path);

  const modelName = own(d, 'model');
  let model: CatalogEntry | undefined;
  if (modelName !== undefined && modelName !== null) {
    const mname = r.string(modelName, [...path, 'model'], `${what} model`);
    model = catalogEntry(mname);
    if (!model) {
      const close = closeMatches(mname, CATALOG_NAMES);
      throw new HxcError(
        'HXC2305',
        `${what}: unknown catalog model "${mname}"${close.length ? ` (did you mean ${close.join(', ')}?)` : ''}; the catalog has ${CATALOG_NAMES.join(', ')}`,
        {
          where: r.at([...path, 'model']),
          hint: 'use a catalog name, or drop `model` and write flops, memory and launch',
        },
      );
    }
  }

  const kindValue = own(d, 'kind') ?? model?.kind;
  if (kindValue === undefined || kindValue === null) {
    throw r.invalid(path, `${what}: missing field "kind"`, `add kind: one of ${DEVICE_KINDS.join(' | ')}`);
  }
  if (!(DEVICE_KINDS as readonly unknown[]).includes(kindValue)) {
    throw r.invalid([...path, 'kind'], `${what}: unknown kind ${describe(kindValue)}`, `use one of ${DEVICE_KINDS.join(' | ')}`);
  }
  const kind = kindValue as DeviceKind;

  const peak_flops = readFlops(r, d, path, what, model);
  const memory = own(d, 'memory');
  const mem = memory === undefined || memory === null ? {} : r.object(memory, [...path, 'memory'], `${what} memory`);
  const capacityRaw = own(mem, 'capacity');
  const bandwidthRaw = own(mem, 'bandwidth');
  const memory_capacity_bytes =
    capacityRaw !== undefined && capacityRaw !== null
      ? positive(r, parseBytes(capacityRaw, r.at([...path, 'memory', 'capacity'])), [...path, 'memory', 'capacity'], `${what} memory.capacity`)
      : model?.memory_capacity_bytes;
  if (memory_capacity_bytes === undefined) {
    throw r.invalid(
      memory ? [...path, 'memory'] : path,
      `${what}: missing field "memory.capacity" (no catalog model to take it from)`,
      'add memory: {capacity: 80GiB, bandwidth: 3.35TB/s}, or a catalog model',
    );
  }
  const memory_bandwidth_bytes_per_s =
    bandwidthRaw !== undefined && bandwidthRaw !== null
      ? positive(r, parseBandwidth(bandwidthRaw, r.at([...path, 'memory', 'bandwidth'])), [...path, 'memory', 'bandwidth'], `${what} memory.bandwidth`)
      : model?.memory_bandwidth_bytes_per_s;
  if (memory_bandwidth_bytes_per_s === undefined) {
    throw r.invalid(
      memory ? [...path, 'memory'] : path,
      `${what}: missing field "memory.bandwidth" (no catalog model to take it from)`,
      'add memory: {bandwidth: 400GB/s}, or a catalog model',
    );
  }

  // Launch and efficiency have per-kind defaults (catalog.ts KIND_DEFAULTS): they are starting values anyway.
  const launchRaw = own(d, 'launch');
  const launch_s =
    launchRaw !== undefined && launchRaw !== null ? parseSeconds(launchRaw, r.at([...path, 'launch'])) : (model?.launch_s ?? KIND_DEFAULTS[kind].launch_s);
  // `efficiency: 0.6` (compute, every op class) or `efficiency: {compute: 0.6, memory: 0.8, attention: 0.35}`.
  const effRaw = own(d, 'efficiency');
  let efficiency = model?.efficiency ?? KIND_DEFAULTS[kind].efficiency;
  let memory_efficiency = model?.memory_efficiency ?? KIND_DEFAULTS[kind].memory_efficiency;
  const class_efficiency: Partial<Record<ComputeClass, number>> = { ...(model?.class_efficiency ?? {}) };
  const fraction = (v: unknown, at: Path): number => {
    if (typeof v !== 'number' || !(v > 0 && v <= 1)) {
      throw r.invalid(
        at,
        `${what}: ${at.slice(path.length).join('.')} must be a number in (0, 1], found ${describe(v)}`,
        'write the fraction of peak achieved, e.g. 0.6',
      );
    }
    return v;
  };
  if (effRaw !== undefined && effRaw !== null) {
    if (typeof effRaw === 'object' && !Array.isArray(effRaw)) {
      for (const [key, value] of Object.entries(effRaw as Obj)) {
        const at = [...path, 'efficiency', key];
        if (key === 'compute') efficiency = fraction(value, at);
        else if (key === 'memory') memory_efficiency = fraction(value, at);
        else if ((COMPUTE_CLASSES as readonly string[]).includes(key)) class_efficiency[key as ComputeClass] = fraction(value, at);
        else throw r.invalid(at, `${what}: unknown efficiency key "${key}"`, `use compute, memory or an op class: ${COMPUTE_CLASSES.join(', ')}`);
      }
    } else {
      // One number is every op class's efficiency: the catalog's per-class ones give way to it.
      efficiency = fraction(effRaw, [...path, 'efficiency']);
      for (const c of Object.keys(class_efficiency)) delete class_efficiency[c as ComputeClass];
    }
  }

  const unitsRaw = own(d, 'compute_units');
  let compute_units = model?.compute_units ?? null;
  if (unitsRaw !== undefined && unitsRaw !== null) {
    if (typeof unitsRaw !== 'number' || !Number.isInteger(unitsRaw) || unitsRaw < 1 || unitsRaw > 1e6) {
      throw r.invalid(
        [...path, 'compute_units'],
        `${what}: compute_units must be a whole number of SMs (1 to 1000000), found ${describe(unitsRaw)}`,
        'write the streaming multiprocessors, e.g. compute_units: 132',
      );
    }
    compute_units = unitsRaw;
  }

  const ops = readOps(r, own(d, 'ops'), [...path, 'ops'], what, model?.op_set ?? KIND_DEFAULTS[kind].op_set);
  return ids.map((id) => ({
    id,
    kind,
    model: model?.name ?? null,
    host: null,
    peak_flops: { ...peak_flops },
    memory_capacity_bytes,
    memory_bandwidth_bytes_per_s,
    launch_s,
    efficiency,
    class_efficiency: { ...class_efficiency },
    memory_efficiency,
    compute_units,
    ops: { include: ops.include ? [...ops.include] : null, exclude: [...ops.exclude] },
  }));
}

function deviceIds(r: Reader, d: Obj, idText: string, path: Path): string[] {
  const countRaw = own(d, 'count');
  let ids: string[];
  if (countRaw !== undefined && countRaw !== null) {
    if (typeof countRaw !== 'number' || !Number.isInteger(countRaw) || countRaw < 1 || countRaw > MAX_EXPANSION) {
      throw r.invalid([...path, 'count'], `device "${idText}": count must be a whole number from 1 to ${MAX_EXPANSION}, found ${describe(countRaw)}`);
    }
    if (idText.includes('[')) throw r.invalid([...path, 'count'], `device "${idText}": give either an id range or count, not both`);
    ids = Array.from({ length: countRaw }, (_, k) => `${idText}${k}`);
  } else {
    const expanded = expandIds(idText);
    if (typeof expanded === 'string') throw r.invalid([...path, 'id'], `device id: ${expanded}`);
    ids = expanded;
  }
  for (const id of ids) {
    if (!ID_PATTERN.test(id)) {
      throw r.invalid(
        [...path, 'id'],
        `device id "${id}" has characters other than letters, digits, "_", "-" and "."`,
        'ids name files in the plan, so keep them plain',
      );
    }
  }
  return ids;
}

/** ONNX and common dtype spellings → the names used in peak_flops. */
const DTYPE_ALIASES: Readonly<Record<string, string>> = {
  fp64: 'fp64',
  double: 'fp64',
  float64: 'fp64',
  fp32: 'fp32',
  float: 'fp32',
  float32: 'fp32',
  tf32: 'tf32',
  fp16: 'fp16',
  float16: 'fp16',
  half: 'fp16',
  bf16: 'bf16',
  bfloat16: 'bf16',
  fp8: 'fp8',
  float8: 'fp8',
  float8e4m3fn: 'fp8',
  float8e4m3fnuz: 'fp8',
  float8e5m2: 'fp8',
  float8e5m2fnuz: 'fp8',
  int8: 'int8',
  uint8: 'int8',
  fp4: 'fp4',
  float4e2m1: 'fp4',
  int4: 'int4',
  uint4: 'int4',
};

/** Normalizes a dtype name (`float16`, `FLOAT16`, `bf16`); undefined when unknown. */
export function normalizeDtype(dtype: string): string | undefined {
  return DTYPE_ALIASES[dtype.toLowerCase().replace(/[_\s]/g, '')];
}

function readFlops(r: Reader, d: Obj, path: Path, what: string, model: CatalogEntry | undefined): Record<string, number> {
  const result: Record<string, number> = { ...(model?.peak_flops ?? {}) };
  const raw = own(d, 'flops');
  if (raw !== undefined && raw !== null) {
    const flops = r.object(raw, [...path, 'flops'], `${what} flops`);
    for (const [key, value] of Object.entries(flops)) {
      const dtype = normalizeDtype(key);
      if (!dtype) throw r.invalid([...path, 'flops', key], `${what}: unknown dtype "${key}" in flops`, `use ${DTYPES.join(', ')}`);
      result[dtype] = positive(r, parseFlops(value, r.at([...path, 'flops', key])), [...path, 'flops', key], `${what} flops.${key}`);
    }
  }
  if (Object.keys(result).length === 0) {
    throw r.invalid(
      path,
      `${what}: missing field "flops" (no catalog model to take it from)`,
      'add flops: {fp32: 15TFLOPS, fp16: 60TFLOPS}, or a catalog model',
    );
  }
  return result;
}

function positive(r: Reader, value: number, path: Path, what: string): number {
  if (!(value > 0)) throw r.invalid(path, `${what} must be greater than zero`);
  return value;
}

/**
 * Op capability. The base set is `ops.set` if given, else the catalog model's set, else the kind's
 * (every op, except `ipu`: OP_SETS['ipu-default']). `include` without `set` replaces the base
 * (only these ops); `include` with `set` adds to the set. `exclude` always wins.
 */
function readOps(r: Reader, raw: unknown, path: Path, what: string, defaultSet: string): Device['ops'] {
  const ops = raw === undefined || raw === null ? {} : r.object(raw, path, `${what} ops`);
  const setRaw = own(ops, 'set');
  let base = OP_SETS[defaultSet] ?? null;
  if (setRaw !== undefined && setRaw !== null) {
    const setName = r.string(setRaw, [...path, 'set'], `${what} ops.set`);
    if (!Object.hasOwn(OP_SETS, setName)) {
      throw r.invalid([...path, 'set'], `${what}: unknown op set "${setName}"`, `use one of ${Object.keys(OP_SETS).join(', ')}`);
    }
    base = OP_SETS[setName] ?? null;
  }
  const names = (key: string): string[] | null => {
    const v = own(ops, key);
    if (v === undefined || v === null) return null;
    return r.list(v, [...path, key], `${what} ops.${key}`).map((x, i) => r.string(x, [...path, key, i], `${what} ops.${key} entry`));
  };
  const include = names('include');
  const exclude = names('exclude') ?? [];
  let allowed: string[] | null;
  if (include === null) allowed = base ? [...base] : null;
  else if (setRaw !== undefined && setRaw !== null) allowed = base ? [...new Set([...base, ...include])] : null;
  else allowed = [...new Set(include)];
  return { include: allowed, exclude: [...new Set(exclude)] };
}

function readLink(r: Reader, raw: unknown, path: Path, ids: readonly string[], known: ReadonlySet<string>): Link {
  const l = r.object(raw, path, `link ${path[1]}`);
  const name = r.string(r.required(l, 'name', path, `link ${path[1]}`), [...path, 'name'], 'link name');
  if (!ID_PATTERN.test(name)) throw r.invalid([...path, 'name'], `link name "${name}" has characters other than letters, digits, "_", "-" and "."`);
  const what = `link "${name}"`;
  const kindRaw = own(l, 'kind') ?? 'other';
  if (!(LINK_KINDS as readonly unknown[]).includes(kindRaw)) {
    throw r.invalid([...path, 'kind'], `${what}: unknown kind ${describe(kindRaw)}`, `use one of ${LINK_KINDS.join(' | ')}`);
  }
  const connects = r.list(r.required(l, 'connects', path, what, 'list the devices it joins'), [...path, 'connects'], `${what} connects`);
  const devices: string[] = [];
  connects.forEach((item, k) => {
    const at = [...path, 'connects', k];
    for (const id of expandOrThrow(r, r.string(item, at, `${what} connects entry`), at)) {
      if (!known.has(id)) throw unknownDevice(r, `${what} names unknown device "${id}"`, id, ids, at);
      if (!devices.includes(id)) devices.push(id);
    }
  });
  if (devices.length < 2) throw r.invalid([...path, 'connects'], `${what} connects ${devices.length} device; a link joins two or more`);
  const bandwidth_bytes_per_s = positive(
    r,
    parseBandwidth(r.required(l, 'bandwidth', path, what, 'add bandwidth: 64GB/s'), r.at([...path, 'bandwidth'])),
    [...path, 'bandwidth'],
    `${what} bandwidth`,
  );
  const latency_s = parseSeconds(r.required(l, 'latency', path, what, 'add latency: 2us'), r.at([...path, 'latency']));
  const sharedRaw = own(l, 'shared') ?? false;
  if (typeof sharedRaw !== 'boolean') throw r.invalid([...path, 'shared'], `${what}: shared must be true or false, found ${describe(sharedRaw)}`);
  return { name, kind: kindRaw as string, devices, bandwidth_bytes_per_s, latency_s, shared: sharedRaw };
}

function readHosts(r: Reader, raw: unknown, ids: readonly string[], known: ReadonlySet<string>): Topology['hosts'] {
  if (raw === undefined || raw === null) return [];
  const hosts: Topology['hosts'] = [];
  const owner = new Map<string, string>();
  r.list(raw, ['hosts'], 'hosts').forEach((item, i) => {
    const path = ['hosts', i];
    const h = r.object(item, path, `host ${i}`);
    const id = r.string(r.required(h, 'id', path, `host ${i}`), [...path, 'id'], 'host id');
    if (hosts.some((x) => x.id === id)) throw r.invalid([...path, 'id'], `host id "${id}" is used twice`);
    const devices: string[] = [];
    r.list(r.required(h, 'devices', path, `host "${id}"`), [...path, 'devices'], `host "${id}" devices`).forEach((entry, k) => {
      const at = [...path, 'devices', k];
      for (const dev of expandOrThrow(r, r.string(entry, at, `host "${id}" devices entry`), at)) {
        if (!known.has(dev)) throw unknownDevice(r, `host "${id}" names unknown device "${dev}"`, dev, ids, at);
        const other = owner.get(dev);
        if (other !== undefined && other !== id) throw r.invalid(at, `device "${dev}" is in two hosts, "${other}" and "${id}"`);
        owner.set(dev, id);
        if (!devices.includes(dev)) devices.push(dev);
      }
    });
    hosts.push({ id, devices });
  });
  return hosts;
}

function expandOrThrow(r: Reader, text: string, at: Path): string[] {
  const expanded = expandIds(text);
  if (typeof expanded === 'string') throw r.invalid(at, expanded);
  return expanded;
}

function unknownDevice(r: Reader, message: string, id: string, ids: readonly string[], at: Path): HxcError {
  const close = closeMatches(id, ids);
  const list =
    close.length > 0 ? ` (did you mean ${close.join(', ')}?)` : ` (devices: ${ids.slice(0, 8).join(', ')}${ids.length > 8 ? `, … ${ids.length} in all` : ''})`;
  return new HxcError('HXC2304', message + list, { where: r.at(at), hint: 'declare the device under devices, or fix the name' });
}

/** Every device must reach every other over links (relays allowed); one device needs no link. */
function checkConnected(r: Reader, devices: readonly Device[], links: readonly Link[], defined: ReadonlyMap<string, Path>): void {
  if (devices.length < 2) return;
  const parent = new Map<string, string>(devices.map((d) => [d.id, d.id]));
  const find = (x: string): string => {
    let root = x;
    while (parent.get(root) !== root) root = parent.get(root) as string;
    parent.set(x, root);
    return root;
  };
  for (const link of links) for (const id of link.devices.slice(1)) parent.set(find(id), find(link.devices[0] as string));
  const first = (devices[0] as Device).id;
  const lonely = devices.filter((d) => find(d.id) !== find(first));
  if (lonely.length > 0) {
    const names =
      lonely
        .map((d) => `"${d.id}"`)
        .slice(0, 5)
        .join(', ') + (lonely.length > 5 ? ` and ${lonely.length - 5} more` : '');
    throw new HxcError('HXC2307', `device ${names} cannot be reached from "${first}" over any link`, {
      where: r.at(defined.get((lonely[0] as Device).id) ?? []),
      hint: 'add a link that connects it (any device can relay)',
    });
  }
}
