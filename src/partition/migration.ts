// Migration: what it costs to go from a running plan to a new one (`hxc replan`). A unit that
// changes device carries its weights and the state it owns over the rack's route from its old
// device to its new one; a unit whose device is gone (or that the old plan did not have) is loaded
// afresh over the fastest route into its new device. Transfers into different devices proceed in
// parallel, those into one device one after another (its links are shared by them), so the
// migration takes the longest per-device sum. A plan is then worth its time per request plus the
// migration spread over the requests it will serve (`--amortize N`): a move is made only when it
// pays back within N requests, or when it must be made.

import type { Objective } from '../plan/format.js';
import { residentBytes, unitTime, type PlacementProblem } from './problem.js';
import { formatSeconds } from '../util/format.js';

/** What `hxc replan` hands the partitioner (src/pass/pass.ts PlanOptions.replan). */
export interface ReplanInput {
  /** The running plan's placement: source node name → device id (plan.json `assignment`). */
  assignment: Record<string, string>;
  /** Requests the new plan serves before the next replan: migration time is spread over them. */
  amortize: number;
  /** At most this many optional moves (a unit whose device is gone moves anyway); null: no limit. */
  max_moves: number | null;
  /** At most this many bytes moved by optional moves; null: no limit. */
  migration_budget_bytes: number | null;
  /** A plan that moves more units ships only if it is this much better per request (0.01: 1%). */
  min_gain: number;
  /**
   * When each node (by name) started in the running plan's schedule — its step's start: the order
   * on a device. By node, not unit: the new plan's units are cut anew (another stage cut, another
   * calibration) and a unit name may cover other nodes.
   */
  start_s?: Record<string, number>;
  /**
   * Stages of the cut the running plan shipped on, when it weighed two (plan.json
   * estimate.stage_cuts): the replan plans on that cut alone, so that the running plan is judged
   * on its own units, once.
   */
  cut_stages?: number | null;
  /** The running plan, as delta.json names it. */
  origin?: { dir: string; plan_sha256: string; latency_s: number; throughput_per_s: number };
}

export interface MigrationCost {
  /** Units on another device than in the running plan, forced ones included. */
  moves: number;
  /** Units whose running device is gone (or that the running plan did not have). */
  forced: number;
  bytes: number;
  /** Bytes of the optional moves alone (what --migration-budget limits). */
  optional_bytes: number;
  /** Time to move them over the routes (the busiest receiving device's sum). */
  seconds: number;
}

/**
 * Where most of these nodes ran under `assignment` (node → device), the first device in name order
 * on a tie; null when it ran none of them. A unit's device in a running plan (replan) and in plan A
 * (hxc diff) alike.
 */
export function majorityDevice(names: readonly string[], assignment: Readonly<Record<string, string>>): string | null {
  const count = new Map<string, number>();
  for (const name of names) {
    const id = assignment[name];
    if (id !== undefined) count.set(id, (count.get(id) ?? 0) + 1);
  }
  let best: string | null = null;
  let most = 0;
  for (const [id, c] of [...count].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (c > most) {
      best = id;
      most = c;
    }
  }
  return best;
}

export interface MovedUnit {
  unit: string;
  u: number;
  from: string | null;
  gone: boolean;
  to: string;
  bytes: number;
  seconds: number;
}

export class Migration {
  /** Per unit, its device index in the running plan (-1: gone, or new). */
  readonly previous: Int32Array;
  /** Per unit, its device id in the running plan (which may be gone); null for a unit it did not have. */
  readonly previousId: (string | null)[];
  private readonly p: PlacementProblem;
  private readonly input: ReplanInput;

  /**
   * Per unit, where its nodes ran: per running device index (-1: gone, or not in the running plan)
   * the bytes those nodes carry, how many they are, and that device's id (null for a new node).
   */
  private readonly ran: { from: number; id: string | null; bytes: number; nodes: number }[][];

