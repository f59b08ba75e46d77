// Tensors on the wire between threads: the typed array's buffer is moved (transferred) when the
// sender is done with it, else copied.

import * as ort from 'onnxruntime-node';
import type { WireTensor } from './protocol.js';

export function toWire(t: ort.Tensor, transfer: boolean): { wire: WireTensor; transfer: ArrayBuffer[] } {
  const view = t.data as unknown as ArrayBufferView;
  if (transfer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && !(view.buffer instanceof SharedArrayBuffer)) {
    return {
      wire: { type: t.type, dims: [...t.dims], data: view.buffer as ArrayBuffer, byteOffset: 0, length: (t.data as ArrayLike<unknown>).length },
      transfer: [view.buffer as ArrayBuffer],
    };
  }
  const copy = (view.buffer as ArrayBuffer).slice(view.byteOffset, view.byteOffset + view.byteLength);
  return { wire: { type: t.type, dims: [...t.dims], data: copy, byteOffset: 0, length: (t.data as ArrayLike<unknown>).length }, transfer: [copy] };
}

export function fromWire(w: WireTensor): ort.Tensor {
  const ctor: Record<string, new (b: ArrayBuffer, o: number, n: number) => ArrayBufferView> = {
    float32: Float32Array,
    float64: Float64Array,
    int32: Int32Array,
    int64: BigInt64Array,
    int8: Int8Array,
    uint8: Uint8Array,
    bool: Uint8Array,
    int16: Int16Array,
    uint16: Uint16Array,
    float16: Uint16Array,
    uint32: Uint32Array,
    uint64: BigUint64Array,
  };
  const C = ctor[w.type];
  if (!C) throw new Error(`unsupported tensor type ${w.type}`);
  return new ort.Tensor(w.type as ort.Tensor.Type, new C(w.data, w.byteOffset, w.length) as never, w.dims);
}

/**
 * Cumulative row shares for an expert's copies from their devices' queue depths (compute steps
 * still ahead): weight 1 / (1 + depth), so the least-loaded copy takes the most rows; the last
 * share is exactly 1, so the split covers every row.
 */
export function shareTensor(depths: number[]): ort.Tensor {
  const w = depths.map((d) => 1 / (1 + Math.max(0, d)));
  const total = w.reduce((a, b) => a + b, 0);
  let acc = 0;
  const cum = w.map((x, i) => (i === w.length - 1 ? 1 : (acc += x / total)));
  return new ort.Tensor('float32', Float32Array.from(cum), [cum.length]);
}
