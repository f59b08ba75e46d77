// `--dim batch=8,seq=2048`: symbolic dim bindings, repeatable and comma-separated.

import { HxcError } from '../diag/diagnostics.js';

import { MAX_DIM } from '../ir/graph.js';

export { MAX_DIM };

export function parseDims(specs: string[] | undefined): Record<string, number> {
  const out = new Map<string, number>();
  for (const spec of specs ?? []) {
    for (const part of spec.split(',')) {
      if (!part.trim()) continue;
      const m = /^\s*([^=\s]+)\s*=\s*(\d+)\s*$/.exec(part);
      if (!m) throw new HxcError('HXC2206', `cannot read dim binding "${part}"`, { where: '--dim', hint: 'write NAME=INTEGER, e.g. --dim batch=8,seq=2048' });
      const value = Number(m[2]);
      // 0 is a real size: an empty KV cache at prefill (the shared dims.json files bind past_sequence_length=0).
      if (!(value >= 0 && value <= MAX_DIM))
        throw new HxcError('HXC2206', `dim ${m[1]}=${m[2]} is out of range`, { where: '--dim', hint: `bind a whole number from 0 to ${MAX_DIM}` });
      const before = out.get(m[1]!);
      if (before !== undefined && before !== value)
        throw new HxcError('HXC2206', `dim ${m[1]} is bound twice, to ${before} and to ${value}`, { where: '--dim', hint: 'bind each dim once' });
      out.set(m[1]!, value);
    }
  }
  // By name, so the order they were given in changes nothing a plan records. (fromEntries makes
  // each an own member, a dim named __proto__ too.)
  return Object.fromEntries([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
