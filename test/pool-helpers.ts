// A candidate pool over a placement problem with nothing else in play (no pins, no KV state, no
// replan, no --min-sequences), for tests of the pool's own rules.

import type { Judge } from '../src/partition/judge.js';
import { CandidatePool, type PoolInput } from '../src/partition/pool.js';
import type { PlacementProblem } from '../src/partition/problem.js';
import { MakespanAssessor } from '../src/partition/refine.js';

export function plainPool(
  p: PlacementProblem,
  judge: Judge,
  given: Pick<PoolInput, 'tpSplits' | 'contention' | 'everyThroughput'> & Partial<Pick<PoolInput, 'copyGroups'>>,
): CandidatePool {
  return new CandidatePool({
    p,
    judge,
    assessor: new MakespanAssessor(p),
    objective: 'latency',
    groups: [],
    pinnedTo: new Int32Array(p.unit_names.length).fill(-1),
    measureKv: () => {
      throw new Error('no KV state here');
    },
    hasState: false,
    migration: null,
    asked: null,
    copyGroups: [],
    ...given,
  });
}
