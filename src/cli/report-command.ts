// `hxc report PLAN_DIR [--out FILE] [--compare OTHER_PLAN_DIR]`: one self-contained HTML page of a
// plan (rack, timeline, placement, why, compare), written beside nothing hxc did not write.

import path from 'node:path';
import { HxcError } from '../diag/diagnostics.js';
import { readPlan } from '../plan/read.js';
import type { PlanV1 } from '../plan/format.js';
import { buildReport, readDelta, type ReportInputs } from '../report/data.js';
import { reportHtml } from '../report/html.js';
import { defaultTopology } from '../topology/default.js';
import { loadTopology, type Topology } from '../topology/load.js';
import { HXC_REPORT, writeOutputFile } from '../util/output.js';

/** The rack the plan was made on, when its file is where plan.json says and unchanged (else plan.json's links alone). */
export function planRack(dir: string, plan: PlanV1): { topology: Topology | null; source: string } {
  const rel = plan.topology.path_from_plan;
  if (rel === null) {
    const t = defaultTopology();
    return t.source.sha256 === plan.topology.sha256 ? { topology: t, source: 'the built-in rack' } : { topology: null, source: 'plan.json only' };
  }
  if (rel === undefined) return { topology: null, source: 'plan.json only (it does not name its rack file)' };
  // Read once, size-bounded, by the topology reader; used only if it is the very rack planned on.
  let topology: Topology;
  try {
    topology = loadTopology(path.resolve(dir, rel));
  } catch {
    return { topology: null, source: `plan.json only (${rel} is not there or no longer a rack)` };
  }
  if (topology.source.sha256 !== plan.topology.sha256) return { topology: null, source: `plan.json only (${rel} changed since the plan)` };
  return { topology, source: rel };
}

/** A marker hxc's own report carries, so that only a report hxc wrote is replaced. */

export function reportInputs(dir: string, plan: PlanV1, compareDir?: string): ReportInputs {
  const rack = planRack(dir, plan);
  let delta = null;
  try {
    delta = readDelta(dir);
  } catch (err) {
    if (err instanceof HxcError) throw err; // checked and said (src/report/data.ts readDelta)
    throw new HxcError('HXC2201', `delta.json is not JSON: ${(err as Error).message}`, { where: path.join(dir, 'delta.json'), hint: 'replan again' });
  }
  return {
    dir,
    plan,
    topology: rack.topology,
    rackSource: rack.source,
    delta,
    compare: compareDir === undefined ? null : { dir: compareDir, plan: readPlan(compareDir) },
  };
}

export function reportCommand(planDir: string, opts: { out?: string; compare?: string; json?: boolean }): void {
  if (opts.out === '')
    throw new HxcError('HXC2002', 'the file name is empty', { where: '--out', hint: 'e.g. --out report.html, or leave --out out for PLAN_DIR/report.html' });
  const plan = readPlan(planDir);
  const out = opts.out ?? path.join(planDir, 'report.html');
  const html = reportHtml(buildReport(reportInputs(planDir, plan, opts.compare)));
  writeOutputFile(out, html, (old) => HXC_REPORT.test(old.slice(0, 4096)));
  if (opts.json) process.stdout.write(`${JSON.stringify({ format: 'hxc-report-written/v1', file: out, bytes: Buffer.byteLength(html) })}\n`);
  else process.stdout.write(`report written to ${out} (${(Buffer.byteLength(html) / 1024).toFixed(0)} KiB): open it in a browser\n`);
}
