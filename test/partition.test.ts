import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { randomProblem } from '../src/bench/random-problems.js';
import { HxcError } from '../src/diag/diagnostics.js';
import { lowerBound, weightsExceedRack } from '../src/partition/bounds.js';
import { GraphIndex } from '../src/ir/algorithms.js';
import { newGraph, type Node, type TensorData } from '../src/ir/graph.js';
import { solveExact } from '../src/partition/exact.js';
import { BusyIntervals, heft } from '../src/partition/heft.js';
import { pipelinePartition } from '../src/partition/pipeline.js';
import {
  evaluate,
  Evaluator,
  groupedLaunchExtra,
  residentBytes,
  packedReads,
  unitPredecessorCsr,
  unitPredecessors,
  unitSuccessors,
  unitTime,
  valuesReadBy,
  type PlacementProblem,
} from '../src/partition/problem.js';
import { fitsMemory, MakespanAssessor, MemoryLedger, refine } from '../src/partition/refine.js';
import { busiestMoved, heaviestThree, scanMoves } from '../src/partition/explain.js';
import { relieve } from '../src/partition/pool.js';
import { plainPool } from './pool-helpers.js';
import path from 'node:path';
import { BOTH_ORDERS, Judge, scheduledTimes } from '../src/partition/judge.js';
import { bucketIndices, sortIndices } from '../src/util/sort.js';
import { mulberry32 } from '../src/util/stats.js';
import { loadTopology, RouteTable } from '../src/topology/index.js';
import { EXAMPLES } from './helpers.js';
import { independentUnits } from './exact-helpers.js';

function withMemory(p: PlacementProblem, seed: number): PlacementProblem {
  // Weights per unit and capacities that force a spread: no device may hold more than ~60% of it all.
  const n = p.unit_names.length;
  const weight_bytes = Float64Array.from({ length: n }, (_, u) => 100 + ((u * 7919 + seed) % 97) * 10);
  const total = weight_bytes.reduce((a, b) => a + b, 0);
  return { ...p, weight_bytes, capacity_bytes: new Float64Array(p.device_ids.length).fill(Math.ceil(total * 0.6)) };
}

test('heuristic plans respect capability and memory, and never beat the lower bound (random DAGs)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.integer({ min: 4, max: 24 }),
      fc.integer({ min: 2, max: 5 }),
      fc.constantFrom(0.1, 1, 3),
      async (seed, units, devices, ccr) => {
        const p = withMemory(randomProblem({ seed, units, devices, ccr }), seed);
        let h: ReturnType<typeof heft> | undefined;
        try {
          h = heft(p);
        } catch (err) {
          // No device fits some unit (HXC3001): nothing to check. Anything else is a failure.
          if (err instanceof HxcError && err.code === 'HXC3001') return;
          throw err;
        }
        const r = refine(p, h, 2000);
        const lb = await lowerBound(p);
        for (const pl of [h, r.placement]) {
          const used = new Float64Array(devices);
          for (let u = 0; u < units; u++) {
            assert.ok(Number.isFinite(unitTime(p, u, pl.device[u]!)), 'placed only where it can run');
            used[pl.device[u]!]! += residentBytes(p, u);
          }
          used.forEach((b, d) => assert.ok(b <= p.capacity_bytes[d]!, 'memory respected'));
          assert.ok(pl.makespan_s >= lb.lower_bound_s * (1 - 1e-9), `makespan ${pl.makespan_s} < lower bound ${lb.lower_bound_s}`);
          // Re-timing the placement in its own start order reproduces it or finds it earlier (never later).
          assert.ok(evaluate(p, pl.device, pl.start_s).makespan_s <= pl.makespan_s * (1 + 1e-9), 'the evaluator reproduces the schedule');
        }
        assert.ok(r.placement.makespan_s <= h.makespan_s * (1 + 1e-12), 'refinement never makes it worse');
      },
    ),
    { numRuns: 40, seed: 7 },
  );
});

/** A random problem whose units are, about half of them, in two MoE layers' grouped kernels, launched once per device and layer. */
function withGroupedLaunches(seed: number, units: number, devices: number, rand: () => number): PlacementProblem {
  const grouped_launch = {
    group: Int32Array.from({ length: units }, () => (rand() < 0.5 ? Math.floor(rand() * 2) : -1)),
    launch_s: Float64Array.from({ length: 2 * devices }, () => rand()),
    groups: 2,
  };
  return { ...randomProblem({ seed, units, devices, ccr: 1 }), grouped_launch };
}

