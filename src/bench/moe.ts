// Expert placement quality and speed (`npm run bench -- moe`): per case, the slowest/mean device
// expert time (imbalance, worst layer and mean over layers) and the all-to-all bytes per token for hxc,
// round-robin and the EPLB-style greedy baseline, all computed in the same run by the same evaluator;
// and how long hxc's planning of all layers took. Cases: the Mixtral-8x7B-shaped graph over the
// 8-GPU rack with its skewed trace (Zipf s = 1.1) and 8 redundant slots, and a synthetic
// DeepSeek-V3-sized problem (61 layers × 256 experts, top-8) over the 64-device rack.

import fs from 'node:fs';
import { median } from '../util/stats.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { moePass, METHODS, planExperts, type ExpertPlan, type LayerSpec } from '../../passes/moe.js';
import { runPipeline } from '../cli/run-passes.js';
import { table } from '../cli/output.js';
import { scaledLayer, syntheticRouting } from '../moe/routing.js';
import { canRun, loadTopology, RouteTable } from '../topology/index.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MODELS = path.resolve(REPO, '..', 'shared', 'models');
const EXAMPLES = path.resolve(REPO, '..', 'shared', 'examples');

/** DeepSeek-V3 (arXiv 2412.19437, config.json): hidden 7168, expert FFN 2048 (SwiGLU, 3 matrices), 8 expert groups. */
export const DEEPSEEK_SHAPE = { layers: 61, experts: 256, topK: 8, hidden: 7168, ffn: 2048, groups: 8, slots: 32, stepTokens: 8192 };

/** The synthetic problem's layers: a seeded Zipf(1.1) trace, bf16 experts. */
export function syntheticLayers(shape = DEEPSEEK_SHAPE, traceTokens = 8192, seed = 61): LayerSpec[] {
  const trace = syntheticRouting({ layers: shape.layers, experts: shape.experts, topK: shape.topK, tokens: traceTokens, zipfS: 1.1, seed });
  const flops = 2 * 3 * shape.hidden * shape.ffn;
  return trace.map((l) => ({
    layer: l.layer,
    name: `synthetic.${l.layer}`,
    top_k: shape.topK,
    step_tokens: shape.stepTokens,
    ...scaledLayer(l, shape.topK, shape.stepTokens),
    flops_per_token: new Float64Array(shape.experts).fill(flops),
    param_bytes: new Float64Array(shape.experts).fill(flops),
    token_bytes: shape.hidden * 2,
    dtype: 'bfloat16',
    dispatch_ops: ['Gather', 'ScatterND', 'TopK', 'Softmax'].map((op) => ({ op, domain: '' })),
  }));
}

export interface MoeBenchCase {
  name: string;
  plan: ExpertPlan;
  /** Milliseconds to plan every layer (hxc and both baselines), median of the runs, and the first (cold) run. */
  plan_ms: number;
  first_ms: number;
  layers: number;
}

export async function moeCases(reps = 3): Promise<MoeBenchCase[]> {
  const out: MoeBenchCase[] = [];
  const mixtral = path.join(MODELS, 'mixtral_8x7b_shaped.graph_only.onnx');
  if (fs.existsSync(mixtral)) {
    const times: number[] = [];
    let plan: ExpertPlan | null = null;
    for (let r = 0; r < reps; r++) {
      const run = await runPipeline(
        {
          model_path: mixtral,
          topology_path: path.join(EXAMPLES, 'rack-8gpu.yaml'),
          dims: {},
          flags: { phase: 'prefill', routing: path.join(MODELS, 'mixtral_8x7b_shaped.expert_routing.json'), 'expert-slots': 8 },
        },
        ['moe'],
      );
      times.push(run.timings.find((t) => t.name === 'moe')!.ms);
      plan = run.ctx.get(moePass).plan;
    }
    if (plan)
      out.push({ name: 'mixtral_8x7b_shaped, 8×H200, Zipf 1.1, 8 slots', plan, plan_ms: median(times), first_ms: times[0]!, layers: plan.layers.length });
  }
  const topo = loadTopology(path.join(REPO, 'fixtures', 'topology', 'rack-64.yaml'));
  const routes = new RouteTable(topo);
  const layers = syntheticLayers();
  const times: number[] = [];
  let plan: ExpertPlan | null = null;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    plan = planExperts(topo, routes, layers, { slots: DEEPSEEK_SHAPE.slots, groups: DEEPSEEK_SHAPE.groups, canHold: (d) => canRun(d, 'MatMul') });
    times.push(performance.now() - t0);
  }
  if (plan)
    out.push({
      name: `synthetic ${DEEPSEEK_SHAPE.layers}×${DEEPSEEK_SHAPE.experts} top-${DEEPSEEK_SHAPE.topK}, rack-64, Zipf 1.1, ${DEEPSEEK_SHAPE.slots} slots`,
      plan,
      plan_ms: median(times),
      first_ms: times[0]!,
      layers: layers.length,
    });
  return out;
}

export async function moeTable(): Promise<void> {
  const cases = await moeCases();
  const rows: string[][] = [];
  for (const c of cases) {
    for (const m of METHODS) {
      const s = c.plan.summary[m];
      rows.push([
        m === 'hxc' ? c.name : '',
        m,
        s.imbalance_max.toFixed(4),
        s.imbalance_mean.toFixed(4),
        Math.round(s.bytes_per_token).toLocaleString('en-US'),
        (s.time_s * 1e3).toFixed(3),
        m === 'hxc' ? `${c.plan_ms.toFixed(0)} (first ${c.first_ms.toFixed(0)})` : '',
      ]);
    }
  }
  process.stdout.write(
    table(
      ['moe case', 'method', 'imbalance worst layer', 'imbalance mean', 'all-to-all bytes/token', 'expert ms/step', 'plan ms, median'],
      rows,
      [2, 3, 4, 5, 6],
    ),
  );
  for (const c of cases)
    process.stdout.write(
      `${c.name}: ${c.layers} layers on ${c.plan.devices.length} expert devices (${c.plan.devices[0]} … ${c.plan.devices[c.plan.devices.length - 1]}), tokens from ${c.plan.sources.length} devices\n`,
    );
  process.stdout.write('\n');
}
