// Request-level discrete-event simulation of a serving deployment (DistServe, Splitwise): requests
// arrive (Poisson, seeded), queue for a prefill replica, hand their KV cache over a link to a
// decode replica, and decode there in a continuous batch (Orca / vLLM iteration-level batching).
// Colocated, one pool does both: a waiting prefill runs before the next decode iteration and
// stalls the batch (vLLM's default scheduling). It reports goodput — requests per second that meet
// both SLOs — with TTFT and TPOT percentiles, pool utilisation and KV occupancy.
//
// Service times come from hxc's plans of each phase (src/serve/plan.ts), scaled per request:
//   prefill of L tokens: latency × L/P and, for a pipelined plan, a new prompt every interval ×
//     L/P (P the prompt length it was planned at; linear in tokens: the projections and MLPs,
//     which dominate prefill FLOPs, are; attention's L² term is not modelled);
//   a decode iteration of b sequences: the step time planned at batch 1 and at the largest batch,
//     interpolated linearly in b (decode reads the weights once per step whatever b, and each
//     sequence's KV and activations once);
//   the KV handoff of L tokens: each pair of KV owners (the prefill device that wrote a layer's
//     cache, the decode device that keeps it) moves its share at once with the others, over its
//     route: a lane takes latency + bytes_per_token × L / bandwidth, a shared link that several
//     pairs cross is a lane of all their bytes, and the handoff takes its slowest lane; one
//     request's handoff at a time (FCFS: the contention); with per-layer KV objects it streams
//     layer by layer while prefill runs, so only the last layer's share waits after it.

import { drawRequests, meanLength, type Request, type Workload } from './workload.js';
import type { HandoffLane, ServeFiguresV1, ServeModelV1 } from '../plan/format.js';

export type { HandoffLane };
import { percentile } from '../util/stats.js';

/** The service times of a deployment, as plan.json `serve.model` records them. */
export type ServeModel = ServeModelV1;

/** The figures plan.json records per rate (goodput: requests per second meeting both SLOs, the rate × the share that does), and more. */
export interface ServeResult extends ServeFiguresV1 {
  requests: number;
  makespan_s: number;
  utilisation: { prefill: number; decode: number; handoff: number };
  /** Sequences in decode batches, time-averaged and at the most, per replica, against max_batch. */
  kv_occupancy: { mean: number; peak: number };
}

export function prefillTimes(m: ServeModel, prompt: number): { latency: number; interval: number } {
  const k = prompt / m.prefill.prompt_tokens;
  return { latency: m.prefill.latency_s * k, interval: m.prefill.interval_s * k };
}

export function decodeStep(m: ServeModel, batch: number): number {
  const d = m.decode;
  if (d.max_batch <= 1) return d.step_s_batch1;
  return d.step_s_batch1 + ((d.step_s_batch_max - d.step_s_batch1) * (batch - 1)) / (d.max_batch - 1);
}

/** Seconds a lane takes for `prompt` tokens: latency + bytes / bandwidth. */
export function laneSeconds(l: HandoffLane, prompt: number): number {
  return l.latency_s + (l.bytes_per_token * prompt) / l.bandwidth_bytes_per_s;
}

/**
 * Seconds one request's KV takes on its routes (its slowest lane; a plan written before lanes:
 * its one route), and how much of it may run before its prefill ends.
 */
export function handoffTimes(m: ServeModel, prompt: number, prefillLatency: number): { busy: number; early: number } {
  const h = m.handoff;
  if (!h) return { busy: 0, early: 0 };
  const busy = h.lanes ? h.lanes.reduce((a, l) => Math.max(a, laneSeconds(l, prompt)), 0) : laneSeconds(h, prompt);
  const share = h.layers > 1 ? (h.layers - 1) / h.layers : 0;
  return { busy, early: Math.min(busy, prefillLatency) * share };
}

interface Seq {
  req: number;
  ready: number;
  left: number;
}