test('the evaluator times any priority as a ready list in that priority order does, whether or not the order is topological, grouped launches paid by the first unit in priority order', () => {
  // The reference: again and again, place the first unit (by priority, ties by topological
  // position) whose producers are all placed, when its inputs have arrived and its device is free.
  const reference = (p: PlacementProblem, device: Int32Array, priority: Float64Array): number => {
    const n = p.unit_names.length;
    const topoPos = new Int32Array(n);
    p.order.forEach((u, k) => (topoPos[u] = k));
    const order = [...p.order].sort((a, b) => priority[a]! - priority[b]! || topoPos[a]! - topoPos[b]!);
    const finish = new Float64Array(n).fill(-1);
    const free = new Float64Array(p.device_ids.length);
    const reads = p.values.flatMap((v) => v.consumers.filter((c) => c !== v.producer).map((c) => ({ c, v })));
    // A group's launches on a device are paid by its first unit there in priority order.
    const gl = p.grouped_launch;
    const nd = p.device_ids.length;
    const launch = new Float64Array(n);
    const charged = new Set<number>();
    for (const u of order) {
      const g = gl ? gl.group[u]! : -1;
      if (g < 0 || charged.has(g * nd + device[u]!)) continue;
      charged.add(g * nd + device[u]!);
      launch[u] = gl!.launch_s[g * nd + device[u]!]!;
    }
    let makespan = 0;
    for (let placed = 0; placed < n; placed++) {
      const u = order.find((w) => finish[w]! < 0 && reads.every(({ c, v }) => c !== w || finish[v.producer]! >= 0))!;
      let ready = 0;
      for (const { c, v } of reads) {
        if (c !== u) continue;
        const src = device[v.producer]!;
        ready = Math.max(ready, finish[v.producer]! + (src === device[u] ? 0 : p.transfer_s(src, device[u]!, v.bytes)));
      }
      const start = Math.max(ready, free[device[u]!]!);
      finish[u] = start + unitTime(p, u, device[u]!) + launch[u]!;
      free[device[u]!] = finish[u]!;
      makespan = Math.max(makespan, finish[u]!);
    }
    return makespan;
  };
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 2, max: 30 }), fc.integer({ min: 1, max: 4 }), (seed, units, devices) => {
      const rand = mulberry32(seed);
      const p = withGroupedLaunches(seed, units, devices, rand);
      // Devices where each unit can run, and priorities at random: most orders are not topological.
      const device = Int32Array.from({ length: units }, (_, u) => {
        const can = [...Array(devices).keys()].filter((d) => Number.isFinite(unitTime(p, u, d)));
        return can[Math.floor(rand() * can.length)]!;
      });
      const priority = Float64Array.from({ length: units }, () => rand());
      const got = evaluate(p, device, priority).makespan_s;
      const want = reference(p, device, priority);
      assert.ok(Math.abs(got - want) <= 1e-12 * Math.max(1, want), `${got} against ${want}`);
    }),
    { numRuns: 200, seed: 3 },
  );
});

test("a run after a few units moved, started at the first one moved, gives the whole run's times exactly: grouped launches, priorities in or out of topological order (property)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 10_000 }),
      fc.integer({ min: 2, max: 40 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 3 }),
      fc.boolean(),
      (seed, units, devices, moves, topological) => {
        const rand = mulberry32(seed);
        const p = withGroupedLaunches(seed, units, devices, rand);
        const can = (u: number): number[] => [...Array(devices).keys()].filter((d) => Number.isFinite(unitTime(p, u, d)));
        const base = Int32Array.from({ length: units }, (_, u) => can(u)[Math.floor(rand() * can(u).length)]!);
        // A priority in the problem's topological order (the order is its sort), or at random (a ready list).
        const priority = Float64Array.from({ length: units }, (_, u) => (topological ? p.order.indexOf(u) : rand()));
        const ev = new Evaluator(p);
        const before = ev.run(base, priority);
        const device = Int32Array.from(base);
        const moved = Array.from({ length: moves }, () => Math.floor(rand() * units));
        for (const u of moved) device[u] = can(u)[Math.floor(rand() * can(u).length)]!;
        const whole = new Evaluator(p).run(device, priority);
        const after = ev.runMoved(device, priority, before, moved);
        assert.equal(after.makespan_s, whole.makespan_s);
        assert.deepEqual(Array.from(after.start_s), Array.from(whole.start_s));
        assert.deepEqual(Array.from(after.finish_s), Array.from(whole.finish_s));
        // Into arrays holding another move's times (explain's scratch): the same times.
        const start = new Float64Array(units).fill(-1);
        const finish = new Float64Array(units).fill(-1);
        const other = Int32Array.from(base);
        other[moved[0]!] = can(moved[0]!)[0]!;
        ev.timeMoved(other, priority, before, [moved[0]!], start, finish);
        assert.equal(ev.timeMoved(device, priority, before, moved, start, finish), whole.makespan_s);
        assert.deepEqual(Array.from(start), Array.from(whole.start_s));
        assert.deepEqual(Array.from(finish), Array.from(whole.finish_s));
      },
    ),
    { numRuns: 300, seed: 17 },
  );
});

test('a moved run that stops once it repeats the base run still times a late reader of the unit moved', () => {
  // a (gpu0) feeds x (gpu1) and z (gpu2), which start when its small value arrives whether or not m
  // moved, so every device is free again when it was in base after z; m's large value reaches r
  // (gpu0) later when m runs on gpu2, and r comes after them all.
  const inf = Infinity;
  const p: PlacementProblem = {
    unit_names: ['a', 'm', 'x', 'z', 'r'],
    device_ids: ['gpu0', 'gpu1', 'gpu2'],
    // Per unit, its seconds on gpu0, gpu1, gpu2.
    time_s: Float64Array.from([10, inf, inf, inf, 1, 5, inf, 1, inf, inf, inf, 1, 1, inf, inf]),
    values: [
      { name: 'a', producer: 0, consumers: [2, 3], bytes: 1 },
      { name: 'm', producer: 1, consumers: [4], bytes: 1000 },
    ],
    weight_bytes: new Float64Array(5),
    state_bytes: new Float64Array(5),
    activation_bytes: new Float64Array(5),
    capacity_bytes: new Float64Array(3).fill(1e9),
    transfer_s: (a, b, bytes) => (a === b ? 0 : bytes / 50),
    order: Int32Array.from([0, 1, 2, 3, 4]),
  };
  const ev = new Evaluator(p);
  const priority = Float64Array.from([0, 1, 2, 3, 4]);
  const before = ev.run(Int32Array.from([0, 1, 1, 2, 0]), priority);
  const device = Int32Array.from([0, 2, 1, 2, 0]);
  const whole = new Evaluator(p).run(device, priority);
  assert.equal(whole.start_s[4], 25); // m's value arrives at 5 + 20
  assert.notEqual(before.start_s[4], 25);
  const after = ev.runMoved(device, priority, before, [1]);
  assert.equal(after.makespan_s, whole.makespan_s);
  assert.deepEqual(Array.from(after.finish_s), Array.from(whole.finish_s));
});

