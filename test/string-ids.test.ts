import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StringIds, hashOf } from '../src/util/string-ids.js';

/** Ids in the order first seen, by a Map: what StringIds must give. */
function mapIds(names: string[]): number[] {
  const ids = new Map<string, number>();
  return names.map((s) => {
    if (!ids.has(s)) ids.set(s, ids.size);
    return ids.get(s)!;
  });
}

function check(names: string[], expected: number): void {
  const table = new StringIds(expected);
  // Each occurrence its own string object, as each NodeProto decodes one.
  const got = names.map((s) => table.intern([...s].join('')));
  assert.deepEqual(got, mapIds(names));
  const want = mapIds(names);
  names.forEach((s, i) => assert.equal(table.get(s), want[i]));
  assert.equal(table.size, new Set(names).size);
  assert.deepEqual(table.names, [...new Set(names)]);
  assert.equal(table.get('\u0000absent'), undefined);
}

test('string ids are given in the order first seen, as a Map gives them, through growth and repeats', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 6 }), { maxLength: 300 }), fc.integer({ min: 0, max: 64 }), (names, expected) => check(names, expected)),
  );
});

test('names made to collide move the table to a Map and keep their ids', () => {
  // 200 names in one slot of a 2048-slot table (expected 1000): each probe past the last.
  const slot = new Map<number, string[]>();
  let full: string[] | undefined;
  for (let i = 0; !full; i++) {
    const s = `/model/layers.${i}/MatMul`;
    const same = slot.get(hashOf(s) & 2047) ?? [];
    same.push(s);
    slot.set(hashOf(s) & 2047, same);
    if (same.length === 200) full = same;
  }
  check([...full, ...full.slice(0, 50), 'other', ...full.slice(150)], 1000);
});
