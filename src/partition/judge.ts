// The one model that judges a placement: turn it into what each device does, in order — a compute
// step per unit, a recv before the first unit on a device that needs a value from another device,
// a send after the unit producing it (a value moves once per reading device) — and simulate that
// with link contention (src/sim/simulate.ts). Every candidate the partitioner considers (HEFT,
// refined, exact, pipeline, single device, even split, the user's --assign) is compared by this
// number, the baselines in plan.json are this number, and the schedule pass writes exactly this
// schedule, so `hxc simulate` on the written plan reproduces the estimate (DESIGN.md, "Judging a plan").
//
// Peak memory per device is counted on the same schedule: weights and owned state for the whole
// run, each value from its production (or arrival) until its last reader there ends.

import {
  emptyPackedSteps,
  simulate,
  STEP_COMPUTE,
  STEP_RECV,
  STEP_SEND,
  type PackedSteps,
  type PackedTransfers,
  type SimInput,
  type SimLink,
  type SimResult,
  type SimStep,
  type SimTransfer,
} from '../sim/simulate.js';
import type { Objective } from '../plan/format.js';
import type { RouteTable } from '../topology/index.js';
import { groupedLaunchExtra, packedValues, unitPredecessors, type Placement, type PlacementProblem } from './problem.js';
import { bucketIndices, sortIndices } from '../util/sort.js';

