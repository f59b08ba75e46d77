// Topology: the shared example racks load as written, numbers come out in SI units, routes are the
// fastest for each size (checked against brute force), and bad files fail with the right code at file:line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HxcError } from '../src/diag/diagnostics.js';
import type { DiagCode } from '../src/diag/diagnostics.js';
import {
  CATALOG,
  CATALOG_NAMES,
  RouteTable,
  ROUTE_BYTES,
  canRun,
  catalogEntry,
  defaultTopology,
  defaultTopologyText,
  expandIds,
  loadTopology,
  parseTopology,
  peakFlops,
  renderTopology,
  topologyToJson,
} from '../src/topology/index.js';
import type { Device, Topology } from '../src/topology/index.js';

// Compiled to dist/test/*.js: the repository root is two levels up.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLES = path.resolve(ROOT, '../shared/examples');
const FIXTURES = path.join(ROOT, 'fixtures/topology');
const GiB = 2 ** 30;

function example(name: string): Topology {
  return loadTopology(path.join(EXAMPLES, name));
}

function device(topo: Topology, id: string): Device {
  const d = topo.devices.find((x) => x.id === id);
  assert.ok(d, `device ${id}`);
  return d;
}

function near(actual: number, expected: number, label = ''): void {
  assert.ok(Math.abs(actual - expected) <= Math.abs(expected) * 1e-12, `${label} ${actual} != ${expected}`);
}

