// MoE expert units on the placement problem: the moe pass's placement as a restriction (a
// candidate), the experts of a layer costed alike (the plan made as if routing were uniform), and
// the names of grouped experts.

import type { Unit } from './build.js';
import type { PlacementProblem } from './problem.js';

/** The expert set a unit computes or dispatches for, if any. */
const expertSetOf = (u: Unit): number | undefined => u.expert ?? u.dispatch;

/** The problem with each expert unit (and its dispatch) restricted to the devices given per expert key (null when none is). */
export function restrictToExpertDevices(
  units: readonly Unit[],
  p: PlacementProblem,
  keys: readonly (readonly string[])[],
  devices: ReadonlyMap<string, readonly string[]>,
): PlacementProblem | null {
  const nd = p.device_ids.length;
  const time_s = Float64Array.from(p.time_s);
  const deviceIndex = new Map(p.device_ids.map((id, d) => [id, d]));
  // Per expert set, its devices (indices into the problem's, the moe pass's devices outside it left
  // out), found once: an expert's dispatch unit and its body share the set.
  const allowedOf: (Uint8Array | null | undefined)[] = new Array(keys.length);
  const allowedFor = (set: number): Uint8Array | null => {
    let allowed = allowedOf[set];
    if (allowed === undefined) {
      allowed = null;
      for (const key of keys[set] ?? [])
        for (const id of devices.get(key) ?? []) {
          const d = deviceIndex.get(id);
          if (d === undefined) continue;
          allowed ??= new Uint8Array(nd);
          allowed[d] = 1;
        }
      allowedOf[set] = allowed;
    }
    return allowed;
  };
  let restricted = 0;
  for (let k = 0; k < units.length; k++) {
    const set = expertSetOf(units[k]!);
    if (set === undefined) continue;
    const allowed = allowedFor(set);
    if (!allowed) continue;
    // Restricted only when one of its devices runs it.
    let runs = false;
    for (let d = 0; d < nd; d++) if (allowed[d] && Number.isFinite(p.time_s[k * nd + d]!)) runs = true;
    if (!runs) continue;
    for (let d = 0; d < nd; d++) if (!allowed[d]) time_s[k * nd + d] = Infinity;
    restricted++;
  }
  return restricted > 0 ? { ...p, time_s } : null;
}

/**
 * The problem with each MoE layer's experts costed alike (their mean time per expert and device,
 * times the experts a unit computes), or null without experts.
 */
export function uniformExperts(p: PlacementProblem, units: readonly Unit[], keys: readonly (readonly string[])[]): PlacementProblem | null {
  const nd = p.device_ids.length;
  const layers = new Map<string, number[]>();
  const count = new Int32Array(units.length);
  units.forEach((u, k) => {
    const members = u.expert !== undefined ? (keys[u.expert] ?? []) : [];
    const m = members.length > 0 ? /^(moe\d+)\./.exec(members[0]!) : null;
    if (!m) return;
    count[k] = members.length;
    (layers.get(m[1]!) ?? layers.set(m[1]!, []).get(m[1]!)!).push(k);
  });
  if (layers.size === 0) return null;
  const time_s = Float64Array.from(p.time_s);
  for (const list of layers.values()) {
    for (let d = 0; d < nd; d++) {
      // The mean over the experts that can run here (an expert pinned elsewhere is Infinity here).
      let sum = 0;
      let experts = 0;
      for (const k of list)
        if (Number.isFinite(p.time_s[k * nd + d]!)) {
          sum += p.time_s[k * nd + d]!;
          experts += count[k]!;
        }
      for (const k of list) if (Number.isFinite(p.time_s[k * nd + d]!)) time_s[k * nd + d] = (sum / experts) * count[k]!;
    }
  }
  return { ...p, time_s };
}

/** 0,1,2,3,8,10,11 → "0-3+8+10-11". */
export function ranges(ids: number[]): string {
  const sorted = [...ids].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let k = 0; k < sorted.length; ) {
    let j = k;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === k ? `${sorted[k]}` : `${sorted[k]}-${sorted[j]}`);
    k = j + 1;
  }
  return parts.join('+');
}
