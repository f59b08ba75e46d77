// Throughput objective: cut the unit order into contiguous pipeline segments, one device each,
// minimising the bottleneck — the slowest segment's compute or the slowest boundary transfer,
// which in a pipeline overlap (PipeDream, Narayanan et al. SOSP 2019, §3.1:
// A(j, m) = min over i, m' of max(A(i, m − m'), 2·C(i), T(i+1 → j, m'))). Heterogeneous devices
// make the device choice part of the state; we fix a chain order of the devices (several are
// tried: the topology's order, fastest first, slowest first) and run the DP over
// (units covered, devices of the chain considered), each segment on one device of the chain,
// later segments on later devices, devices may be skipped. O(units² × devices) per chain.
// Tensor parallelism inside a segment is not modelled yet (the plan format has one device per unit).

import { residentBytes, unitTime, type PlacementProblem } from './problem.js';

export interface PipelineResult {
  device: Int32Array;
  bottleneck_s: number;
  segments: { device: string; units: [number, number]; compute_s: number; transfer_in_s: number }[];
  chain: string;
}

export function pipelinePartition(p: PlacementProblem, _stageOfUnit?: number[]): PipelineResult {
  const n = p.unit_names.length;
  const nd = p.device_ids.length;
  // Prefix sums of unit time per device and of pinned bytes; boundary bytes between prefix and suffix.
  const prefT: Float64Array[] = [];
  for (let d = 0; d < nd; d++) {
    const a = new Float64Array(n + 1);
    for (let k = 0; k < n; k++) a[k + 1] = a[k]! + unitTime(p, p.order[k]!, d);
    prefT.push(a);
  }
  const pos = new Int32Array(n);
  p.order.forEach((u, k) => (pos[u] = k));
  const prefB = new Float64Array(n + 1);
  for (let k = 0; k < n; k++) prefB[k + 1] = prefB[k]! + residentBytes(p, p.order[k]!);
  // cross[k] = bytes of values produced before position k and read at or after it (the cut at k).
  const cross = new Float64Array(n + 1);
  for (const v of p.values) {
    const a = pos[v.producer]!;
    let last = a;
    for (const c of v.consumers) last = Math.max(last, pos[c]!);
    for (let k = a + 1; k <= last; k++) cross[k]! += v.bytes;
  }
  const chains: { name: string; order: number[] }[] = [{ name: 'topology order', order: [...Array(nd).keys()] }];
  const speed = (d: number): number => prefT[d]![n]!;
  chains.push({ name: 'fastest first', order: [...Array(nd).keys()].sort((a, b) => speed(a) - speed(b) || a - b) });
  chains.push({ name: 'slowest first', order: [...Array(nd).keys()].sort((a, b) => speed(b) - speed(a) || a - b) });

  // Segment boundaries: every position, or — past MAX_CUTS units — every ⌈n / MAX_CUTS⌉-th, so the
  // DP stays O(MAX_CUTS² × devices) on graphs of thousands of units.
  const step = Math.max(1, Math.ceil(n / MAX_CUTS));
  const cuts: number[] = [];
  for (let j = 0; j < n; j += step) cuts.push(j);
  cuts.push(n);
  let best: PipelineResult | null = null;
  for (const chain of chains) {
    const res = chainDp(p, chain.order, prefT, prefB, cross, cuts);
    if (res && (!best || res.bottleneck_s < best.bottleneck_s)) best = { ...res, chain: chain.name };
  }
  if (!best) {
    // No chain fits everything in memory: fall back to everything on the device that runs it fastest.
    const device = new Int32Array(n);
    return { device, bottleneck_s: Infinity, segments: [], chain: 'none fits' };
  }
  return best;
}

/** Most segment boundaries the DP considers (see pipelinePartition). */
const MAX_CUTS = 512;

function chainDp(
  p: PlacementProblem,
  chain: number[],
  prefT: Float64Array[],
  prefB: Float64Array,
  cross: Float64Array,
  cuts: number[],
): Omit<PipelineResult, 'chain'> | null {
  const n = p.unit_names.length;
  const m = chain.length;
  // A[k][j]: best bottleneck covering the first j units with segments on chain devices < k;
  // the last segment's device is remembered to price the next boundary transfer.
  const A = Array.from({ length: m + 1 }, () => new Float64Array(n + 1).fill(Infinity));
  const from = Array.from({ length: m + 1 }, () => new Int32Array(n + 1).fill(-1));
  const lastDev = Array.from({ length: m + 1 }, () => new Int32Array(n + 1).fill(-1));
  for (let k = 0; k <= m; k++) A[k]![0] = 0;
  for (let k = 1; k <= m; k++) {
    const d = chain[k - 1]!;
    const row = A[k]!;
    const prev = A[k - 1]!;
    for (let cj = 1; cj < cuts.length; cj++) {
      const j = cuts[cj]!;
      // Skip device d.
      row[j] = prev[j]!;
      from[k]![j] = -2;
      lastDev[k]![j] = lastDev[k - 1]![j]!;
      for (let ci = 0; ci < cj; ci++) {
        const i = cuts[ci]!;
        if (prev[i] === Infinity) continue;
        const compute = prefT[d]![j]! - prefT[d]![i]!;
        if (!Number.isFinite(compute)) continue;
        const pinned = prefB[j]! - prefB[i]!;
        if (pinned > p.capacity_bytes[d]!) continue;
        const src = lastDev[k - 1]![i]!;
        const transfer = i === 0 || src < 0 ? 0 : p.transfer_s(src, d, cross[i]!);
        const b = Math.max(prev[i]!, compute, transfer);
        if (b < row[j]! - 1e-15) {
          row[j] = b;
          from[k]![j] = i;
          lastDev[k]![j] = d;
        }
      }
    }
  }
  if (A[m]![n] === Infinity) return null;
  const device = new Int32Array(n);
  const segments: PipelineResult['segments'] = [];
  let j = n;
  for (let k = m; k > 0 && j > 0; k--) {
    const i = from[k]![j]!;
    if (i === -2) continue;
    const d = chain[k - 1]!;
    for (let q = i; q < j; q++) device[p.order[q]!] = d;
    const src = lastDev[k - 1]![i]!;
    segments.unshift({
      device: p.device_ids[d]!,
      units: [i, j - 1],
      compute_s: prefT[d]![j]! - prefT[d]![i]!,
      transfer_in_s: i === 0 || src < 0 ? 0 : p.transfer_s(src, d, cross[i]!),
    });
    j = i;
  }
  return { device, bottleneck_s: A[m]![n]!, segments };
}