/** Runs `fn`, expects an HxcError with `code` whose `where` is exactly `file:line`. */
function expectError(fn: () => unknown, code: DiagCode, where: string | RegExp, message?: RegExp): HxcError {
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

const RACK = (body: string) => `format: hxc-topology/v1\nname: test\n${body}`;

// ---- the shared examples -------------------------------------------------------------------

test('rack-8gpu: 9 devices, ranges expanded, catalog defaults with the file override', () => {
  const topo = example('rack-8gpu.yaml');
  assert.equal(topo.format, 'hxc-topology/v1');
  assert.equal(topo.name, 'h200x8');
  assert.deepEqual(
    topo.devices.map((d) => d.id),
    ['cpu0', 'gpu0', 'gpu1', 'gpu2', 'gpu3', 'gpu4', 'gpu5', 'gpu6', 'gpu7'],
  );
  const cpu = device(topo, 'cpu0');
  assert.equal(cpu.memory_capacity_bytes, 2 * 2 ** 40, 'memory: {capacity: 2TiB} overrides the catalog');
  near(cpu.memory_bandwidth_bytes_per_s, 307.2e9, 'DDR5 bandwidth from the catalog');
  assert.equal(cpu.model, 'xeon-8480');
  const gpu = device(topo, 'gpu5');
  assert.equal(gpu.kind, 'gpu');
  assert.equal(gpu.model, 'h200');
  assert.equal(gpu.memory_capacity_bytes, 141 * GiB);
  assert.equal(gpu.memory_bandwidth_bytes_per_s, 4.8e12);
  assert.equal(gpu.peak_flops.bf16, 989e12);
  assert.equal(gpu.host, null);
  const [nvswitch, pcie] = topo.links;
  assert.equal(nvswitch?.bandwidth_bytes_per_s, 450e9);
  assert.equal(nvswitch?.latency_s, 2e-6);
  assert.equal(nvswitch?.shared, false);
  assert.equal(nvswitch?.devices.length, 8);
  assert.equal(pcie?.bandwidth_bytes_per_s, 64e9);
  assert.equal(pcie?.shared, true);
  assert.equal(pcie?.devices.length, 9);
  const bytes = readFileSync(path.join(EXAMPLES, 'rack-8gpu.yaml'));
  assert.equal(topo.source.sha256, createHash('sha256').update(bytes).digest('hex'));
  assert.equal(topo.source.file, path.join(EXAMPLES, 'rack-8gpu.yaml'));
});

test('rack-hetero: 11 devices (2 cpu, 4 gpu, 2 gaudi, 1 dfe, 2 ipu), hosts, kinds', () => {
  const topo = example('rack-hetero.yaml');
  assert.deepEqual(
    topo.devices.map((d) => d.id),
    ['cpu0', 'cpu1', 'gpu0', 'gpu1', 'gpu2', 'gpu3', 'gaudi0', 'gaudi1', 'dfe0', 'ipu0', 'ipu1'],
  );
  assert.deepEqual(
    topo.devices.map((d) => d.kind),
    ['cpu', 'cpu', 'gpu', 'gpu', 'gpu', 'gpu', 'accel', 'accel', 'dataflow', 'ipu', 'ipu'],
  );
  assert.deepEqual(
    topo.hosts.map((h) => h.id),
    ['node0', 'node1'],
  );
  assert.equal(device(topo, 'gpu2').host, 'node0');
  assert.equal(device(topo, 'dfe0').host, 'node1');
  assert.equal(device(topo, 'gaudi1').memory_capacity_bytes, 128 * GiB);
  assert.equal(device(topo, 'gaudi1').peak_flops.bf16, 1835e12);
  assert.equal(device(topo, 'gpu0').memory_capacity_bytes, 80 * GiB);
  assert.equal(device(topo, 'gpu0').memory_bandwidth_bytes_per_s, 3.35e12);
  assert.deepEqual(
    topo.links.map((l) => [l.name, l.bandwidth_bytes_per_s, l.latency_s]),
    [
      ['nvlink0', 450e9, 2e-6],
      ['pcie0', 64e9, 2e-6],
      ['pcie1', 64e9, 2e-6],
      ['gaudi-rdma', 300e9, 3e-6],
      ['fabric', 50e9, 5e-6],
    ],
  );
});

test('rack-tiny: every number written out, in SI units', () => {
  const topo = example('rack-tiny.yaml');
  assert.equal(topo.devices.length, 2);
  const gpu = device(topo, 'gpu0');
  assert.equal(gpu.model, null);
  assert.equal(gpu.memory_capacity_bytes, 8589934592);
  assert.equal(gpu.memory_bandwidth_bytes_per_s, 400e9);
  assert.equal(gpu.peak_flops.fp16, 60e12);
  assert.equal(gpu.peak_flops.fp32, 15e12);
  assert.equal(gpu.launch_s, 10e-6);
  assert.equal(gpu.efficiency, 0.6, 'kind default');
  const cpu = device(topo, 'cpu0');
  assert.equal(cpu.memory_capacity_bytes, 32 * GiB);
  assert.equal(cpu.memory_bandwidth_bytes_per_s, 60e9);
  assert.equal(cpu.launch_s, 5e-6);
  assert.deepEqual(topo.links[0], { name: 'pcie', kind: 'pcie', devices: ['cpu0', 'gpu0'], bandwidth_bytes_per_s: 16e9, latency_s: 5e-6, shared: false });
});

test('canRun: the tiny GPU excludes Loop, If and NonZero; the CPU runs everything', () => {
  const topo = example('rack-tiny.yaml');
  const gpu = device(topo, 'gpu0');
  const cpu = device(topo, 'cpu0');
  for (const op of ['Loop', 'If', 'NonZero']) {
    assert.equal(canRun(gpu, op), false, op);
    assert.equal(canRun(gpu, op, 'ai.onnx'), false, `${op} in ai.onnx`);
    assert.equal(canRun(cpu, op), true, `cpu ${op}`);
  }
  for (const op of ['MatMul', 'Add', 'Softmax', 'Scan']) assert.equal(canRun(gpu, op), true, op);
  assert.deepEqual(gpu.ops, { include: null, exclude: ['Loop', 'If', 'NonZero'] });
});

test('canRun: an IPU runs data movement, element-wise and MoE routing ops only', () => {
  const ipu = device(example('rack-hetero.yaml'), 'ipu0');
  for (const op of ['Gather', 'ScatterND', 'Reshape', 'Add', 'Mul', 'TopK', 'Softmax', 'OneHot', 'CumSum']) assert.equal(canRun(ipu, op), true, op);
  for (const op of ['MatMul', 'Gemm', 'Conv', 'Attention', 'LayerNormalization']) assert.equal(canRun(ipu, op), false, op);
  assert.equal(canRun(ipu, 'MoE', 'com.microsoft'), false, 'MoE holds the expert GEMMs');
  assert.equal(canRun(ipu, 'FastGelu', 'com.microsoft'), true);
  assert.equal(canRun(ipu, 'FastGelu', ''), false, 'a domain-qualified entry matches its domain only');
});

test('ops: include restricts, set + include adds, exclude wins, domain.* matches a whole domain', () => {
  const topo = parseTopology(
    RACK(`devices:
  - id: a
    kind: accel
    flops: {bf16: 100TFLOPS}
    memory: {capacity: 16GiB, bandwidth: 1TB/s}
    ops: {include: [MatMul, Add, Gemm], exclude: [Gemm]}
  - id: b
    kind: ipu
    flops: {fp32: 1TFLOPS}
    memory: {capacity: 8GiB, bandwidth: 50GB/s}
    ops: {set: ipu-default, include: [MatMul]}
  - id: c
    kind: gpu
    flops: {fp16: 10TFLOPS}
    memory: {capacity: 8GiB, bandwidth: 500GB/s}
    ops: {set: all, exclude: [com.microsoft.*]}
links:
  - {name: l, connects: [a, b, c], bandwidth: 10GB/s, latency: 1us}
`),
    'ops.yaml',
  );
  const [a, b, c] = topo.devices as [Device, Device, Device];
  assert.equal(canRun(a, 'MatMul'), true);
  assert.equal(canRun(a, 'Conv'), false);
  assert.equal(canRun(a, 'Gemm'), false, 'exclude wins over include');
  assert.equal(canRun(b, 'MatMul'), true);
  assert.equal(canRun(b, 'Gather'), true);
  assert.equal(canRun(b, 'Conv'), false);
  assert.equal(canRun(c, 'Conv'), true);
  assert.equal(canRun(c, 'Attention', 'com.microsoft'), false);
  assert.equal(canRun(c, 'Attention', ''), true);
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - id: a
    kind: cpu
    model: xeon-8480
    ops: {set: everything}
`),
        'set.yaml',
      ),
    'HXC2302',
    'set.yaml:7',
    /op set "everything"/,
  );
});

test('peakFlops: ONNX dtype names and fallbacks', () => {
  const hetero = example('rack-hetero.yaml');
  const h100 = device(hetero, 'gpu0');
  assert.equal(peakFlops(h100, 'float16'), 989e12);
  assert.equal(peakFlops(h100, 'bfloat16'), 989e12);
  assert.equal(peakFlops(h100, 'float'), 67e12);
  assert.equal(peakFlops(h100, 'fp8'), 1979e12);
  assert.equal(peakFlops(h100, 'int64'), 67e12, 'integer index math uses fp32');
  const tiny = device(example('rack-tiny.yaml'), 'gpu0');
  assert.equal(peakFlops(tiny, 'int8'), 60e12, 'int8 → fp8 → fp16');
  assert.equal(peakFlops(tiny, 'tf32'), 15e12, 'tf32 → fp32');
  assert.equal(peakFlops(tiny, 'double'), 15e12, 'fp64 → fp32');
  const a100 = catalogEntry('a100-sxm');
  assert.ok(a100);
  assert.equal(peakFlops(a100, 'float8e4m3fn'), 312e12, 'no fp8 on A100: fp16');
  assert.equal(peakFlops({ peak_flops: { bf16: 5e12, fp8: 9e12 } }, 'float'), 5e12, 'no fp32 listed: slowest rate');
});

test('catalog: every entry has kind, flops, memory, launch, efficiency, op set', () => {
  for (const name of ['xeon-8480', 'h100-sxm', 'h200', 'a100-sxm', 'gaudi2', 'gaudi3', 'sn40l', 'ipu-e2100']) {
    assert.ok(CATALOG_NAMES.includes(name), name);
  }
  for (const entry of Object.values(CATALOG)) {
    assert.ok(entry.peak_flops.fp32 && entry.peak_flops.fp32 > 0, `${entry.name} fp32`);
    assert.ok(entry.memory_capacity_bytes > 0 && entry.memory_bandwidth_bytes_per_s > 0, entry.name);
    assert.ok(entry.launch_s > 0 && entry.launch_s < 1e-3, entry.name);
    assert.ok(entry.efficiency > 0 && entry.efficiency <= 1, entry.name);
  }
  assert.equal(CATALOG['h100-sxm']?.peak_flops.tf32, 494.5e12);
  assert.equal(CATALOG['gaudi3']?.memory_bandwidth_bytes_per_s, 3.7e12);
  assert.equal(catalogEntry('toString'), undefined, 'no prototype names');
});

// ---- routes --------------------------------------------------------------------------------

test('routes (hetero): gpu0 → gaudi0 relays through ipu0 and ipu1; gpu0 → gpu1 over NVLink', () => {
  const routes = new RouteTable(example('rack-hetero.yaml'));
  const big = routes.route('gpu0', 'gaudi0', ROUTE_BYTES);
  assert.deepEqual(big.links, ['pcie0', 'fabric', 'pcie1']);
  assert.deepEqual(big.hops, ['gpu0', 'ipu0', 'ipu1', 'gaudi0']);
  near(big.latency_s, 9e-6);
  assert.equal(big.bandwidth_bytes_per_s, 50e9);
  near(big.time_s, 9e-6 + ROUTE_BYTES / 50e9);
  assert.deepEqual(routes.route('gpu0', 'gaudi0', 1).hops, ['gpu0', 'ipu0', 'ipu1', 'gaudi0']);
  assert.deepEqual(routes.route('cpu0', 'cpu1', 1e6).hops, ['cpu0', 'ipu0', 'ipu1', 'cpu1']);
  for (const bytes of [1, 4096, ROUTE_BYTES, 1e10]) {
    const r = routes.route('gpu0', 'gpu1', bytes);
    assert.deepEqual(r.links, ['nvlink0'], `${bytes} bytes`);
    assert.deepEqual(r.hops, ['gpu0', 'gpu1']);
  }
  const self = routes.route('gpu2', 'gpu2', ROUTE_BYTES);
  assert.deepEqual([self.links, self.time_s, self.latency_s], [[], 0, 0]);
  assert.equal(routes.time('gpu2', 'gpu2', 1e9), 0);
});

test('routes (hetero): gaudi0 → gaudi1 takes PCIe for small transfers and RDMA for large ones', () => {
  const routes = new RouteTable(example('rack-hetero.yaml'));
  assert.deepEqual(routes.route('gaudi0', 'gaudi1', 1024).links, ['pcie1']);
  assert.deepEqual(routes.route('gaudi0', 'gaudi1', ROUTE_BYTES).links, ['gaudi-rdma']);
  const options = routes.pareto('gaudi0', 'gaudi1');
  assert.deepEqual(
    options.map((o) => o.links),
    [['pcie1'], ['gaudi-rdma']],
  );
  // Crossover where 2us + b/64e9 = 3us + b/300e9.
  const crossover = 1e-6 / (1 / 64e9 - 1 / 300e9);
  assert.deepEqual(routes.route('gaudi0', 'gaudi1', crossover * 0.99).links, ['pcie1']);
  assert.deepEqual(routes.route('gaudi0', 'gaudi1', crossover * 1.01).links, ['gaudi-rdma']);
});

test('routes: choice flips with size between a low-latency and a high-bandwidth path', () => {
  const topo = parseTopology(
    RACK(`devices:
  - id: "n[0-2]"
    kind: cpu
    flops: {fp32: 1TFLOPS}
    memory: {capacity: 1GiB, bandwidth: 10GB/s}
links:
  - {name: slow-direct, connects: [n0, n2], bandwidth: 10GB/s, latency: 1us}
  - {name: fast-a, connects: [n0, n1], bandwidth: 400GB/s, latency: 20us}
  - {name: fast-b, connects: [n1, n2], bandwidth: 400GB/s, latency: 20us}
`),
    'flip.yaml',
  );
  const routes = new RouteTable(topo);
  const small = routes.route('n0', 'n2', 1000);
  assert.deepEqual(small.links, ['slow-direct']);
  near(small.time_s, 1e-6 + 1000 / 10e9);
  const large = routes.route('n0', 'n2', ROUTE_BYTES);
  assert.deepEqual(large.links, ['fast-a', 'fast-b']);
  assert.deepEqual(large.hops, ['n0', 'n1', 'n2']);
  near(large.latency_s, 40e-6);
  near(large.time_s, 40e-6 + ROUTE_BYTES / 400e9);
  assert.equal(routes.time('n0', 'n2', ROUTE_BYTES), large.time_s);
  assert.deepEqual(routes.route('n2', 'n0', ROUTE_BYTES).hops, ['n2', 'n1', 'n0'], 'links carry both ways');
  const i = routes.indexOf('n0');
  const j = routes.indexOf('n2');
  assert.equal(routes.timeIdx(i, j, 1000), small.time_s);
  assert.deepEqual(
    routes.pareto('n0', 'n2').map((o) => o.bandwidth_bytes_per_s),
    [10e9, 400e9],
  );
  expectError(() => routes.indexOf('n9'), 'HXC2304', /^$/, /did you mean n0, n1, n2/);
});

test('routes: equal routes are broken by hop count, then link names, not file order', () => {
  const topo = parseTopology(
    RACK(`devices:
  - {id: a, kind: cpu, model: xeon-8480}
  - {id: r2, kind: cpu, model: xeon-8480}
  - {id: r1, kind: cpu, model: xeon-8480}
  - {id: b, kind: cpu, model: xeon-8480}
links:
  - {name: z-a-r2, connects: [a, r2], bandwidth: 10GB/s, latency: 1us}
  - {name: z-r2-b, connects: [r2, b], bandwidth: 10GB/s, latency: 1us}
  - {name: m-a-r1, connects: [a, r1], bandwidth: 10GB/s, latency: 1us}
  - {name: m-r1-b, connects: [r1, b], bandwidth: 10GB/s, latency: 1us}
  - {name: long-1, connects: [a, r2, r1], bandwidth: 10GB/s, latency: 0.5us}
  - {name: long-2, connects: [r1, b], bandwidth: 10GB/s, latency: 0.5us}
`),
    'ties.yaml',
  );
  const routes = new RouteTable(topo);
  // a→r1→b costs 1us over long-1 + long-2; the two 2us two-hop routes lose on latency.
  assert.deepEqual(routes.route('a', 'b', 100).links, ['long-1', 'long-2']);
  const noShortcut = new RouteTable({ devices: topo.devices, links: topo.links.slice(0, 4) });
  assert.deepEqual(noShortcut.route('a', 'b', 100).links, ['m-a-r1', 'm-r1-b']);
  assert.deepEqual(noShortcut.route('a', 'b', 100).hops, ['a', 'r1', 'b']);
});

test('routes: time() equals the brute-force best over all simple paths, on random racks', () => {
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  for (let trial = 0; trial < 40; trial++) {
    const n = 6;
    const ids = Array.from({ length: n }, (_, i) => `d${i}`);
    const lines = ids.map((id) => `  - {id: ${id}, kind: gpu, model: h100-sxm}`);
    const links: string[] = [];
    // A chain keeps it connected; extra random links and switches make alternatives.
    for (let i = 1; i < n; i++) links.push(`[d${i - 1}, d${i}]`);
    for (let k = 0; k < 5; k++) {
      const size = pick([2, 2, 3]);
      const members = [...new Set(Array.from({ length: size }, () => pick(ids)))];
      if (members.length >= 2) links.push(`[${members.join(', ')}]`);
    }
    const linkLines = links.map((c, k) => `  - {name: l${k}, connects: ${c}, bandwidth: ${pick([10, 50, 100, 400])}GB/s, latency: ${pick([1, 2, 5, 0.5])}us}`);
    const topo = parseTopology(RACK(`devices:\n${lines.join('\n')}\nlinks:\n${linkLines.join('\n')}\n`), `random${trial}.yaml`);
    const routes = new RouteTable(topo);
    for (const bytes of [0, 1e3, 1e5, 1e7, 1e9]) {
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          if (i === j) continue;
          const best = bruteForce(topo, i, j, bytes);
          const got = routes.timeIdx(i, j, bytes);
          assert.ok(Math.abs(got - best) <= best * 1e-9, `trial ${trial} d${i}→d${j} ${bytes}B: ${got} vs ${best}`);
          const r = routes.routeIdx(i, j, bytes);
          assert.equal(r.time_s, got);
          assert.equal(r.hops.length, r.links.length + 1);
        }
      }
    }
  }
});

/** Minimum over all simple device paths of sum(latency) + bytes / min(bandwidth). */
function bruteForce(topo: Topology, from: number, to: number, bytes: number): number {
  const ids = topo.devices.map((d) => d.id);
  let best = Infinity;
  const visit = (at: number, seen: Set<number>, latency: number, bandwidth: number) => {
    if (at === to) {
      best = Math.min(best, latency + bytes / bandwidth);
      return;
    }
    for (const link of topo.links) {
      if (!link.devices.includes(ids[at] as string)) continue;
      for (const next of link.devices) {
        const k = ids.indexOf(next);
        if (seen.has(k)) continue;
        seen.add(k);
        visit(k, seen, latency + link.latency_s, Math.min(bandwidth, link.bandwidth_bytes_per_s));
        seen.delete(k);
      }
    }
  };
  visit(from, new Set([from]), 0, Infinity);
  return best;
}

// ---- other forms of the format ---------------------------------------------------------------

test('ids: ranges, lists, products, zero padding, and count', () => {
  assert.deepEqual(expandIds('gpu[0-7]'), ['gpu0', 'gpu1', 'gpu2', 'gpu3', 'gpu4', 'gpu5', 'gpu6', 'gpu7']);
  assert.deepEqual(expandIds('x[2-3]'), ['x2', 'x3']);
  assert.deepEqual(expandIds('gpu[0,2,4-5]'), ['gpu0', 'gpu2', 'gpu4', 'gpu5']);
  assert.deepEqual(expandIds('n[0-1]g[0-1]'), ['n0g0', 'n0g1', 'n1g0', 'n1g1']);
  assert.deepEqual(expandIds('gpu[08-10]'), ['gpu08', 'gpu09', 'gpu10']);
  assert.deepEqual(expandIds('cpu0'), ['cpu0']);
  assert.equal(typeof expandIds('gpu[3-1]'), 'string');
  assert.equal(typeof expandIds('gpu[0-'), 'string');
  assert.equal(typeof expandIds('gpu[a-b]'), 'string');
  assert.equal(typeof expandIds('gpu[0-99999]'), 'string');

  const topo = parseTopology(
    RACK(`devices:
  - {id: acc, count: 3, kind: accel, model: gaudi2}
  - {id: "x[2-3]", kind: cpu, model: xeon-8480}
links:
  - {name: eth, kind: ethernet, connects: ["acc[0-2]", "x[2-3]"], bandwidth: 100Gb/s, latency: 3us}
`),
    'count.yaml',
  );
  assert.deepEqual(
    topo.devices.map((d) => d.id),
    ['acc0', 'acc1', 'acc2', 'x2', 'x3'],
  );
  assert.equal(topo.links[0]?.bandwidth_bytes_per_s, 12.5e9);
  assert.equal(topo.links[0]?.devices.length, 5);
  expectError(
    () => parseTopology(RACK(`devices:\n  - {id: "g[0-1]", count: 2, kind: gpu, model: h200}\n`), 'both.yaml'),
    'HXC2302',
    'both.yaml:4',
    /range or count/,
  );
});

test('unknown fields are accepted; a needed missing field is named', () => {
  const topo = parseTopology(
    RACK(`generator: rack-tool 1.2
devices:
  - {id: cpu0, kind: cpu, model: xeon-8480, vendor: intel, rack_unit: 3}
links: []
`),
    'extra.yaml',
  );
  assert.equal(topo.devices.length, 1);
  expectError(() => parseTopology('format: hxc-topology/v1\ndevices: []\n', 'noname.yaml'), 'HXC2302', 'noname.yaml:1', /missing field "name"/);
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - id: gpu0
    memory: {capacity: 8GiB, bandwidth: 1TB/s}
    flops: {fp16: 10TFLOPS}
`),
        'nokind.yaml',
      ),
    'HXC2302',
    'nokind.yaml:4',
    /missing field "kind"/,
  );
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - id: gpu0
    kind: gpu
    memory: {capacity: 8GiB, bandwidth: 1TB/s}
