// The cost model's time formulas, each written once (DESIGN.md "Cost model"). Every pass that
// needs a time (classify, partition, schedule, simulate) calls these.

import { GROUPED_MOE_KERNELS, launchesFused } from './fusion.js';
import type { Device } from '../topology/index.js';
import { peakFlops } from '../topology/index.js';
import type { OpClass } from './flops.js';

/** What the time model needs to know about one node (or an abstract task). */
export interface WorkItem {
  flops: number;
  /** Bytes read plus bytes written in device memory. */
  bytes: number;
  /** Element type the arithmetic runs in (decides which peak FLOP/s applies). */
  dtype: string;
  op_class: OpClass;
  /** Explicit seconds per device id or kind (abstract task graphs): the node runs only where a key matches. */
  time_s?: Record<string, number>;
  /** Measured seconds per device kind (calibration): replaces the estimate on that kind only. */
  measured_s?: Record<string, number>;
  /** Runs inside its producer's kernel where the device fuses (src/cost/fusion.ts): no launch of its own. */
  fused?: boolean;
  /**
   * The routed layer whose grouped kernels the node (an expert's dispatch, body or combine) runs
   * in: on a device that fuses it launches nothing of its own, and a device running any of the
   * layer's experts launches them once (groupedLaunchSeconds; src/partition/problem.ts
   * groupedLaunchExtra; src/cost/fusion.ts, "Grouped experts").
   */
  launch_group?: number;
  /** Output tiles of a GEMM or attention kernel (src/cost/flops.ts nodeTiles); absent or 0 when not tiled. */
  tiles?: number;
  /** Ways a GEMM's K may be split across blocks when its output tiles cannot fill the device. */
  k_splits?: number;
  /** Bytes of `bytes` saved by fusion (an input read in registers, an output never written): moved again on a device that does not fuse. */
  fused_bytes?: number;
}

/** A node's costs as the profile pass measures them (passes/profile.ts). */
export interface NodeCost extends WorkItem {
  bytes_read: number;
  bytes_written: number;
  /** Probability the node runs with data in a step (an MoE expert's body: src/moe/expected.ts); 1 when absent. FLOPs and bytes are already scaled by it. */
  activity?: number;
  /** Bytes of weights the node reads (initializers and Constant-node tensors). */
  param_bytes: number;
  /** FLOPs per byte moved (0 when nothing moves). */
  intensity: number;
}

/** Efficiency corrections fitted by calibration: device kind → op class → factor (1 = catalog). */
export type EfficiencyTable = Record<string, Partial<Record<OpClass, number>>>;

/**
 * Roofline time of work on a device (Williams, Waterman, Patterson 2009, with a launch overhead):
 *   t = max(flops / (peak_flops[dtype] · eff[class] · calibrated_factor), bytes / (mem_bw · mem_eff)) + launch,
 * with eff[class] the device's efficiency for the op class (catalog or rack YAML; its compute
 * efficiency when the class has none) and mem_eff the fraction of datasheet bandwidth achieved,
 * where a node fused into its producer's kernel (src/cost/fusion.ts) launches nothing on a device
 * that fuses, nor does a routed expert's node there (its layer's experts run as grouped kernels,
 * launched once per device: groupedLaunchSeconds), and the tensors a fused chain hands on in
 * registers are not memory traffic there (bytes counts them out; a device that does not fuse
 * moves `fused_bytes` too).
 * Explicit times win: a key naming the device id, else its kind (DESIGN.md, hxc-graph/v1 `time`).
 * A work item with explicit times but no key for this device cannot run there: Infinity.
 * A calibrated measurement for the device's kind replaces the estimate. Work with no FLOPs and no
 * bytes (Constant, views, Shape) launches nothing and costs 0.
 */
export function computeTime(w: WorkItem, d: Device, eff?: EfficiencyTable): number {
  if (w.time_s) {
    const t = w.time_s[d.id] ?? w.time_s[d.kind];
    return t === undefined ? Infinity : t;
  }
  const measured = w.measured_s?.[d.kind];
  if (measured !== undefined) return measured;
  // No work, no kernel: constants, views and shape queries are resolved when the program is built.
  if (!doesWork(w)) return 0;
  const compute = computeSeconds(w, d, eff?.[d.kind]?.[w.op_class] ?? 1);
  return Math.max(compute, memorySeconds(w, d)) + launchSeconds(w, d);
}

