// Shared by commands that run (part of) the pipeline: build the context, resolve the pipeline,
// run it with the requested instrumentation, print warnings once.
//
// Tensor parallelism is a graph rewrite (the tp pass) whose worth shows only after partitioning,
// so under `--tensor-parallel auto` the pipeline runs as variants — without splits, with every
// split the tp pass proposes, and with only the splits that paid in the best plan of the second —
// each judged by the same simulator, and only the best is lowered (the third is skipped on graphs
// of more than 100,000 nodes). A plan with splits is eligible only when every split's parts run on
// two devices or more (passes/partition.ts).

import { HxcError, report, type DiagCode } from '../diag/diagnostics.js';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { VariantJob, VariantReply } from './variant-worker.js';
import { PASSES } from '../../passes/index.js';
import { partitionPass, planScore } from '../../passes/partition.js';
import { partitionDecision, type PartitionDecision } from '../partition/result.js';
import { opNoDeviceRuns, weightsExceedRack } from '../partition/bounds.js';
import { Context } from '../pass/context.js';
import {
  finishInstrumentation,
  PassManager,
  resolvePipeline,
  type Instrumentation,
  type PassRun,
  type PassTiming,
  type ResolvedPipeline,
} from '../pass/manager.js';
import type { AnalysisHandoff, Pass, PlanOptions } from '../pass/pass.js';
import { HUGE_GRAPH_NODES, TENSOR_PARALLEL, tpPass } from '../../passes/tp.js';
import { importPass } from '../../passes/import.js';
import { verifyPass } from '../../passes/verify.js';
import type { VerifyResult } from '../ir/verify.js';
import { readOption } from '../pass/options.js';

export interface PipelineRun {
  ctx: Context;
  pipeline: ResolvedPipeline;
  timings: PassTiming[];
}

export const NO_INSTRUMENTATION: Instrumentation = {
  printBefore: new Set(),
  printAfter: new Set(),
  dumpDir: null,
  timePasses: false,
  write: () => {},
};

interface Variant {
  name: string;
  ctx: Context;
  run: PassRun;
  /** IR printed while it ran, replayed only if it is shipped. */
  printed: string[];
  ms: number;
}

export async function runPipeline(
  options: PlanOptions,
  requested: string[] | null,
  instr: Instrumentation = NO_INSTRUMENTATION,
  strict = false,
): Promise<PipelineRun> {
  const pipeline = resolvePipeline(PASSES, requested, strict);
  const names = pipeline.passes.map((p) => p.name);
  const diagnostics: string[] = [];
  try {
    const tpFlag = readOption(options.flags, TENSOR_PARALLEL) ?? 'auto';
    if (!names.includes('tp') || !names.includes('partition') || tpFlag === 'off') {
      const ctx = new Context(options);
      try {
        const run = await new PassManager(pipeline.passes, instr).run(ctx, storing(ctx, names));
        finishInstrumentation(instr, run);
        return { ctx, pipeline, timings: run.timings };
      } finally {
        diagnostics.push(...ctx.diagnostics.lines());
      }
    }
    return await runVariants(options, pipeline, instr, tpFlag === 'auto', diagnostics);
  } finally {
    instr.progress?.('');
    for (const line of [...new Set(diagnostics)]) report(line);
  }
}

/**
 * Stores a pass's result; once the graph is verified, when the pipeline places it, says at once if
 * the rack cannot hold its weights at all (src/partition/bounds.ts weightsExceedRack) rather than
 * after the analysis and the search. (After verify, not the import: a malformed graph is bad input,
 * said first; the tp and replicate rewrites before it never lower the weights' bytes.)
 */
function storing(ctx: Context, names: readonly string[]): (name: string, result: unknown) => void {
  return (name, result) => {
    ctx.store(name, result);
    if (name !== verifyPass.name || !names.includes(partitionPass.name)) return;
    const index = (result as VerifyResult).index;
    const unrunnable = opNoDeviceRuns(index.graph, ctx.topology());
    if (unrunnable) throw unrunnable;
    const tooBig = weightsExceedRack(index, ctx.topology());
    if (tooBig) throw tooBig;
  };
}

/** Cores from which a huge graph's variants are planned at once (a worker thread each). */
const VARIANT_THREAD_CORES = 4;

