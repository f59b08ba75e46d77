// `hxc replan PLAN_DIR`: plan again from a running plan, counting what moving costs. The model,
// rack and options are the running plan's (plan.json records them); what changed comes in as
// flags — telemetry to refit the cost model (the calibration `plan --calibrate` does), measured
// routing, or another rack (a device gone: failover; devices added: scale-out). The partitioner
// starts from the running placement and ranks every candidate by its time per request plus the
// migration spread over `--amortize` requests (src/partition/migration.ts), within --max-moves and
// --migration-budget. The new directory is a full plan plus delta.json (hxc-delta/v1).

import fs from 'node:fs';
import path from 'node:path';
import { formatDiagnostic, HxcError } from '../diag/diagnostics.js';
import { report } from '../diag/diagnostics.js';
import { readPlan } from '../plan/read.js';
import { FILE_OPTIONS, lowerPass, OUT } from '../../passes/lower.js';
import { OBJECTIVE } from '../../passes/partition-options.js';
import { PHASE } from '../../passes/bind.js';
import { CALIBRATE } from '../../passes/profile.js';
import { ROUTING } from '../moe/routing.js';
import { parseOption } from '../pass/options.js';
import { parseBytes } from '../topology/units.js';
import { sha256 } from '../util/hash.js';
import { refuseHoldingInputs } from '../util/output.js';
import { defaultTopology, loadTopology } from '../topology/index.js';
import type { PlanOptions } from '../pass/pass.js';
import { formatBytes } from './output.js';
import { planWith, sec, type PlanFlags } from './plan.js';
import { fractionFlag } from './flags.js';

/** Requests a replan's migration is spread over when --amortize is not given. */
export const DEFAULT_AMORTIZE = 10_000;
/** A plan moving more units must be this much better per request (--min-gain). */
export const DEFAULT_MIN_GAIN = 0.01;

export interface ReplanFlags extends PlanFlags {
  topology?: string;
  telemetry?: string;
  routing?: string;
  model?: string;
  out?: string;
  objective?: string;
  maxMoves?: string;
  migrationBudget?: string;
  amortize?: string;
  minGain?: string;
}

function count(v: string | undefined, flag: string, min: number): number | null {
  if (v === undefined) return null;
  if (!/^\d+$/.test(v) || Number(v) < min)
    throw new HxcError('HXC2002', `${flag} takes an integer of at least ${min}, got "${v}"`, { where: flag, hint: `e.g. ${flag} ${Math.max(min, 8)}` });
  return Number(v);
}

/** The options that make a plan again from the running plan in `planDir`, with what changed (`flags`). */
export function replanOptions(planDir: string, flags: ReplanFlags): PlanOptions {
  const old = readPlan(planDir);
  // A serving plan is two plans on two pools of devices (prefill here, decode in its decode/): a
  // replan that knows neither pool would move units across them and drop the serving plan.
  if (old.serve)
    throw new HxcError('HXC2002', 'is a serving plan (prefill and decode pools): hxc replan replans one plan, not its pools', {
      where: planDir,
      hint: `plan it again with hxc plan --phase serve --workload ${path.relative(process.cwd(), path.resolve(planDir, old.serve.workload.file))}, or replan its decode plan (${path.join(planDir, old.serve.decode_plan)}) alone`,
    });
  const planText = fs.readFileSync(path.join(planDir, 'plan.json'));
  const recorded = old.options;
  if (!recorded) {
    throw new HxcError('HXC2003', 'plan.json does not record the options it was made with (an hxc before 0.x made it)', {
      where: path.join(planDir, 'plan.json'),
      hint: 'plan it again with hxc plan, then replan that plan',
    });
  }
  const fromPlan = (rel: string): string => path.resolve(planDir, rel);
  const model = flags.model ?? fromPlan(old.model.path_from_plan);
  if (!fs.existsSync(model)) {
    throw new HxcError('HXC2001', `the plan's model is not where it was (${model})`, { where: planDir, hint: 'give it with --model FILE' });
  }
  const oldTopology = old.topology.path_from_plan;
  let topology: string | null;
  if (flags.topology !== undefined) topology = flags.topology;
  else if (oldTopology === null) topology = null;
  else if (oldTopology === undefined)
    throw new HxcError('HXC2003', 'plan.json does not say which rack file it was made on', { where: planDir, hint: 'give it with --topology RACK.yaml' });
  else {
    topology = fromPlan(oldTopology);
    if (!fs.existsSync(topology))
      throw new HxcError('HXC2001', `the plan's rack file is not where it was (${topology})`, { where: planDir, hint: 'give it with --topology RACK.yaml' });
  }
  if (topology !== null && flags.topology === undefined && sha256(fs.readFileSync(topology)) !== old.topology.sha256) {
    report(
      `hxc: warning HXC1110: ${topology} changed since the plan was made; replanning on the rack as it is now (fix: pass --topology to say which rack you mean)`,
    );
  }
  // The running plan's options, its files found from its directory; what changed overrides them.
  const planFlags: PlanOptions['flags'] = {};
  for (const [k, v] of Object.entries(recorded.flags)) planFlags[k] = FILE_OPTIONS.includes(k) && typeof v === 'string' ? fromPlan(v) : v;
  if (old.phase) planFlags[PHASE.name] = parseOption(PHASE, old.phase);
  if (flags.objective !== undefined) planFlags[OBJECTIVE.name] = parseOption(OBJECTIVE, flags.objective);
  if (flags.routing !== undefined) planFlags[ROUTING.name] = parseOption(ROUTING, flags.routing);
  if (flags.telemetry !== undefined) planFlags[CALIBRATE.name] = parseOption(CALIBRATE, flags.telemetry);
  const out = flags.out ?? 'hxc-replan';
  planFlags[OUT.name] = out;
  if (path.resolve(out) === path.resolve(planDir)) {
    throw new HxcError('HXC2004', 'is the running plan; a replan is written beside it (the running plan and its run/ stay until you switch)', {
      where: '--out',
      hint: 'choose another folder, e.g. --out hxc-replan',
    });
  }
  // (A folder holding the running plan — a serving plan's, replanning its decode/ — is refused as well, before planning.)
  refuseHoldingInputs(out, [planDir]);
  const amortize = count(flags.amortize, '--amortize', 1) ?? DEFAULT_AMORTIZE;
  // A serving plan's phase plan (its decode/) keeps to the pool it was planned on: the devices of it
  // the rack, perhaps changed, still has (a device gone from the pool fails over within it).
  let pool: string[] | undefined;
  if (recorded.pool) {
    const have = new Set((topology !== null ? loadTopology(topology) : defaultTopology()).devices.map((d) => d.id));
    pool = recorded.pool.filter((id) => have.has(id));
    if (pool.length === 0)
      throw new HxcError('HXC2002', `the rack has none of the devices the plan was planned on (its pool: ${recorded.pool.join(', ')})`, {
        where: topology ?? 'the built-in rack',
        hint: 'give the rack the serving plan was made on, or plan it again with hxc plan --phase serve',
      });
  }
  const options: PlanOptions = {
    model_path: model,
    topology_path: topology,
    dims: recorded.dims,
    flags: planFlags,
    ...(pool ? { pool } : {}),
    replan: {
      assignment: old.assignment,
      amortize,
      start_s: Object.fromEntries(
        old.devices.flatMap((d) => d.steps.flatMap((st) => (st.op === 'compute' ? (st.nodes ?? []).map((n) => [n, st.start_s] as const) : []))),
      ),
      max_moves: count(flags.maxMoves, '--max-moves', 0),
      min_gain: flags.minGain === undefined ? DEFAULT_MIN_GAIN : fractionFlag(flags.minGain, '--min-gain'),
      migration_budget_bytes: flags.migrationBudget === undefined ? null : parseBytes(flags.migrationBudget, '--migration-budget'),
      origin: { dir: planDir, plan_sha256: sha256(planText), latency_s: old.estimate.latency_s, throughput_per_s: old.estimate.throughput_per_s },
      // The stage cut the running plan shipped on (when it weighed two): the replan plans on it alone.
      ...(old.estimate.stage_cuts ? { cut_stages: old.estimate.stage_cuts.find((c) => c.shipped)?.stages ?? null } : {}),
    },
  };
  return options;
}

