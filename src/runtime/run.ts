// The runtime loader: start one worker thread per device of a plan, feed the requests, move
// tensors along the plan's transfers (worker to worker, no coordinator in between), collect the
// graph outputs, and measure. --check runs the source model in one onnxruntime session on the
// same inputs and compares every output; --decode-steps runs a prefill and N decode steps with
// the KV cache kept on its owner devices.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { modelInputs, modelOutputNames, toParts, toWhole } from './shards.js';
import { HxcError } from '../diag/diagnostics.js';
import { readPlan, verifyPrograms } from '../plan/read.js';
import type { PlanV1 } from '../plan/format.js';
import { SESSION_OPTIONS, type RunDone, type RunRequest, type WireTensor, type WorkerInit, type WorkerMessage, type WorkerStep } from './protocol.js';
import { QUIT_GRACE_MS, stopWorker } from './stop.js';
import { compare, makeInputs, numericShape, readInputs, type Comparison } from './tensors.js';
import { fromWire, toWire } from './wire.js';
import { finish } from './telemetry.js';
import { sha256File } from '../util/hash.js';
import { RemoteDevices, type WorkerSpec } from './grpc/remote.js';
import type { Setup } from './grpc/server.js';

export interface RunOptions {
  plan_dir: string;
  inputs_file?: string;
  seed: number;
  iterations: number;
  check: boolean;
  decode_steps: number;
  model_path?: string;
  dims: Record<string, number>;
  /** Seconds a request may take before the run is ended (a backstop against a stalled device; default DEFAULT_TIMEOUT_S). */
  timeout_s?: number;
  /** Keep the last request's KV state (past input → tensor), and the unsplit model's, in the report (a serve plan's prefill). */
  keep_state?: boolean;
  /**
   * Start from this KV state: every request is a decode step, the first reading `state` as its past
   * inputs (a serve plan's decode pool, after the prefill pool ran; src/runtime/serve-run.ts).
   */
  from_state?: { state: Record<string, ort.Tensor>; reference: Record<string, ort.Tensor> | null };
  /** Run the devices on these worker processes (hxc worker) instead of threads of this process. */
  workers?: { specs: WorkerSpec[]; token: string };
}

export const DEFAULT_TIMEOUT_S = 600;

export interface RequestResult {
  request: number;
  kind: 'prefill' | 'decode' | 'request';
  latency_ms: number;
  dims: Record<string, number>;
  checks: Comparison[];
}

export interface RunReport {
  format: 'hxc-run/v1';
  plan: string;
  devices: string[];
  requests: RequestResult[];
  latency_ms: { p50: number; p95: number; mean: number };
  device_busy_share: Record<string, number>;
  /** Per device, the median busy time over the `requests` run at the plan's dims (all, when none was) against the estimate. */
  /**
   * Per device: measured busy time (the median over `requests` requests) against the estimate;
   * `at_plan_dims` false when no request ran at the plan's dims (a serving run's decode steps), so
   * the two are of different work.
   */
  /** skew: measured / estimated busy time; null when the plan estimated nothing for the device. */
  measured_vs_estimated: { device: string; measured_busy_s: number; estimated_busy_s: number; skew: number | null; requests: number; at_plan_dims: boolean }[];
  check: { passed: boolean; tolerance_rel: number; tolerance_abs: number; worst: Comparison | null } | null;
  telemetry: string;
  trace: string;
  /** Measured expert routing (hxc-routing/v1), when the model has routed MoE layers. */
  routing: string | null;
  /** With keep_state: the KV state after the last request, by past input name, and the unsplit model's (with --check). */
  state?: { state: Record<string, ort.Tensor>; reference: Record<string, ort.Tensor> | null };
}

