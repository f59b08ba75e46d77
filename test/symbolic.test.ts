// Symbolic dims: parsing what exporters write, canonical printing, arithmetic, division and
// substitution; fast-check properties for the ring laws, parse∘toString, and floor division
// checked against plain integer arithmetic under random bindings.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  Poly,
  canonDim,
  dimAdd,
  dimCeilDiv,
  dimDivExact,
  dimEquals,
  dimFloorDiv,
  dimMul,
  dimProduct,
  dimSub,
  dimSymbols,
  evalDim,
  parseDim,
  parseLenient,
  substituteDim,
} from '../src/shapes/symbolic.js';

test('parses and prints the dims real models carry, canonically', () => {
  const cases: [string, string | number][] = [
    ['past_sequence_length + sequence_length', 'past_sequence_length + sequence_length'],
    ['sequence_length + past_sequence_length', 'past_sequence_length + sequence_length'],
    ['seq*2*batch_size', '2*batch_size*seq'],
    ['a - 1', 'a - 1'],
    ['1 - a', '-a + 1'],
    ['(a+b)*(a-b)', 'a^2 - b^2'],
    ['a**2', 'a^2'],
    ['p2o.DynamicDimension.1', 'p2o.DynamicDimension.1'],
    ['seq-len', 'seq-len'],
    ['2 + 3*4', 14],
    ['a - a', 0],
    ['(a + 1)/2', 'floor((a + 1)/2)'],
    ['a // 2', 'floor(a/2)'],
    ['floor((a - 1)/2) + 1', 'floor((a + 1)/2)'],
    ['(2*a + 4)/2', 'a + 2'],
    ['unk__42', 'unk__42'],
  ];
  for (const [text, want] of cases) assert.equal(canonDim(text), want, text);
});

test('unparsable text becomes one opaque symbol named by it, and stays one', () => {
  for (const text of ['?', 'ceil(a/2)', 'batch x', 'Mod(s0, 2)', 'floor(a/)']) {
    const p = parseDim(text);
    assert.deepEqual(p.atoms(), [text]);
    assert.equal(p.toString(), text);
  }
  // Inside a larger expression an opaque name is quoted so that it parses back.
  const sum = parseDim('ceil(a/2)').add(Poly.constant(1));
  assert.equal(sum.toString(), '`ceil(a/2)` + 1');
  assert.equal(parseLenient(sum.toString()).toString(), sum.toString());
});

test('arithmetic on dims keeps numbers as numbers and symbols canonical', () => {
  assert.equal(dimAdd('past_sequence_length', 'sequence_length'), 'past_sequence_length + sequence_length');
  assert.equal(dimSub('past_sequence_length + sequence_length', 'sequence_length'), 'past_sequence_length');
  assert.equal(dimMul('batch_size', 'sequence_length'), 'batch_size*sequence_length');
  assert.equal(dimProduct(['batch_size', 4, 'seq', 32]), '128*batch_size*seq');
  assert.equal(dimAdd('b + a', 0), 'a + b');
  assert.equal(dimMul(3, 4), 12);
  assert.ok(dimEquals('b*a', 'a*b'));
  assert.ok(!dimEquals('a', 'b'));
});

test('exact division: by an integer, by a polynomial (Reshape -1), and refusal otherwise', () => {
  assert.equal(dimDivExact('128*batch_size*seq', '4*batch_size*seq'), 32);
  assert.equal(dimDivExact('2*a*b', 'a'), '2*b');
  assert.equal(dimDivExact('a^2 - 1', 'a - 1'), 'a + 1');
  assert.equal(dimDivExact('a^2 + 2*a*b + b^2', 'a + b'), 'a + b');
  assert.equal(dimDivExact('a', 2), undefined);
  assert.equal(dimDivExact('a + 1', 'a'), undefined);
  assert.equal(dimDivExact(12, 5), undefined);
});

test('floor division folds what it can and names the rest as a floor atom', () => {
  assert.equal(dimFloorDiv('2*a + 3', 2), 'a + 1');
  assert.equal(dimFloorDiv('a', 2), 'floor(a/2)');
  // Conv with stride 2 twice: floor((floor((H + 1)/2) + 1)/2) = floor((H + 3)/4).
  assert.equal(dimFloorDiv(dimAdd(dimFloorDiv('H + 1', 2), 1), 2), 'floor((H + 3)/4)');
  assert.equal(dimCeilDiv('a', 4), 'floor((a + 3)/4)');
  assert.equal(dimFloorDiv('a', 'b'), 'floor(a/b)');
  assert.equal(substituteDim('floor((H + 3)/4)', { H: 96 }), 24);
  assert.deepEqual(dimSymbols('floor((H + 3)/4) + W'), ['H', 'W']);
});

test('substitution binds symbols and folds to numbers', () => {
  assert.equal(substituteDim('past_sequence_length + sequence_length', { past_sequence_length: 3, sequence_length: 5 }), 8);
  assert.equal(substituteDim('past_sequence_length + sequence_length', { sequence_length: 5 }), 'past_sequence_length + 5');
  assert.equal(substituteDim('2*batch_size*seq', new Map([['batch_size', 2]])), '4*seq');
  assert.equal(evalDim('a*b - 1', { a: 3, b: 4 }), 11);
  assert.equal(evalDim('a*b - 1', { a: 3 }), undefined);
  // A name that is not an identifier is one symbol when alone, and quoted inside an expression.
  assert.equal(substituteDim('seq-len', { 'seq-len': 7 }), 7);
  assert.equal(dimAdd('seq-len', 1), '`seq-len` + 1');
  assert.equal(substituteDim('`seq-len` + 1', { 'seq-len': 7 }), 8);
});

