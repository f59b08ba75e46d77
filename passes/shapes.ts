// shapes: dtype and shape of every value (graph inputs, initializers, node outputs), with symbolic
// dims kept as canonical polynomials (`past_sequence_length + sequence_length`) and the bind
// pass's values substituted. Walks verify's topological order; src/shapes/ holds the op rules.

import type { TensorType } from '../src/ir/graph.js';
import { typeToString } from '../src/ir/graph.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import { HxcError } from '../src/diag/diagnostics.js';
import { freeSymbols, inferShapes, type InferMemo, type InferResult } from '../src/shapes/infer.js';
import { bindPass } from './bind.js';
import { verifyPass } from './verify.js';

export interface ShapesResult extends InferResult {
  /** Free symbols left in any shape after bindings (floor atoms opened up), sorted. */
  symbols: string[];
}

/** Folded elements are printed in the dump for tensors up to this many elements. */
const DUMP_VALUE_LIMIT = 16;

export const shapesPass: Pass<ShapesResult> = {
  name: 'shapes',
  summary: 'infer the dtype and (symbolic) shape of every value; fold small shape tensors',
  requires: ['verify', 'bind'],
  // Bindings come from the bind pass (--dim, --phase); symbols it leaves free stay symbolic.
  options: [],
  run(ctx) {
    const verify = ctx.get(verifyPass);
    // Another variant's inference of the graph this one was rewritten from, read once (InferMemo).
    const handoff = ctx.options.reuse_analyses;
    const reuse = handoff?.shapes ?? undefined;
    if (handoff) handoff.shapes = null;
    const leaving = ctx.options.leave_analyses;
    let result: InferResult;
    try {
      result = inferShapes(ctx.model.graph, verify.order, {
        opsets: ctx.model.opsets,
        dims: ctx.get(bindPass).dims,
        index: verify.index,
        ...(reuse ? { reuse } : {}),
        ...(leaving ? { leave: (memo: InferMemo) => (leaving.shapes = memo) } : {}),
      });
    } catch (err) {
      // An invalid node is named with the model file it is in.
      if (err instanceof HxcError && err.where && !err.where.startsWith(ctx.model.path))
        throw new HxcError(err.code, err.message, { where: `${ctx.model.path}: ${err.where}`, ...(err.hint ? { hint: err.hint } : {}) });
      throw err;
    }
    // Abstract task graphs name ops freely and size values in bytes: nothing to infer, nothing to warn about.
    const abstract = ctx.model.graph.nodes.length > 0 && ctx.model.graph.nodes.every((n) => n.task !== undefined);
    if (result.unknown_ops.length > 0 && !abstract) {
      ctx.diagnostics.warn(
        'HXC1102',
        `no shape inference for ${result.unknown_ops.length} operator type(s) (${result.unknown_op_nodes} nodes): ` +
          `${result.unknown_ops.join(', ')}; their outputs take the declared value_info type, else an unknown shape`,
        { where: ctx.options.model_path, hint: 'declare value_info for those outputs (e.g. with onnx.shape_inference) so later passes can size them' },
      );
    }
    if (result.disagreements.length > 0 && !abstract) {
      // The computed type is the one planned with; a model that declares another (an output as
      // float16 that the graph computes in float32) is one onnxruntime refuses to load.
      const d = result.disagreements[0]!;
      ctx.diagnostics.warn(
        'HXC1103',
        `${result.disagreements.length} value(s) declared with another type than the graph computes (e.g. "${d.value}": declared ${typeToString(d.declared)}, computed ${typeToString(d.ours)}); planned with the computed ones, and onnxruntime may refuse the model`,
        { where: ctx.options.model_path },
      );
    }
    return { ...result, symbols: freeSymbols(result.types) };
  },
  statistics(r) {
    let known = 0;
    r.types.forEach((t) => {
      if (t.shape) known++;
    });
    return {
      values: r.types.size,
      'values typed': known,
      'values unknown': r.types.size - known,
      'folded constants': r.values.size,
      symbols: r.symbols.length,
      'fresh symbols': r.fresh_symbols.length,
      'unknown ops': r.unknown_ops.length,
      'declared fallbacks': r.declared_fallback.length,
      'value_info disagreements': r.disagreements.length,
    };
  },
  dump(r) {
    const lines: string[] = [];
    lines.push(`symbols: ${r.symbols.join(', ') || '(none)'}`);
    if (r.fresh_symbols.length > 0) lines.push(`fresh symbols: ${r.fresh_symbols.join(', ')}`);
    if (r.unknown_ops.length > 0) lines.push(`unknown ops: ${r.unknown_ops.join(', ')}`);
    for (const name of r.order) {
      const value = r.values.get(name);
      const shown = value && value.length <= DUMP_VALUE_LIMIT ? ` = [${value.map(String).join(', ')}]` : '';
      lines.push(`%${name}: ${typeToString(r.types.get(name))}${shown}`);
    }
    if (r.disagreements.length > 0) {
      lines.push('value_info disagreements (ours kept):');
      for (const d of r.disagreements) lines.push(`  %${d.value}: ours ${typeToString(d.ours)}, declared ${typeToString(d.declared)}`);
    }
    if (r.notes.length > 0) {
      lines.push('notes:');
      for (const n of r.notes) lines.push(`  ${n}`);
    }
    return lines.join('\n') + '\n';
  },
  nodeNote(r, ctx, node) {
    const outs = ctx.model.graph.nodes[node]!.outputs.filter((o) => o);
    return outs.length > 0 ? `→ ${outs.map((o) => typeToString(r.types.get(o))).join(', ')}` : undefined;
  },
};

/** The shapes analysis of this run (throws HXC2402 when the shapes pass has not run). */
export function shapesOf(ctx: PassContext): ShapesResult {
  return ctx.get(shapesPass);
}

/** The inferred type of a value, for later passes (profile, state, lower). */
export function valueType(ctx: PassContext, name: string): TensorType | undefined {
  return shapesOf(ctx).types.get(name);
}
