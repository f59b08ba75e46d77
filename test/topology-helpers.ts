// Helpers of the topology tests: the example racks, a device by id, closeness, expected errors.

import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HxcError } from '../src/diag/diagnostics.js';
import type { DiagCode } from '../src/diag/diagnostics.js';
import { loadTopology } from '../src/topology/index.js';
import type { Device, Topology } from '../src/topology/index.js';

// Compiled to dist/test/*.js: the repository root is two levels up.
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const EXAMPLES = path.resolve(ROOT, '../shared/examples');
export const FIXTURES = path.join(ROOT, 'fixtures/topology');
export const GiB = 2 ** 30;

export function example(name: string): Topology {
  return loadTopology(path.join(EXAMPLES, name));
}

export function device(topo: Topology, id: string): Device {
  const d = topo.devices.find((x) => x.id === id);
  assert.ok(d, `device ${id}`);
  return d;
}

export function near(actual: number, expected: number, label = ''): void {
  assert.ok(Math.abs(actual - expected) <= Math.abs(expected) * 1e-12, `${label} ${actual} != ${expected}`);
}

/** Runs `fn`, expects an HxcError with `code` whose `where` is exactly `file:line`. */
export function expectError(fn: () => unknown, code: DiagCode, where: string | RegExp, message?: RegExp): HxcError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof HxcError, `expected HxcError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (typeof where === 'string') assert.equal(caught.where, where);
  else assert.match(caught.where ?? '', where);
  if (message) assert.match(caught.message, message);
  assert.ok(!caught.message.includes('\n'), 'diagnostics are one line');
  return caught;
}

export const RACK = (body: string) => `format: hxc-topology/v1\nname: test\n${body}`;
