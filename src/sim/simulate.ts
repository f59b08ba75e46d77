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
  /**
   * The same steps flat, when the caller has them so (src/partition/judge.ts): the simulation runs
   * on these and reads `devices[d].steps` only for a trace's labels.
   */
  packed?: PackedSteps;
  /**
   * The transfers' bytes and links (indices into `links`) when the caller has them so: the
   * simulation reads `transfers` only for a trace's names.
   */
  packedTransfers?: PackedTransfers;
}

/** Transfer t: `bytes[t]` over the links `routeLinks[route[t]]` (indices into SimInput.links, in route order). */
export interface PackedTransfers {
  bytes: Float64Array;
  route: Int32Array;
  /** Per route, its links (a list the caller may extend: a route's number stays). */
  routeLinks: readonly Int32Array[];
}

/** Every device's steps flat, device d's at [at[d], at[d + 1]), as the simulation reads them. */
export interface PackedSteps {
  at: Int32Array;
  /** 0 compute, 1 send, 2 recv. */
  op: Uint8Array;
  /** compute: planned seconds (0 for a send or recv). */
  duration_s: Float64Array;
  /** send/recv: index into transfers; compute: the unit in a schedule the judge built (src/partition/judge.ts), 0 from packSteps. */
  ref: Int32Array;
  round: Float64Array;
}

export const STEP_COMPUTE = 0;
export const STEP_SEND = 1;
export const STEP_RECV = 2;

/** Zeroed arrays for the steps `at` lays out (device d's at [at[d], at[d + 1])). */
export function emptyPackedSteps(at: Int32Array): PackedSteps {
  const total = at[at.length - 1]!;
  return { at, op: new Uint8Array(total), duration_s: new Float64Array(total), ref: new Int32Array(total), round: new Float64Array(total) };
}

/** The flat form of `devices`' steps (what `packed` holds when given). */
export function packSteps(devices: SimInput['devices']): PackedSteps {
  const nd = devices.length;
  const at = new Int32Array(nd + 1);
  devices.forEach((dev, d) => (at[d + 1] = at[d]! + dev.steps.length));
  const packed = emptyPackedSteps(at);
  devices.forEach((dev, d) =>
    dev.steps.forEach((step, k) => {
      const i = at[d]! + k;
      packed.op[i] = step.op === 'send' ? STEP_SEND : step.op === 'recv' ? STEP_RECV : STEP_COMPUTE;
      packed.duration_s[i] = step.duration_s ?? 0;
      packed.ref[i] = step.transfer ?? 0;
      packed.round[i] = step.round ?? 0;
    }),
  );
  return packed;
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
  /** Request 0's step times (for writing back into the plan): device d's step k runs from start_s[offset[d] + k] to end_s[offset[d] + k]. */
  step_times: { offset: Int32Array; start_s: Float64Array; end_s: Float64Array };
  /**
   * Request 0's transfers on the links: transfer t's bytes leave at start_s[t] (its send) and are
   * all across at end_s[t] — the trace's transfer bar. The receiving device takes them at its recv
   * step, when it gets there (step_times).
   */
  transfer_times: { start_s: Float64Array; end_s: Float64Array };
  /** Empty unless asked for (`simulate(input, {trace: true})`; empty too when they went to a callback). */
  trace: TraceEvent[];
}

/** A transfer with less than a byte left is done (float round-off must not stall the clock). */
const DONE_BYTES = 0.5;

const enum Ev {
  DeviceFree,
  Arrive,
  Flow,
}

/**
 * Pending events, earliest first and in the order pushed at equal times: a binary heap over
 * parallel typed arrays. A 16-request run of a 140k-step plan pushes about 1.7 million events;
 * an object per event was a tenth of the simulation's time in allocation and young-generation GC.
 * After `pop()`, `kind` and `id` hold the event taken (id: a device index for DeviceFree, a
 * transfer instance for Arrive and Flow).
 */
export class EventQueue {
  private t = new Float64Array(64);
  private seq = new Float64Array(64);
  // Kind and id in one number (id * 4 + kind): a heap move writes three arrays, not four.
  private load = new Int32Array(64);
  private pushed = 0;
  size = 0;
  kind: Ev = Ev.DeviceFree;
  id = 0;

  /** Empty, its arrays kept (a run reuses the last run's queue: no pages touched anew). */
  clear(): void {
    this.size = 0;
    this.pushed = 0;
  }

