// bind: the numeric values of symbolic dims for this run. `--dim name=value` wins; `--phase
// prefill|decode` binds an LLM's batch, sequence and past-sequence symbols, found from the
// KV-cache inputs' shapes: prefill is seq = --prompt, past = 0; decode is seq = 1, past = --context.

import { closeMatches } from '../src/topology/yaml-source.js';
import { choiceOption, intOption } from '../src/pass/options.js';
import type { Model } from '../src/ir/graph.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import { TRACE_THROUGH } from '../src/ir/ops.js';
import { HxcError } from '../src/diag/diagnostics.js';
import { DISAGGREGATE, WORKLOAD } from '../src/serve/options.js';
import { dimSymbols } from '../src/shapes/symbolic.js';

export type Phase = 'prefill' | 'decode';

export interface BindResult {
  dims: Record<string, number>;
  /** Where each binding came from: `--dim` or `--phase`. */
  source: Record<string, string>;
  phase: Phase | null;
  /** The LLM roles found for symbols (batch, seq, past, total), when there are KV inputs. */
  roles: { batch?: string; seq?: string; past?: string; total?: string };
}

export const DEFAULT_PROMPT = 512;
export const DEFAULT_CONTEXT = 2048;

const PAST_INPUT = /(^|[._/])(past|cache)([._/]|_key|_value|$)/i;

/** Find the symbols playing batch / seq / past roles from the inputs of a KV-cache LLM. */
export function llmRoles(model: Model): BindResult['roles'] {
  const roles: BindResult['roles'] = {};
  const sym = (d: unknown): string | undefined => (typeof d === 'string' && /^[A-Za-z_][\w.]*$/.test(d) ? d : undefined);
  // A graph's own state annotations name its cache: their inputs are past tensors whatever their
  // names, and the symbol their outputs grow by besides the past one is the sequence.
  const annotated = new Map<string, string>();
  for (const a of model.annotations.state) a.inputs.forEach((input, k) => annotated.set(input, a.outputs[k] ?? ''));
  const declared = (name: string) => model.graph.outputs.find((o) => o.name === name)?.type?.shape ?? model.graph.declared.get(name)?.shape ?? null;
  for (const v of model.graph.inputs) {
    const shape = v.type?.shape;
    if (!shape) continue;
    const present = annotated.get(v.name);
    if (present !== undefined && shape.length >= 2) {
      const past = shape.map(sym).find((s) => s !== undefined && /past|cache/i.test(s)) ?? sym(shape[shape.length - 2]);
      roles.batch ??= sym(shape[0]);
      roles.past ??= past;
      const grown = declared(present);
      const axis = past === undefined ? -1 : shape.indexOf(past);
      if (grown && axis >= 0 && typeof grown[axis] === 'string') roles.seq ??= dimSymbols(grown[axis] as string).find((s) => s !== past);
    }
    if (PAST_INPUT.test(v.name) && shape.length >= 3) {
      roles.batch ??= sym(shape[0]);
      // The growing axis holds the past-length symbol (dim 2 of [b, heads, past, head_dim]).
      roles.past ??= shape.map(sym).find((s) => s !== undefined && /past|cache/i.test(s)) ?? sym(shape[shape.length - 2]);
    }
    if (/input_ids|^ids$|tokens/i.test(v.name) && shape.length === 2) {
      roles.batch ??= sym(shape[0]);
      roles.seq ??= sym(shape[1]);
    }
  }
  for (const v of model.graph.inputs) {
    for (const d of v.type?.shape ?? []) {
      const s = sym(d);
      if (s && /total/i.test(s)) roles.total ??= s;
    }
  }
  return roles;
}

/**
 * Positions the model can address: the rows of a table gathered by the position ids — a learned
 * position embedding, or RoPE's cos/sin cache — followed through casts and reshapes. Infinity when
 * there is none (positions computed on the fly).
 */
