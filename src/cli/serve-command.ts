// `hxc plan MODEL --phase serve --workload W [--disaggregate auto|on|off]`: a serving plan — the
// prefill plan in the plan directory with plan.json's `serve` section, the decode plan in its
// `decode/` folder — and `hxc simulate PLAN --workload W`, which replays the serve section's
// service model on a workload (the same simulator the planner judged with: the plan's own workload
// gives the plan's goodput back).

import path from 'node:path';
import { HxcError } from '../diag/diagnostics.js';
import type { PlanOptions } from '../pass/pass.js';
import type { PlanServe, PlanV1 } from '../plan/format.js';
import { BATCH, CONTEXT, PHASE, PROMPT } from '../../passes/bind.js';
import { OUT } from '../../passes/lower.js';
import { planServe, reportingOnce, type ServeCandidate, type ServePlanning } from '../serve/plan.js';
import { DISAGGREGATE, WORKLOAD } from '../serve/options.js';
import { handoffTimes, simulateServe, type ServeResult } from '../serve/sim.js';
import { meanLength, readWorkload, refuseTooLong, type Workload } from '../serve/workload.js';
import { runPipeline } from './run-passes.js';
import { formatBytes, jsonText, table } from './output.js';
import { formatSeconds } from '../util/format.js';

export const DECODE_PLAN = 'decode';

const figures = (r: ServeResult): PlanServe['rates'][number] => ({
  rate_per_s: r.rate_per_s,
  goodput_per_s: r.goodput_per_s,
  slo_attainment: r.slo_attainment,
  ttft_p50_s: r.ttft_p50_s,
  ttft_p90_s: r.ttft_p90_s,
  tpot_p50_s: r.tpot_p50_s,
  tpot_p90_s: r.tpot_p90_s,
});

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
/**
 * A latency percentile over a rate sweep: the worst rate's. A mean of p90s is no rate's p90, and
 * a budget (`hxc check --max-ttft`) holds at every rate only when it holds at the worst.
 */
export const worstP90 = (xs: number[]): number => (xs.length === 0 ? 0 : Math.max(...xs));

export function serveSection(s: ServePlanning, outDir: string): PlanServe {
  const c = s.chosen;
  const w = s.workload;
  const m = c.model;
  const h = m.handoff;
  const bytes = h ? h.bytes_per_token * s.prompt : 0;
  const col = s.colocated;
  const why = c.disaggregated
    ? `disaggregated pools serve ${c.goodput_per_s.toPrecision(4)} requests/s within the SLOs (90% up to ${c.capacity_per_s.toPrecision(4)}/s)${col ? `, colocated ${col.goodput_per_s.toPrecision(4)} (90% up to ${col.capacity_per_s.toPrecision(4)}/s)` : ' (colocated does not fit)'}`
    : `colocated serves ${c.goodput_per_s.toPrecision(4)} requests/s within the SLOs (90% up to ${c.capacity_per_s.toPrecision(4)}/s); ${
        s.candidates.some((x) => x.disaggregated)
          ? `the best disaggregated pools (${bestDisaggregated(s)!.name}) ${bestDisaggregated(s)!.goodput_per_s.toPrecision(4)} (90% up to ${bestDisaggregated(s)!.capacity_per_s.toPrecision(4)}/s)`
          : s.mode === 'off'
            ? 'disaggregated pools were not weighed (--disaggregate off)'
            : 'no split of the rack into pools holds both phases'
      }`;
  return {
    workload: {
      file: path.relative(path.resolve(outDir), path.resolve(w.file)).split(path.sep).join('/'),
      rates_per_s: w.rates_per_s,
      prompt_tokens_mean: meanLength(w.prompt_tokens),
      output_tokens_mean: meanLength(w.output_tokens),
      slo: w.slo,
      requests: w.requests,
      seed: w.seed,
    },
    disaggregated: c.disaggregated,
    choice: c.name,
    why,
    pools: c.pools,
    replicas: { prefill: m.prefill.replicas, decode: m.decode.replicas },
    kv_handoff:
      h && c.route
        ? {
            bytes_per_token: h.bytes_per_token,
            prompt_tokens: s.prompt,
            bytes_per_request: bytes,
            from: c.handoff_pairs[0]?.from ?? c.prefill.kv_owner ?? c.prefill.used[0]!,
            to: c.handoff_pairs[0]?.to ?? c.decode.kv_owner ?? c.decode.used[0]!,
            route: c.route.links,
            hops: c.route.hops,
            seconds_per_request: handoffTimes(m, s.prompt, m.prefill.latency_s).busy,
            streamed_layers: h.layers,
            ...(c.handoff_pairs.length > 1
              ? { pairs: c.handoff_pairs.map((p) => ({ from: p.from, to: p.to, bytes_per_token: p.bytes_per_token, route: p.links })) }
              : {}),
          }
        : null,
    goodput_per_s: c.goodput_per_s,
    colocated_goodput_per_s: col ? col.goodput_per_s : null,
    capacity_per_s: c.capacity_per_s,
    ttft_p90_s: worstP90(c.results.map((r) => r.ttft_p90_s)),
    tpot_p90_s: worstP90(c.results.map((r) => r.tpot_p90_s)),
    slo_attainment: mean(c.results.map((r) => r.slo_attainment)),
    rates: c.results.map(figures),
    model: m,
    decode_plan: DECODE_PLAN,
    candidates: s.candidates.map((x) => ({
      name: x.name,
      disaggregated: x.disaggregated,
      pools: x.pools,
      replicas: { prefill: x.model.prefill.replicas, decode: x.model.decode.replicas },
      goodput_per_s: x.goodput_per_s,
      capacity_per_s: x.capacity_per_s,
      ttft_p90_s: worstP90(x.results.map((r) => r.ttft_p90_s)),
      tpot_p90_s: worstP90(x.results.map((r) => r.tpot_p90_s)),
    })),
  };
}

