// Tensors for the runtime: seeded input generation from the plan's input specs, reading an
// --inputs JSON file (checked against the specs), and the numeric comparison used by --check.

import * as ort from 'onnxruntime-node';
import { closeMatches } from '../topology/yaml-source.js';
import { HxcError } from '../diag/diagnostics.js';
import { mulberry32 } from '../util/stats.js';
import { evalDim } from '../shapes/symbolic.js';
import type { InputSpec } from '../plan/inputs.js';
import { readBounded } from '../util/read-file.js';

export type OrtType = ort.Tensor.Type;

/** hxc dtype → onnxruntime tensor type. */
const ORT_TYPE: Record<string, OrtType> = {
  float32: 'float32',
  float16: 'float16',
  float64: 'float64',
  int64: 'int64',
  int32: 'int32',
  int8: 'int8',
  uint8: 'uint8',
  int16: 'int16',
  uint16: 'uint16',
  bool: 'bool',
  uint32: 'uint32',
  uint64: 'uint64',
};

export function ortType(dtype: string | null, where: string): OrtType {
  const t = dtype ? ORT_TYPE[dtype] : undefined;
  if (!t)
    throw new HxcError('HXC2602', `input "${where}" has dtype ${dtype ?? 'unknown'}, which hxc run cannot feed`, {
      hint: 'give the input in an --inputs file, or plan a model with supported input types',
    });
  return t;
}

export function numericShape(shape: (number | string)[] | null, dims: Record<string, number>, name: string): number[] {
  if (!shape) throw new HxcError('HXC2602', `input "${name}" has no known shape`, { hint: 'give it in an --inputs file' });
  return shape.map((d) => {
    const v = typeof d === 'number' ? d : evalDim(d, dims);
    if (v === undefined)
      throw new HxcError('HXC2602', `input "${name}": dim "${String(d)}" is not bound`, { where: '--dim', hint: `bind it with --dim ${String(d)}=N` });
    return v;
  });
}

/** Seeded inputs following each spec's fill rule. */
export function makeInputs(specs: InputSpec[], dims: Record<string, number>, seed: number): Record<string, ort.Tensor> {
  const rand = mulberry32(seed);
  const out: Record<string, ort.Tensor> = {};
  for (const spec of specs) {
    const shape = numericShape(spec.shape, dims, spec.name);
    const n = shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(n) || n > MAX_INPUT_ELEMENTS) {
      throw new HxcError(
        'HXC2602',
        `input "${spec.name}" would have shape ${JSON.stringify(shape)}, more than the ${MAX_INPUT_ELEMENTS} elements hxc generates`,
        { hint: 'give smaller dims with --dim or pass the input in an --inputs file' },
      );
    }
    const type = ortType(spec.dtype, spec.name);
    const f = spec.fill;
    if (type === 'int64') {
      const data = new BigInt64Array(n);
      if (f.kind === 'ones') data.fill(1n);
      else if (f.kind === 'positions') {
        const offset = f.offset_dim ? (dims[f.offset_dim] ?? 0) : 0;
        const last = shape[shape.length - 1] ?? 1;
        for (let i = 0; i < n; i++) data[i] = BigInt(offset + (i % last));
      } else {
        const high = f.kind === 'uniform-int' ? f.high : 2;
        for (let i = 0; i < n; i++) data[i] = BigInt(Math.floor(rand() * high));
      }
      out[spec.name] = new ort.Tensor('int64', data, shape);
    } else if (type === 'int32') {
      const data = new Int32Array(n);
      const high = f.kind === 'uniform-int' ? f.high : 2;
      for (let i = 0; i < n; i++) data[i] = f.kind === 'ones' ? 1 : Math.floor(rand() * high);
      out[spec.name] = new ort.Tensor('int32', data, shape);
    } else if (type === 'bool') {
      const data = new Uint8Array(n);
      for (let i = 0; i < n; i++) data[i] = f.kind === 'ones' || rand() < 0.5 ? 1 : 0;
      out[spec.name] = new ort.Tensor('bool', data, shape);
    } else if (type === 'float32' && f.kind === 'replica-share') {
      // Cumulative fractions of an expert's rows per replica: equal shares, the last exactly 1.
      out[spec.name] = new ort.Tensor(
        'float32',
        Float32Array.from({ length: n }, (_, i) => (i === n - 1 ? 1 : (i + 1) / n)),
        shape,
      );
    } else if (type === 'float32') {
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = rand() * 2 - 1;
      out[spec.name] = new ort.Tensor('float32', data, shape);
    } else {
      throw new HxcError('HXC2602', `input "${spec.name}" is ${spec.dtype}: give it in an --inputs file`, {
        hint: 'hxc run generates float32, int32, int64 and bool inputs',
      });
    }
  }
  return out;
}

