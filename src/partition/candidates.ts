// The simple plans a user would otherwise write by hand, as device assignments the judge can
// measure: everything on one device; everything on one accelerator with what it cannot run on the
// fastest device that can (onnxruntime's execution-provider fallback, OpenVINO HETERO's priority
// list); the even pipeline split over the rack's identical accelerators (equal layers per device,
// what vLLM's and Megatron's pipeline parallelism do by hand). Each is a candidate the shipped plan
// must beat, and a baseline plan.json reports with its simulated latency and throughput.

import { fitsMemory } from './refine.js';
import { unitPredecessors, unitTime, type PlacementProblem } from './problem.js';
import { Heap } from '../util/heap.js';

/**
 * Every unit on device d, or null when d cannot run or hold them all. Units the user holds
 * elsewhere (`held`: --assign pins, --pin-experts) stay where they may run, the fastest such device
 * (a pinned unit runs only on its pin): the one-device plan a user with pins writes by hand.
 */
export function allOn(p: PlacementProblem, d: number, held?: Uint8Array): Int32Array | null {
  const n = p.unit_names.length;
  const nd = p.device_ids.length;
  const device = new Int32Array(n).fill(d);
  for (let u = 0; u < n; u++) {
    if (Number.isFinite(unitTime(p, u, d))) continue;
    if (!held?.[u]) return null;
    let best = -1;
    for (let e = 0; e < nd; e++) if (Number.isFinite(unitTime(p, u, e)) && (best < 0 || unitTime(p, u, e) < unitTime(p, u, best))) best = e;
    if (best < 0) return null;
    device[u] = best;
  }
  return fitsMemory(p, device) ? device : null;
}

/**
 * Every unit on device d except those d cannot run, which go to the device that runs each fastest
 * (onnxruntime's CPU fallback, generalised). Null when that does not fit in memory, or when d
 * runs everything (then it is `allOn`).
 */
export function onWithFallback(p: PlacementProblem, d: number): Int32Array | null {
  const n = p.unit_names.length;
  const nd = p.device_ids.length;
  const device = new Int32Array(n).fill(d);
  let fallbacks = 0;
  for (let u = 0; u < n; u++) {
    if (Number.isFinite(unitTime(p, u, d))) continue;
    let best = -1;
    for (let e = 0; e < nd; e++) if (Number.isFinite(unitTime(p, u, e)) && (best < 0 || unitTime(p, u, e) < unitTime(p, u, best))) best = e;
    if (best < 0) return null;
    device[u] = best;
    fallbacks++;
  }
  return fallbacks > 0 && fitsMemory(p, device) ? device : null;
}

/**
 * Contiguous layers over `group` (device indices, in order), as equal in count as they divide:
 * layer ℓ of L goes to group[⌊ℓ·k/L⌋] with k = min(|group|, L). Units its device cannot run fall
 * back as in `onWithFallback`. Null when it does not fit.
 */
export function evenSplit(p: PlacementProblem, layerOfUnit: ArrayLike<number>, layers: number, group: number[]): Int32Array | null {
  const n = p.unit_names.length;
  const nd = p.device_ids.length;
  if (group.length === 0 || layers === 0) return null;
  const k = Math.min(group.length, layers);
  const device = new Int32Array(n);
  for (let u = 0; u < n; u++) {
    const d = group[Math.min(k - 1, Math.floor((layerOfUnit[u]! * k) / layers))]!;
    if (Number.isFinite(unitTime(p, u, d))) {
      device[u] = d;
      continue;
    }
    let best = -1;
    for (let e = 0; e < nd; e++) if (Number.isFinite(unitTime(p, u, e)) && (best < 0 || unitTime(p, u, e) < unitTime(p, u, best))) best = e;
    if (best < 0) return null;
    device[u] = best;
  }
  return fitsMemory(p, device) ? device : null;
}

/** Unit indices grouped by the value of `key` (first-seen order), only groups of two or more. */
export function groupBy(n: number, key: (u: number) => string | null): number[][] {
  const m = new Map<string, number[]>();
  for (let u = 0; u < n; u++) {
    const k = key(u);
    if (k === null) continue;
    (m.get(k) ?? m.set(k, []).get(k)!).push(u);
  }
  return [...m.values()].filter((g) => g.length > 1);
}

/**
 * A plan's own step order as a priority (`--assign plan.json`): each device's units as the plan
 * lists them, merged across devices by start time into one order that also keeps every dependency
 * (a unit of no duration and its reader start together: the reader comes after). A list schedule
 * in it runs each device's units in the plan's order. `start_s`, `lane` and `position` are per
 * unit: its step's start (NaN when the plan does not run it), the plan's device list holding it
 * and its place there. Units the plan does not run come last, in dependency order.
 */
export function stepOrder(p: PlacementProblem, start_s: Float64Array, lane: Int32Array, position: Int32Array): Float64Array {
  const n = p.unit_names.length;
  const preds = unitPredecessors(p);
  // Each unit waits on its inputs and on the unit before it in its device's list.
  const byLane = new Map<number, number[]>();
  for (let u = 0; u < n; u++) if (lane[u]! >= 0 && !Number.isNaN(start_s[u]!)) (byLane.get(lane[u]!) ?? byLane.set(lane[u]!, []).get(lane[u]!)!).push(u);
  const before = new Int32Array(n).fill(-1);
  for (const list of byLane.values()) {
    list.sort((a, b) => position[a]! - position[b]! || a - b);
    for (let k = 1; k < list.length; k++) before[list[k]!] = list[k - 1]!;
  }
  const succs: number[][] = Array.from({ length: n }, () => []);
  const waiting = new Int32Array(n);
  for (let u = 0; u < n; u++) {
    for (const q of preds[u]!) {
      succs[q]!.push(u);
      waiting[u]!++;
    }
    if (before[u]! >= 0) {
      succs[before[u]!]!.push(u);
      waiting[u]!++;
    }
  }
  const key = (u: number): number => (Number.isNaN(start_s[u]!) ? Infinity : start_s[u]!);
  const heap = new Heap<number>(
    (a, b) =>
      key(a) < key(b) ||
      (key(a) === key(b) && (lane[a]! < lane[b]! || (lane[a] === lane[b] && (position[a]! < position[b]! || (position[a] === position[b] && a < b))))),
  );
  for (let u = 0; u < n; u++) if (waiting[u] === 0) heap.push(u);
  const rank = new Float64Array(n).fill(Infinity);
  let next = 0;
  while (heap.size > 0) {
    const u = heap.pop()!;
    rank[u] = next++;
    for (const s of succs[u]!) if (--waiting[s]! === 0) heap.push(s);
  }
  return rank;
}
