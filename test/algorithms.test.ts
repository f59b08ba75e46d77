import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GraphIndex, ValueColumns, extractSubgraph, isConvex, kahnOrder, positions, reachable, topoOrder } from '../src/ir/algorithms.js';
import { newGraph, type Graph } from '../src/ir/graph.js';

/** A DAG with nodes n0..n{k-1}; edge i→j (i<j) when `edges` says so; node order is shuffled by `perm`. */
function dag(k: number, edges: [number, number][], perm?: number[]): Graph {
  const g = newGraph('dag');
  g.inputs.push({ name: 'in', type: { dtype: 'float32', shape: [1] } });
  const order = perm ?? Array.from({ length: k }, (_, i) => i);
  for (const i of order) {
    const ins = edges.filter(([_a, b]) => b === i).map(([a]) => `v${a}`);
    g.nodes.push({ name: `n${i}`, op: 'Op', domain: '', inputs: ins.length ? ins : ['in'], outputs: [`v${i}`], attrs: {}, outer_refs: [] });
  }
  g.outputs.push({ name: `v${k - 1}`, type: null });
  return g;
}

const dagArb = fc.integer({ min: 2, max: 14 }).chain((k) =>
  fc.tuple(
    fc.constant(k),
    fc.uniqueArray(
      fc.tuple(fc.integer({ min: 0, max: k - 1 }), fc.integer({ min: 0, max: k - 1 })).filter(([a, b]) => a < b),
      { maxLength: 30, selector: ([a, b]) => `${a}-${b}` },
    ),
    fc.shuffledSubarray(
      Array.from({ length: k }, (_, i) => i),
      { minLength: k, maxLength: k },
    ),
  ),
);

test('topological order respects every edge, whatever the node order in the file', () => {
  fc.assert(
    fc.property(dagArb, ([k, edges, perm]) => {
      const g = dag(k, edges, perm);
      const index = new GraphIndex(g);
      const { order, cyclic } = topoOrder(index);
      assert.equal(cyclic.length, 0);
      assert.equal(order.length, k);
      const pos = positions(order, k);
      for (let i = 0; i < k; i++) for (const p of index.predecessors(i)) assert.ok(pos[p]! < pos[i]!);
    }),
  );
});

test('topological order keeps the file order when it is already topological', () => {
  const g = dag(5, [
    [0, 2],
    [1, 2],
    [2, 4],
    [3, 4],
  ]);
  assert.deepEqual(Array.from(topoOrder(new GraphIndex(g)).order), [0, 1, 2, 3, 4]);
});

test('convexity agrees with its definition: no path leaves the set and comes back', () => {
  fc.assert(
    fc.property(dagArb, fc.array(fc.boolean(), { minLength: 14, maxLength: 14 }), ([k, edges], pick) => {
      const g = dag(k, edges);
      const index = new GraphIndex(g);
      const set = new Set<number>();
      for (let i = 0; i < k; i++) if (pick[i]) set.add(i);
      if (set.size === 0) return;
      // Definition: S is convex iff no node outside S is both reachable from S and reaches S.
      const down = reachable(index, set, 'forward');
      const up = reachable(index, set, 'backward');
      let expected = true;
      for (let i = 0; i < k; i++) if (!set.has(i) && down[i] && up[i]) expected = false;
      const pos = positions(topoOrder(index).order, k);
      assert.equal(isConvex(index, set), expected);
      assert.equal(isConvex(index, set, pos), expected);
    }),
    { numRuns: 300 },
  );
});

test('extraction gives a standalone graph with the right boundary', () => {
  // in → n0 → n1 → n2 → n3 (output), and n0 → n3
  const g = dag(4, [
    [0, 1],
    [1, 2],
    [2, 3],
    [0, 3],
  ]);
  g.initializers.set('w', { name: 'w', dtype: 'float32', dims: [1], byte_size: 4, location: { kind: 'absent' } });
  g.nodes[1]!.inputs.push('w');
  const ex = extractSubgraph(new GraphIndex(g), [1, 2], 'part');
  assert.deepEqual(ex.boundary_inputs, ['v0']);
  assert.deepEqual(ex.boundary_outputs, ['v2']);
  assert.deepEqual([...ex.graph.initializers.keys()], ['w']);
  assert.deepEqual(
    ex.graph.nodes.map((n) => n.name),
    ['n1', 'n2'],
  );
  const tail = extractSubgraph(new GraphIndex(g), [3], 'tail');
  assert.deepEqual(tail.boundary_inputs, ['v2', 'v0']);
  assert.deepEqual(tail.boundary_outputs, ['v3']);
});

test('subgraph outer-scope references count as dependencies', () => {
  const g = dag(2, []);
  const body = newGraph('body');
  body.nodes.push({ name: 'inner', op: 'Identity', domain: '', inputs: ['v0'], outputs: ['o'], attrs: {}, outer_refs: [] });
  body.outputs.push({ name: 'o', type: null });
  g.nodes[1] = {
    name: 'n1',
    op: 'If',
    domain: '',
    inputs: ['in'],
    outputs: ['v1'],
    attrs: { then_branch: { type: 'graph', value: body } },
    outer_refs: ['v0'],
  };
  const index = new GraphIndex(g);
  assert.deepEqual(Array.from(index.predecessors(1)), [0]);
  const ex = extractSubgraph(index, [1], 'if');
  assert.deepEqual(ex.boundary_inputs, ['in', 'v0']);
});

