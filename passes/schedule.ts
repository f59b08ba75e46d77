// schedule: turn the placement into what each device does, in order — a compute step per unit,
// a recv before it for each value it needs from another device, a send after the unit producing a
// value for each other device that reads it (a value moves once per reading device) — then
// simulate it (with link contention) to time every step, and track buffer lifetimes for the peak
// activation memory per device. The plan's estimate is this simulation, so `hxc simulate` on the
// written plan reproduces it.

import { HxcError } from '../src/diag/diagnostics.js';
import { simulate, type SimInput, type SimResult, type SimStep, type SimTransfer } from '../src/sim/simulate.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import type { PartitionResult } from './partition.js';

export interface ScheduledStep {
  op: 'compute' | 'send' | 'recv';
  /** compute: node names in order, and the unit. */
  nodes?: string[];
  unit?: string;
  /** send/recv. */
  value?: string;
  bytes?: number;
  peer?: string;
  transfer?: number;
  duration_s: number;
  start_s: number;
  end_s: number;
}

export interface ScheduledTransfer extends SimTransfer {
  route_hops: string[];
  start_s: number;
  end_s: number;
}

export interface DeviceMemory {
  weights_bytes: number;
  peak_activation_bytes: number;
  state_bytes: number;
  total_bytes: number;
  capacity_bytes: number;
}

export interface ScheduleResult {
  devices: { id: string; steps: ScheduledStep[]; memory: DeviceMemory }[];
  transfers: ScheduledTransfer[];
  sim_input: SimInput;
  one: SimResult;
  /** Pipelined simulation of `requests` requests (throughput). */
  many: SimResult;
  requests: number;
}

export const THROUGHPUT_REQUESTS = 16;

export function buildSchedule(ctx: PassContext): ScheduleResult {
  const part = ctx.get<PartitionResult>('partition');
  const topo = ctx.topology();
  const routes = ctx.routes();
  const p = part.problem;
  const g = ctx.model.graph;
  const nd = p.device_ids.length;
  const placement = part.placement;
  // Units per device in start order (ties by topological position): the evaluator's order.
  const perDevice: number[][] = p.device_ids.map(() => []);
  const byStart = Array.from(p.order).sort((a, b) => placement.start_s[a]! - placement.start_s[b]! || a - b);
  for (const u of byStart) perDevice[placement.device[u]!]!.push(u);
  // Transfers: one per (value, reading device ≠ producer's device).
  const transfers: ScheduledTransfer[] = [];
  const sendsAfter = new Map<number, number[]>(); // unit → transfer ids
  const recvsBefore = new Map<number, number[]>(); // unit → transfer ids (first reader on that device)
  for (const v of p.values) {
    const src = placement.device[v.producer]!;
    const firstReader = new Map<number, number>();
    for (const c of v.consumers) {
      const d = placement.device[c]!;
      if (d === src) continue;
      const prev = firstReader.get(d);
      if (prev === undefined || placement.start_s[c]! < placement.start_s[prev]! || (placement.start_s[c] === placement.start_s[prev] && c < prev)) firstReader.set(d, c);
    }
    for (const [d, reader] of [...firstReader.entries()].sort((a, b) => a[0] - b[0])) {
      const route = routes.routeIdx(src, d, v.bytes);
      const id = transfers.length;
      transfers.push({ value: v.name, bytes: v.bytes, from: p.device_ids[src]!, to: p.device_ids[d]!, links: route.links, route_hops: route.hops, start_s: 0, end_s: 0 });
      (sendsAfter.get(v.producer) ?? sendsAfter.set(v.producer, []).get(v.producer)!).push(id);
      (recvsBefore.get(reader) ?? recvsBefore.set(reader, []).get(reader)!).push(id);
    }
  }
  const devices: ScheduleResult['devices'] = [];
  const simDevices: SimInput['devices'] = [];
  for (let d = 0; d < nd; d++) {
    const steps: ScheduledStep[] = [];
    const sim: SimStep[] = [];
    for (const u of perDevice[d]!) {
      for (const t of recvsBefore.get(u) ?? []) {
        const tr = transfers[t]!;
        steps.push({ op: 'recv', value: tr.value, bytes: tr.bytes, peer: tr.from, transfer: t, duration_s: 0, start_s: 0, end_s: 0 });
        sim.push({ op: 'recv', transfer: t, label: tr.value });
      }
      const dur = p.time_s[u * nd + d]!;
      steps.push({ op: 'compute', unit: p.unit_names[u]!, nodes: part.units[u]!.nodes.map((i) => g.nodes[i]!.name), duration_s: dur, start_s: 0, end_s: 0 });
      sim.push({ op: 'compute', duration_s: dur, label: p.unit_names[u]! });
      for (const t of sendsAfter.get(u) ?? []) {
        const tr = transfers[t]!;
        steps.push({ op: 'send', value: tr.value, bytes: tr.bytes, peer: tr.to, transfer: t, duration_s: 0, start_s: 0, end_s: 0 });
        sim.push({ op: 'send', transfer: t, label: tr.value });
      }
    }
    devices.push({ id: p.device_ids[d]!, steps, memory: { weights_bytes: 0, peak_activation_bytes: 0, state_bytes: 0, total_bytes: 0, capacity_bytes: p.capacity_bytes[d]! } });
    simDevices.push({ id: p.device_ids[d]!, steps: sim });
  }
  const sim_input: SimInput = {
    devices: simDevices, transfers,
    links: topo.links.map((l) => ({ name: l.name, bandwidth_bytes_per_s: l.bandwidth_bytes_per_s, latency_s: l.latency_s, shared: l.shared })),
    requests: 1,
  };
  const one = simulate(sim_input);
  devices.forEach((dev, d) => dev.steps.forEach((s, k) => {
    s.start_s = one.step_times[d]![k]!.start_s;
    s.end_s = one.step_times[d]![k]!.end_s;
    if (s.op === 'recv') {
      const tr = transfers[s.transfer!]!;
      tr.end_s = s.start_s;
    }
    if (s.op === 'send') transfers[s.transfer!]!.start_s = s.start_s;
  }));
  const requests = part.objective === 'throughput' ? THROUGHPUT_REQUESTS : 4;
  const many = simulate({ ...sim_input, requests });
  fillMemory(part, devices, transfers);
  const over = devices.filter((d) => d.memory.total_bytes > d.memory.capacity_bytes);
  if (over.length > 0) {
    throw new HxcError('HXC3001', `the plan does not fit: ${over.map((d) => `${d.id} needs ${d.memory.total_bytes - d.memory.capacity_bytes} more bytes (${d.memory.total_bytes} of ${d.memory.capacity_bytes})`).join('; ')}`,
      { hint: 'add memory or devices, lower --batch/--context, or use --max-stages to give the partitioner finer units' });
  }
  return { devices, transfers, sim_input, one, many, requests };
}

