// The makespan lower bounds, checked against brute force on tiny problems and the exact optimum.

import assert from 'node:assert/strict';
import { mulberry32 } from '../src/util/stats.js';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { lowerBound, SPREAD_LP_MAX_VARIABLES } from '../src/partition/bounds.js';
import { evaluate } from '../src/partition/problem.js';
import { EPS, independentUnits, le, problemOf, randomFeasible, specArb } from './exact-helpers.js';

describe('makespan lower bounds', () => {
  it('never exceed the makespan of random feasible placements (4–30 units, 2–4 devices)', async () => {
    await fc.assert(
      fc.asyncProperty(specArb(4, 30, 2, 4), fc.integer({ min: 1, max: 1 << 30 }), async (spec, seed) => {
        const p = problemOf(spec);
        const lb = await lowerBound(p);
        assert.equal(lb.lower_bound_s, Math.max(lb.critical_path_s, lb.work_over_speed_s, lb.memory_spread_s));
        assert.ok(lb.memory_spread_s + EPS >= lb.work_over_speed_s);
        const rand = mulberry32(seed);
        for (let i = 0; i < 30; i++) {
          const pick = randomFeasible(p, rand);
          if (!pick) break;
          const m = evaluate(p, pick.device, pick.priority).makespan_s;
          assert.ok(le(lb.lower_bound_s, m), `lower bound ${JSON.stringify(lb)} > feasible ${m}`);
        }
      }),
      { numRuns: 60, seed: 11 },
    );
  });

  it('falls back to work over speed when the spread LP would be too large', async () => {
    const n = Math.ceil(SPREAD_LP_MAX_VARIABLES / 2);
    const p = independentUnits(
      Array.from({ length: n }, () => [1, 3]),
      new Array(n).fill(0),
      new Array(n).fill(0),
      [Infinity, Infinity],
    );
    const lb = await lowerBound(p);
    assert.equal(lb.memory_spread_s, lb.work_over_speed_s);
    assert.equal(lb.work_over_speed_s, n / 2);
    assert.ok(lb.notes.some((s) => s.includes('skipped')));
  });
});

/** Units without values between them: times[u][d], bytes per unit, capacities per device. */
