// Units in topology files: every accepted spelling gives the SI number, every other one is HXC2303.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HxcError } from '../src/diag/diagnostics.js';
import {
  formatBandwidth,
  formatBytes,
  formatFlops,
  formatNumber,
  formatSeconds,
  parseBandwidth,
  parseBytes,
  parseFlops,
  parseSeconds,
} from '../src/topology/units.js';

/** Floating products such as 3.35 * 1e12 are compared to a relative 1e-12. */
function near(actual: number, expected: number, label: string): void {
  assert.ok(Math.abs(actual - expected) <= Math.abs(expected) * 1e-12, `${label}: ${actual} != ${expected}`);
}

function rejects(parse: (v: unknown, where?: string) => number, value: unknown): HxcError {
  let caught: unknown;
  try {
    parse(value, 'rack.yaml:7');
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof HxcError, `${JSON.stringify(value)} should be rejected`);
  assert.equal(caught.code, 'HXC2303');
  assert.equal(caught.where, 'rack.yaml:7');
  return caught;
}

test('bytes: binary and decimal units, plain numbers', () => {
  const table: [unknown, number][] = [
    ['80GiB', 80 * 2 ** 30],
    ['8GiB', 8589934592],
    ['2TiB', 2 * 2 ** 40],
    ['512MiB', 512 * 2 ** 20],
    ['4KiB', 4096],
    ['64GB', 64e9],
    ['1kB', 1000],
    ['1KB', 1000],
    ['3MB', 3e6],
    ['1.5TB', 1.5e12],
    ['2PB', 2e15],
    ['100B', 100],
    ['80 GiB', 80 * 2 ** 30],
    ['1024', 1024],
    [4096, 4096],
    ['1e3MB', 1e9],
    ['.5GiB', 2 ** 29],
    ['0B', 0],
  ];
  for (const [text, bytes] of table) assert.equal(parseBytes(text), bytes, String(text));
});

test('bandwidth: bytes per second (decimal and binary) and bits per second', () => {
  const table: [string, number][] = [
    ['3.35TB/s', 3.35e12],
    ['64GB/s', 64e9],
    ['450GB/s', 450e9],
    ['32GiB/s', 32 * 2 ** 30],
    ['400Gb/s', 50e9],
    ['100Mb/s', 12.5e6],
    ['400Gbit/s', 50e9],
    ['200Gbps', 25e9],
    ['1 TB/s', 1e12],
    ['2.039TB/s', 2.039e12],
  ];
  for (const [text, value] of table) near(parseBandwidth(text), value, text);
});

test('FLOP/s: SI prefixes with FLOPS, FLOP/s and OPS', () => {
  const table: [string, number][] = [
    ['989TFLOPS', 989e12],
    ['1.98PFLOPS', 1.98e15],
    ['60TFLOPS', 60e12],
    ['60TFLOP/s', 60e12],
    ['494.5 TFLOPS', 494.5e12],
    ['15GFLOPS', 15e9],
    ['200TOPS', 200e12],
    ['1TFLOPS', 1e12],
  ];
  for (const [text, value] of table) near(parseFlops(text), value, text);
});

test('time: s, ms, us, both micro signs, ns, and plain seconds', () => {
  const table: [unknown, number][] = [
    ['2us', 2e-6],
    ['2\u00b5s', 2e-6],
    ['2\u03bcs', 2e-6],
    ['5ns', 5e-9],
    ['1.5ms', 1.5e-3],
    ['3s', 3],
    ['10 us', 10e-6],
    [0.002, 0.002],
    ['0.5', 0.5],
    [0, 0],
  ];
  for (const [text, value] of table) near(parseSeconds(text), value, String(text));
});

test('rejections quote the text and name the accepted forms', () => {
  const err = rejects(parseBandwidth, '80 GB/');
  assert.match(err.message, /"80 GB\/"/);
  assert.match(err.message, /GB\/s/);
  assert.match(err.message, /Gb\/s/);
  const parsec = rejects(parseSeconds, '12parsecs');
  assert.match(parsec.message, /"12parsecs"/);
  assert.match(parsec.message, /us/);

  for (const bad of ['80 GB/', '', '   ', '-5GB', 'GB', '80 G B', '80gib', '80GiB/s', '1e', 'NaN', 'Infinity', '80GiBs', '1,000']) rejects(parseBytes, bad);
  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, true, null, undefined, {}, []]) rejects(parseBytes, bad);
  for (const bad of ['80 GB/', '64GB', '64 GB/ s', '64GB/sec', '400', 400, '-1GB/s', '400gb/s', '']) rejects(parseBandwidth, bad);
  for (const bad of ['989T', '989', 989, 'TFLOPS', '-1TFLOPS', '1XFLOPS', '1 T FLOPS']) rejects(parseFlops, bad);
  for (const bad of ['12parsecs', '2 u s', '-2us', '2usec', '', 'us', -1, '2US']) rejects(parseSeconds, bad);
});

test('formatting is short, unit-bearing and deterministic', () => {
  assert.equal(formatNumber(989), '989');
  assert.equal(formatNumber(494.5), '494.5');
  assert.equal(formatNumber(7.168), '7.168');
  assert.equal(formatNumber(114.688), '114.7');
  assert.equal(formatNumber(0), '0');
  assert.equal(formatBytes(80 * 2 ** 30), '80 GiB');
  assert.equal(formatBytes(2 * 2 ** 40), '2 TiB');
  assert.equal(formatBytes(100), '100 B');
  assert.equal(formatBandwidth(3.35e12), '3.35 TB/s');
  assert.equal(formatBandwidth(64e9), '64 GB/s');
  assert.equal(formatFlops(989e12), '989 TFLOP/s');
  assert.equal(formatFlops(1.979e15), '1.979 PFLOP/s');
  assert.equal(formatSeconds(2e-6), '2 us');
  assert.equal(formatSeconds(1.5e-3), '1.5 ms');
  assert.equal(formatSeconds(5e-9), '5 ns');
  assert.equal(formatSeconds(3), '3 s');
});

test('parse → format → parse round-trips the bandwidth numbers datasheets use', () => {
  for (const text of ['3.35TB/s', '64GB/s', '450GB/s', '2.039TB/s', '4.8TB/s']) {
    const value = parseBandwidth(text);
    near(parseBandwidth(formatBandwidth(value).replace(' ', '')), value, text);
  }
});