/**
 * Memory per device: weights of its units, state it owns, and the peak of live activations —
 * a value is live on a device from its production (or arrival) until its last reader there ends.
 */
function fillMemory(part: PartitionResult, devices: ScheduleResult['devices'], transfers: ScheduledTransfer[]): void {
  const p = part.problem;
  const nd = p.device_ids.length;
  for (let u = 0; u < p.unit_names.length; u++) {
    const d = part.placement.device[u]!;
    devices[d]!.memory.weights_bytes += p.weight_bytes[u]!;
    devices[d]!.memory.state_bytes += p.state_bytes[u]!;
  }
  // Intervals of live bytes per device (unit granularity: a unit's activations live for its compute step).
  const events: { t: number; delta: number }[][] = p.device_ids.map(() => []);
  const stepOfUnit = new Map<string, { start: number; end: number; d: number }>();
  devices.forEach((dev, d) => dev.steps.forEach((s) => { if (s.op === 'compute') stepOfUnit.set(s.unit!, { start: s.start_s, end: s.end_s, d }); }));
  for (let u = 0; u < p.unit_names.length; u++) {
    const st = stepOfUnit.get(p.unit_names[u]!)!;
    // The unit's own peak working set while it runs.
    events[st.d]!.push({ t: st.start, delta: p.activation_bytes[u]! }, { t: st.end, delta: -p.activation_bytes[u]! });
  }
  for (const v of p.values) {
    const src = stepOfUnit.get(p.unit_names[v.producer]!)!;
    let lastOnSrc = src.end;
    const lastOn = new Map<number, number>();
    for (const c of v.consumers) {
      const cs = stepOfUnit.get(p.unit_names[c]!)!;
      if (cs.d === src.d) lastOnSrc = Math.max(lastOnSrc, cs.end);
      else lastOn.set(cs.d, Math.max(lastOn.get(cs.d) ?? 0, cs.end));
    }
    // The producer keeps the value until its sends have finished too.
    for (const t of transfers) if (t.value === v.name && t.from === p.device_ids[src.d]) lastOnSrc = Math.max(lastOnSrc, t.end_s);
    events[src.d]!.push({ t: src.end, delta: v.bytes }, { t: lastOnSrc, delta: -v.bytes });
    for (const [d, end] of lastOn) {
      const arrive = transfers.find((t) => t.value === v.name && t.to === p.device_ids[d])?.end_s ?? end;
      events[d]!.push({ t: arrive, delta: v.bytes }, { t: end, delta: -v.bytes });
    }
  }
  for (let d = 0; d < nd; d++) {
    const ev = events[d]!.sort((a, b) => a.t - b.t || a.delta - b.delta);
    let live = 0;
    let peak = 0;
    for (const e of ev) {
      live += e.delta;
      peak = Math.max(peak, live);
    }
    const m = devices[d]!.memory;
    m.peak_activation_bytes = peak;
    m.total_bytes = m.weights_bytes + m.state_bytes + peak;
  }
}

const fmt = (x: number): string => (x === 0 ? '0' : Math.abs(x) >= 1e4 || Math.abs(x) < 1e-2 ? x.toExponential(4) : String(Number(x.toFixed(4))));

export const schedulePass: Pass<ScheduleResult> = {
  name: 'schedule',
  summary: 'order steps per device (compute, send, recv), time them by simulation with link contention, plan buffers and peak memory',
  requires: ['partition'],
  options: [],
  run: buildSchedule,
  statistics(r) {
    return { steps: r.devices.reduce((s, d) => s + d.steps.length, 0), transfers: r.transfers.length, 'latency s': fmt(r.one.makespan_s), 'throughput /s': fmt(r.many.throughput_per_s) };
  },
  dump(r) {
    const lines = [`latency_s=${fmt(r.one.makespan_s)} throughput_per_s=${fmt(r.many.throughput_per_s)} (${r.requests} requests)`];
    for (const d of r.devices) {
      lines.push(`device ${d.id}: weights=${d.memory.weights_bytes} peak_activations=${d.memory.peak_activation_bytes} state=${d.memory.state_bytes} capacity=${d.memory.capacity_bytes}`);
      for (const s of d.steps) {
        lines.push(s.op === 'compute' ? `  ${fmt(s.start_s)}..${fmt(s.end_s)} compute ${s.unit} (${s.nodes!.length} nodes)` : `  ${fmt(s.start_s)} ${s.op} ${s.value} ${s.bytes}B ${s.op === 'send' ? 'to' : 'from'} ${s.peer}`);
      }
    }
    return lines.join('\n') + '\n';
  },
};
