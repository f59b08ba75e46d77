// `hxc plan MODEL [--topology FILE]`: run the pipeline with its instrumentation, write the plan
// directory, and summarise: devices, what each runs, time, memory, gap to the lower bound.

import type { Considered } from '../partition/narrow.js';
import path from 'node:path';
import { DISAGGREGATE, WORKLOAD } from '../serve/options.js';
import { HxcError } from '../diag/diagnostics.js';
import { moePass, METHODS, type MoeResult, type PlanExpert } from '../../passes/moe.js';
import { PASSES } from '../../passes/index.js';
import { pipelineString, resolvePipeline, type Instrumentation } from '../pass/manager.js';
import { planOptions, type AnalysisFlags } from './flags.js';
import { formatBytes, jsonText, mergeRuns, namedFigures, nameList, table } from './output.js';
import { runPipeline, type PipelineRun } from './run-passes.js';
import type { PlanOptions } from '../pass/pass.js';
import type { PlanV1 } from '../plan/format.js';
import { lowerPass, OUT } from '../../passes/lower.js';
import { refuseUnwritable, replaceableOutput } from '../util/output.js';
import { formatSeconds } from '../util/format.js';
import { readOption } from '../pass/options.js';
import { PHASE } from '../../passes/bind.js';
import { servePlanCommand } from './serve-command.js';

export interface PlanFlags extends AnalysisFlags {
  passes?: string;
  strictPasses?: boolean;
  printBefore?: string;
  printAfter?: string;
  dumpDir?: string;
  timePasses?: boolean;
  json?: boolean;
}

function passSet(v: string | undefined, flag: string): Set<string> | 'all' {
  if (v === 'all') return 'all';
  const names = new Set(
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s),
  );
  for (const n of names) {
    if (!PASSES.some((p) => p.name === n))
      throw new HxcError('HXC2401', `unknown pass "${n}"`, { where: flag, hint: `choose from: all, ${PASSES.map((p) => p.name).join(', ')}` });
  }
  return names;
}

export const sec = formatSeconds;

/**
 * On a terminal, one status line on stderr that each pass overwrites ("hxc: moe (pass 11 of 14)",
 * with the variant being planned), and a long pass with where it is within itself ("hxc: partition
 * (pass 12 of 14): judging heft+relieve (candidate 9)"), erased when planning ends; nothing when
 * stderr is a file or a pipe, or with --json. Big models take a while: this says where.
 */
function progressLine(json: boolean): { progress?(text: string): void } {
  if (json || !process.stderr.isTTY || process.env.TERM === 'dumb') return {};
  let shown = false;
  return {
    progress: (text) => {
      if (!text && !shown) return;
      // Cut to the terminal's width: a line that wraps would leave its first rows behind.
      const line = `hxc: ${text}`;
      // (A terminal that does not say its width, 0 columns, is not cut.)
      const columns = process.stderr.columns ?? 0;
      const width = columns > 20 ? columns - 1 : Infinity;
      process.stderr.write(text ? `\r\x1b[2K${line.length > width ? `${line.slice(0, width - 1)}…` : line}` : '\r\x1b[2K');
      shown = Boolean(text);
    },
  };
}

/**
 * Where the plan and the pass dumps go, checked before planning: a folder hxc may not replace is
 * refused now, not after minutes of work, and dumps written into the plan's own folder (or it into
 * theirs) would replace it.
 */
function checkOutputs(out: string | null, dumps: string | null): void {
  if (out !== null && dumps !== null) {
    const [a, b] = [path.resolve(out), path.resolve(dumps)];
    if (a === b || a.startsWith(b + path.sep) || b.startsWith(a + path.sep))
      throw new HxcError('HXC2004', `--dump-dir and --out name the same folder, or one holds the other (${out})`, {
        where: '--dump-dir',
        hint: 'give the pass dumps a folder of their own',
      });
  }
  // Both before planning: a folder that cannot be written, or holds another kind of hxc's output,
  // is said now, not after the plan (the dumps are written after it).
  for (const [dir, kind] of [
    [dumps, 'hxc-dump/v1'],
    [out, 'hxc-plan/v1'],
  ] as const) {
    if (dir === null) continue;
    replaceableOutput(dir, kind);
    refuseUnwritable(dir);
  }
}

export async function planCommand(model: string, flags: PlanFlags): Promise<void> {
  await planWith(planOptions(model, flags), flags);
}

/**
 * Run the pipeline on `options` with the instrumentation `flags` ask for and print the summary;
 * `more` adds lines after it (hxc replan's migration), or fields to the JSON.
 */
