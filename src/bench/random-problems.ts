// Random heterogeneous placement problems for the quality benchmark and tests: layered DAGs whose
// units have random work, devices with different speeds (and units some devices cannot run),
// values of random size, and a route matrix of bandwidths and latencies. Seeded: the same seed
// gives the same problem.

import type { PlacementProblem, UnitValue } from '../partition/problem.js';

export { mulberry32 } from '../util/stats.js';
import { mulberry32 } from '../util/stats.js';

export interface RandomSpec {
  seed: number;
  units: number;
  devices: number;
  /** Typical bytes of a value ÷ typical bandwidth ÷ typical unit time: the communication-to-computation ratio (CCR). */
  ccr: number;
}

export function randomProblem(spec: RandomSpec): PlacementProblem {
  const r = mulberry32(spec.seed);
  const n = spec.units;
  const nd = spec.devices;
  // Device speeds spread over an order of magnitude (a GPU next to a CPU next to an accelerator).
  const speed = Array.from({ length: nd }, (_, d) => (d === 0 ? 1 : 0.1 + 0.9 * r()));
  const time_s = new Float64Array(n * nd);
  const work = Array.from({ length: n }, () => 0.5 + r() * 1.5);
  for (let u = 0; u < n; u++) {
    for (let d = 0; d < nd; d++) {
      // Affinity noise: each unit suits some devices better (ops differ in how well they map).
      time_s[u * nd + d] = (work[u]! / speed[d]!) * (0.7 + 0.6 * r());
      if (d > 0 && r() < 0.08) time_s[u * nd + d] = Infinity;
    }
  }
  // Layered DAG: each unit reads 1–3 units from earlier layers.
  const values: UnitValue[] = [];
  const consumers: number[][] = Array.from({ length: n }, () => []);
  for (let u = 1; u < n; u++) {
    const k = 1 + Math.floor(r() * Math.min(3, u));
    const preds = new Set<number>();
    for (let j = 0; j < k; j++) preds.add(Math.max(0, u - 1 - Math.floor(r() * Math.min(u, 5))));
    for (const p of preds) consumers[p]!.push(u);
  }
  const bandwidth = 1; // bytes per second on the reference link
  for (let u = 0; u < n; u++) {
    if (consumers[u]!.length === 0) continue;
    values.push({ name: `v${u}`, producer: u, consumers: consumers[u]!.sort((a, b) => a - b), bytes: spec.ccr * work[u]! * bandwidth * (0.5 + r()) });
  }
  const bw = Array.from({ length: nd }, () => Array.from({ length: nd }, () => bandwidth * (0.5 + r())));
  const lat = Array.from({ length: nd }, () => Array.from({ length: nd }, () => 0.01 * r()));
  return {
    unit_names: Array.from({ length: n }, (_, u) => `u${u}`),
    device_ids: Array.from({ length: nd }, (_, d) => `d${d}`),
    time_s,
    values,
    weight_bytes: new Float64Array(n),
    state_bytes: new Float64Array(n),
    activation_bytes: new Float64Array(n),
    capacity_bytes: new Float64Array(nd).fill(Infinity),
    transfer_s: (a, b, bytes) => (a === b ? 0 : lat[a]![b]! + bytes / Math.min(bw[a]![b]!, bw[b]![a]!)),
    order: Int32Array.from({ length: n }, (_, u) => u),
  };
}
