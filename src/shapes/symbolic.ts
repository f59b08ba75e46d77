// Symbolic dims: a dim in the IR is `number | string`, and every string a pass writes is the
// canonical text of an integer polynomial (poly.ts), so two dims are equal exactly when their
// strings are. These helpers do dim arithmetic with numbers on the fast path and memoised
// polynomial arithmetic otherwise, so 100k-node graphs build few polynomials.

import type { Dim } from '../ir/graph.js';
import { Poly, remember, type Bindings } from './poly.js';
import { parseDim } from './poly-parse.js';

export { Poly, type Bindings } from './poly.js';
export { parseDim, parseLenient } from './poly-parse.js';

export function polyOf(d: Dim): Poly {
  return typeof d === 'number' ? Poly.constant(d) : parseDim(d);
}

/** A number, or the canonical text of a non-constant polynomial. */
export function canonDim(d: Dim): Dim {
  return typeof d === 'number' ? d : parseDim(d).toDim();
}

/** Memo: `op a b` → result, so repeated shape arithmetic on the same symbols builds no polynomials. */
const opCache = new Map<string, Dim | undefined>();

function memo(op: string, a: Dim, b: Dim, compute: () => Dim | undefined): Dim | undefined {
  const key = `${op}\u0000${a}\u0000${b}`;
  if (opCache.has(key)) return opCache.get(key);
  return remember(opCache, key, compute());
}

export function dimAdd(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return canonDim(b);
  if (b === 0) return canonDim(a);
  return memo('+', a, b, () => polyOf(a).add(polyOf(b)).toDim())!;
}

export function dimSub(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (b === 0) return canonDim(a);
  if (a === b) return 0;
  return memo('-', a, b, () => polyOf(a).sub(polyOf(b)).toDim())!;
}

export function dimMul(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  if (a === 1) return canonDim(b);
  if (b === 1) return canonDim(a);
  return memo('*', a, b, () => polyOf(a).mul(polyOf(b)).toDim())!;
}

/** a / b when exact (integer result, or polynomial that divides), else undefined. */
export function dimDivExact(a: Dim, b: Dim): Dim | undefined {
  if (typeof a === 'number' && typeof b === 'number') return b !== 0 && a % b === 0 ? a / b : undefined;
  if (b === 1) return canonDim(a);
  return memo('/', a, b, () => polyOf(a).divExact(polyOf(b))?.toDim());
}

export function dimFloorDiv(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return Math.floor(a / b);
  if (b === 1) return canonDim(a);
  return memo('//', a, b, () => polyOf(a).floorDiv(polyOf(b)).toDim())!;
}

export function dimCeilDiv(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return Math.ceil(a / b);
  return dimFloorDiv(dimAdd(a, dimSub(b, 1)), b);
}

export function dimProduct(dims: readonly Dim[]): Dim {
  let acc: Dim = 1;
  for (const d of dims) acc = dimMul(acc, d);
  return acc;
}

export function dimSum(dims: readonly Dim[]): Dim {
  let acc: Dim = 0;
  for (const d of dims) acc = dimAdd(acc, d);
  return acc;
}

export function dimEquals(a: Dim, b: Dim): boolean {
  if (typeof a === 'number' || typeof b === 'number') return canonDim(a) === canonDim(b);
  return a === b || parseDim(a).equals(parseDim(b));
}

/** Substitutes bound symbols (`--dim batch=8`); a dim that folds to a constant becomes a number. */
export function substituteDim(d: Dim, b: Bindings): Dim {
  if (typeof d === 'number') return d;
  return parseDim(d).substitute(b).toDim();
}

/** The value of a dim under bindings, or undefined when a symbol stays free. */
export function evalDim(d: Dim, b: Bindings): number | undefined {
  const v = substituteDim(d, b);
  return typeof v === 'number' ? v : undefined;
}

export function dimSymbols(d: Dim): string[] {
  return typeof d === 'number' ? [] : parseDim(d).freeSymbols();
}

export function dimSign(d: Dim): ReturnType<Poly['sign']> {
  if (typeof d === 'number') return d > 0 ? 'pos' : d < 0 ? 'neg' : 'zero';
  return parseDim(d).sign();
}
