// tp: tensor parallelism — large weight MatMuls split column-wise into k parts
// (src/transform/tensor-parallel.ts; a pair joined by elementwise ops, as an MLP's two GEMMs, is
// split Megatron's way: columns then rows, one Sum) when the rack has k identical accelerators on a dedicated
// (not shared) link; the partitioner then places the parts, each a unit of its own, on different
// devices. It pays only sometimes, so under `--tensor-parallel auto` (default: MatMuls with at
// least 4 Mi weight elements) the plan is made with and without the splits and the better is
// shipped (src/cli/run-passes.ts), and a plan with splits counts only when every split's parts
// land on two devices or more (passes/partition.ts). `--tensor-parallel N` splits every MatMul with
// at least 64 Ki weight elements into N; `off` never. Attention between split projections runs
// as head shards (head-parallel attention): in a prefill its KV cache is written by the shards and
// joined once; in a decode step each shard's share of the cache becomes graph input and output of
// its own, kept on the shard's device from step to step (headModes below).

import { stringOption } from '../src/pass/options.js';
import { HxcError } from '../src/diag/diagnostics.js';
import type { Pass } from '../src/pass/pass.js';
import { HEAD_ATTENTION_OPS, headParallel, splitMatMuls, splittable, type HeadMode, type IoShard, type Split } from '../src/transform/tensor-parallel.js';
import { deviceClassKey, type Topology } from '../src/topology/index.js';
import type { Graph, Node } from '../src/ir/graph.js';
import { GraphIndex } from '../src/ir/algorithms.js';
import { ROUTER_CHAIN } from '../src/moe/detect-facts.js';
import { BATCH, bindDims, CONTEXT, PHASE, PROMPT } from './bind.js';
import type { PassContext } from '../src/pass/pass.js';
import { evalDim } from '../src/shapes/symbolic.js';

export interface TpResult {
  k: number;
  /** Why tensor parallelism was or was not applied. */
  reason: string;
  /** The devices the parts are meant for (the NVLink-class group), in order. */
  group: string[];
  splits: Split[];
  /** Graph inputs and outputs held as parts (a head-sharded KV cache; plan.json `tensor_parallel.io`). */
  io: IoShard[];
}

export const AUTO_MIN_WEIGHT_ELEMENTS = 1 << 22;
export const FORCED_MIN_WEIGHT_ELEMENTS = 1 << 16;
/** Expert (routed) MatMuls are split only when there are at most this many. */
export const MAX_EXPERT_SPLITS = 1024;
/**
 * Above this many nodes, planning gets the cheaper search: no tensor-parallel variant planned with
 * only the splits that paid (src/cli/run-passes.ts), a plan that kept a split on one device is not
 * re-spread (src/partition/pool.ts spreadKept), and the relieved plan gets no local search of its
 * own (passes/partition.ts). On the 275k-node DeepSeek-V3 shape each cost more than it gave:
 * re-spreading won 1.2% latency (197.5 against 200.0 ms, before grouped expert launches) for ~6 s
 * in the variant; the relieved plan's search found no move in 4 s.
 */
export const HUGE_GRAPH_NODES = 100_000;

/** The largest group of identical GPU/accelerator devices sharing a dedicated link (an NVLink domain). */
export function tensorParallelGroup(topo: Topology): string[] {
  let best: string[] = [];
  const byId = new Map(topo.devices.map((d) => [d.id, d]));
  for (const l of topo.links) {
    if (l.shared) continue;
    const classes = new Map<string, string[]>();
    for (const id of l.devices) {
      const d = byId.get(id)!;
      if (d.kind !== 'gpu' && d.kind !== 'accel') continue;
      const key = deviceClassKey(d);
      (classes.get(key) ?? classes.set(key, []).get(key)!).push(id);
    }
    for (const g of classes.values()) if (g.length >= 2 && g.length > best.length) best = g;
  }
  return best;
}

/**
 * Whether a MatMul's rows are data-dependent — tokens gathered by a routing mask (a NonZero
 * upstream within a few ops), as in an MoE expert. Those are parallel over experts already
 * (the moe pass places them); splitting each expert's matrices too would multiply the units and
 * the transfers for no gain (DeepSeek-V3 runs experts expert-parallel, attention tensor-parallel).
 */
