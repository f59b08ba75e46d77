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
