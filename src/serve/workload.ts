// hxc-workload/v1: what a serving deployment is asked to carry — an arrival rate (or a sweep of
// them), prompt and output lengths (fixed, uniform, or samples), and the latency SLOs a request
// must meet to count toward goodput (DistServe's definition: time to first token and time per
// output token, each at the 90th percentile). YAML or JSON, aliases bounded like a rack file;
// schema: src/schema/hxc-workload.v1.schema.json. Lengths are drawn with a seeded generator, so a
// workload gives the same requests on every machine.

import fs from 'node:fs';
import { HxcError } from '../diag/diagnostics.js';
import { Reader, readYaml } from '../topology/yaml-source.js';
import { parseSeconds } from '../topology/units.js';
import type { Obj } from '../topology/load-limits.js';
import { mulberry32 } from '../util/stats.js';
import { readBounded } from '../util/read-file.js';

export const WORKLOAD_FORMAT = 'hxc-workload/v1';
/** A workload file larger than this is refused before it is parsed. */
const MAX_WORKLOAD_BYTES = 16 << 20;
/** Requests one simulation draws at the most (each is a few events). */
export const MAX_REQUESTS = 200_000;
/** Tokens a prompt or an output may have at the most (beyond any model's context). */
const MAX_TOKENS = 1 << 22;

export type Lengths = { fixed: number } | { uniform: [number, number] } | { samples: number[] };

export interface Workload {
  format: typeof WORKLOAD_FORMAT;
  /** The file it came from (as given), for the plan's record. */
  file: string;
  /** Arrival rates to plan and simulate at (one, or a sweep); Poisson arrivals. */
  rates_per_s: number[];
  prompt_tokens: Lengths;
  output_tokens: Lengths;
  slo: { ttft_p90_s: number; tpot_p90_s: number };
  /** Requests simulated per rate. */
  requests: number;
  seed: number;
}

/**
 * DESIGN.md §9 spells the fields `rate` (a number, or a list: a sweep), `prompt` and `output`;
 * hxc's own files name their units (`rate_per_s` / `rates_per_s`, `prompt_tokens`,
 * `output_tokens`). Either spelling is read, one per field.
 */
const DESIGN_NAMES: Record<'rate' | 'prompt' | 'output', string[]> = {
  rate: ['rate_per_s', 'rates_per_s'],
  prompt: ['prompt_tokens'],
  output: ['output_tokens'],
};

export function readWorkload(file: string): Workload {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new HxcError('HXC2001', 'workload file not found', { where: file, hint: 'give an hxc-workload/v1 YAML or JSON file' });
  }
  if (!st.isFile()) throw new HxcError('HXC2001', 'the workload is not a file', { where: file });
  if (st.size > MAX_WORKLOAD_BYTES)
    throw new HxcError('HXC2106', `the workload has ${st.size} bytes, more than the ${MAX_WORKLOAD_BYTES} hxc reads`, { where: file });
  return parseWorkload(readBounded(file, MAX_WORKLOAD_BYTES, 'the workload').toString('utf8'), file);
}

