// Finds Mixture-of-Experts layers: com.microsoft MoE/QMoE operators; the torch-exported routing
// pattern (router MatMul → Softmax → TopK → per expert: gather the tokens routed to it, run its
// MatMul chain, scatter/add the weighted output back); the dense form that runs every expert on every
// token and weights outputs by a [tokens, E] gate matrix; and `moe` annotations of JSON graphs.
// Structure first — node names (`…/experts.3/…`) only break ties and rescue odd exports — and the
// expert count found is checked against the router's output width. Relies on GraphIndex and the
// topological order from verify; reads initializer dims (never weight bytes) for FLOPs and parameters.

import type { GraphIndex } from '../ir/algorithms.js';
import type { DType } from '../ir/dtype.js';
import type { Model } from '../ir/graph.js';
import { Facts, type Found } from './detect-facts.js';
import { dtypeOf, fromRouter } from './detect-router.js';
import { ROUTER_CHAIN } from './detect-facts.js';
import { scopeOf } from './detect-router.js';

export type MoeForm = 'operator' | 'sparse' | 'dense' | 'annotated';

export interface MoeExpert {
  /** Expert index = the router's output column. */
  expert: number;
  /** Node indices of the expert's computation, in graph order. */
  nodes: number[];
  /** 2 FLOPs per weight element of the expert's matrices, per token (not profile's data-dependent count). */
  flops_per_token: number;
  param_bytes: number;
}

export interface MoeLayer {
  /** MoE layers counted from 0 in graph order (as hxc-routing/v1 counts them). */
  layer: number;
  /** Common name scope of the layer (`/model/layers.0/block_sparse_moe`), or the router's name. */
  name: string;
  form: MoeForm;
  /** Router nodes: the gate MatMul through the TopK (or the MoE operator's router). */
  router: number[];
  num_experts: number;
  top_k: number;
  experts: MoeExpert[];
  /** Experts that every token runs (shared experts next to routed ones); reported, not placed. */
  shared: number[][];
  /** Routing, dispatch and combine nodes of the layer (what an IPU would have to run to carry it). */
  dispatch: number[];
  /** The token activations the router and experts read, and their width and type. */
  input: string | null;
  hidden: number;
  token_dtype: DType;
  detected_by: 'structure' | 'names' | 'operator' | 'annotation';
}

/**
 * The layers found per graph index: the profile pass (expected expert counts) and the moe pass
 * both ask for the verified graph's. An index is built on a graph that no longer changes (a
 * transform that edits the graph builds a new one), so the same index and order mean the same answer.
 */
const detected = new WeakMap<GraphIndex, { model: Model; order: Int32Array; layers: readonly MoeLayer[] }>();

export function detectMoe(model: Model, index: GraphIndex, order: Int32Array): MoeLayer[] {
  const hit = detected.get(index);
  if (hit && hit.model === model && hit.order === order) return [...hit.layers];
  const layers = detectLayers(model, index, order);
  detected.set(index, { model, order, layers });
  return [...layers];
}

function detectLayers(model: Model, index: GraphIndex, order: Int32Array): MoeLayer[] {
  const facts = new Facts(model, index, order);
  const found: Found[] = [];
  if (model.annotations.moe.length > 0) {
    for (const ann of model.annotations.moe) found.push(fromAnnotation(facts, ann));
  } else {
    const g = model.graph;
    for (let k = 0; k < order.length; k++) {
      const i = order[k]!;
      const node = g.nodes[i]!;
      const layer =
        node.domain === 'com.microsoft' && (node.op === 'MoE' || node.op === 'QMoE')
          ? fromOperator(facts, i)
          : node.op === 'TopK' && node.domain === ''
            ? fromRouter(facts, i)
            : null;
      if (layer) found.push(layer);
    }
  }
  found.sort((a, b) => facts.pos[a.at]! - facts.pos[b.at]!);
  return found.map(({ at: _at, ...rest }, layer) => ({ layer, ...rest }));
}

/**
 * com.microsoft MoE (inputs: input, router_probs, fc1_experts_weights, fc1_experts_bias,
 * fc2_experts_weights, fc2_experts_bias, fc3_experts_weights, …; attribute k) and QMoE (fc1 weights,
 * scales, bias, fc2 …, fc3 … at 2/3/4, 5/6/7, 8/9/10; weights packed `8 / expert_weight_bits` per
 * byte), per the onnxruntime contrib-op spec. One node holds every expert; each expert's share is 1/E.
 */
