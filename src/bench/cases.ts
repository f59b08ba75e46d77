// Benchmark cases. Each runs in its own child process (see main.ts) so its peak memory is its own.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { onnx as OnnxNs } from 'onnx-proto';
import { runPipeline } from '../cli/run-passes.js';

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto') as { onnx: typeof OnnxNs };

export interface CaseResult {
  name: string;
  nodes: number;
  times_ms: number[];
}

/** A synthetic transformer-like DAG of about `n` nodes: chains of MatMul/Add/Relu with skip edges. */
export function syntheticOnnx(n: number): Buffer {
  const nodes: OnnxNs.INodeProto[] = [];
  const inits: OnnxNs.ITensorProto[] = [];
  let prev = 'x';
  for (let i = 0; i < n; i++) {
    const out = `v${i}`;
    const kind = i % 4;
    if (kind === 0) {
      const w = `w${i}`;
      inits.push({
        name: w,
        dataType: 1,
        dims: [64, 64],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: 'weights.bin' },
          { key: 'offset', value: String(i * 16384) },
          { key: 'length', value: '16384' },
        ],
      });
      nodes.push({ name: `mm_${i}`, opType: 'MatMul', input: [prev, w], output: [out] });
    } else if (kind === 1) nodes.push({ name: `add_${i}`, opType: 'Add', input: [prev, i >= 5 ? `v${i - 5}` : 'x'], output: [out] });
    else if (kind === 2) nodes.push({ name: `relu_${i}`, opType: 'Relu', input: [prev], output: [out] });
    else nodes.push({ name: `mul_${i}`, opType: 'Mul', input: [prev, prev], output: [out] });
    prev = out;
  }
  const vi = (name: string): OnnxNs.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 64 }] } } },
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'hxc-bench',
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name: 'synthetic', node: nodes, initializer: inits, input: [vi('x')], output: [vi(prev)] },
  });
  return Buffer.from(onnx.ModelProto.encode(model).finish());
}

export function syntheticJson(n: number): string {
  const nodes = [];
  let prev = 'x';
  for (let i = 0; i < n; i++) {
    const out = `v${i}`;
    nodes.push(
      i % 3 === 1
        ? { name: `n${i}`, op: 'Add', inputs: [prev, i >= 4 ? `v${i - 4}` : 'x'], outputs: [out] }
        : { name: `n${i}`, op: i % 3 === 0 ? 'Relu' : 'Sigmoid', inputs: [prev], outputs: [out] },
    );
    prev = out;
  }
  return JSON.stringify({
    format: 'hxc-graph/v1',
    name: 'synthetic',
    inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 64] }],
    outputs: [{ name: prev, dtype: 'float32', shape: ['batch', 64] }],
    nodes,
  });
}

/** Write a synthetic model into a temporary folder and return its path. */
export function writeSynthetic(kind: 'onnx' | 'json', n: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-bench-'));
  const file = path.join(dir, kind === 'onnx' ? 'synthetic.onnx' : 'synthetic.json');
  fs.writeFileSync(file, kind === 'onnx' ? syntheticOnnx(n) : syntheticJson(n));
  return file;
}

/** Time `passes` on `file`, `reps` times. */
export async function timePipeline(
  file: string,
  passes: string[],
  reps: number,
  dims: Record<string, number> = {},
  flags: Record<string, string | number> = {},
  topology: string | null = null,
): Promise<{ times_ms: number[]; nodes: number }> {
  const times: number[] = [];
  let nodes = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    const run = await runPipeline({ model_path: file, topology_path: topology, dims, flags }, passes);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    nodes = run.ctx.model.graph.nodes.length;
  }
  return { times_ms: times, nodes };
}