  /** `nodeBytes`: per unit, per node (as `unitNodes`), the resident bytes it carries (src/partition/build.ts node_resident_bytes). */
  constructor(
    p: PlacementProblem,
    private readonly unitNodes: readonly (readonly string[])[],
    input: ReplanInput,
    nodeBytes: readonly (readonly number[])[],
  ) {
    this.p = p;
    this.input = input;
    const index = new Map(p.device_ids.map((id, d) => [id, d]));
    // What moves is counted by node: a unit recut since the running plan (another stage cut,
    // another fusion rule) may have run on two devices, and its nodes away from where it goes move
    // too, with their bytes, though its majority stays.
    this.ran = unitNodes.map((names, u) => {
      const groups = new Map<string, { from: number; id: string | null; bytes: number; nodes: number }>();
      names.forEach((name, k) => {
        const id = input.assignment[name] ?? null;
        const key = id ?? '';
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { from: id === null ? -1 : (index.get(id) ?? -1), id, bytes: 0, nodes: 0 }));
        g.bytes += nodeBytes[u]![k]!;
        g.nodes++;
      });
      return [...groups.values()].sort((a, b) => b.nodes - a.nodes || ((a.id ?? '') < (b.id ?? '') ? -1 : 1));
    });
    // A unit's running device: where most of its nodes ran, the first in name order on a tie (its
    // first group that ran in the plan: majorityDevice, as hxc diff reads plan A).
    this.previousId = this.ran.map((groups) => groups.find((g) => g.id !== null)?.id ?? null);
    this.previous = Int32Array.from(this.previousId, (id) => (id === null ? -1 : (index.get(id) ?? -1)));
  }

  /**
   * An order for the running placement: each unit's start in the running schedule (its nodes'
   * earliest); a unit none of whose nodes it ran starts with the latest of its predecessors
   * (`order` is topological, `preds` per unit).
   */
  priority(order: ArrayLike<number>, preds: readonly (readonly number[])[]): Float64Array {
    const start = this.input.start_s ?? {};
    const pri = new Float64Array(this.unitNodes.length);
    for (let k = 0; k < order.length; k++) {
      const u = order[k]!;
      let known = Infinity;
      for (const name of this.unitNodes[u]!) known = Math.min(known, start[name] ?? Infinity);
      if (Number.isFinite(known)) pri[u] = known;
      else for (const q of preds[u]!) pri[u] = Math.max(pri[u]!, pri[q]! + 1e-12);
    }
    return pri;
  }

  /** A unit that must move: its device is gone, or it is new. */
  forced(u: number): boolean {
    return this.previous[u]! < 0;
  }

  /** Whether unit u on device d has nodes that ran elsewhere (or are new). */
  private changes(u: number, d: number): boolean {
    return this.ran[u]!.some((g) => g.from !== d);
  }

  /**
   * Bytes and time of moving unit u to device d: its nodes that ran on another device bring their
   * bytes over the route from there, those whose device is gone (or that are new) are loaded
   * afresh over the fastest route into d (a host's memory, a peer); into one device one after another.
   */
  private move(u: number, d: number): { bytes: number; seconds: number; forced_bytes: number } {
    let bytes = 0;
    let seconds = 0;
    let forced_bytes = 0;
    for (const g of this.ran[u]!) {
      if (g.from === d || g.bytes <= 0) continue;
      bytes += g.bytes;
      if (g.from < 0) forced_bytes += g.bytes;
      if (g.from >= 0) seconds += this.p.transfer_s(g.from, d, g.bytes);
      else {
        let best = Infinity;
        for (let e = 0; e < this.p.device_ids.length; e++) if (e !== d) best = Math.min(best, this.p.transfer_s(e, d, g.bytes));
        seconds += Number.isFinite(best) ? best : 0;
      }
    }
    return { bytes, seconds, forced_bytes };
  }

  /** Unit u's move to d is forced: its device is gone (or it is new), or all of it that moves ran on a device that is gone. */
  private forcedTo(u: number, d: number): boolean {
    return this.forced(u) || this.ran[u]!.every((g) => g.from === d || g.from < 0);
  }

  cost(device: Int32Array): MigrationCost {
    const into = new Float64Array(this.p.device_ids.length);
    let moves = 0;
    let forced = 0;
    let bytes = 0;
    let optional = 0;
    for (let u = 0; u < device.length; u++) {
      const d = device[u]!;
      if (!this.changes(u, d)) continue;
      moves++;
      const m = this.move(u, d);
      bytes += m.bytes;
      into[d]! += m.seconds;
      if (this.forcedTo(u, d)) forced++;
      if (!this.forced(u)) optional += m.bytes - m.forced_bytes;
    }
    return { moves, forced, bytes, optional_bytes: optional, seconds: Math.max(0, ...into) };
  }

  /** Within --max-moves and --migration-budget (forced moves are never counted against them). */
  within(c: MigrationCost): boolean {
    const { max_moves, migration_budget_bytes } = this.input;
    return (max_moves === null || c.moves - c.forced <= max_moves) && (migration_budget_bytes === null || c.optional_bytes <= migration_budget_bytes);
  }

  /**
   * The migration's share of one request (seconds): its time spread over the requests the plan
   * serves. Added to a latency; for throughput, R requests' time gets R shares.
   */
  perRequest_s(c: MigrationCost): number {
    return c.seconds / this.input.amortize;
  }

  get minGain(): number {
    return this.input.min_gain;
  }

  get amortize(): number {
    return this.input.amortize;
  }

  /** Each moved unit: from (the running plan's device, null for a new unit; `gone` when it is not in the rack), to, bytes, time. */
  moved(device: Int32Array, names: readonly string[]): MovedUnit[] {
    const out: MovedUnit[] = [];
    for (let u = 0; u < device.length; u++) {
      const d = device[u]!;
      if (!this.changes(u, d)) continue;
      const m = this.move(u, d);
      // From where it ran, or — when most of it stays — where most of what moves ran.
      const from =
        this.previous[u] !== d
          ? { at: this.previous[u]!, id: this.previousId[u]! }
          : ((g) => ({ at: g.from, id: g.id }))((this.ran[u]!.find((g) => g.from !== d && g.id !== null) ?? this.ran[u]!.find((g) => g.from !== d))!);
      out.push({ unit: names[u]!, u, from: from.id, gone: from.at < 0, to: this.p.device_ids[d]!, bytes: m.bytes, seconds: m.seconds });
    }
    return out;
  }
}

