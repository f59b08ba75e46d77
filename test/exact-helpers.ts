// Helpers of the exact-solver and bound tests: random specs and problems, brute force over every
// assignment and order, random feasible placements, validity, and the classic HEFT example.

import assert from 'node:assert/strict';
import { mulberry32 } from '../src/util/stats.js';
import fc from 'fast-check';
import { unitAllowed } from '../src/partition/bounds.js';
import { memoryFeasible } from '../src/partition/exact.js';
import { evaluate, type PlacementProblem, unitPredecessors, unitTime } from '../src/partition/problem.js';

/** A random problem, described by plain numbers so fast-check can shrink and print it. */
export interface Spec {
  units: number;
  devices: number;
  /** units × devices compute seconds; 0 marks "cannot run here" (Infinity). */
  time: number[];
  /** For each pair i<j (row-major over the upper triangle): 0 = no edge, else bytes. */
  edge_bytes: number[];
  latency_s: number[];
  bandwidth: number[];
  weight: number[];
  activation: number[];
  /** Capacity per device as a fraction of the total weight bytes (≥ 2 = unconstrained-ish). */
  capacity_frac: number[];
}

export function specArb(minUnits: number, maxUnits: number, minDevices: number, maxDevices: number): fc.Arbitrary<Spec> {
  return fc
    .record({ units: fc.integer({ min: minUnits, max: maxUnits }), devices: fc.integer({ min: minDevices, max: maxDevices }) })
    .chain(({ units, devices }) =>
      fc.record({
        units: fc.constant(units),
        devices: fc.constant(devices),
        time: fc.array(fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 6, arbitrary: fc.integer({ min: 1, max: 20 }) }), {
          minLength: units * devices,
          maxLength: units * devices,
        }),
        edge_bytes: fc.array(fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }) }), {
          minLength: (units * (units - 1)) / 2,
          maxLength: (units * (units - 1)) / 2,
        }),
        latency_s: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: devices * devices, maxLength: devices * devices }),
        bandwidth: fc.array(fc.constantFrom(1, 2, 4), { minLength: devices * devices, maxLength: devices * devices }),
        weight: fc.array(fc.integer({ min: 0, max: 10 }), { minLength: units, maxLength: units }),
        activation: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: units, maxLength: units }),
        capacity_frac: fc.array(fc.constantFrom(0.4, 0.6, 1, 3), { minLength: devices, maxLength: devices }),
      }),
    );
}

export function problemOf(s: Spec): PlacementProblem {
  const { units: n, devices: D } = s;
  const time_s = Float64Array.from(s.time, (t) => (t === 0 ? Infinity : t));
  // Every unit must run somewhere: the fastest-looking zero becomes a real time.
  for (let u = 0; u < n; u++) if (!Array.from({ length: D }, (_, d) => time_s[u * D + d]!).some(Number.isFinite)) time_s[u * D + (u % D)] = 5;
  const values: PlacementProblem['values'] = [];
  let k = 0;
  const consumers: number[][] = Array.from({ length: n }, () => []);
  const bytes = new Float64Array(n);
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++, k++) {
      const b = s.edge_bytes[k]!;
      if (b === 0) continue;
      consumers[i]!.push(j);
      bytes[i] = Math.max(bytes[i]!, b);
    }
  // One value per producer, read by all its consumers (a value moves once per reading device).
  for (let i = 0; i < n; i++) if (consumers[i]!.length > 0) values.push({ name: `v${i}`, producer: i, consumers: consumers[i]!, bytes: bytes[i]! });
  const total = s.weight.reduce((a, b) => a + b, 0) + Math.max(...s.activation);
  return {
    unit_names: Array.from({ length: n }, (_, u) => `u${u}`),
    device_ids: Array.from({ length: D }, (_, d) => `d${d}`),
    time_s,
    values,
    weight_bytes: Float64Array.from(s.weight),
    state_bytes: new Float64Array(n),
    activation_bytes: Float64Array.from(s.activation),
    capacity_bytes: Float64Array.from(s.capacity_frac, (f) => Math.max(1, Math.round(f * total))),
    transfer_s: (a, b, by) => (a === b ? 0 : s.latency_s[a * D + b]! + by / s.bandwidth[a * D + b]!),
    order: Int32Array.from({ length: n }, (_, u) => u),
  };
}

/** Every feasible assignment (allowed devices, memory) of a tiny problem. */
function* assignments(p: PlacementProblem): Generator<Int32Array> {
  const n = p.unit_names.length;
  const device = new Int32Array(n);
  function* rec(u: number): Generator<Int32Array> {
    if (u === n) {
      if (memoryFeasible(p, device)) yield device;
      return;
    }
    for (let d = 0; d < p.device_ids.length; d++) {
      if (!unitAllowed(p, u, d)) continue;
      device[u] = d;
      yield* rec(u + 1);
    }
  }
  yield* rec(0);
}

