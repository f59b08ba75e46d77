// `hxc inspect MODEL [--values] [--costs] [--json]`: the model, its state table, and on request
// every inferred value and the per-node cost/classification table.

import { FUSING_KINDS, GROUPED_MOE_KERNELS } from '../cost/fusion.js';
import { present } from '../cost/node-costs.js';
import { classifyPass, nodeClass } from '../../passes/classify.js';
import { detectMoe } from '../moe/detect.js';
import { planOptions, type AnalysisFlags } from './flags.js';
import { inspectReport, renderInspect } from './inspect.js';
import { formatBytes, jsonText, table } from './output.js';
import { runPipeline } from './run-passes.js';
import { profilePass } from '../../passes/profile.js';
import { shapesPass } from '../../passes/shapes.js';
import { statePass } from '../../passes/state.js';
import { verifyPass } from '../../passes/verify.js';

export interface InspectFlags extends AnalysisFlags {
  json?: boolean;
  values?: boolean;
  costs?: boolean;
}

const sci = (x: number): string => (x === 0 ? '0' : Math.abs(x) >= 1e5 || Math.abs(x) < 1e-3 ? x.toExponential(2) : String(Number(x.toFixed(3))));

export async function inspectCommand(model: string, opts: InspectFlags): Promise<void> {
  const passes = ['import', 'verify', 'bind', 'state'];
  if (opts.values) passes.push('shapes');
  if (opts.costs) passes.push('profile', 'classify');
  const { ctx } = await runPipeline(planOptions(model, opts, 'inspect'), passes);
  const g = ctx.model.graph;
  const report: Record<string, unknown> = { ...inspectReport(ctx.model) };
  const state = ctx.get(statePass);
  const nodeNames = (ids: number[]): string[] => ids.map((i) => g.nodes[i]!.name);
  report.state = {
    batch: state.batch,
    context: state.context,
    totals: state.totals,
    objects: state.objects.map((o) => ({ ...o, readers: nodeNames(o.readers), writers: nodeNames(o.writers) })),
  };
  let text = renderInspect(inspectReport(ctx.model));
  if (state.objects.length > 0) {
    text += `\nstate (batch ${state.batch}, context ${state.context}): ${formatBytes(state.totals.bytes_per_token)} per token, ${formatBytes(state.totals.bytes)} in all\n`;
    text += table(
      ['state', 'kind', 'layer', 'bytes/token', 'bytes/sequence', 'bytes', 'readers', 'writers'],
      state.objects.map((o) => [
        o.name,
        o.kind,
        o.layer === null ? '-' : String(o.layer),
        String(o.bytes_per_token),
        String(o.bytes_per_sequence),
        String(o.bytes),
        String(o.readers.length),
        String(o.writers.length),
      ]),
      [3, 4, 5, 6, 7],
    );
  }
  const verified = ctx.get(verifyPass);
  const moe = detectMoe(ctx.model, verified.index, verified.order);
  report.moe = moe.map((l) => ({
    layer: l.layer,
    name: l.name,
    form: l.form,
    detected_by: l.detected_by,
    num_experts: l.num_experts,
    top_k: l.top_k,
    hidden: l.hidden,
    token_dtype: l.token_dtype,
    router: nodeNames(l.router),
    shared_experts: l.shared.length,
    dispatch_nodes: l.dispatch.length,
    experts: l.experts.map((e) => ({ expert: e.expert, flops_per_token: e.flops_per_token, param_bytes: e.param_bytes, nodes: nodeNames(e.nodes) })),
  }));
  if (moe.length > 0) {
    text += `\nMoE layers (${moe.length}):\n`;
    text += table(
      ['layer', 'name', 'form', 'experts', 'top-k', 'hidden', 'FLOPs/token/expert', 'params/expert', 'router', 'found by'],
      moe.map((l) => [
        String(l.layer),
        l.name,
        l.form,
        String(l.num_experts),
        String(l.top_k),
        String(l.hidden),
        sci(l.experts[0]?.flops_per_token ?? 0),
        formatBytes(l.experts[0]?.param_bytes ?? 0),
        g.nodes[l.router[0] ?? -1]?.name ?? '-',
        l.detected_by,
      ]),
      [0, 3, 4, 5, 6, 7],
    );
  }
  if (opts.values) {
    const shapes = ctx.get(shapesPass);
    const values = [...shapes.types.entries()].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
    report.values = values;
    text += `\nvalues (${values.length}):\n${table(
      ['value', 'dtype', 'shape'],
      values.map((v) => [v.name, v.dtype, v.shape ? `[${v.shape.join(', ')}]` : '?']),
    )}`;
  }
  if (opts.costs) {
    const profile = ctx.get(profilePass);
    const cls = ctx.get(classifyPass);
    report.costs = {
      bindings: profile.bindings,
      totals: profile.totals,
      critical_path_s: cls.critical_path_s,
      kinds: cls.kinds,
      calibration: profile.calibration,
      nodes: g.nodes.map((n, i) => {
        const c = profile.nodes.view(i);
        const k = nodeClass(cls, i);
        return {
          name: n.name,
          op: n.op,
          op_class: c.op_class,
          dtype: c.dtype,
          flops: c.flops,
          bytes_read: c.bytes_read,
          bytes_written: c.bytes_written,
          param_bytes: c.param_bytes,
          intensity: c.intensity,
          slack_s: k.slack_s,
          latency_sensitive: k.latency_sensitive,
          by_kind: k.by_kind,
          fused_into: profile.fused_into[i]! >= 0 ? g.nodes[profile.fused_into[i]!]!.name : null,
        };
      }),
    };
    const header = ['node', 'op', 'flops', 'bytes', 'intensity', ...cls.kinds.map((k) => `${k}`), 'slack s', 'fused into'];
    const rows = g.nodes.map((n, i) => {
      const c = profile.nodes.view(i);
      const k = nodeClass(cls, i);
      return [
        n.name,
        n.op,
        sci(c.flops),
        sci(c.bytes),
        sci(c.intensity),
        // (- where no device of the kind runs the op.)
        ...cls.kinds.map((kind) =>
          Number.isFinite(k.by_kind[kind]!.time_s) ? `${k.by_kind[kind]!.bound === 'compute' ? 'C' : 'M'} ${sci(k.by_kind[kind]!.time_s)}s` : '-',
        ),
        `${sci(k.slack_s)}${k.latency_sensitive ? ' *' : ''}`,
        profile.fused_into[i]! >= 0 ? g.nodes[profile.fused_into[i]!]!.name : '',
      ];
    });
    // Data-dependent sizes (a MoE's token counts, one per expert) are counted, not listed, as hxc plan says them.
    const fresh = new Set(ctx.get(shapesPass).fresh_symbols);
    const given = Object.entries(profile.bindings).filter(([k]) => !fresh.has(k));
    const estimated = Object.keys(profile.bindings).length - given.length;
    text += `\ncosts at ${given.map(([k, v]) => `${k}=${v}`).join(', ') || 'the declared shapes'}${
      estimated > 0 ? ` (+${estimated} data-dependent size${estimated === 1 ? '' : 's'} at ${estimated === 1 ? 'its' : 'their'} expectation)` : ''
    }: ${sci(profile.totals.flops)} FLOPs, critical path ${sci(cls.critical_path_s)} s on the fastest devices that run each node (C compute-bound, M memory-bound, * latency-sensitive); ${profile.totals.fused} nodes run inside the kernel named under "fused into" on ${[...FUSING_KINDS].join('/')} devices (no launch of their own)${groupedNote(profile.nodes.launch_group)}\n`;
    text += table(header, rows, [2, 3, 4]);
    if (profile.calibration) {
      text += `\ncalibration (${profile.calibration.source}, ${profile.calibration.matched_nodes} nodes matched):\n`;
      text += table(
        ['kind', 'op class', 'factor', 'nodes', 'measured s', 'ideal s'],
        profile.calibration.factors.map((f) => [f.kind, f.op_class, sci(f.factor), String(f.nodes), sci(f.measured_s), sci(f.estimated_s)]),
        [2, 3, 4, 5],
      );
    }
  }
  process.stdout.write(opts.json ? jsonText(report) : text);
}

/** How many nodes of routed experts (dispatch, body, combine) share their layer's grouped launches (src/cost/fusion.ts), for the costs header. */
function groupedNote(launchGroups: Float64Array): string {
  let grouped = 0;
  for (let i = 0; i < launchGroups.length; i++) if (present(launchGroups[i]!) !== undefined) grouped++;
  return grouped > 0
    ? `; ${grouped} nodes of routed experts (dispatch, body, combine) run in their layer's grouped kernels there (no launch of their own: ${GROUPED_MOE_KERNELS} per layer on each device running its experts)`
    : '';
}
