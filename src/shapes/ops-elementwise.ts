// Element-wise operators: unary activations and math (same type as the input), binary and
// variadic ops with ONNX multidirectional broadcasting, comparisons and logic (bool), Where, Cast.
// Small integer tensors are folded element by element so shape arithmetic stays known.

import { dtypeFromOnnx } from '../ir/dtype.js';
import type { Dim, Shape } from '../ir/graph.js';
import { arith, broadcastMap, castElement, compare, unary, valueKind } from './constant-fold.js';
import { broadcastShapes, fail, invalid, numericShape, type OpCall, type Out, type Rule } from './rule.js';

/** Ops whose output has the input's type and shape (ONNX unary element-wise and activations). */
const UNARY = [
  'Relu',
  'Sigmoid',
  'Tanh',
  'Erf',
  'HardSwish',
  'HardSigmoid',
  'LeakyRelu',
  'Softplus',
  'Softsign',
  'Neg',
  'Sqrt',
  'Exp',
  'Log',
  'Abs',
  'Reciprocal',
  'Ceil',
  'Floor',
  'Round',
  'Sign',
  'Not',
  'Sin',
  'Cos',
  'Tan',
  'Asin',
  'Acos',
  'Atan',
  'Sinh',
  'Cosh',
  'Asinh',
  'Acosh',
  'Atanh',
  'Elu',
  'Selu',
  'Celu',
  'ThresholdedRelu',
  'Mish',
  'Gelu',
  'Shrink',
  'BitwiseNot',
  'Clip',
  'Swish',
  'Identity',
];

/** Binary/variadic ops whose output dtype is the first input's. */
const ARITH = ['Add', 'Sub', 'Mul', 'Div', 'Mod', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'BitShift', 'BitwiseAnd', 'BitwiseOr', 'BitwiseXor', 'PRelu'];
const COMPARE = ['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual'];
const LOGIC = ['And', 'Or', 'Xor'];

function inputShapes(c: OpCall): Shape[] | null {
  const shapes: Shape[] = [];
  for (let i = 0; i < c.node.inputs.length; i++) {
    if (!c.has(i)) continue;
    const s = c.shapeOrNull(i);
    if (!s) return null;
    shapes.push(s);
  }
  return shapes;
}

/** Folds an element-wise op when every input's elements and the output shape are known. */
function fold(c: OpCall, outShape: Shape | null, fn: (args: Dim[]) => Dim | undefined): Dim[] | undefined {
  const os = numericShape(outShape);
  if (!os) return undefined;
  const ins: { shape: number[]; value: Dim[] }[] = [];
  for (let i = 0; i < c.node.inputs.length; i++) {
    if (!c.has(i)) continue;
    const v = c.value(i);
    const s = numericShape(c.shapeOrNull(i));
    if (!v || !s) return undefined;
    ins.push({ shape: s, value: v });
  }
  return broadcastMap(os, ins, fn);
}

function withValue(out: Out, value: Dim[] | undefined): Out {
  return value ? { ...out, value } : out;
}

const unaryRule =
  (op: string): Rule =>
  (c) => {
    const dtype = c.dtype(0);
    const shape = c.shapeOrNull(0);
    const kind = valueKind(dtype);
    const value =
      op === 'Clip' || op === 'Identity' || kind !== 'other' ? fold(c, shape, op === 'Clip' ? clipFold(c) : ([a]) => unary(op, kind, a!)) : undefined;
    return [withValue({ dtype, shape }, value)];
  };

/** Clip folds numerically with its min/max (inputs since opset 11, attributes before). */
function clipFold(c: OpCall): (args: Dim[]) => Dim | undefined {
  const attr = (name: string): number | undefined => {
    const v = c.attrFloat(name, NaN);
    return Number.isNaN(v) ? undefined : v;
  };
  if ((c.has(1) && !c.ints(1)) || (c.has(2) && !c.ints(2))) return () => undefined;
  const lo = c.has(1) ? c.ints(1)?.[0] : attr('min');
  const hi = c.has(2) ? c.ints(2)?.[0] : attr('max');
  return (args) => {
    const a = args[0]!;
    if (typeof a !== 'number') return lo === undefined && hi === undefined ? a : undefined;
    return Math.min(Math.max(a, lo ?? -Infinity), hi ?? Infinity);
  };
}