`),
        'noflops.yaml',
      ),
    'HXC2302',
    'noflops.yaml:4',
    /missing field "flops"/,
  );
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - {id: a, kind: cpu, model: xeon-8480}
  - {id: b, kind: cpu, model: xeon-8480}
links:
  - name: l
    connects: [a, b]
    bandwidth: 1GB/s
`),
        'nolat.yaml',
      ),
    'HXC2302',
    'nolat.yaml:7',
    /link "l": missing field "latency"/,
  );
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - {id: a, kind: tpu, model: xeon-8480}
`),
        'kind.yaml',
      ),
    'HXC2302',
    'kind.yaml:4',
    /unknown kind/,
  );
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - {id: a, kind: cpu, model: xeon-8480, efficiency: 1.5}
`),
        'eff.yaml',
      ),
    'HXC2302',
    'eff.yaml:4',
    /efficiency/,
  );
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - id: a
    kind: gpu
    model: h100-sxm
    efficiency: {compute: 0.7, tensor: 0.5}
`),
        'effkey.yaml',
      ),
    'HXC2302',
    'effkey.yaml:7',
    /unknown efficiency key "tensor"/,
  );
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - {id: a, kind: gpu, model: h100-sxm, efficiency: {memory: 0}}
`),
        'effmem.yaml',
      ),
    'HXC2302',
    'effmem.yaml:4',
    /efficiency.memory must be a number in \(0, 1\]/,
  );
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - {id: a, kind: gpu, model: h100-sxm, compute_units: 13.5}
`),
        'units.yaml',
      ),
    'HXC2302',
    'units.yaml:4',
    /compute_units must be a whole number/,
  );
});

test('efficiency per op class and memory, and compute units, from the catalog or the rack', () => {
  const topo = parseTopology(
    RACK(`devices:
  - {id: h, kind: gpu, model: h100-sxm}
  - {id: t, kind: gpu, model: h100-sxm, compute_units: 66, efficiency: {compute: 0.7, memory: 0.9, matmul: 0.75}}
  - {id: c, kind: cpu, model: xeon-8480, efficiency: 0.4}
