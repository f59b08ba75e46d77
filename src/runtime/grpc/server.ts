// `hxc worker --listen HOST:PORT --token-file FILE`: a long-running process serving devices of
// plans to coordinators (`hxc run PLAN --workers W.yaml`). A coordinator opens a Control stream,
// presenting the token; it sends plan.json and the programs of the devices it gives this worker,
// each checked against the plan's sha256 before use and written into a private folder (the worker
// reads nothing else); then the worker runs each device in a thread of its own (the same device
// loop as in-process runs, src/runtime/worker.ts) and relays: run requests in, results out, and
// tensors to devices on other workers over Transfer streams, chunked. A stream without the token
// is refused and logged. SIGTERM drains: no new coordinator, the current one finishes, then exit.

import fs from 'node:fs';
import { scratchDir } from '../../util/temporaries.js';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import type { PlanV1 } from '../../plan/format.js';
import type { RunDone, RunRequest, TransferMessage, WorkerInit, WorkerMessage } from '../protocol.js';
import { sha256 } from '../../util/hash.js';
import { Assembler, encodeEnvelope, frames, tensorIn, tensorOut, WORKER_SERVICE, MAX_MESSAGE_BYTES, type Head } from './proto.js';
import { stopWorker } from '../stop.js';
import { peerClient, tokenMetadata } from './client-common.js';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'worker.js');
/** The largest whole message (a plan.json, a tensor) a worker reassembles. */
export const MAX_ASSEMBLED_BYTES = 1 << 30;

/** What a coordinator sends first: the plan, the devices given to this worker, where every other device is. */
export interface Setup {
  type: 'setup';
  plan_sha256: string;
  /** WorkerInit of each device here, less what only this process can make (ports, the queue, the folder). */
  devices: (Omit<WorkerInit, 'plan_dir' | 'queue'> & { send_peers: string[]; recv_peers: string[] })[];
  /** Every device of the run → the worker address serving it. */
  addresses: Record<string, string>;
}

export interface WorkerServerOptions {
  listen: string;
  token: string;
  tls?: { cert: Buffer; key: Buffer } | null;
  log: (line: string) => void;
}

export interface RunningServer {
  address: string;
  /** Stop taking coordinators, let the current ones finish (at most `grace_ms`), then stop. */
  drain(grace_ms: number): Promise<void>;
  /** At once, synchronously (a process about to exit): every session's folder removed, with the files it wrote. */
  discard(): void;
}

function authorised(md: grpc.Metadata, token: string): boolean {
  const got = md.get('authorization')[0];
  const want = Buffer.from(`Bearer ${token}`);
  const have = Buffer.from(typeof got === 'string' ? got : '');
  return have.length === want.length && crypto.timingSafeEqual(have, want);
}