/** Every array of two indices, and their value names: the same index. */
function assertSameIndex(a: GraphIndex, b: GraphIndex): void {
  assert.deepEqual(a.valueNames, b.valueNames);
  assert.deepEqual(a.duplicateProducer, b.duplicateProducer);
  for (const key of [
    'producerOf',
    'consumerOffsets',
    'consumerList',
    'predOffsets',
    'preds',
    'succOffsets',
    'succs',
    'inputOffsets',
    'inputIds',
    'outputOffsets',
    'outputIds',
  ] as const)
    assert.deepEqual(Array.from(a[key]), Array.from(b[key]), key);
  for (const name of a.valueNames) assert.equal(a.valueIds.get(name), b.valueIds.get(name));
  // Each initializer's id in the map's order, as found by its name; the mask of them.
  for (const index of [a, b]) {
    assert.deepEqual(
      Array.from(index.initializerOrder),
      [...index.graph.initializers.keys()].map((name) => index.valueIds.get(name)),
    );
    assert.deepEqual(
      Array.from(index.initializerIds),
      index.valueNames.map((name) => (index.graph.initializers.has(name) ? 1 : 0)),
    );
  }
}

test('a derived graph is indexed as it would be alone: kept nodes read through the base index, copies, new nodes and names', () => {
  fc.assert(
    fc.property(dagArb, fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 14, maxLength: 14 }), ([k, edges, perm], fate) => {
      const base = dag(k, edges, perm);
      base.initializers.set('w', { name: 'w', dtype: 'float32', dims: [1], byte_size: 4, location: { kind: 'absent' } });
      // One nothing reads, and one that is also a graph input (a default the caller may override).
      base.initializers.set('unread', { name: 'unread', dtype: 'float32', dims: [2], byte_size: 8, location: { kind: 'absent' } });
      base.initializers.set('in', { name: 'in', dtype: 'float32', dims: [1], byte_size: 4, location: { kind: 'absent' } });
      base.nodes.forEach((n, i) => {
        n.source_index = i;
        if (i % 3 === 1) n.inputs.push('', 'w'); // an omitted input, then a weight
        if (i % 4 === 2) n.outer_refs = ['in']; // a subgraph's read: looked up by name
      });
      const baseIndex = GraphIndex.of(base);
      // Per node: 0 kept (the same object), 1 a copy, 2 kept with a new node after it, 3 dropped.
      const nodes: Graph['nodes'] = [];
      base.nodes.forEach((n, i) => {
        const f = fate[i]!;
        if (f === 3 && i !== base.nodes.length - 1) return;
        nodes.push(f === 1 ? { ...n, inputs: n.inputs.slice() } : n);
        if (f === 2)
          nodes.push({
            name: `x${i}`,
            op: 'Op',
            domain: '',
            inputs: [n.outputs[0]!, `new${i}`],
            outputs: [`y${i}`],
            attrs: {},
            outer_refs: [],
            source_index: null,
          });
      });
      const derived: Graph = { ...base, nodes };
      GraphIndex.derive(derived, base);
      const index = GraphIndex.of(derived);
      assert.notEqual(index, baseIndex);
      assertSameIndex(index, new GraphIndex(derived));
    }),
  );
});

test('values interned as the nodes are made (the ONNX import) give the index interning them afterwards would', () => {
  fc.assert(
    fc.property(dagArb, fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 14, maxLength: 14 }), ([k, edges, perm], kind) => {
      const g = dag(k, edges, perm);
      g.initializers.set('w', { name: 'w', dtype: 'float32', dims: [1], byte_size: 4, location: { kind: 'absent' } });
      g.initializers.set('in', { name: 'in', dtype: 'float32', dims: [1], byte_size: 4, location: { kind: 'absent' } });
      g.nodes.forEach((n, i) => {
        const f = kind[i]!;
        if (f === 1) n.inputs.push('', 'w'); // an omitted input, then a weight
        if (f === 2) n.outer_refs = ['in', `v${i}`]; // a subgraph's reads, one of them its own output
        if (f === 3) n.outputs.push('', `extra${i}`); // an omitted output, then one nothing reads
        if (f === 4 && i > 0) n.outputs.push(g.nodes[0]!.outputs[0]!); // a second producer
      });
      // Each slot its own string (as each NodeProto decodes one), interned as the nodes come.
      const fresh = (v: string): string => (v ? [...v].join('') : v);
      const copy: Graph = { ...g, nodes: g.nodes.map((n) => ({ ...n, inputs: n.inputs.map(fresh), outputs: n.outputs.map(fresh) })) };
      const columns = new ValueColumns(copy, 2);
      for (const n of copy.nodes) columns.add(n);
      const index = new GraphIndex(copy, null, null, columns);
      assertSameIndex(index, new GraphIndex(g));
      for (const n of copy.nodes) for (const v of [...n.inputs, ...n.outputs]) if (v) assert.equal(v, index.valueNames[index.valueIds.get(v)!]);
    }),
  );
});

test("topological order is Kahn's with the least index first, in order or not, with a self-read or a cycle", () => {
  fc.assert(
    fc.property(dagArb, fc.boolean(), fc.integer({ min: -1, max: 13 }), ([k, edges, perm], shuffled, loop) => {
      const g = dag(k, edges, shuffled ? perm : undefined);
      // A node that reads its own output, or its successor's (a cycle when that one reads it).
      if (loop >= 0 && loop < k) g.nodes[loop]!.inputs.push(g.nodes[(loop + (loop % 2)) % k]!.outputs[0]!);
      const index = new GraphIndex(g);
      const { order, waiting } = kahnOrder(index.size, index.predOffsets, index.succOffsets, index.succs, (a, b) => a < b);
      const got = topoOrder(index);
      assert.deepEqual(Array.from(got.order), Array.from(order));
      assert.deepEqual(
        got.cyclic,
        Array.from(waiting.keys()).filter((i) => order.length < k && waiting[i]! > 0),
      );
    }),
  );
});