/** Whether the work item runs a kernel at all: FLOPs or bytes to move (constants, views and shape queries do not). */
export function doesWork(w: Pick<WorkItem, 'flops' | 'bytes' | 'fused_bytes'>): boolean {
  return w.flops !== 0 || w.bytes !== 0 || !!w.fused_bytes;
}

/** The launch term of computeTime: none for a fused node or a grouped expert's node on a fusing kind, else one. */
function launchSeconds(w: Pick<WorkItem, 'fused' | 'launch_group'>, d: Device): number {
  if (!launchesFused(d.kind)) return d.launch_s;
  return w.fused || w.launch_group !== undefined ? 0 : d.launch_s;
}

/**
 * Seconds a device spends launching one routed layer's grouped expert kernels, once per layer it
 * runs experts of, whatever its share of them (src/cost/fusion.ts, "Grouped experts"): on a kind
 * that fuses, GROUPED_MOE_KERNELS launches; elsewhere the experts' nodes launch one by one (their
 * own launches are in their times).
 */
export function groupedLaunchSeconds(d: Device): number {
  return launchesFused(d.kind) ? GROUPED_MOE_KERNELS * d.launch_s : 0;
}

/** The memory term of the roofline: bytes moved (with what fusion saves, on a kind that does not fuse) at the achieved bandwidth. */
export function memorySeconds(w: Pick<WorkItem, 'bytes' | 'fused_bytes'>, d: Device): number {
  const bytes = launchesFused(d.kind) ? w.bytes : w.bytes + (w.fused_bytes ?? 0);
  return bytes > 0 ? bytes / (d.memory_bandwidth_bytes_per_s * d.memory_efficiency) : 0;
}

/** Whether the node is compute-bound on the device: its compute term is the larger (the roofline's side it sits on). */
export function computeBound(w: WorkItem, d: Device, eff?: EfficiencyTable): boolean {
  return w.flops > 0 && computeSeconds(w, d, eff?.[d.kind]?.[w.op_class] ?? 1) >= memorySeconds(w, d);
}

/**
 * The compute term of the roofline: FLOPs at the device's peak for the dtype, its efficiency for
 * the op class, the share of its SMs the kernel's tiles fill, and a calibrated factor (1 = catalog).
 * Calibration (src/cost/calibrate.ts) fits `factor` against this same term.
 */
export function computeSeconds(w: Pick<WorkItem, 'flops' | 'dtype' | 'op_class' | 'tiles' | 'k_splits'>, d: Device, factor = 1): number {
  if (w.flops <= 0) return 0;
  const achieved = (d.class_efficiency as Partial<Record<string, number>>)[w.op_class] ?? d.efficiency;
  return w.flops / (cachedPeak(d, w.dtype) * achieved * factor * waveEfficiency(w.tiles, w.k_splits, d.compute_units));
}

/**
 * Wave quantization (NVIDIA Deep Learning Performance Guide, "Matrix Multiplication Background",
 * §"Wave Quantization"): a kernel's tiles run in waves of one tile per SM, so T tiles on U SMs
 * take ⌈T/U⌉ waves and use T / (⌈T/U⌉·U) of the machine. A GEMM with fewer output tiles than SMs
 * splits K up to `kSplits` ways to fill them (src/cost/flops.ts nodeTiles). A 128-token prompt's
 * attention (1 batch × 32 heads × 1 query block = 32 tiles) fills a quarter of an H100's 132 SMs;
 * a 2,048-token one (512 tiles, 4 waves) 97%. 1 when the tiles or the device's units are unknown.
 */
export function waveEfficiency(tiles: number | undefined, kSplits: number | undefined, units: number | null): number {
  if (!tiles || !units) return 1;
  const t = tiles * Math.max(1, Math.min(Math.floor(units / tiles), kSplits ?? 1));
  return t / (Math.ceil(t / units) * units);
}

/** peakFlops resolves dtype names and fallbacks; memoised per device because it is called per node. */
const peakCache = new WeakMap<Device, Map<string, number>>();
function cachedPeak(d: Device, dtype: string): number {
  let m = peakCache.get(d);
  if (!m) peakCache.set(d, (m = new Map()));
  let v = m.get(dtype);
  if (v === undefined) m.set(dtype, (v = peakFlops(d, dtype)));
  return v;
}

/** Arithmetic intensity at which a device turns from memory- to compute-bound (the roofline's ridge point), FLOP/byte. */
export function ridgePoint(d: Device, dtype: string): number {
  return (cachedPeak(d, dtype) * d.efficiency) / (d.memory_bandwidth_bytes_per_s * d.memory_efficiency);
}
