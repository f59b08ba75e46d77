// `--dim batch=8,seq=2048`: symbolic dim bindings, repeatable and comma-separated.

import { HxcError } from '../diag/diagnostics.js';

export function parseDims(specs: string[] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of specs ?? []) {
    for (const part of spec.split(',')) {
      if (!part.trim()) continue;
      const m = /^\s*([^=\s]+)\s*=\s*(\d+)\s*$/.exec(part);
      if (!m) throw new HxcError('HXC2206', `cannot read dim binding "${part}"`, { where: '--dim', hint: 'write NAME=INTEGER, e.g. --dim batch=8,seq=2048' });
      out[m[1]!] = Number(m[2]);
    }
  }
  return out;
}
