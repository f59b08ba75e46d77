// The model's inputs and outputs against a plan's: a plan may hold a graph input or output as parts
// (head-parallel attention keeps each shard's KV cache as graph I/O of its own,
// src/transform/tensor-parallel.ts `io`), while everything outside the plan — an --inputs file,
// the unsplit model under --check, the state handed from a prefill plan to a decode plan — speaks
// of the whole tensor. The runtime turns the whole into its parts on the way in and the parts
// back into the whole on the way out, here, and nowhere else.

import * as ort from 'onnxruntime-node';
import { HxcError } from '../diag/diagnostics.js';
import type { InputSpec } from '../plan/inputs.js';
import type { IoShard } from '../transform/tensor-parallel.js';

/** The model's input specs: a sharded input's parts as one whole (the axis' parts summed). */
export function modelInputs(inputs: InputSpec[], io: readonly IoShard[]): InputSpec[] {
  const partOf = new Map<string, IoShard>();
  for (const s of io) if (s.role === 'input') for (const p of s.parts) partOf.set(p, s);
  const out: InputSpec[] = [];
  const seen = new Set<string>();
  for (const spec of inputs) {
    const s = partOf.get(spec.name);
    if (!s) {
      out.push(spec);
      continue;
    }
    if (seen.has(s.name)) continue;
    seen.add(s.name);
    const shape = spec.shape?.map((d, axis) => (axis === s.axis && typeof d === 'number' ? d * s.parts.length : d)) ?? null;
    out.push({ ...spec, name: s.name, shape });
  }
  return out;
}

/** The model's output names, in the plan's order: a sharded output's parts as one. */
export function modelOutputNames(outputs: readonly string[], io: readonly IoShard[]): string[] {
  const partOf = new Map<string, string>();
  for (const s of io) if (s.role === 'output') for (const p of s.parts) partOf.set(p, s.name);
  return [...new Set(outputs.map((o) => partOf.get(o) ?? o))];
}

/** Whole tensors by the model's names → the plan's: each sharded one split along its axis into its parts. */
export function toParts(tensors: Record<string, ort.Tensor>, io: readonly IoShard[], role: IoShard['role']): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = { ...tensors };
  for (const s of io) {
    const t = tensors[s.name];
    if (s.role !== role || !t) continue;
    if (t.dims.length <= s.axis || t.dims[s.axis]! % s.parts.length !== 0)
      throw new HxcError(
        'HXC2602',
        `${role} "${s.name}" has shape ${JSON.stringify(t.dims)}: the plan holds it as ${s.parts.length} parts along axis ${s.axis}, which that does not divide`,
        {
          hint: `give "${s.name}" the shape the model declares`,
        },
      );
    delete out[s.name];
    splitAxis(t, s.axis, s.parts.length).forEach((p, j) => (out[s.parts[j]!] = p));
  }
  return out;
}

/** Tensors by the plan's names → the model's: each sharded one's parts joined along its axis. */
export function toWhole(tensors: Record<string, ort.Tensor>, io: readonly IoShard[], role: IoShard['role']): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = { ...tensors };
  for (const s of io) {
    if (s.role !== role || !s.parts.every((p) => tensors[p])) continue;
    for (const p of s.parts) delete out[p];
    out[s.name] = joinAxis(
      s.parts.map((p) => tensors[p]!),
      s.axis,
    );
  }
  return out;
}

type Data = ort.Tensor['data'] & { length: number; subarray(a: number, b: number): Data; set(src: ArrayLike<unknown>, at: number): void };

/** `t` cut along `axis` into `k` equal parts (row-major: each part takes a run of every outer block). */
export function splitAxis(t: ort.Tensor, axis: number, k: number): ort.Tensor[] {
  const dims = t.dims;
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const span = (dims[axis]! / k) * inner;
  const src = t.data as Data;
  return Array.from({ length: k }, (_, j) => {
    const data = new (src.constructor as new (n: number) => Data)(outer * span);
    for (let o = 0; o < outer; o++)
      data.set(src.subarray(o * dims[axis]! * inner + j * span, o * dims[axis]! * inner + (j + 1) * span) as ArrayLike<unknown>, o * span);
    const partDims = dims.slice();
    partDims[axis] = dims[axis]! / k;
    return new ort.Tensor(t.type, data as ort.Tensor['data'], partDims);
  });
}

/** The inverse of splitAxis: parts of equal shape joined along `axis`. */
export function joinAxis(parts: ort.Tensor[], axis: number): ort.Tensor {
  const dims = parts[0]!.dims.slice();
  for (const p of parts)
    if (p.type !== parts[0]!.type || p.dims.length !== dims.length || p.dims.some((d, i) => d !== dims[i]))
      throw new HxcError(
        'HXC2601',
        `the parts of a tensor held in parts differ: ${JSON.stringify(p.dims)} ${p.type} against ${JSON.stringify(dims)} ${parts[0]!.type}`,
      );
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const span = dims[axis]! * inner;
  const k = parts.length;
  const first = parts[0]!.data as Data;
  const data = new (first.constructor as new (n: number) => Data)(outer * span * k);
  parts.forEach((p, j) => {
    const src = p.data as Data;
    for (let o = 0; o < outer; o++) data.set(src.subarray(o * span, (o + 1) * span) as ArrayLike<unknown>, (o * k + j) * span);
  });
  dims[axis] = dims[axis]! * k;
  return new ort.Tensor(parts[0]!.type, data as ort.Tensor['data'], dims);
}