test('on small random DAGs the heuristic is within 5% of the exact MILP optimum on average', async () => {
  const ratios: number[] = [];
  for (const seed of [11, 12, 13, 14, 15, 16]) {
    const p = randomProblem({ seed, units: 9, devices: 3, ccr: [0.2, 1, 2][seed % 3]! });
    const r = refine(p, heft(p));
    const e = await solveExact(p, { time_limit_s: 10, incumbent: r.placement.device, incumbent_priority: r.placement.start_s });
    assert.equal(e.status, 'optimal');
    assert.ok(e.objective_s! <= r.placement.makespan_s * (1 + 1e-9));
    ratios.push(r.placement.makespan_s / e.objective_s!);
  }
  const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length;
  assert.ok(mean <= 1.05, `mean heuristic/optimum ${mean} (${ratios.map((x) => x.toFixed(3)).join(', ')})`);
});

test('the pipeline DP minimises the bottleneck: it never exceeds everything on the best single device', () => {
  for (const seed of [21, 22, 23, 24]) {
    const p = randomProblem({ seed, units: 16, devices: 4, ccr: 0.3 });
    const r = pipelinePartition(p);
    let single = Infinity;
    for (let d = 0; d < 4; d++) {
      let t = 0;
      for (let u = 0; u < 16; u++) t += unitTime(p, u, d);
      single = Math.min(single, t);
    }
    assert.ok(r.bottleneck_s <= single * (1 + 1e-12), `bottleneck ${r.bottleneck_s} vs single ${single}`);
    // Segments are contiguous in the unit order and cover it.
    let next = 0;
    for (const s of r.segments) {
      assert.equal(s.units[0], next);
      next = s.units[1] + 1;
      assert.ok(Math.max(s.compute_s, s.transfer_in_s) <= r.bottleneck_s * (1 + 1e-12));
    }
    assert.equal(next, 16);
  }
});

test('relieve brings over-full devices within capacity, moving no kept unit and nothing off a device with room (property, random DAGs)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10_000 }), (seed) => {
      const base = randomProblem({ seed, units: 24, devices: 3, ccr: 0.5 });
      // Every unit holds weights; device 2 is the roomy host, 0 and 1 are small and start over-full.
      const weight_bytes = Float64Array.from({ length: 24 }, (_, u) => 1 + (u % 5));
      const p: PlacementProblem = {
        ...base,
        weight_bytes,
        time_s: base.time_s.map((t, k) => (k % 3 === 2 && !Number.isFinite(t) ? 1 : t)),
        capacity_bytes: Float64Array.from([20, 20, 1e9]),
      };
      const device = Int32Array.from({ length: 24 }, (_, u) => (Number.isFinite(unitTime(p, u, u % 2)) ? u % 2 : 2));
      const keep = new Set([0, 1, 2, 3]);
      const before = Int32Array.from(device);
      relieve(p, device, keep);
      for (const u of keep) assert.equal(device[u], before[u], 'a kept unit stays');
      const used = [0, 0, 0];
      for (let u = 0; u < 24; u++) {
        used[device[u]!]! += residentBytes(p, u);
        assert.ok(Number.isFinite(unitTime(p, u, device[u]!)), 'every unit runs where it is');
      }
      // Every unit runs on the roomy device, and the kept ones hold at most 10 bytes: both small devices end within capacity.
      for (const d of [0, 1]) assert.ok(used[d]! <= 20, `device ${d} holds ${used[d]} of 20`);
      // Nothing moved off a device that was not over.
      for (let u = 0; u < 24; u++) if (device[u] !== before[u]) assert.ok(before[u] !== 2, 'the roomy device keeps its units');
    }),
    { numRuns: 50 },
  );
});

test('relieve frees memory with the least work sent to the host per byte: a cold expert goes, not the hot layer nor a routing mask that runs faster there', () => {
  // Device 0: a GPU holding 10 MB; device 1: the host. Times per unit [gpu, host]:
  // 0 a routing mask, 8 bytes, faster on the host (launch-bound on the GPU);
  // 1 a cold expert, 6 MB, read in a few percent of steps;
  // 2 a hot layer, 6 MB, read every step;
  // 3 another cold expert, 6 MB, hotter than unit 1.
  const MB = 1e6;
  const p = independentUnits(
    [
      [20e-6, 4e-6],
      [1e-6, 10e-6],
      [10e-6, 1000e-6],
      [2e-6, 30e-6],
    ],
    [8, 6 * MB, 6 * MB, 6 * MB],
    [0, 0, 0, 0],
    [10 * MB, 1e12],
  );
  const device = new Int32Array(4); // all on the GPU: 18 MB of 10
  relieve(p, device, new Set());
  assert.deepEqual(Array.from(device), [0, 1, 0, 1], 'both cold experts go to the host; the mask and the hot layer stay');
  // With room for two units, only the colder expert goes.
  const roomier = { ...p, capacity_bytes: Float64Array.from([12 * MB + 8, 1e12]) };
  const d2 = new Int32Array(4);
  relieve(roomier, d2, new Set());
  assert.deepEqual(Array.from(d2), [0, 1, 0, 0]);
});

