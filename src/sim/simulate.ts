// Discrete-event simulation of a plan on its topology, with link contention: each device runs its
// steps in order (compute for its planned duration; send starts a transfer and does not block;
// recv blocks until the transfer has arrived). A transfer waits its route's summed latency, then
// moves its bytes at min over its links of the link's bandwidth — divided equally among the
// transfers flowing on a `shared` link (processor sharing, like a bus), whole on others (DESIGN.md:
// "bandwidth per transfer"). Without contention a transfer takes sum(latency) + bytes/min(bw), the
// cost model's formula, so the simulation of one request reproduces the schedule's own times.
//
// N requests: every device runs its step list once per request. A step may carry a `round` (a
// pipeline lag, non-decreasing along each device's list): a device runs step k of request r in the
// order of (r + round_k, k), so a device holding an early and a late pipeline segment runs the
// early one for request r+1 while request r is still downstream — software pipelining. With every
// round 0 this is request after request. One request runs in list order either way.
//
// This is the one model that judges plans: the partitioner compares candidates with it and the
// plan's estimate is its answer, so it is written to be called thousands of times per plan —
// typed arrays, an event heap, and processor sharing only for transfers that cross a shared link.

import { Heap } from '../util/heap.js';

export interface SimStep {
  op: 'compute' | 'send' | 'recv';
  /** compute: planned seconds. */
  duration_s?: number;
  /** send/recv: index into transfers. */
  transfer?: number;
  /** Pipeline lag (default 0); see the file comment. */
  round?: number;
  /** Shown in the trace. */
  label: string;
}

export interface SimTransfer {
  value: string;
  bytes: number;
  from: string;
  to: string;
  links: string[];
}

export interface SimLink {
  name: string;
  bandwidth_bytes_per_s: number;
  latency_s: number;
  shared: boolean;
}

export interface SimInput {
  devices: { id: string; steps: SimStep[] }[];
  transfers: SimTransfer[];
  links: SimLink[];
  requests: number;
}

export interface TraceEvent {
  name: string;
  cat: string;
  ph: 'X' | 'M';
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

export interface SimResult {
  /** Completion time of each request (all start at 0). */
  request_finish_s: number[];
  makespan_s: number;
  /** Steady-state rate: requests / makespan. */
  throughput_per_s: number;
  devices: { id: string; busy_s: number; idle_s: number; utilisation: number }[];
  link_bytes: Record<string, number>;
  /** Per device, per step of request 0: start and end (for writing back into the plan). */
  step_times: { start_s: number; end_s: number }[][];
  /** Empty unless asked for (`simulate(input, {trace: true})`). */
  trace: TraceEvent[];
}

/** A transfer with less than a byte left is done (float round-off must not stall the clock). */
const DONE_BYTES = 0.5;

const enum Ev {
  DeviceFree,
  Arrive,
  Flow,
}

interface Event {
  t: number;
  seq: number;
  kind: Ev;
  /** Device index (DeviceFree) or transfer instance (Arrive, Flow). */
  id: number;
}

/** Contention-free duration of a transfer: sum of latencies + bytes / min bandwidth (DESIGN.md "Cost model"). */
export function transferTime_s(bytes: number, links: readonly SimLink[]): number {
  let latency = 0;
  let bw = Infinity;
  for (const l of links) {
    latency += l.latency_s;
    bw = Math.min(bw, l.bandwidth_bytes_per_s);
  }
  return latency + (bytes <= DONE_BYTES || bw === Infinity ? 0 : bytes / bw);
}

export function simulate(input: SimInput, opts: { trace?: boolean; traceRequests?: number } = {}): SimResult {
  const wantTrace = opts.trace ?? false;
  // The trace covers the first traceRequests requests (all by default): a long run's timeline
  // would not fit in one JSON string, and its first requests show the pattern.
  const traceUpTo = opts.traceRequests ?? Infinity;
  const nd = input.devices.length;
  const R = Math.max(1, input.requests);
  const T = input.transfers.length;
  const linkIndex = new Map(input.links.map((l, i) => [l.name, i]));
  const linkBytes = new Float64Array(input.links.length);
  // Per transfer: its links, summed latency, solo rate, and whether it crosses a shared link.
  const tLinks: Int32Array[] = new Array(T);
  const tLatency = new Float64Array(T);
  const tShared = new Uint8Array(T);
  const tSolo = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const tr = input.transfers[t]!;
    const ids = tr.links.map((n) => linkIndex.get(n)).filter((x): x is number => x !== undefined);
    tLinks[t] = Int32Array.from(ids);
    const ls = ids.map((i) => input.links[i]!);
    for (const l of ls) {
      tLatency[t]! += l.latency_s;
      if (l.shared) tShared[t] = 1;
    }
    tSolo[t] = transferTime_s(tr.bytes, ls);
  }
  // Each device's execution sequence over all requests: (request, step), ordered by (r + round, k).
  const seqStep: Int32Array[] = [];
  const seqReq: Int32Array[] = [];
  for (const dev of input.devices) {
    const steps = dev.steps;
    const n = steps.length;
    const total = n * R;
    const st = new Int32Array(total);
    const rq = new Int32Array(total);
    let maxRound = 0;
    for (const s of steps) maxRound = Math.max(maxRound, s.round ?? 0);
    if (maxRound === 0) {
      for (let i = 0; i < total; i++) {
        rq[i] = Math.floor(i / Math.max(1, n));
        st[i] = i % Math.max(1, n);
      }
    } else {
      let i = 0;
      for (let slot = 0; slot < R + maxRound; slot++) {
        for (let k = 0; k < n; k++) {
          const r = slot - (steps[k]!.round ?? 0);
          if (r < 0 || r >= R) continue;
          st[i] = k;
          rq[i] = r;
          i++;
        }
      }
    }
    seqStep.push(st);
    seqReq.push(rq);
  }

