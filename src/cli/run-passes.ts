// Shared by commands that run (part of) the pipeline: build the context, resolve the pipeline,
// run it with the requested instrumentation, print warnings once.

import { PASSES } from '../../passes/index.js';
import { Context } from '../pass/context.js';
import { PassManager, resolvePipeline, type Instrumentation, type PassTiming, type ResolvedPipeline } from '../pass/manager.js';
import type { PlanOptions } from '../pass/pass.js';

export interface PipelineRun {
  ctx: Context;
  pipeline: ResolvedPipeline;
  timings: PassTiming[];
}

export const NO_INSTRUMENTATION: Instrumentation = {
  printBefore: new Set(), printAfter: new Set(), dumpDir: null, timePasses: false, write: () => {},
};

export async function runPipeline(options: PlanOptions, requested: string[] | null, instr: Instrumentation = NO_INSTRUMENTATION, strict = false): Promise<PipelineRun> {
  const pipeline = resolvePipeline(PASSES, requested, strict);
  const ctx = new Context(options);
  const manager = new PassManager(pipeline.passes, instr);
  try {
    const timings = await manager.run(ctx, (name, result) => ctx.store(name, result));
    return { ctx, pipeline, timings };
  } finally {
    for (const line of ctx.diagnostics.lines()) process.stderr.write(line + '\n');
  }
}
