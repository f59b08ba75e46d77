// The pass contract: every name a pass requires or uses is a registered pass that runs before it;
// transforms are declared and run before what reads the graph; a transform that runs after an
// analysis drops it (the graph it described is gone) and the analysis is computed again on demand.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { PASSES } from '../passes/index.js';
import { tpPass } from '../passes/tp.js';
import { verifyPass } from '../passes/verify.js';
import { importPass } from '../passes/import.js';
import { Context } from '../src/pass/context.js';
import { PassManager } from '../src/pass/manager.js';
import { NO_INSTRUMENTATION } from '../src/cli/run-passes.js';
import { EXAMPLES, FIXTURES } from './helpers.js';

test('requires and uses name registered passes that run earlier; the transforms are declared and come first', () => {
  const order = new Map(PASSES.map((p, k) => [p.name, k]));
  for (const p of PASSES) {
    for (const r of [...p.requires, ...(p.uses ?? [])]) {
      assert.ok(order.has(r), `${p.name} names unknown pass ${r}`);
      assert.ok(order.get(r)! < order.get(p.name)!, `${p.name} reads ${r}, which runs after it`);
    }
  }
  const transforms = PASSES.filter((p) => p.kind === 'transform').map((p) => p.name);
  assert.deepEqual(transforms.sort(), ['replicate', 'tp']);
  const firstAnalysis = PASSES.findIndex((p) => p.name !== 'import' && p.kind !== 'transform');
  for (const t of transforms) assert.ok(order.get(t)! < firstAnalysis, `${t} runs before every analysis of the graph`);
});

test('a transform run after an analysis drops it; the analysis is computed again on demand', async () => {
  const ctx = new Context({
    model_path: path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'),
    topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'),
    dims: {},
    flags: { 'tensor-parallel': 2 },
  });
  await new PassManager([importPass, verifyPass, tpPass], NO_INSTRUMENTATION).run(ctx, (n, r) => ctx.store(n, r));
  assert.ok(ctx.has(importPass) && ctx.has(tpPass), 'the import and the transform stay');
  assert.ok(!ctx.has(verifyPass), 'verify described the graph before the rewrite: dropped');
  await new PassManager([verifyPass], NO_INSTRUMENTATION).run(ctx, (n, r) => ctx.store(n, r));
  assert.equal(ctx.get(verifyPass).index.size, ctx.model.graph.nodes.length, 'verified again, on the rewritten graph');
});