/** All topological orders, as priorities (position in the order). */
export function topologicalPriorities(p: PlacementProblem): Float64Array[] {
  const n = p.unit_names.length;
  const preds = unitPredecessors(p);
  const out: Float64Array[] = [];
  const placed = new Uint8Array(n);
  const seq: number[] = [];
  const rec = () => {
    if (seq.length === n) {
      const prio = new Float64Array(n);
      seq.forEach((u, i) => (prio[u] = i));
      out.push(prio);
      return;
    }
    for (let u = 0; u < n; u++) {
      if (placed[u] || !preds[u]!.every((q) => placed[q])) continue;
      placed[u] = 1;
      seq.push(u);
      rec();
      seq.pop();
      placed[u] = 0;
    }
  };
  rec();
  return out;
}

/**
 * The true optimum of a tiny problem. For a fixed assignment, the optimal schedule fixes an order
 * on each device; listing units by their optimal start times is a topological order, and the
 * evaluator given it starts every unit no later than that schedule does. So the minimum over all
 * assignments × all topological orders is the optimum (and every candidate is feasible).
 */
export function bruteForce_s(p: PlacementProblem): number {
  const priorities = topologicalPriorities(p);
  let best = Infinity;
  for (const device of assignments(p)) for (const prio of priorities) best = Math.min(best, evaluate(p, device, prio).makespan_s);
  return best;
}

export function randomFeasible(p: PlacementProblem, rand: () => number): { device: Int32Array; priority: Float64Array } | null {
  const n = p.unit_names.length;
  for (let attempt = 0; attempt < 50; attempt++) {
    const device = Int32Array.from({ length: n }, (_, u) => {
      const ok = p.device_ids.map((_, d) => d).filter((d) => unitAllowed(p, u, d));
      return ok[Math.floor(rand() * ok.length)]!;
    });
    if (memoryFeasible(p, device)) return { device, priority: Float64Array.from({ length: n }, () => rand()) };
  }
  return null;
}

export const EPS = 1e-9;
export const le = (a: number, b: number) => a <= b + EPS * Math.max(1, Math.abs(b));

export function assertPlacementValid(p: PlacementProblem, device: Int32Array): void {
  assert.ok(memoryFeasible(p, device), 'memory capacity respected');
  device.forEach((d, u) => assert.ok(Number.isFinite(unitTime(p, u, d)), `unit ${u} placed on device ${d} where its time is Infinity`));
}

export function independentUnits(times: number[][], weight: number[], activation: number[], capacity: number[]): PlacementProblem {
  const n = times.length;
  return {
    unit_names: times.map((_, u) => `u${u}`),
    device_ids: capacity.map((_, d) => `d${d}`),
    time_s: Float64Array.from(times.flat()),
    values: [],
    weight_bytes: Float64Array.from(weight),
    state_bytes: new Float64Array(n),
    activation_bytes: Float64Array.from(activation),
    capacity_bytes: Float64Array.from(capacity),
    transfer_s: () => 0,
    order: Int32Array.from({ length: n }, (_, u) => u),
  };
}

/** A fixed random Spec (no shrinking needed) for the time-limit test. */
export function deterministicSpec(units: number, devices: number, seed: number): Spec {
  const r = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  return {
    units,
    devices,
    time: Array.from({ length: units * devices }, () => (r() < 0.1 ? 0 : int(1, 20))),
    edge_bytes: Array.from({ length: (units * (units - 1)) / 2 }, () => (r() < 0.15 ? int(1, 30) : 0)),
    latency_s: Array.from({ length: devices * devices }, () => int(0, 2)),
    bandwidth: Array.from({ length: devices * devices }, () => [1, 2, 4][int(0, 2)]!),
    weight: Array.from({ length: units }, () => int(0, 9)),
    activation: Array.from({ length: units }, () => int(0, 3)),
    capacity_frac: Array.from({ length: devices }, () => 3),
  };
}

/** Topcuoglu, Hariri & Wu 2002, Fig. 2: computation costs on P1..P3 and edge communication costs. */
export function heftExample(): PlacementProblem {
  const cost = [
    [14, 16, 9],
    [13, 19, 18],
    [11, 13, 19],
    [13, 8, 17],
    [12, 13, 10],
    [13, 16, 9],
    [7, 15, 11],
    [5, 11, 14],
    [18, 12, 20],
    [21, 7, 16],
  ];
  const edges = [
    [1, 2, 18],
    [1, 3, 12],
    [1, 4, 9],
    [1, 5, 11],
    [1, 6, 14],
    [2, 8, 19],
    [2, 9, 16],
    [3, 7, 23],
    [4, 8, 27],
    [4, 9, 23],
    [5, 9, 13],
    [6, 8, 15],
    [7, 10, 17],
    [8, 10, 11],
    [9, 10, 13],
  ];
  const n = cost.length;
  return {
    unit_names: cost.map((_, i) => `n${i + 1}`),
    device_ids: ['P1', 'P2', 'P3'],
    time_s: Float64Array.from(cost.flat()),
    // One value per edge, bytes = the edge's communication cost, so transfer time = the cost.
    values: edges.map(([a, b, c]) => ({ name: `n${a}->n${b}`, producer: a! - 1, consumers: [b! - 1], bytes: c! })),
    weight_bytes: new Float64Array(n),
    state_bytes: new Float64Array(n),
    activation_bytes: new Float64Array(n),
    capacity_bytes: new Float64Array(3).fill(Infinity),
    transfer_s: (a, b, bytes) => (a === b ? 0 : bytes),
    order: Int32Array.from({ length: n }, (_, i) => i),
  };
}