export function parseWorkload(text: string, file: string): Workload {
  const { data, src } = readYaml(text, file);
  const r = new Reader(src, 'see the hxc-workload/v1 schema (src/schema/hxc-workload.v1.schema.json)');
  const top = r.object(data, [], 'the workload');
  const known = new Set([
    'format',
    'rate_per_s',
    'rates_per_s',
    'prompt_tokens',
    'output_tokens',
    ...Object.keys(DESIGN_NAMES),
    'slo',
    'requests',
    'seed',
    'name',
    'description',
  ]);
  for (const k of Object.keys(top)) if (!known.has(k)) throw r.invalid([k], `unknown field "${k}"`, `the fields are ${[...known].join(', ')}`);
  if (top.format !== WORKLOAD_FORMAT) throw r.invalid(['format'], `format must be "${WORKLOAD_FORMAT}", found ${JSON.stringify(top.format ?? null)}`);
  // One spelling of each: DESIGN.md's (rate, prompt, output) or the unit-named one.
  for (const [design, named] of Object.entries(DESIGN_NAMES)) {
    const both = named.find((k) => top[k] !== undefined);
    if (top[design] !== undefined && both) throw r.invalid([design], `give ${design} or ${both}, not both (they are the same field)`);
  }
  const rate = (v: unknown, path: (string | number)[]): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1e6)
      throw r.invalid(path, `an arrival rate must be a number of requests per second in (0, 1e6], found ${JSON.stringify(v)}`);
    return v;
  };
  const sweep = (key: string): number[] => {
    const list = r.list(top[key], [key], key);
    if (list.length === 0 || list.length > 64) throw r.invalid([key], `${key} must hold 1 to 64 rates, found ${list.length}`);
    return list.map((v, i) => rate(v, [key, i]));
  };
  let rates: number[];
  if (top.rate !== undefined) {
    rates = Array.isArray(top.rate) ? sweep('rate') : [rate(top.rate, ['rate'])];
  } else if (top.rates_per_s !== undefined) {
    if (top.rate_per_s !== undefined) throw r.invalid(['rates_per_s'], 'give rate_per_s or rates_per_s, not both');
    rates = sweep('rates_per_s');
  } else {
    rates = [rate(r.required(top, 'rate_per_s', [], 'the workload', 'e.g. rate_per_s: 4'), ['rate_per_s'])];
  }
  const lengths = (named: 'prompt_tokens' | 'output_tokens', design: 'prompt' | 'output'): Lengths => {
    const key = top[design] !== undefined ? design : named;
    const o = r.object(r.required(top, key, [], 'the workload', `e.g. ${key}: {fixed: 512}`), [key], key);
    const kinds = Object.keys(o);
    if (kinds.length !== 1 || !['fixed', 'uniform', 'samples'].includes(kinds[0]!))
      throw r.invalid([key], `${key} takes exactly one of fixed, uniform or samples`, `e.g. ${key}: {uniform: [128, 1024]}`);
    const tokens = (v: unknown, path: (string | number)[]): number => {
      if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > MAX_TOKENS)
        throw r.invalid(path, `${key}: a token count must be an integer in [1, ${MAX_TOKENS}], found ${JSON.stringify(v)}`);
      return v as number;
    };
    if ('fixed' in o) return { fixed: tokens(o.fixed, [key, 'fixed']) };
    if ('uniform' in o) {
      const l = r.list(o.uniform, [key, 'uniform'], `${key}.uniform`);
      if (l.length !== 2) throw r.invalid([key, 'uniform'], `${key}.uniform is [low, high], found ${l.length} values`);
      const lo = tokens(l[0], [key, 'uniform', 0]);
      const hi = tokens(l[1], [key, 'uniform', 1]);
      if (hi < lo) throw r.invalid([key, 'uniform'], `${key}.uniform: high ${hi} is below low ${lo}`);
      return { uniform: [lo, hi] };
    }
    const l = r.list((o as Obj).samples, [key, 'samples'], `${key}.samples`);
    if (l.length === 0 || l.length > MAX_REQUESTS) throw r.invalid([key, 'samples'], `${key}.samples must hold 1 to ${MAX_REQUESTS} lengths`);
    return { samples: l.map((v, i) => tokens(v, [key, 'samples', i])) };
  };
  const slo = r.object(r.required(top, 'slo', [], 'the workload', 'e.g. slo: {ttft_p90: 500ms, tpot_p90: 50ms}'), ['slo'], 'slo');
  for (const k of Object.keys(slo))
    if (k !== 'ttft_p90' && k !== 'tpot_p90') throw r.invalid(['slo', k], `unknown SLO "${k}"`, 'the SLOs are ttft_p90 and tpot_p90');
  const seconds = (k: 'ttft_p90' | 'tpot_p90'): number => {
    const v = parseSeconds(r.required(slo, k, ['slo'], 'slo', `e.g. ${k}: 100ms`), r.at(['slo', k]));
    if (!(v > 0)) throw r.invalid(['slo', k], `${k} must be positive`);
    return v;
  };
  const count = (key: string, dflt: number, min: number, max: number): number => {
    const v = top[key];
    if (v === undefined) return dflt;
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max)
      throw r.invalid([key], `${key} must be an integer in [${min}, ${max}], found ${JSON.stringify(v)}`);
    return v as number;
  };
  return {
    format: WORKLOAD_FORMAT,
    file,
    rates_per_s: rates,
    prompt_tokens: lengths('prompt_tokens', 'prompt'),
    output_tokens: lengths('output_tokens', 'output'),
    slo: { ttft_p90_s: seconds('ttft_p90'), tpot_p90_s: seconds('tpot_p90') },
    requests: count('requests', 400, 1, MAX_REQUESTS),
    seed: count('seed', 1, 0, 2 ** 31 - 1),
  };
}

/** The mean of a length distribution (the length a phase is planned at). */
export function meanLength(l: Lengths): number {
  if ('fixed' in l) return l.fixed;
  if ('uniform' in l) return (l.uniform[0] + l.uniform[1]) / 2;
  return l.samples.reduce((a, b) => a + b, 0) / l.samples.length;
}

/**
 * The lengths a serving plan is planned at: the mean prompt and the mean output (at least a token
 * each), and the context they make (the prompt, then the output decoded after it).
 */
export function plannedLengths(w: Pick<Workload, 'prompt_tokens' | 'output_tokens'>): { prompt: number; output: number; context: number } {
  const prompt = Math.max(1, Math.round(meanLength(w.prompt_tokens)));
  const output = Math.max(1, Math.round(meanLength(w.output_tokens)));
  return { prompt, output, context: prompt + output };
}

export function drawLength(l: Lengths, u: () => number): number {
  if ('fixed' in l) return l.fixed;
  if ('uniform' in l) return l.uniform[0] + Math.floor(u() * (l.uniform[1] - l.uniform[0] + 1));
  return l.samples[Math.floor(u() * l.samples.length)]!;
}

export interface Request {
  arrival_s: number;
  prompt: number;
  output: number;
}

/** The requests at `rate`: Poisson arrivals (exponential gaps), lengths drawn independently, all from the workload's seed. */
export function drawRequests(w: Workload, rate: number): Request[] {
  const u = mulberry32(w.seed);
  const out: Request[] = [];
  let t = 0;
  for (let i = 0; i < w.requests; i++) {
    t += -Math.log(1 - u()) / rate;
    out.push({ arrival_s: t, prompt: drawLength(w.prompt_tokens, u), output: drawLength(w.output_tokens, u) });
  }
  return out;
}

/**
 * A workload's planned request reaches position prompt + output + 1 (its last token decoded): one
 * beyond the positions the model addresses is refused, said of the workload file — by hxc plan
 * --phase serve before it plans, and by hxc simulate --workload, in the same words.
 */
export function refuseTooLong(w: Pick<Workload, 'prompt_tokens' | 'output_tokens'>, positions: number | null, file: string): void {
  const { context } = plannedLengths(w);
  if (positions === null || !Number.isFinite(positions) || context + 1 <= positions) return;
  throw new HxcError(
    'HXC2002',
    `the workload's prompts and outputs: ${context} tokens reach position ${context + 1}, beyond the ${positions} positions the model addresses`,
    {
      where: file,
      hint: "shorten the workload's prompt or output lengths to what the model addresses",
    },
  );
}
