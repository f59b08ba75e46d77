// `hxc check PLAN_DIR|MODEL [budgets]`: the CI gate. Exit 1 when the plan breaks a budget
// (latency, memory per device, throughput, gap to the lower bound, KV sequences), 0 otherwise.
// Given a model instead of a plan directory, it plans first (same options as hxc plan).

import { OUT } from '../../passes/lower.js';
import fs from 'node:fs';
import path from 'node:path';
import { HxcError } from '../diag/diagnostics.js';
import { readPlan, recordedPlanSha256 } from '../plan/read.js';
import type { PlanV1 } from '../plan/format.js';
import { MIN_SEQUENCES } from '../../passes/partition-options.js';
import { PHASE } from '../../passes/bind.js';
import { parseOption, readOption } from '../pass/options.js';
import { writeServePlan } from './serve-command.js';
import { readDrift } from '../plan/drift.js';
import { parseBytes, parseSeconds } from '../topology/units.js';
import { fractionFlag, planOptions, type AnalysisFlags } from './flags.js';
import { jsonText } from './output.js';
import { writeOutputFile } from '../util/output.js';
import { scratchDir } from '../util/temporaries.js';
import { runPipeline } from './run-passes.js';

export interface CheckFlags extends AnalysisFlags {
  maxLatency?: string;
  maxMemory?: string;
  minThroughput?: string;
  maxGap?: string;
  minSequences?: string;
  /** Serving plans: p90 time to first token and per output token under the workload. */
  maxTtft?: string;
  maxTpot?: string;
  json?: boolean;
  /** JUnit XML file: one testcase per budget (what CI systems show). */
  junit?: string;
  /** `github`: workflow annotations (`::error …::`) for broken budgets. */
  format?: string;
  /** Measured telemetry (hxc-telemetry/v1) to hold to --max-drift. */
  telemetry?: string;
  maxDrift?: string;
}

interface Budget {
  name: string;
  limit: string;
  actual: string;
  ok: boolean;
}

/** Budgets that are floors (--min-…): broken when the plan falls below them. */
const FLOORS = new Set(['throughput', 'throughput (serve capacity: 90% within the SLOs)', 'KV sequences', 'KV sequences (decode)']);

/**
 * `x` to `digits` significant digits, or to as many more as it takes for a budget it breaks to read
 * as broken (`breaks` of the printed figure): 0.19685710714 ms against --max-latency 0.196857ms
 * reads 0.1968571ms, not the budget's own figure. A budget met prints `digits`.
 */
function figure(x: number, digits: number, ok: boolean, breaks: (printed: number) => boolean): string {
  let p = digits;
  if (!ok) while (p < 17 && !breaks(Number(x.toPrecision(p)))) p++;
  return String(Number(x.toPrecision(p)));
}

/** A figure in milliseconds to 6 significant digits (more when a budget it breaks needs them to read as broken). */
const milliseconds = (s: number, limit_s: number): string =>
  // (The printed figure read back as a budget is read: ms / 1e3 in floating point can land past it.)
  `${figure(s * 1e3, 6, s <= limit_s, (ms) => parseSeconds(`${ms}ms`) > limit_s)}ms`;
/** A fraction as a percentage to 4 significant digits. */
const percent = (x: number): string => `${Number((x * 100).toPrecision(4))}%`;

/** How a broken budget reads: above its ceiling, below its floor. */
const brokenText = (b: Budget): string => `${b.name} ${b.actual} ${FLOORS.has(b.name) ? '<' : '>'} ${b.limit}`;

