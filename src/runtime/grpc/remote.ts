// The coordinator's side of a run across processes: one Control stream per worker (hxc worker),
// over which it sends the plan, the programs of the devices it gives that worker (chunked), and
// the requests; results, progress and errors come back tagged by device. A stream that fails —
// the worker refused the token, died, or cannot be reached — is reported once, naming the worker
// and its devices.

import { ProgramReader } from '../../plan/programs.js';
import type { PlanV1 } from '../../plan/format.js';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { RunDone, RunRequest, WorkerMessage } from '../protocol.js';
import { sha256 } from '../../util/hash.js';
import { Assembler, CHUNK_BYTES, encodeEnvelope, frames, tensorIn, tensorOut, WORKER_SERVICE } from './proto.js';
import { closeClients, peerClient, tokenMetadata } from './client-common.js';
import { MAX_ASSEMBLED_BYTES, type Setup } from './server.js';

export interface WorkerSpec {
  address: string;
  devices: string[];
}

export class RemoteDevices {
  private readonly streams = new Map<string, grpc.ClientDuplexStream<Buffer, Buffer>>();
  private readonly workerOf = new Map<string, string>();
  private closing = false;

  constructor(
    private readonly specs: WorkerSpec[],
    private readonly token: string,
    private readonly onMessage: (m: WorkerMessage) => void,
    private readonly onFail: (message: string, devices: string[]) => void,
  ) {
    for (const w of specs) for (const d of w.devices) this.workerOf.set(d, w.address);
  }

  /** Opens the streams and sends each worker the plan, its programs and its devices. */
  setup(planDir: string, programMeta: PlanV1['programs'], devices: Setup['devices']): void {
    const planText = fs.readFileSync(path.join(planDir, 'plan.json'));
    const addresses = Object.fromEntries(this.workerOf);
    for (const w of this.specs) {
      const stream = peerClient(w.address).makeBidiStreamRequest<Buffer, Buffer>(
        WORKER_SERVICE.control!.path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        tokenMetadata(this.token),
      );
      this.streams.set(w.address, stream);
      const who = `the worker at ${w.address} (${w.devices.join(', ')})`;
      const asm = new Assembler(MAX_ASSEMBLED_BYTES);
      stream.on('data', (raw: Buffer) => {
        try {
          const m = asm.push(raw);
          if (!m) return;
          const h = m.head as unknown as WorkerMessage & { names?: string[] };
          if (h.type === 'done') {
            const outputs: RunDone['outputs'] = {};
            (h.names ?? []).forEach((n, i) => (outputs[n] = tensorIn(m.env.tensors[i]!)));
            this.onMessage({ ...(h as RunDone), outputs });
          } else this.onMessage(h);
        } catch (err) {
          this.onFail(`${who}: a bad message: ${(err as Error).message}`, w.devices);
        }
      });
      stream.on('error', (err: grpc.ServiceError) => {
        if (this.closing) return;
        const why =
          err.code === grpc.status.UNAUTHENTICATED
            ? 'refused the token (check token_file)'
            : err.code === grpc.status.UNAVAILABLE
              ? `cannot be reached or went away (${unreachableWhy(err.details)})`
              : err.details || err.message;
        this.onFail(`${who}: ${why}`, w.devices);
      });
      stream.on('end', () => {
        if (!this.closing) this.onFail(`${who}: went away`, w.devices);
      });
      const mine = devices.filter((d) => w.devices.includes(d.device));
      const setup: Setup = { type: 'setup', plan_sha256: sha256(planText), devices: mine, addresses };
      this.write(stream, setup, [], planText);
      const programs = [...new Set(mine.flatMap((d) => d.steps.filter((s) => s.program).map((s) => s.program!)))].sort();
      const reader = new ProgramReader(planDir);
      try {
        for (const file of programs) {
          const bytes = reader.read(file, programMeta[file]!);
          // At least one chunk, so that an empty file is created too.
          let offset = 0;
          do {
            this.write(stream, { type: 'file', path: file, offset }, [], bytes.subarray(offset, offset + CHUNK_BYTES));
            offset += CHUNK_BYTES;
          } while (offset < bytes.length);
        }
      } finally {
        reader.close();
      }
      this.write(stream, { type: 'start' });
    }
  }

  private write(stream: grpc.ClientDuplexStream<Buffer, Buffer>, head: object, tensors: ReturnType<typeof tensorOut>[] = [], blob?: Uint8Array): void {
    for (const f of frames(encodeEnvelope({ json: JSON.stringify(head), tensors, ...(blob ? { blob } : {}) }))) stream.write(f);
  }

  /** Another worker could not reach the one at `address`: report that worker as lost, as its own stream would. */
  lost(address: string, detail: string): void {
    const w = this.specs.find((x) => x.address === address);
    if (w) this.onFail(`the worker at ${w.address} (${w.devices.join(', ')}): went away (${detail})`, w.devices);
  }

  post(device: string, req: RunRequest): void {
    const stream = this.streams.get(this.workerOf.get(device)!)!;
    const names = Object.keys(req.feeds);
    this.write(
      stream,
      { type: 'run', device, request: req.request, use_state: req.use_state, return_state: req.return_state, names },
      names.map((n) => tensorOut(req.feeds[n]!)),
    );
  }

  /** The address of the worker that runs `device`. */
  addressOf(device: string): string {
    return this.workerOf.get(device) ?? '?';
  }

  /** Ends every stream: politely after a run (each worker ends its session), cancelled after a failure (`abort`: a stalled worker never answers). */
  close(abort = false): void {
    this.closing = true;
    for (const s of this.streams.values()) {
      try {
        if (abort) s.cancel();
        else {
          this.write(s, { type: 'end' });
          s.end();
        }
      } catch {
        // already gone
      }
    }
    closeClients();
  }
}

/**
 * grpc-js's words for a channel that could not connect ("No connection established. Last error:
 * Error: self-signed certificate. Resolution note: ") as one plain reason: its last error without
 * the "Error: " prefix, a timestamp or an empty note; a TLS failure says which file to look at.
 */
export function unreachableWhy(details: string): string {
  const m = /Last error: (?:Error: )?(.*?)\.?\s*(?:Resolution note:\s*(.*))?$/s.exec(details);
  let why = (m ? m[1]! : details).replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)/g, '').trim();
  const note = m?.[2]?.trim();
  if (note) why += `; ${note}`;
  if (why === '') return details;
  return /certificate|\bSSL\b|\bTLS\b|handshake|altname/i.test(why)
    ? `TLS: ${why}; the workers file's tls.ca must be the CA that signed the worker's --tls-cert, for the address dialled`
    : why;
}
