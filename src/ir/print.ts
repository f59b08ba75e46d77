// Textual IR, in the manner of MLIR's generic form: one line per value or node, stable order,
// no addresses or timestamps, so dumps can be diffed and kept as golden files.

import type { Attr, Graph, Model, TensorData } from './graph.js';
import { shapeToString, subgraphsOf, typeToString } from './graph.js';

export type NodeNotes = (node: number) => string[];

export function printModel(model: Model, notes?: NodeNotes): string {
  const opsets = Object.entries(model.opsets)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([d, v]) => `${d || 'ai.onnx'}=${v}`)
    .join(', ');
  const head = `model "${model.name}" format=${model.format} opsets(${opsets})${model.weights_present ? '' : ' weights=absent'}\n`;
  return head + printGraph(model.graph, '', notes);
}

export function printGraph(graph: Graph, indent: string, notes?: NodeNotes): string {
  const lines: string[] = [`${indent}graph "${graph.name}" {`];
  const inner = indent + '  ';
  for (const v of graph.inputs) lines.push(`${inner}input %${v.name}: ${typeToString(v.type)}${v.bytes !== undefined ? ` bytes=${v.bytes}` : ''}`);
  const inits = [...graph.initializers.values()];
  for (const t of inits) lines.push(`${inner}init %${t.name}: ${t.dtype}${shapeToString(t.dims)} ${t.byte_size}B ${locationText(t)}`);
  graph.nodes.forEach((n, i) => {
    const outs = n.outputs.map((o) => (o ? `%${o}` : '_')).join(', ');
    const ins = n.inputs.map((x) => (x ? `%${x}` : '_')).join(', ');
    const attrs = Object.keys(n.attrs)
      .sort()
      .map((k) => `${k}=${attrText(n.attrs[k]!)}`)
      .join(', ');
    const op = n.domain ? `${n.domain}.${n.op}` : n.op;
    const note = notes
      ? notes(i)
          .filter((s) => s)
          .join('; ')
      : '';
    lines.push(`${inner}${outs} = ${op}(${ins})${attrs ? ` {${attrs}}` : ''} @${quoteName(n.name)}${note ? `  # ${note}` : ''}`);
    for (const sub of subgraphsOf(n)) lines.push(printGraph(sub, inner + '  '));
  });
  for (const v of graph.outputs) lines.push(`${inner}output %${v.name}: ${typeToString(v.type)}`);
  lines.push(`${indent}}`);
  return lines.join('\n') + '\n';
}

function quoteName(name: string): string {
  return /^[A-Za-z0-9_./:-]+$/.test(name) ? name : JSON.stringify(name);
}

function locationText(t: TensorData): string {
  const l = t.location;
  if (l.kind === 'external') return `external(${l.file}@${l.offset}+${l.length}${l.present ? '' : ', missing'})`;
  return l.kind;
}

function attrText(a: Attr): string {
  switch (a.type) {
    case 'int':
    case 'float':
      return String(a.value);
    case 'string':
      return JSON.stringify(a.value);
    case 'ints':
    case 'floats':
      return `[${a.value.join(',')}]`;
    case 'strings':
      return `[${a.value.map((s) => JSON.stringify(s)).join(',')}]`;
    case 'tensor':
      return `tensor<${a.value.dtype}${shapeToString(a.value.dims)}>`;
    case 'tensors':
      return `tensors(${a.value.length})`;
    case 'graph':
      return `graph "${a.value.name}"`;
    case 'graphs':
      return `graphs(${a.value.length})`;
    case 'type':
      return `type<${typeToString(a.value)}>`;
    case 'ref':
      return `@${a.value}`;
  }
}