const arithRule =
  (op: string): Rule =>
  (c) => {
    const dtype = c.dtype(0);
    const shapes = inputShapes(c);
    const shape = shapes ? broadcastShapes(shapes) : null;
    const kind = valueKind(dtype);
    let value: Dim[] | undefined;
    if (kind === 'int' || kind === 'float' || kind === 'bool') {
      if (op === 'Sum' || op === 'Max' || op === 'Min' || ['Add', 'Sub', 'Mul', 'Div', 'Mod', 'Pow'].includes(op)) {
        const base = op === 'Sum' ? 'Add' : op;
        value = fold(c, shape, (args) => {
          let acc: Dim | undefined = args[0]!;
          for (let i = 1; i < args.length && acc !== undefined; i++) acc = arith(base, kind, acc, args[i]!);
          return acc;
        });
      }
    }
    return [withValue({ dtype, shape }, value)];
  };

function binary(c: OpCall): void {
  if (!c.has(0) || !c.has(1)) fail(`${c.node.op} needs two inputs`);
}

const compareRule =
  (op: string): Rule =>
  (c) => {
    binary(c);
    const shapes = inputShapes(c);
    const shape = shapes ? broadcastShapes(shapes) : null;
    return [
      withValue(
        { dtype: 'bool', shape },
        fold(c, shape, ([a, b]) => compare(op, a!, b!)),
      ),
    ];
  };

const logicRule =
  (op: string): Rule =>
  (c) => {
    binary(c);
    const shapes = inputShapes(c);
    const shape = shapes ? broadcastShapes(shapes) : null;
    return [
      withValue(
        { dtype: 'bool', shape },
        fold(c, shape, ([a, b]) => arith(op, 'bool', a!, b!)),
      ),
    ];
  };

/** Where(cond, X, Y): broadcast of all three, dtype of X (ONNX Where-16). */
const where: Rule = (c) => {
  if (!c.has(0) || !c.has(1) || !c.has(2)) fail('Where needs three inputs');
  const dtype = c.dtype(1);
  const shapes = inputShapes(c);
  const shape = shapes ? broadcastShapes(shapes) : null;
  return [
    withValue(
      { dtype, shape },
      fold(c, shape, ([cond, x, y]) => {
        if (typeof cond !== 'number') return undefined;
        return cond ? x : y;
      }),
    ),
  ];
};

const cast: Rule = (c) => {
  const to = dtypeFromOnnx(c.attrInt('to', 0));
  if (!to) invalid(`Cast to=${c.attrInt('to', 0)} is not an ONNX data type`);
  const kind = valueKind(to);
  const shape = c.shapeOrNull(0);
  return [
    withValue(
      { dtype: to, shape },
      fold(c, shape, ([a]) => castElement(a!, kind)),
    ),
  ];
};

const castLike: Rule = (c) => {
  const to = c.dtype(1);
  const shape = c.shapeOrNull(0);
  return [
    withValue(
      { dtype: to, shape },
      fold(c, shape, ([a]) => castElement(a!, valueKind(to))),
    ),
  ];
};

const toBool: Rule = (c) => [{ dtype: 'bool', shape: c.shapeOrNull(0) }];

export const ELEMENTWISE_RULES: Record<string, Rule> = {
  ...Object.fromEntries(UNARY.map((op) => [op, unaryRule(op)])),
  ...Object.fromEntries(ARITH.map((op) => [op, arithRule(op)])),
  ...Object.fromEntries(COMPARE.map((op) => [op, compareRule(op)])),
  ...Object.fromEntries(LOGIC.map((op) => [op, logicRule(op)])),
  IsNaN: toBool,
  IsInf: toBool,
  Where: where,
  Cast: cast,
  CastLike: castLike,
};
