// A device entry of the topology: ids (ranges, count), kind and catalog model, memory, FLOP/s per
// dtype, efficiency, op set — catalog defaults filled in, every number checked.

import { HxcError } from '../diag/diagnostics.js';
import { CATALOG_NAMES, COMPUTE_CLASSES, DEVICE_KINDS, KIND_DEFAULTS, OP_SETS, catalogEntry } from './catalog.js';
import type { CatalogEntry, ComputeClass, DeviceKind } from './catalog.js';
import { parseBandwidth, parseBytes, parseFlops, parseSeconds } from './units.js';
import { ID_PATTERN, MAX_EXPANSION, type Obj, type Path } from './load-limits.js';
import { closeMatches, expandIds, own, type Reader } from './yaml-source.js';
import type { Device } from './load.js';
import { DTYPES } from './load-limits.js';
import { describe } from './yaml-source.js';
import { isKnownOpName, KNOWN_OP_NAMES } from './op-names.js';

export function readDevice(r: Reader, raw: unknown, path: Path): Device[] {
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

export function deviceIds(r: Reader, d: Obj, idText: string, path: Path): string[] {
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
export const DTYPE_ALIASES: Readonly<Record<string, string>> = {
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

export function readFlops(r: Reader, d: Obj, path: Path, what: string, model: CatalogEntry | undefined): Record<string, number> {
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

export function positive(r: Reader, value: number, path: Path, what: string): number {
  if (!(value > 0)) throw r.invalid(path, `${what} must be greater than zero`);
  return value;
}

/**
 * Op capability. The base set is `ops.set` if given, else the catalog model's set, else the kind's
 * (every op, except `ipu`: OP_SETS['ipu-default']). `include` without `set` replaces the base
 * (only these ops); `include` with `set` adds to the set. `exclude` always wins.
 */
export function readOps(r: Reader, raw: unknown, path: Path, what: string, defaultSet: string): Device['ops'] {
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
    return r.list(v, [...path, key], `${what} ops.${key}`).map((x, i) => {
      const entry = r.string(x, [...path, key, i], `${what} ops.${key} entry`);
      const unknown = unknownOpEntry(entry);
      if (unknown === null) return entry;
      // In the ONNX domain by name, an op must be ONNX's; bare, only a near miss of a known op is
      // refused: a task graph's own ops may have any name (Relu6, Sort, Add2).
      const onnxDomain = unknown !== entry;
      const meant = misspelt(unknown, onnxDomain);
      if (onnxDomain || meant.length > 0) {
        const named = onnxDomain ? `"${entry}" (${unknown} in the ONNX domain)` : `"${entry}"`;
        throw r.invalid(
          [...path, key, i],
          `${what} ops.${key}: ${named} is not an operator hxc knows${meant.length > 0 ? ` (did you mean ${meant.join(', ')}?)` : ''}`,
          'write the op type as the ONNX spec spells it (MatMul, not Matmul); a custom operator with its domain, as com.example.MyOp',
        );
      }
      return entry;
    });
  };
  const include = names('include');
  const exclude = names('exclude') ?? [];
  let allowed: string[] | null;
  if (include === null) allowed = base ? [...base] : null;
  else if (setRaw !== undefined && setRaw !== null) allowed = base ? [...new Set([...base, ...include])] : null;
  else allowed = [...new Set(include)];
  return { include: allowed, exclude: [...new Set(exclude)] };
}

/**
 * The op an ops entry names that no known operator answers to, or null: an entry without a domain or
 * in the ONNX domain (`ai.onnx.X`; `ai.onnx.*` is every ONNX op). An entry in another domain is that
 * domain's business (custom operators, com.microsoft's newer ones).
 */
function unknownOpEntry(entry: string): string | null {
  const dot = entry.lastIndexOf('.');
  const op = entry.slice(dot + 1);
  if (dot >= 0 && entry.slice(0, dot) !== 'ai.onnx') return op.length > 0 ? null : entry;
  if (dot >= 0 && op === '*') return null;
  return isKnownOpName(op) ? null : op;
}

/**
 * Known operators an unknown name is a slip of. A bare name: the same but for case ("Matmul"), or,
 * from six letters, one edit away ignoring case ("Softmx", "MatMull") — shorter names one edit from
 * an op are a task graph's own too often (Relu6, Sort, Add2), and DESIGN.md lets those be any name.
 * A name in the ONNX domain (`ai.onnx.X`) is ONNX's or wrong: up to one edit per four letters.
 */
function misspelt(name: string, onnxDomain: boolean): string[] {
  const limit = onnxDomain ? Math.max(1, Math.floor(name.length / 4)) : name.length >= 6 ? 1 : 0;
  return closeMatches(name, KNOWN_OP_NAMES, { limit, ignoreCase: true });
}
