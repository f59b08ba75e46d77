// `hxc simulate PLAN_DIR [--requests N]`: replay a plan's steps in the discrete-event simulator
// with link contention; print latency per request, throughput, utilisation and bytes per link;
// write a Chrome trace of the timeline.

import path from 'node:path';
import { HxcError } from '../diag/diagnostics.js';
import { simulate } from '../sim/simulate.js';
import { planSimInput } from '../sim/plan-input.js';
import { simulateServeCommand } from './serve-command.js';
import { readPlan } from '../plan/read.js';
import { jsonText, table } from './output.js';
import { heldByOutput, writeOutputDir, writeOutputFile } from '../util/output.js';

/** Step executions one `hxc simulate` may run (about a minute and a few GB at the most). */
export const MAX_SIMULATED_STEPS = 50_000_000;
/** Events the Chrome trace holds (about 100 MB of JSON): later requests are simulated, not traced. */
export const MAX_TRACE_EVENTS = 500_000;

export function simulateCommand(planDir: string, opts: { requests?: string; trace?: string; json?: boolean; workload?: string }): void {
  if (opts.workload !== undefined) {
    // The workload gives the requests, and a serving simulation writes no step trace: said, not dropped.
    const dropped = [opts.requests !== undefined ? '--requests' : null, opts.trace !== undefined ? '--trace' : null].filter((f) => f !== null);
    if (dropped.length > 0)
      throw new HxcError('HXC2002', `${dropped.join(' and ')} simulate a plan's steps; with --workload the requests are the workload's`, {
        where: dropped[0]!,
        hint: `drop ${dropped.join(' and ')}, or drop --workload`,
      });
    simulateServeCommand(readPlan(planDir), opts.workload, Boolean(opts.json));
    return;
  }
  const requests = Number(opts.requests ?? '1');
  if (!Number.isInteger(requests) || requests < 1)
    throw new HxcError('HXC2002', `--requests takes a positive integer, got "${opts.requests}"`, { where: '--requests' });
  const plan = readPlan(planDir);
  // Bounded before anything is allocated: requests × steps of work (and of memory for the event heap).
  const steps = plan.devices.reduce((s, d) => s + d.steps.length, 0);
  if (requests * Math.max(1, steps) > MAX_SIMULATED_STEPS) {
    throw new HxcError('HXC2002', `--requests ${requests} × ${steps} steps is more than hxc simulates (${MAX_SIMULATED_STEPS} step runs)`, {
      where: '--requests',
      hint: `use at most ${Math.max(1, Math.floor(MAX_SIMULATED_STEPS / Math.max(1, steps)))} requests`,
    });
  }
  const input = planSimInput(plan, requests);
  const eventsPerRequest = Math.max(1, steps);
  const traced = Math.min(requests, Math.max(1, Math.floor(MAX_TRACE_EVENTS / eventsPerRequest)));
  const r = simulate(input, { trace: true, traceRequests: traced });
  const traceText =
    JSON.stringify({ traceEvents: r.trace, displayTimeUnit: 'ns', otherData: { generator: 'hxc simulate', requests, traced_requests: traced } }) + '\n';
  const traceFile = opts.trace ?? path.join(planDir, 'sim', 'trace.json');
  // Inside the plan: the sim/ folder, whole (never through a symlink). A file the user named:
  // replaced only if hxc wrote it.
  // A file of an output (the plan's trace.json is its estimate) is not replaced by a simulation's.
  if (opts.trace !== undefined && heldByOutput(opts.trace))
    throw new HxcError('HXC2004', "is a file of an output hxc wrote (a plan's trace.json is its estimate); hxc simulate writes its trace beside it", {
      where: opts.trace,
      hint: 'give --trace a file outside that folder, or leave --trace out (PLAN/sim/trace.json)',
    });
  if (opts.trace === undefined) writeOutputDir(path.join(planDir, 'sim'), [{ file: 'trace.json', text: traceText }], 'hxc-sim/v1');
  else
    writeOutputFile(opts.trace, traceText, (old) =>
      /^hxc( |$)/.test(String((JSON.parse(old) as { otherData?: { generator?: unknown } }).otherData?.generator ?? '')),
    );
  const first = r.request_finish_s[0] ?? 0;
  // The plan's latency is one request's, alone: under load (every request arriving at once) the
  // first one may finish later, as a pipelined plan overlaps it with the next ones.
  const alone = requests === 1 ? first : simulate(planSimInput(plan, 1)).makespan_s;
  const finishes = r.request_finish_s;
  const out = {
    format: 'hxc-simulation/v1',
    requests,
    /** One request through the plan, alone (the plan's estimate.latency_s). */
    latency_s: alone,
    /** Under load: when each request finishes (all arrive at time 0), and the mean of those. */
    request_finish_s: finishes,
    mean_request_finish_s: finishes.length ? finishes.reduce((a, t) => a + t, 0) / finishes.length : 0,
    makespan_s: r.makespan_s,
    throughput_per_s: r.throughput_per_s,
    estimate_latency_s: plan.estimate.latency_s,
    agreement: plan.estimate.latency_s > 0 ? alone / plan.estimate.latency_s - 1 : 0,
    devices: r.devices,
    link_bytes: r.link_bytes,
    trace: traceFile,
    traced_requests: traced,
  };
  if (opts.json) {
    process.stdout.write(jsonText(out));
    return;
  }
  // One request is the plan's latency; several, its throughput over that many (a pipelined plan
  // delays the first request to overlap the next ones).
  const est = plan.estimate;
  const apart = (got: number, want: number): string => `${((want > 0 ? got / want - 1 : 0) * 100).toFixed(3)}% apart`;
  let text =
    requests === 1
      ? `simulated 1 request: latency ${(first * 1e3).toFixed(4)} ms (plan estimate ${(plan.estimate.latency_s * 1e3).toFixed(4)} ms, ${apart(first, plan.estimate.latency_s)}), makespan ${(r.makespan_s * 1e3).toFixed(4)} ms\n`
      : `simulated ${requests} requests: throughput ${r.throughput_per_s.toFixed(2)}/s${requests === est.throughput_requests && est.throughput_per_s ? ` (plan estimate ${est.throughput_per_s.toFixed(2)}/s, ${apart(r.throughput_per_s, est.throughput_per_s)})` : ''}, arriving at once: first done at ${(first * 1e3).toFixed(4)} ms, mean ${(out.mean_request_finish_s * 1e3).toFixed(4)} ms, makespan ${(r.makespan_s * 1e3).toFixed(4)} ms; one request alone ${(alone * 1e3).toFixed(4)} ms (plan estimate ${(est.latency_s * 1e3).toFixed(4)} ms, ${apart(alone, est.latency_s)})\n`;
  text += table(
    ['device', 'busy ms', 'idle ms', 'util'],
    r.devices.filter((d) => d.busy_s > 0).map((d) => [d.id, (d.busy_s * 1e3).toFixed(4), (d.idle_s * 1e3).toFixed(4), `${(d.utilisation * 100).toFixed(1)}%`]),
    [1, 2, 3],
  );
  const links = Object.entries(r.link_bytes).filter(([, b]) => b > 0);
  if (links.length)
    text += table(
      ['link', 'bytes per request'],
      links.map(([l, b]) => [l, String(b)]),
      [1],
    );
  text += `trace: ${traceFile}${traced < requests ? ` (the first ${traced} requests)` : ''}\n`;
  process.stdout.write(text);
}