export async function planWith(
  options: PlanOptions,
  flags: PlanFlags,
  more?: (run: PipelineRun) => { text: string; json: Record<string, unknown> },
): Promise<void> {
  // The serving planner's own options, given without it, would be dropped without a word.
  if (readOption(options.flags, PHASE) !== 'serve')
    for (const o of [WORKLOAD, DISAGGREGATE])
      if (readOption(options.flags, o) !== undefined)
        throw new HxcError('HXC2002', `--${o.name} is an option of --phase serve`, { where: `--${o.name}`, hint: `add --phase serve, or drop --${o.name}` });
  if (readOption(options.flags, PHASE) === 'serve') {
    if (flags.passes || flags.printBefore || flags.printAfter || flags.dumpDir)
      throw new HxcError('HXC2002', '--phase serve runs the whole pipeline for each pool it weighs', {
        where: '--phase',
        hint: 'drop --passes/--print-*/--dump-dir, or instrument one phase with --phase prefill|decode',
      });
    await servePlanCommand(options, flags);
    return;
  }
  const model = options.model_path;
  const status = progressLine(Boolean(flags.json));
  const instr: Instrumentation = {
    printBefore: passSet(flags.printBefore, '--print-before'),
    printAfter: passSet(flags.printAfter, '--print-after'),
    dumpDir: flags.dumpDir ?? null,
    timePasses: Boolean(flags.timePasses),
    write: (t) => {
      status.progress?.('');
      process.stderr.write(t);
    },
    ...status,
  };
  const requested = flags.passes
    ? flags.passes
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s)
    : null;
  if (requested?.length === 0)
    throw new HxcError('HXC2002', `--passes names no pass (${JSON.stringify(flags.passes)})`, {
      where: '--passes',
      hint: 'give pass names, e.g. --passes shapes,profile (hxc passes lists them)',
    });
  options.default_phase = true;
  const passes = resolvePipeline(PASSES, requested, Boolean(flags.strictPasses)).passes;
  options.pipeline = pipelineString(passes);
  checkOutputs(passes.some((p) => p.name === lowerPass.name) ? (readOption(options.flags, OUT) ?? 'hxc-plan') : null, flags.dumpDir ?? null);
  const run = await runPipeline(options, requested, instr, Boolean(flags.strictPasses));
  if (run.pipeline.pulled_in.length > 0) {
    process.stderr.write(`hxc: note: added prerequisite passes: ${run.pipeline.pulled_in.join(', ')}\n`);
  }
  const topo = run.ctx.topology();
  const pipeline = pipelineString(run.pipeline.passes);
  const lowered = run.ctx.has(lowerPass) ? run.ctx.get(lowerPass) : null;
  if (flags.json) {
    process.stdout.write(
      jsonText({
        format: 'hxc-plan-run/v1',
        model: path.basename(model),
        topology: topo.name,
        pipeline,
        manifest: lowered ? path.join(lowered.dir, 'plan.json') : null,
        report: lowered?.report ?? null,
        estimate: lowered ? lowered.plan.estimate : null,
        passes: run.timings.map((t) => ({ name: t.name, statistics: t.statistics })),
        moe: run.ctx.has(moePass) ? (run.ctx.get(moePass).plan?.summary ?? null) : null,
        ...(more?.(run).json ?? {}),
      }),
    );
    return;
  }
  const considered = (run.ctx as { considered?: Considered | null }).considered;
  let text = `model ${run.ctx.model.name} on topology ${topo.name} (${considered ? `${considered.devices} of ${considered.of_devices} devices: ${considered.reason}` : `${topo.devices.length} devices`})\npipeline: ${pipeline}\n`;
  if (!lowered) {
    for (const t of run.timings)
      text += `  ${t.name.padEnd(10)} ${Object.entries(t.statistics)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}\n`;
    process.stdout.write(text);
    return;
  }
  const plan = lowered.plan;
  const e = plan.estimate;
  const estimated = Object.keys(plan.estimated_dims).length;
  const bound =
    Object.entries(plan.dims)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ') + (estimated ? ` (+${estimated} data-dependent token counts at their expectation)` : '');
  text += `${plan.phase ? `phase ${plan.phase}, ` : ''}dims ${bound || '(none)'}; objective ${plan.objective}, solver ${plan.solver}${provenOptimal(plan) ? " (proven optimal by the exact MILP: its bound is the plan's latency)" : ''}; plan written to ${path.join(lowered.dir, 'plan.json')}${lowered.report ? `, report to ${lowered.report}` : ''}\n\n`;
  const rows = plan.devices
    .map((d) => {
      const computes = d.steps.filter((s) => s.op === 'compute');
      const nodes = computes.reduce((n, s) => n + (s.nodes?.length ?? 0), 0);
      const de = e.devices[d.id]!;
      return [
        d.id,
        d.kind ?? '',
        String(computes.length),
        String(nodes),
        sec(de.busy_s),
        `${(de.utilisation * 100).toFixed(1)}%`,
        formatBytes(d.memory.total_bytes),
        `${((100 * d.memory.total_bytes) / d.memory.capacity_bytes).toFixed(1)}%`,
      ];
    })
    .filter((r) => r[2] !== '0');
  // (On a pod, identical devices doing the same work are one row: cpu[2-26].)
  text += table(['device', 'kind', 'units', 'nodes', 'busy', 'util', 'memory', 'of capacity'], mergeRuns(rows), [2, 3, 4, 5, 6, 7]);
  const idle = plan.devices.length - rows.length;
  if (idle > 0) text += idle === 1 ? '(1 device runs nothing)\n' : `(${idle} devices run nothing)\n`;
  const thr = (x: number): string => `${x.toFixed(2)}/s`;
  text += `\nlatency ${sec(e.latency_s)} per request; throughput ${thr(e.throughput_per_s)} over ${e.throughput_requests} requests${e.pipelined ? ' (pipelined)' : ''} — simulated with link contention\n`;
  const gap = e.gap === null ? '-' : `${(e.gap * 100).toFixed(1)}%`;
  text +=
    plan.objective === 'latency'
      ? `lower bound ${sec(e.lower_bound_s)} (critical path ${sec(e.lower_bounds.critical_path_s)}, work/speed ${sec(e.lower_bounds.work_over_speed_s)}, memory spread ${sec(e.lower_bounds.memory_spread_s)}${e.lower_bounds.milp_s !== undefined ? `, MILP ${sec(e.lower_bounds.milp_s)}` : ''}); gap ${gap}\n`
      : `throughput bound ${thr(e.throughput_upper_per_s)} (busiest device at least ${sec(e.lower_bounds.memory_spread_s)} per request); gap ${gap}\n`;
  const b = e.baselines;
  const asked = e.kv?.asked ?? null;
  // A baseline that does not count for the objective says why (src/partition/pool.ts eligible): a faster one there is no plan to ship.
  const figure = (
    j: { latency_s: number; throughput_per_s: number | null; kv_sequences?: number; fits?: boolean; tp_spread?: boolean; copies_apart?: boolean } | null,
  ): string =>
    j === null
      ? '-'
      : `${plan.objective === 'latency' ? sec(j.latency_s) : j.throughput_per_s === null ? '-' : thr(j.throughput_per_s)}${j.fits === false ? ' (does not fit in memory)' : ''}${j.tp_spread === false ? ' (keeps a tensor-parallel split on one device)' : ''}${j.copies_apart === false ? ' (two copies of an expert on one device)' : ''}${asked !== null && (j.kv_sequences ?? Infinity) < asked ? ` (holds ${j.kv_sequences} sequences)` : ''}`;
  const named = [
    b.heft ? `HEFT ${figure(b.heft)}` : 'HEFT left a unit no device with room',
    b.single_device
      ? `all on ${b.single_device.name.replace(/^single:/, '')}${b.single_device.devices.length > 1 ? ' but the pinned units' : ''} ${figure(b.single_device)}`
      : 'no single device runs and holds it',
    b.fallback ? `${b.fallback.devices.join('+')} with fallbacks ${figure(b.fallback)}` : null,
    b.even_split ? `even split over ${b.even_split.devices.length} ${figure(b.even_split)}` : null,
    b.tensor_parallel ? `tensor parallel over ${b.tensor_parallel.devices.length} ${figure(b.tensor_parallel)}` : null,
    b.exact ? `exact MILP ${b.exact.status}` : null,
  ].filter((x) => x);
  text += `baselines (simulated alike): ${named.join(', ')}; shipped: ${e.chosen}\n`;
  text += `transfers: ${plan.transfers.length} (${formatBytes(plan.transfers.reduce((s, t) => s + t.bytes, 0))})`;
  const links = Object.entries(e.link_bytes)
    .filter(([, b]) => b > 0)
    .map(([l, b]) => [l, formatBytes(b)] as const);
  text += links.length ? `; per link: ${namedFigures(links)}\n` : '\n';
  if (e.kv) {
    text += `KV cache: ${e.kv.sequences} concurrent sequences of ${e.kv.context} tokens${e.kv.asked !== null ? ` (asked ${e.kv.asked})` : ''}\n`;
    if (e.kv.before && e.kv.after)
      text += `  raising it moved ${e.kv.moves} units: from ${e.kv.before.sequences} sequences at ${sec(e.kv.before.latency_s)} and ${thr(e.kv.before.throughput_per_s)} to ${e.kv.after.sequences} at ${sec(e.kv.after.latency_s)} and ${thr(e.kv.after.throughput_per_s)}\n`;
  }
  const moves = plan.state.flatMap((st) => st.moves);
  if (plan.state.length) {
    const owners = [...new Set(plan.state.flatMap((st) => (st.owners ? st.owners.map((o) => o.device) : st.owner ? [st.owner] : [])))].sort();
    text += `KV state held by ${nameList(owners)}${moves.length ? `; ${moves.length} readers away from the cache they read move ${formatBytes(moves.reduce((a, m) => a + m.bytes, 0))} per step` : '; every reader sits with the cache it reads'}\n`;
  }
  if (e.variants && e.variants.length > 1) {
    text += `variants weighed: ${e.variants.map((v) => `${v.name} (${v.splits} splits) ${figure(v)}${v.eligible ? '' : ' [a split kept on one device]'}${v.shipped ? ' ← shipped' : ''}`).join('; ')}\n`;
  }
  const tp = plan.tensor_parallel;
  if (tp && tp.splits.length > 0) {
    const where = (part: string): string => plan.assignment[part] ?? '?';
    // The group is what the tp pass proposed; the parts run where the partitioner put them.
    const partsOn = [...new Set(tp.splits.flatMap((s) => s.parts.map(where)))].sort();
    const elsewhere = partsOn.some((d) => !tp.group.includes(d));
    text += `tensor parallel (${tp.reason}${elsewhere ? `; parts placed on ${nameList(partsOn)}` : ''}): ${tp.splits.length} MatMul(s) split ${tp.k}-way — ${tp.splits
      .slice(0, 3)
      .map((s) => `${s.node} on ${s.parts.map(where).join('+')}`)
      .join('; ')}${tp.splits.length > 3 ? '; …' : ''}\n`;
    // Shipped only when no plan found that spreads every split fits (src/partition/pool.ts pick).
    const kept = tp.splits.filter((s) => new Set(s.parts.map(where)).size < 2).length;
    if (kept > 0)
      text += `  ${kept} of ${tp.splits.length} split(s) kept on one device: no plan found both spreads them all and fits (the best that fits ships)\n`;
    // Attention run as head shards: the pairs whose chain the tp pass sharded by heads.
    const byHeads = tp.splits.filter((s) => (s.attention?.length ?? 0) > 0).length;
    if (byHeads > 0)
      text += `attention by heads: ${byHeads} layer(s) in ${tp.k} head shards, ${tp.io?.length ? "each shard's KV cache a graph input and output of its own, kept on its device between steps" : 'the KV cache joined once at the end of the step'}\n`;
  }
  const reps = plan.expert_replicas;
  if (reps.length > 0) {
    text += `expert replicas (tokens split at run time by load): ${reps.map((r) => `${r.key} on ${r.devices.join('+')}`).join('; ')}\n`;
    // Copies count only on devices of their own (src/partition/pool.ts copiesApart): what that costs
    // against the best plan that fits with two on one device, when it costs.
    const shippedCandidate = e.candidates.find((c) => c.name === plan.estimate.chosen);
    const value = (c: { latency_s: number; throughput_per_s: number | null }): number =>
      plan.objective === 'latency' ? c.latency_s : 1 / Math.max(c.throughput_per_s ?? 0, 1e-300);
    const together = e.candidates
      .filter((c) => c.copies_apart === false && c.fits)
      .reduce<(typeof e.candidates)[number] | null>((a, c) => (!a || value(c) < value(a) ? c : a), null);
    // Shipped with copies together only when no plan that fits has them apart (src/partition/pool.ts pick).
    const shared = reps.filter((r) => new Set(r.devices).size < r.devices.length).length;
    if (shared > 0)
      text += `  ${shared} of ${reps.length} replicated expert(s) with two copies on one device: no plan found both keeps every copy on a device of its own and fits (the best that fits ships)\n`;
    else if (together && value(together) < value(shippedCandidate ?? e)) {
      const cost = value(shippedCandidate ?? e) / value(together) - 1;
      text += `  copies on devices of their own cost ${(cost * 100).toFixed(1)}% against the best plan with two on one device (${figure({ ...together, copies_apart: undefined })}): replication does not pay here\n`;
    }
  }
  const fallbacks = plan.explain.filter((x) => x.reason.startsWith('fallback'));
  if (fallbacks.length) text += fallbackLine(fallbacks);
  if (run.ctx.has(moePass)) text += moeSummary(run.ctx.get(moePass), plan.experts);
  if (more) text += more(run).text;
  process.stdout.write(text);
}

