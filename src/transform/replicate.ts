// Expert replicas as a graph rewrite: a hot expert's row-wise chain (gathered token rows → w1/w3
// → SiLU·mul → w2) is copied R times; the rows are split among the copies by fractions the runtime
// feeds in each request (an input `hxc.share.<key>` of cumulative fractions, last = 1), and the
// copies' rows are concatenated back in order. The partitioner puts the copies on different
// devices; `hxc run` sets the fractions from each replica device's measured load, so skew the
// plan did not foresee moves to the least-loaded replica. Splitting rows is exact: every row is
// computed by the same ops as before.

import type { Graph, Node, TensorType } from '../ir/graph.js';

export interface Chain {
  /** Node indices of the expert's row-wise computation, in order. */
  nodes: number[];
  replicas: number;
  key: string;
}

export interface ReplicaResult {
  graph: Graph;
  replicated: { key: string; input: string; rows: string; replicas: string[][]; split: string }[];
}

/** Ops whose rows are independent (row r of the output depends on row r of the data inputs only). */
const ROWWISE = new Set([
  'MatMul',
  'Mul',
  'Add',
  'Sub',
  'Div',
  'Sigmoid',
  'Relu',
  'Tanh',
  'Gelu',
  'Erf',
  'Neg',
  'Cast',
  'Softplus',
  'Exp',
  'Identity',
  'HardSigmoid',
  'HardSwish',
  'LeakyRelu',
]);

/** The chain's row input (one external data input) when every node is row-wise; null otherwise. */
export function rowInput(graph: Graph, nodes: Node[]): string | null {
  const produced = new Set(nodes.flatMap((n) => n.outputs));
  const data = new Set<string>();
  for (const n of nodes) {
    if (n.op === 'Reshape') {
      // Only a reshape that keeps rows (-1 leading) is row-wise; its shape operand is not data.
      if (!produced.has(n.inputs[0]!) && !graph.initializers.has(n.inputs[0]!)) data.add(n.inputs[0]!);
      continue;
    }
    if (!ROWWISE.has(n.op) || n.domain !== '') return null;
    n.inputs.forEach((v, slot) => {
      if (!v || produced.has(v) || graph.initializers.has(v)) return;
      if (n.op === 'MatMul' && slot === 1) return;
      data.add(v);
    });
  }
  return data.size === 1 ? [...data][0]! : null;
}

export function replicateChains(graph: Graph, chains: Chain[]): ReplicaResult {
  const byFirst = new Map<number, Chain>();
  const inChain = new Set<number>();
  for (const c of chains) {
    byFirst.set(c.nodes[0]!, c);
    for (const i of c.nodes) inChain.add(i);
  }
  const nodes: Node[] = [];
  const inputs = graph.inputs.slice();
  const declared = new Map(graph.declared);
  const initializers = new Map(graph.initializers);
  const replicated: ReplicaResult['replicated'] = [];
  const made = (n: Omit<Node, 'outer_refs' | 'source_index' | 'attrs'> & { attrs?: Node['attrs'] }): Node => ({
    attrs: {},
    ...n,
    outer_refs: [],
    source_index: null,
  });
  graph.nodes.forEach((node, i) => {
    const source_index = node.source_index === undefined ? i : node.source_index;
    const chain = byFirst.get(i);
    if (!chain) {
      if (!inChain.has(i)) nodes.push(node.source_index === source_index ? node : { ...node, source_index });
      return;
    }
    const members = chain.nodes.map((k) => graph.nodes[k]!);
    const x = rowInput(graph, members)!;
    const R = chain.replicas;
    const key = chain.key;
    const share = `hxc.share.${key}`;
    inputs.push({ name: share, type: { dtype: 'float32', shape: [R] } });
    declared.set(share, { dtype: 'float32', shape: [R] } as TensorType);
    // sizes_j = floor(n · C_j) − floor(n · C_{j−1}) for cumulative fractions C (C_R = 1 ⇒ they sum to n).
    const v = (s: string): string => `${key}/${s}`;
    const c = (name: string, data: number[]): string => {
      const t = v(name);
      initializers.set(t, {
        name: t,
        dtype: 'int64',
        dims: [data.length],
        byte_size: 8 * data.length,
        location: { kind: 'inline', data: new Uint8Array(BigInt64Array.from(data.map(BigInt)).buffer) },
      });
      return t;
    };
    const zero = c('zero', [0]);
    const axis0 = c('axis0', [0]);
    const ends = c('ends', [R - 1]);
    nodes.push(
      made({ name: v('shape'), op: 'Shape', domain: '', inputs: [x], outputs: [v('shape_out')] }),
      made({
        name: v('rows'),
        op: 'Gather',
        domain: '',
        inputs: [v('shape_out'), axis0],
        outputs: [v('rows_out')],
        attrs: { axis: { type: 'int', value: 0 } },
      }),
      made({ name: v('rows_f'), op: 'Cast', domain: '', inputs: [v('rows_out')], outputs: [v('rows_f_out')], attrs: { to: { type: 'int', value: 1 } } }),
      made({ name: v('scaled'), op: 'Mul', domain: '', inputs: [v('rows_f_out'), share], outputs: [v('scaled_out')] }),
      made({ name: v('floor'), op: 'Floor', domain: '', inputs: [v('scaled_out')], outputs: [v('floor_out')] }),
      made({ name: v('bounds'), op: 'Cast', domain: '', inputs: [v('floor_out')], outputs: [v('bounds_out')], attrs: { to: { type: 'int', value: 7 } } }),
      made({ name: v('head'), op: 'Slice', domain: '', inputs: [v('bounds_out'), zero, ends], outputs: [v('head_out')] }),
      made({ name: v('prev'), op: 'Concat', domain: '', inputs: [zero, v('head_out')], outputs: [v('prev_out')], attrs: { axis: { type: 'int', value: 0 } } }),
      made({ name: v('sizes'), op: 'Sub', domain: '', inputs: [v('bounds_out'), v('prev_out')], outputs: [v('sizes_out')] }),
    );
    const parts = Array.from({ length: R }, (_, j) => v(`rows${j}`));
    nodes.push(made({ name: v('split'), op: 'Split', domain: '', inputs: [x, v('sizes_out')], outputs: parts, attrs: { axis: { type: 'int', value: 0 } } }));
    const produced = new Set(members.flatMap((n) => n.outputs));
    const outsideReaders = new Set<string>();
    graph.nodes.forEach((n, k) => {
      if (!inChain.has(k) || !chain.nodes.includes(k)) for (const u of n.inputs) if (produced.has(u)) outsideReaders.add(u);
    });
    for (const o of graph.outputs) if (produced.has(o.name)) outsideReaders.add(o.name);
    const replicas: string[][] = [];
    for (let j = 0; j < R; j++) {
      const rename = (u: string): string => (u === x ? parts[j]! : produced.has(u) ? `${u}@r${j}` : u);
      const names: string[] = [];
      for (const n of members) {
        const name = `${n.name}@r${j}`;
        names.push(name);
        nodes.push({ ...n, name, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename), outer_refs: [], source_index: null });
      }
      replicas.push(names);
    }
    for (const out of outsideReaders) {
      nodes.push(
        made({
          name: v(`gather:${out}`),
          op: 'Concat',
          domain: '',
          inputs: Array.from({ length: R }, (_, j) => `${out}@r${j}`),
          outputs: [out],
          attrs: { axis: { type: 'int', value: 0 } },
        }),
      );
    }
    replicated.push({ key, input: share, rows: x, replicas, split: v('split') });
  });
  return { graph: { ...graph, nodes, inputs, declared, initializers }, replicated };
}