export async function checkCommand(target: string, f: CheckFlags): Promise<void> {
  if (f.format !== undefined && f.format !== 'text' && f.format !== 'github') {
    throw new HxcError('HXC2002', `--format takes text or github, got "${f.format}"`, { where: '--format' });
  }
  let dir = target;
  let scratch: string | null = null;
  if (!fs.existsSync(path.join(target, 'plan.json'))) {
    if (!fs.existsSync(target) || fs.statSync(target).isDirectory()) {
      throw new HxcError('HXC2001', 'neither a plan directory nor a model file', { where: target, hint: 'give a folder written by hxc plan, or a model' });
    }
    // Named for this process, not held (src/util/temporaries.ts): planning must stop at once on Ctrl-C.
    scratch = scratchDir('check');
    const options = planOptions(target, f, 'check');
    options.flags[OUT.name] = path.join(scratch, 'plan');
    // Planned as hxc plan plans it: an LLM given no --phase and no dims is planned for its prefill
    // (passes/bind.ts), and --min-sequences, an option of hxc plan as well, is asked of the planner
    // too (it raises the KV capacity as hxc plan would) besides being the budget.
    options.default_phase = true;
    if (f.minSequences !== undefined) options.flags[MIN_SEQUENCES.name] = parseOption(MIN_SEQUENCES, f.minSequences);
    try {
      if (readOption(options.flags, PHASE) === 'serve') await writeServePlan(options);
      else await runPipeline(options, null);
    } catch (err) {
      fs.rmSync(scratch, { recursive: true, force: true });
      throw err;
    }
    dir = path.join(scratch, 'plan');
  }
  try {
    report(dir, f, scratch ? target : path.join(dir, 'plan.json'), scratch ? null : dir);
  } finally {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** `planDir`: the plan checked, when it is the user's (hxc replan can start from it); null for a model planned here. */
function report(dir: string, f: CheckFlags, subject: string, planDir: string | null): void {
  const plan = readPlan(dir);
  const e = plan.estimate;
  // A serving plan is two plans: the prefill plan here (with plan.json `serve`) and the decode plan
  // in its decode/ folder. Its throughput is the serve capacity, its latency TTFT and TPOT; memory,
  // the gap and the KV cache are each plan's own.
  const serve = plan.serve ?? null;
  const phases: { label: string; plan: PlanV1 }[] = serve
    ? [
        { label: ' (prefill)', plan },
        { label: ' (decode)', plan: readPlan(path.join(dir, serve.decode_plan)) },
      ]
    : [{ label: '', plan }];
  const budgets: Budget[] = [];
  if (f.maxLatency !== undefined) {
    if (serve)
      throw new HxcError('HXC2002', "a serving plan's latency is its time to first token and time per output token", {
        where: '--max-latency',
        hint: 'use --max-ttft and --max-tpot (p90 under the workload)',
      });
    const limit = parseSeconds(f.maxLatency, '--max-latency');
    budgets.push({ name: 'latency', limit: f.maxLatency, actual: milliseconds(e.latency_s, limit), ok: e.latency_s <= limit });
  }
  for (const [flag, value, what, figure] of [
    ['--max-ttft', f.maxTtft, 'TTFT p90', serve?.ttft_p90_s],
    ['--max-tpot', f.maxTpot, 'TPOT p90', serve?.tpot_p90_s],
  ] as const) {
    if (value === undefined) continue;
    if (figure === undefined)
      throw new HxcError('HXC2002', `${flag} needs a serving plan (hxc plan --phase serve --workload W)`, { where: flag, hint: 'use --max-latency' });
    const limit = parseSeconds(value, flag);
    budgets.push({ name: what, limit: value, actual: milliseconds(figure, limit), ok: figure <= limit });
  }
  if (f.minThroughput !== undefined) {
    const limit = Number(f.minThroughput);
    if (!(limit >= 0 && Number.isFinite(limit)))
      throw new HxcError('HXC2002', `--min-throughput takes a finite number of requests per second, got "${f.minThroughput}"`, { where: '--min-throughput' });
    const [name, rate] = serve ? ['throughput (serve capacity: 90% within the SLOs)', serve.capacity_per_s] : ['throughput', e.throughput_per_s];
    const ok = rate >= limit;
    budgets.push({ name, limit: `${limit}/s`, actual: `${ok ? rate.toPrecision(7) : figure(rate, 7, ok, (r) => r < limit)}/s`, ok });
  }
  if (f.maxGap !== undefined) {
    const limit = fractionFlag(f.maxGap, '--max-gap');
    for (const ph of phases) {
      const gap = ph.plan.estimate.gap;
      budgets.push({
        name: `gap to lower bound${ph.label}`,
        limit: percent(limit),
        actual: gap === null ? '-' : percent(gap),
        ok: gap !== null && gap <= limit,
      });
    }
  }
  if (f.maxMemory !== undefined) {
    // An absolute size per device, or a share of each device's capacity (`90%`).
    const share = f.maxMemory.endsWith('%') ? Number(f.maxMemory.slice(0, -1)) / 100 : null;
    if (share !== null && !(share >= 0)) throw new HxcError('HXC2002', `--max-memory takes a size or a share, got "${f.maxMemory}"`, { where: '--max-memory' });
    if (share !== null && share > 1)
      throw new HxcError('HXC2002', `--max-memory ${f.maxMemory} is more than each device holds: every plan that fits meets it`, {
        where: '--max-memory',
        hint: "give a share of each device's capacity up to 100% (90%), or a size (70GiB)",
      });
    const bytes = share === null ? parseBytes(f.maxMemory, '--max-memory') : null;
    if (bytes !== null && /^\s*[\d.eE+-]+\s*$/.test(f.maxMemory) && !Number.isInteger(Number(f.maxMemory)))
      throw new HxcError('HXC2002', `--max-memory ${f.maxMemory} is not a whole number of bytes`, {
        where: '--max-memory',
        hint: "give a size (70GiB) or a share of each device's capacity (90%)",
      });
    for (const ph of phases)
      for (const d of ph.plan.devices) {
        if (d.memory.total_bytes === 0) continue;
        const limit = share !== null ? d.memory.capacity_bytes * share : bytes!;
        budgets.push({
          name: `memory ${d.id}${ph.label}`,
          limit: f.maxMemory,
          actual: `${d.memory.total_bytes}B (${percent(d.memory.total_bytes / d.memory.capacity_bytes)})`,
          ok: d.memory.total_bytes <= limit,
        });
      }
  }
  if (f.minSequences !== undefined) {
    const limit = parseOption(MIN_SEQUENCES, f.minSequences) as number;
    // The KV cache a serving plan holds is its decode plan's.
    const kv = phases[phases.length - 1]!.plan.estimate.kv;
    if (!kv)
      throw new HxcError('HXC2002', '--min-sequences holds a KV cache to a count: this plan has no KV state', {
        where: '--min-sequences',
        hint: 'drop --min-sequences, or check a plan of a model with a KV cache',
      });
    budgets.push({
      name: `KV sequences${serve ? ' (decode)' : ''}`,
      limit: String(limit),
      actual: String(kv.sequences),
      ok: kv.sequences >= limit,
    });
  }
  if ((f.telemetry === undefined) !== (f.maxDrift === undefined)) {
    throw new HxcError(
      'HXC2002',
      f.telemetry === undefined ? '--max-drift needs --telemetry FILE (what was measured)' : '--telemetry needs --max-drift (the budget, e.g. 20%)',
      { where: f.telemetry === undefined ? '--max-drift' : '--telemetry' },
    );
  }
  if (f.telemetry !== undefined && f.maxDrift !== undefined) {
    const limit = fractionFlag(f.maxDrift, '--max-drift');
    const drift = readDrift(f.telemetry, plan, recordedPlanSha256(dir));
    if (drift.devices.length === 0 && drift.routing.length === 0) {
      throw new HxcError('HXC2502', 'the telemetry has no step of a device this plan keeps busy, and no expert routing of its MoE layers', {
        where: f.telemetry,
        hint: 'give the telemetry of a run of this plan (hxc run PLAN_DIR)',
      });
    }
    const signed = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%` : 'busy where the plan estimated nothing');
    for (const d of drift.devices) {
      budgets.push({
        name: `drift ${d.device}`,
        limit: f.maxDrift,
        actual: `${signed(d.drift)} (measured ${(d.measured_s * 1e3).toFixed(4)}ms, estimated ${(d.estimated_s * 1e3).toFixed(4)}ms)`,
        ok: Math.abs(d.drift) <= limit,
      });
    }
    for (const r of drift.routing) {
      budgets.push({
        name: `routing drift layer ${r.layer}`,
        limit: f.maxDrift,
        actual: `${(r.distance * 100).toFixed(1)}% of tokens moved (worst expert ${r.worst.expert}: ${(r.worst.measured * 100).toFixed(1)}% measured, ${(r.worst.planned * 100).toFixed(1)}% planned)`,
        ok: r.distance <= limit,
      });
    }
  }
  if (budgets.length === 0)
    throw new HxcError('HXC2002', 'no budget given', {
      hint: 'add --max-latency (--max-ttft, --max-tpot for a serving plan), --max-memory, --min-throughput, --max-gap, --min-sequences or --telemetry with --max-drift',
    });
  const broken = budgets.filter((b) => !b.ok);
  if (f.junit) writeOutputFile(f.junit, junitXml(budgets, subject), (old) => old.includes('<testsuite name="hxc check"'));
  if (f.json) process.stdout.write(jsonText({ format: 'hxc-check/v1', passed: broken.length === 0, budgets }));
  else if (f.format === 'github') {
    // GitHub Actions workflow commands: one annotation per broken budget, on the plan (or model) file.
    for (const b of broken)
      process.stdout.write(
        `::error file=${annotation(subject, true)},title=${annotation(`hxc budget: ${b.name}`, true)}::${annotation(`${b.name} ${b.actual}, budget ${b.limit}`, false)}\n`,
      );
    if (broken.length === 0) process.stdout.write(`::notice title=hxc budgets::${budgets.length} budget(s) hold\n`);
  } else process.stdout.write(budgets.map((b) => `${b.ok ? 'ok  ' : 'FAIL'} ${b.name}: ${b.actual} (budget ${b.limit})`).join('\n') + '\n');
  if (broken.length > 0) {
    process.stderr.write(
      `hxc: error HXC3002: ${broken.length} budget(s) broken: ${broken.map(brokenText).join('; ')} (fix: ${broken.some((b) => b.name.includes('drift')) ? `replan from what was measured: ${planDir !== null && !serve ? `hxc replan ${planDir} --telemetry` : serve ? `hxc plan MODEL --phase serve --workload ${path.relative(process.cwd(), path.resolve(dir, serve.workload.file))} --calibrate` : 'hxc plan --calibrate'} ${f.telemetry ?? 'TELEMETRY'}${broken.some((b) => b.name.startsWith('routing')) ? ' --routing EXPERT_ROUTING.json' : ''}` : 'change the model, the topology or the budget'})\n`,
    );
    process.exitCode = 1;
  }
}

/** XML text with the five predefined entities escaped. */
function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** JUnit XML as CI systems read it (Jenkins, GitLab, GitHub test reporters): one testcase per budget. */
function junitXml(budgets: Budget[], subject: string): string {
  const failures = budgets.filter((b) => !b.ok).length;
  const cases = budgets.map((b) => {
    const head = `  <testcase classname="hxc.budget" name="${xml(b.name)}" file="${xml(subject)}">`;
    const body = b.ok
      ? `<system-out>${xml(`${b.actual} (budget ${b.limit})`)}</system-out>`
      : `<failure message="${xml(`${b.name} ${b.actual}, budget ${b.limit}`)}" type="budget">${xml(`${b.name}: ${b.actual} breaks the budget ${b.limit}`)}</failure>`;
    return `${head}${body}</testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="hxc check" tests="${budgets.length}" failures="${failures}" errors="0" skipped="0">\n${cases.join('\n')}\n</testsuite>\n`;
}

/** Workflow-command escaping (GitHub's toolkit: %, CR, LF always; also : and , in properties). */
function annotation(text: string, property: boolean): string {
  const t = text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  return property ? t.replace(/:/g, '%3A').replace(/,/g, '%2C') : t;
}
