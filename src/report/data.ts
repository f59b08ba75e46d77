// What `hxc report` draws, derived from a plan directory (and the rack file it was made on, a
// replan's delta.json, another plan to compare with): one JSON object the page embeds. Everything
// here comes from the plan as shipped — its steps and transfers as estimated (the one-request
// timeline), the simulator's pipelined run of the same steps (src/sim/simulate.ts, the model that
// judged the plan), its explain, experts, state and memory — so the page says what plan.json says.

import fs from 'node:fs';
import path from 'node:path';
import type { DeltaV1, PlanV1 } from '../plan/format.js';
import { schemaPlace, schemaValidator } from '../plan/read.js';
import { HxcError } from '../diag/diagnostics.js';
import type { Topology } from '../topology/load.js';
import { simulate } from '../sim/simulate.js';
import { planSimInput } from '../sim/plan-input.js';
import { diffPlans } from '../cli/diff-command.js';

export const REPORT_FORMAT = 'hxc-report/v1';

/** Simulated step runs of the pipelined timeline (the page stays a few MB; later requests are left out). */
const MAX_PIPELINED_EVENTS = 60_000;

export interface ReportDevice {
  id: string;
  kind: string;
  model: string | null;
  host: string;
  /** In the plan (the rack may hold devices a large-rack plan did not consider). */
  planned: boolean;
  busy_s: number;
  utilisation: number;
  weights_bytes: number;
  activation_bytes: number;
  state_bytes: number;
  capacity_bytes: number;
  steps: number;
  units: number;
}

export interface ReportLink {
  name: string;
  kind: string;
  bandwidth_bytes_per_s: number;
  latency_s: number;
  shared: boolean;
  /** The devices it joins; null when the rack file is not at hand (only plan.json's link list). */
  devices: string[] | null;
  bytes_per_request: number;
}

/** One bar of a timeline: [lane (device index), start s, end s, kind (0 compute, 1 transfer), label index, request]. */
export type Bar = [number, number, number, 0 | 1, number, number];

export interface ReportData {
  format: typeof REPORT_FORMAT;
  title: string;
  summary: {
    model: string;
    topology: string;
    phase: string | null;
    objective: string;
    dims: Record<string, number>;
    latency_s: number;
    throughput_per_s: number;
    throughput_requests: number;
    lower_bound_s: number;
    /** The best throughput the plan could have (plan.json estimate.throughput_upper_per_s): a throughput plan's gap is to it. */
    throughput_upper_per_s: number;
    /** The shipped plan's distance from the objective's bound: latency over the lower bound, or the throughput bound over throughput. */
    gap: number | null;
    chosen: string;
    pipelined: boolean;
    kv_sequences: number | null;
    /**
     * A serving plan (plan.json `serve`): what it serves under its workload. The timeline and the
     * figures above are its prefill plan's; the decode plan is in `decode_plan`.
     */
    serve: {
      disaggregated: boolean;
      pools: { prefill: string[]; decode: string[] };
      goodput_per_s: number;
      capacity_per_s: number;
      ttft_p90_s: number;
      tpot_p90_s: number;
      slo: { ttft_p90_s: number; tpot_p90_s: number };
      decode_plan: string;
      why: string;
    } | null;
  };
  /** Where the rack came from: the file it was made on (hash checked), the built-in rack, or plan.json alone. */
  rack_source: string;
  hosts: { id: string; devices: string[] }[];
  devices: ReportDevice[];
  links: ReportLink[];
  labels: string[];
  timeline: {
    /** The plan's devices in plan order: a bar's lane indexes them. */
    lanes: string[];
    /** The plan's own estimate of one request: every compute step and every transfer. */
    one: Bar[];
    /** Indexes into `one` on the critical path (the chain of waits that ends last). */
    critical: number[];
    pipelined: Bar[];
    pipelined_requests: number;
    /** Requests the plan's throughput is simulated over; fewer are drawn when `pipelined_requests` is smaller. */
    throughput_requests: number;
    transfer_detail: { value: string; bytes: number; from: string; to: string; route: string[] }[];
  };
  placement: {
    stages: { name: string; runs: { device: string; units: number; resident_bytes: number }[] }[];
    experts: { layers: number; experts: number; cells: { layer: number; expert: number; tokens: number; devices: string[] }[] } | null;
    /** `owners`: every device holding some of it, most first, when they are several (plan.json state[].owners). */
    state: { name: string; kind: string; owner: string | null; owners: { device: string; bytes: number }[]; bytes: number; bytes_per_token: number }[];
  };
  why: {
    explain: { unit: string; stage: string; device: string; finish_s: number; reason: string; resident_bytes: number; alternatives: string[] }[];
    /** throughput_per_s null: not simulated (a latency plan of a huge graph judges candidates by latency). */
    candidates: { name: string; label: string; latency_s: number; throughput_per_s: number | null; fits: boolean; shipped: boolean; kind: string }[];
    bounds: { critical_path_s: number; work_over_speed_s: number; memory_spread_s: number; milp_s?: number };
    variants: { name: string; splits: number; latency_s: number; throughput_per_s: number | null; shipped: boolean }[];
  };
  compare: ReportCompare | null;
}