links:
  - {name: l, connects: [h, t, c], bandwidth: 64GB/s, latency: 2us}
`),
    'eff-ok.yaml',
  );
  const [h, t, c] = topo.devices;
  // The catalog's H100: attention at FlashAttention-2's share of Hopper, 132 SMs, GPU memory efficiency.
  assert.deepEqual([h!.efficiency, h!.class_efficiency, h!.memory_efficiency, h!.compute_units], [0.6, { attention: 0.35 }, 0.8, 132]);
  // The rack overrides per key and keeps the catalog's other classes.
  assert.deepEqual([t!.efficiency, t!.class_efficiency, t!.memory_efficiency, t!.compute_units], [0.7, { attention: 0.35, matmul: 0.75 }, 0.9, 66]);
  assert.deepEqual([c!.efficiency, c!.memory_efficiency, c!.compute_units], [0.4, 0.7, null]);
});

// ---- bad inputs, each with its code and file:line ---------------------------------------------

test('bad: link names an unknown device (HXC2304, close matches)', () => {
  const file = path.join(FIXTURES, 'unknown-device.yaml');
  expectError(() => loadTopology(file), 'HXC2304', `${file}:13`, /link "nvlink0" names unknown device "gpu9" \(did you mean gpu0, gpu1\?\)/);
  const host = path.join(FIXTURES, 'unknown-host-device.yaml');
  expectError(() => loadTopology(host), 'HXC2304', `${host}:6`, /host "node0" names unknown device "gpu4"/);
});

test('bad: a dangling "/" in a unit (HXC2303)', () => {
  const file = path.join(FIXTURES, 'bad-unit.yaml');
  expectError(() => loadTopology(file), 'HXC2303', `${file}:14`, /"80 GB\/"/);
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - id: gpu0
    kind: gpu
    model: h100-sxm
    launch: 12parsecs
`),
        'parsec.yaml',
      ),
    'HXC2303',
    'parsec.yaml:7',
    /"12parsecs"/,
  );
});