/** `{name: {dtype, shape, data}}`, checked against the plan's input specs (dtype, rank, fixed dims, consistent symbols). */
/** Largest --inputs file read, and largest tensor in it. */
const MAX_INPUTS_BYTES = 1 << 30;
const MAX_INPUT_ELEMENTS = 1 << 28;

export function readInputs(file: string, specs: InputSpec[]): { tensors: Record<string, ort.Tensor>; dims: Record<string, number> } {
  let doc: Record<string, { dtype?: string; shape?: number[]; data?: (number | string | boolean)[] }>;
  const form = 'write {"name": {"dtype": "int64", "shape": [1, 4], "data": [...]}}';
  try {
    doc = JSON.parse(readBounded(file, MAX_INPUTS_BYTES, 'the inputs file').toString('utf8'));
  } catch (err) {
    if (err instanceof HxcError) throw err;
    throw new HxcError('HXC2602', `cannot read inputs: ${(err as Error).message}`, { where: file, hint: form });
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw new HxcError('HXC2602', 'the inputs file is not a JSON object of named tensors', { where: file, hint: form });
  // A name the plan does not take is a slip, not an extra: said as such, before "X is missing".
  const names = specs.map((s) => s.name);
  for (const key of Object.keys(doc)) {
    if (names.includes(key)) continue;
    const close = closeMatches(key, names);
    throw new HxcError(
      'HXC2602',
      `unknown input "${key}"${close.length > 0 ? ` (did you mean ${close.join(', ')}?)` : ''}; the plan's inputs are ${names.join(', ')}`,
      {
        where: file,
        hint: 'name each tensor as the plan does (plan.json inputs)',
      },
    );
  }
  const tensors: Record<string, ort.Tensor> = {};
  const dims: Record<string, number> = {};
  for (const spec of specs) {
    const v = doc[spec.name];
    if (!v || typeof v !== 'object') throw new HxcError('HXC2602', `input "${spec.name}" is missing`, { where: file, hint: `add "${spec.name}"` });
    if (v.dtype !== spec.dtype) throw new HxcError('HXC2602', `input "${spec.name}" has dtype ${v.dtype}, the model wants ${spec.dtype}`, { where: file });
    const shape = v.shape ?? [];
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0) || shape.reduce((a, b) => a * b, 1) > MAX_INPUT_ELEMENTS) {
      throw new HxcError(
        'HXC2602',
        `input "${spec.name}" has shape ${JSON.stringify(shape)}: expected whole sizes ≥ 0, at most ${MAX_INPUT_ELEMENTS} elements`,
        { where: file, hint: form },
      );
    }
    if (spec.shape && shape.length !== spec.shape.length)
      throw new HxcError('HXC2602', `input "${spec.name}" has rank ${shape.length}, the model wants ${spec.shape.length} ([${spec.shape.join(', ')}])`, {
        where: file,
      });
    spec.shape?.forEach((d, i) => {
      if (typeof d === 'number' && d !== shape[i])
        throw new HxcError('HXC2602', `input "${spec.name}" dim ${i} is ${shape[i]}, the model wants ${d}`, { where: file });
      if (typeof d === 'string' && /^[A-Za-z_][\w.]*$/.test(d)) {
        if (dims[d] !== undefined && dims[d] !== shape[i])
          throw new HxcError('HXC2602', `input "${spec.name}" dim ${i} (${d}) is ${shape[i]} but another input has ${d} = ${dims[d]}`, { where: file });
        dims[d] = shape[i]!;
      }
    });
    const n = shape.reduce((a, b) => a * b, 1);
    const data = v.data ?? [];
    if (!Array.isArray(data) || data.length !== n)
      throw new HxcError(
        'HXC2602',
        `input "${spec.name}" has ${Array.isArray(data) ? data.length : 'no list of'} values for shape [${shape.join(', ')}] (${n})`,
        { where: file },
      );
    const type = ortType(spec.dtype, spec.name);
    // Every value of the dtype's kind, checked before a typed array is made.
    const wholeOk = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x);
    const ok =
      type === 'bool'
        ? (x: unknown) => typeof x === 'boolean' || x === 0 || x === 1
        : type === 'float32'
          ? (x: unknown) => typeof x === 'number' && Number.isFinite(x)
          : wholeOk;
    const badAt = data.findIndex((x) => !ok(x));
    if (badAt >= 0)
      throw new HxcError(
        'HXC2602',
        `input "${spec.name}" data[${badAt}] is ${JSON.stringify(data[badAt])}, not a ${type === 'bool' ? 'boolean' : type === 'float32' ? 'finite number' : 'whole number'}`,
        { where: file, hint: form },
      );
    if (type === 'int32' && data.some((x) => (x as number) < -(2 ** 31) || (x as number) >= 2 ** 31))
      throw new HxcError('HXC2602', `input "${spec.name}" has a value outside int32`, { where: file, hint: form });
    if (type === 'int64')
      tensors[spec.name] = new ort.Tensor(
        'int64',
        BigInt64Array.from(data, (x) => BigInt(x as number)),
        shape,
      );
    else if (type === 'bool')
      tensors[spec.name] = new ort.Tensor(
        'bool',
        Uint8Array.from(data, (x) => (x ? 1 : 0)),
        shape,
      );
    else if (type === 'float32') tensors[spec.name] = new ort.Tensor('float32', Float32Array.from(data as number[]), shape);
    else if (type === 'int32') tensors[spec.name] = new ort.Tensor('int32', Int32Array.from(data as number[]), shape);
    else throw new HxcError('HXC2602', `input "${spec.name}": dtype ${spec.dtype} is not supported in --inputs files`, { where: file });
  }
  return { tensors, dims };
}