test('the memory ledger answers as fitsMemory for every move of one unit or a block, from placements that fit and that overflow (property, random DAGs)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 3 }), (seed, tight) => {
      const base = randomProblem({ seed, units: 20, devices: 4, ccr: 0.5 });
      // Weights, state and activations of mixed sizes, capacities from roomy to over-full, some exactly full.
      const n = 20;
      const weight_bytes = Float64Array.from({ length: n }, (_, u) => ((u * 31 + seed) % 7) * 10);
      const state_bytes = Float64Array.from({ length: n }, (_, u) => (u % 3 === 0 ? 5 : 0));
      const activation_bytes = Float64Array.from({ length: n }, (_, u) => ((u * 17 + seed) % 5) * 8);
      const p: PlacementProblem = { ...base, weight_bytes, state_bytes, activation_bytes, capacity_bytes: new Float64Array(4) };
      const device = Int32Array.from({ length: n }, (_, u) => (u * 13 + seed) % 4);
      const { used, floor } = (() => {
        const used = [0, 0, 0, 0];
        const floor = [0, 0, 0, 0];
        for (let u = 0; u < n; u++) {
          used[device[u]!]! += residentBytes(p, u);
          floor[device[u]!] = Math.max(floor[device[u]!]!, activation_bytes[u]!);
        }
        return { used, floor };
      })();
      // tight 0: exactly full; 1: 10 bytes of room; 2: one device 10 bytes over; 3: two devices over.
      for (let d = 0; d < 4; d++) p.capacity_bytes[d] = used[d]! + floor[d]! + (tight === 0 ? 0 : tight === 1 ? 10 : d < tight - 1 ? -10 : 40);
      const ledger = new MemoryLedger(p, device);
      for (let u = 0; u < n; u++)
        for (let d = 0; d < 4; d++) {
          const from = device[u]!;
          if (d === from) continue;
          device[u] = d;
          assert.equal(ledger.fitsMove(device, [u], [from]), fitsMemory(p, device), `unit ${u} from ${from} to ${d}`);
          device[u] = from;
        }
      // Block moves: a run of units to one device (some already there), as the search moves a layer.
      for (let lo = 0; lo < n; lo += 3)
        for (let d = 0; d < 4; d++) {
          const units = [lo, lo + 1, lo + 2, lo + 5].filter((u) => u < n);
          const from = units.map((u) => device[u]!);
          for (const u of units) device[u] = d;
          assert.equal(ledger.fitsMove(device, units, from), fitsMemory(p, device), `units ${units} to ${d}`);
          units.forEach((u, k) => (device[u] = from[k]!));
        }
    }),
    { numRuns: 100 },
  );
});

test("HEFT's gap search skips the intervals that end before a unit is ready and finds the gap a scan from the start finds, zero-length units included (property)", () => {
  const scan = (intervals: BusyIntervals, ready: number, t: number): number => {
    let candidate = ready;
    for (let k = 0; k < intervals.length; k++) {
      if (intervals.f[k]! <= candidate) continue;
      if (intervals.s[k]! >= candidate + t) return candidate;
      candidate = Math.max(candidate, intervals.f[k]!);
    }
    return candidate;
  };
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 6 })), { minLength: 1, maxLength: 60 }), (units) => {
      // One device's busy intervals, placed as HEFT places them (ready times in any order, some units of no time).
      const busy = new BusyIntervals();
      for (const [ready, t] of units) {
        const s = busy.earliestGap(ready, t);
        assert.equal(s, scan(busy, ready, t), `ready ${ready}, length ${t}`);
        busy.insert(s, s + t);
      }
      assert.equal(busy.length, units.length);
      let upTo = -Infinity;
      for (let k = 0; k < busy.length; k++) {
        upTo = Math.max(upTo, busy.f[k]!);
        assert.equal(busy.upTo[k], upTo, 'the running latest finish');
        if (k === 0) continue;
        assert.ok(busy.s[k - 1]! <= busy.s[k]!, 'sorted by start');
        assert.ok(busy.f[k - 1]! <= busy.s[k]! || busy.s[k - 1]! === busy.f[k - 1]! || busy.s[k]! === busy.f[k]!, 'no two units at once');
      }
      for (let q = 0; q <= 50; q += 5) for (const t of [0, 1, 3]) assert.equal(busy.earliestGap(q, t), scan(busy, q, t));
    }),
    { numRuns: 300 },
  );
});

/**
 * A chain of n units on rack-8gpu, 1-3 ms each, unit u handing value u to the units `readers(u)`,
 * with a judge over the rack's routes.
 */
function chainOnRack(
  n: number,
  readers: (u: number) => number[],
  bytes: number,
  rack = 'rack-8gpu.yaml',
): { p: PlacementProblem; judge: Judge; nd: number; routes: RouteTable } {
  const topo = loadTopology(path.join(EXAMPLES, rack));
  const routes = new RouteTable(topo);
  const ids = topo.devices.map((d) => d.id);
  const nd = ids.length;
  const p: PlacementProblem = {
    unit_names: Array.from({ length: n }, (_, u) => `u${u}`),
    device_ids: ids,
    time_s: Float64Array.from({ length: n * nd }, (_, k) => 1e-3 * (1 + (k % 3))),
    values: Array.from({ length: n - 1 }, (_, u) => ({ name: `v${u}`, producer: u, consumers: readers(u), bytes })),
    weight_bytes: new Float64Array(n),
    state_bytes: new Float64Array(n),
    activation_bytes: new Float64Array(n),
    capacity_bytes: Float64Array.from(topo.devices, (d) => d.memory_capacity_bytes),
    transfer_s: (a, b, bytes) => (a === b ? 0 : routes.timeIdx(a, b, bytes)),
    order: Int32Array.from({ length: n }, (_, u) => u),
  };
  const links = topo.links.map((l) => ({ name: l.name, bandwidth_bytes_per_s: l.bandwidth_bytes_per_s, latency_s: l.latency_s, shared: l.shared }));
  return { p, judge: new Judge(p, routes, links), nd, routes };
}