test('bad: unknown catalog model lists the catalog (HXC2305)', () => {
  const file = path.join(FIXTURES, 'unknown-model.yaml');
  const err = expectError(() => loadTopology(file), 'HXC2305', `${file}:7`, /unknown catalog model "h100"/);
  for (const name of CATALOG_NAMES) assert.ok(err.message.includes(name), name);
});

test('bad: wrong format field says what was found (HXC2302)', () => {
  const file = path.join(FIXTURES, 'bad-format.yaml');
  expectError(() => loadTopology(file), 'HXC2302', `${file}:2`, /expected format "hxc-topology\/v1", found .*"hxc-graph\/v1"/);
  expectError(() => parseTopology('name: x\ndevices: []\n', 'noformat.yaml'), 'HXC2302', 'noformat.yaml:1', /no "format" field/);
});

test('bad: a billion-laughs alias bomb is refused quickly (HXC2301)', () => {
  const file = path.join(FIXTURES, 'alias-bomb.yaml');
  const start = performance.now();
  expectError(() => loadTopology(file), 'HXC2301', `${file}:13`, /alias/);
  assert.ok(performance.now() - start < 2000, 'refused without expanding');
  // Modest anchors and aliases stay usable.
  const topo = parseTopology(
    RACK(`gpu: &gpu {kind: gpu, model: h100-sxm}
devices:
  - {id: cpu0, kind: cpu, model: xeon-8480}
  - id: g
    count: 2
    kind: gpu
    model: h100-sxm
links:
  - {name: pcie, connects: [cpu0, g0, g1], bandwidth: 64GB/s, latency: 2us}
other: *gpu
`),
    'anchors.yaml',
  );
  assert.equal(topo.devices.length, 3);
});

