// replicate: hot experts get executable replicas (src/transform/replicate.ts). `--expert-replicas
// N` hands out N extra copies, one at a time, to the expert with the highest load per copy (the
// rule of DeepSeek's EPLB), with the loads of `--routing FILE` (uniform without one). Each copy
// becomes a unit the partitioner can put on another device; `hxc run` splits each expert's tokens
// among its copies by the copies' devices' measured load.

import { intOption } from '../src/pass/options.js';
import { readRouting, ROUTING } from '../src/moe/routing.js';
import { GraphIndex, topoOrder } from '../src/ir/algorithms.js';
import { detectMoe } from '../src/moe/detect.js';
import type { Pass } from '../src/pass/pass.js';
import { replicateChains, rowInput, type Chain, type ReplicaResult } from '../src/transform/replicate.js';

export interface ReplicateResult {
  replicated: ReplicaResult['replicated'];
  skipped: string[];
}

export const EXPERT_REPLICAS = intOption({
  name: 'expert-replicas',
  arg: '<n>',
  min: 0,
  example: 2,
  help: 'extra executable copies of the hottest MoE experts, tokens split at run time by load (default 0)',
});

export const replicatePass: Pass<ReplicateResult> = {
  name: 'replicate',
  summary: "hot MoE experts get executable replicas (--expert-replicas N), their tokens split at run time by the replicas' load",
  requires: ['import'],
  kind: 'transform',
  options: [EXPERT_REPLICAS, ROUTING],
  run(ctx) {
    const extra = ctx.option(EXPERT_REPLICAS) ?? 0;
    if (extra === 0) return { replicated: [], skipped: [] };
    const index = new GraphIndex(ctx.model.graph);
    const { order } = topoOrder(index);
    const layers = detectMoe(ctx.model, index, order).filter((l) => l.form === 'sparse');
    const routingFile = ctx.option(ROUTING);
    const routing = routingFile !== undefined ? readTokens(routingFile) : null;
    const g = ctx.model.graph;
    const candidates: { layer: number; expert: number; nodes: number[]; load: number; copies: number }[] = [];
    const skipped: string[] = [];
    for (const l of layers) {
      for (const e of l.experts) {
        // A leading Reshape that flattens the gathered rows ([1, n, H] → [n, H]) stays before the
        // split: the copies take rows of its output.
        const nodes = g.nodes[e.nodes[0]!]!.op === 'Reshape' ? e.nodes.slice(1) : e.nodes;
        const members = nodes.map((i) => g.nodes[i]!);
        if (!rowInput(g, members)) {
          skipped.push(`moe${l.layer}.expert${e.expert}: not a row-wise chain`);
          continue;
        }
        candidates.push({ layer: l.layer, expert: e.expert, nodes, load: routing?.get(l.layer)?.[e.expert] ?? 1, copies: 1 });
      }
    }
    // EPLB's replication rule: each extra copy to the expert with the highest load per copy.
    for (let s = 0; s < extra && candidates.length > 0; s++) {
      let best = candidates[0]!;
      for (const c of candidates) if (c.load / c.copies > best.load / best.copies) best = c;
      best.copies++;
    }
    const chains: Chain[] = candidates.filter((c) => c.copies > 1).map((c) => ({ nodes: c.nodes, replicas: c.copies, key: `moe${c.layer}.expert${c.expert}` }));
    if (chains.length === 0) return { replicated: [], skipped };
    const { graph, replicated } = replicateChains(g, chains);
    ctx.model = { ...ctx.model, graph };
    return { replicated, skipped };
  },
  statistics(r) {
    return { 'experts replicated': r.replicated.length, copies: r.replicated.reduce((s, x) => s + x.replicas.length, 0) };
  },
  dump(r) {
    return (
      [...r.replicated.map((x) => `${x.key}: ${x.replicas.length} copies, rows ${x.rows}, shares ${x.input}`), ...r.skipped.map((s) => `skipped ${s}`)].join(
        '\n',
      ) + '\n'
    );
  },
};

/** Per layer, tokens per expert (the routing file read and checked once, src/moe/routing.ts). */
function readTokens(file: string): Map<number, number[]> {
  return new Map(readRouting(file).layers.map((l) => [l.layer, l.tokens]));
}
