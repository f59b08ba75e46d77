// profile: per node FLOPs, bytes read and written, parameter bytes and arithmetic intensity, from
// the shapes pass's types evaluated at the bound dims; graph totals; optional calibration from a
// measured profile (`--calibrate FILE`). Formulas live in src/cost/flops.ts, times in src/cost/model.ts.

import { ROUTING } from '../src/moe/routing.js';
import { fileOption } from '../src/pass/options.js';
import { fusedInto } from '../src/cost/fusion.js';
import { fitEfficiency, readCalibration, type CalibrationReport } from '../src/cost/calibrate.js';
import { FREE_OPS, nodeFlops, nodeTiles, opClass, type OpClass } from '../src/cost/flops.js';

/** Ops whose first input is a table they index into (bytes read = rows gathered + indices). */
const GATHER_OPS = new Set(['Gather', 'GatherElements', 'GatherND']);
import { computeTime, type EfficiencyTable } from '../src/cost/model.js';
import { NodeCosts, present } from '../src/cost/node-costs.js';
import { byteSizeOf, isFloat, type DType } from '../src/ir/dtype.js';
import { nodesBySource, sameNodeIn, type GraphIndex } from '../src/ir/algorithms.js';
import type { Graph, TensorType } from '../src/ir/graph.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import { evalDim } from '../src/shapes/symbolic.js';
import { sameRecord } from '../src/shapes/infer.js';
import { expectedExpertCounts } from '../src/moe/expected.js';
import { bindPass } from './bind.js';
import { replicatePass } from './replicate.js';
import { shapesPass } from './shapes.js';
import { verifyPass } from './verify.js';

export type { NodeCost } from '../src/cost/model.js';
export { NodeCosts } from '../src/cost/node-costs.js';

export interface ProfileResult {
  /** By node index, in columns (`at(i)`: node i's NodeCost). */
  nodes: NodeCosts;
  /** By node index: the node whose kernel it runs in on a fusing device, or -1 (src/cost/fusion.ts). */
  fused_into: Int32Array;
  /** By node index: the node computing the value a fused node reads in registers (its direct kernel producer), or -1. */
  fused_producer: Int32Array;
  /** By fused node index: the bytes fusion saves it reading that value, and its producer writing it (0 elsewhere). */
  fused_saved: { read: Float64Array; write: Float64Array };
  /** Bytes of every value with a known type at the bound dims, by value id (GraphIndex.valueIds); 0 when unknown. */
  value_bytes_by_id: Float64Array;
  /** The same by name. */
  value_bytes: { get(name: string): number | undefined };
  /** Numeric value of every symbol used (bound by the user, estimated, or defaulted to 1). */
  bindings: Record<string, number>;
  /** Data-dependent counts bound to their expectation (tokens per expert of routed MoE layers). */
  estimated: Record<string, number>;
  defaulted: string[];
  totals: {
    flops: number;
    bytes_read: number;
    bytes_written: number;
    param_bytes: number /** Nodes that run inside their producer's kernel on a fusing device (src/cost/fusion.ts). */;
    fused: number;
  };
  efficiency: EfficiencyTable;
  calibration: CalibrationReport | null;
}

/** A fused node's cost less the bytes fusion saves it reading (`read`) and writing (`written`). */
function unfuse(c: NodeCosts, i: number, read: number, written: number): void {
  c.bytes_read[i]! -= read;
  c.bytes_written[i]! -= written;
  c.bytes[i] = c.bytes_read[i]! + c.bytes_written[i]!;
  c.fused_bytes[i] = (present(c.fused_bytes[i]!) ?? 0) + read + written;
  c.intensity[i] = c.bytes[i]! > 0 ? c.flops[i]! / c.bytes[i]! : 0;
}

/**
 * Numeric shape at the bindings; a symbol left free takes the default binding (1). Each symbolic
 * dim is evaluated once (`known`): a graph repeats a few of them over most of its values (the
 * DeepSeek-V3 shape: 14,848 expert token counts over 320k values, 430 MB of polynomial arithmetic
 * per variant when evaluated each time).
 */
function numeric(t: TensorType | undefined, bind: Record<string, number>, known: Map<string, number>): number[] | null {
  if (!t?.shape) return null;
  let out: number[] | null = null;
  for (let k = 0; k < t.shape.length; k++) {
    const d = t.shape[k]!;
    if (typeof d !== 'number') {
      out ??= t.shape.slice(0, k) as number[];
      out.push(numericDim(d, bind, known));
    } else if (out) out.push(d);
  }
  return out ?? (t.shape as number[]);
}