test('bad: duplicate ids, unreachable devices, missing numbers, broken YAML, missing file', () => {
  const dup = path.join(FIXTURES, 'duplicate-id.yaml');
  expectError(() => loadTopology(dup), 'HXC2306', `${dup}:8`, /"gpu1" is defined twice \(first at .*duplicate-id\.yaml:5\)/);
  const lonely = path.join(FIXTURES, 'unreachable.yaml');
  expectError(() => loadTopology(lonely), 'HXC2307', `${lonely}:8`, /"gpu1" cannot be reached from "cpu0"/);
  const missing = path.join(FIXTURES, 'missing-memory.yaml');
  expectError(() => loadTopology(missing), 'HXC2302', `${missing}:7`, /missing field "memory\.bandwidth"/);
  const broken = path.join(FIXTURES, 'bad-yaml.yaml');
  expectError(() => loadTopology(broken), 'HXC2301', new RegExp(`^${broken.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:[67]$`));
  const nowhere = path.join(FIXTURES, 'does-not-exist.yaml');
  expectError(() => loadTopology(nowhere), 'HXC2001', nowhere, /no such file/);
  expectError(() => parseTopology('format: hxc-topology/v1\nname: a\nname: b\n', 'dupkey.yaml'), 'HXC2301', /^dupkey\.yaml:\d+$/);
  expectError(() => parseTopology('- just\n- a list\n', 'list.yaml'), 'HXC2302', 'list.yaml:1', /mapping/);
  expectError(
    () =>
      parseTopology(
        RACK(`devices:
  - {id: a, kind: cpu, model: xeon-8480}
  - {id: b, kind: cpu, model: xeon-8480}
links:
  - {name: l, connects: [a, b], bandwidth: 1GB/s, latency: 1us}
  - {name: l, connects: [a, b], bandwidth: 2GB/s, latency: 1us}
`),
        'duplink.yaml',
      ),
    'HXC2302',
    'duplink.yaml:8',
    /link name "l" is used twice/,
  );
});