function routedRows(g: Graph, index: GraphIndex): (start: number) => boolean {
  // By node index and value id on the graph's index, not by Node and name: run from each of the
  // DeepSeek-V3 shape's 45k expert MatMuls, the walk looked up ~1M names (initializer map,
  // producer) and made a Set and a pair per step. Same walk, same order, same answers.
  const { inputOffsets, inputIds, producerOf } = index;
  const weights = index.initializerIds;
  /** Per node: 0 not a start yet, 1 routed, 2 not (a start's answer, as a Map of starts held). */
  const memo = new Uint8Array(index.size);
  /** Per node, the walk that saw it last (walks counted from 1): the seen set without a Set a walk. */
  const seenBy = new Int32Array(index.size);
  let walk = 0;
  const stack: number[] = []; // node, depth, node, depth…
  return (start: number): boolean => {
    walk++;
    let seen = 0;
    stack.length = 0;
    stack.push(start, 0);
    let found = false;
    while (stack.length > 0 && !found && seen < 64) {
      const depth = stack.pop()!;
      const n = stack.pop()!;
      if (seenBy[n] === walk) continue;
      seenBy[n] = walk;
      seen++;
      const known = n !== start ? memo[n] : 0;
      if (known === 1) {
        found = true;
        break;
      }
      if (known === 2) continue;
      if (g.nodes[n]!.op === 'NonZero') {
        found = true;
        break;
      }
      if (depth >= 8) continue;
      // The start's first input only (its rows), every input of the nodes behind it.
      const end = n === start ? Math.min(inputOffsets[n]! + 1, inputOffsets[n + 1]!) : inputOffsets[n + 1]!;
      for (let e = inputOffsets[n]!; e < end; e++) {
        const v = inputIds[e]!;
        if (v === -1 || weights[v] === 1) continue;
        const p = producerOf[v]!;
        if (p !== -1) stack.push(p, depth + 1);
      }
    }
    memo[start] = found ? 1 : 2;
    return found;
  };
}

/**
 * The MoE routers' gate MatMuls: back from each TopK's scores through the ops the moe pass traces a
 * router through (src/moe/detect-router.ts) to a MatMul. A gate's output is a score per expert —
 * small — and splitting it would hide the router from the moe pass (the layer's experts would then
 * run as if every token reached each).
 */
function routerGates(g: Graph, producer: (v: string) => Node | undefined): Set<Node> {
  const gates = new Set<Node>();
  const topks = g.nodes.filter((n) => n.op === 'TopK' && n.domain === '');
  if (topks.length === 0) return gates;
  for (const t of topks) {
    let v = t.inputs[0];
    for (let depth = 0; depth < 8 && v; depth++) {
      const p = producer(v);
      if (!p) break;
      if (p.op === 'MatMul') {
        gates.add(p);
        break;
      }
      if (!ROUTER_CHAIN.has(p.op)) break;
      // Its one non-constant input (initializers and Constant nodes are constants), as the moe pass reads it.
      const live = p.inputs.filter((x) => x && !g.initializers.has(x) && producer(x)?.op !== 'Constant');
      if (live.length !== 1) break;
      v = live[0];
    }
  }
  return gates;
}

/**
 * Per attention node: how its head shards hold the KV cache (src/transform/tensor-parallel.ts).
 * `join` when it starts the planned step with no past — none read, or a past graph input whose
 * sequence axis (2 of [batch, kv_heads, past, head_dim]) is 0 under the dims this run binds (a
 * prefill): the empty past is split for free and the present joined once. `io` when its past is
 * read from graph inputs (a decode step): each shard's heads become graph inputs and outputs of
 * their own, so the cache stays with its shard between steps instead of crossing the links twice
 * a step. Otherwise (a past computed in the graph) attention stays whole.
 */
export function headModes(ctx: Pick<PassContext, 'model' | 'options' | 'option'>): (attention: Node) => HeadMode | null {
  let dims: Record<string, number> | null;
  try {
    dims = bindDims(ctx).dims;
  } catch {
    dims = null; // the bind pass reports what is wrong with the dims
  }
  const inputs = new Map(ctx.model.graph.inputs.map((v) => [v.name, v]));
  return (attention) => {
    const pasts = (headParallel(attention, 1)?.past ?? []).map((slot) => attention.inputs[slot]).filter((v): v is string => !!v);
    const empty = pasts.every((past) => {
      const axis = inputs.get(past)?.type?.shape?.[2];
      return dims !== null && axis !== undefined && evalDim(axis, dims) === 0;
    });
    if (empty) return 'join';
    return pasts.every((past) => inputs.has(past)) ? 'io' : null;
  };
}

