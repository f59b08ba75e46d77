// A pipeline variant planned on another core (src/cli/run-passes.ts): a huge graph's variant
// without tensor-parallel splits is planned to be weighed and let go, while the variant with them
// goes on in the main thread. The two share nothing but their inputs — the model file, the rack,
// the options — so each is what it would be planned alone, and the plan is the same byte for byte;
// what crosses back is the variant's figures and its partition's decision (plain data), which the
// main thread replays if this variant ships.

import { parentPort, workerData } from 'node:worker_threads';
import { HxcError } from '../diag/diagnostics.js';
import { PASSES } from '../../passes/index.js';
import { partitionPass, planScore } from '../../passes/partition.js';
import { Context } from '../pass/context.js';
import { NO_INSTRUMENTATION } from './run-passes.js';
import { PassManager, resolvePipeline } from '../pass/manager.js';
import type { PlanOptions } from '../pass/pass.js';
import { partitionDecision, type PartitionDecision } from '../partition/result.js';

export interface VariantJob {
  options: PlanOptions;
  /** The passes to run, by name (the planning passes through partition, which weighs the variant). */
  passes: string[];
}

export type VariantReply =
  | {
      ok: true;
      latency_s: number;
      throughput_per_s: number | null;
      score: number;
      eligible: boolean;
      decision: PartitionDecision | null;
      diagnostics: string[];
      ms: number;
    }
  | { ok: false; error: { code: string; message: string; where?: string; hint?: string } | null; message: string; diagnostics: string[] };

async function plan(job: VariantJob): Promise<VariantReply> {
  const ctx = new Context(job.options);
  const t0 = process.hrtime.bigint();
  try {
    const passes = resolvePipeline(PASSES, job.passes, false).passes;
    await new PassManager(passes, NO_INSTRUMENTATION).run(ctx, (name, result) => ctx.store(name, result));
    const part = ctx.get(partitionPass);
    return {
      ok: true,
      latency_s: part.verdict.latency_s,
      throughput_per_s: part.verdict.throughput_per_s,
      score: planScore(part),
      eligible: part.tp_eligible,
      decision: partitionDecision(part),
      diagnostics: ctx.diagnostics.lines(),
      ms: Number(process.hrtime.bigint() - t0) / 1e6,
    };
  } catch (err) {
    const e = err instanceof HxcError ? { code: err.code, message: err.message, where: err.where, hint: err.hint } : null;
    return { ok: false, error: e, message: err instanceof Error ? (err.stack ?? err.message) : String(err), diagnostics: ctx.diagnostics.lines() };
  }
}

if (parentPort) {
  const port = parentPort;
  plan(workerData as VariantJob).then((reply) => port.postMessage(reply));
}
