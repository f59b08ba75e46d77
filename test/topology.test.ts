// Topology: the shared example racks load as written, numbers come out in SI units, routes are the
// fastest for each size (checked against brute force), and bad files fail with the right code at file:line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CATALOG, CATALOG_NAMES, canRun, catalogEntry, expandIds, parseTopology, peakFlops } from '../src/topology/index.js';
import type { Device } from '../src/topology/index.js';
import { device, example, expectError, EXAMPLES, GiB, near, RACK } from './topology-helpers.js';

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

test('ops: a misspelt op name is refused at its line; a custom op, a task graph op or one with its domain is taken', () => {
  const rack = (ops: string): string =>
    RACK(`devices:
  - id: a
    kind: gpu
    model: h200
    ops: ${ops}
`);
  // A misspelt name matched no node: the device kept MatMul it was meant to lose, without a word.
  expectError(
    () => parseTopology(rack('{exclude: [Loop, Matmul]}'), 'typo.yaml'),
    'HXC2302',
    'typo.yaml:7',
    /ops\.exclude: "Matmul" is not an operator hxc knows \(did you mean MatMul/,
  );
  expectError(
    () => parseTopology(rack('{include: [Softmx]}'), 'soft.yaml'),
    'HXC2302',
    'soft.yaml:7',
    /"Softmx" is not an operator hxc knows \(did you mean Softmax/,
  );
  expectError(
    () => parseTopology(rack('{include: [ai.onnx.Gemmm]}'), 'dom.yaml'),
    'HXC2302',
    'dom.yaml:7',
    /Gemmm in the ONNX domain\) is not an operator hxc knows \(did you mean Gemm/,
  );
  expectError(
    () => parseTopology(rack('{include: [ai.onnx.FooBar]}'), 'foo.yaml'),
    'HXC2302',
    'foo.yaml:7',
    /"ai\.onnx\.FooBar" \(FooBar in the ONNX domain\) is not an operator hxc knows$/,
  );
  // What is taken: ONNX ops of any opset, contrib ops by name, a custom domain's ops, a whole domain.
  const topo = parseTopology(rack('{exclude: [Col2Im, GroupQueryAttention, com.example.MyOp, ai.onnx.Loop, com.microsoft.*]}'), 'ok.yaml');
  const a = topo.devices[0]!;
  assert.equal(canRun(a, 'MyOp', 'com.example'), false);
  assert.equal(canRun(a, 'Loop'), false);
  assert.equal(canRun(a, 'MatMul'), true);
  // A task graph's own op names (any name, DESIGN.md) are no slip of a known one.
  const tasks = parseTopology(rack('{include: [FooBar, fft_stage, Relu6, Sort, Add2]}'), 'tasks.yaml').devices[0]!;
  assert.equal(canRun(tasks, 'Relu6'), true);
  assert.equal(canRun(tasks, 'fft_stage'), true);
  assert.equal(canRun(tasks, 'MatMul'), false);
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
