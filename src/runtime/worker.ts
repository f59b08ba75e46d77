// One device of a plan: an onnxruntime session per compute step, run in plan order; a recv waits
// for its tensor from the peer's port, a send posts it (moving the buffer when this device is
// done with it). KV state stays here between decode steps: a present output becomes the next
// step's past input without leaving the worker.

import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { QuitRequest, RunDone, RunRequest, StepRecord, TransferMessage, WireTensor, WorkerInit } from './protocol.js';
import { fromWire, shareTensor, toWire } from './wire.js';
import { SESSION_OPTIONS } from './protocol.js';
import { ProgramReader } from '../plan/programs.js';

interface Init extends WorkerInit {
  /** Port per peer device for sending (to) and receiving (from). */
  send_ports: Record<string, MessagePort>;
  recv_ports: Record<string, MessagePort>;
}

const init = workerData as Init;
// onnxruntime's own log lines never reach the user: its errors come back as exceptions, which hxc
// reports in one line of its own.
ort.env.logLevel = 'fatal';
const now = (): number => performance.timeOrigin + performance.now() - init.epoch_ms;

/** Messages arriving on one port, matched to waiting recv steps by (request, value). */
class Inbox {
  private readonly arrived = new Map<string, TransferMessage>();
  private readonly waiting = new Map<string, (m: TransferMessage) => void>();

  constructor(port: MessagePort) {
    port.on('message', (m: TransferMessage) => {
      // When this worker took it in (its event loop free to): a transfer is from its send to here,
      // not the receiver's wait — an upper bound on the link's time, the receiver's own work included.
      m.arrived_ms = now();
      const key = `${m.request}:${m.value}`;
      const w = this.waiting.get(key);
      if (w) {
        this.waiting.delete(key);
        w(m);
      } else this.arrived.set(key, m);
    });
  }

  take(request: number, value: string): Promise<TransferMessage> {
    const key = `${request}:${value}`;
    const m = this.arrived.get(key);
    if (m) {
      this.arrived.delete(key);
      return Promise.resolve(m);
    }
    return new Promise((resolve) => this.waiting.set(key, resolve));
  }
}

