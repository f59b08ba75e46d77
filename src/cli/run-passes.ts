// Shared by commands that run (part of) the pipeline: build the context, resolve the pipeline,
// run it with the requested instrumentation, print warnings once.
//
// Tensor parallelism is a graph rewrite (the tp pass) whose worth shows only after partitioning,
// so under `--tensor-parallel auto` the pipeline runs as variants — without splits, with every
// split the tp pass proposes, and with only the splits that paid in the best plan of the second —
// each judged by the same simulator, and only the best is lowered. A plan with splits is eligible
// only when every split's parts run on different devices (passes/partition.ts).

import { PASSES } from '../../passes/index.js';
import type { PartitionResult } from '../../passes/partition.js';
import type { TpResult } from '../../passes/tp.js';
import { Context } from '../pass/context.js';
import { finishInstrumentation, PassManager, resolvePipeline, type Instrumentation, type PassRun, type PassTiming, type ResolvedPipeline } from '../pass/manager.js';
import type { Pass, PlanOptions } from '../pass/pass.js';

export interface PipelineRun {
  ctx: Context;
  pipeline: ResolvedPipeline;
  timings: PassTiming[];
}

export const NO_INSTRUMENTATION: Instrumentation = {
  printBefore: new Set(), printAfter: new Set(), dumpDir: null, timePasses: false, write: () => {},
};

interface Variant {
  name: string;
  ctx: Context;
  run: PassRun;
  /** IR printed while it ran, replayed only if it is shipped. */
  printed: string[];
  ms: number;
}

export async function runPipeline(options: PlanOptions, requested: string[] | null, instr: Instrumentation = NO_INSTRUMENTATION, strict = false): Promise<PipelineRun> {
  const pipeline = resolvePipeline(PASSES, requested, strict);
  const names = pipeline.passes.map((p) => p.name);
  const diagnostics: string[] = [];
  try {
    const tpFlag = options.flags['tensor-parallel'] ?? 'auto';
    if (!names.includes('tp') || !names.includes('partition') || tpFlag === 'off') {
      const ctx = new Context(options);
      try {
        const run = await new PassManager(pipeline.passes, instr).run(ctx, (name, result) => ctx.store(name, result));
        finishInstrumentation(instr, run);
        return { ctx, pipeline, timings: run.timings };
      } finally {
        diagnostics.push(...ctx.diagnostics.lines());
      }
    }
    return await runVariants(options, pipeline, instr, tpFlag === 'auto', diagnostics);
  } finally {
    instr.progress?.('');
    for (const line of [...new Set(diagnostics)]) process.stderr.write(line + '\n');
  }
}

async function runVariants(options: PlanOptions, pipeline: ResolvedPipeline, instr: Instrumentation, auto: boolean, diagnostics: string[]): Promise<PipelineRun> {
  const passes = pipeline.passes;
  const lowerAt = passes.findIndex((p) => p.name === 'lower');
  const planning = lowerAt >= 0 ? passes.slice(0, lowerAt) : passes;
  const tail = lowerAt >= 0 ? passes.slice(lowerAt) : [];
  const first = 'tensor parallel';
  const variant = async (name: string, opts: PlanOptions, list: readonly Pass<any, any>[]): Promise<Variant> => {
    const ctx = new Context(opts);
    const printed: string[] = [];
    const buffered: Instrumentation = { ...instr, timePasses: false, write: (t) => printed.push(t), progress: (t) => instr.progress?.(name === first ? t : `variant "${name}": ${t}`) };
    const t0 = process.hrtime.bigint();
    try {
      const run = await new PassManager(list, buffered).run(ctx, (n, result) => ctx.store(n, result), 0, passes.length);
      return { name, ctx, run, printed, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
    } finally {
      diagnostics.push(...ctx.diagnostics.lines());
    }
  };
  // With the splits the tp pass proposes; when it proposes none, this is the plain plan.
  const all = await variant(first, options, planning);
  const proposed = all.ctx.get<TpResult>('tp');
  const variants: Variant[] = [all];
  if (proposed.splits.length > 0) {
    if (auto) variants.unshift(await variant('no tensor parallelism', { ...options, flags: { ...options.flags, 'tensor-parallel': 'off' } }, planning));
    const paid = all.ctx.get<PartitionResult>('partition').tp_paid;
    if (paid.length > 0 && paid.length < proposed.splits.length) {
      variants.push(await variant('tensor parallel where it paid', { ...options, tp_targets: paid }, planning));
    }
  }
  // The best for the objective among those whose splits are all spread; ties go to the simpler.
  const usable = variants.filter((v) => v.ctx.get<PartitionResult>('partition').tp_eligible);
  const pool = usable.length > 0 ? usable : variants;
  const objective = pool[0]!.ctx.get<PartitionResult>('partition').objective;
  const score = (v: Variant): number => {
    const verdict = v.ctx.get<PartitionResult>('partition').verdict;
    return objective === 'latency' ? verdict.latency_s : -verdict.throughput_per_s;
  };
  let best = pool[0]!;
  for (const v of pool) if (score(v) < score(best) - Math.abs(score(best)) * 1e-12) best = v;
  // What tensor parallelism was weighed against: the shipped plan reports the TP baseline and the variants.
  const shipped = best.ctx.get<PartitionResult>('partition');
  shipped.baselines.tensor_parallel ??= all.ctx.get<PartitionResult>('partition').baselines.tensor_parallel;
  shipped.variants = variants.map((v) => {
    const part = v.ctx.get<PartitionResult>('partition');
    return { name: v.name, splits: v.ctx.get<TpResult>('tp').splits.length, latency_s: part.verdict.latency_s, throughput_per_s: part.verdict.throughput_per_s, eligible: part.tp_eligible, shipped: v === best };
  });
  for (const t of best.printed) instr.write(t);
  const rest = await new PassManager(tail, instr).run(best.ctx, (n, result) => best.ctx.store(n, result), planning.length);
  diagnostics.push(...best.ctx.diagnostics.lines());
  const run: PassRun = { timings: [...best.run.timings, ...rest.timings], dumps: [...best.run.dumps, ...rest.dumps] };
  finishInstrumentation(instr, run, variants.filter((v) => v !== best).map((v) => `${v.ms.toFixed(2).padStart(10)} ms          variant not shipped: ${v.name}`));
  return { ctx: best.ctx, pipeline, timings: run.timings };
}