// ---- default rack and printing -------------------------------------------------------------

test('default topology: loads through the same loader, source.file null, all devices reachable', () => {
  const topo = defaultTopology();
  assert.equal(topo.source.file, null);
  assert.equal(topo.source.sha256, createHash('sha256').update(defaultTopologyText()).digest('hex'));
  assert.equal(topo.name, 'hxc-default');
  assert.deepEqual([...new Set(topo.devices.map((d) => d.kind))], ['cpu', 'gpu', 'accel', 'ipu']);
  assert.equal(device(topo, 'cpu0').memory_capacity_bytes, 2 * 2 ** 40);
  assert.equal(topo.devices.filter((d) => d.model === 'h100-sxm').length, 4);
  assert.equal(topo.devices.filter((d) => d.model === 'gaudi3').length, 2);
  const routes = new RouteTable(topo);
  for (const a of topo.devices) for (const b of topo.devices) assert.ok(Number.isFinite(routes.time(a.id, b.id, ROUTE_BYTES)), `${a.id}→${b.id}`);
  assert.deepEqual(routes.route('gpu0', 'gaudi1', ROUTE_BYTES).hops, ['gpu0', 'cpu0', 'gaudi1']);
});

test('render: readable, deterministic text; colour only when asked', () => {
  const topo = example('rack-hetero.yaml');
  const routes = new RouteTable(topo);
  const text = renderTopology(topo, routes, false);
  assert.equal(text, renderTopology(example('rack-hetero.yaml'), new RouteTable(topo), false));
  assert.ok(!text.includes('\x1b['), 'no escape codes without colour');
  assert.ok(renderTopology(topo, routes, true).includes('\x1b[1m'));
  for (const part of ['hetero-rack-a', 'devices', 'links', 'hosts', 'gaudi-rdma', 'gpu[0-3]', 'effective GB/s', 'latency us', 'links crossed', 'ipu-e2100']) {
    assert.ok(text.includes(part), part);
  }
  const gpuRow = text.split('\n').find((l) => l.trimStart().startsWith('gpu0 ') && l.includes('h100-sxm'));
  assert.ok(gpuRow, 'device row for gpu0');
  assert.match(gpuRow, /\b80\b.*\b3350\b.*\b989\b/);
});

