// Layout operators: Reshape, Flatten, Transpose, Concat, Split, Slice, Gather*, Scatter*,
// Squeeze/Unsqueeze, Expand, Tile, Pad, DepthToSpace. Each folds small tensors' elements through
// so that exporters' shape arithmetic (Shape → Gather → Unsqueeze → Concat → Reshape) stays known.
// Section names refer to the ONNX operator spec (onnx/docs/Operators.md).

import type { Dim, Shape } from '../ir/graph.js';
import { broadcastMap, concatValues, gatherValues, sliceValues, transposeValues } from './constant-fold.js';
import { broadcastShapes, clampIndex, elementCount, fail, normAxis, numericShape, sameAs, invalid, type OpCall, type Out, type Rule } from './rule.js';
import { dimAdd, dimCeilDiv, dimDivExact, dimMul, dimProduct, dimSign, dimSub, dimSum } from './symbolic.js';

/** The input's elements, unchanged, under a new shape (Reshape, Squeeze, Unsqueeze, Flatten). */
function keepValue(c: OpCall, out: Out): Out {
  const v = c.value(0);
  const n = numericShape(out.shape);
  return v && n && elementCount(n) === v.length ? { ...out, value: v } : out;
}

/** Fresh dims for a result whose rank is known but whose sizes depend on untracked data. */
function freshDims(c: OpCall, tag: string, rank: number): Dim[] {
  c.note(`${tag}: sizes not known statically, fresh symbols used`);
  return Array.from({ length: rank }, (_, i) => c.fresh(rank === 1 ? tag : `${tag}${i}`));
}

/** Reshape-14: 0 copies the input dim (unless allowzero), -1 takes what is left. */
const reshape: Rule = (c) => {
  const dtype = c.dtype(0);
  const input = c.shapeOrNull(0);
  const target = c.has(1) ? c.value(1) : c.attrInts('shape');
  if (!target) {
    const s = numericShape(c.shapeOrNull(1));
    if (s?.length !== 1) fail('Reshape target shape is unknown');
    return [{ dtype, shape: freshDims(c, 'reshape', s[0]!) }];
  }
  const allowzero = c.attrInt('allowzero', 0) === 1;
  const out: Dim[] = [];
  let inferred = -1;
  target.forEach((d, i) => {
    if (d === 0 && !allowzero) {
      if (!input || i >= input.length) fail('Reshape copies a dim the input does not have');
      out.push(input[i]!);
    } else if (d === -1) {
      inferred = i;
      out.push(1);
    } else out.push(d);
  });
  if (inferred >= 0) {
    let q: Dim | undefined;
    if (input) q = dimDivExact(dimProduct(input), dimProduct(out));
    out[inferred] = q ?? c.fresh('reshape');
    if (q === undefined) c.note('Reshape: -1 is not an exact quotient, fresh symbol used');
  }
  // With every size known, the element counts must agree (ONNX Reshape).
  const from = input ? numericShape(input) : null;
  const to = numericShape(out);
  if (from && to && inferred < 0) {
    const a = from.reduce((x, y) => x * y, 1);
    const b = to.reduce((x, y) => x * y, 1);
    if (a !== b) invalid(`Reshape of ${a} elements [${from.join(', ')}] to [${to.join(', ')}] (${b} elements)`);
  }
  return [keepValue(c, { dtype, shape: out })];
};

/** Flatten-13: [prod(d[:axis]), prod(d[axis:])]. */
const flatten: Rule = (c) => {
  const shape = c.shape(0);
  let axis = c.attrInt('axis', 1);
  if (axis < 0) axis += shape.length;
  if (axis < 0 || axis > shape.length) fail(`Flatten axis ${axis} out of range`);
  return [keepValue(c, { dtype: c.dtype(0), shape: [dimProduct(shape.slice(0, axis)), dimProduct(shape.slice(axis))] })];
};

const transpose: Rule = (c) => {
  const shape = c.shape(0);
  const perm = c.attrInts('perm') ?? shape.map((_, i) => shape.length - 1 - i);
  if (perm.length !== shape.length) invalid(`Transpose perm [${perm.join(', ')}] has ${perm.length} entries for a rank-${shape.length} input`);
  const seen = new Set(perm.map((p) => (p < 0 ? p + shape.length : p)));
  if (seen.size !== perm.length || [...seen].some((p) => !(p >= 0 && p < shape.length)))
    invalid(`Transpose perm [${perm.join(', ')}] is not a permutation of 0..${shape.length - 1}`);
  const out: Out = { dtype: c.dtype(0), shape: perm.map((p) => shape[normAxis(p, shape.length)]!) };
  const v = c.value(0);
  const n = numericShape(shape);
  return [v && n ? { ...out, value: transposeValues(v, n, perm) } : out];
};