export interface Comparison {
  name: string;
  max_abs_error: number;
  max_rel_error: number;
  /** max|b|: the reference's largest magnitude. */
  reference_scale: number;
  /** max|a − b| ≤ CHECK_TOLERANCE_REL · max|b| + CHECK_TOLERANCE_ABS. */
  within_tolerance: boolean;
  elements: number;
  shape_matches: boolean;
}

/** The check's tolerance: relative to the reference's largest magnitude… */
export const CHECK_TOLERANCE_REL = 1e-5;
/**
 * …plus an absolute floor of about 8 float32 ulps of 1.0: an output whose whole scale is below
 * float32's resolution near 1 (a sigmoid of very negative logits, ~1e-7) differs by one ulp of 1
 * between onnxruntime's own optimisation levels, which no relative bound can absorb
 * (numpy.allclose has the same two terms).
 */
export const CHECK_TOLERANCE_ABS = 1e-6;

/** Max absolute error, and the relative error max|a − b| / max|b| (normalised by the reference's scale). */
export function compare(name: string, got: ort.Tensor, want: ort.Tensor): Comparison {
  const shapeOk = got.dims.length === want.dims.length && got.dims.every((d, i) => d === want.dims[i]);
  const a = got.data as ArrayLike<number | bigint>;
  const b = want.data as ArrayLike<number | bigint>;
  let maxAbs = 0;
  let scale = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = Number(a[i]);
    const y = Number(b[i]);
    // NaN where the model gives NaN, and the same infinity, are the same result (inputs near a
    // dtype's range overflow in the unsplit model too); a non-finite value against another is not.
    const same = x === y || (Number.isNaN(x) && Number.isNaN(y));
    const d = same ? 0 : Number.isFinite(x) && Number.isFinite(y) ? Math.abs(x - y) : Infinity;
    if (d > maxAbs) maxAbs = d;
    if (Number.isFinite(y)) scale = Math.max(scale, Math.abs(y));
  }
  return {
    name,
    max_abs_error: maxAbs,
    max_rel_error: scale > 0 ? maxAbs / scale : maxAbs,
    reference_scale: scale,
    within_tolerance: maxAbs <= CHECK_TOLERANCE_REL * scale + CHECK_TOLERANCE_ABS,
    elements: n,
    shape_matches: shapeOk && a.length === b.length,
  };
}
