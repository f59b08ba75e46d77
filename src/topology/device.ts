// Questions the passes ask of a device: its peak FLOP/s for a dtype (with the fallbacks a
// datasheet implies), whether it may run an op, which devices are identical.

import { normalizeDtype, type Device, type Topology } from './load.js';

/** Where to look when a device does not list a dtype: the nearest format it surely runs at least as fast. */
const FLOPS_FALLBACK: Readonly<Record<string, readonly string[]>> = {
  fp64: ['fp64', 'fp32'],
  fp32: ['fp32'],
  tf32: ['tf32', 'fp32'],
  fp16: ['fp16', 'bf16', 'fp32'],
  bf16: ['bf16', 'fp16', 'fp32'],
  fp8: ['fp8', 'fp16', 'bf16', 'fp32'],
  int8: ['int8', 'fp8', 'fp16', 'bf16', 'fp32'],
  fp4: ['fp4', 'fp8', 'fp16', 'bf16', 'fp32'],
  int4: ['int4', 'int8', 'fp8', 'fp16', 'bf16', 'fp32'],
};

/**
 * Peak FLOP/s of `device` for `dtype` (hxc names such as `bf16`, or ONNX names such as `float16`,
 * `bfloat16`, `float`). Missing dtypes fall back along FLOPS_FALLBACK (int8 → fp8 → fp16 → bf16 →
 * fp32); other dtypes (int64, bool, …) use fp32; a device with none of those uses its slowest rate.
 */
export function peakFlops(device: Pick<Device, 'peak_flops'>, dtype: string): number {
  const chain = FLOPS_FALLBACK[normalizeDtype(dtype) ?? 'fp32'] ?? ['fp32'];
  for (const name of chain) {
    const value = device.peak_flops[name];
    if (value !== undefined && value > 0) return value;
  }
  const rates = Object.values(device.peak_flops).filter((v) => v > 0);
  return rates.length > 0 ? Math.min(...rates) : 0;
}

/** The ONNX default domain has two spellings. */
function normalizeDomain(domain: string): string {
  return domain === 'ai.onnx' ? '' : domain;
}

/** `Gather` matches in any domain; `com.microsoft.FastGelu` only in that domain; `com.microsoft.*` any op of it. */
function opMatches(entry: string, op: string, domain: string): boolean {
  const dot = entry.lastIndexOf('.');
  if (dot < 0) return entry === op;
  const entryDomain = normalizeDomain(entry.slice(0, dot));
  const entryOp = entry.slice(dot + 1);
  return entryDomain === domain && (entryOp === '*' || entryOp === op);
}

/**
 * The capability question (ONNX Runtime's GetCapability, asked of one device): may `device` run
 * `op` of `domain` ('' or 'ai.onnx' for ONNX)? The exclude list wins; an include list restricts.
 */
export function canRun(device: Pick<Device, 'ops'>, op: string, domain = ''): boolean {
  // Asked per node and device (hundreds of thousands of times on a large graph): answered once per op set, domain and op.
  let byDomain = canRunMemo.get(device.ops);
  if (!byDomain) canRunMemo.set(device.ops, (byDomain = new Map()));
  let byOp = byDomain.get(domain);
  if (!byOp) byDomain.set(domain, (byOp = new Map()));
  let answer = byOp.get(op);
  if (answer === undefined) {
    const d = normalizeDomain(domain);
    answer = !device.ops.exclude.some((e) => opMatches(e, op, d)) && (device.ops.include === null || device.ops.include.some((e) => opMatches(e, op, d)));
    byOp.set(op, answer);
  }
  return answer;
}
const canRunMemo = new WeakMap<Device['ops'], Map<string, Map<string, boolean>>>();

/**
 * Devices that are interchangeable for planning: same kind, part, numbers and op set. One home for
 * the idea (the partitioner prices a class once; tensor parallelism and the even pipeline split
 * take their groups from it).
 */
export function deviceClassKey(d: Device): string {
  return JSON.stringify([
    d.kind,
    d.model,
    d.peak_flops,
    d.memory_capacity_bytes,
    d.memory_bandwidth_bytes_per_s,
    d.launch_s,
    d.efficiency,
    Object.entries(d.class_efficiency).sort(),
    d.memory_efficiency,
    d.compute_units,
    d.ops,
  ]);
}

/**
 * The rack's largest class of identical accelerators (GPU, Gaudi-class, dataflow), in topology
 * order; ties go to the faster class (more peak FLOP/s at fp16), then the earlier one. Empty
 * when the rack has none.
 */
export function identicalAccelerators(topo: Topology, among: (d: Device) => boolean = () => true): Device[] {
  const classes = new Map<string, Device[]>();
  for (const d of topo.devices) {
    if (d.kind !== 'gpu' && d.kind !== 'accel' && d.kind !== 'dataflow') continue;
    if (!among(d)) continue;
    const key = deviceClassKey(d);
    (classes.get(key) ?? classes.set(key, []).get(key)!).push(d);
  }
  let best: Device[] = [];
  for (const g of classes.values()) {
    if (g.length > best.length || (g.length === best.length && best.length > 0 && peakFlops(g[0]!, 'float16') > peakFlops(best[0]!, 'float16'))) best = g;
  }
  return best;
}