function bestDisaggregated(s: ServePlanning): ServeCandidate | null {
  let best: ServeCandidate | null = null;
  for (const c of s.candidates) if (c.disaggregated && (!best || c.goodput_per_s > best.goodput_per_s)) best = c;
  return best;
}

/** Plan, then lower the shipped prefill plan (with the serve section) and its decode plan beside it. */
/** Plans a serving plan and writes it: the prefill plan (with plan.json `serve`) in --out, the decode plan in its decode/ folder. */
export async function writeServePlan(
  options: PlanOptions,
): Promise<{ planning: ServePlanning; section: PlanServe; out: string; decodeDir: string; plan: PlanV1 }> {
  // (A workload too long for the model is refused by planServe before it plans, said of the workload file.)
  const planning = await reportingOnce(() => planServe(options));
  const out = (options.flags[OUT.name] as string | undefined) ?? 'hxc-plan';
  const section = serveSection(planning, out);
  const c = planning.chosen;
  const all = planning.topology.devices.length;
  const pool = (ids: string[]): string[] | undefined => (ids.length === all ? undefined : ids);
  const base = { ...options.flags };
  delete base[WORKLOAD.name];
  delete base[DISAGGREGATE.name];
  const phaseFlags = (phase: 'prefill' | 'decode', batch: number, dir: string): PlanOptions['flags'] => ({
    ...base,
    [PHASE.name]: phase,
    [PROMPT.name]: planning.prompt,
    [CONTEXT.name]: planning.context,
    [BATCH.name]: batch,
    [OUT.name]: dir,
  });
  const pre = await reportingOnce(() =>
    runPipeline({ ...options, flags: phaseFlags('prefill', 1, out), pool: pool(c.pools.prefill), default_phase: false, serve: section }, null),
  );
  const decodeDir = path.join(out, DECODE_PLAN);
  await reportingOnce(() =>
    runPipeline({ ...options, flags: phaseFlags('decode', c.model.decode.max_batch, decodeDir), pool: pool(c.pools.decode), default_phase: false }, null),
  );
  const plan = (pre.ctx.analyses.get('lower') as { plan: PlanV1 }).plan;
  return { planning, section, out, decodeDir, plan };
}

export async function servePlanCommand(options: PlanOptions, flags: { json?: boolean }): Promise<void> {
  const { planning, section, out, decodeDir, plan } = await writeServePlan(options);
  if (flags.json) {
    process.stdout.write(
      jsonText({
        format: 'hxc-plan-run/v1',
        model: path.basename(options.model_path),
        topology: planning.topology.name,
        manifest: path.join(out, 'plan.json'),
        decode_manifest: path.join(decodeDir, 'plan.json'),
        serve: section,
        estimate: plan.estimate,
      }),
    );
    return;
  }
  process.stdout.write(serveSummary(section, out, decodeDir));
}