/**
 * A variant whose polish was left (PlanOptions.defer_polish) is planned again with it when it trails
 * the leader by less than this fraction: on the DeepSeek-V3 shape the judged polish wins back 0.03%
 * (decode, the variant that shipped) or nothing; variants differ by 0.1–15%.
 */
const DEFERRED_POLISH_MARGIN = 0.01;

/** Above this many nodes, the tensor-parallel variants are "every split" and "none" only. */
const PAID_VARIANT_MAX_NODES = HUGE_GRAPH_NODES;

async function runVariants(
  options: PlanOptions,
  pipeline: ResolvedPipeline,
  instr: Instrumentation,
  auto: boolean,
  diagnostics: string[],
): Promise<PipelineRun> {
  const passes = pipeline.passes;
  const lowerAt = passes.findIndex((p) => p.name === 'lower');
  const planning = lowerAt >= 0 ? passes.slice(0, lowerAt) : passes;
  const tail = lowerAt >= 0 ? passes.slice(lowerAt) : [];
  const first = 'tensor parallel';
  /** Every variant's planning, the replanned one's too (the table's total covers the shipped variant only). */
  let plannedMs = 0;
  /** Plans a variant through `list`; with `from`, goes on with that variant's context where it stopped. */
  const variant = async (name: string, opts: PlanOptions, list: readonly Pass<any, any>[], from?: Variant): Promise<Variant> => {
    const ctx = from?.ctx ?? new Context(opts);
    const printed: string[] = from?.printed ?? [];
    const buffered: Instrumentation = {
      ...instr,
      timePasses: false,
      write: (t) => printed.push(t),
      progress: (t) => instr.progress?.(name === first ? t : `variant "${name}": ${t}`),
    };
    const t0 = process.hrtime.bigint();
    try {
      const done = from?.run.timings.length ?? 0;
      const more = await new PassManager(list, buffered, passes).run(
        ctx,
        storing(
          ctx,
          pipeline.passes.map((p) => p.name),
        ),
        done,
        passes.length,
      );
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      plannedMs += ms;
      const run: PassRun = from ? { timings: [...from.run.timings, ...more.timings], dumps: [...from.run.dumps, ...more.dumps] } : more;
      return { name, ctx, run, printed, ms: (from?.ms ?? 0) + ms };
    } finally {
      diagnostics.push(...ctx.diagnostics.lines());
    }
  };
  // With the splits the tp pass proposes; when it proposes none, this is the plain plan.
  // Variants are weighed as they finish and a loser's context is let go at once (each holds the
  // whole analysed graph: three of a 275k-node model did not fit in 2 GB).
  interface Weighed {
    name: string;
    order: number;
    splits: number;
    latency_s: number;
    throughput_per_s: number | null;
    score: number;
    eligible: boolean;
    ms: number;
    variant: Variant | null;
  }
  const weighed: Weighed[] = [];
  // The best for the objective among those whose splits are all spread (if any are); ties go to the simpler.
  const beats = (a: Weighed, b: Weighed): boolean => {
    if (a.eligible !== b.eligible) return a.eligible;
    const d = a.score - b.score;
    return d < -Math.abs(b.score) * 1e-12 || (Math.abs(d) <= Math.abs(b.score) * 1e-12 && a.order < b.order);
  };
  let best: Weighed | null = null;
  const weigh = (v: Variant, order: number): Weighed => {
    const part = v.ctx.get(partitionPass);
    return admit({
      name: v.name,
      order,
      splits: v.ctx.get(tpPass).splits.length,
      latency_s: part.verdict.latency_s,
      throughput_per_s: part.verdict.throughput_per_s,
      score: planScore(part),
      eligible: part.tp_eligible,
      ms: v.ms,
      variant: v,
    });
  };
  const admit = (w: Weighed): Weighed => {
    weighed.push(w);
    if (!best || beats(w, best)) {
      if (best) best.variant = null;
      best = w;
    } else {
      w.variant = null;
    }
    return w;
  };
  // The tensor-parallel variant first runs up to its rewrite: what it proposes and the graph's size
  // decide how the variants are planned.
  const tpAt = planning.findIndex((p) => p.name === 'tp');
  // A variant without splits planned in turn before the rest of this one leaves it its per-node
  // results (PlanOptions.leave_analyses): on the DeepSeek-V3 shape all but the few thousand nodes
  // the rewrite made or changed are the same.
  const handoff: AnalysisHandoff = { shapes: null, profile: null };
  let all: Variant | null = await variant(first, { ...options, reuse_analyses: handoff }, planning.slice(0, tpAt + 1));
  // MatMuls split (a row-parallel pair covers its column MatMuls and its row one), the unit tp_paid counts in.
  const proposedSplits = all.ctx.get(tpPass).splits.reduce((n, s) => n + (s.covers?.length ?? 1), 0);
  const nodes = all.ctx.model.graph.nodes.length;
  // The next variants read the same file: they take this import (the first context holds it anyway).
  const { partition_replay: _replay, ...own } = options; // a decision is for the one variant it was made on
  const again: PlanOptions = { ...own, imported: all.ctx.get(importPass) };
  const plainOptions: PlanOptions = { ...again, flags: { ...options.flags, [TENSOR_PARALLEL.name]: 'off' } };
  const { imported: _imported, ...plainOptionsAlone } = plainOptions; // a worker imports the file itself
  const plain = (replay: PartitionDecision | null = null, list: readonly Pass<any, any>[] = planning): Promise<Variant> =>
    variant('no tensor parallelism', replay ? { ...plainOptions, partition_replay: replay } : plainOptions, list);
  // On a huge graph the variant without splits is planned first, up to its partition, weighed, and
  // planned on only if it ships (or trails by less than its deferred polish could win back): its
  // partition then judges the placement it chose instead of searching again (a decision is small).
  // Planned in this thread, its analysed context is kept meanwhile, and that second partition goes
  // on from it (the DeepSeek-V3 shape's prefill, where it ships: its shapes, profile and the rest
  // not done twice, 3–4 s of ~30 in alternating runs), for the memory of two analysed graphs while
  // the tensor-parallel variant is planned (peak RSS 1.18–1.22 → 1.33–1.34 GB in decode, at no
  // measurable time; 1.09–1.14 → 1.43 GB in prefill; against a 2 GB target: three such graphs held
  // at once did not fit). A context that printed IR is not kept (what it printed is not told apart
  // by pass): it is planned again from the import. The tensor-parallel variant, held up to its
  // rewrite meanwhile (the import it shares, the rewritten node list and, for weights held inline,
  // their split blocks), goes on after it and is planned once: on a frontier MoE graph it is the
  // one that usually ships (the DeepSeek-V3 shape's decode: 55.8 against 66.1 ms).
  const letGo = auto && proposedSplits > 0 && nodes > (options.let_go_above_nodes ?? PAID_VARIANT_MAX_NODES);
  let plainWeighed: Weighed | null = null;
  let plainDecision: PartitionDecision | null = null;
  const keepAnalysed = instr.printBefore !== 'all' && instr.printBefore.size === 0 && instr.printAfter !== 'all' && instr.printAfter.size === 0;
  let plainKept: Variant | null = null;
  const partitionAt = planning.findIndex((p) => p.name === partitionPass.name);
  // A variant weighed first stops at its partition: the schedule pass after it serves only the plan
  // written (0.4–0.9 s of the DeepSeek-V3 shape's run, and the memory its steps took).
  const weighing = planning.slice(0, partitionAt + 1);
  /**
   * The variant without splits planned in this thread, weighed, its decision and its analysed context
   * kept; `leave`: before the tensor-parallel variant's analyses, which reuse what it leaves.
   */
  const plainInTurn = async (leave: boolean): Promise<void> => {
    plainWeighed = weigh(
      await variant('no tensor parallelism', { ...plainOptions, defer_polish: true, ...(leave ? { leave_analyses: handoff } : {}) }, weighing),
      0,
    );
    if (plainWeighed.variant) plainDecision = partitionDecision(plainWeighed.variant.ctx.get(partitionPass));
    if (keepAnalysed) plainKept = plainWeighed.variant;
    plainWeighed.variant = null;
  };
  if (letGo && (options.variant_threads ?? availableParallelism() >= VARIANT_THREAD_CORES)) {
    // With cores to spare, the variant without splits is planned on another meanwhile
    // (src/cli/variant-worker.ts): the same plan, sooner, for the memory of a second analysed graph.
    // Not on two cores: there each isolate's collector takes the other's core (DeepSeek-V3 shape,
    // 3 runs each: median 44.7 against 52.6 s, 75 s of CPU either way, peak RSS 1.86–1.98 against
    // 1.40 GB — against a 2 GB target).
    const at = diagnostics.length;
    const job: VariantJob = { options: { ...plainOptionsAlone, defer_polish: true }, passes: weighing.map((p) => p.name) };
    const worker = planInWorker(job);
    try {
      all = await variant(first, options, planning.slice(tpAt + 1), all);
    } catch (err) {
      await worker.stop();
      throw err;
    }
    const reply = await worker.reply;
    diagnostics.splice(at, 0, ...reply.diagnostics);
    if (reply.ok) {
      plannedMs += reply.ms;
      plainWeighed = admit({ name: 'no tensor parallelism', order: 0, splits: 0, ...pick(reply), variant: null });
      plainDecision = reply.decision;
    } else if (reply.error) throw workerError(reply);
    // The thread itself failed (out of memory, say), not the planning: plan the variant in turn.
    // The tensor-parallel variant is done: its context is held while this one is planned.
    else await plainInTurn(false);
  } else {
    if (letGo) await plainInTurn(true);
    all = await variant(first, options, planning.slice(tpAt + 1), all);
  }
  const tensorParallel = all.ctx.get(partitionPass).baselines.tensor_parallel;
  const paid = all.ctx.get(partitionPass).tp_paid;
  weigh(all, 1);
  all = null;
  if (proposedSplits > 0 && !letGo) {
    if (auto) weigh(await plain(), 0);
    // Re-planning with only the splits that paid is one more whole pipeline: not on huge graphs.
    if (paid.length > 0 && paid.length < proposedSplits && nodes <= PAID_VARIANT_MAX_NODES) {
      weigh(await variant('tensor parallel where it paid', { ...again, tp_targets: paid }, planning), 2);
    }
  }
  let chosen = (best as Weighed | null)!;
  let replayed = chosen === plainWeighed;
  // The let-go variant left its polish to this second planning (PlanOptions.defer_polish): made when
  // it ships, or when it trails by less than a polish could plausibly win back, then weighed again.
  const deferred = (plainDecision as PartitionDecision | null)?.polish_deferred === true;
  const lead = chosen;
  const close =
    deferred &&
    !replayed &&
    plainWeighed !== null &&
    (plainWeighed as Weighed).eligible &&
    (plainWeighed as Weighed).score <= lead.score + Math.abs(lead.score) * DEFERRED_POLISH_MARGIN;
  if (!replayed && !close) plainKept = null;
  /** Whether the second planning went on from the first one's analyses. */
  let wentOn = false;
  /** The kept variant without splits up to its partition, to plan on with the decision it made (no longer kept). */
  const analysedPart = (kept: Variant, replay: PlanOptions): Variant => {
    plainKept = null;
    return {
      ...kept,
      ctx: kept.ctx.fork(
        replay,
        planning.slice(0, partitionAt).map((p) => p.name),
      ),
      run: { timings: kept.run.timings.slice(0, partitionAt), dumps: kept.run.dumps.slice(0, partitionAt) },
      ms: 0,
    };
  };
  if (replayed || close) {
    const replay = { ...plainOptions, partition_replay: plainDecision! };
    wentOn = plainKept !== null;
    const again = plainKept
      ? await variant('no tensor parallelism', replay, planning.slice(partitionAt), analysedPart(plainKept, replay))
      : await plain(plainDecision);
    if (!deferred) chosen.variant = again;
    else {
      // Weighed again, polished: its row is the polished plan's.
      const first = plainWeighed as Weighed;
      const part = again.ctx.get(partitionPass);
      const polished: Weighed = {
        ...first,
        latency_s: part.verdict.latency_s,
        throughput_per_s: part.verdict.throughput_per_s,
        score: planScore(part),
        variant: again,
      };
      weighed[weighed.indexOf(first)] = polished;
      plainWeighed = polished;
      if (replayed || beats(polished, lead)) {
        if (lead !== first) lead.variant = null;
        chosen = polished;
        replayed = true;
      } else {
        polished.variant = null;
        polished.ms = first.ms + again.ms;
      }
    }
  }
  // (A variant planned again keeps its first planning's time; the second is the shipped table's.)
  const firstMs = chosen.ms;
  const bestVariant = chosen.variant!;
  // What tensor parallelism was weighed against: the shipped plan reports the TP baseline and the variants.
  const shipped = bestVariant.ctx.get(partitionPass);
  shipped.baselines.tensor_parallel ??= tensorParallel;
  const inOrder = [...weighed].sort((a, b) => a.order - b.order);
  // A latency plan's variants are weighed by latency: one not shipped gives that alone (a variant
  // let go is not run through R requests unless it ships), so the rows are the same however the
  // variants were planned.
  shipped.variants = inOrder.map((w) => ({
    name: w.name,
    splits: w.splits,
    latency_s: w.latency_s,
    throughput_per_s: w === chosen || shipped.objective !== 'latency' ? w.throughput_per_s : null,
    eligible: w.eligible,
    shipped: w === chosen,
  }));
  const best_ = bestVariant;
  for (const t of best_.printed) instr.write(t);
  const rest = await new PassManager(tail, instr).run(best_.ctx, (n, result) => best_.ctx.store(n, result), planning.length);
  diagnostics.push(...best_.ctx.diagnostics.lines());
  const run: PassRun = { timings: [...best_.run.timings, ...rest.timings], dumps: [...best_.run.dumps, ...rest.dumps] };
  finishInstrumentation(instr, run, [
    ...inOrder.filter((w) => w !== chosen).map((w) => `${w.ms.toFixed(2).padStart(10)} ms ${' '.repeat(18)}  variant not shipped: ${w.name}`),
    ...(replayed
      ? [
          wentOn
            ? `${firstMs.toFixed(2).padStart(10)} ms ${' '.repeat(18)}  the shipped variant's first planning, up to its partition, while the other was planned; above, its analyses and its second partition, which judged the placement the first one chose${deferred ? ' and polished it' : ''}`
            : `${firstMs.toFixed(2).padStart(10)} ms ${' '.repeat(18)}  the shipped variant's first planning, let go while the other was planned; above, its second${plainDecision ? `, whose partition judged the placement the first one chose${deferred ? ' and polished it' : ''}` : ''}`,
        ]
      : []),
    ...(weighed.length > 1
      ? [
          `${(plannedMs + rest.timings.reduce((a, t) => a + t.ms, 0)).toFixed(2).padStart(10)} ms ${' '.repeat(18)}  in all: every variant planned, and the shipped one lowered`,
        ]
      : []),
  ]);
  return { ctx: best_.ctx, pipeline, timings: run.timings };
}

