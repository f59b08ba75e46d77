// KV-cache capacity of a placement: how many sequences of --context tokens the free memory of the
// devices owning state holds, and the search that raises it when the user asks (--min-sequences).

import type { KvCapacity } from '../plan/format.js';
import { fitsMemory } from './refine.js';
import { unitTime, type Placement, type PlacementProblem } from './problem.js';

/**
 * KV capacity: each state-owning device holds (capacity − weights − activations) / (its state
 * bytes per sequence) sequences; the plan holds the minimum. Activations are the peak a schedule
 * holds when one is given (`peak_activation_bytes` per device: the shipped plan's figure);
 * without one, the largest working set of a unit placed there (a floor, for comparing placements
 * before they are scheduled).
 */
export function kvMeter(p: PlacementProblem, context: number, batch: number): (device: Int32Array, peak?: ArrayLike<number>) => KvCapacity {
  const nd = p.device_ids.length;
  return (device, peak) => {
    const weights = new Float64Array(nd);
    const floor = new Float64Array(nd);
    const statePerSeq = new Float64Array(nd);
    for (let u = 0; u < p.unit_names.length; u++) {
      const d = device[u]!;
      weights[d]! += p.weight_bytes[u]!;
      floor[d] = Math.max(floor[d]!, p.activation_bytes[u]!);
      statePerSeq[d]! += p.state_bytes[u]! / Math.max(1, batch);
    }
    const devices: KvCapacity['devices'] = [];
    let sequences = Infinity;
    for (let d = 0; d < nd; d++) {
      if (statePerSeq[d]! <= 0) continue;
      const free = p.capacity_bytes[d]! - weights[d]! - (peak ? peak[d]! : floor[d]!);
      const seqs = Math.max(0, Math.floor(free / statePerSeq[d]!));
      devices.push({ id: p.device_ids[d]!, free_bytes: free, state_bytes_per_sequence: statePerSeq[d]!, sequences: seqs });
      sequences = Math.min(sequences, seqs);
    }
    return { sequences: Number.isFinite(sequences) ? sequences : 0, context, devices, moves: 0, asked: null, before: null, after: null };
  };
}

/** Units on different devices in two placements. */
export function countMoves(a: Int32Array, b: Int32Array): number {
  let k = 0;
  for (let u = 0; u < a.length; u++) if (a[u] !== b[u]) k++;
  return k;
}

/**
 * Raise KV capacity to `asked` (--min-sequences): units owning state on the device that caps it
 * move to devices with room — each time the move whose contention-free estimate costs the
 * objective least — until the plan holds `asked` or no move lifts it; the result is judged once,
 * as a candidate. Without --min-sequences nothing moves: capacity is a trade the user asks for,
 * never taken silently; plan.json shows the plan before and after and what it cost.
 */
export function liftKvCapacity(
  p: PlacementProblem,
  start: Placement,
  asked: number,
  measure: (device: Int32Array) => KvCapacity,
  estimate: (device: Int32Array, priority: Float64Array) => { value: number; placement: Placement },
): Placement {
  const nd = p.device_ids.length;
  let placement = start;
  let kv = measure(placement.device);
  for (let guard = 0; guard < p.unit_names.length && kv.sequences < asked; guard++) {
    const worst = kv.devices.reduce((a, b) => (b.sequences < a.sequences ? b : a), kv.devices[0]!);
    if (!worst) break;
    const wd = p.device_ids.indexOf(worst.id);
    let bestMove: { value: number; placement: Placement; kv: KvCapacity } | null = null;
    for (let u = 0; u < p.unit_names.length; u++) {
      if (placement.device[u] !== wd || p.state_bytes[u]! <= 0) continue;
      for (let d = 0; d < nd; d++) {
        if (d === wd || !Number.isFinite(unitTime(p, u, d))) continue;
        const device = Int32Array.from(placement.device);
        device[u] = d;
        if (!fitsMemory(p, device)) continue;
        const trial = measure(device);
        if (!liftsCapacity(trial, kv)) continue;
        const e = estimate(device, placement.start_s);
        if (!bestMove || e.value < bestMove.value * (1 - 1e-12)) bestMove = { ...e, kv: trial };
      }
    }
    if (!bestMove) break;
    placement = bestMove.placement;
    kv = bestMove.kv;
  }
  return placement;
}

/**
 * Whether capacity `a` beats `b`: compare the per-device sequence counts sorted ascending,
 * lexicographically — raise the smallest first, and when two devices tie at the smallest, raising
 * one of them still counts (the next move raises the other). Strict, so the search cannot cycle.
 */
function liftsCapacity(a: KvCapacity, b: KvCapacity): boolean {
  const x = a.devices.map((d) => d.sequences).sort((p, q) => p - q);
  const y = b.devices.map((d) => d.sequences).sort((p, q) => p - q);
  // Fewer owning devices pad with Infinity: an empty device holds no state and caps nothing.
  for (let k = 0; k < Math.max(x.length, y.length); k++) {
    const xa = x[k] ?? Infinity;
    const ya = y[k] ?? Infinity;
    if (xa !== ya) return xa > ya;
  }
  return false;
}