const concat: Rule = (c) => {
  const shapes: Shape[] = [];
  for (let i = 0; i < c.node.inputs.length; i++) if (c.has(i)) shapes.push(c.shape(i));
  if (shapes.length === 0) fail('Concat has no inputs');
  const rank = shapes[0]!.length;
  const axis = normAxis(c.attrInt('axis', 0), rank);
  if (shapes.some((s) => s.length !== rank)) fail('Concat inputs differ in rank');
  const out = shapes[0]!.slice();
  out[axis] = dimSum(shapes.map((s) => s[axis]!));
  // The other dims must agree; a number seen in any input is more precise than a symbol.
  for (const s of shapes.slice(1)) {
    for (let k = 0; k < rank; k++) if (k !== axis && typeof out[k] !== 'number' && typeof s[k] === 'number') out[k] = s[k]!;
  }
  const parts: { shape: number[]; value: Dim[] }[] = [];
  for (let i = 0; i < c.node.inputs.length; i++) {
    if (!c.has(i)) continue;
    const v = c.value(i);
    const n = numericShape(c.shape(i));
    if (v && n) parts.push({ shape: n, value: v });
  }
  const result: Out = { dtype: c.dtype(0), shape: out };
  return [parts.length === shapes.length && numericShape(out) ? { ...result, value: concatValues(parts, axis) } : result];
};

/** Split-18: sizes from the `split` input (attribute before 13), else equal parts (last one smaller). */
const split: Rule = (c) => {
  const shape = c.shape(0);
  const dtype = c.dtype(0);
  const axis = normAxis(c.attrInt('axis', 0), shape.length);
  const count = c.node.outputs.length;
  const given = c.has(1) ? c.value(1) : c.attrInts('split');
  if (c.has(1) && !given) {
    return c.node.outputs.map((_, i) => ({ dtype, shape: shape.map((d, k) => (k === axis ? c.fresh(`split${i}`) : d)) }));
  }
  const d = shape[axis]!;
  let sizes: Dim[];
  if (given) sizes = given;
  else {
    const parts = c.attrIntOpt('num_outputs') ?? count;
    const exact = dimDivExact(d, parts);
    const chunk = exact ?? dimCeilDiv(d, parts);
    sizes = Array.from({ length: parts }, (_, i) => (i < parts - 1 || exact !== undefined ? chunk : dimSub(d, dimMul(chunk, parts - 1))));
  }
  const v = c.value(0);
  const n = numericShape(shape);
  let offset = 0;
  return sizes.map((size) => {
    const outShape = shape.slice();
    outShape[axis] = size;
    const out: Out = { dtype, shape: outShape };
    if (v && n && typeof size === 'number') {
      const ranges = n.map((dim, k) => (k === axis ? { start: offset, step: 1, count: size } : { start: 0, step: 1, count: dim }));
      out.value = sliceValues(v, n, ranges);
      offset += size;
    }
    return out;
  });
};