export async function startWorkerServer(o: WorkerServerOptions): Promise<RunningServer> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });
  let draining = false;
  const sessions = new Set<Session>();
  /** Incoming transfers: `from→to` → the port into the device thread `to`. */
  const inbound = new Map<string, MessagePort>();
  const refuse = (call: { metadata: grpc.Metadata; getPeer(): string }, what: string): boolean => {
    if (authorised(call.metadata, o.token)) return false;
    o.log(`hxc worker: refused a ${what} call from ${call.getPeer()}: wrong or missing token`);
    return true;
  };
  server.addService(WORKER_SERVICE, {
    control(call: grpc.ServerDuplexStream<Buffer, Buffer>) {
      if (refuse(call, 'control')) {
        call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'wrong or missing token' });
        return;
      }
      if (draining) {
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'the worker is draining' });
        return;
      }
      const s = new Session(call, o, inbound);
      sessions.add(s);
      s.closed.then(() => sessions.delete(s));
    },
    transfer(call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      if (refuse(call, 'transfer')) {
        callback({ code: grpc.status.UNAUTHENTICATED, details: 'wrong or missing token' });
        return;
      }
      const asm = new Assembler(MAX_ASSEMBLED_BYTES);
      call.on('data', (raw: Buffer) => {
        try {
          const m = asm.push(raw);
          if (!m) return;
          const h = m.head as Head & { from: string; to: string; request: number; value: string; sent_ms: number };
          const port = inbound.get(`${h.from}→${h.to}`);
          const t = m.env.tensors[0];
          if (!port || !t) throw new Error(`a transfer ${h.from} → ${h.to} that no device here expects`);
          const tensor = tensorIn(t);
          port.postMessage({ value: h.value, request: h.request, tensor, sent_ms: h.sent_ms } satisfies TransferMessage, [tensor.data]);
        } catch (err) {
          o.log(`hxc worker: a bad transfer from ${call.getPeer()}: ${(err as Error).message}`);
          call.destroy(err as Error);
        }
      });
      call.on('end', () => callback(null, encodeEnvelope({ json: '{"type":"ok"}' })));
      call.on('error', () => {});
    },
    health(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      if (refuse(call, 'health')) {
        callback({ code: grpc.status.UNAUTHENTICATED, details: 'wrong or missing token' });
        return;
      }
      callback(null, encodeEnvelope({ json: JSON.stringify({ type: 'health', status: draining ? 'draining' : 'serving', sessions: sessions.size }) }));
    },
  });
  const creds = o.tls
    ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: o.tls.cert, private_key: o.tls.key }], false)
    : grpc.ServerCredentials.createInsecure();
  // grpc-js logs a failed bind itself ("E No address added …") before calling back with the same
  // error: quiet while binding (the caller says it once), unless GRPC_VERBOSITY asked for its log.
  const quiet = process.env.GRPC_VERBOSITY === undefined;
  if (quiet) grpc.setLogVerbosity(grpc.logVerbosity.NONE);
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => server.bindAsync(o.listen, creds, (err, p) => (err ? reject(err) : resolve(p))));
  } finally {
    if (quiet) grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
  }
  const host = o.listen.slice(0, o.listen.lastIndexOf(':'));
  return {
    address: `${host}:${port}`,
    async drain(grace_ms: number) {
      draining = true;
      const deadline = new Promise<void>((r) => setTimeout(r, grace_ms).unref());
      await Promise.race([Promise.all([...sessions].map((s) => s.closed)), deadline]);
      for (const s of sessions) await s.close('the worker stopped');
      let waited: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => server.tryShutdown(() => r())), new Promise<void>((r) => (waited = setTimeout(r, 2000)))]);
      clearTimeout(waited);
      server.forceShutdown();
    },
    discard() {
      for (const s of sessions) s.discard();
    },
  };
}

/** One coordinator's run on this worker: its folder, its device threads, its routes. */
class Session {
  private dir: string | null = null;
  private setup: Setup | null = null;
  private plan: PlanV1 | null = null;
  private readonly files = new Map<string, { fd: number; written: number; bytes: number }>();
  private readonly threads = new Map<string, Worker>();
  /** Settled when a device thread has its sessions (or gave up): a thread must not be stopped while onnxruntime creates one. */
  private readonly initialised: Promise<void>[] = [];
  private readonly outbound = new Map<string, grpc.ClientWritableStream<Buffer>>();
  private readonly clients: grpc.Client[] = [];
  private readonly ports: MessagePort[] = [];
  private readonly inboundKeys: string[] = [];
  private done = false;
  readonly closed: Promise<void>;
  private resolveClosed: () => void = () => {};

  constructor(
    private readonly call: grpc.ServerDuplexStream<Buffer, Buffer>,
    private readonly o: WorkerServerOptions,
    private readonly inbound: Map<string, MessagePort>,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    const asm = new Assembler(MAX_ASSEMBLED_BYTES);
    call.on('data', (raw: Buffer) => {
      try {
        const m = asm.push(raw);
        if (m) this.handle(m.head, m.env);
      } catch (err) {
        this.fail(err as Error);
      }
    });
    call.on('end', () => void this.close(null));
    call.on('error', () => void this.close(null));
    call.on('cancelled', () => void this.close(null));
  }

  private send(head: object, tensors: ReturnType<typeof tensorOut>[] = []): void {
    if (this.done) return;
    for (const f of frames(encodeEnvelope({ json: JSON.stringify(head), tensors }))) this.call.write(f);
  }