export function positionLimit(model: Model): number {
  const g = model.graph;
  const ids = g.inputs.find((v) => /position/i.test(v.name));
  if (!ids) return Infinity;
  const constants = new Map<string, number[]>();
  // Counted loops over the nodes: run once, for-ofs here stayed unoptimised and made an iterator
  // result per node and scan (41–52 MB a run, sampled).
  for (let i = 0; i < g.nodes.length; i++) {
    const n = g.nodes[i]!;
    const a = n.op === 'Constant' ? n.attrs.value : undefined;
    if (a?.type === 'tensor' && n.outputs[0]) constants.set(n.outputs[0], a.value.dims);
  }
  const tableDims = (v: string): number[] | undefined => g.initializers.get(v)?.dims ?? constants.get(v);
  const VIEW = TRACE_THROUGH;
  let frontier = new Set([ids.name]);
  let limit = Infinity;
  for (let depth = 0; depth < 4 && frontier.size > 0; depth++) {
    const next = new Set<string>();
    for (let i = 0; i < g.nodes.length; i++) {
      const n = g.nodes[i]!;
      // (Not inputs.some(closure): a closure per node and scan was 44 MB a run, sampled.)
      let reads = false;
      for (let k = 0; k < n.inputs.length && !reads; k++) reads = frontier.has(n.inputs[k]!);
      if (!reads) continue;
      if (n.op === 'Gather' && frontier.has(n.inputs[1]!)) {
        const dims = tableDims(n.inputs[0]!);
        if (dims && dims.length >= 2) limit = Math.min(limit, dims[0]!);
      } else if (VIEW.has(n.op) && frontier.has(n.inputs[0]!)) next.add(n.outputs[0]!);
    }
    frontier = next;
  }
  return limit;
}

/** Decode's default context: leaves room for a few decode steps when the model's positions are few. */
export function defaultContext(model: Model): number {
  const positions = positionLimit(model);
  return Math.min(DEFAULT_CONTEXT, positions > 128 ? positions - 64 : positions - 1);
}

export const PHASE = choiceOption({
  name: 'phase',
  arg: '<phase>',
  choices: ['prefill', 'decode', 'serve'] as const,
  on: ['inspect', 'check'],
  help: 'LLM phase whose shapes to bind: prefill (seq = --prompt, past = 0) or decode (seq = 1, past = --context); serve (hxc plan and hxc check only, with a workload file): plan both, on device pools, for goodput',
});
export const BATCH = intOption({
  name: 'batch',
  arg: '<n>',
  min: 1,
  example: 8,
  on: ['inspect', 'check'],
  help: 'sequences per step for --phase and state sizing (default 1)',
});
export const PROMPT = intOption({
  name: 'prompt',
  arg: '<n>',
  min: 1,
  example: 512,
  on: ['inspect', 'check'],
  help: `prompt tokens for --phase prefill (default ${DEFAULT_PROMPT})`,
});
export const CONTEXT = intOption({
  name: 'context',
  arg: '<n>',
  min: 1,
  example: 2048,
  on: ['inspect', 'check'],
  help: `tokens held in the KV cache: decode past length and state sizing (default ${DEFAULT_CONTEXT}, fewer when the model's position table is smaller)`,
});

/**
 * The dims this run binds (the bind pass's analysis), from the options and the model alone: the
 * tp pass, which runs before bind, asks it whether the planned step starts with a past.
 */
