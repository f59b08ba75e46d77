// `hxc plan MODEL [--topology FILE]`: run the pipeline with its instrumentation and summarise.

import path from 'node:path';
import { pipelineString, timingTable, type Instrumentation } from '../pass/manager.js';
import { planOptions, type AnalysisFlags } from './flags.js';
import { jsonText } from './output.js';
import { runPipeline } from './run-passes.js';

export interface PlanFlags extends AnalysisFlags {
  passes?: string;
  strictPasses?: boolean;
  printBefore?: string;
  printAfter?: string;
  dumpDir?: string;
  timePasses?: boolean;
  out: string;
  json?: boolean;
}

function passSet(v: string | undefined): Set<string> | 'all' {
  if (v === 'all') return 'all';
  return new Set((v ?? '').split(',').map((s) => s.trim()).filter((s) => s));
}

export async function planCommand(model: string, flags: PlanFlags): Promise<void> {
  const instr: Instrumentation = {
    printBefore: passSet(flags.printBefore),
    printAfter: passSet(flags.printAfter),
    dumpDir: flags.dumpDir ?? null,
    timePasses: Boolean(flags.timePasses),
    write: (t) => process.stderr.write(t),
  };
  const requested = flags.passes ? flags.passes.split(',').map((s) => s.trim()).filter((s) => s) : null;
  const options = planOptions(model, flags);
  const run = await runPipeline(options, requested, instr, Boolean(flags.strictPasses));
  if (run.pipeline.pulled_in.length > 0) {
    process.stderr.write(`hxc: note: added prerequisite passes: ${run.pipeline.pulled_in.join(', ')}\n`);
  }
  const topo = run.ctx.topology();
  const pipeline = pipelineString(run.pipeline.passes);
  if (flags.json) {
    process.stdout.write(jsonText({
      format: 'hxc-plan-run/v1',
      model: path.basename(model),
      topology: topo.name,
      pipeline,
      passes: run.timings.map((t) => ({ name: t.name, statistics: t.statistics })),
    }));
    return;
  }
  process.stdout.write(`model ${run.ctx.model.name} on topology ${topo.name} (${topo.devices.length} devices)\npipeline: ${pipeline}\n`);
  process.stdout.write(timingTable(run.timings).split('\n').slice(1).map((l) => l.replace(/^\s+\S+ ms\s+\S+%\s+/, '  ')).filter((l) => l.trim() && !/total$/.test(l)).join('\n') + '\n');
}