function workerSteps(plan: PlanV1, device: PlanV1['devices'][number]): WorkerStep[] {
  // Consecutive compute steps sharing a program run it once.
  const steps = device.steps.filter((s, k) => {
    const before = device.steps[k - 1];
    return !(s.op === 'compute' && before?.op === 'compute' && before.program === s.program);
  });
  // A program run is labelled by every unit it runs (the trace names them all, not the first alone).
  const unitsOf = new Map<string, string[]>();
  for (const s of device.steps) if (s.op === 'compute' && s.unit) (unitsOf.get(s.program!) ?? unitsOf.set(s.program!, []).get(s.program!)!).push(s.unit);
  return steps.map((s, k) => {
    if (s.op === 'compute') {
      const meta = plan.programs[s.program!]!;
      const units = unitsOf.get(s.program!) ?? [];
      const label = units.length === 0 ? s.program! : units.length === 1 ? units[0]! : `${units.join(', ')} (${units.length} units)`;
      return { op: 'compute', program: s.program!, inputs: meta.inputs, outputs: meta.outputs, label };
    }
    if (s.op === 'recv') return { op: 'recv', value: s.value!, peer: s.peer!, label: s.value! };
    // A send moves the buffer when no later step here reads the value and it is not a graph output.
    const later = steps
      .slice(k + 1)
      .some((t) => (t.op === 'compute' && plan.programs[t.program!]!.inputs.includes(s.value!)) || (t.op === 'send' && t.value === s.value));
    const graphOutput = plan.outputs.some((o) => o.name === s.value);
    return { op: 'send', value: s.value!, peer: s.peer!, last_use: !later && !graphOutput, label: s.value! };
  });
}

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.js');

/**
 * Refuses a run this machine cannot hold, before it starts allocating: every device's activations
 * and state as the plan estimates them, scaled by how much larger the inputs are at the dims run
 * (--dim, an --inputs file) than at the plan's, plus the weights — all on this machine when the
 * devices are its threads (with --check, the unsplit model's again). `hxc run --dim batch_size=100000`
 * otherwise grew past 7 GB with no word.
 */
function refuseTooLarge(plan: PlanV1, specs: ReturnType<typeof modelInputs>, dims: Record<string, number>, check: boolean, remote: boolean): void {
  let scale = 1;
  for (const s of specs) {
    if (!s.shape) continue;
    const at = (d: Record<string, number>): number | null => {
      try {
        return numericShape(s.shape, d, s.name).reduce((a, b) => a * b, 1);
      } catch {
        return null;
      }
    };
    const planned = at(plan.dims);
    const run = at(dims);
    if (planned !== null && run !== null && planned > 0) scale = Math.max(scale, run / planned);
  }
  const here = plan.devices.reduce(
    (sum, d) => sum + (remote ? 0 : d.memory.weights_bytes + (d.memory.peak_activation_bytes + d.memory.state_bytes) * scale),
    0,
  );
  const reference = check ? plan.devices.reduce((sum, d) => sum + d.memory.weights_bytes + d.memory.peak_activation_bytes * scale, 0) : 0;
  const need = here + reference;
  const have = os.totalmem();
  if (need > have)
    throw new HxcError(
      'HXC2602',
      `at these dims the run needs about ${(need / 2 ** 30).toFixed(1)} GiB here (the plan's weights, and its activations and state ${scale === 1 ? 'as estimated' : `× ${scale.toPrecision(3)} for inputs that much larger than planned`}${check ? ', and the unsplit model for --check' : ''}), more than this machine's ${(have / 2 ** 30).toFixed(1)} GiB`,
      { where: plan.model.file, hint: 'run at smaller dims (--dim), or on workers (--workers) with the memory' },
    );
}

