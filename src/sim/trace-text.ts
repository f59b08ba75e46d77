// A simulation's trace written as a Chrome trace (trace.json) while it runs: its events' text a
// batch at a time as they happen, not a list of every event kept until the run ends and then
// stringified. The bytes are `JSON.stringify({traceEvents, displayTimeUnit, otherData})` and a newline.

import { simulate, type SimInput, type TraceEvent } from './simulate.js';
import { textWriter } from '../util/json-text.js';

/**
 * Events stringified per batch: one JSON.stringify call per event (91k on the DeepSeek-V3 plan) or a
 * template per event cost ~2x the batches' time.
 */
const TRACE_BATCH = 128;

/**
 * Simulate `input` and write its trace to `sink` (in chunks valid only during the call, as
 * writeJson's): `JSON.stringify({traceEvents, displayTimeUnit: 'ns', otherData}) + '\n'`.
 */
export function writeTrace(input: SimInput, otherData: Record<string, string>, sink: (bytes: Uint8Array) => void): void {
  const out = textWriter(sink);
  out.write('{"traceEvents":[');
  let batch: TraceEvent[] = [];
  let first = true;
  const flush = (): void => {
    // A list's text between its brackets is its elements' text, comma-separated.
    const text = JSON.stringify(batch);
    out.write(first ? text.slice(1, -1) : ',' + text.slice(1, -1));
    first = false;
    batch = [];
  };
  simulate(input, {
    trace: (event) => {
      if (batch.push(event) === TRACE_BATCH) flush();
    },
  });
  if (batch.length > 0) flush();
  out.write(`],"displayTimeUnit":"ns","otherData":${JSON.stringify(otherData)}}\n`);
  out.end();
}