export interface ReportCompare {
  /** What it is compared with: another plan (--compare) or the running plan of a replan (delta.json). */
  against: string;
  before: { latency_s: number; throughput_per_s: number };
  after: { latency_s: number; throughput_per_s: number };
  moved: { unit: string; from: string | null; to: string; bytes: number; why: string }[];
  devices: { id: string; memory_bytes: [number | null, number | null]; utilisation: [number | null, number | null] }[];
  migration_bytes: number;
}

export interface ReportInputs {
  dir: string;
  plan: PlanV1;
  /** The rack the plan was made on, when it is at hand and unchanged. */
  topology: Topology | null;
  rackSource: string;
  delta: DeltaV1 | null;
  compare: { dir: string; plan: PlanV1 } | null;
}

/** Host of a device: the rack's hosts, or "rack" for devices no host lists. */
function hostsOf(plan: PlanV1, topo: Topology | null): { id: string; devices: string[] }[] {
  const ids = topo ? topo.devices.map((d) => d.id) : plan.devices.map((d) => d.id);
  const known = new Set(ids);
  const listed = new Set<string>();
  const hosts: { id: string; devices: string[] }[] = [];
  for (const h of topo?.hosts ?? []) {
    const devs = h.devices.filter((d) => known.has(d));
    devs.forEach((d) => listed.add(d));
    if (devs.length) hosts.push({ id: h.id, devices: devs });
  }
  const rest = ids.filter((d) => !listed.has(d));
  if (rest.length) hosts.push({ id: hosts.length ? 'no host' : 'rack', devices: rest });
  return hosts;
}

/**
 * The chain of waits that ends last in the one-request estimate: from the compute step that ends
 * last, each step's predecessor is the transfer it waited for (a receive whose value arrived after
 * the device's previous step ended) or else the step before it on its device. Returns indexes into `bars` (compute bars first per device, then transfers).
 */
function criticalPath(plan: PlanV1, barOfStep: Map<string, number>, barOfTransfer: number[]): number[] {
  const sendOf = new Map<number, [number, number]>();
  plan.devices.forEach((d, i) => d.steps.forEach((s, k) => s.op === 'send' && s.transfer !== undefined && sendOf.set(s.transfer, [i, k])));
  let at: [number, number] | null = null;
  let end = -Infinity;
  plan.devices.forEach((d, i) =>
    d.steps.forEach((s, k) => {
      if (s.op === 'compute' && s.end_s > end) {
        end = s.end_s;
        at = [i, k];
      }
    }),
  );
  const path: number[] = [];
  const eps = Math.max(1e-15, Math.abs(plan.estimate.latency_s) * 1e-12);
  let guard = plan.devices.reduce((n, d) => n + d.steps.length, 0) + plan.transfers.length + 1;
  while (at && guard-- > 0) {
    const [i, k] = at as [number, number];
    const s = plan.devices[i]!.steps[k]!;
    if (s.op === 'compute') {
      const b = barOfStep.get(`${i}/${k}`);
      if (b !== undefined) path.push(b);
    }
    // A receive waited when its value arrived after the device's previous step ended.
    const before = k > 0 ? plan.devices[i]!.steps[k - 1]!.end_s : 0;
    if (s.op === 'recv' && s.transfer !== undefined && s.end_s > before + eps && sendOf.has(s.transfer)) {
      path.push(barOfTransfer[s.transfer]!);
      at = sendOf.get(s.transfer)!;
    } else at = k > 0 ? [i, k - 1] : null;
  }
  return path.reverse();
}