/** Slice-13 (inputs starts, ends, axes, steps; attributes before opset 10). */
const slice: Rule = (c) => {
  const shape = c.shape(0);
  const dtype = c.dtype(0);
  const fromAttrs = c.node.attrs.starts !== undefined;
  const starts = fromAttrs ? c.attrInts('starts') : c.value(1);
  const ends = fromAttrs ? c.attrInts('ends') : c.value(2);
  const axesRaw = fromAttrs ? c.attrInts('axes') : c.has(3) ? c.ints(3) : undefined;
  if (!fromAttrs && c.has(3) && !axesRaw) fail('Slice axes are unknown');
  const steps = !fromAttrs && c.has(4) ? c.value(4) : undefined;
  if (!fromAttrs && c.has(4) && !steps) fail('Slice steps are unknown');
  const count = starts?.length ?? ends?.length ?? numericShape(c.shapeOrNull(1))?.[0];
  if (count === undefined) fail('Slice starts are unknown');
  const axes = (axesRaw ?? Array.from({ length: count }, (_, i) => i)).map((a) => normAxis(a, shape.length));
  if ((starts && starts.length !== axes.length) || (ends && ends.length !== axes.length) || (steps && steps.length !== axes.length)) {
    fail('Slice starts, ends, axes and steps differ in length');
  }
  const out = shape.slice();
  const ranges: ({ start: number; step: number; count: number } | undefined)[] = shape.map((d) =>
    typeof d === 'number' ? { start: 0, step: 1, count: d } : undefined,
  );
  axes.forEach((axis, i) => {
    const dim = shape[axis]!;
    const step = steps?.[i] ?? 1;
    if (step === 0) invalid(`Slice step 0 on axis ${axis}: a step must not be 0`);
    if (!starts || !ends) {
      out[axis] = c.fresh(`slice${axis}`);
      ranges[axis] = undefined;
      return;
    }
    if (typeof step !== 'number' || step === 0) fail('Slice step must be a non-zero number');
    let len: Dim;
    let start: Dim;
    if (step > 0) {
      start = clampIndex(starts[i]!, dim, 0, 0);
      const end = clampIndex(ends[i]!, dim, 0, 0);
      len = step === 1 ? dimSub(end, start) : dimCeilDiv(dimSub(end, start), step);
    } else {
      start = clampIndex(starts[i]!, dim, 0, -1);
      const end = clampIndex(ends[i]!, dim, -1, -1);
      len = dimCeilDiv(dimSub(start, end), -step);
    }
    if (typeof len === 'number' && len < 0) len = 0;
    if (typeof len !== 'number' && dimSign(len) === 'neg') len = 0;
    out[axis] = len;
    ranges[axis] = typeof start === 'number' && typeof len === 'number' ? { start, step, count: len } : undefined;
  });
  const result: Out = { dtype, shape: out };
  const v = c.value(0);
  const n = numericShape(shape);
  if (v && n && ranges.every((r) => r !== undefined)) result.value = sliceValues(v, n, ranges as { start: number; step: number; count: number }[]);
  return [result];
};

/** Gather-13: out = data[:axis] + indices.shape + data[axis+1:]. */
const gather: Rule = (c) => {
  const data = c.shape(0);
  const indices = c.shape(1);
  const axis = normAxis(c.attrInt('axis', 0), data.length);
  // (concat, not spreads: the spreads made iterator results per dim, 18 MB a run, sampled.)
  const out: Out = { dtype: c.dtype(0), shape: data.slice(0, axis).concat(indices, data.slice(axis + 1)) };
  const v = c.value(0);
  const n = numericShape(data);
  const idx = c.ints(1);
  if (v && n && idx) {
    const value = gatherValues(v, n, idx, axis);
    if (value) out.value = value;
  }
  return [out];
};

/** GatherND-13: indices.shape[:-1] + data.shape[batch_dims + indices.shape[-1]:]. */
const gatherND: Rule = (c) => {
  const data = c.shape(0);
  const indices = c.shape(1);
  const batch = c.attrInt('batch_dims', 0);
  const last = indices[indices.length - 1];
  if (typeof last !== 'number') fail('GatherND needs the last dim of indices');
  return [{ dtype: c.dtype(0), shape: [...indices.slice(0, -1), ...data.slice(batch + last)] }];
};

const gatherElements: Rule = (c) => [{ dtype: c.dtype(0), shape: c.shapeOrNull(1) }];

/** Squeeze-13: axes from the input (attribute before 13); without axes, every 1 goes. */
const squeeze: Rule = (c) => {
  const shape = c.shape(0);
  const axes = c.has(1) ? c.ints(1) : c.attrInts('axes');
  if (c.has(1) && !axes) fail('Squeeze axes are unknown');
  let out: Dim[];
  if (axes && axes.length > 0) {
    const drop = new Set(axes.map((a) => normAxis(a, shape.length)));
    out = shape.filter((_, i) => !drop.has(i));
  } else {
    // Only dims known to be 1 go: a symbolic dim is assumed not to be 1.
    out = shape.filter((d) => d !== 1);
  }
  return [keepValue(c, { dtype: c.dtype(0), shape: out })];
};