/**
 * The key and value projection MatMuls (splittable into k) of every attention op (GroupQueryAttention, MultiHeadAttention) whose query
 * projection is among `targets`: each found back from the op's input through casts and
 * elementwise ops (an fp8 dequantize, a bias).
 */
function attentionPartners(g: Graph, producer: (v: string) => Node | undefined, targets: ReadonlySet<string>, k: number): string[] {
  const attentions = g.nodes.filter((n) => HEAD_ATTENTION_OPS.has(n.op) && n.domain === 'com.microsoft');
  if (attentions.length === 0) return [];
  const matMulOf = (v: string | undefined): Node | null => {
    for (let depth = 0; depth < 4 && v; depth++) {
      const p = producer(v);
      if (!p) return null;
      if (p.op === 'MatMul') return p;
      if (!['Cast', 'Add', 'Mul', 'Identity'].includes(p.op)) return null;
      v = p.inputs.find((x) => x && !g.initializers.has(x));
    }
    return null;
  };
  const found: string[] = [];
  for (const n of attentions) {
    if (!targets.has(matMulOf(n.inputs[0])?.name ?? '')) continue;
    for (const slot of [1, 2]) {
      const m = matMulOf(n.inputs[slot]);
      if (m && !targets.has(m.name) && splittable(g, m, k)) found.push(m.name);
    }
  }
  return found;
}

/** Parts of a split under --tensor-parallel auto: the largest power of two of the NVLink-class group, at most this. */
const MAX_AUTO_WAYS = 8;

export const TENSOR_PARALLEL = stringOption({
  name: 'tensor-parallel',
  arg: '<mode>',
  help: `auto (default): MatMuls with ≥ 4Mi weights split over the largest NVLink-class group (at most ${MAX_AUTO_WAYS}), weighed against the plan without; off; or N: force N parts`,
});