export function buildReport(inp: ReportInputs): ReportData {
  const { plan, topology } = inp;
  const est = plan.estimate;
  const planned = new Map(plan.devices.map((d, i) => [d.id, i]));
  const unitsOn = new Map<string, number>();
  for (const e of plan.explain) unitsOn.set(e.device, (unitsOn.get(e.device) ?? 0) + 1);
  const hosts = hostsOf(plan, topology);
  const hostOf = new Map(hosts.flatMap((h) => h.devices.map((d) => [d, h.id] as const)));
  const rackDevices = topology ? topology.devices : plan.devices.map((d) => ({ id: d.id, kind: d.kind ?? 'device', model: null }));
  const devices: ReportDevice[] = rackDevices.map((rd) => {
    const i = planned.get(rd.id);
    const pd = i === undefined ? null : plan.devices[i]!;
    const fig = est.devices[rd.id];
    return {
      id: rd.id,
      kind: pd?.kind ?? rd.kind,
      model: rd.model ?? null,
      host: hostOf.get(rd.id) ?? 'rack',
      planned: pd !== null,
      busy_s: fig?.busy_s ?? 0,
      utilisation: fig?.utilisation ?? 0,
      weights_bytes: pd?.memory.weights_bytes ?? 0,
      activation_bytes: pd?.memory.peak_activation_bytes ?? 0,
      state_bytes: pd?.memory.state_bytes ?? 0,
      capacity_bytes: pd?.memory.capacity_bytes ?? ('memory_capacity_bytes' in rd ? rd.memory_capacity_bytes : 0),
      steps: pd?.steps.length ?? 0,
      units: unitsOn.get(rd.id) ?? 0,
    };
  });
  const linkDevices = new Map((topology?.links ?? []).map((l) => [l.name, l.devices]));
  const links: ReportLink[] = plan.topology.links.map((l) => ({
    name: l.name,
    kind: l.kind,
    bandwidth_bytes_per_s: l.bandwidth_bytes_per_s,
    latency_s: l.latency_s,
    shared: l.shared,
    devices: linkDevices.get(l.name) ?? null,
    bytes_per_request: est.link_bytes[l.name] ?? 0,
  }));

  // Labels are shared by both timelines (a unit's name, a transfer's value).
  const labels: string[] = [];
  const labelIndex = new Map<string, number>();
  const label = (s: string): number => {
    let k = labelIndex.get(s);
    if (k === undefined) {
      k = labels.length;
      labels.push(s);
      labelIndex.set(s, k);
    }
    return k;
  };
  const one: Bar[] = [];
  const barOfStep = new Map<string, number>();
  plan.devices.forEach((d, i) =>
    d.steps.forEach((s, k) => {
      if (s.op !== 'compute') return;
      barOfStep.set(`${i}/${k}`, one.length);
      one.push([i, s.start_s, s.end_s, 0, label(s.unit ?? 'compute'), 0]);
    }),
  );
  const barOfTransfer = plan.transfers.map((t) => {
    one.push([planned.get(t.to) ?? 0, t.start_s, t.end_s, 1, label(t.value), 0]);
    return one.length - 1;
  });
  const critical = criticalPath(plan, barOfStep, barOfTransfer);

  // Pipelined: the simulator runs the plan's steps for its throughput requests (as many as fit the page).
  const stepsPerRequest = Math.max(
    1,
    plan.devices.reduce((n, d) => n + d.steps.length, 0),
  );
  const wanted = Math.max(1, est.throughput_requests);
  const requests = Math.max(1, Math.min(wanted, Math.floor(MAX_PIPELINED_EVENTS / stepsPerRequest)));
  const sim = simulate(planSimInput(plan, requests), { trace: true });
  const pipelined: Bar[] = [];
  for (const ev of sim.trace) {
    if (ev.ph !== 'X') continue;
    const request = Number(ev.args?.request ?? 0);
    const start = ev.ts / 1e6;
    const stop = (ev.ts + (ev.dur ?? 0)) / 1e6;
    if (ev.cat === 'compute') pipelined.push([ev.pid, start, stop, 0, label(ev.name), request]);
    else {
      const t = plan.transfers[ev.tid];
      if (t) pipelined.push([planned.get(t.to) ?? 0, start, stop, 1, label(t.value), request]);
    }
  }
  // Stable: by lane, then start (the trace's order depends only on the simulation, but sorting reads better).
  pipelined.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[3] - b[3] || a[4] - b[4] || a[5] - b[5]);

  // Placement: each stage's units in plan order, consecutive units on one device merged.
  const stages: ReportData['placement']['stages'] = [];
  for (const e of plan.explain) {
    let st = stages[stages.length - 1];
    if (!st || st.name !== e.stage) stages.push((st = { name: e.stage, runs: [] }));
    const last = st.runs[st.runs.length - 1];
    if (last && last.device === e.device) {
      last.units++;
      last.resident_bytes += e.resident_bytes;
    } else st.runs.push({ device: e.device, units: 1, resident_bytes: e.resident_bytes });
  }
  const experts =
    plan.experts.length > 0
      ? {
          layers: Math.max(...plan.experts.map((e) => e.layer)) + 1,
          experts: Math.max(...plan.experts.map((e) => e.expert)) + 1,
          cells: plan.experts.map((e) => ({
            layer: e.layer,
            expert: e.expert,
            tokens: e.tokens,
            devices: [...new Set(e.replicas.flatMap((r) => r.devices))].sort(),
          })),
        }
      : null;

  const fmtAlt = (a: PlanV1['explain'][number]['alternatives'][number]): string => {
    const fig =
      a.latency_s !== null
        ? `${(a.latency_s * 1e3).toPrecision(4)} ms`
        : a.throughput_per_s !== null
          ? `${a.throughput_per_s.toPrecision(4)}/s`
          : a.latency_at_least_s !== undefined
            ? `≥ ${(a.latency_at_least_s * 1e3).toPrecision(4)} ms`
            : a.throughput_at_most_per_s !== undefined
              ? `≤ ${a.throughput_at_most_per_s.toPrecision(4)}/s`
              : '';
    return `${a.device}${fig ? ` ${fig}` : ''} — ${a.why}`;
  };
  const candidates: ReportData['why']['candidates'] = est.candidates.map((c) => ({
    name: c.name,
    label: c.label,
    latency_s: c.latency_s,
    throughput_per_s: c.throughput_per_s,
    fits: c.fits,
    shipped: c.name === est.chosen,
    kind: 'candidate',
  }));
  for (const [name, b] of Object.entries(est.baselines)) {
    if (!b || !('latency_s' in b) || !('label' in b)) continue;
    candidates.push({ name, label: b.label, latency_s: b.latency_s, throughput_per_s: b.throughput_per_s, fits: b.fits, shipped: false, kind: 'baseline' });
  }

  return {
    format: REPORT_FORMAT,
    title: `${plan.model.name} on ${plan.topology.name}`,
    summary: {
      model: plan.model.file,
      topology: plan.topology.name,
      phase: plan.phase,
      objective: String(plan.objective),
      dims: plan.dims,
      latency_s: est.latency_s,
      throughput_per_s: est.throughput_per_s,
      throughput_requests: est.throughput_requests,
      lower_bound_s: est.lower_bound_s,
      throughput_upper_per_s: est.throughput_upper_per_s,
      gap: est.gap,
      chosen: est.chosen,
      pipelined: est.pipelined,
      kv_sequences: est.kv?.sequences ?? null,
      serve: plan.serve
        ? {
            disaggregated: plan.serve.disaggregated,
            pools: plan.serve.pools,
            goodput_per_s: plan.serve.goodput_per_s,
            capacity_per_s: plan.serve.capacity_per_s,
            ttft_p90_s: plan.serve.ttft_p90_s,
            tpot_p90_s: plan.serve.tpot_p90_s,
            slo: plan.serve.workload.slo,
            decode_plan: plan.serve.decode_plan,
            why: plan.serve.why,
          }
        : null,
    },
    rack_source: inp.rackSource,
    hosts,
    devices,
    links,
    labels,
    timeline: {
      lanes: plan.devices.map((d) => d.id),
      one,
      critical,
      pipelined,
      pipelined_requests: requests,
      throughput_requests: wanted,
      transfer_detail: plan.transfers.map((t) => ({ value: t.value, bytes: t.bytes, from: t.from, to: t.to, route: t.route })),
    },
    placement: {
      stages,
      experts,
      state: plan.state.map((s) => ({
        name: s.name,
        kind: s.kind,
        owner: s.owner,
        owners: s.owners ?? [],
        bytes: s.bytes,
        bytes_per_token: s.bytes_per_token,
      })),
    },
    why: {
      explain: plan.explain.map((e) => ({
        unit: e.unit,
        stage: e.stage,
        device: e.device,
        finish_s: e.finish_s,
        reason: e.reason,
        resident_bytes: e.resident_bytes,
        alternatives: e.alternatives.map(fmtAlt),
      })),
      candidates,
      bounds: est.lower_bounds,
      variants: (est.variants ?? []).map((v) => ({
        name: v.name,
        splits: v.splits,
        latency_s: v.latency_s,
        throughput_per_s: v.throughput_per_s,
        shipped: v.shipped,
      })),
    },
    compare: compareOf(inp),
  };
}