test("a move's busiest device, from the three heaviest, is the busiest of every device's load as moved (property)", () => {
  const loads = fc.array(fc.oneof(fc.constant(0), fc.constant(1e-3), fc.double({ min: 0, max: 1, noNaN: true })), { minLength: 2, maxLength: 12 });
  fc.assert(
    fc.property(
      loads,
      fc.nat(),
      fc.nat(),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (list, a, b, tdShare, te) => {
        const load = Float64Array.from(list);
        const d = a % load.length;
        const e = (d + 1 + (b % (load.length - 1))) % load.length;
        const td = load[d]! * tdShare;
        // The definition: every device's load, d's less td and e's plus te.
        let busiest = 0;
        for (let k = 0; k < load.length; k++) busiest = Math.max(busiest, load[k]! + (k === e ? te : 0) - (k === d ? td : 0));
        assert.ok(Object.is(busiestMoved(load, heaviestThree(load), d, e, td, te), busiest));
      },
    ),
    { numRuns: 2000 },
  );
});

test("a scan of every single move keeps what explain and the polish read, as a scan keeping every move finds it: each unit's best three, its better moves, the move to its fastest device", () => {
  const n = 40;
  for (const objective of ['latency', 'throughput'] as const)
    for (const seed of [1, 2, 3, 4]) {
      const rnd = mulberry32(seed);
      // A chain with skips, 8 MiB a value, on rack-hetero (its devices' names sort unlike their
      // order: cpu0, cpu1, gpu0 … gaudi0, gaudi1, dfe0, ipu0, ipu1); each device but cpu0 refuses
      // a unit in three, weights up to 1 GiB against devices with little room left: every kind of
      // move, and units with fewer than three a plan can take (ties of Infinity, told by name).
      const base = chainOnRack(n, (u) => (u + 3 < n ? [u + 1, u + 3] : [u + 1]), 8 * 2 ** 20, 'rack-hetero.yaml');
      const nd = base.nd;
      const time_s = Float64Array.from({ length: n * nd }, (_, k) => (k % nd !== 0 && rnd() < 0.35 ? Infinity : 1e-3 * (0.5 + rnd())));
      const device = Int32Array.from({ length: n }, (_, u) => {
        const runs = Array.from({ length: nd }, (_, e) => e).filter((e) => Number.isFinite(time_s[u * nd + e]!));
        return runs[Math.floor(rnd() * runs.length)]!;
      });
      const weight_bytes = Float64Array.from({ length: n }, () => rnd() * 2 ** 30);
      const used = new Float64Array(nd);
      for (let u = 0; u < n; u++) used[device[u]!]! += weight_bytes[u]!;
      const p: PlacementProblem = { ...base.p, time_s, weight_bytes, capacity_bytes: Float64Array.from(used, (b) => b + rnd() * 2 ** 30) };
      assert.ok(fitsMemory(p, device));
      const scan = (count: number) => {
        const judge = new Judge(p, base.routes, []);
        const placement = evaluate(p, device);
        const verdict = { latency_s: judge.latency(placement).latency_s, throughput_per_s: judge.throughput(placement).throughput_per_s };
        return scanMoves(p, placement, verdict, judge, objective, new MakespanAssessor(p), null, count);
      };
      const kept = scan(3);
      const every = scan(Infinity);
      const where = `${objective}, seed ${seed}`;
      let moves = 0;
      const found = new Set<string>();
      for (let u = 0; u < n; u++) {
        const all = every.shown[u]!;
        assert.equal(all.length, nd - 1, `${where}: unit ${u} has a move to every other device`);
        moves += all.length;
        for (const a of all) found.add(a.found);
        assert.deepEqual(kept.shown[u], all.slice(0, 3), `${where}: unit ${u}'s best three`);
        assert.deepEqual(
          kept.better[u],
          all.filter((a) => a.found === 'better').sort((a, b) => a.to - b.to),
          `${where}: unit ${u}'s better moves`,
        );
        let fastest = -1;
        for (let e = 0; e < nd; e++) if (Number.isFinite(unitTime(p, u, e)) && (fastest < 0 || unitTime(p, u, e) < unitTime(p, u, fastest))) fastest = e;
        assert.deepEqual(kept.fastest[u], all.find((a) => a.to === fastest) ?? null, `${where}: unit ${u}'s move to its fastest device`);
        // In order best first: by value, then device.
        for (let k = 1; k < all.length; k++)
          assert.ok(
            all[k - 1]!.value < all[k]!.value || (!(all[k - 1]!.value > all[k]!.value) && all[k - 1]!.device < all[k]!.device),
            `${where}: unit ${u}'s order`,
          );
      }
      assert.equal(moves, n * (nd - 1));
      // (The cases the scan tells apart all happen here.)
      for (const f of ['cannot', 'memory', 'worse']) assert.ok(found.has(f), `${where}: no move found ${f}`);
      assert.ok(
        every.shown.some((all) => all[2]!.value === Infinity && all[1]!.value === Infinity),
        `${where}: no unit whose best three hold two moves it cannot take`,
      );
    }
});

