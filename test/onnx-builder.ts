// Builds small ONNX files with onnx-proto for tests that need shapes of model no exporter gives us
// (external data that escapes its folder, subgraphs, synthetic sizes).

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { onnx as OnnxNs } from 'onnx-proto';

const require = createRequire(import.meta.url);
export const { onnx } = require('onnx-proto') as { onnx: typeof OnnxNs };

export function tensorType(elemType: number, dims: (number | string)[]): OnnxNs.ITypeProto {
  return { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } };
}

export function valueInfo(name: string, elemType: number, dims: (number | string)[]): OnnxNs.IValueInfoProto {
  return { name, type: tensorType(elemType, dims) };
}

export function encodeModel(graph: OnnxNs.IGraphProto, opset = 17): Buffer {
  const model = onnx.ModelProto.create({ irVersion: 8, producerName: 'hxc-test', opsetImport: [{ domain: '', version: opset }], graph });
  return Buffer.from(onnx.ModelProto.encode(model).finish());
}

/** `dir`/m/ext.onnx (externalAddModel) beside its weights `dir`/m/w.bin (1, 2, 3, 4); returns the model's path. */
/** A float graph of `node`, from input x to output y, both of shape `dims`. */
export function tinyGraph(name: string, node: OnnxNs.INodeProto[], dims: number[] = [4]): Buffer {
  return encodeModel({ name, node, input: [valueInfo('x', 1, dims)], output: [valueInfo('y', 1, dims)] });
}

export function writeExternalAddModel(dir: string): string {
  fs.mkdirSync(path.join(dir, 'm'));
  fs.writeFileSync(path.join(dir, 'm', 'w.bin'), Buffer.from(new Float32Array([1, 2, 3, 4]).buffer));
  fs.writeFileSync(path.join(dir, 'm', 'ext.onnx'), externalAddModel('w.bin'));
  return path.join(dir, 'm', 'ext.onnx');
}

/** x[1,4] + w[1,4] → y, where w lives in external data at `location` (offset 0, 16 bytes). */
export function externalAddModel(location: string): Buffer {
  return encodeModel({
    name: 'ext',
    node: [{ name: 'add', opType: 'Add', input: ['x', 'w'], output: ['y'] }],
    input: [valueInfo('x', 1, [1, 4])],
    output: [valueInfo('y', 1, [1, 4])],
    initializer: [
      {
        name: 'w',
        dataType: 1,
        dims: [1, 4],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: location },
          { key: 'offset', value: '0' },
          { key: 'length', value: '16' },
        ],
      },
    ],
  });
}

/** A chain of `n` element-wise nodes (Relu/Add alternating, with skip edges), for size tests. */
export function chainModel(n: number): Buffer {
  const nodes: OnnxNs.INodeProto[] = [];
  let prev = 'x';
  for (let i = 0; i < n; i++) {
    const out = `v${i}`;
    if (i % 2 === 0) nodes.push({ name: `relu_${i}`, opType: 'Relu', input: [prev], output: [out] });
    else nodes.push({ name: `add_${i}`, opType: 'Add', input: [prev, i >= 3 ? `v${i - 3}` : 'x'], output: [out] });
    prev = out;
  }
  return encodeModel({ name: 'chain', node: nodes, input: [valueInfo('x', 1, ['batch', 64])], output: [valueInfo(prev, 1, ['batch', 64])] });
}

/**
 * A MatMul feeding an If whose branches read the MatMul's output and two initializers from the
 * outer scope: the subgraph references cross a device boundary when the If falls back.
 */
export function ifModel(): Buffer {
  const n = 256;
  const w = new Float32Array(n * n).map((_, i) => Math.sin(i) / 16);
  const f32 = (name: string, dims: number[], data: Float32Array): OnnxNs.ITensorProto => ({ name, dataType: 1, dims, rawData: new Uint8Array(data.buffer) });
  const branch = (name: string, op: string, k: string): OnnxNs.IGraphProto => ({
    name,
    node: [{ name: `${name}_op`, opType: op, input: ['h', k], output: [`${name}_out`] }],
    output: [valueInfo(`${name}_out`, 1, [64, n])],
  });
  return encodeModel(
    {
      name: 'if_outer',
      node: [
        { name: 'mm', opType: 'MatMul', input: ['x', 'w'], output: ['h'] },
        { name: 'mm2', opType: 'MatMul', input: ['h', 'w'], output: ['h2'] },
        {
          name: 'choose',
          opType: 'If',
          input: ['cond'],
          output: ['y'],
          attribute: [
            { name: 'then_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: branch('then', 'Add', 'one') },
            { name: 'else_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: branch('else', 'Mul', 'two') },
          ],
        },
        { name: 'out', opType: 'Add', input: ['y', 'h2'], output: ['z'] },
      ],
      initializer: [f32('w', [n, n], w), f32('one', [1], new Float32Array([1])), f32('two', [1], new Float32Array([2]))],
      input: [valueInfo('x', 1, [64, n]), valueInfo('cond', 9, [])],
      output: [valueInfo('z', 1, [64, n])],
    },
    17,
  );
}