  /** Time of the earliest event (Infinity when none). */
  headTime(): number {
    return this.size > 0 ? this.t[0]! : Infinity;
  }

  // The arrays are read into locals: the sift loops are the simulation's hottest (millions of
  // pops per run), and a property load per access was a measurable share of them.
  push(time: number, kind: Ev, id: number): void {
    if (this.size === this.t.length) this.grow();
    const { t, seq: sq, load } = this;
    const seq = this.pushed++;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!(time < t[p]! || (time === t[p]! && seq < sq[p]!))) break;
      t[i] = t[p]!;
      sq[i] = sq[p]!;
      load[i] = load[p]!;
      i = p;
    }
    t[i] = time;
    sq[i] = seq;
    load[i] = id * 4 + kind;
  }

  pop(): void {
    const { t, seq: sq, load } = this;
    const top = load[0]!;
    this.kind = top & 3;
    this.id = top >> 2;
    const n = --this.size;
    if (n === 0) return;
    const time = t[n]!;
    const seq = sq[n]!;
    const last = load[n]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      const r = c + 1;
      if (r < n && (t[r]! < t[c]! || (t[r] === t[c] && sq[r]! < sq[c]!))) c = r;
      if (!(t[c]! < time || (t[c] === time && sq[c]! < seq))) break;
      t[i] = t[c]!;
      sq[i] = sq[c]!;
      load[i] = load[c]!;
      i = c;
    }
    t[i] = time;
    sq[i] = seq;
    load[i] = last;
  }

  private grow(): void {
    this.t = doubled(this.t);
    this.seq = doubled(this.seq);
    this.load = doubled(this.load);
  }
}

/** A copy of `a` in an array of its kind twice as long (the rest zeros). */
function doubled<A extends Float64Array | Int32Array>(a: A): A {
  const b = new (a.constructor as new (length: number) => A)(a.length * 2);
  b.set(a);
  return b;
}

/**
 * Contention-free duration of a transfer: sum of its links' latencies + bytes / the least of their
 * bandwidths (DESIGN.md "Cost model"); a transfer of less than a byte, or over no link, is its latency.
 */
export function transferTime_s(bytes: number, latency_s: number, bandwidth_bytes_per_s: number): number {
  return latency_s + (bytes <= DONE_BYTES || bandwidth_bytes_per_s === Infinity ? 0 : bytes / bandwidth_bytes_per_s);
}

/**
 * A device's execution sequence over R requests: (request, step) pairs ordered by
 * (request + round[step], step) — see the file comment. `step[i]`, `request[i]` is the i-th.
 */
export function executionOrder(round: Float64Array, R: number): { step: Int32Array; request: Int32Array } {
  const n = round.length;
  const total = n * R;
  const st = new Int32Array(total);
  const rq = new Int32Array(total);
  let maxRound = 0;
  let sorted = true;
  for (let k = 0; k < n; k++) {
    maxRound = Math.max(maxRound, round[k]!);
    if (k > 0 && round[k]! < round[k - 1]!) sorted = false;
  }
  if (maxRound === 0) {
    for (let i = 0; i < total; i++) {
      rq[i] = Math.floor(i / n);
      st[i] = i % n;
    }
  } else if (sorted) {
    // Rounds non-decreasing along the list (as schedules make them): slot s runs the steps whose
    // round lies in (s − R, s], a contiguous run [lo, hi) that only moves forward — O(R·n + rounds),
    // where scanning every step per slot is O((R + rounds)·n).
    let i = 0;
    let lo = 0;
    let hi = 0;
    for (let slot = 0; slot < R + maxRound; slot++) {
      while (hi < n && round[hi]! <= slot) hi++;
      while (lo < hi && round[lo]! <= slot - R) lo++;
      for (let k = lo; k < hi; k++) {
        st[i] = k;
        rq[i] = slot - round[k]!;
        i++;
      }
    }
  } else {
    let i = 0;
    for (let slot = 0; slot < R + maxRound; slot++) {
      for (let k = 0; k < n; k++) {
        const r = slot - round[k]!;
        if (r < 0 || r >= R) continue;
        st[i] = k;
        rq[i] = r;
        i++;
      }
    }
  }
  return { step: st, request: rq };
}

