// `hxc passes [--json]`: the registry in pipeline order.

import { PASSES } from '../../passes/index.js';
import { jsonText, table } from './output.js';

export function passesCommand(opts: { json?: boolean }): void {
  if (opts.json) {
    process.stdout.write(
      jsonText({
        format: 'hxc-passes/v1',
        passes: PASSES.map((p) => ({ name: p.name, summary: p.summary, requires: p.requires, options: p.options })),
      }),
    );
    return;
  }
  const rows = PASSES.map((p) => [p.name, p.requires.join(',') || '-', p.summary]);
  let text = table(['pass', 'requires', 'what it does'], rows);
  const withOptions = PASSES.filter((p) => p.options.length > 0);
  for (const p of withOptions) {
    text += `\n${p.name} options:\n${p.options.map((o) => `  --${o.name}${o.arg ? ` ${o.arg}` : ''}  ${o.help}`).join('\n')}\n`;
  }
  process.stdout.write(text);
}
