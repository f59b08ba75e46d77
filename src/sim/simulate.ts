// Discrete-event simulation of a plan on its topology, with link contention: each device runs its
// steps in order (compute for its planned duration; send starts a transfer and does not block;
// recv blocks until the transfer has arrived). A transfer waits its route's summed latency, then
// moves its bytes at min over its links of the link's bandwidth — divided equally among the
// transfers active on a `shared` link (processor sharing, like a bus), whole on others (DESIGN.md:
// "bandwidth per transfer"). Without contention a transfer takes sum(latency) + bytes/min(bw), the
// cost model's formula, so the simulation of one request reproduces the schedule's own times.
// N requests: every device runs its step list once per request, request after request.

export interface SimStep {
  op: 'compute' | 'send' | 'recv';
  /** compute: planned seconds. */
  duration_s?: number;
  /** send/recv: index into transfers. */
  transfer?: number;
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
  trace: TraceEvent[];
}

interface Active {
  transfer: number;
  request: number;
  /** Time the latency phase ends (bytes flow after it). */
  flowing_at: number;
  remaining: number;
  rate: number;
  started: number;
}

const EPS = 1e-15;
/** A transfer with less than a byte left is done (float round-off must not stall the clock). */
const DONE_BYTES = 0.5;

export function simulate(input: SimInput): SimResult {
  const linkByName = new Map(input.links.map((l) => [l.name, l]));
  const nd = input.devices.length;
  const R = Math.max(1, input.requests);
  const next = new Int32Array(nd); // flat index: request * steps + step
  const busyUntil = new Float64Array(nd);
  const busy = new Float64Array(nd);
  const arrived = new Set<string>(); // `${transfer}:${request}`
  const active: Active[] = [];
  const linkBytes: Record<string, number> = {};
  for (const l of input.links) linkBytes[l.name] = 0;
  const stepTimes = input.devices.map((d) => d.steps.map(() => ({ start_s: 0, end_s: 0 })));
  const requestFinish = new Array<number>(R).fill(0);
  const trace: TraceEvent[] = [];
  const linkPid = nd;
  input.devices.forEach((d, i) => trace.push({ name: 'process_name', cat: '__metadata', ph: 'M', ts: 0, pid: i, tid: 0, args: { name: d.id } }));
  trace.push({ name: 'process_name', cat: '__metadata', ph: 'M', ts: 0, pid: linkPid, tid: 0, args: { name: 'transfers' } });
  const latencyOf = (t: SimTransfer): number => t.links.reduce((s, l) => s + (linkByName.get(l)?.latency_s ?? 0), 0);
  let now = 0;

  const setRates = (): void => {
    const count = new Map<string, number>();
    for (const a of active) if (now >= a.flowing_at - EPS) for (const l of input.transfers[a.transfer]!.links) count.set(l, (count.get(l) ?? 0) + 1);
    for (const a of active) {
      let rate = Infinity;
      for (const l of input.transfers[a.transfer]!.links) {
        const link = linkByName.get(l);
        if (!link) continue;
        const share = link.shared ? link.bandwidth_bytes_per_s / Math.max(1, count.get(l) ?? 1) : link.bandwidth_bytes_per_s;
        rate = Math.min(rate, share);
      }
      a.rate = rate;
    }
  };

  /** Run every step that can run now; returns whether anything advanced. */
  const advance = (): boolean => {
    let moved = false;
    for (let d = 0; d < nd; d++) {
      const steps = input.devices[d]!.steps;
      if (steps.length === 0) continue;
      while (next[d]! < steps.length * R && busyUntil[d]! <= now + EPS) {
        const r = Math.floor(next[d]! / steps.length);
        const k = next[d]! % steps.length;
        const step = steps[k]!;
        if (step.op === 'recv') {
          if (!arrived.has(`${step.transfer}:${r}`)) break;
          if (r === 0) stepTimes[d]![k] = { start_s: now, end_s: now };
        } else if (step.op === 'send') {
          const t = input.transfers[step.transfer!]!;
          const lat = latencyOf(t);
          active.push({ transfer: step.transfer!, request: r, flowing_at: now + lat, remaining: t.bytes, rate: 0, started: now });
          for (const l of t.links) linkBytes[l] = (linkBytes[l] ?? 0) + t.bytes;
          if (r === 0) stepTimes[d]![k] = { start_s: now, end_s: now };
        } else {
          const dur = step.duration_s ?? 0;
          busyUntil[d] = now + dur;
          busy[d] += dur;
          if (r === 0) stepTimes[d]![k] = { start_s: now, end_s: now + dur };
          if (dur > 0) trace.push({ name: step.label, cat: 'compute', ph: 'X', ts: now * 1e6, dur: dur * 1e6, pid: d, tid: 0, args: { request: r } });
          requestFinish[r] = Math.max(requestFinish[r]!, now + dur);
        }
        next[d]!++;
        moved = true;
      }
    }
    return moved;
  };

  for (let guard = 0; guard < 50_000_000; guard++) {
    while (advance()) setRates();
    setRates();
    // Next event: a device finishing compute, a latency phase ending, or a transfer completing.
    let t = Infinity;
    for (let d = 0; d < nd; d++) if (busyUntil[d]! > now + EPS) t = Math.min(t, busyUntil[d]!);
    for (const a of active) {
      if (a.flowing_at > now + EPS) t = Math.min(t, a.flowing_at);
      else t = Math.min(t, a.remaining <= DONE_BYTES || a.rate === Infinity ? now : now + a.remaining / a.rate);
    }
    if (t === Infinity) break;
    const dt = t - now;
    for (const a of active) {
      if (a.flowing_at <= now + EPS) a.remaining = a.rate === Infinity ? 0 : Math.max(0, a.remaining - a.rate * dt);
    }
    now = t;
    for (let k = active.length - 1; k >= 0; k--) {
      const a = active[k]!;
      if (a.flowing_at <= now + EPS && a.remaining <= DONE_BYTES) {
        arrived.add(`${a.transfer}:${a.request}`);
        const tr = input.transfers[a.transfer]!;
        trace.push({ name: `${tr.value} ${tr.from}→${tr.to}`, cat: 'transfer', ph: 'X', ts: a.started * 1e6, dur: (now - a.started) * 1e6, pid: linkPid, tid: a.transfer, args: { bytes: tr.bytes, links: tr.links, request: a.request } });
        requestFinish[a.request] = Math.max(requestFinish[a.request]!, now);
        active.splice(k, 1);
      }
    }
  }
  const stuck = input.devices.findIndex((d, i) => next[i]! < d.steps.length * R);
  if (stuck >= 0) throw new Error(`simulation deadlocked: device ${input.devices[stuck]!.id} waits at step ${next[stuck]! % input.devices[stuck]!.steps.length}`);
  const makespan = Math.max(0, ...requestFinish);
  return {
    request_finish_s: requestFinish,
    makespan_s: makespan,
    throughput_per_s: makespan > 0 ? R / makespan : 0,
    devices: input.devices.map((d, i) => ({ id: d.id, busy_s: busy[i]! / R, idle_s: Math.max(0, makespan - busy[i]!) / R, utilisation: makespan > 0 ? busy[i]! / makespan : 0 })),
    link_bytes: Object.fromEntries(Object.entries(linkBytes).map(([k, v]) => [k, v / R])),
    step_times: stepTimes,
    trace,
  };
}