test('topologyToJson: stable, numeric, routes for 64 MiB', () => {
  const topo = example('rack-hetero.yaml');
  const routes = new RouteTable(topo);
  const json = topologyToJson(topo, routes);
  const text = JSON.stringify(json);
  assert.equal(text, JSON.stringify(topologyToJson(example('rack-hetero.yaml'), new RouteTable(topo))));
  assert.equal(json.format, 'hxc-topology/v1');
  assert.equal(json.route_bytes, 64 * 2 ** 20);
  assert.equal(json.routes?.length, 11 * 10);
  assert.deepEqual(Object.keys(json), [
    'format',
    'name',
    'source',
    'devices',
    'links',
    'hosts',
    'route_bytes',
    'device_classes',
    'link_classes',
    'route_classes',
    'routes',
  ]);
  const r = json.routes?.find((x) => x.from === 'gpu0' && x.to === 'gaudi0');
  assert.deepEqual(r?.links, ['pcie0', 'fabric', 'pcie1']);
  assert.deepEqual(Object.keys(json.devices[0]?.peak_flops ?? {}), ['fp32', 'fp16', 'bf16', 'int8']);
  const back = JSON.parse(text) as typeof json;
  assert.deepEqual(back, json, 'no Infinity or undefined lost in JSON');
});
