// Kernel fusion: which nodes run inside the kernel of the node that feeds them, and so pay no
// launch of their own on a device whose runtime fuses.
//
// The rule is the epilogue / pointwise fusion every GPU inference runtime applies: an elementwise
// op (or a Cast) whose input comes from a node with no other consumer is computed on that node's
// output while it is still in registers, in the same kernel — onnxruntime's CUDA EP graph
// transformers (MatMul+Add → Gemm/FusedMatMul, BiasGelu, BiasDropout, SkipLayerNorm fusions:
// onnxruntime/core/optimizer/*_fusion.cc), TensorRT's pointwise fusion ("Layer Fusion" in the
// TensorRT Developer Guide: a chain of pointwise layers fuses into one kernel, and into a
// preceding convolution or GEMM), XLA and torch.compile (Inductor) the same. Chains fuse: Gelu after
// Add after MatMul is one launch. Gaudi's graph compiler and a dataflow engine compile whole
// regions, so they fuse at least as much. A CPU runtime runs one op per call (onnxruntime's CPU
// EP fuses only a few fixed patterns): CPUs launch every node.
//
// The node's arithmetic and memory traffic are still charged (what it reads besides the fused
// input, e.g. a bias or a residual, is real); only the launch goes. The rule reads the graph, not
// the placement: a fused node placed on another device than its producer is rare (stages are
// contiguous) and then priced a launch too light.

import { opClass, VIEW_OPS } from './flops.js';
import type { Graph } from '../ir/graph.js';
import type { GraphIndex } from '../ir/algorithms.js';

/** Device kinds whose runtime fuses pointwise chains into the producing kernel. */
export const FUSING_KINDS: ReadonlySet<string> = new Set(['gpu', 'accel', 'dataflow']);

/** True when a device of this kind runs the node inside its producer's kernel. */
export function launchesFused(kind: string): boolean {
  return FUSING_KINDS.has(kind);
}

/**
 * Per node (`order` topological): the node whose kernel it runs in (its fused chain's head), or -1
 * when it launches its own kernel. A node fuses when it is elementwise (or a Cast) in the default domain and one of its
 * inputs comes from a computing node (not a Constant, not a view) whose outputs nothing else reads.
 */
export function fusedInto(graph: Graph, index: GraphIndex, order: Int32Array): Int32Array {
  const n = graph.nodes.length;
  const head = new Int32Array(n).fill(-1);
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    const node = graph.nodes[i]!;
    if (node.domain !== '' || node.task || !(opClass(node) === 'elementwise' || node.op === 'Cast')) continue;
    for (const id of index.inputsOf(i)) {
      if (id < 0) continue;
      // Back through views read by nothing else (a Reshape between a MatMul and its bias Add
      // relabels the buffer; the kernel is the MatMul's).
      let reader = i;
      let p = index.producerOf[id]!;
      while (p >= 0 && VIEW_OPS.has(graph.nodes[p]!.op) && graph.nodes[p]!.op !== 'Constant' && onlyReader(index, p, reader)) {
        const first = index.inputsOf(p)[0];
        reader = p;
        p = first !== undefined && first >= 0 ? index.producerOf[first]! : -1;
      }
      if (p < 0) continue;
      const producer = graph.nodes[p]!;
      // A Constant, a view or a control-flow node has no kernel to fuse into.
      if (producer.op === 'Constant' || VIEW_OPS.has(producer.op) || opClass(producer) === 'control') continue;
      if (!onlyReader(index, p, reader)) continue;
      head[i] = head[p]! >= 0 ? head[p]! : p;
      break;
    }
  }
  return head;
}

/** Nothing but `reader` reads any output of node `p`. */
function onlyReader(index: GraphIndex, p: number, reader: number): boolean {
  for (const out of index.outputsOf(p)) {
    if (out < 0) continue;
    for (const c of index.consumersOfId(out)) if (c !== reader) return false;
  }
  return true;
}
