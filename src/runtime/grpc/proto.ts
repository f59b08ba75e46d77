// The wire of hxc's multi-process runtime (hxc worker, hxc run --workers): one gRPC service over
// @grpc/grpc-js, its messages defined with protobufjs. Every message is an Envelope: a small JSON
// header (what it is: setup, run, done, a transfer chunk...) and tensors as raw bytes with their
// dtype and shape in fields — the numbers never go through JSON. Large tensors and program files
// travel in chunks of at most CHUNK_BYTES.
//
//   Control  (bidi stream, coordinator ↔ worker): setup, program files, run requests, done/ready/error/progress
//   Transfer (client stream, worker → worker):     tensor chunks from a device to its peer on another worker
//   Health   (unary):                              serving | draining

import protobuf from 'protobufjs';
import type { ServiceDefinition } from '@grpc/grpc-js';
import type { WireTensor } from '../protocol.js';

/** A chunk of a tensor or a program file on the wire (gRPC's default message limit is 4 MiB). */
export const CHUNK_BYTES = 1 << 20;
/** The largest message either side accepts (a chunk plus its header, with room). */
export const MAX_MESSAGE_BYTES = 8 << 20;

const root = protobuf.Root.fromJSON({
  nested: {
    hxc: {
      nested: {
        Tensor: {
          fields: {
            type: { type: 'string', id: 1 },
            dims: { rule: 'repeated', type: 'int64', id: 2 },
            data: { type: 'bytes', id: 3 },
          },
        },
        Envelope: {
          fields: {
            json: { type: 'string', id: 1 },
            tensors: { rule: 'repeated', type: 'Tensor', id: 2 },
            blob: { type: 'bytes', id: 3 },
          },
        },
      },
    },
  },
});
const EnvelopeType = root.lookupType('hxc.Envelope');

export interface Envelope {
  /** The header: `{type: ..., ...}`. */
  json: string;
  tensors: { type: string; dims: number[]; data: Uint8Array }[];
  /** Raw bytes (a program file chunk, a transfer chunk). */
  blob: Uint8Array;
}

export function encodeEnvelope(e: Partial<Envelope>): Buffer {
  const msg = EnvelopeType.fromObject({ json: e.json ?? '', tensors: e.tensors ?? [], blob: e.blob ?? new Uint8Array(0) });
  return Buffer.from(EnvelopeType.encode(msg).finish());
}

export function decodeEnvelope(b: Buffer): Envelope {
  const m = EnvelopeType.toObject(EnvelopeType.decode(b), { longs: Number, bytes: Buffer, defaults: true }) as {
    json: string;
    tensors: { type: string; dims: number[]; data: Buffer }[];
    blob: Buffer;
  };
  return { json: m.json, tensors: m.tensors, blob: m.blob };
}

/** A tensor of the runtime's wire as protobuf fields (its bytes viewed, not copied). */
export function tensorOut(w: WireTensor): Envelope['tensors'][number] {
  const bytes = elementBytes(w.type) * w.length;
  return { type: w.type, dims: w.dims, data: new Uint8Array(w.data, w.byteOffset, bytes) };
}

/** Back to the runtime's wire tensor: copied into an aligned buffer, its size checked against its shape. */
export function tensorIn(t: Envelope['tensors'][number]): WireTensor {
  const n = t.dims.reduce((a, b) => a * b, 1);
  const size = elementBytes(t.type);
  if (!Number.isSafeInteger(n) || n < 0 || n * size !== t.data.byteLength)
    throw new Error(`tensor of type ${t.type} and shape [${t.dims}] with ${t.data.byteLength} bytes`);
  const data = new ArrayBuffer(t.data.byteLength);
  new Uint8Array(data).set(t.data);
  return { type: t.type, dims: t.dims, data, byteOffset: 0, length: n };
}

export function elementBytes(type: string): number {
  const sizes: Record<string, number> = {
    float32: 4,
    float64: 8,
    int32: 4,
    int64: 8,
    int8: 1,
    uint8: 1,
    bool: 1,
    int16: 2,
    uint16: 2,
    float16: 2,
    uint32: 4,
    uint64: 8,
  };
  const s = sizes[type];
  if (s === undefined) throw new Error(`unsupported tensor type ${type}`);
  return s;
}

const ser = (b: Buffer): Buffer => b;
const de = (b: Buffer): Buffer => b;

/** The service: messages stay encoded Buffers here; each side encodes and decodes Envelopes itself. */
export const WORKER_SERVICE: ServiceDefinition = {
  control: {
    path: '/hxc.Worker/Control',
    requestStream: true,
    responseStream: true,
    requestSerialize: ser,
    requestDeserialize: de,
    responseSerialize: ser,
    responseDeserialize: de,
  },
  transfer: {
    path: '/hxc.Worker/Transfer',
    requestStream: true,
    responseStream: false,
    requestSerialize: ser,
    requestDeserialize: de,
    responseSerialize: ser,
    responseDeserialize: de,
  },
  health: {
    path: '/hxc.Worker/Health',
    requestStream: false,
    responseStream: false,
    requestSerialize: ser,
    requestDeserialize: de,
    responseSerialize: ser,
    responseDeserialize: de,
  },
};

/** One message as gRPC messages of at most CHUNK_BYTES of payload: itself, or fragments of its encoding. */
export function frames(encoded: Buffer): Buffer[] {
  if (encoded.length <= CHUNK_BYTES) return [encoded];
  const out: Buffer[] = [];
  for (let offset = 0; offset < encoded.length; offset += CHUNK_BYTES) {
    out.push(encodeEnvelope({ json: JSON.stringify({ type: 'frag', total: encoded.length, offset }), blob: encoded.subarray(offset, offset + CHUNK_BYTES) }));
  }
  return out;
}

/** A message header: what the envelope is. */
export type Head = { type: string } & Record<string, unknown>;

/**
 * Reassembles fragmented messages of one stream; a whole message is at most `max` bytes, checked
 * before its buffer is allocated, and fragments must arrive in order.
 */
export class Assembler {
  private buf: Buffer | null = null;
  private filled = 0;

  constructor(private readonly max: number) {}

  push(raw: Buffer): { head: Head; env: Envelope } | null {
    const env = decodeEnvelope(raw);
    const head = parseHead(env.json);
    if (head.type !== 'frag') return { head, env };
    const total = Number(head.total);
    const offset = Number(head.offset);
    if (!Number.isSafeInteger(total) || total <= 0 || total > this.max) throw new Error(`a message of ${head.total} bytes, more than the ${this.max} accepted`);
    if (offset === 0) {
      this.buf = Buffer.allocUnsafe(total);
      this.filled = 0;
    }
    if (!this.buf || this.buf.length !== total || offset !== this.filled || offset + env.blob.length > total) throw new Error('message fragments out of order');
    this.buf.set(env.blob, offset);
    this.filled += env.blob.length;
    if (this.filled < total) return null;
    const whole = this.buf;
    this.buf = null;
    const inner = decodeEnvelope(whole);
    return { head: parseHead(inner.json), env: inner };
  }
}

function parseHead(json: string): Head {
  const h = JSON.parse(json) as unknown;
  if (!h || typeof h !== 'object' || typeof (h as { type?: unknown }).type !== 'string') throw new Error('a message without a type');
  return h as Head;
}
