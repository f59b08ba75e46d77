// `hxc inspect MODEL [--json]`.

import { parseDims } from './dims.js';
import { inspectReport, renderInspect } from './inspect.js';
import { jsonText } from './output.js';
import { runPipeline } from './run-passes.js';

export function inspectCommand(model: string, opts: { json?: boolean; dim?: string[] }): void {
  const { ctx } = runPipeline({ model_path: model, topology_path: null, dims: parseDims(opts.dim), flags: {} }, ['import', 'verify']);
  const report = inspectReport(ctx.model);
  process.stdout.write(opts.json ? jsonText(report) : renderInspect(report));
}
