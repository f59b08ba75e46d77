import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EventQueue, executionOrder, simulate, type SimInput, type SimLink, type TraceEvent } from '../src/sim/simulate.js';

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

test("the simulation runs each device's steps in its execution order, for rounds in order and out of order (property)", () => {
  // Compute steps only, each of positive duration and labelled by its index: a device's compute
  // events in the trace are its steps as run, and each carries its request.
  const device = fc.record({ rounds: fc.array(fc.nat(4), { maxLength: 12 }), sort: fc.boolean() });
  fc.assert(
    fc.property(fc.array(device, { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 6 }), (devices, R) => {
      for (const d of devices) if (d.sort) d.rounds.sort((a, b) => a - b);
      const input: SimInput = {
        devices: devices.map((d, i) => ({
          id: `d${i}`,
          steps: d.rounds.map((round, k) => ({ op: 'compute' as const, duration_s: 1 + k, round, label: String(k) })),
        })),
        transfers: [],
        links: [],
        requests: R,
      };
      const events: TraceEvent[] = [];
      simulate(input, { trace: (e) => void events.push(e) });
      devices.forEach((d, i) => {
        const want = executionOrder(Float64Array.from(d.rounds), R);
        const ran = events.filter((e) => e.cat === 'compute' && e.pid === i);
        assert.deepEqual(
          ran.map((e) => [Number(e.name), e.args!['request']]),
          Array.from(want.step, (k, j) => [k, want.request[j]]),
        );
      });
    }),
    { numRuns: 200, seed: 29 },
  );
});

test('a simulation gives the same result whatever ran before it (working arrays kept between runs) (property)', () => {
  const links: SimLink[] = [
    { name: 'bus', bandwidth_bytes_per_s: 1e9, latency_s: 1e-6, shared: true },
    { name: 'p2p', bandwidth_bytes_per_s: 2e9, latency_s: 2e-6, shared: false },
  ];
  // Device 0 computes and sends its transfers over the bus or point to point; device 1 takes each
  // in turn and computes on it; R requests, so transfers of several requests share the bus.
  const plan = fc.record({
    transfers: fc.array(fc.record({ bytes: fc.integer({ min: 0, max: 5e6 }), bus: fc.boolean(), work_s: fc.double({ min: 0, max: 1e-3, noNaN: true }) }), {
      minLength: 1,
      maxLength: 8,
    }),
    requests: fc.integer({ min: 1, max: 5 }),
  });
  const inputOf = (p: { transfers: { bytes: number; bus: boolean; work_s: number }[]; requests: number }): SimInput => ({
    devices: [
      {
        id: 'a',
        steps: p.transfers.flatMap((t, i) => [
          { op: 'compute' as const, duration_s: t.work_s, label: `make ${i}` },
          { op: 'send' as const, transfer: i, label: `v${i}` },
        ]),
      },
      {
        id: 'b',
        steps: p.transfers.flatMap((t, i) => [
          { op: 'recv' as const, transfer: i, label: `v${i}` },
          { op: 'compute' as const, duration_s: t.work_s / 2, label: `use ${i}` },
        ]),
      },
    ],
    transfers: p.transfers.map((t, i) => ({ value: `v${i}`, bytes: t.bytes, from: 'a', to: 'b', links: [t.bus ? 'bus' : 'p2p'] })),
    links,
    requests: p.requests,
  });
  const plain = (r: ReturnType<typeof simulate>): unknown => ({
    ...r,
    step_times: [Array.from(r.step_times.start_s), Array.from(r.step_times.end_s)],
    transfer_times: [Array.from(r.transfer_times.start_s), Array.from(r.transfer_times.end_s)],
  });
  fc.assert(
    fc.property(plan, plan, (p, q) => {
      const first = plain(simulate(inputOf(p), { trace: true }));
      simulate(inputOf(q));
      assert.deepEqual(plain(simulate(inputOf(p), { trace: true })), first);
    }),
    { numRuns: 200, seed: 31 },
  );
});