/**
 * MoE lines, from the shipped plan's `experts` (what runs where): experts and expected tokens per
 * device, the worst layer's token imbalance over its expert devices; then the moe pass's own
 * placement against round-robin and EPLB-style greedy — a hint the partitioner weighed, labelled so.
 */
function moeSummary(r: MoeResult, experts: PlanExpert[]): string {
  if (r.layers.length === 0 || experts.length === 0) return '';
  const l0 = r.layers[0]!;
  const perDevice = new Map<string, { experts: number; tokens: number }>();
  const byLayer = new Map<number, Map<string, number>>();
  // Every device a replica's nodes run on holds a share of the expert and sees all its tokens (a
  // body cut into pieces, or with tensor-parallel parts, spans several).
  for (const e of experts)
    for (const rep of e.replicas) {
      const spans = rep.devices.length > 0 ? rep.devices : [rep.device];
      for (const dev of spans) {
        const d = perDevice.get(dev) ?? perDevice.set(dev, { experts: 0, tokens: 0 }).get(dev)!;
        d.experts += 1 / (e.replicas.length * spans.length);
        d.tokens += rep.tokens;
        const m = byLayer.get(e.layer) ?? byLayer.set(e.layer, new Map()).get(e.layer)!;
        m.set(dev, (m.get(dev) ?? 0) + rep.tokens);
      }
    }
  let worst = 1;
  for (const m of byLayer.values()) {
    const loads = [...m.values()];
    const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
    if (mean > 0) worst = Math.max(worst, Math.max(...loads) / mean);
  }
  const devices = [...perDevice.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  let text = `MoE: ${r.layers.length} layers × ${l0.num_experts} experts (top-${l0.top_k}), routing ${r.routing.file ? `from ${path.basename(r.routing.file)}` : 'uniform (no --routing)'}; experts on ${devices.length} device${devices.length === 1 ? '' : 's'}\n`;
  text += `  per device (experts, a body spanning devices shared among them; expected tokens per step, all layers): ${namedFigures(devices.map(([d, x]) => [d, `${Number(x.experts.toFixed(2))} / ${Number(x.tokens.toFixed(1))}`] as const))}\n`;
  text += `  token imbalance max/mean over a layer's expert devices (worst layer): ${worst.toFixed(3)}\n`;
  const plan = r.plan;
  if (plan) {
    text += `  moe placer's own placement (a candidate, ${plan.slots} slots per layer on ${nameList(plan.devices)}): imbalance ${METHODS.map((m) => `${m} ${plan.summary[m].imbalance_max.toFixed(3)}`).join(', ')}; all-to-all per token ${METHODS.map((m) => `${m} ${formatBytes(Math.round(plan.summary[m].bytes_per_token))}`).join(', ')}\n`;
  }
  const via = [...new Set(experts.flatMap((e) => e.dispatch_via))].sort();
  if (via.length) text += `  dispatch/combine can run on ${nameList(via)} (IPU on the token routes, able to run the routing ops)\n`;
  return text;
}

/** Units placed where they are because other devices cannot run their ops: each one when few, else grouped by reason. */
export function fallbackLine(fallbacks: readonly { unit: string; device: string; reason: string }[]): string {
  if (fallbacks.length <= 6) return `fallbacks: ${fallbacks.map((f) => `${f.unit} → ${f.device} (${f.reason})`).join('; ')}\n`;
  const byReason = new Map<string, { units: number; first: string; devices: Set<string> }>();
  for (const f of fallbacks) {
    const g = byReason.get(f.reason) ?? { units: 0, first: `${f.unit} → ${f.device}`, devices: new Set<string>() };
    g.units++;
    g.devices.add(f.device);
    byReason.set(f.reason, g);
  }
  const groups = [...byReason].sort((a, b) => b[1].units - a[1].units || (a[0] < b[0] ? -1 : 1));
  return `fallbacks: ${fallbacks.length} units; ${groups
    .map(([reason, g]) => `${g.units} × ${reason.replace(/^fallback: /, '')} → ${[...g.devices].sort().join(', ')} (e.g. ${g.first})`)
    .join('; ')} — each in plan.json explain\n`;
}

/** A latency plan the exact MILP's bound meets (src/partition/bounds.ts withMilpBound): none of these units is faster. */
function provenOptimal(plan: PlanV1): boolean {
  const e = plan.estimate;
  return plan.objective === 'latency' && e.lower_bounds.milp_s !== undefined && e.gap !== null && e.gap <= 1e-9;
}
