// `hxc inspect MODEL`: what is in a model (ops, counts, parameters, inputs and outputs, opsets,
// whether the weights are present). `--json` gives the documented `hxc-inspect/v1` object.

import path from 'node:path';
import { constantBytes, nodesInSubgraphs, paramBytes, type Dim, type Model, type ValueInfo } from '../ir/graph.js';
import { formatBytes, table } from './output.js';

export interface InspectReport {
  format: 'hxc-inspect/v1';
  model: { name: string; file: string; sha256: string; file_bytes: number; format: string; ir_version: number | null; producer: string };
  opsets: Record<string, number>;
  counts: { nodes: number; subgraph_nodes: number; values: number; initializers: number; inputs: number; outputs: number; functions: number };
  param_bytes: number;
  constant_bytes: number;
  weights_present: boolean;
  inputs: { name: string; dtype: string | null; shape: Dim[] | null; bytes?: number }[];
  outputs: { name: string; dtype: string | null; shape: Dim[] | null; bytes?: number }[];
  /** Op type (`domain.Op` outside the default domain) → node count, sorted by name. */
  op_types: Record<string, number>;
}

export function inspectReport(model: Model): InspectReport {
  const g = model.graph;
  const values = new Set<string>();
  for (const v of g.inputs) values.add(v.name);
  for (const k of g.initializers.keys()) values.add(k);
  for (const n of g.nodes) for (const o of n.outputs) if (o) values.add(o);
  const ops = new Map<string, number>();
  for (const n of g.nodes) {
    const key = n.domain ? `${n.domain}.${n.op}` : n.op;
    ops.set(key, (ops.get(key) ?? 0) + 1);
  }
  const io = (v: ValueInfo): InspectReport['inputs'][number] => {
    const out: InspectReport['inputs'][number] = { name: v.name, dtype: v.type?.dtype ?? null, shape: v.type?.shape ?? null };
    if (v.bytes !== undefined) out.bytes = v.bytes;
    return out;
  };
  const initNames = new Set(g.initializers.keys());
  return {
    format: 'hxc-inspect/v1',
    model: {
      name: model.name,
      file: path.basename(model.path),
      sha256: model.sha256,
      file_bytes: model.file_bytes,
      format: model.format,
      ir_version: model.ir_version,
      producer: model.producer,
    },
    opsets: Object.fromEntries(
      Object.entries(model.opsets)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([d, v]) => [d || 'ai.onnx', v]),
    ),
    counts: {
      nodes: g.nodes.length,
      subgraph_nodes: nodesInSubgraphs(g),
      values: values.size,
      initializers: g.initializers.size,
      inputs: g.inputs.filter((v) => !initNames.has(v.name)).length,
      outputs: g.outputs.length,
      functions: model.functions.length,
    },
    param_bytes: paramBytes(g),
    constant_bytes: constantBytes(g),
    weights_present: model.weights_present,
    inputs: g.inputs.filter((v) => !initNames.has(v.name)).map(io),
    outputs: g.outputs.map(io),
    op_types: Object.fromEntries([...ops.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
}

export function renderInspect(r: InspectReport): string {
  const shape = (s: Dim[] | null): string => (s === null ? '?' : `[${s.join(', ')}]`);
  const lines: string[] = [];
  lines.push(
    `${r.model.name}  (${r.model.file}, ${r.model.format}${r.model.ir_version !== null ? ` IR ${r.model.ir_version}` : ''}${r.model.producer ? `, ${r.model.producer}` : ''})`,
  );
  lines.push(
    `opsets: ${Object.entries(r.opsets)
      .map(([d, v]) => `${d} ${v}`)
      .join(', ')}`,
  );
  lines.push(`nodes ${r.counts.nodes} (+${r.counts.subgraph_nodes} in subgraphs), values ${r.counts.values}, initializers ${r.counts.initializers}`);
  lines.push(
    `parameters ${formatBytes(r.param_bytes)} (${r.param_bytes} bytes)${r.constant_bytes ? `, in Constant nodes ${formatBytes(r.constant_bytes)}` : ''}; weights ${r.weights_present ? 'present' : 'ABSENT (graph only: plannable, not runnable)'}`,
  );
  lines.push('');
  lines.push(
    table(
      ['input', 'dtype', 'shape'],
      r.inputs.map((v) => [v.name, v.dtype ?? '?', v.bytes !== undefined ? `${v.bytes} B` : shape(v.shape)]),
    ),
  );
  lines.push(
    table(
      ['output', 'dtype', 'shape'],
      r.outputs.map((v) => [v.name, v.dtype ?? '?', v.bytes !== undefined ? `${v.bytes} B` : shape(v.shape)]),
    ),
  );
  const ops = Object.entries(r.op_types).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  lines.push(
    table(
      ['op', 'count'],
      ops.map(([k, v]) => [k, String(v)]),
      [1],
    ),
  );
  return lines.join('\n');
}