/** A symbolic dim's value at the bindings (1 when a symbol stays free), each distinct dim evaluated once. */
function numericDim(d: string, bind: Record<string, number>, known: Map<string, number>): number {
  let v = known.get(d);
  if (v === undefined) known.set(d, (v = evalDim(d, bind) ?? 1));
  return v;
}

/**
 * Elements of a value of type `t` at the bindings, or -1 when its shape is unknown: elementCount of
 * its numeric shape (src/shapes/rule.ts), the same products in the same order, without making that
 * shape (an array per value with a symbolic dim: 200k on the DeepSeek-V3 shape, kept to the end of
 * the pass).
 */
function numericElements(t: TensorType | undefined, bind: Record<string, number>, known: Map<string, number>): number {
  const shape = t?.shape;
  if (!shape) return -1;
  let n = 1;
  for (let k = 0; k < shape.length; k++) {
    const d = shape[k]!;
    n *= typeof d === 'number' ? d : numericDim(d, bind, known);
  }
  return n;
}

/** Node i's compute dtype: its first float input or output (in that order), else its first typed one. */
function computeDtype(index: GraphIndex, i: number, types: readonly (TensorType | undefined)[]): DType {
  const { inputOffsets, inputIds, outputOffsets, outputIds } = index;
  const ins = inputOffsets[i + 1]! - inputOffsets[i]!;
  const count = ins + outputOffsets[i + 1]! - outputOffsets[i]!;
  let first: DType | undefined;
  for (let k = 0; k < count; k++) {
    const id = k < ins ? inputIds[inputOffsets[i]! + k]! : outputIds[outputOffsets[i]! + k - ins]!;
    const t = id >= 0 ? types[id] : undefined;
    if (!t) continue;
    if (isFloat(t.dtype)) return t.dtype;
    first ??= t.dtype;
  }
  return first ?? 'float32';
}

/**
 * Value bytes by name, a closure made outside profileGraph: V8 gives every closure of a function
 * one shared context, and a lookup made in there kept all its locals alive with the result — the
 * numeric shape of every value (323k arrays on the DeepSeek-V3 shape) to the end of planning.
 */
function valueBytesByName(index: GraphIndex, bytesById: Float64Array): ProfileResult['value_bytes'] {
  return {
    get: (name: string): number | undefined => {
      const id = index.valueIds.get(name);
      return id === undefined ? undefined : bytesById[id];
    },
  };
}

/**
 * What one profile leaves for another over a graph sharing most of its nodes (the variant without
 * tensor-parallel splits for the one with them, as src/shapes/infer.ts InferMemo does for types):
 * per node, its op class, FLOPs, tiles and compute dtype. Those depend only on the node and the
 * types of its inputs and outputs at the bindings (nodeFlops, nodeTiles, computeDtype), so a node
 * that is the same object, with inputs and outputs of the same type objects (the shapes pass found
 * them in one tree of distinct types) at the same bindings, takes them; the rest is computed again.
 * Bytes, weights, activity and fusion are the graph's own and always computed.
 */
export class ProfileMemo {
  readonly flops: Float64Array;
  readonly tiles: Float64Array;
  readonly kSplits: Float64Array;
  /** By node index: 1 + the code of its op class and of its dtype (0: not kept, a task node). */
  readonly classCode: Uint8Array;
  readonly dtypeCode: Uint8Array;
  private readonly classes: OpClass[] = [];
  private readonly dtypes: DType[] = [];

  constructor(
    readonly graph: Graph,
    readonly index: GraphIndex,
    readonly typesById: readonly (TensorType | undefined)[],
    readonly bindings: Record<string, number>,
  ) {
    const n = graph.nodes.length;
    this.flops = new Float64Array(n);
    this.tiles = new Float64Array(n);
    this.kSplits = new Float64Array(n);
    this.classCode = new Uint8Array(n);
    this.dtypeCode = new Uint8Array(n);
  }

  keep(i: number, cls: OpClass, flops: number, tiles: number, kSplits: number, dtype: DType): void {
    this.flops[i] = flops;
    this.tiles[i] = tiles;
    this.kSplits[i] = kSplits;
    this.classCode[i] = 1 + codeOf(this.classes, cls);
    this.dtypeCode[i] = 1 + codeOf(this.dtypes, dtype);
  }