test('the judge simulates a placement once for every figure asked of it, tells placements apart, and simulates again after forget', () => {
  // A chain of 12 units, each handing 64 MiB to the next.
  const n = 12;
  const { p, judge } = chainOnRack(n, (u) => [u + 1], 64 * 2 ** 20);
  const placement = (device: number[]) => evaluate(p, Int32Array.from(device));
  const a = placement(Array.from({ length: n }, (_, u) => 1 + (u % 4)));
  const b = placement(Array.from({ length: n }, (_, u) => 1 + (u % 2)));
  const first = judge.verdict(a, BOTH_ORDERS);
  const sims = judge.simulations;
  assert.equal(sims, 3, 'one request, then many with and without pipeline rounds');
  assert.deepEqual(judge.verdict({ device: Int32Array.from(a.device), start_s: Float64Array.from(a.start_s) }, BOTH_ORDERS), first, 'the same figures');
  assert.equal(judge.latency(a).latency_s, first.latency_s);
  assert.equal(judge.simulations, sims, 'nothing simulated again for the same devices and order');
  // Another placement is simulated, and its figures are its own: what a judge that never saw `a` says.
  const other = judge.verdict(b, BOTH_ORDERS);
  assert.equal(judge.simulations, sims + 3);
  assert.deepEqual(other, chainOnRack(n, (u) => [u + 1], 64 * 2 ** 20).judge.verdict(b, BOTH_ORDERS));
  assert.notEqual(other.latency_s, first.latency_s, 'the two placements differ in latency');
  // Back to `a`: simulated again (one placement is kept), same figures; after forget, again.
  assert.deepEqual(judge.verdict(a, BOTH_ORDERS), first);
  assert.equal(judge.simulations, sims + 6);
  judge.forget();
  assert.equal(judge.latency(a).latency_s, first.latency_s);
  assert.equal(judge.simulations, sims + 7);
});

test("the judge counts a placement's schedule steps without building it: one per unit, a send and a receive per value and device it goes to (property)", () => {
  // Each value read by the next three units: several readers, often on one device.
  const n = 10;
  const { p, judge, nd } = chainOnRack(n, (u) => Array.from({ length: Math.min(3, n - 1 - u) }, (_, j) => u + 1 + j), 2 ** 20);
  fc.assert(
    fc.property(fc.array(fc.nat(nd - 1), { minLength: n, maxLength: n }), (devices) => {
      const placement = evaluate(p, Int32Array.from(devices));
      const built = judge.schedule(placement, false).steps.reduce((a, list) => a + list.length, 0);
      assert.equal(judge.stepCount(placement.device), built);
    }),
    { numRuns: 200, seed: 5 },
  );
});

test("a judge's schedules and memory, made one after another on problems of every size (its working arrays kept from call to call), are what the definition gives (property)", () => {
  // Each case: a chain on rack-8gpu, each value read by the next few units, activations of random
  // size, the units on random devices; judged by one judge per problem, and by the definition:
  // per device, allocations and releases in time order, releases first at one instant.
  const definition = (p: PlacementProblem, judge: Judge, device: Int32Array, start_s: Float64Array): number[] => {
    const run = judge.latency({ device, start_s });
    const { start_s: start, end_s: end, arrive_s: arrive } = scheduledTimes(run.schedule, run.one, p.unit_names.length);
    const { value: tValue, to: tTo } = run.schedule.packedTransfers;
    const events: [number, number, number][] = []; // device, time, bytes
    p.unit_names.forEach((_, u) => events.push([device[u]!, start[u]!, p.activation_bytes[u]!], [device[u]!, end[u]!, -p.activation_bytes[u]!]));
    p.values.forEach((v, vi) => {
      const src = device[v.producer]!;
      const moves = Array.from(tValue.keys()).filter((t) => tValue[t] === vi);
      const heldTo = Math.max(end[v.producer]!, ...v.consumers.filter((c) => device[c] === src).map((c) => end[c]!), ...moves.map((t) => arrive[t]!));
      events.push([src, end[v.producer]!, v.bytes], [src, heldTo, -v.bytes]);
      for (const t of moves) {
        const lastReader = Math.max(-1, ...v.consumers.filter((c) => device[c] === tTo[t]).map((c) => end[c]!));
        events.push([tTo[t]!, arrive[t]!, v.bytes], [tTo[t]!, Math.max(arrive[t]!, lastReader), -v.bytes]);
      }
    });
    return p.device_ids.map((_, d) => {
      let live = 0;
      let peak = 0;
      for (const [, , bytes] of events.filter((e) => e[0] === d).sort((a, b) => a[1] - b[1] || a[2] - b[2])) {
        live += bytes;
        peak = Math.max(peak, live);
      }
      return peak;
    });
  };
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 40 }), fc.integer({ min: 1, max: 4 }), fc.nat(), (n, fan, seed) => {
      const { p, judge, nd } = chainOnRack(n, (u) => Array.from({ length: Math.min(fan, n - 1 - u) }, (_, j) => u + 1 + j), 2 ** 20);
      const r = mulberry32(seed);
      p.activation_bytes = Float64Array.from({ length: n }, () => Math.floor(r() * 4) * 2 ** 19);
      for (let k = 0; k < 3; k++) {
        const placement = evaluate(
          p,
          Int32Array.from({ length: n }, () => Math.floor(r() * nd)),
        );
        const peaks = judge.memory(placement).memory.map((m) => m.peak_activation_bytes);
        assert.deepEqual(peaks, definition(p, judge, placement.device, placement.start_s));
      }
    }),
    { numRuns: 60, seed: 17 },
  );
});

