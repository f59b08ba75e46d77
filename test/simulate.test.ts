import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EventQueue, executionOrder } from '../src/sim/simulate.js';

test("a device's execution order over R requests is (request + round, step) ascending, for rounds in order and out of order (property)", () => {
  fc.assert(
    fc.property(fc.array(fc.nat(6), { maxLength: 40 }), fc.integer({ min: 1, max: 20 }), fc.boolean(), (rounds, R, sort) => {
      if (sort) rounds.sort((a, b) => a - b);
      const round = Float64Array.from(rounds);
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

test("the simulator's event queue pops the earliest event, and of events at one time the first pushed, through any mix of pushes and pops (property)", () => {
  // An action is a push (time from a few values, so ties are common) or a pop.
  const action = fc.oneof(fc.record({ push: fc.constantFrom(0, 0.5, 1, 1.5, 2, 3) }), fc.constant({ push: null }));
  fc.assert(
    fc.property(fc.array(action, { maxLength: 300 }), (actions) => {
      const q = new EventQueue();
      const pending: { t: number; id: number }[] = [];
      let next = 0;
      for (const a of actions) {
        if (a.push !== null) {
          q.push(a.push, 0, next);
          pending.push({ t: a.push, id: next++ });
        } else if (pending.length > 0) {
          // The reference: the least time, and of equal times the one pushed first (ids rise with pushes).
          let k = 0;
          for (let i = 1; i < pending.length; i++) if (pending[i]!.t < pending[k]!.t) k = i;
          assert.equal(q.headTime(), pending[k]!.t);
          q.pop();
          assert.equal(q.id, pending[k]!.id);
          pending.splice(k, 1);
        }
        assert.equal(q.size, pending.length);
      }
      if (pending.length === 0) assert.equal(q.headTime(), Infinity);
    }),
    { numRuns: 300, seed: 23 },
  );
});
