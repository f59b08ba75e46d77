// The cost model's shape terms (issue 17): causal attention counts the pairs it computes, and
// GEMMs and attention fill a GPU's SMs in waves of tiles.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeFlops, nodeTiles, opClass, opClassOf } from '../src/cost/flops.js';
import { computeSeconds, waveEfficiency, type NodeCost } from '../src/cost/model.js';
import { NodeCosts } from '../src/cost/node-costs.js';
import type { Node } from '../src/ir/graph.js';
import { parseTopology } from '../src/topology/index.js';

const node = (op: string, attrs: Node['attrs'] = {}, domain = ''): Node => ({ name: op, op, domain, inputs: [], outputs: [], attrs, outer_refs: [] });
const gqa = node('GroupQueryAttention', { num_heads: { type: 'int', value: 32 }, kv_num_heads: { type: 'int', value: 8 } }, 'com.microsoft');
const D = 128;

test('causal attention: a prompt of S tokens computes S(S+1)/2 query-key pairs per head; a decode step all of its past', () => {
  const prefill = nodeFlops(gqa, {
    inputs: [[1, 2048, 32 * D]],
    outputs: [
      [1, 2048, 32 * D],
      [1, 8, 2048, D],
    ],
  });
  const pairs = (32 * (2048 * 2049)) / 2;
  assert.equal(prefill, 4 * pairs * D + 5 * pairs);
  const decode = nodeFlops(gqa, {
    inputs: [[1, 1, 32 * D]],
    outputs: [
      [1, 1, 32 * D],
      [1, 8, 1025, D],
    ],
  });
  assert.equal(decode, 4 * 32 * 1025 * D + 5 * 32 * 1025, 'one query sees the 1,024 past tokens and itself');
  // Without a causal mask (MultiHeadAttention) every pair is computed.
  const mha = node('MultiHeadAttention', { num_heads: { type: 'int', value: 32 } }, 'com.microsoft');
  const full = nodeFlops(mha, {
    inputs: [[1, 2048, 32 * D]],
    outputs: [
      [1, 2048, 32 * D],
      [1, 32, 2048, D],
    ],
  });
  assert.equal(full, 4 * 32 * 2048 * 2048 * D + 5 * 32 * 2048 * 2048);
});

test('tiles: a projection folds its tokens into M; K splits when the output tiles cannot fill the SMs', () => {
  const mm = node('MatMul');
  assert.deepEqual(
    nodeTiles(mm, {
      inputs: [
        [1, 128, 4096],
        [4096, 4096],
      ],
      outputs: [[1, 128, 4096]],
    }),
    { tiles: 32, k_splits: 8 },
  );
  assert.deepEqual(
    nodeTiles(mm, {
      inputs: [
        [1, 2048, 4096],
        [4096, 11008],
      ],
      outputs: [[1, 2048, 11008]],
    }),
    { tiles: 16 * 86, k_splits: 8 },
  );
  // A batched product (attention scores in a torch export): one GEMM per batch × head.
  assert.deepEqual(
    nodeTiles(mm, {
      inputs: [
        [1, 32, 128, 128],
        [1, 32, 128, 256],
      ],
      outputs: [[1, 32, 128, 256]],
    }),
    { tiles: 64, k_splits: 1 },
  );
  assert.deepEqual(nodeTiles(gqa, { inputs: [[2, 300, 32 * D]], outputs: [[2, 300, 32 * D]] }), { tiles: 2 * 32 * 3, k_splits: 1 });
  assert.deepEqual(
    nodeTiles(node('Add'), {
      inputs: [
        [4, 4],
        [4, 4],
      ],
      outputs: [[4, 4]],
    }),
    { tiles: 0, k_splits: 1 },
  );
});

test('waves: T tiles on U SMs use T / (⌈T/U⌉·U) of the machine, after splitting K', () => {
  assert.equal(waveEfficiency(32, 1, 132), 32 / 132, 'attention of a 128-token prompt, 32 heads, on an H100');
  assert.equal(waveEfficiency(512, 1, 132), 512 / 528, 'four waves, the last nearly full');
  assert.equal(waveEfficiency(32, 8, 132), 128 / 132, 'split K four ways (of eight allowed): 128 tiles');
  assert.equal(waveEfficiency(32, 8, null), 1, 'a device without SM count');
  const topo = parseTopology('format: hxc-topology/v1\nname: t\ndevices:\n  - {id: g, kind: gpu, model: h100-sxm}\n', 't.yaml');
  const h100 = topo.devices[0]!;
  const w = { flops: 1e12, dtype: 'float16', op_class: 'attention' as const, tiles: 32 };
  // 989 TFLOP/s × 0.35 (attention on Hopper) × 32/132 of the SMs.
  assert.ok(Math.abs(computeSeconds(w, h100) - 1e12 / (989e12 * 0.35 * (32 / 132))) < 1e-12);
  assert.ok(Math.abs(computeSeconds({ ...w, op_class: 'matmul', tiles: 1320 }, h100) - 1e12 / (989e12 * 0.6)) < 1e-12, 'ten full waves');
});

