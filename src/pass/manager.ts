// The pass manager: resolves a pipeline (pulling in missing prerequisites), runs it, and hosts the
// instrumentation hooks (print IR before/after, per-pass dumps, timing) outside the passes.

import { HxcError } from '../diag/diagnostics.js';
import { writeOutputDir } from '../util/output.js';
import { printModel } from '../ir/print.js';
import type { Pass, PassContext } from './pass.js';

export interface Instrumentation {
  printBefore: Set<string> | 'all';
  printAfter: Set<string> | 'all';
  dumpDir: string | null;
  timePasses: boolean;
  /** Where printed IR and the timing table go (stderr in the CLI). */
  write(text: string): void;
  /** Told which pass starts (k of n): the CLI shows it on a terminal, never in files or --json. */
  progress?(text: string): void;
}

export interface PassTiming {
  name: string;
  ms: number;
  /** The process's peak resident memory when the pass ended (it never goes down): where a run's peak was reached. */
  peak_rss_bytes: number;
  statistics: Record<string, number | string>;
}

export interface ResolvedPipeline {
  passes: Pass<any, any>[];
  /** Prerequisites not asked for that were added. */
  pulled_in: string[];
}

/**
 * Order the requested passes by the registry's pipeline order, adding every prerequisite that was
 * not requested (reported in `pulled_in`). With `strict`, a missing prerequisite is an error instead.
 */
export function resolvePipeline(registry: readonly Pass<any, any>[], requested: string[] | null, strict = false): ResolvedPipeline {
  const byName = new Map(registry.map((p) => [p.name, p]));
  if (requested === null) return { passes: registry.slice(), pulled_in: [] };
  const want = new Set<string>();
  const pulled: string[] = [];
  for (const name of requested) {
    if (!byName.has(name)) {
      throw new HxcError('HXC2401', `unknown pass "${name}"`, { where: '--passes', hint: `choose from: ${registry.map((p) => p.name).join(', ')}` });
    }
    want.add(name);
  }
  const visit = (name: string, by: string | null): void => {
    if (want.has(name) && by !== null) return;
    if (by !== null) {
      if (strict) {
        throw new HxcError('HXC2402', `pass "${by}" needs pass "${name}", which is not in the pipeline`, {
          where: '--passes',
          hint: `add ${name} before ${by}`,
        });
      }
      want.add(name);
      pulled.push(name);
    }
    for (const r of byName.get(name)!.requires) visit(r, name);
  };
  for (const name of requested) visit(name, null);
  return { passes: registry.filter((p) => want.has(p.name)), pulled_in: pulled.filter((n, i) => pulled.indexOf(n) === i) };
}

export function pipelineString(passes: readonly Pass<any, any>[]): string {
  return passes.map((p) => p.name).join(',');
}

/** What a run of passes leaves for the instrumentation to write: per-pass dumps and timings. */
export interface PassRun {
  timings: PassTiming[];
  dumps: { file: string; text: string }[];
}

export class PassManager {
  /** `pipeline`: the whole pipeline this run is a piece of (a transform keeps every transform's records). */
  constructor(
    private readonly passes: readonly Pass<any, any>[],
    private readonly instr: Instrumentation,
    private readonly pipeline: readonly Pass<any, any>[] = passes,
  ) {}

