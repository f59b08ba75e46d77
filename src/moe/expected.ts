// Expected tokens per expert, for the cost model. A routed MoE export sizes each expert's batch
// with a NonZero over the routing mask — a data-dependent count that shape inference leaves as a
// fresh symbol (`nz_…`). Costing it at 1 would make every expert nearly free; costing every expert
// as if it always ran would charge a decode step all experts' weights. Instead: with T tokens per
// step, top-k routing and the expert's share p of assignments (from --routing, else 1/E), a token
// picks the expert with probability q = min(1, k·p), so the expert runs in a step with probability
// P = 1 − (1 − q)^T, and when it runs it gets T·q / P tokens on average. The symbol is bound to that
// conditional count and the expert's body is costed at P times its work (it reads its weights only
// when some token routes to it) — the expectation of what a step costs.

import type { GraphIndex } from '../ir/algorithms.js';
import type { Model, TensorType } from '../ir/graph.js';
import { evalDim } from '../shapes/symbolic.js';
import { detectMoe, type MoeLayer } from './detect.js';
import { readRouting } from './routing.js';

/** A NonZero that sizes one expert's batch: its node, MoE layer and expert. */
export interface ExpertProbe {
  node: number;
  layer: number;
  expert: number;
}

/** The per-expert NonZero nodes of detected sparse MoE layers (what `hxc run` reads counts from). */
export function expertProbes(model: Model, index: GraphIndex, layers: MoeLayer[]): ExpertProbe[] {
  const probes: ExpertProbe[] = [];
  const g = model.graph;
  // The expert of each node of the layer at hand, plus one (0: none), cleared after the layer: one
  // array for all layers, not a map and a list of all its nodes per layer (200k nodes on the
  // DeepSeek-V3 shape, asked per variant).
  const expertOf = new Int32Array(g.nodes.length);
  // Counted loops over the experts' node lists, here and below: run a few times a plan, for-ofs
  // stayed unoptimised and made an iterator result per node (60 MB, sampled).
  for (const l of layers) {
    if (l.form !== 'sparse') continue;
    const nonzeros = new Set<number>();
    for (let k = 0; k < l.dispatch.length; k++) if (g.nodes[l.dispatch[k]!]!.op === 'NonZero') nonzeros.add(l.dispatch[k]!);
    for (const e of l.experts) {
      for (let k = 0; k < e.nodes.length; k++) {
        const i = e.nodes[k]!;
        expertOf[i] = e.expert + 1;
        if (g.nodes[i]!.op === 'NonZero') nonzeros.add(i);
      }
    }
    const sorted = [...nonzeros].sort((a, b) => a - b);
    for (let k = 0; k < sorted.length; k++) {
      const i = sorted[k]!;
      const e = owningExpert(index, i, expertOf);
      if (e !== null) probes.push({ node: i, layer: l.layer, expert: e });
    }
    for (const e of l.experts) for (let k = 0; k < e.nodes.length; k++) expertOf[e.nodes[k]!] = 0;
  }
  return probes;
}

export interface ExpectedExperts {
  /** NonZero count symbol → expected tokens of its expert in a step where it runs. */
  counts: Map<string, number>;
  /** By node index: for an expert's body, the probability that it runs in a step (P above); else undefined. */
  activity: (number | undefined)[];
  /**
   * By node index: for an expert's body, dispatch or combine, the experts in its layer and the layer
   * (they run as its grouped kernels on a GPU: src/cost/fusion.ts); else undefined. (Arrays, not
   * maps: 200k nodes on the DeepSeek-V3 shape, and profile reads them per node.)
   */
  grouped: ({ experts: number; layer: number } | undefined)[];
}