test('op class: a node classed from the cache is classed as its op type is, the first time and after', () => {
  const known = [
    'MatMul',
    'Conv',
    'Attention',
    'MoE',
    'If',
    'LayerNormalization',
    'ReduceSum',
    'MaxPool',
    'Softmax',
    'Gather',
    'Add',
    'Gelu',
    'RotaryEmbedding',
    'Custom',
  ];
  const odd = ['constructor', '__proto__', 'toString', 'hasOwnProperty', ''];
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.constantFrom(...known, ...odd), fc.string({ maxLength: 12 })), { maxLength: 40 }), (ops) => {
      for (const op of [...ops, ...ops]) {
        const node: Node = { name: 'n', op, domain: '', inputs: [], outputs: [], attrs: {}, outer_refs: [] };
        assert.equal(opClass(node), opClassOf(op), op);
      }
    }),
  );
  assert.deepEqual(
    ['MatMul', 'Conv', 'Attention', 'MoE', 'If', 'LayerNormalization', 'ReduceSum', 'MaxPool', 'Gather', 'Gelu', 'Custom'].map((op) => opClassOf(op)),
    ['matmul', 'conv', 'attention', 'moe', 'control', 'normalization', 'reduction', 'reduction', 'data-movement', 'elementwise', 'other'],
  );
});

test('node costs in columns: what is set is what is read back, the dtype and op class by code, seconds only where given', () => {
  const seconds = fc.option(fc.dictionary(fc.constantFrom('cpu', 'gpu', 'gpu0'), fc.double({ min: 0, max: 1, noNaN: true })), { nil: undefined });
  const maybe = fc.option(fc.double({ min: 0, max: 1e12, noNaN: true }), { nil: undefined });
  const cost: fc.Arbitrary<NodeCost> = fc.record({
    flops: fc.double({ min: 0, max: 1e12, noNaN: true }),
    bytes: fc.double({ min: 0, max: 1e12, noNaN: true }),
    bytes_read: fc.double({ min: 0, max: 1e12, noNaN: true }),
    bytes_written: fc.double({ min: 0, max: 1e12, noNaN: true }),
    param_bytes: fc.double({ min: 0, max: 1e12, noNaN: true }),
    intensity: fc.double({ min: 0, max: 1e3, noNaN: true }),
    dtype: fc.constantFrom('', 'float32', 'bfloat16', 'int64', 'float8e4m3fn'),
    op_class: fc.constantFrom('other', 'matmul', 'elementwise', 'data-movement', 'control'),
    time_s: seconds,
    measured_s: seconds,
    tiles: maybe,
    k_splits: maybe,
    activity: maybe,
    launch_group: maybe,
    fused: fc.option(fc.boolean(), { nil: undefined }),
    fused_bytes: maybe,
  });
  fc.assert(
    fc.property(fc.array(cost, { maxLength: 30 }), (list) => {
      const columns = NodeCosts.from(list);
      assert.deepEqual(
        columns.toArray(),
        list.map((c) => ({ ...c })),
      );
      list.forEach((c, i) => {
        assert.deepEqual({ ...columns.view(i) }, { ...c });
        assert.equal(columns.dtypeAt(i), c.dtype);
        assert.equal(columns.opClassAt(i), c.op_class);
        assert.equal(columns.timeAt(i), c.time_s);
        assert.equal(columns.measuredAt(i), c.measured_s);
      });
      assert.equal(
        columns.hasTimes(),
        list.some((c) => c.time_s !== undefined),
      );
      // Measured seconds set kind by kind, on a node that had none and on one that had some.
      if (list.length > 0) {
        columns.measuredFor(0).npu = 2;
        assert.deepEqual({ ...columns.measuredAt(0) }, { ...(list[0]!.measured_s ?? {}), npu: 2 });
      }
    }),
  );
  const fresh = new NodeCosts(3);
  assert.deepEqual([fresh.dtypeAt(2), fresh.opClassAt(2), fresh.timeAt(2), fresh.measuredAt(2), fresh.hasTimes()], ['', 'other', undefined, undefined, false]);
});
