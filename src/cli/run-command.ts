// `hxc run PLAN_DIR [--inputs FILE] [--seed N] [--iterations N] [--check] [--decode-steps N] [--timeout S] [--json]`.

import { HxcError } from '../diag/diagnostics.js';
import { DEFAULT_TIMEOUT_S, runPlan, type RunOptions, type RunReport } from '../runtime/run.js';
import { decodePlanDir, runServe, type ServeRunReport } from '../runtime/serve-run.js';
import { readPlan } from '../plan/read.js';
import { readWorkersFile } from '../runtime/grpc/workers-file.js';
import { spawnWorkers, type Spawned } from '../runtime/grpc/spawn.js';
import { useTls } from '../runtime/grpc/client-common.js';
import { parseDims } from './dims.js';
import { jsonText, table } from './output.js';

export interface RunFlags {
  inputs?: string;
  seed: string;
  iterations: string;
  check?: boolean;
  decodeSteps?: string;
  model?: string;
  dim?: string[];
  timeout?: string;
  workers?: string;
  spawn?: boolean;
  json?: boolean;
}

function count(v: string | undefined, flag: string, min: number, max = 100_000): number {
  if (v === undefined) return min;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw new HxcError('HXC2002', `${flag} takes a whole number from ${min} to ${max}, got "${v}"`, { where: flag });
  return Number(v);
}

const ms = (x: number): string => x.toFixed(3);

export async function runCommand(planDir: string, f: RunFlags): Promise<void> {
  const opts: RunOptions = {
    plan_dir: planDir,
    inputs_file: f.inputs,
    // (Up to 2^31 − 1, as a workload's seed: mulberry32 takes 32 bits.)
    seed: count(f.seed, '--seed', 0, 2 ** 31 - 1),
    iterations: count(f.iterations, '--iterations', 1),
    check: Boolean(f.check),
    decode_steps: count(f.decodeSteps, '--decode-steps', 0),
    model_path: f.model,
    dims: parseDims(f.dim),
    timeout_s: f.timeout === undefined ? DEFAULT_TIMEOUT_S : count(f.timeout, '--timeout', 1, 86_400),
  };
  if (opts.iterations > 1 && opts.decode_steps > 0)
    throw new HxcError('HXC2002', '--iterations repeats one request; with --decode-steps a run is one prompt and its decode steps', {
      where: '--iterations',
      hint: 'give one of them: --iterations N for N requests alike, --decode-steps N for a prompt and N steps after it',
    });
  // A serving plan with decode steps: the prompt on the prefill pool, the steps on the decode pool.
  const plan = readPlan(planDir);
  if (f.workers && f.spawn) throw new HxcError('HXC2002', '--workers and --spawn both say where the devices run', { where: '--spawn', hint: 'give one' });
  // The devices that run: a serving plan's decode pool too.
  const serving = plan.serve !== undefined && opts.decode_steps > 0;
  const active = (p: typeof plan): string[] => p.devices.filter((d) => d.steps.length > 0).map((d) => d.id);
  const devices = [...new Set([...active(plan), ...(serving ? active(readPlan(decodePlanDir(planDir, plan))) : [])])];
  let spawned: Spawned | null = null;
  if (f.workers) {
    const rack = [...new Set([...plan.devices.map((d) => d.id), ...(plan.serve ? readPlan(decodePlanDir(planDir, plan)).devices.map((d) => d.id) : [])])];
    const w = readWorkersFile(f.workers, devices, rack);
    useTls(w.ca);
    opts.workers = { specs: w.workers, token: w.token };
  } else if (f.spawn) {
    spawned = await spawnWorkers(devices, opts.timeout_s ?? DEFAULT_TIMEOUT_S);
    opts.workers = { specs: spawned.workers, token: spawned.token };
  }
  let report: RunReport & Partial<Pick<ServeRunReport, 'serve'>>;
  try {
    report = serving ? await runServe(opts, plan) : await runPlan(opts);
  } finally {
    await spawned?.stop();
  }
  if (f.json) process.stdout.write(jsonText(report));
  else {
    let text = `ran ${report.requests.length} request(s) on ${report.devices.length} device(s): latency p50 ${ms(report.latency_ms.p50)} ms, p95 ${ms(report.latency_ms.p95)} ms\n`;
    text += table(
      ['device', 'busy share', 'measured busy ms', 'estimated busy ms', 'measured/estimated'],
      report.measured_vs_estimated.map((m) => [
        m.device,
        `${((report.device_busy_share[m.device] ?? 0) * 100).toFixed(1)}%`,
        ms(m.measured_busy_s * 1000),
        ms(m.estimated_busy_s * 1000),
        m.skew === null ? (m.measured_busy_s > 0 ? 'none estimated' : '-') : m.skew.toFixed(2),
      ]),
      [1, 2, 3, 4],
    );
    // What each row's median is over: the requests at its plan's dims, or (a serving run's decode
    // rows) steps at other dims than the decode plan's estimate, said as such.
    const rows = report.measured_vs_estimated;
    const atDims = rows.find((m) => m.at_plan_dims);
    if (atDims && atDims.requests < report.requests.length)
      text += `measured busy${rows.some((m) => !m.at_plan_dims) ? ' (prefill rows)' : ''}: the median over the ${atDims.requests} request(s) run at the plan's dims (the estimate is of those)\n`;
    const other = rows.find((m) => !m.at_plan_dims);
    if (other)
      text += `measured busy${atDims ? ' (decode rows)' : ''}: the median over the ${other.requests} step(s) run, none at the ${atDims ? 'decode ' : ''}plan's dims: the estimate is of other work, the ratio no drift\n`;
    if (report.check) {
      const rows = report.requests.flatMap((r) =>
        r.checks.map((c) => [
          `${r.kind} ${r.request}`,
          c.name,
          c.shape_matches ? 'yes' : 'NO',
          c.max_abs_error.toExponential(2),
          c.max_rel_error.toExponential(2),
        ]),
      );
      text += `\ncheck against the unsplit model (fails past ${report.check.tolerance_rel} of the output's scale + ${report.check.tolerance_abs}):\n`;
      text += table(['request', 'output', 'shape ok', 'max abs err', 'max rel err'], rows, [3, 4]);
      text += report.check.passed ? 'check passed\n' : 'check FAILED\n';
    }
    if (report.serve)
      text += `served: prefill on ${report.serve.prefill_devices.join(', ')}, KV cache (${report.serve.kv_handoff_bytes} bytes) handed to the decode pool, ${opts.decode_steps} decode step(s) on ${report.serve.decode_devices.join(', ')} (telemetry ${report.serve.decode_telemetry})\n`;
    text += `telemetry: ${report.telemetry}\ntrace: ${report.trace}\n`;
    if (report.routing) text += `measured expert routing: ${report.routing} (feed it back with hxc plan --routing)\n`;
    process.stdout.write(text);
  }
  if (report.check && !report.check.passed) {
    const w = report.check.worst;
    process.stderr.write(
      `hxc: error HXC3003: the plan's outputs differ from the unsplit model: ${w ? `${w.name} max relative error ${w.max_rel_error.toExponential(2)}${w.shape_matches ? '' : ' (shape differs)'}` : 'no outputs compared'} (fix: report this plan; run with --json for every output)\n`,
    );
    process.exitCode = 1;
  }
}
