// ONNX tensors into the IR without copying weight bytes: inline data as a view of the file, typed
// fields packed, external data resolved inside the model's folder (never outside it), sizes checked
// before anything is allocated.

import fs from 'node:fs';
import path from 'node:path';
import type { onnx as OnnxNs } from 'onnx-proto';
import { HxcError } from '../diag/diagnostics.js';
import { byteSizeOf, dtypeFromOnnx, type DType } from '../ir/dtype.js';
import type { TensorData } from '../ir/graph.js';
import type { ImportContext } from './onnx.js';
import { createRequire } from 'node:module';

const { onnx } = createRequire(import.meta.url)('onnx-proto') as { onnx: typeof OnnxNs };

export type Long = { toNumber(): number; low: number; high: number; unsigned: boolean };
export type IntLike = number | Long | null | undefined;

export function toNum(x: IntLike): number {
  if (x === null || x === undefined) return 0;
  return typeof x === 'number' ? x : x.toNumber();
}

/** TensorProto → TensorData, checking every declared size against the bytes that are there. */
export function convertTensor(ctx: ImportContext, t: OnnxNs.ITensorProto, where: string): TensorData {
  const name = t.name ?? '';
  const dtype = dtypeFromOnnx(t.dataType ?? 0);
  if (!dtype) {
    throw new HxcError('HXC2107', `tensor has unknown data_type ${t.dataType ?? 0}`, {
      where: `${ctx.file}: ${where}`,
      hint: 'this ONNX file uses a data type hxc does not know',
    });
  }
  const dims = (t.dims ?? []).map((d) => toNum(d as IntLike));
  let elements = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new HxcError('HXC2107', `tensor has an invalid dim ${d}`, { where: `${ctx.file}: ${where}`, hint: 'the file is corrupt or hand-edited' });
    }
    elements *= d;
  }
  if (!Number.isSafeInteger(elements)) {
    throw new HxcError('HXC2106', `tensor has ${elements} elements, more than hxc can address`, { where: `${ctx.file}: ${where}` });
  }
  const byteSize = byteSizeOf(dtype, elements);
  // One literal, not `{ ...base, location }`: V8 gives each object that spreads and adds a property
  // a map of its own (45k maps for the DeepSeek-V3 shape's initializers, every reader megamorphic).
  const tensor = (location: TensorData['location']): TensorData => ({ name, dtype, dims, byte_size: byteSize, location });
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    return tensor(externalLocation(ctx, t, byteSize, where));
  }
  if (t.rawData && t.rawData.length > 0) {
    if (dtype !== 'string' && t.rawData.length !== byteSize) {
      throw new HxcError('HXC2107', `raw_data holds ${t.rawData.length} bytes but dims ${JSON.stringify(dims)} of ${dtype} need ${byteSize}`, {
        where: `${ctx.file}: ${where}`,
        hint: 'the file is corrupt or truncated',
      });
    }
    return tensor({ kind: 'inline', data: t.rawData });
  }
  return tensor({ kind: 'inline', data: typedFieldBytes(t, dtype, elements, ctx, where) });
}

/** Tensors stored in the typed repeated fields (float_data, int64_data, …) are turned into little-endian bytes. */
export function typedFieldBytes(t: OnnxNs.ITensorProto, dtype: DType, elements: number, ctx: ImportContext, where: string): Uint8Array {
  const check = (have: number): void => {
    if (dtype !== 'string' && have !== elements && !(have === 0 && elements === 0)) {
      throw new HxcError('HXC2107', `tensor holds ${have} values but its dims need ${elements}`, {
        where: `${ctx.file}: ${where}`,
        hint: 'the file is corrupt',
      });
    }
  };
  switch (dtype) {
    case 'float32': {
      const v = t.floatData ?? [];
      check(v.length);
      return new Uint8Array(Float32Array.from(v).buffer);
    }
    case 'float64': {
      const v = t.doubleData ?? [];
      check(v.length);
      return new Uint8Array(Float64Array.from(v).buffer);
    }
    case 'int64': {
      const v = t.int64Data ?? [];
      check(v.length);
      return new Uint8Array(BigInt64Array.from(v, (x) => BigInt(toNum(x as IntLike))).buffer);
    }
    case 'uint64':
    case 'uint32': {
      const v = t.uint64Data ?? [];
      check(v.length);
      return dtype === 'uint64'
        ? new Uint8Array(BigUint64Array.from(v, (x) => BigInt(toNum(x as IntLike))).buffer)
        : new Uint8Array(Uint32Array.from(v, (x) => toNum(x as IntLike)).buffer);
    }
    case 'int32': {
      const v = t.int32Data ?? [];
      check(v.length);
      return new Uint8Array(Int32Array.from(v).buffer);
    }
    case 'int16': {
      const v = t.int32Data ?? [];
      check(v.length);
      return new Uint8Array(Int16Array.from(v).buffer);
    }
    case 'uint16':
    case 'float16':
    case 'bfloat16': {
      const v = t.int32Data ?? [];
      check(v.length);
      return new Uint8Array(Uint16Array.from(v).buffer);
    }
    case 'int8': {
      const v = t.int32Data ?? [];
      check(v.length);
      return new Uint8Array(Int8Array.from(v).buffer);
    }
    case 'uint8':
    case 'bool':
    case 'float8e4m3fn':
    case 'float8e4m3fnuz':
    case 'float8e5m2':
    case 'float8e5m2fnuz': {
      const v = t.int32Data ?? [];
      check(v.length);
      return Uint8Array.from(v);
    }
    case 'string':
      return new Uint8Array(0);
    default: {
      const v = t.int32Data ?? [];
      return Uint8Array.from(v);
    }
  }
}