  opClass(i: number): OpClass {
    return this.classes[this.classCode[i]! - 1]!;
  }

  dtype(i: number): DType {
    return this.dtypes[this.dtypeCode[i]! - 1]!;
  }
}

/** `x`'s place in `list`, added on first sight (a few op classes and dtypes). */
function codeOf<T>(list: T[], x: T): number {
  let k = list.indexOf(x);
  if (k < 0) k = list.push(x) - 1;
  return k;
}

/**
 * By node index of `graph`: the memo's index of the same node when it kept one and every input and
 * output has the same type object there, else -1. (Counted loops over the CSR arrays: every node.)
 */
export function memoNodes(memo: ProfileMemo, graph: Graph, index: GraphIndex, types: readonly (TensorType | undefined)[]): Int32Array {
  const bySource = nodesBySource(memo.graph);
  const at = new Int32Array(graph.nodes.length).fill(-1);
  const m = memo.index;
  const sameTypes = (ids: Int32Array, from: number, to: number, memoIds: Int32Array, memoFrom: number): boolean => {
    for (let e = from; e < to; e++) {
      const id = ids[e]!;
      if ((id < 0 ? undefined : types[id]) !== (memoIds[memoFrom + e - from]! < 0 ? undefined : memo.typesById[memoIds[memoFrom + e - from]!])) return false;
    }
    return true;
  };
  for (let i = 0; i < graph.nodes.length; i++) {
    const p = sameNodeIn(memo.graph, bySource, graph.nodes[i]!);
    if (p < 0 || memo.classCode[p] === 0) continue;
    if (!sameTypes(index.inputIds, index.inputOffsets[i]!, index.inputOffsets[i + 1]!, m.inputIds, m.inputOffsets[p]!)) continue;
    if (!sameTypes(index.outputIds, index.outputOffsets[i]!, index.outputOffsets[i + 1]!, m.outputIds, m.outputOffsets[p]!)) continue;
    at[i] = p;
  }
  return at;
}

