// Turning parsed command-line options into PlanOptions, shared by the commands that run passes.

import { HxcError } from '../diag/diagnostics.js';
import type { PlanOptions } from '../pass/pass.js';
import { parseDims } from './dims.js';

export interface AnalysisFlags {
  topology?: string;
  dim?: string[];
  phase?: string;
  batch?: string;
  prompt?: string;
  context?: string;
  calibrate?: string;
  maxStages?: string;
  routing?: string;
  expertSlots?: string;
  objective?: string;
  solver?: string;
  timeLimit?: string;
  tensorParallel?: string;
  expertReplicas?: string;
  out?: string;
  assign?: string;
  minSequences?: string;
  pinExperts?: boolean;
  expertUnits?: string;
}

/** A budget given as a fraction (0.2) or a percentage (20%). */
export function fractionFlag(text: string, flag: string): number {
  const value = Number(text.replace(/%$/, '')) / (text.endsWith('%') ? 100 : 1);
  if (!(value >= 0)) throw new HxcError('HXC2002', `${flag} takes a fraction or a percentage, got "${text}"`, { where: flag });
  return value;
}

function positiveInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new HxcError('HXC2002', `${flag} takes a positive integer, got "${v}"`, { where: flag, hint: `e.g. ${flag} 8` });
  return Number(v);
}

export function planOptions(model: string, f: AnalysisFlags): PlanOptions {
  const flags: PlanOptions['flags'] = {};
  if (f.phase !== undefined) flags.phase = f.phase;
  const batch = positiveInt(f.batch, '--batch');
  if (batch !== undefined) flags.batch = batch;
  const prompt = positiveInt(f.prompt, '--prompt');
  if (prompt !== undefined) flags.prompt = prompt;
  const context = positiveInt(f.context, '--context');
  if (context !== undefined) flags.context = context;
  const maxStages = positiveInt(f.maxStages, '--max-stages');
  if (maxStages !== undefined) flags['max-stages'] = maxStages;
  if (f.calibrate !== undefined) flags.calibrate = f.calibrate;
  if (f.routing !== undefined) flags.routing = f.routing;
  if (f.expertSlots !== undefined) {
    if (!/^\d+$/.test(f.expertSlots)) throw new HxcError('HXC2002', `--expert-slots takes a non-negative integer, got "${f.expertSlots}"`, { where: '--expert-slots', hint: 'e.g. --expert-slots 8' });
    flags['expert-slots'] = Number(f.expertSlots);
  }
  if (f.objective !== undefined) flags.objective = f.objective;
  if (f.solver !== undefined) flags.solver = f.solver;
  if (f.out !== undefined) flags.out = f.out;
  if (f.tensorParallel !== undefined) flags['tensor-parallel'] = f.tensorParallel;
  if (f.expertReplicas !== undefined) flags['expert-replicas'] = Number(f.expertReplicas);
  if (f.assign !== undefined) flags.assign = f.assign;
  const minSequences = positiveInt(f.minSequences, '--min-sequences');
  if (minSequences !== undefined) flags['min-sequences'] = minSequences;
  if (f.pinExperts) flags['pin-experts'] = true;
  const expertUnits = positiveInt(f.expertUnits, '--expert-units');
  if (expertUnits !== undefined) flags['expert-units'] = expertUnits;
  if (f.timeLimit !== undefined) {
    const t = Number(f.timeLimit);
    if (!(t > 0 && t <= 86_400)) throw new HxcError('HXC2002', `--time-limit takes seconds from 0 to 86400, got "${f.timeLimit}"`, { where: '--time-limit', hint: 'e.g. --time-limit 10' });
    flags['time-limit'] = t;
  }
  return { model_path: model, topology_path: f.topology ?? null, dims: parseDims(f.dim), flags };
}