export async function runPlan(opts: RunOptions): Promise<RunReport> {
  const dir = opts.plan_dir;
  const plan = readPlan(dir);
  if (!plan.programs || Object.keys(plan.programs).length === 0) {
    throw new HxcError('HXC2601', 'this plan has no programs to run (it was planned from a JSON graph, which has no weights or kernels)', {
      where: dir,
      hint: 'plan an ONNX model',
    });
  }
  verifyPrograms(dir, plan);
  const active = plan.devices.filter((d) => d.steps.length > 0);
  const stateInputs = new Set(plan.state.flatMap((s) => s.inputs));
  // The model's inputs and outputs, where the plan holds some as parts (src/runtime/shards.ts):
  // feeds are made, read and checked whole, and cut into the plan's parts on the way in.
  const io = plan.tensor_parallel?.io ?? [];
  const modelIn = modelInputs(plan.inputs, io);
  const modelOutputs = modelOutputNames(
    plan.outputs.map((o) => o.name),
    io,
  );
  const wholeOf = new Map<string, string>();
  for (const x of io) for (const part of x.parts) wholeOf.set(part, x.name);
  const whole = (name: string): string => wholeOf.get(name) ?? name;
  const modelStateInputs = new Set([...stateInputs].map(whole));
  // The KV pairs by the model's names (past input ← present output): the unsplit model's state, and the state handed on.
  const wholePairs = new Map<string, string>();
  for (const o of plan.state) o.outputs.forEach((present, i) => wholePairs.set(whole(o.inputs[i]!), whole(present)));
  if ((opts.decode_steps > 0 || opts.from_state) && plan.state.length === 0)
    throw new HxcError('HXC2002', '--decode-steps needs a model with KV-cache state, and this plan has none', { where: '--decode-steps' });
  const roles = plan.roles;
  // The ordered device pairs that exchange tensors: transfers, and KV state between decode steps.
  const sendsTo = new Map<string, Set<string>>(active.map((d) => [d.id, new Set<string>()]));
  const pair = (from: string, to: string): void => void sendsTo.get(from)!.add(to);
  for (const t of plan.transfers) pair(t.from, t.to);
  // KV state between decode steps: each present stays where it is produced; a past input read on
  // another device is sent there at the start of each step.
  const producerOf = new Map<string, string>();
  const readersOf = new Map<string, Set<string>>();
  for (const d of active) {
    for (const s of d.steps) {
      if (s.op !== 'compute' || !s.program) continue;
      for (const v of plan.programs[s.program]!.outputs) producerOf.set(v, d.id);
      for (const v of plan.programs[s.program]!.inputs) (readersOf.get(v) ?? readersOf.set(v, new Set()).get(v)!).add(d.id);
    }
  }
  const statePairs = plan.state.flatMap((o) => o.outputs.map((present, i) => ({ present, past: o.inputs[i]! })));
  const localState = new Map<string, [string, string][]>();
  const stateSends = new Map<string, WorkerInit['state_sends']>();
  const stateRecvs = new Map<string, WorkerInit['state_recvs']>();
  for (const { present, past } of statePairs) {
    const owner = producerOf.get(present);
    if (!owner) continue;
    for (const reader of [...(readersOf.get(past) ?? [])].sort()) {
      if (reader === owner) (localState.get(owner) ?? localState.set(owner, []).get(owner)!).push([present, past]);
      else {
        pair(owner, reader);
        (stateSends.get(owner) ?? stateSends.set(owner, []).get(owner)!).push({ present, past, peer: reader });
        (stateRecvs.get(reader) ?? stateRecvs.set(reader, []).get(reader)!).push({ past, peer: owner });
      }
    }
  }
  const graphInputs = new Set(plan.inputs.map((i) => i.name));
  const replicaSets = plan.expert_replicas;
  const replicaParts = replicaSets.flatMap((r) => r.parts);
  const graphOutputs = new Set(plan.outputs.map((o) => o.name));
  const epoch = performance.timeOrigin + performance.now();
  // One device: onnxruntime's own defaults, as a plain session has. Several: the cores shared out.
  const threads = active.length === 1 ? 0 : Math.max(1, Math.floor(os.availableParallelism() / active.length));
  const needs = new Map<string, Set<string>>();
  const queue = new SharedArrayBuffer(4 * Math.max(1, active.length));
  const slots: Record<string, number> = Object.fromEntries(active.map((d, k) => [d.id, k]));
  const workers = new Map<string, { postMessage(req: RunRequest, transfer: ArrayBuffer[]): void; stop(): Promise<unknown> }>();
  // Across processes: the step each device last started, so that a failure names it.
  const lastStep = new Map<string, string>();
  const remoteInits: Setup['devices'] = [];
  const onMessage = (m: WorkerMessage): void => {
    if (m.type === 'progress') {
      lastStep.set(m.device, `step ${m.step} (${m.label}) of request ${m.request}`);
      return;
    }
    if (m.type === 'ready' || m.type === 'error') settled.get(m.device)?.();
    // A peer that cannot reach another worker: that worker is the one lost (its own stream may say so a moment later).
    if (m.type === 'error' && m.deployment && m.peer && remote) remote.lost(m.peer, `${m.device} could not send to it: ${m.message}`);
    else if (m.type === 'error')
      fail(`device ${m.device}${lastStep.has(m.device) ? ` at ${lastStep.get(m.device)}` : ''}: ${m.message}`, m.deployment === true);
    pending.get(m.device)?.(m);
  };
  const settled = new Map<string, () => void>();
  // In-process, a channel per pair; remote workers connect their own (src/runtime/grpc/server.ts).
  const sendPorts = new Map<string, Record<string, MessagePort>>(active.map((d) => [d.id, {}]));
  const recvPorts = new Map<string, Record<string, MessagePort>>(active.map((d) => [d.id, {}]));
  if (!opts.workers) {
    for (const [from, tos] of sendsTo) {
      for (const to of tos) {
        const ch = new MessageChannel();
        sendPorts.get(from)![to] = ch.port1;
        recvPorts.get(to)![from] = ch.port2;
      }
    }
  }
  const remote = opts.workers
    ? new RemoteDevices(opts.workers.specs, opts.workers.token, onMessage, (message, lost) => {
        for (const d of settled.values()) d();
        // Every lost device named: the step it was at, or that it had reported none (killed while it set up or waited).
        const at = lost.map((d) => (lastStep.has(d) ? `${d} was at ${lastStep.get(d)}` : `${d} had reported no step yet`)).join('; ');
        fail(`${message}${at ? `; ${at}` : ''}`, true);
      })
    : null;
  const initialised: Promise<void>[] = [];
  const pending = new Map<string, (m: WorkerMessage) => void>();
  let finished = false;
  const failures: string[] = [];
  // One device failing would leave its peers waiting forever on recv: the first failure ends the run.
  let fail: (message: string, deployment?: boolean) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    fail = (message: string, deployment = false) => {
      failures.push(message);
      reject(
        deployment
          ? new HxcError('HXC2603', message, { where: dir, hint: 'check the worker (its log says why), its token file and its address; then run again' })
          : new HxcError('HXC2601', message, failedWhere(dir, opts.inputs_file)),
      );
    };
  });
  failed.catch(() => {});
  /**
   * A stall past --timeout: in-process, the devices still at work; across processes, a deployment
   * failure naming each stalled device's worker and the step it was at (README: HXC2603).
   */
  const stalled = (message: string, devices: string[]): void => {
    if (!remote) {
      fail(message);
      return;
    }
    const at = devices.map((d) => `${d} (the worker at ${remote.addressOf(d)}) was at ${lastStep.get(d) ?? 'its setup'}`).join('; ');
    fail(`${message}: ${at}`, true);
  };
  for (const d of active) {
    const steps = workerSteps(plan, d);
    const need = new Set<string>();
    const produced = new Set<string>();
    for (const s of steps) {
      if (s.op === 'compute') for (const v of s.outputs!) produced.add(v);
      for (const v of s.inputs ?? []) if (graphInputs.has(v)) need.add(v);
    }
    needs.set(d.id, need);
    const init: WorkerInit & { send_ports: Record<string, MessagePort>; recv_ports: Record<string, MessagePort> } = {
      device: d.id,
      plan_dir: path.resolve(dir),
      steps,
      outputs: [...produced].filter((v) => graphOutputs.has(v)).sort(),
      state: localState.get(d.id) ?? [],
      state_sends: stateSends.get(d.id) ?? [],
      state_recvs: stateRecvs.get(d.id) ?? [],
      intra_op_threads: threads,
      epoch_ms: epoch,
      send_ports: sendPorts.get(d.id)!,
      recv_ports: recvPorts.get(d.id)!,
      queue,
      queue_slot: slots[d.id]!,
      queue_slots: slots,
      shares: Object.fromEntries(replicaSets.filter((rs) => need.has(rs.input)).map((rs) => [rs.input, rs.devices])),
      probes: [...(plan.expert_probes ?? []).map((p) => p.value), ...replicaParts].filter((v) => produced.has(v)),
      packed: Object.fromEntries(
        [...new Set(steps.flatMap((s) => (s.program ? [s.program] : [])))].flatMap((name) => {
          const meta = plan.programs[name];
          return meta?.pack !== undefined ? [[name, meta]] : [];
        }),
      ),
    };
    let settle = (): void => {};
    initialised.push(new Promise<void>((resolve) => (settle = resolve)));
    settled.set(d.id, settle);
    if (remote) {
      // A worker is sent each program's bytes and writes them as files of its own (src/runtime/grpc/server.ts): nothing is packed there.
      const { send_ports: _s, recv_ports: _r, queue: _q, plan_dir: _p, packed: _k, ...rest } = init;
      const recvPeers = active.filter((e) => sendsTo.get(e.id)!.has(d.id)).map((e) => e.id);
      remoteInits.push({ ...rest, send_peers: [...sendsTo.get(d.id)!].sort(), recv_peers: recvPeers.sort() });
      workers.set(d.id, { postMessage: (req) => remote.post(d.id, req), stop: async () => {} });
      continue;
    }
    const ports = [...Object.values(init.send_ports), ...Object.values(init.recv_ports)];
    const w = new Worker(WORKER, { workerData: init, transferList: ports });
    // Settled when the worker has its sessions (or gave up): a worker must not be terminated while
    // onnxruntime is still creating a session on it — that aborts the whole process.
    w.on('message', onMessage);
    w.on('error', (e) => {
      settle();
      fail(`device ${d.id}: ${e.message}`);
    });
    // A worker that stops without a word (killed, or its thread torn down) ends the run too.
    w.on('exit', (code) => {
      settle();
      if (!finished) fail(`device ${d.id}: its worker stopped (exit code ${code})`);
    });
    workers.set(d.id, {
      postMessage: (req, transfer) => w.postMessage(req, transfer),
      stop: () => stopWorker(w, Math.min(QUIT_GRACE_MS, (opts.timeout_s ?? DEFAULT_TIMEOUT_S) * 1000)),
    });
  }
  remote?.setup(dir, plan.programs, remoteInits);
  const next = (id: string): Promise<WorkerMessage> => new Promise((resolve) => pending.set(id, resolve));
  try {
    {
      // Loading the programs is bounded too: a worker that never answers ends the run.
      const timeout_s = opts.timeout_s ?? DEFAULT_TIMEOUT_S;
      const notReady = new Set(active.map((d) => d.id));
      const timer = setTimeout(() => stalled(`${[...notReady].join(', ')} not ready within ${timeout_s} s (--timeout)`, [...notReady]), timeout_s * 1000);
      await Promise.race([Promise.all(active.map((d) => next(d.id).then(() => notReady.delete(d.id)))), failed]).finally(() => clearTimeout(timer));
    }

    // The request sequence: iterations of one request, or a prefill and N decode steps.
    let dims: Record<string, number> = { ...plan.dims, ...opts.dims };
    let given: Record<string, ort.Tensor> | null = null;
    if (opts.inputs_file) {
      // The model's own inputs from the file; an expert copy's share of the rows (hxc.share.*) is the
      // plan's, filled here as on the generated path.
      const own = modelIn.filter((i) => i.fill.kind !== 'replica-share');
      const r = readInputs(opts.inputs_file, own);
      dims = { ...dims, ...r.dims };
      given = {
        ...r.tensors,
        ...makeInputs(
          modelIn.filter((i) => i.fill.kind === 'replica-share'),
          dims,
          opts.seed,
        ),
      };
    }
    refuseTooLarge(plan, modelIn, dims, opts.check, opts.workers !== undefined && opts.workers !== null);
    const reference = opts.check ? await ort.InferenceSession.create(resolveModel(opts, plan, dir), SESSION_OPTIONS) : null;
    if (reference) {
      // The outputs --check compares are the model's, all of them, as the plan lists them.
      const mine = modelOutputs;
      if (mine.length !== reference.outputNames.length || mine.some((n, i) => n !== reference.outputNames[i])) {
        throw new HxcError('HXC2601', `plan.json lists outputs ${JSON.stringify(mine)}, the model has ${JSON.stringify(reference.outputNames)}`, {
          where: path.join(dir, 'plan.json'),
          hint: 'the plan directory was changed after hxc wrote it: plan again',
        });
      }
    }
    const readers = new Map<string, number>();
    for (const d of active) for (const name of needs.get(d.id)!) readers.set(name, (readers.get(name) ?? 0) + 1);
    let refState: Record<string, ort.Tensor> = opts.from_state?.reference ?? {};
    let lastOutputs: Record<string, ort.Tensor> = {};
    const results: RequestResult[] = [];
    const records: { device: string; request: number; done: RunDone }[] = [];
    // From a given state every request is a decode step; otherwise a prefill, then the decode steps.
    const fromState = opts.from_state ?? null;
    const total = fromState ? Math.max(1, opts.decode_steps) : opts.decode_steps > 0 ? 1 + opts.decode_steps : opts.iterations;
    const maxPositions = plan.max_positions;
    if (opts.decode_steps > 0 && maxPositions !== null && roles.past && roles.seq) {
      const reach = (dims[roles.past] ?? 0) + (dims[roles.seq] ?? 1) + opts.decode_steps - (fromState ? 1 : 0);
      if (reach > maxPositions) {
        throw new HxcError('HXC2002', `--decode-steps ${opts.decode_steps} would take the sequence to ${reach} positions; the model has ${maxPositions}`, {
          where: '--decode-steps',
          hint: `plan with a smaller --context or --prompt, or run fewer steps`,
        });
      }
    }
    for (let r = 0; r < total; r++) {
      const decode = fromState !== null || (opts.decode_steps > 0 && r > 0);
      if (decode && !(fromState && r === 0)) {
        const seq = roles.seq ? (dims[roles.seq] ?? 1) : 1;
        if (roles.past) dims = { ...dims, [roles.past]: (dims[roles.past] ?? 0) + seq };
        if (roles.seq) dims = { ...dims, [roles.seq]: 1 };
        if (roles.total && roles.past && roles.seq) dims = { ...dims, [roles.total]: dims[roles.past]! + 1 };
      }
      const feeds = given && r === 0 ? given : makeInputs(decode ? modelIn.filter((i) => !modelStateInputs.has(i.name)) : modelIn, dims, opts.seed + r);
      // The first step from a given state reads it as ordinary inputs (the devices keep it from then on).
      if (fromState && r === 0) Object.assign(feeds, fromState.state);
      const planFeeds = toParts(feeds, io, 'input');
      const useState = decode && !(fromState && r === 0);
      const last = r === total - 1;
      const t0 = performance.now();
      // A backstop, not a measure: a request that makes no end within the timeout ends the run,
      // naming the devices still at work (the plan's cross-checks rule out a recv with no send).
      const waiting = new Set(active.map((d) => d.id));
      const timeout_s = opts.timeout_s ?? DEFAULT_TIMEOUT_S;
      const timer = setTimeout(
        () => stalled(`request ${r} did not finish within ${timeout_s} s (--timeout); still running: ${[...waiting].join(', ')}`, [...waiting]),
        timeout_s * 1000,
      );
      const dones = await Promise.race([
        failed,
        Promise.all(
          active.map((d) => {
            const mine: Record<string, WireTensor> = {};
            // Inputs go to the devices that read them; moved, not copied, unless --check still needs them
            // or another device reads the same input.
            for (const name of needs.get(d.id)!)
              if (planFeeds[name]) mine[name] = toWire(planFeeds[name]!, (!reference || planFeeds[name] !== feeds[name]) && readers.get(name) === 1).wire;
            const req: RunRequest = { type: 'run', request: r, feeds: mine, use_state: useState, return_state: last || opts.decode_steps === 0 };
            const p = next(d.id).then((m) => {
              waiting.delete(d.id);
              return m;
            });
            workers.get(d.id)!.postMessage(
              req,
              Object.values(mine).map((w) => w.data),
            );
            return p;
          }),
        ),
      ]).finally(() => clearTimeout(timer));
      const latency = performance.now() - t0;
      if (process.env.HXC_TRACE_RUN)
        process.stderr.write(
          `request ${r}: ${latency.toFixed(3)} ms; ${dones.map((m) => (m.type === 'done' ? `${m.device} handle ${m.handle_ms?.toFixed(3)} busy ${m.busy_ms.toFixed(3)}` : '')).join(', ')}\n`,
        );
      const bad = dones.find((m) => m.type === 'error');
      if (bad && bad.type === 'error') throw new HxcError('HXC2601', `device ${bad.device} failed: ${bad.message}`, failedWhere(dir, opts.inputs_file));
      const outputs: Record<string, ort.Tensor> = {};
      for (const m of dones) {
        if (m.type !== 'done') continue;
        records.push({ device: m.device, request: r, done: m });
        for (const [name, w] of Object.entries(m.outputs)) outputs[name] = fromWire(w);
      }
      lastOutputs = outputs;
      const checks: Comparison[] = [];
      if (reference) {
        // The unsplit model has none of the inputs hxc added (replica shares).
        const refFeeds: Record<string, ort.Tensor> = {};
        for (const name of reference.inputNames) if (feeds[name]) refFeeds[name] = feeds[name]!;
        if (decode) Object.assign(refFeeds, refState);
        const refOut = await reference.run(refFeeds);
        refState = {};
        for (const [past, present] of wholePairs) if (refOut[present]) refState[past] = refOut[present]!;
        const wholeOut = toWhole(outputs, io, 'output');
        for (const name of modelOutputs) {
          if (wholeOut[name] && refOut[name]) checks.push(compare(name, wholeOut[name]!, refOut[name]!));
        }
      }
      results.push({
        request: r,
        kind: opts.decode_steps > 0 || fromState ? (decode ? 'decode' : 'prefill') : 'request',
        latency_ms: latency,
        dims: { ...dims },
        checks,
      });
    }
    const report = finish(
      opts,
      plan,
      results,
      records,
      active.map((d) => d.id),
    );
    if (opts.keep_state) {
      // Handed on by the model's names: a decode plan cuts it into its own parts.
      const parts: Record<string, ort.Tensor> = {};
      for (const o of plan.state)
        o.outputs.forEach((present, i) => {
          if (lastOutputs[present]) parts[o.inputs[i]!] = lastOutputs[present]!;
        });
      report.state = { state: toWhole(parts, io, 'input'), reference: reference ? refState : null };
    }
    return report;
  } finally {
    finished = true;
    // Let every worker finish creating its sessions first (bounded by --timeout), then stop them.
    let waited: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(initialised), new Promise<void>((r) => (waited = setTimeout(r, (opts.timeout_s ?? DEFAULT_TIMEOUT_S) * 1000)))]);
    clearTimeout(waited);
    await Promise.all([...workers.values()].map((w) => w.stop()));
    // After a failure the streams are cancelled, not ended politely: a stalled worker never answers
    // an end, and its open call would keep this process alive past the error it printed.
    remote?.close(failures.length > 0);
  }
}

