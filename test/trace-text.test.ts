import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { simulate, type SimInput, type SimStep } from '../src/sim/simulate.js';
import { writeTrace } from '../src/sim/trace-text.js';

/**
 * A pipeline over 1–4 devices: device d receives from d − 1, computes (durations zero or not, which
 * a trace leaves out or shows), sends to d + 1; a shared link or not; labels in any characters.
 */
const pipeline = fc
  .record({
    devices: fc.integer({ min: 1, max: 4 }),
    computes: fc.array(fc.array(fc.oneof(fc.constant(0), fc.double({ min: 1e-6, max: 1e-2, noNaN: true })), { minLength: 1, maxLength: 4 }), {
      minLength: 4,
      maxLength: 4,
    }),
    labels: fc.array(fc.string({ unit: 'binary', maxLength: 6 }), { minLength: 16, maxLength: 16 }),
    shared: fc.boolean(),
    bytes: fc.array(fc.nat(1 << 20), { minLength: 4, maxLength: 4 }),
    requests: fc.integer({ min: 1, max: 40 }),
  })
  .map(({ devices, computes, labels, shared, bytes, requests }): SimInput => {
    let label = 0;
    const next = (): string => labels[label++ % labels.length]!;
    return {
      devices: Array.from({ length: devices }, (_, d) => {
        const steps: SimStep[] = [];
        if (d > 0) steps.push({ op: 'recv', transfer: d - 1, label: next() });
        for (const duration_s of computes[d]!) steps.push({ op: 'compute', duration_s, label: next() });
        if (d < devices - 1) steps.push({ op: 'send', transfer: d, label: next() });
        return { id: `dev${d}${next()}`, steps };
      }),
      transfers: Array.from({ length: devices - 1 }, (_, t) => ({ value: next(), bytes: bytes[t]!, from: `dev${t}`, to: `dev${t + 1}`, links: ['link'] })),
      links: [{ name: 'link', bandwidth_bytes_per_s: 1e9, latency_s: 1e-6, shared }],
      requests,
    };
  });

test("writeTrace's bytes are JSON.stringify's of the simulation's trace events, however many batches they fill (property)", () => {
  fc.assert(
    fc.property(pipeline, (input) => {
      const otherData = { generator: 'hxc', kind: 'estimate' };
      const kept = simulate(input, { trace: true });
      const expected = Buffer.from(`${JSON.stringify({ traceEvents: kept.trace, displayTimeUnit: 'ns', otherData })}\n`, 'utf8');
      const chunks: Buffer[] = [];
      writeTrace(input, otherData, (bytes) => chunks.push(Buffer.from(bytes)));
      assert.deepEqual(Buffer.concat(chunks), expected);
      // Events given to a callback are not kept, and the run is the same run.
      let given = 0;
      const streamed = simulate(input, { trace: () => given++ });
      assert.equal(given, kept.trace.length);
      assert.deepEqual(streamed.trace, []);
      assert.deepEqual(streamed.request_finish_s, kept.request_finish_s);
    }),
    { numRuns: 200, seed: 5 },
  );
});
