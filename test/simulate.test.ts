import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { executionOrder } from '../src/sim/simulate.js';

test("a device's execution order over R requests is (request + round, step) ascending, for rounds in order and out of order (property)", () => {
  fc.assert(
    fc.property(fc.array(fc.nat(6), { maxLength: 40 }), fc.integer({ min: 1, max: 20 }), fc.boolean(), (rounds, R, sort) => {
      if (sort) rounds.sort((a, b) => a - b);
      const round = Int32Array.from(rounds);
      // The definition: every (request, step) pair, sorted by (request + round[step], step).
      const pairs: [number, number][] = [];
      for (let r = 0; r < R; r++) for (let k = 0; k < round.length; k++) pairs.push([r, k]);
      pairs.sort((a, b) => a[0] + round[a[1]]! - (b[0] + round[b[1]]!) || a[1] - b[1]);
      const got = executionOrder(round, R);
      assert.deepEqual(
        Array.from(got.step),
        pairs.map((p) => p[1]),
      );
      assert.deepEqual(
        Array.from(got.request),
        pairs.map((p) => p[0]),
      );
    }),
    { numRuns: 300, seed: 17 },
  );
});