async function main(): Promise<void> {
  const sessions = new Map<string, ort.InferenceSession>();
  const reader = new ProgramReader(init.plan_dir);
  for (const s of init.steps) {
    if (s.op === 'compute' && s.program && !sessions.has(s.program)) {
      const options: ort.InferenceSession.SessionOptions = {
        ...SESSION_OPTIONS,
        ...(init.intra_op_threads > 0 ? { intraOpNumThreads: init.intra_op_threads, interOpNumThreads: 1 } : {}),
      };
      const packed = init.packed?.[s.program];
      sessions.set(
        s.program,
        packed
          ? // From its pack's bytes; external weights resolve in the program's folder, as for a file.
            await ort.InferenceSession.create(reader.read(s.program, packed), {
              ...options,
              extra: { session: { model_external_initializers_file_folder_path: path.join(init.plan_dir, path.dirname(s.program)) } },
            })
          : await ort.InferenceSession.create(path.join(init.plan_dir, s.program), options),
      );
    }
  }
  reader.close();
  const inboxes = new Map<string, Inbox>();
  for (const [peer, port] of Object.entries(init.recv_ports)) inboxes.set(peer, new Inbox(port));
  let kept = new Map<string, ort.Tensor>();
  const queue = new Int32Array(init.queue);
  const computeSteps = init.steps.filter((s) => s.op === 'compute').length;
  const probeNames = new Set(init.probes);
  /** session.run calls under way, and whether the coordinator asked this worker to quit. */
  let inSession = 0;
  let quitting = false;
  parentPort!.on('message', (req: RunRequest | QuitRequest) => {
    if (req.type === 'quit') {
      // Not while onnxruntime runs a session here: it would raise into a torn-down thread (src/runtime/stop.ts).
      quitting = true;
      if (inSession === 0) process.exit(0);
      return;
    }
    const received = now();
    runRequest(req)
      .then((done) => {
        done.handle_ms = now() - received;
        const transfer: ArrayBuffer[] = [];
        for (const w of Object.values(done.outputs)) transfer.push(w.data);
        parentPort!.postMessage(done, transfer);
      })
      .catch((err: Error) => parentPort!.postMessage({ type: 'error', device: init.device, message: err.message }));
  });
  parentPort!.postMessage({ type: 'ready', device: init.device });

  async function runRequest(req: RunRequest): Promise<RunDone> {
    const store = new Map<string, ort.Tensor>();
    for (const [name, w] of Object.entries(req.feeds)) store.set(name, fromWire(w));
    if (req.use_state) {
      for (const [present, past] of init.state) {
        const t = kept.get(present);
        if (t) store.set(past, t);
      }
      // A cache read on another device moves there (the plan reports such moves).
      for (const m of init.state_sends) {
        const t = kept.get(m.present);
        if (t)
          init.send_ports[m.peer]!.postMessage({
            value: m.past,
            request: req.request,
            tensor: toWire(t, false).wire,
            sent_ms: now(),
          } satisfies TransferMessage);
      }
      for (const m of init.state_recvs) store.set(m.past, fromWire((await inboxes.get(m.peer)!.take(req.request, m.past)).tensor));
    }
    const records: StepRecord[] = [];
    const probes: Record<string, number[]> = {};
    const dispatch: RunDone['dispatch'] = [];
    Atomics.store(queue, init.queue_slot, computeSteps);
    let wait = 0;
    let busy = 0;
    for (const [k, step] of init.steps.entries()) {
      if (init.report_progress)
        parentPort!.postMessage({ type: 'progress', device: init.device, request: req.request, step: k, label: `${step.op} ${step.label}` });
      const t0 = now();
      if (step.op === 'recv') {
        const m = await inboxes.get(step.peer!)!.take(req.request, step.value!);
        store.set(step.value!, fromWire(m.tensor));
        const t1 = now();
        wait += t1 - t0;
        records.push({
          op: 'recv',
          label: step.value!,
          start_ms: t0,
          end_ms: t1,
          bytes: m.tensor.data.byteLength,
          peer: step.peer!,
          sent_ms: m.sent_ms,
          arrived_ms: m.arrived_ms ?? t1,
        });
      } else if (step.op === 'send') {
        const t = store.get(step.value!);
        if (!t) throw new Error(`${init.device}: value ${step.value} to send is missing`);
        const { wire, transfer } = toWire(t, step.last_use === true);
        if (step.last_use) store.delete(step.value!);
        // (Read before posting: a transferred buffer is detached by postMessage, its length then 0.)
        const bytes = wire.data.byteLength;
        init.send_ports[step.peer!]!.postMessage({ value: step.value!, request: req.request, tensor: wire, sent_ms: t0 } satisfies TransferMessage, transfer);
        records.push({ op: 'send', label: step.value!, start_ms: t0, end_ms: now(), bytes, peer: step.peer! });
      } else {
        const session = sessions.get(step.program!)!;
        const feeds: Record<string, ort.Tensor> = {};
        // Expert copies: split the rows now, by each copy's live queue depth — fewer steps ahead, more rows.
        for (const [input, devices] of Object.entries(init.shares)) {
          if (!step.inputs!.includes(input)) continue;
          const depths = devices.map((d) => Atomics.load(queue, init.queue_slots[d]!));
          store.set(input, shareTensor(depths));
          dispatch.push({ input, depths });
        }
        for (const name of step.inputs!) {
          const t = store.get(name);
          if (!t) throw new Error(`${init.device}: ${step.program} needs ${name}, which has not arrived`);
          feeds[name] = t;
        }
        if (quitting) throw new Error('stopped');
        inSession++;
        let res: ort.InferenceSession.ReturnType;
        try {
          res = await session.run(feeds);
        } finally {
          inSession--;
          if (quitting && inSession === 0) process.exit(0);
        }
        for (const name of step.outputs!) {
          store.set(name, res[name]!);
          // Probe sizes are read here: the tensor may be sent (moved) before the request ends.
          if (probeNames.has(name)) probes[name] = [...res[name]!.dims];
        }
        Atomics.sub(queue, init.queue_slot, 1);
        const t1 = now();
        busy += t1 - t0;
        records.push({ op: 'compute', label: step.label, program: step.program!, start_ms: t0, end_ms: t1 });
      }
    }
    const outputs: Record<string, WireTensor> = {};
    const presents = new Set([...init.state.map(([p]) => p), ...init.state_sends.map((m) => m.present)]);
    const next = new Map<string, ort.Tensor>();
    for (const name of init.outputs) {
      const t = store.get(name);
      if (!t) continue;
      if (presents.has(name)) {
        next.set(name, t);
        if (!req.return_state) continue;
      }
      outputs[name] = toWire(t, !presents.has(name)).wire;
    }
    kept = next;
    return { type: 'done', request: req.request, device: init.device, outputs, steps: records, wait_ms: wait, busy_ms: busy, probes, dispatch };
  }
}

main().catch((err: Error) => parentPort!.postMessage({ type: 'error', device: init.device, message: err.message }));