  const next = new Int32Array(nd);
  const busyUntil = new Float64Array(nd);
  const busy = new Float64Array(nd);
  const arrived = new Uint8Array(T * R);
  const waiting = new Int32Array(T * R).fill(-1); // device blocked on this instance's arrival
  const started = new Float64Array(T * R);
  const stepTimes = input.devices.map((d) => d.steps.map(() => ({ start_s: 0, end_s: 0 })));
  const requestFinish = new Float64Array(R);
  const trace: TraceEvent[] = [];
  const linkPid = nd;
  if (wantTrace) {
    input.devices.forEach((d, i) => trace.push({ name: 'process_name', cat: '__metadata', ph: 'M', ts: 0, pid: i, tid: 0, args: { name: d.id } }));
    trace.push({ name: 'process_name', cat: '__metadata', ph: 'M', ts: 0, pid: linkPid, tid: 0, args: { name: 'transfers' } });
  }
  let seq = 0;
  const events = new Heap<Event>((a, b) => a.t < b.t || (a.t === b.t && a.seq < b.seq));
  const push = (t: number, kind: Ev, id: number): void => events.push({ t, seq: seq++, kind, id });
  // Transfers flowing over a shared link: processor sharing, rates recomputed when the set changes.
  const flowing: number[] = [];
  const remaining = new Float64Array(T * R);
  const rate = new Float64Array(T * R);
  const flowCount = new Int32Array(input.links.length);
  let ratesDirty = false;
  let now = 0;
  const ready: number[] = [];

  const arrive = (inst: number): void => {
    arrived[inst] = 1;
    const t = inst % T;
    const r = (inst - t) / T;
    if (now > requestFinish[r]!) requestFinish[r] = now;
    if (wantTrace && r < traceUpTo) {
      const tr = input.transfers[t]!;
      trace.push({
        name: `${tr.value} ${tr.from}→${tr.to}`,
        cat: 'transfer',
        ph: 'X',
        ts: started[inst]! * 1e6,
        dur: (now - started[inst]!) * 1e6,
        pid: linkPid,
        tid: t,
        args: { bytes: tr.bytes, links: tr.links, request: r },
      });
    }
    const d = waiting[inst]!;
    if (d >= 0) {
      waiting[inst] = -1;
      ready.push(d);
    }
  };

  const startTransfer = (t: number, r: number): void => {
    const inst = r * T + t;
    const bytes = input.transfers[t]!.bytes;
    started[inst] = now;
    for (const l of tLinks[t]!) linkBytes[l]! += bytes;
    if (!tShared[t]) {
      push(now + tSolo[t]!, Ev.Arrive, inst);
      return;
    }
    remaining[inst] = bytes;
    push(now + tLatency[t]!, Ev.Flow, inst);
  };