export function bindDims(ctx: Pick<PassContext, 'model' | 'options' | 'option'>): BindResult {
  const dims: Record<string, number> = {};
  const source: Record<string, string> = {};
  const asked = ctx.option(PHASE) ?? null;
  if (asked === 'serve')
    throw new HxcError('HXC2002', '--phase serve plans both phases for a workload: only hxc plan takes it', {
      where: '--phase',
      hint: 'hxc plan MODEL --phase serve --workload W.yaml; here use --phase prefill or decode',
    });
  let phase: Phase | null = asked;
  const roles = llmRoles(ctx.model);
  // `hxc plan` on a KV-cache LLM with nothing bound plans its prefill: a plan needs numbers.
  if (!phase && ctx.options.default_phase === true && roles.seq && roles.past && !(roles.seq in ctx.options.dims) && !(roles.past in ctx.options.dims))
    phase = 'prefill';
  if (phase) {
    // Defaults never exceed the positions the model has (a learned position table's rows).
    const positions = positionLimit(ctx.model);
    const batch = ctx.option(BATCH) ?? 1;
    const seq = phase === 'prefill' ? (ctx.option(PROMPT) ?? Math.min(DEFAULT_PROMPT, positions)) : 1;
    const past = phase === 'prefill' ? 0 : (ctx.option(CONTEXT) ?? defaultContext(ctx.model));
    const set = (s: string | undefined, v: number): void => {
      if (s !== undefined) {
        dims[s] = v;
        source[s] = '--phase';
      }
    };
    // A position beyond the model's table has no embedding: the shapes (and the run) would be wrong.
    if (Number.isFinite(positions) && past + seq > positions) {
      const flag = phase === 'prefill' ? '--prompt' : '--context';
      throw new HxcError(
        'HXC2002',
        `${phase === 'prefill' ? seq : past} tokens reach position ${past + seq}, beyond the ${positions} positions the model addresses`,
        {
          where: flag,
          hint: `use at most ${phase === 'prefill' ? positions : positions - 1}`,
        },
      );
    }
    set(roles.batch, batch);
    set(roles.seq, seq);
    set(roles.past, past);
    set(roles.total, past + seq);
  }
  for (const [k, v] of Object.entries(ctx.options.dims)) {
    dims[k] = v;
    source[k] = '--dim';
  }
  return { dims, source, phase, roles };
}

export const bindPass: Pass<BindResult> = {
  name: 'bind',
  summary: 'bind symbolic dims: --dim, and --phase prefill|decode with --batch, --prompt, --context for KV-cache LLMs',
  requires: ['import'],
  options: [PHASE, BATCH, PROMPT, CONTEXT, WORKLOAD, DISAGGREGATE],
  run(ctx) {
    // A --dim naming nothing the model's inputs or outputs use binds nothing: a typo, said once.
    const named = new Set<string>();
    for (const v of [...ctx.model.graph.inputs, ...ctx.model.graph.outputs])
      for (const d of v.type?.shape ?? []) if (typeof d === 'string') for (const s of dimSymbols(d)) named.add(s);
    const unknown = Object.keys(ctx.options.dims).filter((k) => !named.has(k));
    if (unknown.length > 0) {
      // A slip of a name the model has is said with the name meant ("batchsize": batch_size).
      const meant = [...new Set(unknown.flatMap((k) => closeMatches(k, [...named].sort()).slice(0, 1)))];
      ctx.diagnostics.warn(
        'HXC1110',
        `--dim ${unknown.join(', ')}: the model's inputs and outputs have no dim of that name${meant.length > 0 ? ` (did you mean ${meant.join(', ')}?)` : named.size > 0 ? ` (theirs: ${[...named].sort().slice(0, 6).join(', ')}${named.size > 6 ? ', …' : ''})` : ''}`,
        {
          where: '--dim',
        },
      );
    }
    const bound = bindDims(ctx);
    // A phase asked of a model with no sequence or cache-length dim binds nothing: said, not dropped.
    if (ctx.option(PHASE) && !bound.roles.seq && !bound.roles.past)
      ctx.diagnostics.warn('HXC1110', `${ctx.option(PHASE)} binds nothing: the model has no sequence or past-length dim (it is not a KV-cache LLM)`, {
        where: '--phase',
        hint: 'drop --phase, and bind the dims the model has with --dim',
      });
    return bound;
  },
  statistics(r) {
    return { bound: Object.keys(r.dims).length, phase: r.phase ?? 'none' };
  },
  dump(r) {
    const lines = [
      `phase: ${r.phase ?? 'none'}`,
      `roles: ${
        Object.entries(r.roles)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ') || '(none)'
      }`,
    ];
    for (const k of Object.keys(r.dims).sort()) lines.push(`${k} = ${r.dims[k]} (${r.source[k]})`);
    return lines.join('\n') + '\n';
  },
};