export function profileGraph(ctx: PassContext): ProfileResult {
  const graph = ctx.model.graph;
  const { index } = ctx.get(verifyPass);
  const typesByName = ctx.get(shapesPass).types;
  // Every symbol still free after shapes gets a default of 1 (one warning names them): the free
  // symbols of every shape, as the shapes pass lists them, less those bound (a scan of every
  // value's dims was 60-80 ms of a DeepSeek-V3-shaped variant).
  const bindings: Record<string, number> = { ...ctx.get(bindPass).dims };
  const free = new Set<string>();
  for (const s of ctx.get(shapesPass).symbols) if (!(s in bindings)) free.add(s);
  // Tokens per expert in routed MoE layers: their expectation, not 1 (src/moe/expected.ts).
  const routing = ctx.option(ROUTING) ?? null;
  const estimated: Record<string, number> = {};
  const experts = expectedExpertCounts(ctx.model, index, ctx.get(verifyPass).order, typesByName, bindings, routing);
  for (const [sym, count] of experts.counts) {
    bindings[sym] = count;
    estimated[sym] = count;
    free.delete(sym);
  }
  // Rows each expert replica takes: an equal share of the expert's expected rows (the runtime
  // rebalances by load; the plan prices the even split).
  if (ctx.has(replicatePass)) {
    for (const r of ctx.get(replicatePass).replicated) {
      const rows = typesByName.get(r.rows)?.shape?.[0];
      const n = rows === undefined ? undefined : typeof rows === 'number' ? rows : evalDim(rows, bindings);
      if (n === undefined) continue;
      r.replicas.forEach((_, j) => {
        const d = typesByName.get(`${r.key}/rows${j}`)?.shape?.[0];
        if (typeof d === 'string' && free.has(d)) {
          bindings[d] = Math.max(1, Math.round(n / r.replicas.length));
          estimated[d] = bindings[d]!;
          free.delete(d);
        }
      });
    }
  }
  const defaulted = [...free].sort();
  for (const s of defaulted) bindings[s] = 1;
  if (defaulted.length > 0) {
    ctx.diagnostics.warn(
      'HXC1104',
      `dims not bound, costed at 1: ${defaulted.slice(0, 8).join(', ')}${defaulted.length > 8 ? `, … (${defaulted.length} in all)` : ''}`,
      { hint: 'bind them with --dim NAME=VALUE (or --phase/--batch/--context for LLMs)' },
    );
  }
  // Per value id, looked up once: type, bytes, whether it is a weight. (Types by id as the shapes
  // pass keeps them; by name when it ran without the index.)
  const valueCount = index.valueNames.length;
  const typesById = ctx.get(shapesPass).types_by_id;
  const types: readonly (TensorType | undefined)[] = typesById ?? index.valueNames.map((name) => typesByName.get(name));
  const bytesById = new Float64Array(valueCount);
  // Weights: the initializers, and below the outputs of Constant nodes.
  const isWeight = index.initializerIds.slice();
  const known = new Map<string, number>();
  for (let id = 0; id < valueCount; id++) {
    const t = types[id];
    const elements = numericElements(t, bindings, known);
    if (elements >= 0) bytesById[id] = byteSizeOf(t!.dtype, elements);
  }
  // Declared sizes by their own (shorter) list: a lookup per value was a tenth of the pass.
  graph.declared_bytes.forEach((declared, name) => {
    const id = index.valueIds.get(name);
    if (id !== undefined) bytesById[id] = declared;
  });
  // Node inputs and outputs read from the index's CSR arrays with counted loops: a subarray view and
  // for-of iterator results per node were 220 MB of this pass's allocation (sampled).
  const { inputOffsets, inputIds, outputOffsets, outputIds } = index;
  for (let i = 0; i < graph.nodes.length; i++) {
    const node = graph.nodes[i]!;
    if (node.op !== 'Constant' || node.domain !== '') continue;
    for (let e = outputOffsets[i]!; e < outputOffsets[i + 1]!; e++) if (outputIds[e]! >= 0) isWeight[outputIds[e]!] = 1;
  }
  // Numeric shapes made for the nodes whose FLOPs are computed here (not another variant's), as
  // they are read. (A plain loop: Array.from(typedArray, fn) is many times slower in V8.)
  const shapesOf = (ids: Int32Array, from: number, to: number): (number[] | null)[] => {
    const out: (number[] | null)[] = new Array(to - from);
    for (let e = from; e < to; e++) out[e - from] = ids[e]! >= 0 ? numeric(types[ids[e]!], bindings, known) : null;
    return out;
  };

  const totals = { flops: 0, bytes_read: 0, bytes_written: 0, param_bytes: 0, fused: 0 };
  const nodes = new NodeCosts(graph.nodes.length);
  const fusion = fusedInto(graph, index, ctx.get(verifyPass).order);
  const fusedHead = fusion.head;
  // Experts' activity and grouped layer, by node index.
  const activityOf = experts.activity;
  const groupOf = experts.grouped;
  // Another variant's per-node results (ProfileMemo), read once; and what this one leaves.
  const handoff = ctx.options.reuse_analyses;
  const memo = handoff?.profile && typesById && sameRecord(handoff.profile.bindings, bindings) ? handoff.profile : null;
  if (handoff) handoff.profile = null;
  const memoAt = memo ? memoNodes(memo, graph, index, typesById!) : null;
  const leaving = ctx.options.leave_analyses && typesById ? new ProfileMemo(graph, index, typesById, { ...bindings }) : null;
  for (let i = 0; i < graph.nodes.length; i++) {
    const node = graph.nodes[i]!;
    const insFrom = inputOffsets[i]!;
    const insTo = inputOffsets[i + 1]!;
    const outsFrom = outputOffsets[i]!;
    const outsTo = outputOffsets[i + 1]!;
    const p = memoAt ? memoAt[i]! : -1;
    let cls: OpClass;
    let flops: number;
    let tiles: number;
    let kSplits: number;
    let dtype: DType;
    if (p >= 0) {
      cls = memo!.opClass(p);
      flops = memo!.flops[p]!;
      tiles = memo!.tiles[p]!;
      kSplits = memo!.kSplits[p]!;
      dtype = memo!.dtype(p);
    } else {
      cls = node.task ? 'other' : opClass(node);
      const nodeShapes = { inputs: shapesOf(inputIds, insFrom, insTo), outputs: shapesOf(outputIds, outsFrom, outsTo) };
      flops = node.task?.flops ?? nodeFlops(node, nodeShapes);
      const tiled = node.task ? null : nodeTiles(node, nodeShapes);
      tiles = tiled ? tiled.tiles : 0;
      kSplits = tiled ? tiled.k_splits : 0;
      dtype = computeDtype(index, i, types);
      if (leaving && !node.task) leaving.keep(i, cls, flops, tiles, kSplits, dtype);
    }
    let bytesRead = 0;
    let bytesWritten = 0;
    let params = 0;
    for (let e = insFrom; e < insTo; e++) {
      const id = inputIds[e]!;
      if (id < 0) continue;
      const b = bytesById[id]!;
      if (isWeight[id]) {
        params += b;
        // The total counts each weight once, however many nodes read it (a tied embedding, a bias
        // read through an Identity): the bytes the model holds, as the import counts them.
        if (isWeight[id] === 1) {
          totals.param_bytes += b;
          isWeight[id] = 2;
        }
      }
      bytesRead += b;
    }
    for (let e = outsFrom; e < outsTo; e++) if (outputIds[e]! >= 0) bytesWritten += bytesById[outputIds[e]!]!;
    if (FREE_OPS.has(node.op) && node.domain === '') {
      // A view relabels its input buffer: nothing is read or written (onnxruntime aliases it).
      bytesRead = 0;
      bytesWritten = 0;
    } else if (GATHER_OPS.has(node.op) && node.domain === '' && insTo - insFrom >= 2) {
      // A gather reads the rows it gathers and its indices, not its whole table (ONNX Gather:
      // output = data[indices]); an embedding lookup of one token reads one row.
      const indices = inputIds[insFrom + 1]! >= 0 ? bytesById[inputIds[insFrom + 1]!]! : 0;
      bytesRead = Math.min(bytesRead, bytesWritten + indices);
    }
    if (node.task?.bytes !== undefined) {
      bytesRead = node.task.bytes;
      bytesWritten = 0;
    }
    if (!Number.isFinite(flops)) flops = 0;
    // An expert's body in a step where no token routes to it reads and computes nothing.
    const activity = activityOf[i];
    if (activity !== undefined && activity < 1) {
      flops *= activity;
      bytesRead *= activity;
      bytesWritten *= activity;
    }
    const moved = bytesRead + bytesWritten;
    const group = groupOf[i];
    // Into the columns (src/cost/node-costs.ts); the fields a node lacks stay absent.
    nodes.flops[i] = flops;
    nodes.bytes[i] = moved;
    nodes.bytes_read[i] = bytesRead;
    nodes.bytes_written[i] = bytesWritten;
    nodes.param_bytes[i] = params;
    nodes.intensity[i] = moved > 0 ? flops / moved : 0;
    nodes.setDtype(i, dtype);
    nodes.setOpClass(i, cls);
    if (node.task?.time_s) nodes.setTime(i, node.task.time_s);
    if (tiles > 0) {
      nodes.tiles[i] = tiles;
      if (kSplits > 1) nodes.k_splits[i] = kSplits;
    }
    if (activity !== undefined && activity < 1) nodes.activity[i] = activity;
    // In its layer's grouped kernels, launched once per device (src/cost/fusion.ts).
    if (group !== undefined && group.experts > 1) nodes.launch_group[i] = group.layer;
    if (fusedHead[i]! >= 0) {
      nodes.markFused(i);
      totals.fused++;
    }
    totals.flops += flops;
    totals.bytes_read += bytesRead;
    totals.bytes_written += bytesWritten;
  }
  const savedRead = new Float64Array(graph.nodes.length);
  const savedWrite = new Float64Array(graph.nodes.length);
  // A fused node reads its input in registers and its producer never writes it: on a fusing
  // device that round trip is not memory traffic (src/cost/fusion.ts); other kinds add it back.
  for (let i = 0; i < graph.nodes.length; i++) {
    const p = fusion.producer[i]!;
    if (p < 0) continue;
    // Every read of the value the node takes over in registers (Mul(h, h) reads it twice).
    let reads = 0;
    for (let e = inputOffsets[i]!; e < inputOffsets[i + 1]!; e++) if (inputIds[e] === fusion.input[i]) reads++;
    const read = Math.min(nodes.bytes_read[i]!, reads * bytesById[fusion.input[i]!]! * (present(nodes.activity[i]!) ?? 1));
    const written = Math.min(nodes.bytes_written[p]!, bytesById[fusion.output[i]!]! * (present(nodes.activity[p]!) ?? 1));
    savedRead[i] = read;
    savedWrite[i] = written;
    unfuse(nodes, i, read, 0);
    unfuse(nodes, p, 0, written);
    totals.bytes_read -= read;
    totals.bytes_written -= written;
  }
  const value_bytes = valueBytesByName(index, bytesById);
  if (leaving) ctx.options.leave_analyses!.profile = leaving;

  let calibration: CalibrationReport | null = null;
  let efficiency: EfficiencyTable = {};
  const calibrateFile = ctx.option(CALIBRATE);
  const measured = calibrateFile ? readCalibration(calibrateFile) : null;
  // Measured times hold at the dims they were measured at: telemetry of a run at other dims (another
  // prompt, batch or phase) calibrates nothing, said once, rather than price an 8-token prompt with
  // a 256-token one's times.
  const otherDims = measured?.dims ? Object.entries(measured.dims).filter(([k, v]) => bindings[k] !== undefined && bindings[k] !== v) : [];
  if (measured && otherDims.length > 0)
    ctx.diagnostics.warn(
      'HXC1105',
      `measured at ${otherDims.map(([k, v]) => `${k}=${v}`).join(', ')}, but this plan binds ${otherDims.map(([k]) => `${k}=${bindings[k]}`).join(', ')}: its times are not used`,
      { where: calibrateFile!, hint: 'calibrate with telemetry of a run at these dims (hxc run of a plan made at them)' },
    );
  if (measured && otherDims.length === 0) {
    const items = graph.nodes.map((n, i) => ({
      name: n.name,
      flops: nodes.flops[i]!,
      dtype: nodes.dtypeAt(i),
      op_class: nodes.opClassAt(i),
      tiles: present(nodes.tiles[i]!),
      k_splits: present(nodes.k_splits[i]!),
    }));
    const topo = ctx.topology();
    // A measured group (a whole program) is split over its nodes in proportion to their estimates
    // on that kind: the shares are the model's, the total is the measurement's.
    const byName = new Map(graph.nodes.map((n, i) => [n.name, i]));
    for (const g of measured.groups) {
      const device = topo.devices.find((d) => d.kind === g.kind);
      if (!device) continue;
      const idx = g.nodes.map((n) => byName.get(n)).filter((i): i is number => i !== undefined);
      const est = idx.map((i) => computeTime(nodes.view(i), device));
      const total = est.reduce((a, b) => a + b, 0);
      let m = measured.by_kind.get(g.kind);
      if (!m) measured.by_kind.set(g.kind, (m = new Map()));
      idx.forEach((i, k) => {
        const share = total > 0 ? est[k]! / total : 1 / idx.length;
        if (!m!.has(graph.nodes[i]!.name)) m!.set(graph.nodes[i]!.name, g.seconds * share);
      });
    }
    calibration = fitEfficiency(measured, items, (kind) => topo.devices.find((d) => d.kind === kind));
    efficiency = calibration.efficiency;
    const index = new Map(graph.nodes.map((n, i) => [n.name, i]));
    for (const [kind, times] of measured.by_kind) {
      for (const [name, seconds] of times) {
        const i = index.get(name);
        if (i !== undefined) nodes.measuredFor(i)[kind] = seconds;
      }
    }
    if (calibration.unmatched_names > 0) {
      // onnxruntime's profile names the kernels it ran: after its graph optimizations, fused ones
      // (LayerNormFusion, GPT2Gelu, MatmulTransposeFusion…) that are no node of the model. Their
      // time is not used, said with its share, and how to time the model node by node.
      const c = calibration;
      const share = c.matched_s + c.unmatched_s > 0 ? (100 * c.unmatched_s) / (c.matched_s + c.unmatched_s) : 0;
      ctx.diagnostics.warn(
        'HXC1105',
        `${c.unmatched_names} measured names are no node of this model (${c.unmatched_examples.join(', ')}${c.unmatched_names > c.unmatched_examples.length ? ', …' : ''}; ${share.toFixed(1)}% of the measured time, not used; ${c.matched_nodes} matched)`,
        {
          where: calibrateFile,
          hint:
            c.source === 'onnxruntime-profile'
              ? "they are onnxruntime's fused kernels: profile with graph optimizations off (graphOptimizationLevel: 'disabled') to time node by node, or calibrate with the telemetry hxc run writes"
              : 'calibrate with a profile of the same model',
        },
      );
    }
    if (measured.cold)
      ctx.diagnostics.warn(
        'HXC1105',
        "calibrated from one request at the plan's dims: every program's first, cold run (the first request runs 2-3x the later ones)",
        {
          where: calibrateFile!,
          hint: 'run the plan with --iterations 3 or more and calibrate with that telemetry (its first request is left out as a warm-up)',
        },
      );
    // Kinds measured and kinds priced from the catalog, weighed against each other: a plan may move
    // work to a kind nothing measured because its datasheet looks fast next to measured times (a
    // run of CPU stand-ins calibrating cpu and gpu, the rack's Gaudi left on its catalog numbers).
    const measuredKinds = [...new Set(calibration.factors.map((f) => f.kind))].sort();
    const unmeasured = [...new Set(topo.devices.map((d) => d.kind))].filter((k) => !measured.by_kind.has(k)).sort();
    if (measuredKinds.length > 0 && unmeasured.length > 0)
      ctx.diagnostics.warn(
        'HXC1117',
        `calibrated ${measuredKinds.join(', ')} from measurement; ${unmeasured.join(', ')} ${unmeasured.length === 1 ? 'keeps its' : 'keep their'} catalog numbers, so the plan weighs measured times against datasheet ones`,
        { where: calibrateFile!, hint: 'measure a run that uses every kind (place some work there with --assign) and calibrate with its telemetry' },
      );
  }
  return {
    nodes,
    fused_into: fusedHead,
    fused_producer: fusion.producer,
    fused_saved: { read: savedRead, write: savedWrite },
    value_bytes_by_id: bytesById,
    value_bytes,
    bindings,
    estimated,
    defaulted,
    totals,
    efficiency,
    calibration,
  };
}

