// `hxc check PLAN_DIR|MODEL [budgets]`: the CI gate. Exit 1 when the plan breaks a budget
// (latency, memory per device, throughput, gap to the lower bound, KV sequences), 0 otherwise.
// Given a model instead of a plan directory, it plans first (same options as hxc plan).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HxcError } from '../diag/diagnostics.js';
import { readPlan } from '../plan/read.js';
import { parseBytes, parseSeconds } from '../topology/units.js';
import { planOptions, type AnalysisFlags } from './flags.js';
import { jsonText } from './output.js';
import { runPipeline } from './run-passes.js';

export interface CheckFlags extends AnalysisFlags {
  maxLatency?: string;
  maxMemory?: string;
  minThroughput?: string;
  maxGap?: string;
  minSequences?: string;
  json?: boolean;
}

interface Budget {
  name: string;
  limit: string;
  actual: string;
  ok: boolean;
}

export async function checkCommand(target: string, f: CheckFlags): Promise<void> {
  let dir = target;
  let scratch: string | null = null;
  if (!fs.existsSync(path.join(target, 'plan.json'))) {
    if (!fs.existsSync(target) || fs.statSync(target).isDirectory()) {
      throw new HxcError('HXC2001', 'neither a plan directory nor a model file', { where: target, hint: 'give a folder written by hxc plan, or a model' });
    }
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-check-'));
    const options = planOptions(target, f);
    options.flags.out = path.join(scratch, 'plan');
    try {
      await runPipeline(options, null);
    } catch (err) {
      fs.rmSync(scratch, { recursive: true, force: true });
      throw err;
    }
    dir = path.join(scratch, 'plan');
  }
  try {
    report(dir, f);
  } finally {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  }
}

function report(dir: string, f: CheckFlags): void {
  const plan = readPlan(dir);
  const e = plan.estimate;
  const budgets: Budget[] = [];
  if (f.maxLatency !== undefined) {
    const limit = parseSeconds(f.maxLatency, '--max-latency');
    budgets.push({ name: 'latency', limit: f.maxLatency, actual: `${(e.latency_s * 1e3).toFixed(4)}ms`, ok: e.latency_s <= limit });
  }
  if (f.minThroughput !== undefined) {
    const limit = Number(f.minThroughput);
    if (!(limit >= 0)) throw new HxcError('HXC2002', `--min-throughput takes requests per second, got "${f.minThroughput}"`, { where: '--min-throughput' });
    budgets.push({ name: 'throughput', limit: `${limit}/s`, actual: `${e.throughput_per_s.toFixed(3)}/s`, ok: e.throughput_per_s >= limit });
  }
  if (f.maxGap !== undefined) {
    const limit = Number(f.maxGap.replace(/%$/, '')) / (f.maxGap.endsWith('%') ? 100 : 1);
    if (!(limit >= 0)) throw new HxcError('HXC2002', `--max-gap takes a fraction or a percentage, got "${f.maxGap}"`, { where: '--max-gap' });
    budgets.push({ name: 'gap to lower bound', limit: f.maxGap, actual: e.gap === null ? '-' : `${(e.gap * 100).toFixed(2)}%`, ok: e.gap !== null && e.gap <= limit });
  }
  if (f.maxMemory !== undefined) {
    // An absolute size per device, or a share of each device's capacity (`90%`).
    const share = f.maxMemory.endsWith('%') ? Number(f.maxMemory.slice(0, -1)) / 100 : null;
    const bytes = share === null ? parseBytes(f.maxMemory, '--max-memory') : null;
    for (const d of plan.devices) {
      if (d.memory.total_bytes === 0) continue;
      const limit = share !== null ? d.memory.capacity_bytes * share : bytes!;
      budgets.push({ name: `memory ${d.id}`, limit: f.maxMemory, actual: `${d.memory.total_bytes}B (${((100 * d.memory.total_bytes) / d.memory.capacity_bytes).toFixed(1)}%)`, ok: d.memory.total_bytes <= limit });
    }
  }
  if (f.minSequences !== undefined) {
    const limit = Number(f.minSequences);
    const kv = e.kv as { sequences: number } | null;
    budgets.push({ name: 'KV sequences', limit: String(limit), actual: kv ? String(kv.sequences) : 'no KV state', ok: kv !== null && kv.sequences >= limit });
  }
  if (budgets.length === 0) throw new HxcError('HXC2002', 'no budget given', { hint: 'add --max-latency, --max-memory, --min-throughput, --max-gap or --min-sequences' });
  const broken = budgets.filter((b) => !b.ok);
  if (f.json) process.stdout.write(jsonText({ format: 'hxc-check/v1', passed: broken.length === 0, budgets }));
  else process.stdout.write(budgets.map((b) => `${b.ok ? 'ok  ' : 'FAIL'} ${b.name}: ${b.actual} (budget ${b.limit})`).join('\n') + '\n');
  if (broken.length > 0) {
    process.stderr.write(`hxc: error HXC3002: ${broken.length} budget(s) broken: ${broken.map((b) => `${b.name} ${b.actual} > ${b.limit}`).join('; ')} (fix: change the model, the topology or the budget)\n`);
    process.exitCode = 1;
  }
}
