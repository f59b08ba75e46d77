// Topology: routes (size-dependent best route, relays, ties, brute force on random racks), bad
// inputs each with its code and file:line, the default rack and its printing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import {
  CATALOG_NAMES,
  RouteTable,
  ROUTE_BYTES,
  defaultTopology,
  defaultTopologyText,
  loadTopology,
  parseTopology,
  renderTopology,
  topologyToJson,
} from '../src/topology/index.js';
import type { Topology } from '../src/topology/index.js';
import { device, example, expectError, FIXTURES, near, RACK } from './topology-helpers.js';

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