test("each unit's predecessors, as lists and as CSR, and its successors are the producers of the values it reads and the readers of its values, ascending, each once; its reads flat are valuesReadBy's (property)", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 5 }), fc.nat(), (n, fan, seed) => {
      const r = mulberry32(seed);
      // Values from random producers to random later units (some to themselves, several from one
      // producer to one reader, one reader of many: lists past the insertion sort's length).
      const values = Array.from({ length: 3 * n }, (_, k) => {
        const producer = Math.floor(r() * n);
        const readers = new Set<number>();
        for (let j = 0; j < fan; j++) readers.add(Math.min(n - 1, producer + Math.floor(r() * 4)));
        if (k % 7 === 0) readers.add(n - 1);
        return { name: `v${k}`, producer, consumers: [...readers].sort((a, b) => a - b), bytes: 1 + (k % 5) };
      });
      const p = { ...randomProblem({ seed: 1, units: n, devices: 2, ccr: 1 }), values };
      const want = Array.from({ length: n }, (_, u) =>
        [...new Set(values.filter((v) => v.producer !== u && v.consumers.includes(u)).map((v) => v.producer))].sort((a, b) => a - b),
      );
      assert.deepEqual(unitPredecessors(p), want);
      const { predStart, predList } = unitPredecessorCsr(p);
      assert.deepEqual(
        want.map((_, u) => Array.from(predList.subarray(predStart[u], predStart[u + 1]))),
        want,
      );
      const { succStart, succList } = unitSuccessors(p);
      assert.deepEqual(
        want.map((_, u) => Array.from(succList.subarray(succStart[u], succStart[u + 1]))),
        want.map((_, u) => want.flatMap((ps, c) => (ps.includes(u) ? [c] : []))),
      );
      // The reads flat: per unit its values' producers and sizes, in valuesReadBy's order; sizes numbered as first met.
      const reads = valuesReadBy(p);
      const { readStart, readProducer, readTable, tableBytes } = packedReads(p);
      const flat = reads.flat();
      assert.deepEqual(
        want.map((_, u) => Array.from(readProducer.subarray(readStart[u], readStart[u + 1]))),
        reads.map((list) => list.map((v) => v.producer)),
      );
      assert.deepEqual(
        Array.from(readTable, (t) => tableBytes[t]),
        flat.map((v) => v.bytes),
      );
      assert.deepEqual(tableBytes, [...new Set(flat.map((v) => v.bytes))]);
    }),
    { numRuns: 100, seed: 23 },
  );
});

test('memory events sort as a comparator sort orders them: by time, then releases before allocations, ties kept in place (property)', () => {
  fc.assert(
    fc.property(
      // Few distinct times and deltas, so ties are common; lengths across the insertion runs and merges.
      fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: -3, max: 3 })), { minLength: 0, maxLength: 300, size: 'max' }),
      (events) => {
        const evT = Float64Array.from(events, ([t]) => t * 0.25);
        const evDelta = Float64Array.from(events, ([, d]) => d * 1024);
        const order = Int32Array.from(events, (_, k) => k);
        const want = Array.from(order).sort((a, b) => evT[a]! - evT[b]! || evDelta[a]! - evDelta[b]!);
        assert.deepEqual(Array.from(sortIndices(order, evT, evDelta)), want);
        // One key: ties in the order given.
        assert.deepEqual(
          Array.from(
            sortIndices(
              Int32Array.from(events, (_, k) => k),
              evT,
            ),
          ),
          Array.from(order.keys()).sort((a, b) => evT[a]! - evT[b]! || a - b),
        );
        // With a merge array lent, longer than the list and holding another sort's leftovers: the same order.
        const lent = new Int32Array(events.length + 7).fill(-1);
        assert.deepEqual(Array.from(sortIndices(Int32Array.from(order), evT, evDelta, lent)), want);
        // Given in order but for a few out of place (runs a merge copies beside runs it merges).
        const nearly = Array.from(want);
        for (let k = 0; k + 37 < nearly.length; k += 53) [nearly[k], nearly[k + 37]] = [nearly[k + 37]!, nearly[k]!];
        assert.deepEqual(
          Array.from(sortIndices(Int32Array.from(nearly), evT, evDelta)),
          [...nearly].sort((a, b) => evT[a]! - evT[b]! || evDelta[a]! - evDelta[b]!),
        );
      },
    ),
    { numRuns: 300, seed: 11 },
  );
});

test("a routed layer's grouped launches are paid once per device that runs its experts: by the judge, the contention-free evaluation and HEFT alike", () => {
  // Two GPUs of the rack; four expert units of one layer, independent, 10 µs each on either; the
  // layer's grouped kernels take 4 µs to launch on a device.
  const ids = loadTopology(path.join(EXAMPLES, 'rack-8gpu.yaml'))
    .devices.filter((d) => d.kind === 'gpu')
    .slice(0, 2)
    .map((d) => d.id);
  const n = 4;
  const base = independentUnits(
    Array.from({ length: n }, () => [10e-6, 10e-6]),
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [1e12, 1e12],
  );
  const p: PlacementProblem = { ...base, device_ids: ids, grouped_launch: { group: new Int32Array(n), launch_s: Float64Array.from([4e-6, 4e-6]), groups: 1 } };
  const ns = (x: Float64Array | null): number[] => Array.from(x!, (v) => Math.round(v * 1e9));
  // Split 2 + 2: each device launches the layer's kernels once, charged to its first unit.
  const split = Int32Array.from([0, 0, 1, 1]);
  assert.deepEqual(ns(groupedLaunchExtra(p, split, [0, 1, 2, 3])), [4000, 0, 4000, 0]);
  assert.deepEqual(ns(groupedLaunchExtra(p, new Int32Array(n), [0, 1, 2, 3])), [4000, 0, 0, 0]);
  assert.deepEqual(ns(groupedLaunchExtra(p, Int32Array.from([0, 1, 0, 0]), [3, 2, 1, 0])), [0, 4000, 0, 4000]);
  // The contention-free evaluation: 2 × 10 µs + 4 µs on each device; all on one, 4 × 10 + 4.
  assert.ok(Math.abs(evaluate(p, split).makespan_s - 24e-6) < 1e-12, `${evaluate(p, split).makespan_s}`);
  assert.ok(Math.abs(evaluate(p, new Int32Array(n)).makespan_s - 44e-6) < 1e-12);
  // HEFT prices its choices alike: its own makespan is what the evaluation of its placement says.
  const h = heft(p);
  assert.ok(Math.abs(h.makespan_s - evaluate(p, h.device, h.start_s).makespan_s) < 1e-12, `${h.makespan_s} vs ${evaluate(p, h.device, h.start_s).makespan_s}`);
  // The judge's schedule carries the launches in its steps.
  const judge = new Judge(p, new RouteTable(loadTopology(path.join(EXAMPLES, 'rack-8gpu.yaml'))), []); // (no values: no route is asked)
  assert.deepEqual(
    judge
      .schedule(evaluate(p, split), false)
      .steps.flat()
      .map((s) => Math.round(s.duration_s! * 1e9)),
    [14000, 10000, 14000, 10000],
  );
  assert.ok(Math.abs(judge.latency(evaluate(p, split)).latency_s - 24e-6) < 1e-12);
});

