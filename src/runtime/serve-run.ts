// `hxc run` of a serving plan (hxc plan --phase serve): the prompt runs on the prefill pool's
// workers (the plan directory), its KV cache is handed to the decode pool's workers (the plan's
// `serve.decode_plan` folder) and the decode steps run there, each step's outputs checked against
// the unsplit model with --check. In one process the handoff passes through the coordinator: the
// prefill workers return the presents (their buffers moved, not copied) and the decode workers
// receive them as the first step's past inputs and keep them on their owner devices after that.

import path from 'node:path';
import { HxcError } from '../diag/diagnostics.js';
import type { PlanV1 } from '../plan/format.js';
import { runPlan, type RunOptions, type RunReport } from './run.js';

export interface ServeRunReport extends RunReport {
  serve: {
    prefill_plan: string;
    decode_plan: string;
    prefill_devices: string[];
    decode_devices: string[];
    /** Bytes of KV state handed from the prefill pool to the decode pool. */
    kv_handoff_bytes: number;
    decode_telemetry: string;
  };
}

/** The decode pool's plan directory of a serving plan (a folder name inside it, never a path out). */
export function decodePlanDir(dir: string, plan: PlanV1): string {
  const name = plan.serve!.decode_plan;
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new HxcError('HXC2601', `serve.decode_plan "${name}" is not a folder name inside the plan`, { where: dir });
  return path.join(dir, name);
}

export async function runServe(opts: RunOptions, plan: PlanV1): Promise<ServeRunReport> {
  if (opts.inputs_file)
    throw new HxcError('HXC2002', '--inputs is not taken by a serving plan yet', { where: '--inputs', hint: 'drop --inputs (inputs are drawn from --seed)' });
  const decodeDir = decodePlanDir(opts.plan_dir, plan);
  const pre = await runPlan({ ...opts, decode_steps: 0, iterations: 1, keep_state: true });
  const state = pre.state!;
  const kvBytes = Object.values(state.state).reduce((n, t) => n + (t.data as { byteLength: number }).byteLength, 0);
  // The decode pool continues the same sequences: past = the prompt, one new token per step.
  const roles = plan.roles;
  const at = pre.requests[0]!.dims;
  const dims: Record<string, number> = { ...opts.dims };
  if (roles.batch && at[roles.batch] !== undefined) dims[roles.batch] = at[roles.batch]!;
  const past = (roles.past ? (at[roles.past] ?? 0) : 0) + (roles.seq ? (at[roles.seq] ?? 1) : 1);
  if (roles.past) dims[roles.past] = past;
  if (roles.seq) dims[roles.seq] = 1;
  if (roles.total) dims[roles.total] = past + 1;
  const dec = await runPlan({ ...opts, plan_dir: decodeDir, dims, decode_steps: Math.max(1, opts.decode_steps), from_state: state, inputs_file: undefined });
  const requests = [
    ...pre.requests.map((r) => ({ ...r, kind: 'prefill' as const })),
    ...dec.requests.map((r) => ({ ...r, request: r.request + pre.requests.length })),
  ];
  const lat = requests.map((r) => r.latency_ms).sort((a, b) => a - b);
  const pick = (q: number): number => lat[Math.min(lat.length - 1, Math.max(0, Math.ceil(q * lat.length) - 1))] ?? 0;
  const checks = [pre.check, dec.check].filter((c): c is NonNullable<RunReport['check']> => c !== null);
  const worst = checks
    .map((c) => c.worst)
    .filter((w) => w !== null)
    .sort((a, b) => b!.max_rel_error - a!.max_rel_error)[0];
  return {
    ...pre,
    state: undefined,
    devices: [...new Set([...pre.devices, ...dec.devices])],
    requests,
    latency_ms: { p50: pick(0.5), p95: pick(0.95), mean: lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length) },
    device_busy_share: { ...pre.device_busy_share, ...Object.fromEntries(Object.entries(dec.device_busy_share).map(([k, v]) => [`${k} (decode)`, v])) },
    measured_vs_estimated: [...pre.measured_vs_estimated, ...dec.measured_vs_estimated.map((m) => ({ ...m, device: `${m.device} (decode)` }))],
    check: checks.length ? { ...checks[0]!, passed: checks.every((c) => c.passed), worst: worst ?? null } : null,
    serve: {
      prefill_plan: opts.plan_dir,
      decode_plan: decodeDir,
      prefill_devices: pre.devices,
      decode_devices: dec.devices,
      kv_handoff_bytes: kvBytes,
      decode_telemetry: dec.telemetry,
    },
  };
}
