import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { jsonPieces, writeJson } from '../src/util/json-text.js';

// Values JSON.stringify walks differently: undefined and functions (left out of objects, null in
// arrays), NaN and -0, sparse arrays, null-prototype objects, Dates (toJSON), boxed values, Maps,
// typed arrays, and strings outside the BMP (surrogate pairs) — nested deeper than the split depth.
const anything = fc.anything({
  maxDepth: 7,
  withNullPrototype: true,
  withDate: true,
  withBoxedValues: true,
  withMap: true,
  withSet: true,
  withTypedArray: true,
  withSparseArray: true,
  withObjectString: true,
  stringUnit: 'binary',
});
const value = fc.oneof(anything, fc.dictionary(fc.string(), anything), fc.array(fc.oneof(anything, fc.constant(undefined), fc.func(fc.integer()))));

test("plan.json's pieces join to JSON.stringify(value, null, 1) + newline, on any value (property)", () => {
  fc.assert(
    fc.property(value, (v) => {
      const pieces: string[] = [];
      jsonPieces(v, (p) => pieces.push(p));
      assert.equal(pieces.join(''), `${JSON.stringify(v, null, 1) ?? 'null'}\n`);
    }),
    { numRuns: 2000 },
  );
});

test('writeJson writes the UTF-8 bytes of that text through a small buffer, never splitting a character (property)', () => {
  fc.assert(
    fc.property(value, fc.integer({ min: 4, max: 64 }), (v, chunk) => {
      const chunks: Buffer[] = [];
      writeJson(v, (bytes) => chunks.push(Buffer.from(bytes)), chunk);
      for (const c of chunks) assert.ok(c.length <= chunk);
      assert.deepEqual(Buffer.concat(chunks), Buffer.from(`${JSON.stringify(v, null, 1) ?? 'null'}\n`, 'utf8'));
    }),
    { numRuns: 1000 },
  );
});

test('compact, the pieces and the bytes are those of JSON.stringify(value) + newline, lists long and short (property)', () => {
  // Lists long enough to be written in several slices, of elements short and long (a trace's events).
  const list = fc.oneof(
    fc.array(anything, { maxLength: 40 }),
    fc.array(fc.oneof(fc.string(), fc.integer(), fc.constant(undefined)), { minLength: 100, maxLength: 3000 }),
  );
  fc.assert(
    fc.property(fc.oneof(value, fc.dictionary(fc.string(), list)), fc.integer({ min: 4, max: 64 }), (v, chunk) => {
      const pieces: string[] = [];
      jsonPieces(v, (p) => pieces.push(p), 0);
      assert.equal(pieces.join(''), `${JSON.stringify(v) ?? 'null'}\n`);
      const chunks: Buffer[] = [];
      writeJson(v, (bytes) => chunks.push(Buffer.from(bytes)), chunk, 0);
      assert.deepEqual(Buffer.concat(chunks), Buffer.from(`${JSON.stringify(v) ?? 'null'}\n`, 'utf8'));
    }),
    { numRuns: 300 },
  );
});

test('compact, a long list of long elements is written in slices of bounded text', () => {
  const events = Array.from({ length: 5000 }, (_, i) => ({ name: `event ${i} ${'→'.repeat(i % 97)}`, ts: i / 3, args: { request: i % 4 } }));
  const pieces: string[] = [];
  jsonPieces({ traceEvents: events, displayTimeUnit: 'ns' }, (p) => pieces.push(p), 0);
  assert.equal(pieces.join(''), `${JSON.stringify({ traceEvents: events, displayTimeUnit: 'ns' })}\n`);
  assert.ok(Math.max(...pieces.map((p) => p.length)) < 3 * (1 << 14));
  assert.ok(pieces.length > 10);
});

test('long lists and objects, written in slices, join to JSON.stringify(value, null, 1) + newline (property)', () => {
  // Past 64 elements or members a container is written a slice at a time: elements short and long,
  // holes and left-out values, members all left out in a slice, integer-like keys (which JSON.stringify
  // writes first, ascending) and a member named __proto__.
  const element = fc.oneof(anything, fc.string(), fc.integer(), fc.constant(undefined), fc.func(fc.integer()));
  const key = fc.oneof(fc.string(), fc.nat({ max: 500 }).map(String), fc.constant('__proto__'));
  const long = fc.oneof(
    fc.array(element, { minLength: 64, maxLength: 1500 }),
    fc.sparseArray(element, { minNumElements: 8, maxLength: 400 }).map((a) => (a.length >= 64 ? a : Object.assign(a, { length: 64 + a.length }))),
    fc.dictionary(key, element, { minKeys: 64, maxKeys: 1200 }),
    fc.dictionary(key, fc.constant(undefined), { minKeys: 64, maxKeys: 100 }),
  );
  const nested = fc.oneof(long, fc.array(long, { maxLength: 3 }), fc.dictionary(fc.string(), fc.array(long, { maxLength: 2 }), { maxKeys: 3 }));
  fc.assert(
    fc.property(nested, fc.integer({ min: 4, max: 64 }), (v, chunk) => {
      for (const space of [1, 0] as const) {
        const pieces: string[] = [];
        jsonPieces(v, (p) => pieces.push(p), space);
        const expected = `${JSON.stringify(v, null, space) ?? 'null'}\n`;
        assert.equal(pieces.join(''), expected);
        const chunks: Buffer[] = [];
        writeJson(v, (bytes) => chunks.push(Buffer.from(bytes)), chunk, space);
        assert.deepEqual(Buffer.concat(chunks), Buffer.from(expected, 'utf8'));
      }
    }),
    { numRuns: 200 },
  );
});
