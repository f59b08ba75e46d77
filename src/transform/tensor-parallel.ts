// Tensor parallelism as a graph rewrite (Megatron-LM's column-parallel linear, Shoeybi et al.
// 2019, §3): Y = X·W with W [K, N] becomes Y = Concat(X·W₀, …, X·W_{k−1}) over column blocks
// W_j = W[:, jN/k : (j+1)N/k]. Every output element is computed exactly as before (same dot
// product), so the split model gives the same numbers; the k products are independent nodes the
// partitioner can put on k devices, and the Concat gathers them.

import { byteSizeOf, dtypeBits } from '../ir/dtype.js';
import type { Graph, Node, TensorData } from '../ir/graph.js';

export interface SplitResult {
  graph: Graph;
  /** Per split MatMul: its name and the names of its k part nodes. */
  splits: { node: string; parts: string[] }[];
}

/** A MatMul whose second input is a 2-D initializer with N divisible by k, and whose bytes we hold (or that holds none: graph-only). */
export function splittable(graph: Graph, node: Node, k: number): boolean {
  if (node.op !== 'MatMul' || node.domain !== '' || node.inputs.length !== 2) return false;
  const w = graph.initializers.get(node.inputs[1]!);
  if (!w || w.dims.length !== 2 || w.dims[1]! % k !== 0 || dtypeBits(w.dtype) % 8 !== 0) return false;
  return w.location.kind === 'inline' || w.location.kind === 'absent' || (w.location.kind === 'external' && !w.location.present);
}

/** Column block j of a row-major [K, N] tensor: a new inline tensor (or absent when the source has no bytes). */
function columnBlock(w: TensorData, j: number, k: number, name: string): TensorData {
  const [K, N] = w.dims as [number, number];
  const n = N / k;
  const elem = dtypeBits(w.dtype) / 8;
  const byte_size = byteSizeOf(w.dtype, K * n);
  if (w.location.kind !== 'inline') return { name, dtype: w.dtype, dims: [K, n], byte_size, location: { kind: 'absent' } };
  const src = w.location.data;
  const out = new Uint8Array(byte_size);
  for (let r = 0; r < K; r++) out.set(src.subarray((r * N + j * n) * elem, (r * N + (j + 1) * n) * elem), r * n * elem);
  return { name, dtype: w.dtype, dims: [K, n], byte_size, location: { kind: 'inline', data: out } };
}

export function splitMatMuls(graph: Graph, targets: ReadonlySet<string>, k: number): SplitResult {
  const nodes: Node[] = [];
  const initializers = new Map(graph.initializers);
  const declared = new Map(graph.declared);
  const splits: SplitResult['splits'] = [];
  graph.nodes.forEach((node, i) => {
    const source_index = node.source_index === undefined ? i : node.source_index;
    if (!targets.has(node.name) || !splittable(graph, node, k)) {
      nodes.push({ ...node, source_index });
      return;
    }
    const [x, wName] = node.inputs as [string, string];
    const w = graph.initializers.get(wName)!;
    const y = node.outputs[0]!;
    const parts: string[] = [];
    const partOutputs: string[] = [];
    for (let j = 0; j < k; j++) {
      const wj = `${wName}/tp${j}of${k}`;
      initializers.set(wj, columnBlock(w, j, k, wj));
      declared.set(wj, { dtype: w.dtype, shape: [w.dims[0]!, w.dims[1]! / k] });
      const name = `${node.name}/tp${j}of${k}`;
      parts.push(name);
      partOutputs.push(`${y}/tp${j}of${k}`);
      nodes.push({ name, op: 'MatMul', domain: '', inputs: [x, wj], outputs: [`${y}/tp${j}of${k}`], attrs: {}, outer_refs: [], source_index: null });
    }
    nodes.push({ name: `${node.name}/tp_gather`, op: 'Concat', domain: '', inputs: partOutputs, outputs: [y], attrs: { axis: { type: 'int', value: -1 } }, outer_refs: [], source_index: null });
    splits.push({ node: node.name, parts });
  });
  // Weights only the split MatMuls read are gone (their blocks replace them).
  const read = new Set<string>();
  for (const n of nodes) for (const v of n.inputs) read.add(v);
  for (const name of [...initializers.keys()]) if (!read.has(name) && !graph.inputs.some((v) => v.name === name)) initializers.delete(name);
  return { graph: { ...graph, nodes, initializers, declared }, splits };
}