/** Equal element by element. */
export function sameArray(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Requests in flight when a plan's throughput is simulated (the same for every plan, so figures compare). */
export const THROUGHPUT_REQUESTS = 16;

/** A step of the schedule, simulated as it is (one object per step serves both). */
export interface ScheduleStep extends SimStep {
  /** compute: the unit. */
  unit?: number;
  /** Pipeline lag (simulate.ts): 0 unless the plan is pipelined. */
  round: number;
}

export interface ScheduleTransfer extends SimTransfer {
  /** Index into the problem's values. */
  value_index: number;
  /** Device indices of both ends. */
  from_index: number;
  to_index: number;
  hops: string[];
}

export interface Schedule {
  /** Per device, its steps in order (made when first read: `packed` is the same, flat). */
  readonly steps: ScheduleStep[][];
  packed: PackedSteps;
  /** Made when first read: `packedTransfers` is the same, flat. */
  readonly transfers: ScheduleTransfer[];
  packedTransfers: SchedulePackedTransfers;
  sim: SimInput;
  /** Whether rounds (pipeline lags) are set. */
  pipelined: boolean;
}

export interface DeviceMemory {
  weights_bytes: number;
  peak_activation_bytes: number;
  state_bytes: number;
  total_bytes: number;
  capacity_bytes: number;
}

/** A schedule's transfers flat: the simulation's part, and each one's value (index) and receiving device. */
export interface SchedulePackedTransfers extends PackedTransfers {
  value: Int32Array;
  to: Int32Array;
}

/** A route as the judge keeps it: link and hop names, and the links as indices into the judge's links. */
interface JudgeRoute {
  links: string[];
  hops: string[];
}

export interface Verdict {
  latency_s: number;
  throughput_per_s: number;
  /** Whether the throughput figure is for the pipelined step order (rounds). */
  pipelined: boolean;
  /** Every device's scheduled memory fits its capacity. */
  fits: boolean;
  /** Each device's memory under the one-request schedule (what `fits` is read from). */
  memory: DeviceMemory[];
}

/** A verdict without the throughput (Judge.latencyVerdict). */
export type LatencyVerdict = Omit<Verdict, 'throughput_per_s' | 'pipelined'> & { throughput_per_s: null; pipelined: false };

/** Step orders a throughput figure is judged in: without pipeline rounds, with them, both (the better). */
export const UNPIPELINED: readonly boolean[] = [false];
export const PIPELINED: readonly boolean[] = [true];
export const BOTH_ORDERS: readonly boolean[] = [false, true];

/**
 * The orders a candidate's throughput is judged in for an objective: a latency plan ships the order
 * without rounds (the one its latency is judged in); a throughput plan is searched with rounds and
 * ships the better of both (the chosen candidate judged again in both).
 */
export function candidateOrders(objective: Objective): readonly boolean[] {
  return objective === 'latency' ? UNPIPELINED : PIPELINED;
}

/** The orders the shipped plan is judged in: the one a latency plan ships; both for a throughput plan. */
export function shippedOrders(objective: Objective): readonly boolean[] {
  return objective === 'latency' ? UNPIPELINED : BOTH_ORDERS;
}

/** A placement's one-request run: its latency, schedule and simulation, and its memory once asked. */
export interface LatencyRun {
  latency_s: number;
  schedule: Schedule;
  one: SimResult;
  memory?: DeviceMemory[];
}

/** One-request runs the judge keeps besides its memo (Judge.kept): the fastest this many. */
const KEPT_RUNS = 3;

export class Judge {
  /** Judgements made, for the plan's statistics (work, not seconds). */
  simulations = 0;
  /** Of them, the runs of R requests (a throughput figure). */
  throughputRuns = 0;
  /** Routes found so far, numbered in the order found (a schedule's transfers name theirs by number). */
  private readonly routeList: JudgeRoute[] = [];
  /** Each numbered route's links, as indices into `links` (what the simulation reads: PackedTransfers.routeLinks). */
  private readonly routeLinks: Int32Array[] = [];
  /** Per route option (RouteTable.choiceIdx), its number. */
  private readonly routeCache = new Map<number, number>();
  /** Per device pair a·nd + b, the number of its route when it has only one, else -1. */
  private readonly pairRoute: Int32Array;
  /** Scratch of schedule(), sized by the units and by the values' consumers, reused from one schedule to the next. */
  private scratch: {
    units: Int32Array;
    byStart: Int32Array;
    sends: Int32Array;
    recvs: Int32Array;
    launches: { extra: Float64Array; charged: Uint8Array } | undefined;
    rank: Int32Array;
    round: Int32Array;
    sendAt: Int32Array;
    recvAt: Int32Array;
    sendPut: Int32Array;
    recvPut: Int32Array;
    staged: Int32Array;
  } | null = null;
  private readonly linkIndex: Map<string, number>;

  constructor(
    readonly p: PlacementProblem,
    private readonly routes: RouteTable,
    readonly links: SimLink[],
    readonly requests = THROUGHPUT_REQUESTS,
  ) {
    // As the simulation indexes them by name.
    this.linkIndex = new Map(links.map((l, i) => [l.name, i]));
    this.pairRoute = new Int32Array(p.device_ids.length * p.device_ids.length).fill(-1);
  }

  /** The schedule of a placement: per device its units in start order (ties by index). */
  schedule(placement: Pick<Placement, 'device' | 'start_s'>, pipelined: boolean): Schedule {
    const p = this.p;
    const nd = p.device_ids.length;
    const n = p.unit_names.length;
    const { device, start_s } = placement;
    const { producer: vProducer, bytes: vBytes, consumerAt, consumers: vConsumers } = packedValues(p);
    const cap = vConsumers.length;
    // (A schedule's working arrays are reused, not made anew: a judgement's typed arrays live off
    // the heap, and their allocation paced the collector — "external memory pressure" scavenges.)
    const scratch = (this.scratch ??= {
      units: new Int32Array(n),
      byStart: new Int32Array(n),
      sends: new Int32Array(cap),
      recvs: new Int32Array(cap),
      launches: p.grouped_launch ? { extra: new Float64Array(n), charged: new Uint8Array(p.grouped_launch.groups * nd) } : undefined,
      rank: new Int32Array(n),
      round: new Int32Array(n),
      sendAt: new Int32Array(n + 1),
      recvAt: new Int32Array(n + 1),
      sendPut: new Int32Array(n),
      recvPut: new Int32Array(n),
      staged: new Int32Array(5 * cap),
    });
    const units = scratch.units;
    for (let u = 0; u < n; u++) units[u] = u;
    const byStart = sortIndices(units, start_s, undefined, scratch.byStart);
    // Rounds: a unit runs a round after its inputs from other devices and never before the unit
    // ahead of it on its device (so one request still runs in list order).
    const round = scratch.round.fill(0);
    if (pipelined) {
      const lastOn = new Int32Array(nd).fill(0);
      const producersOf = unitPredecessors(this.p);
      for (const u of byStart) {
        let r = lastOn[device[u]!]!;
        for (const q of producersOf[u]!) r = Math.max(r, round[q]! + (device[q] === device[u] ? 0 : 1));
        round[u] = r;
        lastOn[device[u]!] = r;
      }
    }
    // Transfers flat, in the order made (value by value, reading devices ascending): the value,
    // both ends, the route and the unit whose steps receive it (the objects only when read). A
    // value moves at most once per consumer, so the arrays are sized by the consumers, and a
    // device's first reader of the current value is marked with the value (no reset per value).
    const V = vProducer.length;
    const staged = scratch.staged;
    const sValue = staged.subarray(0, cap);
    const sFrom = staged.subarray(cap, 2 * cap);
    const sTo = staged.subarray(2 * cap, 3 * cap);
    const sRoute = staged.subarray(3 * cap, 4 * cap);
    const tReader = staged.subarray(4 * cap, 5 * cap); // (read in this call only)
    let T = 0;
    const rank = scratch.rank;
    for (let k = 0; k < n; k++) rank[byStart[k]!] = k;
    const firstReader = new Int32Array(nd);
    const readBy = new Int32Array(nd).fill(-1);
    // The devices reading the current value away from its producer, ascending (kept sorted as they
    // are found: a value has a reader or two away, not one per device to scan for).
    const readers = new Int32Array(nd);
    for (let vi = 0; vi < V; vi++) {
      const src = device[vProducer[vi]!]!;
      let away = 0;
      for (let j = consumerAt[vi]!; j < consumerAt[vi + 1]!; j++) {
        const c = vConsumers[j]!;
        const d = device[c]!;
        if (d === src) continue;
        if (readBy[d] !== vi) {
          readBy[d] = vi;
          firstReader[d] = c;
          let at = away++;
          for (; at > 0 && readers[at - 1]! > d; at--) readers[at] = readers[at - 1]!;
          readers[at] = d;
        } else if (rank[c]! < rank[firstReader[d]!]!) firstReader[d] = c;
      }
      for (let r = 0; r < away; r++) {
        const d = readers[r]!;
        sValue[T] = vi;
        sFrom[T] = src;
        sTo[T] = d;
        sRoute[T] = this.route(vi, src, d);
        tReader[T] = firstReader[d]!;
        T++;
      }
    }
    const tValue = sValue.slice(0, T);
    const tFrom = sFrom.slice(0, T);
    const tTo = sTo.slice(0, T);
    const tRoute = sRoute.slice(0, T);
    // Per unit, the transfers it sends after it runs and receives before (in transfer order).
    const sendAt = scratch.sendAt.fill(0);
    const recvAt = scratch.recvAt.fill(0);
    for (let t = 0; t < T; t++) {
      sendAt[vProducer[tValue[t]!]! + 1]!++;
      recvAt[tReader[t]! + 1]!++;
    }
    for (let u = 0; u < n; u++) {
      sendAt[u + 1]! += sendAt[u]!;
      recvAt[u + 1]! += recvAt[u]!;
    }
    const sends = scratch.sends;
    const recvs = scratch.recvs;
    {
      const { sendPut, recvPut } = scratch;
      sendPut.set(sendAt.subarray(0, n));
      recvPut.set(recvAt.subarray(0, n));
      for (let t = 0; t < T; t++) {
        sends[sendPut[vProducer[tValue[t]!]!]!++] = t;
        recvs[recvPut[tReader[t]!]!++] = t;
      }
    }
    // (Plain loops: TypedArray.from with a map function costs ~160 ns an element in V8.)
    const tBytes = new Float64Array(T);
    for (let t = 0; t < T; t++) tBytes[t] = vBytes[tValue[t]!]!;
    const packedTransfers: SchedulePackedTransfers = {
      bytes: tBytes,
      route: tRoute,
      routeLinks: this.routeLinks,
      value: tValue,
      to: tTo,
    };
    const routeList = this.routeList;
    let transfers: ScheduleTransfer[] | null = null;
    const transfersOf = (): ScheduleTransfer[] =>
      (transfers ??= Array.from(tValue, (vi, t) => ({
        value: p.values[vi]!.name,
        value_index: vi,
        from_index: tFrom[t]!,
        to_index: tTo[t]!,
        bytes: p.values[vi]!.bytes,
        from: p.device_ids[tFrom[t]!]!,
        to: p.device_ids[tTo[t]!]!,
        links: routeList[tRoute[t]!]!.links,
        hops: routeList[tRoute[t]!]!.hops,
      })));
    // Grouped expert launches are paid once per device and layer (src/partition/problem.ts).
    const extra = groupedLaunchExtra(p, device, byStart, scratch.launches);
    // The steps flat, as the simulation reads them (a schedule is judged many times per plan, and
    // an object per step was most of building one): device d's at [at[d], at[d + 1]).
    const at = new Int32Array(nd + 1);
    for (let u = 0; u < n; u++) at[device[u]! + 1]! += 1 + recvAt[u + 1]! - recvAt[u]! + sendAt[u + 1]! - sendAt[u]!;
    for (let d = 0; d < nd; d++) at[d + 1]! += at[d]!;
    const packed = emptyPackedSteps(at);
    // (Written in place, in a counted loop: a closure taking the duration boxed it per step.
    // Arrays fresh from emptyPackedSteps: a receive's or send's duration is already 0, and so is a
    // step's round unless pipelined — the pages of a schedule's rounds are then never written.)
    const put = at.slice(0, nd);
    const { op: pOp, ref: pRef, duration_s: pDuration, round: pRound } = packed;
    for (let k = 0; k < n; k++) {
      const u = byStart[k]!;
      const d = device[u]!;
      const r = round[u]!;
      let i = put[d]!;
      for (let j = recvAt[u]!; j < recvAt[u + 1]!; j++, i++) {
        pOp[i] = STEP_RECV;
        pRef[i] = recvs[j]!;
        if (r !== 0) pRound[i] = r;
      }
      pOp[i] = STEP_COMPUTE;
      pRef[i] = u;
      pDuration[i] = p.time_s[u * nd + d]! + (extra ? extra[u]! : 0);
      if (r !== 0) pRound[i] = r;
      i++;
      for (let j = sendAt[u]!; j < sendAt[u + 1]!; j++, i++) {
        pOp[i] = STEP_SEND;
        pRef[i] = sends[j]!;
        if (r !== 0) pRound[i] = r;
      }
      put[d] = i;
    }
    // As objects only when read (the shipped schedule, a trace's labels).
    let steps: ScheduleStep[][] | null = null;
    const stepsOf = (): ScheduleStep[][] =>
      (steps ??= p.device_ids.map((_, d) => {
        const list: ScheduleStep[] = [];
        for (let i = at[d]!; i < at[d + 1]!; i++) {
          const ref = packed.ref[i]!;
          const r = packed.round[i]!;
          const op = packed.op[i]!;
          if (op === STEP_COMPUTE) list.push({ op: 'compute', unit: ref, duration_s: packed.duration_s[i]!, label: p.unit_names[ref]!, round: r });
          else list.push({ op: op === STEP_SEND ? 'send' : 'recv', transfer: ref, label: p.values[tValue[ref]!]!.name, round: r });
        }
        return list;
      }));
    const sim: SimInput = {
      devices: p.device_ids.map((id, d) => ({
        id,
        get steps(): ScheduleStep[] {
          return stepsOf()[d]!;
        },
      })),
      get transfers(): ScheduleTransfer[] {
        return transfersOf();
      },
      links: this.links,
      requests: 1,
      packed,
      packedTransfers,
    };
    return {
      get steps(): ScheduleStep[][] {
        return stepsOf();
      },
      packed,
      get transfers(): ScheduleTransfer[] {
        return transfersOf();
      },
      packedTransfers,
      sim,
      pipelined,
    };
  }

  /** Steps of the placement's schedule — its units, and a send and a receive per transfer — counted without building it. */
  stepCount(device: Int32Array): number {
    const p = this.p;
    const seen = new Int32Array(p.device_ids.length).fill(-1);
    let steps = p.unit_names.length;
    const { producer, consumerAt, consumers } = packedValues(p);
    for (let vi = 0; vi < producer.length; vi++) {
      const src = device[producer[vi]!]!;
      for (let j = consumerAt[vi]!; j < consumerAt[vi + 1]!; j++) {
        const d = device[consumers[j]!]!;
        if (d === src || seen[d] === vi) continue;
        seen[d] = vi;
        steps += 2;
      }
    }
    return steps;
  }

  /**
   * One request through a schedule (the plan's estimate): the kept one-request run when it is the
   * latency schedule of the last placement judged, else simulated now. No trace: trace.json is made
   * by the lower pass when it writes it, so the 80k events of a large plan are not held until then.
   */
  simulateOne(schedule: Schedule): SimResult {
    if (this.memo?.latency?.schedule === schedule) return this.memo.latency.one;
    this.simulations++;
    return simulate(schedule.sim);
  }

  /**
   * The simulations of the last placement judged. The shipped plan is judged as a candidate, again
   * for both step orders, by explain and by the schedule pass: each figure is simulated once. A
   * simulation is a function of the devices and the order, so a kept one is the one that would be made.
   */
  private memo: {
    device: Int32Array;
    start_s: Float64Array;
    latency?: LatencyRun;
    many: Map<boolean, { many: SimResult; schedule: Schedule }>;
  } | null = null;

  private memoFor(placement: Pick<Placement, 'device' | 'start_s'>): NonNullable<Judge['memo']> {
    const m = this.memo;
    if (m && sameArray(m.device, placement.device) && sameArray(m.start_s, placement.start_s)) return m;
    this.memo = { device: Int32Array.from(placement.device), start_s: Float64Array.from(placement.start_s), many: new Map() };
    return this.memo;
  }

  /**
   * Besides the memo, the one-request runs of the fastest few placements judged (KEPT_RUNS): the
   * plan a search ends on is judged again after the search moved past it — the polish's best
   * when it joins the candidates, the chosen plan when its verdict is made (the DeepSeek-V3 shape:
   * a schedule, a simulation and its memory, twice per plan). A run is a function of the devices
   * and the order, so a kept one is the one that would be made; it still counts as a simulation.
   */
  private kept: { device: Int32Array; start_s: Float64Array; latency: LatencyRun }[] = [];

  /** Drop the kept simulations (once the plan is written from them). */
  forget(): void {
    this.memo = null;
    this.kept = [];
  }

  /** Drop the kept throughput runs and other placements' runs, keeping the one-request run (explain starts from it). */
  forgetMany(): void {
    this.memo?.many.clear();
    this.kept = [];
  }

  /** Latency of one request (the simulated makespan). */
  latency(placement: Pick<Placement, 'device' | 'start_s'>): LatencyRun {
    const m = this.memoFor(placement);
    if (m.latency) return m.latency;
    this.simulations++;
    const kept = this.kept.find((k) => sameArray(k.device, m.device) && sameArray(k.start_s, m.start_s));
    if (kept) return (m.latency = kept.latency);
    const schedule = this.schedule(placement, false);
    const one = simulate(schedule.sim);
    m.latency = { latency_s: one.makespan_s, schedule, one };
    this.keep(m.device, m.start_s, m.latency);
    return m.latency;
  }

  /** Keeps the run when it is among the KEPT_RUNS fastest (the slowest kept makes way; the first kept wins a tie). */
  private keep(device: Int32Array, start_s: Float64Array, latency: LatencyRun): void {
    if (this.kept.length < KEPT_RUNS) {
      this.kept.push({ device, start_s, latency });
      return;
    }
    let slowest = 0;
    for (let k = 1; k < this.kept.length; k++) if (this.kept[k]!.latency.latency_s > this.kept[slowest]!.latency.latency_s) slowest = k;
    if (latency.latency_s < this.kept[slowest]!.latency.latency_s) this.kept[slowest] = { device, start_s, latency };
  }

  /** `requests` requests through the placement's schedule, with or without pipeline rounds. */
  many(placement: Pick<Placement, 'device' | 'start_s'>, pipelined: boolean): { many: SimResult; schedule: Schedule } {
    const m = this.memoFor(placement);
    let hit = m.many.get(pipelined);
    if (!hit) {
      const schedule = !pipelined && m.latency ? m.latency.schedule : this.schedule(placement, pipelined);
      this.simulations++;
      this.throughputRuns++;
      hit = { many: simulate(schedule.sim, { requests: this.requests }), schedule };
      m.many.set(pipelined, hit);
    }
    return hit;
  }

  /**
   * Throughput over `requests` requests in each of the step `orders` (with pipeline rounds: true),
   * the best one. A plan ships one order: a latency plan the order without rounds, whose latency
   * it reports, so its throughput is judged in that order too; a throughput plan the better of both.
   */
  throughput(
    placement: Pick<Placement, 'device' | 'start_s'>,
    orders: readonly boolean[] = BOTH_ORDERS,
  ): { throughput_per_s: number; pipelined: boolean; many: SimResult; schedule: Schedule } {
    let best: { throughput_per_s: number; pipelined: boolean; many: SimResult; schedule: Schedule } | null = null;
    for (const pipelined of orders) {
      const { many, schedule } = this.many(placement, pipelined);
      if (!best || many.throughput_per_s > best.throughput_per_s * (1 + 1e-12)) best = { throughput_per_s: many.throughput_per_s, pipelined, many, schedule };
    }
    return best!;
  }

  /**
   * Each device's memory under the one-request schedule, and whether every device's fits its
   * capacity. Kept with the one-request run: a candidate's is asked when it is judged, again by
   * the repair's last round, the chosen plan's verdict and the schedule pass (the DeepSeek-V3
   * shape: 29 asks for 18 schedules, 57 ms each).
   */
  memory(placement: Pick<Placement, 'device' | 'start_s'>): Pick<Verdict, 'memory' | 'fits'> {
    const lat = this.latency(placement);
    const memory = (lat.memory ??= memoryOf(this.p, placement.device, lat.schedule, lat.one));
    return { memory, fits: memory.every((m) => m.total_bytes <= m.capacity_bytes) };
  }

  /** memoryOf(p, device, schedule, one), kept when `schedule` is the kept one-request run's (the schedule pass's shipped plan). */
  memoryUnder(device: Int32Array, schedule: Schedule, one: SimResult): DeviceMemory[] {
    const lat = this.memo?.latency;
    if (lat && lat.schedule === schedule && lat.one === one && sameArray(this.memo!.device, device))
      return (lat.memory ??= memoryOf(this.p, device, schedule, one));
    return memoryOf(this.p, device, schedule, one);
  }

  /** The latency and whether the schedule's memory fits, the throughput not simulated (a latency candidate of a huge graph). */
  latencyVerdict(placement: Pick<Placement, 'device' | 'start_s'>): LatencyVerdict {
    return { latency_s: this.latency(placement).latency_s, throughput_per_s: null, pipelined: false, ...this.memory(placement) };
  }

  /** Both figures, the throughput in the step `orders` given (see throughput), and whether the schedule's memory fits. */
  verdict(placement: Pick<Placement, 'device' | 'start_s'>, orders: readonly boolean[]): Verdict {
    const lat = this.latency(placement);
    const thr = this.throughput(placement, orders);
    return { latency_s: lat.latency_s, throughput_per_s: thr.throughput_per_s, pipelined: thr.pipelined, ...this.memory(placement) };
  }

  /** The number of the route value `vi` takes from device a to b (the fastest for its size), cached per route. */
  private route(vi: number, a: number, b: number): number {
    // A pair with one route gives it to every value (most pairs of a rack): kept per pair.
    const pair = a * this.p.device_ids.length + b;
    const only = this.pairRoute[pair]!;
    if (only >= 0) return only;
    const bytes = this.p.values[vi]!.bytes;
    const k = this.routes.choiceIdx(a, b, bytes);
    let r = this.routeCache.get(k);
    if (r === undefined) {
      const route = this.routes.routeIdx(a, b, bytes);
      // A link the judge was not given is not simulated (as the simulation skips a name it lacks).
      const index = Int32Array.from(route.links.map((name) => this.linkIndex.get(name) ?? -1).filter((i) => i >= 0));
      r = this.routeList.length;
      this.routeList.push({ links: route.links, hops: route.hops });
      this.routeLinks.push(index);
      if (k >= 0) this.routeCache.set(k, r);
    }
    if (k >= 0 && this.routes.optionCount(a, b) === 1) this.pairRoute[pair] = r;
    return r;
  }
}

/**
 * Per unit its start and end, and per transfer its arrival (its recv's start), in `one`, a run of
 * `schedule` (whose step times are laid out as its flat steps).
 */
export function scheduledTimes(schedule: Schedule, one: SimResult, n: number): { start_s: Float64Array; end_s: Float64Array; arrive_s: Float64Array } {
  const { start, end, arrive } = timesInto(schedule, one, new Float64Array(n), new Float64Array(n), new Float64Array(schedule.packedTransfers.value.length));
  return { start_s: start, end_s: end, arrive_s: arrive };
}

/**
 * scheduledTimes written into the arrays given (of at least the units' and the transfers' size:
 * every unit has a compute step and every transfer a recv, so every entry read is written).
 */
function timesInto(
  schedule: Schedule,
  one: SimResult,
  start_s: Float64Array,
  end_s: Float64Array,
  arrive_s: Float64Array,
): { start: Float64Array; end: Float64Array; arrive: Float64Array } {
  const { at, op, ref } = schedule.packed;
  const { start_s: stepStart, end_s: stepEnd } = one.step_times;
  for (let i = 0; i < at[at.length - 1]!; i++) {
    if (op[i] === STEP_COMPUTE) {
      start_s[ref[i]!] = stepStart[i]!;
      end_s[ref[i]!] = stepEnd[i]!;
    } else if (op[i] === STEP_RECV) arrive_s[ref[i]!] = stepStart[i]!;
  }
  return { start: start_s, end: end_s, arrive: arrive_s };
}

/**
 * Memory per device under a schedule: weights of its units, state it owns, and the peak of live
 * activations — a unit's own working set while it runs; a value from its production (or arrival)
 * until its last reader there ends, on the producer also until its sends have left.
 */
/**
 * memoryOf's working arrays, kept from call to call and grown when a call needs more (none
 * outlives a call). Fresh ones, 8 MB a call on the DeepSeek-V3 shape, were most of its time: the
 * kernel zeroes each page at its first write (its three busiest lines were first writes), and
 * their bytes, off the heap, paced the collector.
 */
const memoryScratch = {
  start: new Float64Array(0),
  end: new Float64Array(0),
  arrive: new Float64Array(0),
  evT: new Float64Array(0),
  evDelta: new Float64Array(0),
  indices: new Int32Array(0),
  merge: new Int32Array(0),
};

/** `array` when it holds `length` elements, else a new one of at least that many (doubling). */
function atLeast<A extends Float64Array | Int32Array>(array: A, length: number, make: (length: number) => A): A {
  return array.length >= length ? array : make(Math.max(length, 2 * array.length));
}

export function memoryOf(p: PlacementProblem, device: Int32Array, schedule: Schedule, one: SimResult): DeviceMemory[] {
  const nd = p.device_ids.length;
  const n = p.unit_names.length;
  const memory: DeviceMemory[] = p.device_ids.map((_, d) => ({
    weights_bytes: 0,
    peak_activation_bytes: 0,
    state_bytes: 0,
    total_bytes: 0,
    capacity_bytes: p.capacity_bytes[d]!,
  }));
  for (let u = 0; u < n; u++) {
    memory[device[u]!]!.weights_bytes += p.weight_bytes[u]!;
    memory[device[u]!]!.state_bytes += p.state_bytes[u]!;
  }
  const { value: tValue, to: tTo } = schedule.packedTransfers;
  // A send's bytes are held until the transfer has arrived (its recv's start).
  const scratch = memoryScratch;
  const T = schedule.packedTransfers.value.length;
  scratch.start = atLeast(scratch.start, n, (k) => new Float64Array(k));
  scratch.end = atLeast(scratch.end, n, (k) => new Float64Array(k));
  scratch.arrive = atLeast(scratch.arrive, T, (k) => new Float64Array(k));
  const { start, end, arrive } = timesInto(schedule, one, scratch.start, scratch.end, scratch.arrive);
  const { producer: vProducer, bytes: vBytes, consumerAt, consumers: vConsumers } = packedValues(p);
  const V = vProducer.length;
  // Transfers by value: movesOf[moveAt[vi] .. moveAt[vi + 1]).
  const { start: moveAt, items: movesOf } = bucketIndices(tValue, V);
  // Allocation (+bytes) and release (−bytes) events per device, flat: device d's are count[d] .. count[d + 1].
  const count = new Int32Array(nd + 1);
  for (let u = 0; u < n; u++) count[device[u]! + 1]! += 2;
  for (let vi = 0; vi < V; vi++) {
    count[device[vProducer[vi]!]! + 1]! += 2;
    for (let j = moveAt[vi]!; j < moveAt[vi + 1]!; j++) count[tTo[movesOf[j]!]! + 1]! += 2;
  }
  for (let d = 0; d < nd; d++) count[d + 1]! += count[d]!;
  // (Every event is written below: the arrays' old contents are never read.)
  scratch.evT = atLeast(scratch.evT, count[nd]!, (k) => new Float64Array(k));
  scratch.evDelta = atLeast(scratch.evDelta, count[nd]!, (k) => new Float64Array(k));
  const { evT, evDelta } = scratch;
  const put = count.slice(0, nd);
  // (Events written in place, no closure: a double handed to one is boxed.)
  for (let u = 0; u < n; u++) {
    const d = device[u]!;
    const bytes = p.activation_bytes[u]!;
    let k = put[d]!++;
    evT[k] = start[u]!;
    evDelta[k] = bytes;
    k = put[d]!++;
    evT[k] = end[u]!;
    evDelta[k] = -bytes;
  }
  const lastOn = new Float64Array(nd);
  for (let vi = 0; vi < V; vi++) {
    const producer = vProducer[vi]!;
    const bytes = vBytes[vi]!;
    const src = device[producer]!;
    const m0 = moveAt[vi]!;
    const m1 = moveAt[vi + 1]!;
    let lastOnSrc = end[producer]!;
    if (m0 === m1) {
      // Not moved: only the producer's device holds it (lastOn is read for the devices it moves to).
      for (let j = consumerAt[vi]!; j < consumerAt[vi + 1]!; j++) {
        const c = vConsumers[j]!;
        if (device[c] === src) lastOnSrc = Math.max(lastOnSrc, end[c]!);
      }
    } else {
      lastOn.fill(-1);
      for (let j = consumerAt[vi]!; j < consumerAt[vi + 1]!; j++) {
        const c = vConsumers[j]!;
        const d = device[c]!;
        if (d === src) lastOnSrc = Math.max(lastOnSrc, end[c]!);
        else lastOn[d] = Math.max(lastOn[d]!, end[c]!);
      }
      for (let j = m0; j < m1; j++) lastOnSrc = Math.max(lastOnSrc, arrive[movesOf[j]!]!);
    }
    let k = put[src]!++;
    evT[k] = end[producer]!;
    evDelta[k] = bytes;
    k = put[src]!++;
    evT[k] = lastOnSrc;
    evDelta[k] = -bytes;
    for (let j = m0; j < m1; j++) {
      const t = movesOf[j]!;
      const d = tTo[t]!;
      k = put[d]!++;
      evT[k] = arrive[t]!;
      evDelta[k] = bytes;
      k = put[d]!++;
      evT[k] = Math.max(arrive[t]!, lastOn[d]!);
      evDelta[k] = -bytes;
    }
  }
  // The peak of live bytes: events in time order, releases before allocations at the same instant.
  // (One index array for every device, the largest's size.)
  let most = 0;
  for (let d = 0; d < nd; d++) most = Math.max(most, count[d + 1]! - count[d]!);
  const indices = (scratch.indices = atLeast(scratch.indices, most, (k) => new Int32Array(k)));
  const merge = (scratch.merge = atLeast(scratch.merge, most, (k) => new Int32Array(k)));
  for (let d = 0; d < nd; d++) {
    const from = count[d]!;
    const len = count[d + 1]! - from;
    const order = indices.subarray(0, len);
    for (let k = 0; k < len; k++) order[k] = from + k;
    const sorted = sortIndices(order, evT, evDelta, merge);
    let live = 0;
    let peak = 0;
    for (let k = 0; k < len; k++) {
      live += evDelta[sorted[k]!]!;
      if (live > peak) peak = live;
    }
    const m = memory[d]!;
    m.peak_activation_bytes = peak;
    m.total_bytes = m.weights_bytes + m.state_bytes + peak;
  }
  return memory;
}
