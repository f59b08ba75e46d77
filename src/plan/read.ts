// Reading a plan directory back (simulate, run, diff, check): the manifest must say hxc-plan/v1 and
// carry the fields the reader needs; a missing field is an error that names it.

import fs from 'node:fs';
import path from 'node:path';
import { HxcError } from '../diag/diagnostics.js';
import type { PlanManifest } from '../../passes/lower.js';

export function readPlan(dir: string): PlanManifest {
  const file = path.join(dir, 'plan.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new HxcError('HXC2001', 'no plan.json here', { where: dir, hint: 'give a folder written by `hxc plan --out DIR`' });
  }
  let plan: Record<string, unknown>;
  try {
    plan = JSON.parse(text);
  } catch (err) {
    throw new HxcError('HXC2201', `plan.json is not JSON: ${(err as Error).message}`, { where: file, hint: 'write the plan again with hxc plan' });
  }
  if (plan.format !== 'hxc-plan/v1') throw new HxcError('HXC2003', `plan.json has format ${JSON.stringify(plan.format)}, expected "hxc-plan/v1"`, { where: file });
  for (const field of ['devices', 'transfers', 'topology', 'estimate', 'assignment']) {
    if (plan[field] === undefined) throw new HxcError('HXC2003', `plan.json has no "${field}"`, { where: file, hint: 'write the plan again with hxc plan' });
  }
  return plan as unknown as PlanManifest;
}