  /**
   * Run the passes in order. IR printed before/after a pass goes to `instr.write` at once; dumps and
   * timings are returned for `finish` (a caller running variants writes only the shipped one's).
   * `offset` numbers the dump files when a pipeline is run in pieces (of `total` passes).
   */
  async run(ctx: PassContext, store: (name: string, result: unknown) => void, offset = 0, total = offset + this.passes.length): Promise<PassRun> {
    const timings: PassTiming[] = [];
    const dumps: { file: string; text: string }[] = [];
    const wants = (set: Set<string> | 'all', name: string): boolean => set === 'all' || set.has(name);
    for (let i = 0; i < this.passes.length; i++) {
      const pass = this.passes[i]!;
      if (wants(this.instr.printBefore, pass.name) && ctx.ran('import')) {
        this.instr.write(`// ----- IR before ${pass.name} -----\n${this.printIR(ctx, i)}`);
      }
      const where = `${pass.name} (pass ${offset + i + 1} of ${total})`;
      this.instr.progress?.(where);
      const progress = this.instr.progress;
      ctx.progressTo = progress ? (detail) => progress(`${where}: ${detail}`) : undefined;
      const t0 = process.hrtime.bigint();
      let result: unknown;
      try {
        result = await pass.run(ctx);
      } finally {
        ctx.progressTo = undefined;
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      // A transform rewrote the graph: what earlier passes found about it no longer holds (the
      // import, and other transforms' records of their rewrites, stay).
      if (pass.kind === 'transform') ctx.invalidate(new Set(['import', ...this.pipeline.filter((p) => p.kind === 'transform').map((p) => p.name)]));
      store(pass.name, result);
      const statistics = pass.statistics(result, ctx);
      // resourceUsage().maxRSS is in KiB (getrusage's ru_maxrss on Linux).
      timings.push({ name: pass.name, ms, peak_rss_bytes: process.resourceUsage().maxRSS * 1024, statistics });
      if (wants(this.instr.printAfter, pass.name)) {
        this.instr.write(`// ----- IR after ${pass.name} -----\n${this.printIR(ctx, i + 1)}${pass.dump(result, ctx)}`);
      }
      if (this.instr.dumpDir !== null) {
        dumps.push({ file: `${String(offset + i).padStart(2, '0')}-${pass.name}.txt`, text: dumpText(pass, result, statistics, ctx) });
      }
    }
    return { timings, dumps };
  }

  /** The IR with the per-node notes of every pass that has run so far. */
  private printIR(ctx: PassContext, ran: number): string {
    const done = this.passes.slice(0, ran).filter((p) => p.nodeNote && ctx.has(p));
    return printModel(ctx.model, (node) => done.map((p) => p.nodeNote!(ctx.get(p), ctx, node) ?? ''));
  }
}

/** Write what the instrumentation asked for: the dump folder (atomically) and the timing table. */
export function finishInstrumentation(instr: Instrumentation, run: PassRun, extraRows: string[] = []): void {
  if (instr.dumpDir !== null) writeOutputDir(instr.dumpDir, run.dumps, 'hxc-dump/v1');
  if (instr.timePasses) instr.write(timingTable(run.timings, extraRows));
}

function dumpText(pass: Pass<any, any>, result: unknown, statistics: Record<string, number | string>, ctx: PassContext): string {
  const stats = Object.entries(statistics)
    .map(([k, v]) => `//   ${k}: ${v}`)
    .join('\n');
  return `// pass ${pass.name}: ${pass.summary}\n// statistics:\n${stats}\n${pass.dump(result, ctx)}`;
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0).padStart(7)} MiB`;

export function timingTable(timings: PassTiming[], extraRows: string[] = []): string {
  const total = timings.reduce((s, t) => s + t.ms, 0);
  const rows = timings.map((t) => {
    const share = total > 0 ? (100 * t.ms) / total : 0;
    const stats = Object.entries(t.statistics)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    return `  ${t.ms.toFixed(2).padStart(10)} ms ${share.toFixed(1).padStart(5)}% ${mib(t.peak_rss_bytes)}  ${t.name.padEnd(10)} ${stats}`;
  });
  const peak = timings.reduce((m, t) => Math.max(m, t.peak_rss_bytes), 0);
  return `===== pass execution timing (time; peak resident memory so far) =====\n${rows.join('\n')}\n  ${total.toFixed(2).padStart(10)} ms 100.0% ${mib(peak)}  total\n${extraRows.map((r) => `  ${r}\n`).join('')}`;
}