function compareOf(inp: ReportInputs): ReportCompare | null {
  const { plan } = inp;
  const after = { latency_s: plan.estimate.latency_s, throughput_per_s: plan.estimate.throughput_per_s };
  if (inp.compare) {
    const d = diffPlans(inp.compare.dir, inp.compare.plan, inp.dir, plan);
    return {
      against: `plan ${path.basename(path.resolve(inp.compare.dir))}`,
      before: { latency_s: d.a.latency_s, throughput_per_s: d.a.throughput_per_s },
      after,
      moved: d.moved.map((m) => ({ unit: m.unit, from: m.from, to: m.to, bytes: m.bytes, why: '' })),
      devices: d.devices,
      migration_bytes: d.migration_bytes,
    };
  }
  if (inp.delta) {
    const delta = inp.delta;
    const figs = new Map(plan.devices.map((d) => [d.id, d]));
    return {
      against: `running plan ${delta.from.dir} (replan delta.json)`,
      before: {
        latency_s: delta.running_now?.latency_s ?? delta.from.latency_s,
        throughput_per_s: delta.running_now?.throughput_per_s ?? delta.from.throughput_per_s,
      },
      after,
      moved: delta.moved.map((m) => ({ unit: m.unit, from: m.from, to: m.to, bytes: m.bytes, why: m.why })),
      devices: [...figs.keys()].map((id) => ({
        id,
        memory_bytes: [null, figs.get(id)!.memory.total_bytes],
        utilisation: [null, plan.estimate.devices[id]?.utilisation ?? null],
      })),
      migration_bytes: delta.migration_bytes,
    };
  }
  return null;
}

/** delta.json beside plan.json (a replan), read size-checked; null when there is none. */
export function readDelta(dir: string): DeltaV1 | null {
  const file = path.join(dir, 'delta.json');
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return null;
  }
  if (!st.isFile() || st.size > 1 << 28) return null;
  const d = JSON.parse(fs.readFileSync(file, 'utf8')) as DeltaV1;
  if (d?.format !== 'hxc-delta/v1') return null;
  // Not covered by plan.sha256: checked against its schema before the report reads it.
  const validate = schemaValidator('hxc-delta.v1');
  if (!validate(d))
    throw new HxcError('HXC2601', `delta.json does not follow hxc-delta/v1: ${validate.errors?.[0]?.message ?? 'invalid'}`, {
      where: `${file}: ${schemaPlace(validate) || '$'}`,
      hint: 'the plan directory was changed after hxc wrote it: replan again',
    });
  return d;
}
