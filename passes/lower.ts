// lower: write the plan directory — `plan.json` (hxc-plan/v1, schema in
// src/schema/hxc-plan.v1.schema.json) and `trace.json`, the estimated timeline as a Chrome trace
// — into a temporary folder renamed into place, so no half-written plan is ever left. Same inputs
// and options give a byte-identical directory: no timestamps, no absolute paths, stable orders.

import path from 'node:path';
import { writeDirAtomically } from '../src/pass/manager.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import type { BindResult } from './bind.js';
import type { PartitionResult } from './partition.js';
import type { ProfileResult } from './profile.js';
import type { ScheduleResult } from './schedule.js';
import type { StateResult } from './state.js';

export const PLAN_FORMAT = 'hxc-plan/v1';

export interface LowerResult {
  dir: string;
  plan: PlanManifest;
}

export type PlanManifest = ReturnType<typeof buildManifest>;

export function buildManifest(ctx: PassContext, pipeline: string) {
  const part = ctx.get<PartitionResult>('partition');
  const sched = ctx.get<ScheduleResult>('schedule');
  const profile = ctx.get<ProfileResult>('profile');
  const state = ctx.get<StateResult>('state');
  const bind = ctx.get<BindResult>('bind');
  const topo = ctx.topology();
  const model = ctx.model;
  const g = model.graph;
  const p = part.problem;
  const assignment: Record<string, string> = {};
  g.nodes.forEach((n, i) => (assignment[n.name] = p.device_ids[part.placement.device[part.unit_of[i]!]!]!));
  const latency = sched.one.makespan_s;
  const lb = part.lower_bound;
  const kinds = new Map(topo.devices.map((d) => [d.id, d.kind]));
  return {
    format: PLAN_FORMAT,
    model: { name: model.name, file: path.basename(model.path), sha256: model.sha256, format: model.format },
    topology: {
      name: topo.name, sha256: topo.source.sha256,
      links: topo.links.map((l) => ({ name: l.name, kind: l.kind, bandwidth_bytes_per_s: l.bandwidth_bytes_per_s, latency_s: l.latency_s, shared: l.shared })),
    },
    dims: Object.fromEntries(Object.entries(profile.bindings).sort(([a], [b]) => (a < b ? -1 : 1))),
    phase: bind.phase,
    objective: part.objective,
    solver: part.solver,
    pipeline,
    assignment,
    devices: sched.devices.map((d) => ({
      id: d.id,
      kind: kinds.get(d.id),
      program: null as string | null,
      steps: d.steps.map((s) => (s.op === 'compute'
        ? { op: s.op, unit: s.unit, nodes: s.nodes, duration_s: s.duration_s, start_s: s.start_s, end_s: s.end_s }
        : { op: s.op, value: s.value, bytes: s.bytes, peer: s.peer, transfer: s.transfer, start_s: s.start_s, end_s: s.end_s })),
      memory: d.memory,
    })),
    transfers: sched.transfers.map((t) => ({ value: t.value, bytes: t.bytes, from: t.from, to: t.to, route: t.links, hops: t.route_hops, start_s: t.start_s, end_s: t.end_s })),
    state: state.objects.map((o) => {
      const owner = o.writers.length > 0 ? p.device_ids[part.placement.device[part.unit_of[o.writers[0]!]!]!]! : null;
      return { name: o.name, kind: o.kind, bytes: o.bytes, bytes_per_token: o.bytes_per_token, owner, inputs: o.inputs, outputs: o.outputs };
    }),
    experts: [] as unknown[],
    estimate: {
      latency_s: latency,
      throughput_per_s: sched.many.throughput_per_s,
      throughput_requests: sched.requests,
      lower_bound_s: lb.lower_bound_s,
      gap: lb.lower_bound_s > 0 ? latency / lb.lower_bound_s - 1 : null,
      lower_bounds: { critical_path_s: lb.critical_path_s, work_over_speed_s: lb.work_over_speed_s, memory_spread_s: lb.memory_spread_s },
      devices: Object.fromEntries(sched.devices.map((d, k) => [d.id, {
        busy_s: sched.one.devices[k]!.busy_s, utilisation: sched.one.devices[k]!.utilisation,
        memory_bytes: d.memory.total_bytes, capacity_bytes: d.memory.capacity_bytes,
      }])),
      link_bytes: sched.one.link_bytes,
      baselines: {
        heft_s: part.baselines.heft_s,
        refined_s: part.baselines.refined_s,
        single_device: part.baselines.single_device,
        exact: part.exact ? { status: part.exact.status, objective_s: part.exact.objective_s, gap: part.exact.gap } : null,
      },
      pipeline: part.pipeline ? { bottleneck_s: part.pipeline.bottleneck_s, chain: part.pipeline.chain, segments: part.pipeline.segments } : null,
      kv: part.kv,
    },
    explain: part.explain,
  };
}

export const lowerPass: Pass<LowerResult> = {
  name: 'lower',
  summary: 'write the plan directory: plan.json (hxc-plan/v1) and the estimated timeline trace.json',
  requires: ['schedule'],
  options: [{ name: 'out DIR', description: 'plan directory (default hxc-plan)' }],
  run(ctx) {
    const dir = String(ctx.options.flags.out ?? 'hxc-plan');
    const pipeline = String(ctx.options.flags.pipeline ?? '');
    const plan = buildManifest(ctx, pipeline);
    const sched = ctx.get<ScheduleResult>('schedule');
    writeDirAtomically(dir, [
      { file: 'plan.json', text: JSON.stringify(plan, null, 1) + '\n' },
      { file: 'trace.json', text: JSON.stringify({ traceEvents: sched.one.trace, displayTimeUnit: 'ns', otherData: { generator: 'hxc', kind: 'estimate' } }) + '\n' },
    ]);
    return { dir, plan };
  },
  statistics(r) {
    return { devices: r.plan.devices.length, transfers: r.plan.transfers.length };
  },
  dump(r) {
    return JSON.stringify({ ...r.plan, devices: r.plan.devices.map((d) => ({ id: d.id, steps: d.steps.length, memory: d.memory })) }, null, 1) + '\n';
  },
};
