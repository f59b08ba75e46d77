// The passes' options on the command line: commander options built from their declarations
// (src/pass/options.ts, each next to the pass that owns it), and what the user typed turned into
// PlanOptions — shared by the commands that run passes.

import { Option, type Command } from 'commander';
import { HxcError } from '../diag/diagnostics.js';
import { parseOption, type OptionSpec, type OptionValue } from '../pass/options.js';
import type { PlanOptions } from '../pass/pass.js';
import { PASSES } from '../../passes/index.js';
import { parseDims } from './dims.js';

/** What commander parsed for a command that runs passes: the rack, `--dim`, and the passes' options (camelCase keys). */
export interface AnalysisFlags {
  topology?: string;
  dim?: string[];
  [option: string]: unknown;
}

/** The pass options a command takes, each once, in pipeline order: `plan` all of them, the others those that say so. */
export function passOptions(command: 'plan' | 'inspect' | 'check'): OptionSpec[] {
  const seen = new Set<OptionSpec>();
  for (const p of PASSES) for (const o of p.options) if (command === 'plan' || o.on?.includes(command)) seen.add(o);
  return [...seen];
}

/** The commander attribute an option's value lands under (`--max-stages` → maxStages). */
const attribute = (name: string): string => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Add the pass options `command` takes to a commander command, from their declarations. */
export function addPassOptions(c: Command, command: 'plan' | 'inspect' | 'check'): Command {
  for (const o of passOptions(command)) {
    const opt = new Option(`${o.short ? `${o.short}, ` : ''}--${o.name}${o.arg ? ` ${o.arg}` : ''}`, o.help);
    c.addOption(o.kind === 'choice' ? opt.choices(o.choices) : opt);
  }
  return c;
}

/** A budget given as a fraction (0.2) or a percentage (20%). */
export function fractionFlag(text: string, flag: string): number {
  const value = Number(text.replace(/%$/, '')) / (text.endsWith('%') ? 100 : 1);
  if (!(value >= 0 && Number.isFinite(value))) throw new HxcError('HXC2002', `${flag} takes a finite fraction or percentage, got "${text}"`, { where: flag });
  return value;
}

/** PlanOptions from what commander parsed: every pass option given, parsed and validated by its declaration. */
export function planOptions(model: string, f: AnalysisFlags, command: 'plan' | 'inspect' | 'check' = 'plan'): PlanOptions {
  const flags: PlanOptions['flags'] = {};
  for (const o of passOptions(command)) {
    const raw = f[attribute(o.name)];
    if (raw !== undefined) flags[o.name] = parseOption(o, raw as OptionValue);
  }
  return { model_path: model, topology_path: f.topology ?? null, dims: parseDims(f.dim), flags };
}