  /** Run device d's steps until it blocks (compute in progress or a recv not yet arrived). */
  const advance = (d: number): void => {
    const steps = input.devices[d]!.steps;
    const st = seqStep[d]!;
    const rq = seqReq[d]!;
    while (next[d]! < st.length && busyUntil[d]! <= now) {
      const k = st[next[d]!]!;
      const r = rq[next[d]!]!;
      const step = steps[k]!;
      if (step.op === 'recv') {
        const inst = r * T + step.transfer!;
        if (!arrived[inst]) {
          waiting[inst] = d;
          return;
        }
        if (r === 0) stepTimes[d]![k] = { start_s: now, end_s: now };
      } else if (step.op === 'send') {
        startTransfer(step.transfer!, r);
        if (r === 0) stepTimes[d]![k] = { start_s: now, end_s: now };
      } else {
        const dur = step.duration_s ?? 0;
        busy[d]! += dur;
        if (r === 0) stepTimes[d]![k] = { start_s: now, end_s: now + dur };
        if (wantTrace && dur > 0 && r < traceUpTo)
          trace.push({ name: step.label, cat: 'compute', ph: 'X', ts: now * 1e6, dur: dur * 1e6, pid: d, tid: 0, args: { request: r } });
        if (now + dur > requestFinish[r]!) requestFinish[r] = now + dur;
        if (dur > 0) {
          busyUntil[d] = now + dur;
          push(busyUntil[d]!, Ev.DeviceFree, d);
          next[d]!++;
          return;
        }
      }
      next[d]!++;
    }
  };

  const setRates = (): void => {
    flowCount.fill(0);
    for (const inst of flowing) for (const l of tLinks[inst % T]!) flowCount[l]!++;
    for (const inst of flowing) {
      let r = Infinity;
      for (const l of tLinks[inst % T]!) {
        const link = input.links[l]!;
        const share = link.shared ? link.bandwidth_bytes_per_s / Math.max(1, flowCount[l]!) : link.bandwidth_bytes_per_s;
        if (share < r) r = share;
      }
      rate[inst] = r;
    }
    ratesDirty = false;
  };

  const drainReady = (): void => {
    while (ready.length > 0) advance(ready.pop()!);
  };

  for (let d = nd - 1; d >= 0; d--) ready.push(d);
  drainReady();
  for (;;) {
    if (ratesDirty) setRates();
    // The next event: the heap's head, or the first shared transfer to finish at current rates.
    let tShare = Infinity;
    for (const inst of flowing) {
      const f = remaining[inst]! <= DONE_BYTES || rate[inst] === Infinity ? now : now + remaining[inst]! / rate[inst]!;
      if (f < tShare) tShare = f;
    }
    const head = events.peek();
    const t = Math.min(head ? head.t : Infinity, tShare);
    if (t === Infinity) break;
    if (flowing.length > 0) {
      const dt = t - now;
      for (const inst of flowing) remaining[inst] = rate[inst] === Infinity ? 0 : Math.max(0, remaining[inst]! - rate[inst]! * dt);
    }
    now = t;
    for (let k = flowing.length - 1; k >= 0; k--) {
      const inst = flowing[k]!;
      // Done, or so nearly done that the clock cannot advance by what is left.
      if (remaining[inst]! <= DONE_BYTES || now + remaining[inst]! / rate[inst]! <= now) {
        flowing.splice(k, 1);
        ratesDirty = true;
        arrive(inst);
      }
    }
    while (events.size > 0 && events.peek()!.t <= now) {
      const e = events.pop()!;
      if (e.kind === Ev.DeviceFree) ready.push(e.id);
      else if (e.kind === Ev.Arrive) arrive(e.id);
      else {
        flowing.push(e.id);
        ratesDirty = true;
      }
    }
    // Devices in index order, as they became ready at the same instant (deterministic).
    ready.sort((a, b) => b - a);
    drainReady();
  }
  const stuck = input.devices.findIndex((_, i) => next[i]! < seqStep[i]!.length);
  if (stuck >= 0) throw new Error(`simulation deadlocked: device ${input.devices[stuck]!.id} waits at step ${seqStep[stuck]![next[stuck]!]}`);
  let makespan = 0;
  for (let r = 0; r < R; r++) makespan = Math.max(makespan, requestFinish[r]!);
  const link_bytes: Record<string, number> = {};
  input.links.forEach((l, i) => (link_bytes[l.name] = linkBytes[i]! / R));
  return {
    request_finish_s: Array.from(requestFinish),
    makespan_s: makespan,
    throughput_per_s: makespan > 0 ? R / makespan : 0,
    devices: input.devices.map((d, i) => ({
      id: d.id,
      busy_s: busy[i]! / R,
      idle_s: Math.max(0, makespan - busy[i]!) / R,
      utilisation: makespan > 0 ? busy[i]! / makespan : 0,
    })),
    link_bytes,
    step_times: stepTimes,
    trace,
  };
}
