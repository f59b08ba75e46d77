// Drift of a running deployment from its plan (issue 12): what `hxc run` (or a serving system
// writing hxc-telemetry/v1) measured against what plan.json estimated — each device's busy time
// per request, and each MoE layer's share of tokens per expert. `hxc check --telemetry FILE
// --max-drift 20%` holds both to a budget: the signal that a replan is due.

import { HxcError } from '../diag/diagnostics.js';
import { readInputFile } from '../import/load.js';
import { median } from '../util/stats.js';
import type { PlanV1 } from './format.js';

/** Telemetry files hxc reads (a long run's trace is large, but not this large). */
const MAX_TELEMETRY_BYTES = 1 << 30;

export interface DeviceDrift {
  device: string;
  /** Median over requests of the device's summed compute steps, seconds. */
  measured_s: number;
  estimated_s: number;
  /** measured / estimated − 1; Infinity when the plan estimated nothing and the device measured busy. */
  drift: number;
}

export interface RoutingDrift {
  layer: number;
  /** Total variation distance between measured and planned token shares: ½ Σ |measured − planned|. */
  distance: number;
  /** The expert whose share moved most, and its shares. */
  worst: { expert: number; measured: number; planned: number };
}

export function readDrift(file: string, plan: PlanV1, planSha256: string | null = null): { devices: DeviceDrift[]; routing: RoutingDrift[] } {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(readInputFile(file, 'telemetry file', MAX_TELEMETRY_BYTES).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof HxcError) throw err;
    throw new HxcError('HXC2502', `telemetry file is not JSON: ${(err as Error).message}`, { where: file, hint: 'give the telemetry.json `hxc run` writes' });
  }
  const bad = (at: string, what: string): never => {
    throw new HxcError('HXC2502', `${at}: ${what}`, { where: file, hint: 'give the telemetry.json `hxc run` writes (hxc-telemetry/v1), unedited' });
  };
  if (!doc || typeof doc !== 'object' || doc.format !== 'hxc-telemetry/v1')
    bad('$.format', `expected "hxc-telemetry/v1", found ${JSON.stringify(doc?.format)}`);
  const list = (key: string): Record<string, unknown>[] => {
    const v = doc[key] ?? [];
    if (!Array.isArray(v) || v.some((x) => !x || typeof x !== 'object')) bad(`$.${key}`, 'expected an array of objects');
    return v as Record<string, unknown>[];
  };
  const num = (v: unknown, at: string): number =>
    typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : bad(at, `expected a number ≥ 0, found ${JSON.stringify(v)}`);
  // The telemetry of another plan (another model, rack or options) says nothing of this one's estimate.
  if (planSha256 !== null && typeof doc.plan_sha256 === 'string' && doc.plan_sha256 !== planSha256)
    throw new HxcError(
      'HXC2502',
      `is the telemetry of another plan (its plan.json sha256 ${doc.plan_sha256.slice(0, 12)}…, this plan's ${planSha256.slice(0, 12)}…)`,
      {
        where: file,
        hint: 'give the telemetry of a run of this plan: hxc run PLAN_DIR writes PLAN_DIR/run/telemetry.json',
      },
    );
  // The estimate is of one request at the plan's dims: it is held to the requests run at those
  // dims (a prefill, not the decode steps after it); a run with none (--dim) measured other work.
  const atPlanDims = requestsAtDims(list('requests'), plan.dims);
  if (atPlanDims.size === 0 && Object.keys(plan.dims).length > 0)
    throw new HxcError(
      'HXC2502',
      `no request of the telemetry ran at the plan's dims (${Object.entries(plan.dims)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}): its times are of another workload than the estimate`,
      { where: file, hint: 'run the plan at its own dims (hxc run PLAN_DIR without --dim), or plan for the dims you ran' },
    );
  // Busy time per (device, request): the compute steps (those that ran nodes).
  const busy = new Map<string, Map<number, number>>();
  list('steps').forEach((s, i) => {
    if (!Array.isArray(s.nodes) || s.nodes.length === 0) return;
    if (atPlanDims.size > 0 && !atPlanDims.has(s.request)) return;
    const device = typeof s.device === 'string' ? s.device : bad(`$.steps[${i}].device`, 'expected a device id');
    const request = num(s.request, `$.steps[${i}].request`);
    const d = num(s.end_s, `$.steps[${i}].end_s`) - num(s.start_s, `$.steps[${i}].start_s`);
    if (d < 0) bad(`$.steps[${i}].end_s`, 'ends before it starts');
    const m = busy.get(device) ?? busy.set(device, new Map()).get(device)!;
    m.set(request, (m.get(request) ?? 0) + d);
  });
  const devices: DeviceDrift[] = [];
  for (const [device, e] of Object.entries(plan.estimate.devices).sort(([a], [b]) => a.localeCompare(b))) {
    const m = busy.get(device);
    if (!m) continue;
    const measured = median([...m.values()]);
    // A device the plan priced at nothing that measured busy is past any budget (Infinity), not left out.
    if (e.busy_s <= 0 && measured <= 0) continue;
    devices.push({ device, measured_s: measured, estimated_s: e.busy_s, drift: e.busy_s > 0 ? measured / e.busy_s - 1 : Infinity });
  }
  // Token shares per MoE layer, measured over every request against the plan's.
  const measuredTokens = new Map<number, Map<number, number>>();
  list('expert_tokens').forEach((t, i) => {
    const layer = num(t.layer, `$.expert_tokens[${i}].layer`);
    const m = measuredTokens.get(layer) ?? measuredTokens.set(layer, new Map()).get(layer)!;
    const expert = num(t.expert, `$.expert_tokens[${i}].expert`);
    m.set(expert, (m.get(expert) ?? 0) + num(t.tokens, `$.expert_tokens[${i}].tokens`));
  });
  const planned = new Map<number, Map<number, number>>();
  for (const e of plan.experts) (planned.get(e.layer) ?? planned.set(e.layer, new Map()).get(e.layer)!).set(e.expert, e.tokens);
  const routing: RoutingDrift[] = [];
  const total = (x: Map<number, number>): number => [...x.values()].reduce((a, b) => a + b, 0);
  for (const [layer, m] of [...measuredTokens].sort(([a], [b]) => a - b)) {
    const p = planned.get(layer);
    if (!p) continue;
    const tm = total(m);
    const tp = total(p);
    if (tm <= 0 || tp <= 0) continue;
    let distance = 0;
    let worst = { expert: -1, measured: 0, planned: 0 };
    for (const expert of [...new Set([...m.keys(), ...p.keys()])].sort((a, b) => a - b)) {
      const a = (m.get(expert) ?? 0) / tm;
      const b = (p.get(expert) ?? 0) / tp;
      distance += Math.abs(a - b) / 2;
      if (worst.expert < 0 || Math.abs(a - b) > Math.abs(worst.measured - worst.planned)) worst = { expert, measured: a, planned: b };
    }
    routing.push({ layer, distance, worst });
  }
  return { devices, routing };
}

/**
 * The requests run at `dims` (every one of them bound as there): those a plan's estimate, made at
 * its dims, is compared with — a prefill, not the decode steps after it (hxc run, hxc check).
 */
export function requestsAtDims(requests: readonly { request?: unknown; dims?: unknown }[], dims: Readonly<Record<string, number>>): Set<unknown> {
  return new Set(
    requests
      .filter((r) => r.dims !== null && typeof r.dims === 'object' && Object.entries(dims).every(([k, v]) => (r.dims as Record<string, unknown>)[k] === v))
      .map((r) => r.request),
  );
}