test("a pool judging candidates by latency alone gives each the latency, memory and fit a full verdict gives, its throughput unsimulated until asked (then the full verdict's, kept in its row)", () => {
  // A chain of six units passing 64 MiB along: across GPUs the shared switch carries it, so
  // requests overlap and contend.
  const n = 6;
  const lean = chainOnRack(n, (u) => [u + 1], 64 * 2 ** 20);
  const full = chainOnRack(n, (u) => [u + 1], 64 * 2 ** 20);
  const gpus = lean.p.device_ids.flatMap((id, d) => (id.startsWith('gpu') ? [d] : []));
  const device = Int32Array.from({ length: n }, (_, u) => gpus[u % 3]!);
  const leanPool = plainPool(lean.p, lean.judge, { tpSplits: [], contention: true, everyThroughput: false });
  const fullPool = plainPool(full.p, full.judge, { tpSplits: [], contention: true, everyThroughput: true });
  const a = leanPool.consider('spread', 'over three GPUs', device)!;
  const b = fullPool.consider('spread', 'over three GPUs', device)!;
  assert.equal(a.throughput_per_s, null, 'not simulated');
  assert.ok(b.throughput_per_s! > 0);
  assert.equal(a.latency_s, b.latency_s);
  assert.equal(a.fits, b.fits);
  assert.equal(a.value, b.value, 'the search compares what it compared');
  assert.ok(lean.judge.simulations < full.judge.simulations, 'a run of R requests fewer');
  assert.equal(leanPool.throughputOf(a), b.throughput_per_s);
  assert.equal(a.throughput_per_s, b.throughput_per_s, 'kept in its row');
});

test('the weights nodes read bound what a rack must hold: each counted once, unread ones not at all; more than the devices hold together is HXC3001', () => {
  const topo = loadTopology(path.join(EXAMPLES, 'rack-tiny.yaml'));
  const capacity = topo.devices.reduce((a, d) => a + d.memory_capacity_bytes, 0);
  const g = newGraph('g');
  const tensor = (name: string, byte_size: number): TensorData => ({ name, dtype: 'float32', dims: [byte_size / 4], byte_size, location: { kind: 'absent' } });
  const node = (name: string, inputs: string[]): Node => ({ name, op: 'MatMul', domain: '', inputs, outputs: [`${name}_out`], attrs: {}, outer_refs: [] });
  // Two nodes read `shared` (0.6 of the rack), one reads `own` (0.3); `dead` (the whole rack) is read by none.
  g.initializers.set('shared', tensor('shared', Math.round(capacity * 0.15) * 4));
  g.initializers.set('own', tensor('own', Math.round(capacity * 0.075) * 4));
  g.initializers.set('dead', tensor('dead', capacity * 4));
  g.nodes.push(node('a', ['x', 'shared']), node('b', ['a_out', 'shared']), node('c', ['b_out', 'own']));
  assert.equal(weightsExceedRack(new GraphIndex(g), topo), null, '0.9 of the rack: a placement may exist');
  g.nodes.push(node('d', ['c_out', 'own', '']));
  assert.equal(weightsExceedRack(new GraphIndex(g), topo), null, 'a weight read twice is resident once at least');
  g.initializers.set('more', tensor('more', Math.round(capacity * 0.05) * 4));
  g.nodes.push(node('e', ['d_out', 'more']));
  const err = weightsExceedRack(new GraphIndex(g), topo);
  assert.ok(err instanceof HxcError && err.code === 'HXC3001', '1.1 of the rack cannot fit');
  assert.match(
    err.message,
    new RegExp(`take ${[...['shared', 'own', 'more']].reduce((a, v) => a + g.initializers.get(v)!.byte_size, 0)} bytes .* hold ${capacity} `),
  );
});

test('bucketIndices groups indices by key, ascending in each bucket, leaving negative keys out (property)', () => {
  fc.assert(
    fc.property(
      fc
        .integer({ min: 1, max: 12 })
        .chain((buckets) => fc.tuple(fc.constant(buckets), fc.array(fc.integer({ min: -2, max: buckets - 1 }), { maxLength: 300 }))),
      ([buckets, keys]) => {
        const { start, items } = bucketIndices(Int32Array.from(keys), buckets);
        assert.equal(start.length, buckets + 1);
        for (let b = 0; b < buckets; b++) {
          const want = keys.flatMap((k, i) => (k === b ? [i] : []));
          assert.deepEqual(Array.from(items.subarray(start[b]!, start[b + 1]!)), want);
        }
        assert.equal(items.length, keys.filter((k) => k >= 0).length);
      },
    ),
    { numRuns: 300 },
  );
});
