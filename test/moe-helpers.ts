// Helpers of the MoE tests: the shared MoE models, detection and the moe pass on them, expert names.

import assert from 'node:assert/strict';
import path from 'node:path';
import { moePass, type MoeResult } from '../passes/moe.js';
import { runPipeline } from '../src/cli/run-passes.js';
import { detectMoe, type MoeLayer } from '../src/moe/detect.js';
import type { PlanOptions } from '../src/pass/pass.js';
import { EXAMPLES, SHARED_MODELS } from './helpers.js';
import { verifyPass } from '../passes/verify.js';

export const MIXTRAL_8X7B = path.join(SHARED_MODELS, 'mixtral_8x7b_shaped.graph_only.onnx');
export const MIXTRAL_TINY = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx');
export const DENSE = path.join(SHARED_MODELS, 'dense_moe_small_kv.onnx');
export const trace = (model: string): string => model.replace(/(\.graph_only)?\.onnx$/, '.expert_routing.json');

export async function detect(model: string): Promise<{ layers: MoeLayer[]; names: string[] }> {
  const { ctx } = await runPipeline({ model_path: model, topology_path: null, dims: {}, flags: {} }, ['verify']);
  const v = ctx.get(verifyPass);
  return { layers: detectMoe(ctx.model, v.index, v.order), names: ctx.model.graph.nodes.map((n) => n.name) };
}

export async function moe(model: string, rack: string | null, flags: PlanOptions['flags'] = {}): Promise<{ result: MoeResult; warnings: string[] }> {
  const { ctx } = await runPipeline({ model_path: model, topology_path: rack && path.join(EXAMPLES, rack), dims: {}, flags: { phase: 'prefill', ...flags } }, [
    'moe',
  ]);
  return { result: ctx.get(moePass), warnings: ctx.diagnostics.warnings.map((w) => w.code) };
}

/** Every expert's node names carry its own index (`…/experts.3/…`): structure and names agree. */
export function checkExpertNames(layers: MoeLayer[], names: string[]): void {
  for (const l of layers) {
    for (const e of l.experts) {
      const named = e.nodes.map((i) => names[i]!).filter((n) => /experts\.\d+\//.test(n));
      assert.ok(named.length > 0, `layer ${l.layer} expert ${e.expert} has named nodes`);
      for (const n of named) assert.match(n, new RegExp(`experts\\.${e.expert}/`), `layer ${l.layer} expert ${e.expert}: ${n}`);
    }
  }
}