  private fail(err: Error): void {
    this.o.log(`hxc worker: ${err.message}`);
    this.send({ type: 'error', device: '(worker)', message: err.message });
    void this.close(err.message);
  }

  private handle(head: Head, env: { tensors: { type: string; dims: number[]; data: Uint8Array }[]; blob: Uint8Array }): void {
    if (head.type === 'setup') {
      const setup = head as unknown as Setup;
      const text = Buffer.from(env.blob);
      if (sha256(text) !== setup.plan_sha256) throw new Error('plan.json does not match the sha256 the coordinator sent');
      this.plan = JSON.parse(text.toString('utf8')) as PlanV1;
      this.setup = setup;
      // Named for this process (hxc-worker-PID-…): a worker killed outright leaves it, and the next
      // session of any worker on this machine removes it.
      this.dir = scratchDir('worker');
      fs.writeFileSync(path.join(this.dir, 'plan.json'), text);
      return;
    }
    if (head.type === 'file') {
      const plan = this.plan;
      const dir = this.dir;
      if (!plan || !dir) throw new Error('a program file before the setup');
      const name = String(head.path);
      const meta = plan.programs[name];
      const mine = this.setup!.devices.some((d) => d.steps.some((s) => s.program === name));
      if (!meta || !mine || !/^programs\/[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+\.onnx$/.test(name)) throw new Error(`a file "${name}" that no device here runs`);
      let f = this.files.get(name);
      if (!f) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        f = { fd: fs.openSync(path.join(dir, name), 'wx'), written: 0, bytes: meta.bytes };
        this.files.set(name, f);
      }
      if (Number(head.offset) !== f.written || f.written + env.blob.length > f.bytes)
        throw new Error(`${name}: more bytes or other offsets than the plan declares`);
      fs.writeSync(f.fd, env.blob);
      f.written += env.blob.length;
      return;
    }
    if (head.type === 'start') {
      this.start();
      return;
    }
    if (head.type === 'run') {
      const req = head as unknown as RunRequest & { device: string; names: string[] };
      const w = this.threads.get(req.device);
      if (!w) throw new Error(`a request for ${req.device}, which this worker does not serve`);
      const feeds: RunRequest['feeds'] = {};
      req.names.forEach((n, i) => (feeds[n] = tensorIn(env.tensors[i]!)));
      const msg: RunRequest = { type: 'run', request: req.request, feeds, use_state: req.use_state, return_state: req.return_state };
      w.postMessage(
        msg,
        Object.values(feeds).map((t) => t.data),
      );
      return;
    }
    if (head.type === 'end') return void this.close(null);
    throw new Error(`an unknown message "${head.type}"`);
  }