const fmt = (x: number): string => (x === 0 ? '0' : x >= 1e4 || x < 1e-2 ? x.toExponential(3) : String(Number(x.toFixed(3))));

export const CALIBRATE = fileOption({
  name: 'calibrate',
  arg: '<file>',
  on: ['inspect', 'check'],
  help: 'measured profile (onnxruntime profiler JSON or hxc-telemetry/v1) to calibrate the cost model: measured node times replace estimates, efficiency per device kind and op class is fitted',
});

export const profilePass: Pass<ProfileResult> = {
  name: 'profile',
  summary: 'per node FLOPs, bytes read/written, parameter bytes, arithmetic intensity; calibration from a measured profile',
  requires: ['verify', 'bind', 'shapes'],
  uses: ['replicate'],
  options: [CALIBRATE, ROUTING],
  run: profileGraph,
  statistics(r) {
    const stats: Record<string, number | string> = {
      'total flops': r.totals.flops,
      'bytes read': r.totals.bytes_read,
      'bytes written': r.totals.bytes_written,
      'param bytes': r.totals.param_bytes,
      'fused nodes': r.totals.fused,
      'defaulted dims': r.defaulted.length,
    };
    if (r.calibration) stats['calibrated nodes'] = r.calibration.matched_nodes;
    return stats;
  },
  dump(r, ctx) {
    const lines = [
      `bindings: ${
        Object.entries(r.bindings)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => `${k}=${v}`)
          .join(', ') || '(none)'
      }`,
    ];
    lines.push(`totals: flops=${r.totals.flops} bytes_read=${r.totals.bytes_read} bytes_written=${r.totals.bytes_written} param_bytes=${r.totals.param_bytes}`);
    ctx.model.graph.nodes.forEach((n, i) => {
      const c = r.nodes.view(i);
      lines.push(
        `${n.name}: ${n.op} class=${c.op_class} dtype=${c.dtype} flops=${c.flops} read=${c.bytes_read} written=${c.bytes_written} params=${c.param_bytes} intensity=${fmt(c.intensity)}`,
      );
    });
    if (r.calibration) {
      lines.push(`calibration (${r.calibration.source}): matched ${r.calibration.matched_nodes}, unmatched ${r.calibration.unmatched_names}`);
      for (const f of r.calibration.factors)
        lines.push(`  ${f.kind} ${f.op_class}: factor ${fmt(f.factor)} over ${f.nodes} nodes (measured ${fmt(f.measured_s)} s, ideal ${fmt(f.estimated_s)} s)`);
    }
    return lines.join('\n') + '\n';
  },
  nodeNote(r, _ctx, i) {
    const flops = r.nodes.flops[i]!;
    const bytes = r.nodes.bytes[i]!;
    return flops > 0 || bytes > 0 ? `flops=${fmt(flops)} bytes=${fmt(bytes)}` : undefined;
  },
};