/** Expected counts and activity of the experts of detected sparse MoE layers. */
export function expectedExpertCounts(
  model: Model,
  index: GraphIndex,
  order: Int32Array,
  types: ReadonlyMap<string, TensorType>,
  bindings: Record<string, number>,
  routingFile: string | null,
): ExpectedExperts {
  const out = new Map<string, number>();
  const activity: (number | undefined)[] = new Array(model.graph.nodes.length);
  const grouped: ({ experts: number; layer: number } | undefined)[] = new Array(model.graph.nodes.length);
  const layers = detectMoe(model, index, order).filter((l) => l.form === 'sparse');
  if (layers.length === 0) return { counts: out, activity, grouped };
  const shares = routingShares(routingFile);
  const g = model.graph;
  const byLayer = new Map(layers.map((l) => [l.layer, l]));
  for (const probe of expertProbes(model, index, layers)) {
    const l = byLayer.get(probe.layer)!;
    const t = l.input ? types.get(l.input) : undefined;
    if (!t?.shape || l.hidden <= 0) continue;
    let elements = 1;
    for (const d of t.shape) elements *= typeof d === 'number' ? d : (evalDim(d, bindings) ?? NaN);
    const tokens = elements / l.hidden;
    if (!Number.isFinite(tokens)) continue;
    const share = shares?.get(l.layer);
    const p = share && share.length === l.num_experts ? share[probe.expert]! : 1 / l.num_experts;
    const q = Math.min(1, l.top_k * p);
    const active = 1 - Math.pow(1 - q, tokens);
    const n = g.nodes[probe.node]!;
    const shape = n.outputs[0] ? types.get(n.outputs[0])?.shape : undefined;
    const sym = shape?.[1];
    if (typeof sym === 'string' && !(sym in bindings)) out.set(sym, Math.max(1, Math.round(active > 0 ? (tokens * q) / active : 1)));
    // Experts are listed by index, each once (every detector numbers them so): the probe's is at its
    // index, a search of the list per probe only if not (256² a layer on the DeepSeek-V3 shape).
    const atIndex = l.experts[probe.expert];
    const expert = atIndex?.expert === probe.expert ? atIndex : l.experts.find((e) => e.expert === probe.expert);
    if (expert) for (let k = 0; k < expert.nodes.length; k++) activity[expert.nodes[k]!] = active;
  }
  // The layer's routed part — each expert's dispatch (mask, NonZero, gathers), body and combine
  // (weighting, ScatterND back) — runs as one set of grouped kernels on a GPU. The dispatch list
  // also holds the few nodes the layer runs once (4 of DeepSeek-V3's 3,076), priced alike.
  for (const l of layers) {
    const group = { experts: l.num_experts, layer: l.layer };
    for (const e of l.experts) for (let k = 0; k < e.nodes.length; k++) grouped[e.nodes[k]!] = group;
    for (let k = 0; k < l.dispatch.length; k++) grouped[l.dispatch[k]!] = group;
  }
  return { counts: out, activity, grouped };
}

/**
 * The expert whose batch a NonZero selects: the first expert node its output reaches going
 * forward (the token indices feed that expert's gather), searched breadth-first a few hops deep.
 */
function owningExpert(index: GraphIndex, start: number, expertOf: Int32Array): number | null {
  if (expertOf[start]! > 0) return expertOf[start]! - 1;
  let frontier = [start];
  const seen = new Set<number>(frontier);
  for (let depth = 0; depth < 12 && frontier.length > 0; depth++) {
    const next: number[] = [];
    for (let f = 0; f < frontier.length; f++) {
      const u = frontier[f]!;
      for (let e = index.succOffsets[u]!; e < index.succOffsets[u + 1]!; e++) {
        const v = index.succs[e]!;
        if (expertOf[v]! > 0) return expertOf[v]! - 1;
        if (!seen.has(v)) {
          seen.add(v);
          next.push(v);
        }
      }
    }
    frontier = next;
  }
  return null;
}

/** Per layer, each expert's share of routed assignments (the routing file read and checked once, src/moe/routing.ts). */
function routingShares(file: string | null): Map<number, number[]> | null {
  if (!file) return null;
  const m = new Map<number, number[]>();
  for (const l of readRouting(file).layers) {
    const total = l.tokens.reduce((a, b) => a + b, 0);
    if (total > 0)
      m.set(
        l.layer,
        l.tokens.map((x) => x / total),
      );
  }
  return m;
}