/**
 * The unsplit model for --check: --model, else where the plan says it was made from. Either way it
 * is used only if it is the very file planned — a regular file of the recorded size and sha256 —
 * so a plan cannot point --check at an arbitrary file.
 */
function resolveModel(opts: RunOptions, plan: PlanV1, dir: string): string {
  const p = opts.model_path ?? path.join(dir, plan.model.path_from_plan ?? plan.model.file);
  const where = opts.model_path ? '--model' : `${dir}: plan.json model.path_from_plan`;
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new HxcError('HXC2001', `--check needs the source model and ${p} does not exist`, { where, hint: 'give it with --model PATH' });
  }
  const size = plan.model.file_bytes;
  if (!st.isFile() || (size !== undefined && st.size !== size) || sha256File(p) !== plan.model.sha256) {
    throw new HxcError('HXC2601', `${p} is not the model this plan was made from (its size or sha256 differs)`, {
      where,
      hint: 'give the planned model with --model PATH, or plan again',
    });
  }
  return p;
}

/**
 * Where a device's failure points and what to do: the user's inputs when they gave them (the values
 * the kernels refused came from there: a token id past the vocabulary, a position past the table),
 * else the plan's dims.
 */
function failedWhere(dir: string, inputsFile: string | undefined): { where: string; hint: string } {
  return inputsFile
    ? {
        where: inputsFile,
        hint: 'check the values in the inputs file (an id past the table it indexes, a shape the model refuses) and that they match the plan (--dim)',
      }
    : { where: dir, hint: 'check that the inputs match the plan (--dim), or plan again' };
}