/** Unsqueeze-13: axes count in the output's rank. */
const unsqueeze: Rule = (c) => {
  const shape = c.shape(0);
  const axes = c.has(1) ? c.ints(1) : c.attrInts('axes');
  if (!axes) fail('Unsqueeze axes are unknown');
  const rank = shape.length + axes.length;
  const at = new Set(axes.map((a) => normAxis(a, rank)));
  const out: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(at.has(i) ? 1 : shape[k++]!);
  return [keepValue(c, { dtype: c.dtype(0), shape: out })];
};

/** Expand-13: bidirectional broadcast of the input with the requested shape. */
const expand: Rule = (c) => {
  const shape = c.shape(0);
  const dtype = c.dtype(0);
  const target = c.value(1);
  if (!target) {
    const len = numericShape(c.shapeOrNull(1))?.[0];
    if (len === undefined) fail('Expand shape is unknown');
    const rank = Math.max(len, shape.length);
    const padded = [...new Array<Dim>(rank - shape.length).fill(1), ...shape];
    return [{ dtype, shape: padded.map((d, i) => (d === 1 ? c.fresh(`expand${i}`) : d)) }];
  }
  const below = target.findIndex((d) => typeof d === 'number' && d < 0);
  if (below >= 0) invalid(`Expand to shape [${target.join(', ')}]: dim ${below} is below 0`);
  const out = broadcastShapes([shape, target]);
  const result: Out = { dtype, shape: out };
  const v = c.value(0);
  const n = numericShape(shape);
  const o = numericShape(out);
  if (v && n && o) {
    const value = broadcastMap(o, [{ shape: n, value: v }], ([a]) => a);
    if (value) result.value = value;
  }
  return [result];
};

const tile: Rule = (c) => {
  const shape = c.shape(0);
  const repeats = c.value(1);
  if (repeats && repeats.length !== shape.length) fail('Tile repeats do not match the rank');
  const out = repeats ? shape.map((d, i) => dimMul(d, repeats[i]!)) : shape.map((_, i) => c.fresh(`tile${i}`));
  return [{ dtype: c.dtype(0), shape: out }];
};

/** Pad-18: pads [x1_begin, x2_begin, ..., x1_end, x2_end] (input since 11, attribute before). */
const pad: Rule = (c) => {
  const shape = c.shape(0);
  const pads = c.has(1) ? c.value(1) : (c.attrInts('pads') ?? c.attrInts('paddings'));
  if (!pads) return [{ dtype: c.dtype(0), shape: shape.map((_, i) => c.fresh(`pad${i}`)) }];
  const axes = c.has(3) ? c.ints(3) : undefined;
  if (c.has(3) && !axes) fail('Pad axes are unknown');
  const list = (axes ?? shape.map((_, i) => i)).map((a) => normAxis(a, shape.length));
  if (pads.length !== 2 * list.length) fail('Pad pads do not match the padded axes');
  const out = shape.slice();
  list.forEach((axis, i) => {
    out[axis] = dimAdd(dimAdd(shape[axis]!, pads[i]!), pads[i + list.length]!);
  });
  return [{ dtype: c.dtype(0), shape: out }];
};

/** DepthToSpace / SpaceToDepth: [N, C, H, W] with blocksize b moves b² between C and H×W. */
const depthToSpace: Rule = (c) => {
  const [n, ch, h, w] = c.shape(0, 4);
  const b = c.attrInt('blocksize', 1);
  const cOut = dimDivExact(ch!, b * b) ?? c.fresh('channels');
  return [{ dtype: c.dtype(0), shape: [n!, cOut, dimMul(h!, b), dimMul(w!, b)] }];
};

const spaceToDepth: Rule = (c) => {
  const [n, ch, h, w] = c.shape(0, 4);
  const b = c.attrInt('blocksize', 1);
  return [{ dtype: c.dtype(0), shape: [n!, dimMul(ch!, b * b), dimDivExact(h!, b) ?? c.fresh('h'), dimDivExact(w!, b) ?? c.fresh('w')] }];
};

export const TENSOR_RULES: Record<string, Rule> = {
  Reshape: reshape,
  Flatten: flatten,
  Transpose: transpose,
  Concat: concat,
  Split: split,
  Slice: slice,
  Gather: gather,
  GatherND: gatherND,
  GatherElements: gatherElements,
  ScatterND: (c) => [sameAs(c)],
  ScatterElements: (c) => [sameAs(c)],
  Scatter: (c) => [sameAs(c)],
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Expand: expand,
  Tile: tile,
  Pad: pad,
  DepthToSpace: depthToSpace,
  SpaceToDepth: spaceToDepth,
};