export function serveSummary(s: PlanServe, out: string, decodeDir: string): string {
  const w = s.workload;
  // plan.json keeps the workload's path from the plan's folder; said here from where hxc runs.
  const shown = path.relative(process.cwd(), path.resolve(out, w.file)) || w.file;
  let text = `serving ${shown}: ${w.rates_per_s.join(', ')} requests/s, prompts of ${w.prompt_tokens_mean} tokens, outputs of ${w.output_tokens_mean}; SLOs TTFT p90 ${formatSeconds(w.slo.ttft_p90_s)}, TPOT p90 ${formatSeconds(w.slo.tpot_p90_s)}\n`;
  text += `plan written to ${path.join(out, 'plan.json')} (prefill) and ${path.join(decodeDir, 'plan.json')} (decode)\n\n`;
  text += table(
    ['candidate', 'prefill pool', 'decode pool', 'replicas', 'goodput /s', 'capacity /s', 'TTFT p90', 'TPOT p90'],
    s.candidates.map((c) => [
      `${c.name}${c.name === s.choice ? ' ←' : ''}`,
      c.disaggregated ? c.pools.prefill.join(',') : 'all',
      c.disaggregated ? c.pools.decode.join(',') : 'all',
      `${c.replicas.prefill}+${c.replicas.decode}`,
      c.goodput_per_s.toFixed(3),
      c.capacity_per_s.toFixed(2),
      formatSeconds(c.ttft_p90_s),
      formatSeconds(c.tpot_p90_s),
    ]),
    [3, 4, 5, 6, 7],
  );
  text += `\nshipped: ${s.choice} — ${s.why}\n`;
  if (s.kv_handoff) {
    const h = s.kv_handoff;
    const where =
      h.pairs && h.pairs.length > 1
        ? `${h.pairs.length} pairs of KV owners at once (slowest ${h.from} → ${h.to} over ${h.route.join(', ')})`
        : `${h.from} → ${h.to} over ${h.route.join(', ')}`;
    text += `KV handoff: ${formatBytes(h.bytes_per_request)} per request (${h.bytes_per_token} B/token × ${h.prompt_tokens} tokens) ${where}, ${formatSeconds(h.seconds_per_request)} on the links, streamed by ${h.streamed_layers} layer(s)\n`;
  }
  text += `decode batches up to ${s.model.decode.max_batch} sequences; SLO attainment ${(s.slo_attainment * 100).toFixed(1)}%\n`;
  return text;
}

/** `hxc simulate PLAN --workload W`: the serve section's model on a workload, per rate. */
export function simulateServeCommand(plan: PlanV1, workloadFile: string, json: boolean): void {
  if (!plan.serve)
    throw new HxcError('HXC2002', 'this plan is not a serving plan: --workload simulates requests on a plan made with --phase serve', {
      where: '--workload',
      hint: 'hxc plan MODEL --phase serve --workload W.yaml, then simulate that plan',
    });
  const w: Workload = readWorkload(workloadFile);
  // Sized as hxc plan --phase serve plans it, one position per token: a model without the positions cannot serve it.
  refuseTooLong(w, plan.max_positions, workloadFile);
  const results = w.rates_per_s.map((r) => simulateServe(plan.serve!.model, w, r));
  const goodput = mean(results.map((r) => r.goodput_per_s));
  const out = {
    format: 'hxc-serve-simulation/v1',
    disaggregated: plan.serve.disaggregated,
    goodput_per_s: goodput,
    ttft_p90_s: worstP90(results.map((r) => r.ttft_p90_s)),
    tpot_p90_s: worstP90(results.map((r) => r.tpot_p90_s)),
    slo_attainment: mean(results.map((r) => r.slo_attainment)),
    rates: results,
  };
  if (json) {
    process.stdout.write(jsonText(out));
    return;
  }
  let text = `${plan.serve.disaggregated ? 'disaggregated' : 'colocated'} serving, ${w.requests} requests per rate (seed ${w.seed}); SLOs TTFT p90 ${formatSeconds(w.slo.ttft_p90_s)}, TPOT p90 ${formatSeconds(w.slo.tpot_p90_s)}\n`;
  text += table(
    ['rate /s', 'goodput /s', 'in SLO', 'TTFT p50', 'TTFT p90', 'TPOT p50', 'TPOT p90', 'prefill util', 'decode util', 'KV occupancy'],
    results.map((r) => [
      String(r.rate_per_s),
      r.goodput_per_s.toFixed(3),
      `${(r.slo_attainment * 100).toFixed(1)}%`,
      formatSeconds(r.ttft_p50_s),
      formatSeconds(r.ttft_p90_s),
      formatSeconds(r.tpot_p50_s),
      formatSeconds(r.tpot_p90_s),
      `${(r.utilisation.prefill * 100).toFixed(1)}%`,
      `${(r.utilisation.decode * 100).toFixed(1)}%`,
      `${(r.kv_occupancy.mean * 100).toFixed(1)}% (peak ${(r.kv_occupancy.peak * 100).toFixed(0)}%)`,
    ]),
    [0, 1, 2, 3, 4, 5, 6, 7, 8],
  );
  process.stdout.write(text);
}
