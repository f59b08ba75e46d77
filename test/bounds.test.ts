// The makespan lower bounds, checked against brute force on tiny problems and the exact optimum.

import assert from 'node:assert/strict';
import { mulberry32 } from '../src/util/stats.js';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { cheapBounds, lowerBound, spreadLp, SPREAD_LP_MAX_VARIABLES } from '../src/partition/bounds.js';
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
    // Units told apart by their weights (identical ones would be one class of the LP).
    const n = Math.ceil(SPREAD_LP_MAX_VARIABLES / 2);
    const p = independentUnits(
      Array.from({ length: n }, () => [1, 3]),
      Array.from({ length: n }, (_, u) => u),
      new Array(n).fill(0),
      [Infinity, Infinity],
    );
    const lb = await lowerBound(p);
    assert.equal(lb.memory_spread_s, lb.work_over_speed_s);
    assert.equal(lb.work_over_speed_s, n / 2);
    assert.ok(lb.notes.some((s) => s.includes('skipped')));
  });

  it('identical units are one class of the spread LP: the same optimum as a variable per unit (random problems, each unit repeated)', async () => {
    await fc.assert(
      fc.asyncProperty(specArb(2, 8, 2, 4), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 1 << 30 }), async (spec, copies, seed) => {
        const base = problemOf(spec);
        const n = base.unit_names.length;
        const nd = base.device_ids.length;
        const rand = mulberry32(seed);
        // Each unit `copies` times; weights that make memory bind on some devices.
        const weights = Array.from({ length: n }, () => Math.floor(rand() * 10));
        const times: number[][] = [];
        const w: number[] = [];
        for (let u = 0; u < n; u++)
          for (let c = 0; c < copies; c++) {
            times.push(Array.from({ length: nd }, (_, d) => base.time_s[u * nd + d]!));
            w.push(weights[u]!);
          }
        const total = w.reduce((a, b) => a + b, 0);
        const p = independentUnits(
          times,
          w,
          new Array(times.length).fill(0),
          Array.from({ length: nd }, (_, d) => (d === 0 ? Infinity : Math.max(10, total / 3))),
        );
        const work = cheapBounds(p).work_over_speed_s;
        const grouped = await spreadLp(p, work);
        const each = await spreadLp(p, work, { classes: false });
        assert.ok(
          grouped.bound_s === each.bound_s || Math.abs(grouped.bound_s - each.bound_s) <= 1e-9 * Math.max(1, each.bound_s),
          `${grouped.bound_s} vs ${each.bound_s}`,
        );
        assert.ok(grouped.variables <= each.variables);
        if (copies > 1) assert.ok(grouped.variables < each.variables, 'fewer variables');
      }),
      { numRuns: 40, seed: 17 },
    );
  });

  it('a frontier-sized problem of many identical units gets the memory-spread bound: experts that do not fit on the fast device go to the slow one', async () => {
    // 150,000 identical units (past the LP's variable limit one by one), 1 s on the fast device, 4 s
    // on the slow one; the fast device holds a third of their bytes. Work over speed says n·1/2;
    // memory forces ⅔·n units to the slow one, whose load is then at least ⅔·n·4/… — the LP's
    // optimum balances: T = max over the split, which a fractional split solves exactly below.
    const n = 150_000;
    const p = independentUnits(
      Array.from({ length: n }, () => [1, 4]),
      new Array(n).fill(3),
      new Array(n).fill(0),
      [n, Infinity],
    );
    const lb = await lowerBound(p);
    assert.ok(!lb.notes.some((s) => s.includes('skipped')), lb.notes.join('; '));
    // At most n/3 units on the fast device (memory); the rest on the slow one: T ≥ (2n/3)·4.
    const expected = ((2 * n) / 3) * 4;
    assert.ok(Math.abs(lb.memory_spread_s - expected) <= 1e-6 * expected, `${lb.memory_spread_s} vs ${expected}`);
    assert.ok(lb.memory_spread_s > lb.work_over_speed_s * 2);
  });
});

/** Units without values between them: times[u][d], bytes per unit, capacities per device. */