export async function replanCommand(planDir: string, flags: ReplanFlags): Promise<void> {
  const options = replanOptions(planDir, flags);
  await planWith(options, flags, (run) => {
    // A replan of another model is allowed (the running plan's devices still price the moves), but
    // a model change keeps most node names: sharing fewer than half is said, once.
    const running = options.replan!.assignment;
    const nodes = run.ctx.model.graph.nodes;
    const both = nodes.reduce((n, node) => n + (Object.hasOwn(running, node.name) ? 1 : 0), 0);
    const was = Object.keys(running).length;
    if (both * 2 < Math.min(was, nodes.length))
      report(
        formatDiagnostic(
          'warning',
          'HXC1112',
          `the running plan assigns ${was} nodes and this model has ${nodes.length}, ${both} of them: a plan of another model? every unit the running plan lacks is placed as new`,
          { where: options.model_path, hint: 'replan the model the running plan was made for, or plan this one from scratch with hxc plan' },
        ),
      );
    const delta = run.ctx.has(lowerPass) ? run.ctx.get(lowerPass).delta : null;
    if (!delta) return { text: '', json: {} };
    const perRequest = (x: { latency_s: number; throughput_per_s: number }): string =>
      delta.objective === 'latency' ? sec(x.latency_s) : `${x.throughput_per_s.toFixed(2)}/s`;
    const forced = delta.forced_moves;
    let text = `\nreplan of ${planDir} (migration amortised over ${delta.amortize_requests} requests): ${delta.moves} unit${delta.moves === 1 ? '' : 's'} moved`;
    text += forced ? ` (${forced} because their device is gone or they are new)` : '';
    text += `, ${formatBytes(delta.migration_bytes)} over the routes in ${sec(delta.migration_s)}\n`;
    text += `  running plan now ${delta.running_now ? perRequest(delta.running_now) : '- (cannot run as it was)'} → new plan ${perRequest(delta.new)}`;
    if (delta.fresh) text += `; a plan from scratch: ${perRequest(delta.fresh)}, moving ${delta.fresh.moves} units (${formatBytes(delta.fresh.bytes)})`;
    text += `\n`;
    for (const m of delta.moved.slice(0, 8)) text += `  ${m.unit}: ${m.from ?? '(new)'} → ${m.to}, ${formatBytes(m.bytes)} — ${m.why}\n`;
    if (delta.moved.length > 8) text += `  … ${delta.moved.length - 8} more in delta.json\n`;
    if (!delta.within_limits) text += `  no plan within --max-moves/--migration-budget fits: shipped the best that does\n`;
    return { text, json: { delta } };
  });
}