  private start(): void {
    const setup = this.setup;
    const plan = this.plan;
    const dir = this.dir;
    if (!setup || !plan || !dir) throw new Error('start before the setup');
    for (const [name, f] of this.files) {
      fs.closeSync(f.fd);
      f.fd = -1; // its number is free for others now: never close it again
      if (f.written !== f.bytes || sha256(fs.readFileSync(path.join(dir, name))) !== plan.programs[name]!.sha256)
        throw new Error(`${name} does not match the plan's sha256`);
    }
    const here = new Set(setup.devices.map((d) => d.device));
    const slots = setup.devices[0]?.queue_slots ?? {};
    const queue = new SharedArrayBuffer(4 * Math.max(1, Object.keys(slots).length));
    // Ports between devices of this worker; for a device elsewhere, a port whose far end this thread relays.
    const local = new Map<string, { send: MessagePort; recv: MessagePort }>();
    const channel = (from: string, to: string): { send: MessagePort; recv: MessagePort } => {
      const key = `${from}→${to}`;
      let c = local.get(key);
      if (!c) {
        const ch = new MessageChannel();
        c = { send: ch.port1, recv: ch.port2 };
        local.set(key, c);
      }
      return c;
    };
    for (const d of setup.devices) {
      const send_ports: Record<string, MessagePort> = {};
      const recv_ports: Record<string, MessagePort> = {};
      for (const p of d.send_peers) {
        const c = channel(d.device, p);
        send_ports[p] = c.send;
        if (!here.has(p)) {
          this.ports.push(c.recv);
          c.recv.on('message', (m: TransferMessage) => this.forward(d.device, p, m));
        }
      }
      for (const p of d.recv_peers) {
        const c = channel(p, d.device);
        recv_ports[p] = c.recv;
        if (!here.has(p)) {
          this.inbound.set(`${p}→${d.device}`, c.send);
          this.inboundKeys.push(`${p}→${d.device}`);
          this.ports.push(c.send);
        }
      }
      const { send_peers: _s, recv_peers: _r, ...rest } = d;
      const init = { ...rest, plan_dir: dir, queue, send_ports, recv_ports, report_progress: true };
      const w = new Worker(WORKER, { workerData: init, transferList: [...Object.values(send_ports), ...Object.values(recv_ports)] });
      let settle = (): void => {};
      this.initialised.push(new Promise<void>((r) => (settle = r)));
      w.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready' || m.type === 'error') settle();
        this.fromDevice(m);
      });
      w.on('error', (e) => {
        settle();
        this.send({ type: 'error', device: d.device, message: e.message });
      });
      w.on('exit', (code) => {
        settle();
        if (!this.done) this.send({ type: 'error', device: d.device, message: `its thread stopped (exit code ${code})` });
      });
      this.threads.set(d.device, w);
    }
  }

  private fromDevice(m: WorkerMessage): void {
    if (m.type !== 'done') {
      this.send(m);
      return;
    }
    const done = m as RunDone;
    const names = Object.keys(done.outputs);
    this.send(
      { ...done, outputs: undefined, names },
      names.map((n) => tensorOut(done.outputs[n]!)),
    );
  }

  /** A tensor from a device here to a device on another worker: over that worker's Transfer stream. */
  private forward(from: string, to: string, m: TransferMessage): void {
    const address = this.setup!.addresses[to];
    if (!address) {
      this.fail(new Error(`no worker address for ${to}`));
      return;
    }
    let stream = this.outbound.get(address);
    if (!stream) {
      // A connection of this session's own, closed with it: nothing of one run lingers into the next.
      const client = peerClient(address, true);
      this.clients.push(client);
      stream = client.makeClientStreamRequest<Buffer, Buffer>(
        WORKER_SERVICE.transfer!.path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        tokenMetadata(this.o.token),
        (err) => {
          if (err && !this.done)
            this.send({
              type: 'error',
              device: from,
              deployment: true,
              peer: address,
              message: `sending to ${to} at ${address}: ${err.details || err.message}`,
            });
        },
      );
      this.outbound.set(address, stream);
    }
    const head = { type: 'tensor', from, to, request: m.request, value: m.value, sent_ms: m.sent_ms };
    for (const f of frames(encodeEnvelope({ json: JSON.stringify(head), tensors: [tensorOut(m.tensor)] }))) stream.write(f);
  }

  /** The session's folder removed now (the process is exiting): its programs and plan.json are copies of the coordinator's. */
  discard(): void {
    for (const f of this.files.values()) {
      if (f.fd < 0) continue;
      try {
        fs.closeSync(f.fd);
      } catch {
        // closed already
      }
      f.fd = -1;
    }
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }

  async close(reason: string | null): Promise<void> {
    if (this.done) return;
    this.done = true;
    if (reason) this.o.log(`hxc worker: session ended: ${reason}`);
    for (const s of this.outbound.values()) s.end();
    for (const c of this.clients) c.close();
    for (const k of this.inboundKeys) this.inbound.delete(k);
    for (const p of this.ports) p.close();
    let waited: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.initialised), new Promise<void>((r) => (waited = setTimeout(r, 120_000)))]);
    clearTimeout(waited);
    await Promise.all([...this.threads.values()].map((w) => stopWorker(w)));
    for (const f of this.files.values()) if (f.fd >= 0) fs.closeSync(f.fd);
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
    try {
      this.call.end();
    } catch {
      // the stream is gone already
    }
    this.resolveClosed();
  }
}
