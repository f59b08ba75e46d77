// A small ONNX graph builder for the generated benchmark models (src/bench/deepseek.ts,
// src/bench/llm.ts): graph-only weights as external data in a weights.bin that does not exist,
// small constants interned (the same key, the same initializer), nodes named after their module
// path as torch.onnx.export names them. Deterministic: the same calls give the same bytes.

import { createRequire } from 'node:module';
import type { onnx as OnnxNs } from 'onnx-proto';
import { byteSizeOf, dtypeFromOnnx } from '../ir/dtype.js';

const require = createRequire(import.meta.url);
export const { onnx } = require('onnx-proto') as { onnx: typeof OnnxNs };
export type { OnnxNs };

export const T = onnx.TensorProto.DataType;
const A = onnx.AttributeProto.AttributeType;
/** ONNX TensorProto.DataType FLOAT8E4M3FN (onnx.proto, IR 9); onnx-proto's enum predates it. */
export const FLOAT8E4M3FN = 17;

export class OnnxBuilder {
  readonly nodes: OnnxNs.INodeProto[] = [];
  readonly inits: OnnxNs.ITensorProto[] = [];
  private offset = 0;
  private readonly consts = new Map<string, string>();
  private readonly used = new Set<string>();

  /** `inline`: weights are float32 values in the model (a model that runs, for numeric checks) instead of absent external data. */
  constructor(private readonly inline = false) {}

  /**
   * A weight whose bytes are absent: external data at the next offset of weights.bin. Inline
   * (float32 only): deterministic values sin(i·0.37 + ‖dims‖)/16, small enough that a few
   * layers of them stay in range.
   */
  weight(name: string, dims: number[], dataType: number): string {
    if (this.inline) {
      if (dataType !== T.FLOAT) throw new Error(`inline weights are float32 only (${name})`);
      const n = dims.reduce((a, b) => a * b, 1);
      const phase = dims.reduce((a, b) => a + b, 0);
      const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + phase) / 16);
      this.inits.push({ name, dims, dataType, rawData: new Uint8Array(values.buffer) });
      return name;
    }
    const length = byteSizeOf(
      dtypeFromOnnx(dataType)!,
      dims.reduce((a, b) => a * b, 1),
    );
    this.inits.push({
      name,
      dims,
      dataType,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: 'weights.bin' },
        { key: 'offset', value: String(this.offset) },
        { key: 'length', value: String(length) },
      ],
    });
    this.offset += length;
    return name;
  }

  private constant(key: string, prefix: string, tensor: Omit<OnnxNs.ITensorProto, 'name'>): string {
    let name = this.consts.get(key);
    if (!name) {
      name = `${prefix}_${this.consts.size}`;
      this.consts.set(key, name);
      this.inits.push({ name, ...tensor });
    }
    return name;
  }

  i64(values: number[], scalar = false): string {
    return this.constant(`i64:${scalar ? 's' : 'v'}:${values.join(',')}`, 'const_i64', {
      dataType: T.INT64,
      ...(scalar ? {} : { dims: [values.length] }),
      rawData: new Uint8Array(BigInt64Array.from(values, BigInt).buffer),
    });
  }

  f32(value: number): string {
    return this.constant(`f32:${value}`, 'const_f32', { dataType: T.FLOAT, rawData: new Uint8Array(Float32Array.of(value).buffer) });
  }

  /** A scalar of a 16-bit float type: bfloat16 is the high half of the float32; float16 by rounding. */
  f16(value: number, dataType: number): string {
    const bits = dataType === T.BFLOAT16 ? new Uint32Array(Float32Array.of(value).buffer)[0]! >>> 16 : toHalf(value);
    return this.constant(`${dataType === T.BFLOAT16 ? 'bf16' : 'f16'}:${value}`, dataType === T.BFLOAT16 ? 'const_bf16' : 'const_f16', {
      dataType,
      rawData: new Uint8Array(Uint16Array.of(bits).buffer),
    });
  }

  /** One node named after its module path; returns its outputs' names (`{name}_output_{k}`). */
  node(scope: string, op: string, inputs: string[], attrs: OnnxNs.IAttributeProto[] = [], outputs = 1, outName?: string[], domain?: string): string[] {
    const name = `${scope}/${op}`;
    let unique = name;
    for (let k = 1; this.used.has(unique); k++) unique = `${name}_${k}`;
    this.used.add(unique);
    const out = outName ?? Array.from({ length: outputs }, (_, k) => `${unique}_output_${k}`);
    this.nodes.push({ name: unique, opType: op, input: inputs, output: out, attribute: attrs, ...(domain ? { domain } : {}) });
    return out;
  }

  one(scope: string, op: string, inputs: string[], attrs: OnnxNs.IAttributeProto[] = []): string {
    return this.node(scope, op, inputs, attrs)[0]!;
  }

  /** The model's bytes. */
  encode(
    name: string,
    producer: string,
    inputs: OnnxNs.IValueInfoProto[],
    outputs: OnnxNs.IValueInfoProto[],
    opsets: OnnxNs.IOperatorSetIdProto[] = [{ domain: '', version: 17 }],
    irVersion = 8,
  ): Buffer {
    const model = onnx.ModelProto.create({
      irVersion,
      producerName: producer,
      opsetImport: opsets,
      graph: { name, node: this.nodes, initializer: this.inits, input: inputs, output: outputs },
    });
    return Buffer.from(onnx.ModelProto.encode(model).finish());
  }
}

export const ints = (name: string, v: number[]): OnnxNs.IAttributeProto => ({ name, type: A.INTS, ints: v });
export const int = (name: string, v: number): OnnxNs.IAttributeProto => ({ name, type: A.INT, i: v });
export const float = (name: string, v: number): OnnxNs.IAttributeProto => ({ name, type: A.FLOAT, f: v });
export const str = (name: string, v: string): OnnxNs.IAttributeProto => ({ name, type: A.STRING, s: new TextEncoder().encode(v) });

/** A graph input or output with named (symbolic) or fixed dims. */
export function valueInfo(name: string, elemType: number, dims: (number | string)[]): OnnxNs.IValueInfoProto {
  return { name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } } };
}

/** IEEE half-precision bits of a float (round to nearest even; the generators' constants are in range). */
function toHalf(value: number): number {
  const f = new Float32Array([value]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp <= 0) return sign; // underflow to zero (no constant here is that small)
  if (exp >= 31) return sign | 0x7c00; // overflow to infinity (the mask's -inf stand-in)
  const round = mant & 0x1fff;
  mant >>>= 13;
  let h = sign | (exp << 10) | mant;
  if (round > 0x1000 || (round === 0x1000 && mant & 1)) h += 1;
  return h;
}