/**
 * A run's working arrays, kept for the next run: the waiters of T·R transfer instances (3.8 MB for
 * a DeepSeek-V3 schedule's 16 requests), the event heap and the flows, fresh per run, were new
 * pages to touch each time and off-heap bytes that paced the garbage collector. Taken by a run
 * while it runs (a run inside another, from a trace callback, makes its own).
 */
interface Scratch {
  waiter: Int32Array;
  events: EventQueue;
  flowInst: Int32Array;
  flowT: Int32Array;
  flowLeft: Float64Array;
  flowRate: Float64Array;
}

let spare: Scratch | null = null;

function newScratch(): Scratch {
  return {
    waiter: new Int32Array(0),
    events: new EventQueue(),
    flowInst: new Int32Array(64),
    flowT: new Int32Array(64),
    flowLeft: new Float64Array(64),
    flowRate: new Float64Array(64),
  };
}

/** How a device walks its slots (see simulate): every round 0; rounds non-decreasing; any. */
const WALK_FLAT = 0;
const WALK_IN_ORDER = 1;
const WALK_ANY = 2;

/**
 * `requests`: simulate this many instead of input.requests. `trace`: true keeps the trace's events
 * in the result; a function is given each as it happens instead (nothing kept: a writer streams them).
 */
export function simulate(
  input: SimInput,
  opts: { trace?: boolean | ((event: TraceEvent) => void); traceRequests?: number; requests?: number } = {},
): SimResult {
  const wantTrace = opts.trace !== undefined && opts.trace !== false;
  // The trace covers the first traceRequests requests (all by default): a long run's timeline
  // would not fit in one JSON string, and its first requests show the pattern.
  const traceUpTo = opts.traceRequests ?? Infinity;
  const nd = input.devices.length;
  const R = Math.max(1, opts.requests ?? input.requests);
  const packedT = input.packedTransfers;
  const T = packedT ? packedT.bytes.length : input.transfers.length;
  const linkBytes = new Float64Array(input.links.length);
  // Transfer t goes over route tRoute[t], whose links are rLinks[rFrom[ro] .. rFrom[ro + 1]) with
  // summed latency, least bandwidth and a shared link or not per route: packed, the caller's few
  // routes (72 on 9 devices), so a run's setup is per route, not per transfer (five arrays of T
  // per run, ~2 MB of fresh pages on a DeepSeek-V3 schedule's 59k transfers); else a route per transfer.
  let tRoute: Int32Array;
  let routes: readonly ArrayLike<number>[];
  let tBytes: Float64Array;
  if (packedT) {
    tRoute = packedT.route;
    routes = packedT.routeLinks;
    tBytes = packedT.bytes;
  } else {
    const linkIndex = new Map(input.links.map((l, i) => [l.name, i]));
    tRoute = new Int32Array(T);
    for (let t = 0; t < T; t++) tRoute[t] = t;
    routes = input.transfers.map((tr) => tr.links.flatMap((name) => linkIndex.get(name) ?? []));
    tBytes = Float64Array.from(input.transfers, (tr) => tr.bytes);
  }
  const nr = routes.length;
  const rFrom = new Int32Array(nr + 1);
  for (let ro = 0; ro < nr; ro++) rFrom[ro + 1] = rFrom[ro]! + routes[ro]!.length;
  const rLinks = new Int32Array(rFrom[nr]!);
  const rLatency = new Float64Array(nr);
  const rBandwidth = new Float64Array(nr);
  const rShared = new Uint8Array(nr);
  for (let ro = 0; ro < nr; ro++) {
    const own = routes[ro]!;
    // Its latency summed in route order, and its narrowest link.
    let latency = 0;
    let bw = Infinity;
    for (let j = 0; j < own.length; j++) {
      const i = own[j]!;
      const link = input.links[i]!;
      rLinks[rFrom[ro]! + j] = i;
      latency += link.latency_s;
      bw = Math.min(bw, link.bandwidth_bytes_per_s);
      if (link.shared) rShared[ro] = 1;
    }
    rLatency[ro] = latency;
    rBandwidth[ro] = bw;
  }
  // Steps flat (device d's at stepAt[d] + k): kind (1 send, 2 recv, 0 compute), duration, transfer, round.
  const packed = input.packed ?? packSteps(input.devices);
  const { at: stepAt, op: stepOp, duration_s: stepDur, ref: stepTransfer, round: stepRound } = packed;
  // Each device walks its execution sequence over all requests (executionOrder's, not listed: two
  // arrays of steps × requests per run, 19 MB for a DeepSeek-V3 schedule's 16 requests): slot s
  // runs the steps k in [lo, hi) whose request s − round[k] lies in [0, R). Rounds non-decreasing
  // along the list (as schedules make them): [lo, hi) only moves forward and holds just those;
  // else it is the whole list, the others skipped. With every round 0 (as unpipelined schedules
  // make them) slot s is request s, the whole list, and no step's round is read again: the judge
  // leaves those rounds unwritten, so their pages (1.2 MB of a DeepSeek-V3 schedule) are read once,
  // here. Device d is at step pos[d] of slot slotOf[d].
  const pos = new Int32Array(nd);
  const slotOf = new Int32Array(nd).fill(-1);
  const slotLo = new Int32Array(nd);
  const slotHi = new Int32Array(nd);
  const slotEnd = new Int32Array(nd);
  const walk = new Uint8Array(nd);
  for (let d = 0; d < nd; d++) {
    // (A load and two compares a step: Math.max and a second load of the previous round were
    // ~1 ms of a run's 150k steps.)
    let maxRound = 0;
    let sorted = true;
    let previous = -Infinity;
    for (let i = stepAt[d]!; i < stepAt[d + 1]!; i++) {
      const round = stepRound[i]!;
      if (round > maxRound) maxRound = round;
      if (round < previous) sorted = false;
      previous = round;
    }
    slotEnd[d] = R + maxRound;
    walk[d] = maxRound === 0 ? WALK_FLAT : sorted ? WALK_IN_ORDER : WALK_ANY;
  }

  const busyUntil = new Float64Array(nd);
  const busy = new Float64Array(nd);
  // Per transfer instance (request r's transfer t is r * T + t): 0 not arrived and nobody waiting,
  // d + 1 device d blocked on its arrival, -1 arrived. One array, not a flag and a device each.
  const scratch = spare ?? newScratch();
  spare = null;
  if (scratch.waiter.length < T * R) scratch.waiter = new Int32Array(T * R);
  const waiter = scratch.waiter.subarray(0, T * R).fill(0);
  // When a transfer left: request 0's for the result, and the traced requests' for their bars.
  const started = new Float64Array(T * (wantTrace ? Math.max(1, Math.min(R, traceUpTo)) : 1));
  const arrivedAt = new Float64Array(T);
  // Request 0's step times, flat: device d's step k at stepAt[d] + k.
  const stepStart = new Float64Array(stepAt[nd]!);
  const stepEnd = new Float64Array(stepAt[nd]!);
  const requestFinish = new Float64Array(R);
  const trace: TraceEvent[] = [];
  const traced = typeof opts.trace === 'function' ? opts.trace : (event: TraceEvent): void => void trace.push(event);
  const linkPid = nd;
  if (wantTrace) {
    input.devices.forEach((d, i) => traced({ name: 'process_name', cat: '__metadata', ph: 'M', ts: 0, pid: i, tid: 0, args: { name: d.id } }));
    traced({ name: 'process_name', cat: '__metadata', ph: 'M', ts: 0, pid: linkPid, tid: 0, args: { name: 'transfers' } });
  }
  const events = scratch.events;
  events.clear();
  // Transfers flowing over a shared link (processor sharing, rates recomputed when the set
  // changes), in the order they joined: slot k holds instance flowInst[k] of transfer flowT[k],
  // with flowLeft[k] bytes left and rate flowRate[k]. Kept by slot, not by instance: the few in
  // flight sit together, and no two arrays of T·R doubles are allocated per run.
  let flows = 0;
  let { flowInst, flowT, flowLeft, flowRate } = scratch;
  // Per link: the flows on it (kept as flows join and leave), its bandwidth and whether shared.
  const flowCount = new Int32Array(input.links.length);
  const linkBandwidth = Float64Array.from(input.links, (l) => l.bandwidth_bytes_per_s);
  const linkShared = Uint8Array.from(input.links, (l) => (l.shared ? 1 : 0));
  let ratesDirty = false;
  // The clock, in a typed array the closures below read it from (each as its `now`): a double in a
  // variable they share is a fresh heap number at every write, one per event (140 MB over a DeepSeek-V3 plan).
  const clock = new Float64Array(1);
  const ready: number[] = [];

  const arrive = (inst: number): void => {
    const now = clock[0]!;
    const d = waiter[inst]! - 1;
    waiter[inst] = -1;
    if (inst < T) arrivedAt[inst] = now; // request 0's
    const t = inst % T;
    const r = (inst - t) / T;
    if (now > requestFinish[r]!) requestFinish[r] = now;
    if (wantTrace && r < traceUpTo) {
      const tr = input.transfers[t]!;
      traced({
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
    if (d >= 0) ready.push(d);
  };

  const startTransfer = (t: number, r: number): void => {
    const now = clock[0]!;
    const inst = r * T + t;
    const bytes = tBytes[t]!;
    const ro = tRoute[t]!;
    if (inst < started.length) started[inst] = now;
    for (let j = rFrom[ro]!; j < rFrom[ro + 1]!; j++) linkBytes[rLinks[j]!]! += bytes;
    if (rShared[ro]) events.push(now + rLatency[ro]!, Ev.Flow, inst);
    else events.push(now + transferTime_s(bytes, rLatency[ro]!, rBandwidth[ro]!), Ev.Arrive, inst);
  };

  /** Run device d's steps until it blocks (compute in progress or a recv not yet arrived). */
  const advance = (d: number): void => {
    const now = clock[0]!;
    // Busy until a compute's end (its DeviceFree event advances it then).
    if (busyUntil[d]! > now) return;
    const at = stepAt[d]!;
    const n = stepAt[d + 1]! - at;
    // Its place in locals, written back when it blocks (a counted loop over ~150k steps per run).
    let k = pos[d]!;
    let hi = slotHi[d]!;
    let slot = slotOf[d]!;
    const how = walk[d]!;
    for (;;) {
      if (k >= hi) {
        // The next slot's steps.
        if (++slot >= slotEnd[d]!) break;
        if (how === WALK_IN_ORDER) {
          let lo = slotLo[d]!;
          while (hi < n && stepRound[at + hi]! <= slot) hi++;
          while (lo < hi && stepRound[at + lo]! <= slot - R) lo++;
          slotLo[d] = lo;
          k = lo;
        } else {
          k = 0;
          hi = n;
        }
        continue;
      }
      const request = how === WALK_FLAT ? slot : slot - stepRound[at + k]!;
      if (request < 0 || request >= R) {
        k++;
        continue;
      }
      const r = request | 0;
      const i = at + k;
      const op = stepOp[i]!;
      if (op === STEP_RECV) {
        const inst = r * T + stepTransfer[i]!;
        if (waiter[inst] !== -1) {
          waiter[inst] = d + 1;
          break;
        }
        if (r === 0) stepStart[i] = stepEnd[i] = now;
      } else if (op === STEP_SEND) {
        startTransfer(stepTransfer[i]!, r);
        if (r === 0) stepStart[i] = stepEnd[i] = now;
      } else {
        const dur = stepDur[i]!;
        busy[d]! += dur;
        if (r === 0) {
          stepStart[i] = now;
          stepEnd[i] = now + dur;
        }
        if (wantTrace && dur > 0 && r < traceUpTo)
          traced({ name: input.devices[d]!.steps[k]!.label, cat: 'compute', ph: 'X', ts: now * 1e6, dur: dur * 1e6, pid: d, tid: 0, args: { request: r } });
        if (now + dur > requestFinish[r]!) requestFinish[r] = now + dur;
        if (dur > 0) {
          busyUntil[d] = now + dur;
          events.push(busyUntil[d]!, Ev.DeviceFree, d);
          k++;
          break;
        }
      }
      k++;
    }
    pos[d] = k;
    slotHi[d] = hi;
    slotOf[d] = slot;
  };

  // Each flow's rate: the least over its links of the link's bandwidth, split evenly on a shared one.
  const setRates = (): void => {
    for (let k = 0; k < flows; k++) {
      const ro = tRoute[flowT[k]!]!;
      let r = Infinity;
      for (let j = rFrom[ro]!; j < rFrom[ro + 1]!; j++) {
        const l = rLinks[j]!;
        const share = linkShared[l] ? linkBandwidth[l]! / Math.max(1, flowCount[l]!) : linkBandwidth[l]!;
        if (share < r) r = share;
      }
      flowRate[k] = r;
    }
    ratesDirty = false;
  };

  const join = (inst: number): void => {
    if (flows === flowInst.length) {
      flowInst = doubled(flowInst);
      flowT = doubled(flowT);
      flowLeft = doubled(flowLeft);
      flowRate = doubled(flowRate);
    }
    const t = inst % T;
    flowInst[flows] = inst;
    flowT[flows] = t;
    flowLeft[flows] = tBytes[t]!;
    flowRate[flows] = 0;
    flows++;
    const ro = tRoute[t]!;
    for (let j = rFrom[ro]!; j < rFrom[ro + 1]!; j++) flowCount[rLinks[j]!]!++;
  };

  /** Takes slot k out, the others kept in order. */
  const leave = (k: number): void => {
    const ro = tRoute[flowT[k]!]!;
    for (let j = rFrom[ro]!; j < rFrom[ro + 1]!; j++) flowCount[rLinks[j]!]!--;
    flowInst.copyWithin(k, k + 1, flows);
    flowT.copyWithin(k, k + 1, flows);
    flowLeft.copyWithin(k, k + 1, flows);
    flowRate.copyWithin(k, k + 1, flows);
    flows--;
  };

  const drainReady = (): void => {
    while (ready.length > 0) advance(ready.pop()!);
  };

  // Shared flows' bytes left are as of `syncedAt`. Their rates change only when the set of flows
  // does, so between changes nothing about them moves but the clock: they are brought up to date
  // (sync) when the set changes or when the first of them is due to finish (`due`, at the current
  // rates). An event that touches no shared flow costs O(1), not O(flows) — with an all-to-all's
  // hundreds of flows in flight, three passes over them per event were a third of the simulation.
  let syncedAt = 0;
  let due = Infinity;
  const sync = (): void => {
    const now = clock[0]!;
    const dt = now - syncedAt;
    syncedAt = now;
    if (dt <= 0) return;
    for (let k = 0; k < flows; k++) flowLeft[k] = flowRate[k] === Infinity ? 0 : Math.max(0, flowLeft[k]! - flowRate[k]! * dt);
  };
  for (let d = nd - 1; d >= 0; d--) ready.push(d);
  drainReady();
  for (;;) {
    if (ratesDirty) {
      sync();
      setRates();
      // The first shared transfer to finish at these rates.
      const now = clock[0]!;
      due = Infinity;
      for (let k = 0; k < flows; k++) {
        const f = flowLeft[k]! <= DONE_BYTES || flowRate[k] === Infinity ? now : now + flowLeft[k]! / flowRate[k]!;
        if (f < due) due = f;
      }
    }
    const now = Math.min(events.headTime(), due);
    if (now === Infinity) break;
    clock[0] = now;
    if (now >= due) {
      sync();
      for (let k = flows - 1; k >= 0; k--) {
        // Done, or so nearly done that the clock cannot advance by what is left.
        if (flowLeft[k]! <= DONE_BYTES || now + flowLeft[k]! / flowRate[k]! <= now) {
          const inst = flowInst[k]!;
          leave(k);
          arrive(inst);
        }
      }
      // Rates and the next finish anew (also when round-off left the due one a hair short).
      ratesDirty = true;
    }
    while (events.size > 0 && events.headTime() <= now) {
      events.pop();
      if (events.kind === Ev.DeviceFree) ready.push(events.id);
      else if (events.kind === Ev.Arrive) arrive(events.id);
      else {
        sync(); // the flows in flight up to now, before one joins at its full size
        join(events.id);
        ratesDirty = true;
      }
    }
    // Devices in index order, as they became ready at the same instant (deterministic).
    // (Insertion sort: a handful at most, and Array.prototype.sort allocates.)
    for (let i = 1; i < ready.length; i++) {
      const d = ready[i]!;
      let j = i - 1;
      for (; j >= 0 && ready[j]! < d; j--) ready[j + 1] = ready[j]!;
      ready[j + 1] = d;
    }
    drainReady();
  }
  // Kept for the next run (the flow arrays as grown); a run that throws leaves its own behind.
  scratch.flowInst = flowInst;
  scratch.flowT = flowT;
  scratch.flowLeft = flowLeft;
  scratch.flowRate = flowRate;
  spare = scratch;
  const stuck = input.devices.findIndex((_, i) => slotOf[i]! < slotEnd[i]!);
  if (stuck >= 0) throw new Error(`simulation deadlocked: device ${input.devices[stuck]!.id} waits at step ${pos[stuck]}`);
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
    step_times: { offset: Int32Array.from(stepAt), start_s: stepStart, end_s: stepEnd },
    transfer_times: { start_s: started.length === T ? started : started.slice(0, T), end_s: arrivedAt },
    trace,
  };
}
