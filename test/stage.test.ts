import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fc from 'fast-check';
import { GraphIndex, isConvex, topoOrder } from '../src/ir/algorithms.js';
import { newGraph } from '../src/ir/graph.js';
import { blockKey, blockOrder, blockRanks, cutIntervals } from '../src/ir/stages.js';
import { runPipeline } from '../src/cli/run-passes.js';
import { EXAMPLES, FIXTURES, SHARED_MODELS } from './helpers.js';
import { fusionJoins, stagePass } from '../passes/stage.js';
import { profilePass } from '../passes/profile.js';

/** Random DAG: node i reads from earlier nodes; names put nodes in random blocks or none; order shuffled. */
const graphArb = fc.integer({ min: 1, max: 40 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    edges: fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n - 1)), { maxLength: 3 * n }),
    blocks: fc.array(fc.integer({ min: -1, max: 4 }), { minLength: n, maxLength: n }),
    weights: fc.array(fc.double({ min: 0, max: 10, noNaN: true }), { minLength: n, maxLength: n }),
    perm: fc.shuffledSubarray(
      Array.from({ length: n }, (_, i) => i),
      { minLength: n, maxLength: n },
    ),
    maxStages: fc.integer({ min: 1, max: 12 }),
    splitTarget: fc.integer({ min: 0, max: 16 }),
    joins: fc.array(fc.boolean(), { minLength: n + 1, maxLength: n + 1 }),
  }),
);

test('stages are convex, cover every node once, and keep dependencies (random DAGs)', async () => {
  fc.assert(
    fc.property(graphArb, ({ n, edges, blocks, weights, perm, maxStages, splitTarget, joins }) => {
      const g = newGraph('random');
      g.inputs.push({ name: 'in', type: { dtype: 'float32', shape: [1] } });
      for (const i of perm) {
        const reads = edges.filter(([a, b]) => a < b && b === i).map(([a]) => `v${a}`);
        const name = blocks[i]! >= 0 ? `/model/layers.${blocks[i]}/op${i}` : `op${i}`;
        g.nodes.push({ name, op: 'Op', domain: '', inputs: reads.length ? reads : i % 3 === 0 ? [] : ['in'], outputs: [`v${i}`], attrs: {}, outer_refs: [] });
      }
      const index = new GraphIndex(g);
      const { order: topo } = topoOrder(index);
      const w = new Float64Array(n);
      g.nodes.forEach((node, k) => (w[k] = weights[Number(node.name.replace(/.*op/, ''))]!));
      const { rank: keyed } = blockRanks(index, topo);
      const { order, rank } = blockOrder(index, keyed, (i) => g.nodes[i]!.inputs.length === 0);
      assert.equal(order.length, n);
      const joined = Uint8Array.from(joins, (j) => (j ? 1 : 0));
      const intervals = cutIntervals(order, rank, w, maxStages, splitTarget, joined);
      assert.ok(intervals.length <= Math.max(1, maxStages));
      for (const iv of intervals) assert.ok(!joined[iv.start] || iv.start === 0, `a cut at ${iv.start}, which is joined`);
      const stageOf = new Int32Array(n).fill(-1);
      intervals.forEach((iv, s) => {
        for (let k = iv.start; k < iv.end; k++) {
          assert.equal(stageOf[order[k]!], -1, 'each node in one stage');
          stageOf[order[k]!] = s;
        }
        assert.ok(isConvex(index, new Set(Array.from(order.subarray(iv.start, iv.end)))), 'stage is convex');
      });
      for (let i = 0; i < n; i++) {
        assert.notEqual(stageOf[i], -1, 'every node covered');
        for (const p of index.predecessors(i)) assert.ok(stageOf[p]! <= stageOf[i]!, 'dependencies go forward between stages');
      }
    }),
    { numRuns: 300 },
  );
});

test('a fused chain is never cut: on a rack that fuses, each chain sits in one stage of either cut; on CPUs alone nothing is joined', async () => {
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const run = await runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, 'rack-tiny.yaml'), dims: {}, flags: { phase: 'prefill' } }, ['stage']);
  const prof = run.ctx.get(profilePass);
  const r = run.ctx.get(stagePass);
  let chains = 0;
  for (const cut of [r, r.coarse!]) {
    for (let i = 0; i < prof.fused_into.length; i++) {
      const h = prof.fused_into[i]!;
      if (h < 0) continue;
      chains++;
      assert.equal(cut.stage_of[i], cut.stage_of[h], `${run.ctx.model.graph.nodes[i]!.name} cut from its kernel's head`);
    }
  }
  assert.ok(chains > 100, `${chains} fused nodes checked`);
  assert.equal(fusionJoins(r.order, prof.fused_into, prof.nodes, false), undefined);
  assert.ok(fusionJoins(r.order, prof.fused_into, prof.nodes, true)!.some((j) => j === 1));
});

test("block keys come from exporters' module paths", () => {
  assert.equal(blockKey('/model/layers.12/self_attn/q_proj/MatMul'), 'layers.12');
  assert.equal(blockKey('/transformer/h.0/attn/Softmax'), 'h.0');
  assert.equal(blockKey('/features/features.3/block/block.0/Conv'), 'features.3');
  assert.equal(blockKey('/lm_head/MatMul'), null);
  assert.equal(blockKey('conv2d_139.b_0'), null);
});

test('the Mixtral-shaped graph is cut along its decoder layers, the same cuts in every layer, layers 2..31 repeats of layer 1', async () => {
  const run = await runPipeline(
    { model_path: path.join(SHARED_MODELS, 'mixtral_8x7b_shaped.graph_only.onnx'), topology_path: null, dims: {}, flags: { phase: 'prefill', prompt: 128 } },
    ['stage'],
  );
  const r = run.ctx.get(stagePass);
  const layerStages = r.stages.filter((s) => /^layers\.\d+$/.test(s.name));
  // Stages never straddle a layer, and every layer is cut into the same number of stages.
  const byLayer = Array.from({ length: 32 }, (_, i) => layerStages.filter((s) => s.name === `layers.${i}`));
  const per = byLayer[1]!.length;
  assert.ok(per >= 1);
  for (const [i, list] of byLayer.entries()) if (i > 0) assert.equal(list.length, per, `layers.${i}`);
  assert.deepEqual(
    [...new Set(layerStages.map((s) => s.name))],
    Array.from({ length: 32 }, (_, i) => `layers.${i}`),
  );
  // Layers 2..31 repeat layer 1 stage by stage (what lets a plan reuse one layer's placement).
  // (The last layer's last stage also holds the final norm and the LM head.)
  for (const list of byLayer.slice(2))
    list.forEach((s, k) => {
      if (s.name === 'layers.31' && k === list.length - 1) return;
      assert.equal(s.repeat_of, byLayer[1]![k]!.repeat_of ?? byLayer[1]![k]!.id, s.name);
    });
  const covered = r.stages.reduce((a, s) => a + s.nodes.length, 0);
  assert.equal(covered, run.ctx.model.graph.nodes.length);
});

test('--max-stages bounds the stage count', async () => {
  const run = await runPipeline(
    { model_path: path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), topology_path: null, dims: {}, flags: { phase: 'prefill', 'max-stages': 3 } },
    ['stage'],
  );
  assert.equal(run.ctx.get(stagePass).stages.length, 3);
});