export function externalLocation(ctx: ImportContext, t: OnnxNs.ITensorProto, byteSize: number, where: string): TensorData['location'] {
  const kv = new Map<string, string>();
  for (const e of t.externalData ?? []) kv.set(e.key ?? '', e.value ?? '');
  const location = kv.get('location');
  const at = `${ctx.file}: ${where}`;
  if (!location) throw new HxcError('HXC2107', 'external data has no location', { where: at, hint: 'the file is corrupt' });
  if (path.isAbsolute(location) || location.includes('\0')) {
    throw new HxcError('HXC2104', `external data location "${location}" is absolute`, {
      where: at,
      hint: "external data must sit in the model's folder, named by a relative path",
    });
  }
  let resolved = ctx.resolvedLocations.get(location);
  if (resolved === undefined) {
    resolved = path.resolve(ctx.dir, location);
    // Checked once a location: one that leaves the folder ends the import here, so every location
    // kept was inside (the DeepSeek-V3 shape names one file 45k times: 63 ms of path.relative).
    if (!isInside(ctx.dir, resolved)) {
      throw new HxcError('HXC2104', `external data location "${location}" leaves the model's folder`, {
        where: at,
        hint: 'move the weights next to the model and re-save it with a relative location',
      });
    }
    ctx.resolvedLocations.set(location, resolved);
  }
  const offset = Number(kv.get('offset') ?? '0');
  const lengthText = kv.get('length');
  const length = lengthText === undefined ? byteSize : Number(lengthText);
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new HxcError('HXC2105', `external data offset/length "${kv.get('offset')}"/"${lengthText}" are not valid sizes`, {
      where: at,
      hint: 'the file is corrupt',
    });
  }
  if (length !== byteSize && t.dataType !== onnx.TensorProto.DataType.STRING) {
    throw new HxcError('HXC2105', `external data length ${length} differs from the ${byteSize} bytes the dims need`, {
      where: at,
      hint: 'the file is corrupt or was saved by a broken exporter',
    });
  }
  let size = ctx.externalFiles.get(resolved);
  if (size === undefined) {
    size = -1;
    try {
      const real = fs.realpathSync(resolved);
      if (!isInside(ctx.realDir, real)) {
        throw new HxcError('HXC2104', `external data location "${location}" is a link that leaves the model's folder`, {
          where: at,
          hint: "copy the weights into the model's folder",
        });
      }
      const st = fs.statSync(real);
      if (!st.isFile())
        throw new HxcError('HXC2105', `external data location "${location}" is not a regular file`, {
          where: at,
          hint: 'point it at the weights file next to the model',
        });
      size = st.size;
    } catch (err) {
      if (err instanceof HxcError) throw err;
    }
    ctx.externalFiles.set(resolved, size);
  }
  const present = size >= 0;
  if (present && offset + length > size) {
    throw new HxcError('HXC2105', `external data range ${offset}+${length} runs past the end of "${location}" (${size} bytes)`, {
      where: at,
      hint: 'the weights file is truncated or belongs to another model',
    });
  }
  if (!present) {
    ctx.missingExternal.count++;
    ctx.missingExternal.bytes += byteSize;
    ctx.missingExternal.files.add(location);
  }
  return { kind: 'external', file: location, path: resolved, offset, length, present };
}

export function isInside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  // `..w.bin` is inside; `../w.bin` is not.
  return rel !== '' && rel.split(path.sep)[0] !== '..' && !path.isAbsolute(rel);
}

export function safeRealpath(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}