export function simulateServe(m: ServeModel, w: Workload, rate: number): ServeResult {
  const reqs = drawRequests(w, rate);
  const n = reqs.length;
  const firstToken = new Float64Array(n);
  const done = new Float64Array(n);
  let prefillBusy = 0;
  let decodeBusy = 0;
  let handoffBusy = 0;
  let occArea = 0;
  let occPeak = 0;
  if (m.disaggregated) {
    // Prefill: FCFS to the replica free first (service is deterministic, so arrival order is the order).
    const free = new Float64Array(m.prefill.replicas);
    const kvReady = new Float64Array(n);
    const order: number[] = [];
    reqs.forEach((r, i) => {
      let k = 0;
      for (let j = 1; j < free.length; j++) if (free[j]! < free[k]!) k = j;
      const t = prefillTimes(m, r.prompt);
      const start = Math.max(r.arrival_s, free[k]!);
      free[k] = start + t.interval;
      prefillBusy += t.interval;
      firstToken[i] = start + t.latency;
      order.push(i);
    });
    // Handoff: one transfer at a time on the route, in the order prefills finish.
    order.sort((a, b) => firstToken[a]! - firstToken[b]! || a - b);
    let linkFree = 0;
    for (const i of order) {
      const r = reqs[i]!;
      if (r.output <= 1) {
        done[i] = firstToken[i]!;
        continue;
      }
      const lat = prefillTimes(m, r.prompt).latency;
      const h = handoffTimes(m, r.prompt, lat);
      const start = Math.max(firstToken[i]! - h.early, linkFree);
      linkFree = start + h.busy;
      handoffBusy += h.busy;
      kvReady[i] = Math.max(start + h.busy, firstToken[i]!);
    }
    const seqs: Seq[] = order.filter((i) => reqs[i]!.output > 1).map((i) => ({ req: i, ready: kvReady[i]!, left: reqs[i]!.output - 1 }));
    const r = decodePools(m, seqs, done, m.decode.replicas);
    decodeBusy = r.busy;
    occArea = r.occArea;
    occPeak = r.occPeak;
  } else {
    const r = colocated(m, reqs, firstToken, done);
    prefillBusy = r.prefillBusy;
    decodeBusy = r.decodeBusy;
    occArea = r.occArea;
    occPeak = r.occPeak;
  }
  const ttft: number[] = [];
  const tpot: number[] = [];
  let met = 0;
  let end = 0;
  reqs.forEach((r, i) => {
    const a = firstToken[i]! - r.arrival_s;
    const b = r.output > 1 ? (done[i]! - firstToken[i]!) / (r.output - 1) : 0;
    ttft.push(a);
    if (r.output > 1) tpot.push(b);
    if (a <= w.slo.ttft_p90_s && b <= w.slo.tpot_p90_s) met++;
    end = Math.max(end, done[i]!);
  });
  const span = Math.max(1e-12, end - (reqs[0]?.arrival_s ?? 0));
  const pReplicas = m.disaggregated ? m.prefill.replicas : m.decode.replicas;
  return {
    rate_per_s: rate,
    requests: n,
    // Requests per second that meet both SLOs at this arrival rate.
    goodput_per_s: n > 0 ? (rate * met) / n : 0,
    slo_attainment: n > 0 ? met / n : 0,
    ttft_p50_s: percentile(ttft, 0.5),
    ttft_p90_s: percentile(ttft, 0.9),
    tpot_p50_s: percentile(tpot, 0.5),
    tpot_p90_s: percentile(tpot, 0.9),
    makespan_s: span,
    utilisation: {
      prefill: prefillBusy / (span * pReplicas),
      decode: decodeBusy / (span * m.decode.replicas),
      handoff: handoffBusy / span,
    },
    kv_occupancy: { mean: occArea / (span * m.decode.replicas * Math.max(1, m.decode.max_batch)), peak: occPeak / Math.max(1, m.decode.max_batch) },
  };
}

/**
 * Decode replicas with continuous batching: a sequence joins the replica with the fewest
 * sequences (running and waiting) when its KV arrives, enters the batch at the next iteration with
 * room, and leaves after its last token.
 */
function decodePools(m: ServeModel, seqs: Seq[], done: Float64Array, replicas: number): BatchStats {
  seqs.sort((a, b) => a.ready - b.ready || a.req - b.req);
  const waiting: Seq[][] = Array.from({ length: replicas }, () => []);
  const active: Seq[][] = Array.from({ length: replicas }, () => []);
  const until = new Float64Array(replicas); // end of the running iteration (0 = idle)
  const stats: BatchStats = { busy: 0, occArea: 0, occPeak: 0 };
  let next = 0;
  const load = (k: number): number => waiting[k]!.length + active[k]!.length;
  const startIteration = (k: number, now: number): void => {
    const step = nextIteration(m, active[k]!, waiting[k]!, stats);
    until[k] = step === null ? 0 : now + step;
  };
  for (;;) {
    // The next event: an arrival of KV, or the earliest iteration end.
    let k = -1;
    for (let j = 0; j < replicas; j++) if (until[j]! > 0 && (k < 0 || until[j]! < until[k]!)) k = j;
    const arrival = next < seqs.length ? seqs[next]!.ready : Infinity;
    if (k < 0 && arrival === Infinity) break;
    if (arrival <= (k < 0 ? Infinity : until[k]!)) {
      const s = seqs[next++]!;
      let best = 0;
      for (let j = 1; j < replicas; j++) if (load(j) < load(best)) best = j;
      waiting[best]!.push(s);
      if (until[best] === 0) startIteration(best, s.ready);
      continue;
    }
    const now = until[k]!;
    const act = active[k]!;
    for (const s of act) {
      s.left--;
      if (s.left === 0) done[s.req] = now;
    }
    active[k] = act.filter((s) => s.left > 0);
    startIteration(k, now);
  }
  return stats;
}

/** A decode pool's time busy, its sequence-seconds in batches, and its largest batch. */
interface BatchStats {
  busy: number;
  occArea: number;
  occPeak: number;
}

/**
 * Continuous batching (Orca's iteration-level scheduling): waiting sequences join the running batch
 * while it has room, then one iteration runs. Its time (null when nothing runs), counted in `stats`.
 */
