// schedule: the shipped placement's schedule, exactly as the partitioner judged it
// (src/partition/judge.ts): a compute step per unit, a recv before the first unit on a device
// that needs a value from elsewhere, a send after the unit producing it; step times from the
// simulation with link contention; peak activation memory from buffer lifetimes under it. The
// plan's estimate is this simulation, so `hxc simulate` on the written plan reproduces it.

import { HxcError } from '../src/diag/diagnostics.js';
import type { DeviceMemory } from '../src/partition/judge.js';
import type { SimInput, SimResult } from '../src/sim/simulate.js';
import type { PlanTransfer } from '../src/plan/format.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import { partitionPass } from './partition.js';
import { dumpNumber } from '../src/util/format.js';

export type { DeviceMemory };

export interface ScheduledStep {
  op: 'compute' | 'send' | 'recv';
  /** compute: node names in order, the unit's index and its name. */
  nodes?: string[];
  unit_index?: number;
  unit?: string;
  /** send/recv. */
  value?: string;
  bytes?: number;
  peer?: string;
  transfer?: number;
  /** Pipeline lag when the plan is pipelined (see src/sim/simulate.ts). */
  round: number;
  /** compute: its time alone. */
  duration_s?: number;
  start_s: number;
  end_s: number;
}

/**
 * A transfer as plan.json lists it: the lower pass writes these objects as they are (a large
 * plan's 51k transfers and 103k sends and receives were each made twice, and held through lowering).
 */
export type ScheduledTransfer = PlanTransfer;

export interface ScheduleResult {
  devices: { id: string; steps: ScheduledStep[]; memory: DeviceMemory }[];
  transfers: ScheduledTransfer[];
  sim_input: SimInput;
  one: SimResult;
  /** Pipelined simulation of `requests` requests (throughput). */
  many: SimResult;
  requests: number;
  pipelined: boolean;
}

export function buildSchedule(ctx: PassContext): ScheduleResult {
  const part = ctx.get(partitionPass);
  const p = part.problem;
  const g = ctx.model.graph;
  const judge = part.judge;
  // The throughput run was made when the plan was judged; the one-request run again, with its trace.
  const { many, schedule } = judge.many(part.placement, part.pipelined);
  const one = judge.simulateOne(schedule);
  // The one-request run stays for explain (lower), which starts from it and then lets it go.
  judge.forgetMany();
  // A transfer's times are its bytes' on the links (trace.json's transfer bar): sent at start_s, all
  // across at end_s; the receiving device takes them at its recv step, when it gets there.
  const { start_s: leaves, end_s: lands } = one.transfer_times;
  const transfers: ScheduledTransfer[] = schedule.transfers.map((t, k) => ({
    value: t.value,
    bytes: t.bytes,
    from: t.from,
    to: t.to,
    route: t.links,
    hops: t.hops,
    start_s: leaves[k]!,
    end_s: lands[k]!,
  }));
  const memory = judge.memoryUnder(part.placement.device, schedule, one);
  const devices: ScheduleResult['devices'] = schedule.steps.map((list, d) => ({
    id: p.device_ids[d]!,
    memory: memory[d]!,
    steps: list.map((s, k): ScheduledStep => {
      const at = one.step_times.offset[d]! + k;
      const start_s = one.step_times.start_s[at]!;
      const end_s = one.step_times.end_s[at]!;
      if (s.op === 'compute') {
        const u = s.unit!;
        return {
          op: 'compute',
          unit_index: u,
          unit: p.unit_names[u]!,
          nodes: part.units[u]!.nodes.map((i) => g.nodes[i]!.name),
          round: s.round,
          duration_s: s.duration_s!,
          start_s,
          end_s,
        };
      }
      const tr = transfers[s.transfer!]!;
      // (plan.json's send and receive steps: these fields, in this order.)
      return {
        op: s.op,
        value: tr.value,
        bytes: tr.bytes,
        peer: s.op === 'send' ? tr.to : tr.from,
        transfer: s.transfer!,
        round: s.round,
        start_s,
        end_s,
      };
    }),
  }));
  const over = devices.filter((d) => d.memory.total_bytes > d.memory.capacity_bytes);
  if (over.length > 0) {
    throw new HxcError(
      'HXC3001',
      `the plan does not fit: ${over.map((d) => `${d.id} needs ${d.memory.total_bytes - d.memory.capacity_bytes} more bytes (${d.memory.total_bytes} of ${d.memory.capacity_bytes})`).join('; ')}`,
      { hint: 'add memory or devices, lower --batch/--context, or use --max-stages to give the partitioner finer units' },
    );
  }
  return { devices, transfers, sim_input: schedule.sim, one, many, requests: judge.requests, pipelined: schedule.pipelined };
}

const fmt = (x: number): string => dumpNumber(x);

export const schedulePass: Pass<ScheduleResult> = {
  name: 'schedule',
  summary: 'order steps per device (compute, send, recv), time them by simulation with link contention, plan buffers and peak memory',
  requires: ['partition'],
  options: [],
  run: buildSchedule,
  statistics(r) {
    return {
      steps: r.devices.reduce((s, d) => s + d.steps.length, 0),
      transfers: r.transfers.length,
      'latency s': fmt(r.one.makespan_s),
      'throughput /s': fmt(r.many.throughput_per_s),
    };
  },
  dump(r) {
    const lines = [
      `latency_s=${fmt(r.one.makespan_s)} throughput_per_s=${fmt(r.many.throughput_per_s)} (${r.requests} requests${r.pipelined ? ', pipelined' : ''})`,
    ];
    for (const d of r.devices) {
      lines.push(
        `device ${d.id}: weights=${d.memory.weights_bytes} peak_activations=${d.memory.peak_activation_bytes} state=${d.memory.state_bytes} capacity=${d.memory.capacity_bytes}`,
      );
      for (const s of d.steps) {
        const round = s.round ? ` round ${s.round}` : '';
        lines.push(
          s.op === 'compute'
            ? `  ${fmt(s.start_s)}..${fmt(s.end_s)} compute ${s.unit} (${s.nodes!.length} nodes)${round}`
            : `  ${fmt(s.start_s)} ${s.op} ${s.value} ${s.bytes}B ${s.op === 'send' ? 'to' : 'from'} ${s.peer}${round}`,
        );
      }
    }
    return lines.join('\n') + '\n';
  },
};