function fromOperator(facts: Facts, i: number): Found | null {
  const { model, index } = facts;
  const node = model.graph.nodes[i]!;
  const ins = index.inputsOf(i);
  const quantized = node.op === 'QMoE';
  const weightSlots = quantized ? [2, 5, 8] : [2, 4, 6];
  const bits = node.attrs.expert_weight_bits?.type === 'int' ? node.attrs.expert_weight_bits.value : 4;
  const pack = quantized ? 8 / bits : 1;
  const fc1 = facts.weight(ins[2] ?? -1);
  if (!fc1 || fc1.dims.length < 3) return null;
  const experts = fc1.dims[0]!;
  let elements = 0;
  for (const slot of weightSlots) {
    const w = facts.weight(ins[slot] ?? -1);
    if (w && w.dims[0] === experts) elements += w.dims.slice(1).reduce((a, b) => a * b, 1) * pack;
  }
  let params = 0;
  for (let s = 2; s < ins.length; s++) {
    const w = facts.isConst(ins[s]!) ? facts.weight(ins[s]!) : null;
    if (w) params += w.byte_size;
  }
  const k = node.attrs.k?.type === 'int' ? node.attrs.k.value : 1;
  // The router: back from router_probs through casts and softmax to the gate MatMul.
  const router: number[] = [];
  let hidden = 0;
  for (let id = ins[1] ?? -1, depth = 0; depth < 6; depth++) {
    const p = facts.producer(id);
    if (p < 0) break;
    router.push(p);
    const w = facts.weightMatmul(p);
    if (w) {
      hidden = w.dims[w.dims.length - 2]!;
      break;
    }
    if (!ROUTER_CHAIN.has(model.graph.nodes[p]!.op)) break;
    id = index.inputAt(p, 0);
  }
  const input = index.valueNames[ins[0]!] ?? null;
  const declared = input ? model.graph.declared.get(input) : undefined;
  if (!hidden && declared?.shape) hidden = Number(declared.shape[declared.shape.length - 1]) || 0;
  if (!hidden) hidden = quantized ? fc1.dims[2]! * pack : fc1.dims[1]!;
  return {
    at: i,
    name: node.name,
    form: 'operator',
    router: facts.sortByPos(router),
    num_experts: experts,
    top_k: k,
    experts: Array.from({ length: experts }, (_, e) => ({ expert: e, nodes: [i], flops_per_token: 2 * elements, param_bytes: params / experts })),
    shared: [],
    dispatch: [],
    input,
    hidden,
    token_dtype: dtypeOf(facts, input, quantized ? 'float16' : fc1.dtype),
    detected_by: 'operator',
  };
}

/** A JSON graph's `moe` annotation: the expert node sets as given, top_k from it or the router's TopK. */
function fromAnnotation(facts: Facts, ann: Model['annotations']['moe'][number]): Found {
  const { model, index } = facts;
  const byName = index.nodeByName;
  const experts = ann.experts.map((names, e) => {
    const nodes = facts.sortByPos(names.map((nm) => byName.get(nm)!));
    return { expert: e, nodes, ...facts.cost(nodes) };
  });
  const router = facts.sortByPos((ann.router ?? []).map((nm) => byName.get(nm)!));
  const topk = router.find((i) => model.graph.nodes[i]!.op === 'TopK');
  const k = ann.top_k ?? (topk !== undefined ? facts.scalar(index.inputAt(topk, 1)) : null) ?? 1;
  // Token width: the router's weight, else the first expert matmul's input width.
  let hidden = 0;
  let dtype: DType = 'float32';
  let input: string | null = null;
  for (const i of [...router, ...experts.flatMap((e) => e.nodes)]) {
    const w = facts.weightMatmul(i);
    if (!w) continue;
    hidden = w.dims[w.dims.length - 2]!;
    dtype = w.dtype;
    input = index.valueNames[index.inputAt(i, 0)] ?? null;
    break;
  }
  const at = [...router, ...experts.flatMap((e) => e.nodes)].reduce((a, b) => (facts.pos[b]! < facts.pos[a]! ? b : a), experts[0]?.nodes[0] ?? 0);
  const names = experts.flatMap((e) => e.nodes.map((i) => model.graph.nodes[i]!.name));
  return {
    at,
    name: scopeOf(names[0] ?? `moe${ann.layer}`, names),
    form: 'annotated',
    router,
    num_experts: experts.length,
    top_k: Math.min(k, Math.max(1, experts.length)),
    experts,
    shared: [],
    dispatch: [],
    input,
    hidden,
    token_dtype: dtypeOf(facts, input, dtype),
    detected_by: 'annotation',
  };
}
