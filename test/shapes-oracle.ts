// The oracle of the shape tests: run a model (or a hand-built one) in onnxruntime with every node
// output exposed, on random inputs of the bound dims, and compare each inferred dtype and shape.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { bindPass } from '../passes/bind.js';
import { importPass } from '../passes/import.js';
import { shapesPass, type ShapesResult } from '../passes/shapes.js';
import { verifyPass } from '../passes/verify.js';
import type { Graph, Node } from '../src/ir/graph.js';
import { Context } from '../src/pass/context.js';
import { evalDim } from '../src/shapes/symbolic.js';
import { onnx } from './onnx-builder.js';

/** import → verify → bind → shapes, as the pass manager runs them. */
export async function runShapes(modelPath: string, dims: Record<string, number> = {}): Promise<{ ctx: Context; result: ShapesResult }> {
  const ctx = new Context({ model_path: modelPath, topology_path: null, dims, flags: {} });
  for (const pass of [importPass, verifyPass, bindPass, shapesPass]) ctx.store(pass.name, await pass.run(ctx));
  return { ctx, result: ctx.get(shapesPass) };
}

export function readDims(modelPath: string): Record<string, number> {
  const file = modelPath.replace(/\.onnx$/, '.dims.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, number>) : {};
}

/** Seeded PRNG (mulberry32) so that feeds, and so data-dependent sizes, are reproducible. */
export function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random inputs at the inferred (bound) input shapes; LM inputs get valid ids, masks and positions. */
export function feedsFor(graph: Graph, result: ShapesResult, dims: Record<string, number>): Record<string, ort.Tensor> {
  const rand = random(42);
  const feeds: Record<string, ort.Tensor> = {};
  const past = dims.past_sequence_length ?? 0;
  for (const input of graph.inputs) {
    if (graph.initializers.has(input.name)) continue;
    const t = result.types.get(input.name)!;
    const shape = t.shape!.map((d) => {
      assert.equal(typeof d, 'number', `input ${input.name} has unbound dim ${d}`);
      return d as number;
    });
    const count = shape.reduce((a, b) => a * b, 1);
    if (t.dtype === 'int64') {
      // The vocabulary is the row count of the embedding table the ids index.
      const embedding = graph.nodes.find((n) => n.op === 'Gather' && n.inputs[1] === input.name);
      const vocab = embedding ? (result.types.get(embedding.inputs[0]!)!.shape![0] as number) : 1;
      const last = shape[shape.length - 1] ?? 1;
      const data = BigInt64Array.from({ length: count }, (_, k) => {
        if (input.name === 'input_ids') return BigInt(Math.floor(rand() * vocab));
        if (input.name === 'attention_mask') return 1n;
        if (input.name === 'position_ids') return BigInt(past + (k % last));
        return 0n;
      });
      feeds[input.name] = new ort.Tensor('int64', data, shape);
    } else if (t.dtype === 'float32') {
      feeds[input.name] = new ort.Tensor(
        'float32',
        Float32Array.from({ length: count }, () => rand() * 2 - 1),
        shape,
      );
    } else if (t.dtype === 'int32') {
      feeds[input.name] = new ort.Tensor('int32', new Int32Array(count), shape);
    } else {
      throw new Error(`no feed for ${input.name}: ${t.dtype}`);
    }
  }
  return feeds;
}

/** The model with every node output also a graph output (ORT accepts outputs without a type). */
export function exposeAllValues(bytes: Uint8Array): Uint8Array {
  const proto = onnx.ModelProto.decode(bytes);
  const graph = proto.graph!;
  const outputs = new Set(graph.output!.map((o) => o.name));
  for (const n of graph.node!) {
    for (const o of n.output!) {
      if (o && !outputs.has(o)) {
        graph.output!.push(onnx.ValueInfoProto.create({ name: o }));
        outputs.add(o);
      }
    }
  }
  return onnx.ModelProto.encode(proto).finish();
}

export interface OracleReport {
  checked: number;
  mismatches: string[];
}

/** Compares every node output's inferred type with what ORT produced, binding fresh symbols on first sight. */
export function compareWithOrt(nodes: Node[], result: ShapesResult, real: ort.InferenceSession.OnnxValueMapType, dims: Record<string, number>): OracleReport {
  const bindings: Record<string, number> = { ...dims };
  const fresh = new Set(result.fresh_symbols);
  const report: OracleReport = { checked: 0, mismatches: [] };
  for (const node of nodes) {
    for (const name of node.outputs) {
      if (!name) continue;
      const tensor = real[name] as ort.Tensor | undefined;
      const ours = result.types.get(name);
      if (!tensor) {
        report.mismatches.push(`%${name}: onnxruntime returned nothing`);
        continue;
      }
      report.checked++;
      const shape = ours?.shape;
      let ok = ours !== undefined && ours.dtype === tensor.type && shape !== null && shape !== undefined && shape.length === tensor.dims.length;
      if (ok) {
        shape!.forEach((d, k) => {
          const actual = tensor.dims[k]!;
          if (typeof d === 'string' && fresh.has(d) && bindings[d] === undefined) bindings[d] = actual;
          if (evalDim(d, bindings) !== actual) ok = false;
        });
      }
      if (!ok) {
        report.mismatches.push(
          `%${name} (${node.op} "${node.name}"): inferred ${ours?.dtype}[${shape?.join(', ') ?? '?'}], onnxruntime ${tensor.type}[${tensor.dims.join(', ')}]`,
        );
      }
    }
  }
  return report;
}

export async function runOrt(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(exposeAllValues(bytes), { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}