function nextIteration(m: ServeModel, act: Seq[], wait: Seq[], stats: BatchStats): number | null {
  while (act.length < m.decode.max_batch && wait.length > 0) act.push(wait.shift()!);
  if (act.length === 0) return null;
  const step = decodeStep(m, act.length);
  stats.busy += step;
  stats.occArea += step * act.length;
  stats.occPeak = Math.max(stats.occPeak, act.length);
  return step;
}

/** One pool doing both phases: per replica, a waiting prefill runs first, then decode iterations. */
function colocated(
  m: ServeModel,
  reqs: Request[],
  firstToken: Float64Array,
  done: Float64Array,
): { prefillBusy: number; decodeBusy: number; occArea: number; occPeak: number } {
  const R = m.decode.replicas;
  const prefillQ: number[][] = Array.from({ length: R }, () => []);
  const waiting: Seq[][] = Array.from({ length: R }, () => []);
  const active: Seq[][] = Array.from({ length: R }, () => []);
  const until = new Float64Array(R);
  const running: ({ kind: 'prefill'; req: number } | { kind: 'decode' } | null)[] = Array.from({ length: R }, () => null);
  let prefillBusy = 0;
  const stats: BatchStats = { busy: 0, occArea: 0, occPeak: 0 };
  let next = 0;
  const load = (k: number): number => prefillQ[k]!.length + waiting[k]!.length + active[k]!.length;
  const start = (k: number, now: number): void => {
    const q = prefillQ[k]!;
    if (q.length > 0) {
      const i = q.shift()!;
      const t = prefillTimes(m, reqs[i]!.prompt).latency;
      running[k] = { kind: 'prefill', req: i };
      until[k] = now + t;
      prefillBusy += t;
      return;
    }
    const step = nextIteration(m, active[k]!, waiting[k]!, stats);
    running[k] = step === null ? null : { kind: 'decode' };
    until[k] = step === null ? 0 : now + step;
  };
  for (;;) {
    let k = -1;
    for (let j = 0; j < R; j++) if (running[j] && (k < 0 || until[j]! < until[k]!)) k = j;
    const arrival = next < reqs.length ? reqs[next]!.arrival_s : Infinity;
    if (k < 0 && arrival === Infinity) break;
    if (arrival <= (k < 0 ? Infinity : until[k]!)) {
      const i = next++;
      let best = 0;
      for (let j = 1; j < R; j++) if (load(j) < load(best)) best = j;
      prefillQ[best]!.push(i);
      if (!running[best]) start(best, arrival);
      continue;
    }
    const now = until[k]!;
    const job = running[k]!;
    if (job.kind === 'prefill') {
      firstToken[job.req] = now;
      const r = reqs[job.req]!;
      if (r.output <= 1) done[job.req] = now;
      else waiting[k]!.push({ req: job.req, ready: now, left: r.output - 1 });
    } else {
      const act = active[k]!;
      for (const s of act) {
        s.left--;
        if (s.left === 0) done[s.req] = now;
      }
      active[k] = act.filter((s) => s.left > 0);
    }
    start(k, now);
  }
  return { prefillBusy, decodeBusy: stats.busy, occArea: stats.occArea, occPeak: stats.occPeak };
}

/** Share of requests that must meet both SLOs for a rate to count as sustained (DistServe uses 90%). */
export const ATTAINMENT = 0.9;

/**
 * The rate the deployment can sustain at the workload's mean lengths, whatever the SLOs: each pool's
 * (and the handoff link's) requests per second when always busy — prefill replicas over the interval
 * of a mean prompt; decode replicas × the largest batch over the tokens a mean output takes at
 * that batch; one handoff at a time on the route (colocated: prefill and decode share the time).
 */
export function serviceRate(m: ServeModel, w: Workload): number {
  const prompt = meanLength(w.prompt_tokens);
  const tokens = Math.max(0, meanLength(w.output_tokens) - 1);
  const p = prefillTimes(m, prompt);
  const perSeqDecode = tokens > 0 ? (decodeStep(m, m.decode.max_batch) * tokens) / m.decode.max_batch : 0;
  if (!m.disaggregated) return m.decode.replicas / (p.latency + perSeqDecode);
  const rates = [m.prefill.replicas / p.interval];
  if (perSeqDecode > 0) rates.push(m.decode.replicas / perSeqDecode);
  const h = handoffTimes(m, prompt, p.latency).busy;
  if (h > 0) rates.push(1 / h);
  return Math.min(...rates);
}

/**
 * The highest arrival rate at which ATTAINMENT of the workload's requests meet both SLOs (0 when
 * even a trickle does not), at most the service rate (above it a long enough trace always fails:
 * the queue grows without bound, however few requests a simulation draws). Bisection, 24 steps.
 */
export function capacity(m: ServeModel, w: Workload): number {
  const ok = (rate: number): boolean => simulateServe(m, w, rate).slo_attainment >= ATTAINMENT;
  const top = serviceRate(m, w);
  if (!(top > 0) || !Number.isFinite(top)) return 0;
  if (ok(top)) return top;
  let lo = 0;
  let hi = top;
  for (let k = 0; k < 24; k++) {
    const mid = (lo + hi) / 2;
    if (ok(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}
