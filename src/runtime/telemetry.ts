// What a run leaves behind: telemetry (hxc-telemetry/v1: per-step times per device, transfers,
// expert token counts, replica shares), the Chrome trace, the measured routing (hxc-routing/v1),
// and the report `hxc run` prints — measured busy time per device against the plan's estimate.

import path from 'node:path';
import type { PlanV1 } from '../plan/format.js';
import { recordedPlanSha256 } from '../plan/read.js';
import type { RunDone } from './protocol.js';
import { type Comparison, CHECK_TOLERANCE_ABS, CHECK_TOLERANCE_REL } from './tensors.js';
import { median, percentile } from '../util/stats.js';
import { requestsAtDims } from '../plan/drift.js';
import { checkedRoutingText } from '../moe/routing.js';
import { writeOutputDir, type OutputEntry } from '../util/output.js';
import type { RequestResult, RunOptions, RunReport } from './run.js';

export function finish(
  opts: RunOptions,
  plan: PlanV1,
  results: RequestResult[],
  records: { device: string; request: number; done: RunDone }[],
  devices: string[],
): RunReport {
  const dir = opts.plan_dir;
  const lat = results.map((r) => r.latency_ms);
  // Program → its nodes (the calibration input: hxc plan --calibrate telemetry.json).
  const programNodes = new Map<string, string[]>();
  // Program → the units it runs (explain's names): what a step of telemetry measured, by the plan's names.
  const programUnits = new Map<string, string[]>();
  for (const d of plan.devices)
    for (const s of d.steps)
      if (s.op === 'compute' && s.program) {
        programNodes.set(s.program, [...(programNodes.get(s.program) ?? []), ...(s.nodes ?? [])]);
        if (s.unit) programUnits.set(s.program, [...(programUnits.get(s.program) ?? []), s.unit]);
      }
  const busy: Record<string, number[]> = {};
  for (const r of records) (busy[r.device] ??= []).push(r.done.busy_ms);
  // The estimate is of one request at the plan's dims: it is compared with the requests run at
  // those dims (a prefill, not the decode steps after it, whose shapes the plan did not price),
  // or with every request when none ran at them (a run at other --dim values).
  const atPlanDims = requestsAtDims(results, plan.dims);
  const compared = atPlanDims.size > 0 ? records.filter((r) => atPlanDims.has(r.request)) : records;
  const busyCompared: Record<string, number[]> = {};
  for (const r of compared) (busyCompared[r.device] ??= []).push(r.done.busy_ms);
  const totalLatency = lat.reduce((a, b) => a + b, 0);
  const share: Record<string, number> = {};
  for (const d of devices) share[d] = totalLatency > 0 ? (busy[d] ?? []).reduce((a, b) => a + b, 0) / totalLatency : 0;
  const measured = devices.map((d) => {
    // The median as hxc check --max-drift and --calibrate take it (an even count averages the two
    // middle requests; nearest-rank here made run --json and check say 4.599 and 4.652 ms of one run).
    const m = median(busyCompared[d] ?? [0]) / 1000;
    const e = plan.estimate.devices[d]?.busy_s ?? 0;
    return {
      device: d,
      measured_busy_s: m,
      estimated_busy_s: e,
      // (No ratio to an estimate of nothing: null, not 0, which read as a device running faster than planned.)
      skew: e > 0 ? m / e : null,
      requests: atPlanDims.size > 0 ? atPlanDims.size : results.length,
      at_plan_dims: atPlanDims.size > 0,
    };
  });
  const all = results.flatMap((r) => r.checks);
  const worst = all.reduce<Comparison | null>((w, c) => (!w || c.max_rel_error > w.max_rel_error || !c.shape_matches ? c : w), null);
  const check = opts.check
    ? {
        passed: all.length > 0 && all.every((c) => c.shape_matches && c.within_tolerance),
        tolerance_rel: CHECK_TOLERANCE_REL,
        tolerance_abs: CHECK_TOLERANCE_ABS,
        worst,
      }
    : null;
  // Telemetry (hxc-telemetry/v1) and a Chrome trace of what ran.
  const runDir = path.join(dir, 'run');
  const telemetry = {
    format: 'hxc-telemetry/v1',
    plan: path.basename(path.resolve(dir)),
    // Which plan this measured (plan.sha256, checked when the plan was read): a drift check of
    // another plan is refused by it.
    plan_sha256: recordedPlanSha256(dir),
    requests: results.map((r) => ({ request: r.request, kind: r.kind, latency_s: r.latency_ms / 1000, dims: r.dims })),
    steps: records.flatMap((r) =>
      r.done.steps
        .filter((s) => s.op === 'compute')
        .map((s) => ({
          device: r.device,
          device_kind: plan.devices.find((d) => d.id === r.device)?.kind ?? null,
          request: r.request,
          program: s.program ?? null,
          units: s.program ? (programUnits.get(s.program) ?? []) : [],
          nodes: s.program ? (programNodes.get(s.program) ?? []) : [],
          start_s: s.start_ms / 1000,
          end_s: s.end_ms / 1000,
        })),
    ),
    transfers: records.flatMap((r) =>
      r.done.steps
        .filter((s) => s.op === 'recv')
        .map((s) => {
          // From the send to when the receiver took it in (both on the run's clock: workers on other
          // hosts keep the coordinator's epoch; a skewed clock is clamped to no earlier than the
          // send); wait_s is how long the receiver stood waiting for it.
          const sent = s.sent_ms ?? s.start_ms;
          const arrived = Math.max(sent, s.arrived_ms ?? s.end_ms);
          return {
            to: r.device,
            from: s.peer,
            value: s.label,
            request: r.request,
            bytes: s.bytes,
            start_s: sent / 1000,
            end_s: arrived / 1000,
            wait_s: (s.end_ms - s.start_ms) / 1000,
          };
        }),
    ),
    queue_waits: records.map((r) => ({ device: r.device, request: r.request, wait_s: r.done.wait_ms / 1000 })),
    expert_tokens: [] as { device: string; request: number; layer: number; expert: number; tokens: number }[],
  };
  const pid = new Map(devices.map((d, i) => [d, i]));
  const trace = [
    ...devices.map((d, i) => ({ name: 'process_name', ph: 'M', pid: i, tid: 0, args: { name: d } })),
    ...records.flatMap((r) =>
      r.done.steps
        .filter((s) => s.end_ms > s.start_ms)
        .map((s) => ({
          name: s.label,
          cat: s.op,
          ph: 'X',
          ts: s.start_ms * 1000,
          dur: (s.end_ms - s.start_ms) * 1000,
          pid: pid.get(r.device)!,
          tid: s.op === 'compute' ? 0 : 1,
          args: { request: r.request, bytes: s.bytes ?? null },
        })),
    ),
  ];
  // Expert token counts (routed MoE layers): the NonZero probes' counts, summed over requests,
  // written as hxc-routing/v1 so the next plan can take them with --routing.
  const probes = new Map((plan.expert_probes ?? []).map((p) => [p.value, p]));
  const counts = new Map<number, Map<number, number>>();
  for (const r of records) {
    for (const [name, dims] of Object.entries(r.done.probes ?? {})) {
      const p = probes.get(name);
      if (!p) continue;
      const layer = counts.get(p.layer) ?? new Map<number, number>();
      layer.set(p.expert, (layer.get(p.expert) ?? 0) + (dims[1] ?? 0));
      counts.set(p.layer, layer);
      telemetry.expert_tokens.push({ device: r.device, request: r.request, layer: p.layer, expert: p.expert, tokens: dims[1] ?? 0 });
    }
  }
  const partOf = new Map<string, { key: string; replica: number; device: string }>();
  for (const rs of plan.expert_replicas) rs.parts.forEach((p, j) => partOf.set(p, { key: rs.key, replica: j, device: rs.devices[j]! }));
  const replicaTokens: { key: string; replica: number; device: string; request: number; tokens: number }[] = [];
  for (const r of records)
    for (const [name, dims] of Object.entries(r.done.probes ?? {})) {
      const p = partOf.get(name);
      if (p) replicaTokens.push({ ...p, request: r.request, tokens: dims[0] ?? 0 });
    }
  (telemetry as { replica_tokens?: unknown }).replica_tokens = replicaTokens;
  // The queue depths each expert split was made from (the copy with the shortest queue takes the most rows).
  const keyOfInput = new Map(plan.expert_replicas.map((x) => [x.input, x.key]));
  (telemetry as { replica_dispatch?: unknown }).replica_dispatch = records.flatMap((r) =>
    (r.done.dispatch ?? []).map((x) => ({ key: keyOfInput.get(x.input) ?? x.input, request: r.request, queue_depths: x.depths })),
  );
  const outputs: OutputEntry[] = [
    { file: 'telemetry.json', text: JSON.stringify(telemetry, null, 1) + '\n' },
    { file: 'trace.json', text: JSON.stringify({ traceEvents: trace, displayTimeUnit: 'ms', otherData: { generator: 'hxc run' } }) + '\n' },
  ];
  let routingFile: string | null = null;
  if (counts.size > 0) {
    routingFile = path.join(runDir, 'expert_routing.json');
    const layers = [...counts.entries()]
      .sort(([a], [b]) => a - b)
      .map(([layer, m]) => {
        const experts = Math.max(...m.keys()) + 1;
        return { layer, tokens: Array.from({ length: experts }, (_, e) => m.get(e) ?? 0) };
      });
    outputs.push({
      file: 'expert_routing.json',
      text: checkedRoutingText(layers, { measured: true, source: 'hxc run', requests: results.length }, routingFile),
    });
  }
  // The whole run/ folder at once (temp + rename inside the plan directory; never through a symlink).
  writeOutputDir(runDir, outputs, 'hxc-run/v1');
  const telemetryFile = path.join(runDir, 'telemetry.json');
  const traceFile = path.join(runDir, 'trace.json');
  return {
    format: 'hxc-run/v1',
    plan: dir,
    devices,
    requests: results,
    latency_ms: { p50: percentile(lat, 0.5), p95: percentile(lat, 0.95), mean: totalLatency / Math.max(1, lat.length) },
    device_busy_share: share,
    measured_vs_estimated: measured,
    check,
    telemetry: telemetryFile,
    trace: traceFile,
    routing: routingFile,
  };
}
