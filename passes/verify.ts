// verify: the structural invariants later passes rely on (one producer per value, every input
// defined, subgraph references resolved, no cycle), and the node index and topological order
// every later pass shares.

import { verifyGraph, type VerifyResult } from '../src/ir/verify.js';
import type { Pass } from '../src/pass/pass.js';

export const verifyPass: Pass<VerifyResult> = {
  name: 'verify',
  summary: 'check the graph is well formed and acyclic; build the node index and topological order',
  requires: ['import'],
  options: [],
  run(ctx) {
    return verifyGraph(ctx.model.graph, ctx.options.model_path);
  },
  statistics(result) {
    return { nodes: result.index.size, edges: result.index.preds.length, values: result.index.producer.size };
  },
  dump(result, ctx) {
    const names = Array.from(result.order, (i) => ctx.model.graph.nodes[i]!.name);
    return `topological order (${names.length} nodes):\n${names.map((n, k) => `  ${k} ${n}`).join('\n')}\n`;
  },
};