// ---- properties --------------------------------------------------------------------------------

const SYMBOLS = ['a', 'b', 'batch_size', 'p2o.DynamicDimension.0', 'seq-len'];

type Expr = { kind: 'sym'; name: string } | { kind: 'const'; value: number } | { kind: 'op'; op: '+' | '-' | '*'; l: Expr; r: Expr };

const exprArb: fc.Arbitrary<Expr> = fc.letrec<{ expr: Expr }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...SYMBOLS).map((name): Expr => ({ kind: 'sym', name })),
    fc.integer({ min: -5, max: 9 }).map((value): Expr => ({ kind: 'const', value })),
    fc.record({ kind: fc.constant('op' as const), op: fc.constantFrom('+' as const, '-' as const, '*' as const), l: tie('expr'), r: tie('expr') }),
  ),
})).expr;

function build(e: Expr): Poly {
  if (e.kind === 'sym') return Poly.symbol(e.name);
  if (e.kind === 'const') return Poly.constant(e.value);
  const l = build(e.l);
  const r = build(e.r);
  return e.op === '+' ? l.add(r) : e.op === '-' ? l.sub(r) : l.mul(r);
}

function evaluate(e: Expr, env: Record<string, number>): number {
  if (e.kind === 'sym') return env[e.name]!;
  if (e.kind === 'const') return e.value;
  const l = evaluate(e.l, env);
  const r = evaluate(e.r, env);
  return e.op === '+' ? l + r : e.op === '-' ? l - r : l * r;
}

const polyArb = exprArb.map(build);
const envArb = fc.record(Object.fromEntries(SYMBOLS.map((s) => [s, fc.integer({ min: 0, max: 20 })])) as Record<string, fc.Arbitrary<number>>);
const partialEnvArb = envArb.chain((env) => fc.subarray(SYMBOLS).map((keep) => Object.fromEntries(keep.map((k) => [k, env[k]!]))));

const same = (p: Poly, q: Poly): void => assert.equal(p.toString(), q.toString());

test('property: toString parses back to the same polynomial (no memo involved)', () => {
  fc.assert(
    fc.property(polyArb, (p) => {
      same(parseLenient(p.toString()), p);
    }),
    { numRuns: 400 },
  );
});

test('property: ring laws hold on canonical forms', () => {
  fc.assert(
    fc.property(polyArb, polyArb, polyArb, (p, q, r) => {
      same(p.add(q), q.add(p));
      same(p.mul(q), q.mul(p));
      same(p.add(q).add(r), p.add(q.add(r)));
      same(p.mul(q).mul(r), p.mul(q.mul(r)));
      same(p.mul(q.add(r)), p.mul(q).add(p.mul(r)));
      same(p.sub(p), Poly.constant(0));
      same(p.mul(Poly.constant(1)), p);
    }),
    { numRuns: 200 },
  );
});

test('property: a polynomial evaluates like the expression it came from', () => {
  fc.assert(
    fc.property(exprArb, envArb, (e, env) => {
      assert.equal(build(e).substitute(env).constantValue(), evaluate(e, env) + 0); // + 0: no -0
    }),
    { numRuns: 300 },
  );
});

test('property: substitution commutes with addition and multiplication', () => {
  fc.assert(
    fc.property(polyArb, polyArb, partialEnvArb, (p, q, env) => {
      same(p.add(q).substitute(env), p.substitute(env).add(q.substitute(env)));
      same(p.mul(q).substitute(env), p.substitute(env).mul(q.substitute(env)));
    }),
    { numRuns: 300 },
  );
});

test('property: exact division undoes multiplication', () => {
  fc.assert(
    fc.property(polyArb, polyArb, (p, q) => {
      fc.pre(q.terms.length > 0);
      const back = p.mul(q).divExact(q);
      assert.ok(back, `${p.mul(q)} / ${q}`);
      same(back, p);
    }),
    { numRuns: 300 },
  );
});

test('property: floor division agrees with integer floor division once bound', () => {
  fc.assert(
    fc.property(polyArb, fc.integer({ min: 1, max: 7 }), fc.integer({ min: -3, max: 5 }), fc.integer({ min: 1, max: 5 }), envArb, (p, k, c, k2, env) => {
      const direct = p.substitute(env).constantValue()!;
      const once = p.floorDiv(Poly.constant(k));
      assert.equal(once.substitute(env).constantValue(), Math.floor(direct / k), `${once}`);
      same(parseLenient(once.toString()), once);
      const twice = once.add(Poly.constant(c)).floorDiv(Poly.constant(k2));
      assert.equal(twice.substitute(env).constantValue(), Math.floor((Math.floor(direct / k) + c) / k2), `${twice}`);
      same(parseLenient(twice.toString()), twice);
    }),
    { numRuns: 400 },
  );
});