export const tpPass: Pass<TpResult> = {
  name: 'tp',
  summary: 'tensor parallelism where it pays: split large weight MatMuls column-wise across identical devices on a dedicated link',
  requires: ['import'],
  kind: 'transform',
  // The phase and sizes too: whether attention's past is empty decides how its shards hold the cache (headModes).
  options: [TENSOR_PARALLEL, PHASE, BATCH, PROMPT, CONTEXT],
  run(ctx) {
    const flag = ctx.option(TENSOR_PARALLEL) ?? 'auto';
    if (flag === 'off') return { k: 1, reason: 'off', group: [], splits: [], io: [] };
    const group = tensorParallelGroup(ctx.topology());
    let k: number;
    let min: number;
    let reason: string;
    if (flag === 'auto') {
      // Up to 8 parts: the tensor-parallel degree vLLM and Megatron take on an 8-GPU NVSwitch server.
      // Capped at 4 before, hxc's own plan lost to a hand-written TP-8 (Mixtral-8x7B prefill on
      // rack-8gpu: 16.782 against 16.297 ms forced 8-way; DeepSeek-V3 shape decode 57.141 against 55.776 ms).
      k = Math.min(MAX_AUTO_WAYS, 2 ** Math.floor(Math.log2(Math.max(1, group.length))));
      if (k < 2) return { k: 1, reason: 'auto: no two identical accelerators share a dedicated link', group: [], splits: [], io: [] };
      min = AUTO_MIN_WEIGHT_ELEMENTS;
      reason = `auto: ${k}-way over ${group.slice(0, k).join(', ')}`;
    } else {
      k = Number(flag);
      if (!Number.isInteger(k) || k < 2)
        throw new HxcError('HXC2403', `--tensor-parallel takes auto, off or a whole number ≥ 2, got "${String(flag)}"`, { where: '--tensor-parallel' });
      // Parts on one device are overhead, never parallelism: more parts than devices is no plan.
      const devices = ctx.topology().devices.length;
      if (k > devices)
        throw new HxcError('HXC2403', `${k} parts need ${k} devices, and the rack has ${devices}`, {
          where: '--tensor-parallel',
          hint: `give at most ${devices}${group.length >= 2 ? ` (its NVLink-class group has ${group.length}: ${group.join(', ')})` : ''}, or auto`,
        });
      min = FORCED_MIN_WEIGHT_ELEMENTS;
      reason = `forced: ${k}-way`;
    }
    const g = ctx.model.graph;
    // The variant driver may narrow the splits to those that paid in an earlier variant.
    const only = ctx.options.tp_targets ? new Set(ctx.options.tp_targets) : null;
    const targets = new Set<string>();
    // Each value's producing node, which the MoE and attention tracing below all walk back through:
    // the graph's index, which the import built, not a map of the pass's own (0.3 s on a 275k-node graph).
    const index = GraphIndex.of(g);
    const producer = (v: string): Node | undefined => {
      const p = index.producer.get(v);
      return p === undefined ? undefined : g.nodes[p];
    };
    const routed = routedRows(g, index);
    const gates = routerGates(g, producer);
    const experts: string[] = [];
    // (A counted loop: run once, this for-of stayed unoptimised and made an iterator result per node, 11 MB, sampled.)
    for (let i = 0; i < g.nodes.length; i++) {
      const n = g.nodes[i]!;
      if (!splittable(g, n, k) || (only && !only.has(n.name))) continue;
      const w = g.initializers.get(n.inputs[1]!)!;
      if (w.dims[0]! * w.dims[1]! < min || gates.has(n)) continue;
      if (routed(i)) experts.push(n.name);
      else targets.add(n.name);
    }
    // Experts' matrices too when there are few (Mixtral: 8 per layer, split as vLLM does); with
    // many (DeepSeek-V3: 256 per layer, 44,544 matrices) expert parallelism alone spreads them
    // over the group, and splitting each would multiply the plan's units and transfers by k.
    if (experts.length <= MAX_EXPERT_SPLITS) for (const name of experts) targets.add(name);
    // An attention's key and value projections go with its query's: under grouped-query attention
    // they are smaller (kv_heads/heads of it: Qwen2-7B's 3584×512 against its 3584×3584 query),
    // below the size bar, and without them the heads cannot be sharded.
    if (!only) for (const name of attentionPartners(g, producer, targets, k)) targets.add(name);
    const devices = group.length >= k ? group.slice(0, k) : [];
    if (targets.size === 0) {
      // Why nothing splits: no MatMul of weights large enough, or none whose columns k divides.
      let undivided: { name: string; dims: number[] } | null = null;
      let undividedCount = 0;
      for (let i = 0; i < g.nodes.length && !only; i++) {
        const n = g.nodes[i]!;
        if (!splittable(g, n, 1) || splittable(g, n, k) || gates.has(n)) continue;
        const w = g.initializers.get(n.inputs[1]!)!;
        if (w.dims[0]! * w.dims[1]! < min) continue;
        undividedCount++;
        undivided ??= { name: n.name, dims: w.dims };
      }
      const why = undivided
        ? `no MatMul large enough has a column count ${k} divides (${undividedCount} large enough ${undividedCount === 1 ? 'has' : 'have'} not, e.g. "${undivided.name}", ${undivided.dims.join('×')})`
        : 'no MatMul large enough';
      if (flag !== 'auto')
        ctx.diagnostics.warn('HXC1113', `--tensor-parallel ${k} splits nothing: ${why}`, {
          hint: undivided
            ? `choose a way count that divides the weights' columns (e.g. 2 or 4), or auto`
            : 'drop --tensor-parallel: the model has no MatMul worth splitting',
        });
      return { k, reason: `${reason}: ${why}`, group: devices, splits: [], io: [] };
    }
    const { graph, splits, io } = splitMatMuls(g, targets, k, { heads: headModes(ctx), opset: ctx.model.opsets[''] ?? ctx.model.opsets['ai.onnx'] });
    ctx.model = { ...ctx.model, graph };
    return { k, reason: only ? `${reason}, the ${targets.size} MatMuls whose splits paid` : reason, group: devices, splits, io };
  },
  statistics(r) {
    return { k: r.k, 'matmuls split': r.splits.length };
  },
  dump(r) {
    return [`k=${r.k} (${r.reason})`, ...r.splits.map((s) => `${s.node} -> ${s.parts.join(', ')}`)].join('\n') + '\n';
  },
};
