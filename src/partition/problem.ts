// The placement problem every solver works on (heuristic, exact MILP, baselines, the benchmark's
// random DAGs): units (stages) with a compute time per device, values flowing between units, weight
// bytes per unit, device capacities, and a transfer-time function over the topology's routes.
// This is the classic heterogeneous DAG-scheduling model (HEFT, Topcuoglu et al. 2002): a device
// runs one unit at a time; a value moves once to each other device that reads it; transfers take
// route time and, in the solvers, do not contend (the simulator models contention).

export interface UnitValue {
  /** Value name (or a synthetic label), for the plan's transfers and explain. */
  name: string;
  producer: number;
  /** Consumer units, each once, ascending. */
  consumers: number[];
  bytes: number;
}

export interface PlacementProblem {
  unit_names: string[];
  device_ids: string[];
  /** units × devices, row-major: compute seconds of unit u on device d; Infinity = cannot run there. */
  time_s: Float64Array;
  values: UnitValue[];
  /** Weight bytes each unit needs on its device. */
  weight_bytes: Float64Array;
  /** State bytes owned by the device a unit runs on (KV caches its nodes write). */
  state_bytes: Float64Array;
  /** Largest live activation bytes of the unit while it runs (a memory floor on its device). */
  activation_bytes: Float64Array;
  capacity_bytes: Float64Array;
  /** Seconds to move `bytes` from device a to device b (0 when a == b). */
  transfer_s(a: number, b: number, bytes: number): number;
  /** Units in a topological order (every value's producer before its consumers). */
  order: Int32Array;
}

export interface Placement {
  /** Device index per unit. */
  device: Int32Array;
  start_s: Float64Array;
  finish_s: Float64Array;
  makespan_s: number;
}

/** Bytes a unit pins on its device for as long as the placement lasts: its weights and the state it owns. */
export function residentBytes(p: PlacementProblem, u: number): number {
  return p.weight_bytes[u]! + p.state_bytes[u]!;
}

export function unitTime(p: PlacementProblem, u: number, d: number): number {
  return p.time_s[u * p.device_ids.length + d]!;
}

/** Predecessor lists per unit, derived from the values (each predecessor once). */
export function unitPredecessors(p: PlacementProblem): number[][] {
  const preds: Set<number>[] = p.unit_names.map(() => new Set<number>());
  for (const v of p.values) for (const c of v.consumers) if (c !== v.producer) preds[c]!.add(v.producer);
  return preds.map((s) => [...s].sort((a, b) => a - b));
}

/** Values each unit reads, by unit. */
export function valuesReadBy(p: PlacementProblem): UnitValue[][] {
  const reads: UnitValue[][] = p.unit_names.map(() => []);
  for (const v of p.values) for (const c of v.consumers) if (c !== v.producer) reads[c]!.push(v);
  return reads;
}

/**
 * Times of a fixed assignment: units run in the total order given by (priority, topological
 * position) — each device runs its units in that order, each as soon as its inputs have arrived
 * and its device is free. Transfers start when the producer finishes and take route time (no
 * contention). With priority = the start times of a valid schedule, the order is consistent with
 * the DAG and this reproduces that schedule or improves it. A priority inconsistent with the DAG
 * falls back to a ready list. Infinity makespan when a unit sits on a device that cannot run it.
 */
export class Evaluator {
  private readonly reads: UnitValue[][];
  private readonly preds: number[][];
  private readonly pos: Int32Array;
  private readonly idx: number[];

  constructor(readonly p: PlacementProblem) {
    this.reads = valuesReadBy(p);
    this.preds = unitPredecessors(p);
    this.pos = new Int32Array(p.unit_names.length);
    p.order.forEach((u, k) => (this.pos[u] = k));
    this.idx = Array.from(p.order);
  }

  run(device: Int32Array, priority?: Float64Array): Placement {
    const p = this.p;
    const n = p.unit_names.length;
    const order = this.idx;
    const pos = this.pos;
    if (priority) order.sort((a, b) => priority[a]! - priority[b]! || pos[a]! - pos[b]!);
    else order.sort((a, b) => pos[a]! - pos[b]!);
    const start = new Float64Array(n);
    const finish = new Float64Array(n);
    const free = new Float64Array(p.device_ids.length);
    const done = new Uint8Array(n);
    let makespan = 0;
    const place = (u: number): void => {
      const d = device[u]!;
      let ready = 0;
      for (const v of this.reads[u]!) {
        const src = device[v.producer]!;
        const arrive = finish[v.producer]! + (src === d ? 0 : p.transfer_s(src, d, v.bytes));
        if (arrive > ready) ready = arrive;
      }
      const s = ready > free[d]! ? ready : free[d]!;
      start[u] = s;
      finish[u] = s + unitTime(p, u, d);
      free[d] = finish[u]!;
      if (finish[u]! > makespan) makespan = finish[u]!;
      done[u] = 1;
    };
    let consistent = true;
    for (const u of order) {
      for (const q of this.preds[u]!) if (!done[q]) { consistent = false; break; }
      if (!consistent) break;
      place(u);
    }
    if (!consistent) {
      // Ready list in priority order.
      done.fill(0);
      free.fill(0);
      makespan = 0;
      const remaining = new Set(order);
      while (remaining.size > 0) {
        for (const u of remaining) {
          if (this.preds[u]!.every((q) => done[q])) {
            place(u);
            remaining.delete(u);
            break;
          }
        }
      }
    }
    return { device, start_s: start, finish_s: finish, makespan_s: makespan };
  }
}

/** One-shot evaluation (see Evaluator). */
export function evaluate(p: PlacementProblem, device: Int32Array, priority?: Float64Array): Placement {
  return new Evaluator(p).run(device, priority);
}