/** Plans a variant in a worker thread: its reply, or a failure as a reply (a crashed worker too); `stop` ends it. */
function planInWorker(job: VariantJob): { reply: Promise<VariantReply>; stop: () => Promise<number> } {
  const worker = new Worker(new URL('./variant-worker.js', import.meta.url), { workerData: job });
  const reply = new Promise<VariantReply>((resolve) => {
    let replied = false;
    worker.once('message', (reply: VariantReply) => {
      replied = true;
      resolve(reply);
      void worker.terminate();
    });
    worker.once('error', (err) => {
      if (!replied) resolve({ ok: false, error: null, message: err.stack ?? err.message, diagnostics: [] });
    });
    worker.once('exit', (code) => {
      if (!replied) resolve({ ok: false, error: null, message: `the variant's worker thread exited with code ${code}`, diagnostics: [] });
    });
  });
  return { reply, stop: () => worker.terminate() };
}

/** The worker's failure, as the main thread would have thrown it. */
function workerError(reply: Extract<VariantReply, { ok: false }>): Error {
  if (reply.error) return new HxcError(reply.error.code as DiagCode, reply.error.message, { where: reply.error.where, hint: reply.error.hint });
  return new Error(reply.message);
}

const pick = (r: Extract<VariantReply, { ok: true }>) => ({
  latency_s: r.latency_s,
  throughput_per_s: r.throughput_per_s,
  score: r.score,
  eligible: r.eligible,
  ms: r.ms,
});