/** `hxc replan`: the move from the running plan to the shipped one (delta.json is written from it). */
export interface MigrationReport {
  amortize_requests: number;
  moved: { unit: string; from: string | null; to: string; bytes: number; seconds: number; why: string }[];
  moves: number;
  forced: number;
  bytes: number;
  seconds: number;
  /** The running plan judged under today's inputs (units whose device is gone placed where they fit fastest); null when it does not fit. */
  running: { latency_s: number; throughput_per_s: number; moves: number } | null;
  /** The best plan made from scratch, and what moving to it would have moved. */
  fresh: { name: string; latency_s: number; throughput_per_s: number; moves: number; bytes: number; seconds: number } | null;
  /** The shipped plan keeps to --max-moves and --migration-budget. */
  within_limits: boolean;
}

/** A judged candidate, as the report needs it. */
interface Judged {
  name: string;
  latency_s: number;
  throughput_per_s: number;
  placement: { device: Int32Array };
}

/**
 * The running plan's placement with every unit whose device is gone (or that it did not have) put
 * where the fresh plan puts it when that has room, else on the fastest device with room.
 */
export function placeOrphans(p: PlacementProblem, previous: Int32Array, fresh: Int32Array | null, pinnedTo: Int32Array): Int32Array {
  const nd = p.device_ids.length;
  const device = Int32Array.from(previous, (d, u) => (pinnedTo[u]! >= 0 ? pinnedTo[u]! : d >= 0 && Number.isFinite(unitTime(p, u, d)) ? d : -1));
  const used = new Float64Array(nd);
  const floor = new Float64Array(nd);
  device.forEach((d, u) => {
    if (d < 0) return;
    used[d]! += residentBytes(p, u);
    floor[d] = Math.max(floor[d]!, p.activation_bytes[u]!);
  });
  const room = (u: number, d: number): boolean =>
    Number.isFinite(unitTime(p, u, d)) && used[d]! + residentBytes(p, u) + Math.max(floor[d]!, p.activation_bytes[u]!) <= p.capacity_bytes[d]!;
  for (const u of p.order) {
    if (device[u]! >= 0) continue;
    let to = fresh && room(u, fresh[u]!) ? fresh[u]! : -1;
    if (to < 0) for (let d = 0; d < nd; d++) if (room(u, d) && (to < 0 || unitTime(p, u, d) < unitTime(p, u, to))) to = d;
    if (to < 0) to = fresh?.[u] ?? 0;
    device[u] = to;
    used[to]! += residentBytes(p, u);
    floor[to] = Math.max(floor[to]!, p.activation_bytes[u]!);
  }
  return device;
}

export function migrationReport(
  m: Migration,
  chosen: Judged,
  running: Judged | null,
  fresh: Judged | null,
  units: readonly { name: string }[],
  objective: Objective,
): MigrationReport {
  const mc = m.cost(chosen.placement.device);
  // Per request, how much faster the shipped plan is than the running one (for throughput: 1/throughput).
  const perRequest = (c: Judged): number => (objective === 'latency' ? c.latency_s : c.throughput_per_s > 0 ? 1 / c.throughput_per_s : Infinity);
  const gain = running ? perRequest(running) - perRequest(chosen) : null;
  const sec = formatSeconds;
  const optionalWhy =
    gain !== null && gain > 0
      ? `pays back: the plan is ${sec(gain)} per request faster than the running one, the migration's ${sec(mc.seconds)} repaid in ${Math.ceil(mc.seconds / gain)} requests (of ${m.amortize})`
      : 'with the moves that must be made: the plan around them';
  const moved = m
    .moved(
      chosen.placement.device,
      units.map((u) => u.name),
    )
    .map((x) => ({
      unit: x.unit,
      from: x.from,
      to: x.to,
      bytes: x.bytes,
      seconds: x.seconds,
      why: x.from === null ? 'not in the running plan' : x.gone ? `its device ${x.from} is not in the rack` : optionalWhy,
    }));
  const fc = fresh ? m.cost(fresh.placement.device) : null;
  return {
    amortize_requests: m.amortize,
    moved,
    moves: mc.moves,
    forced: mc.forced,
    bytes: mc.bytes,
    seconds: mc.seconds,
    running: running ? { latency_s: running.latency_s, throughput_per_s: running.throughput_per_s, moves: m.cost(running.placement.device).moves } : null,
    fresh:
      fresh && fc
        ? { name: fresh.name, latency_s: fresh.latency_s, throughput_per_s: fresh.throughput_per_s, moves: fc.moves, bytes: fc.bytes, seconds: fc.seconds }
        : null,
    within_limits: m.within(mc),
  };
}
