// The two expert placements hxc's own is measured against: round-robin, and DeepSeek's EPLB
// (github.com/deepseek-ai/EPLB, eplb.py) — described in src/moe/place.ts's header.

import { sortReplicas, type Placement, type PlacementProblem, type Replica } from './problem.js';

/** Round-robin: replicas in expert order, redundant slots to experts 0, 1, …; dealt to devices in turn. */
export function placeRoundRobin(p: PlacementProblem): Placement {
  const n = p.devices.length;
  const list: number[] = [];
  for (let e = 0; e < p.experts; e++) list.push(e);
  for (let s = 0; s < p.slots; s++) list.push(s % p.experts);
  const count = new Int32Array(p.experts);
  for (const e of list) count[e]!++;
  const holds = new Set<number>();
  const replicas: Replica[] = [];
  let cursor = 0;
  for (const e of list) {
    let d = cursor % n;
    for (let tries = 0; tries < n && holds.has(e * n + d); tries++) d = (d + 1) % n;
    holds.add(e * n + d);
    replicas.push({ expert: e, device: d, tokens: p.tokens[e]! / count[e]! });
    cursor = d + 1;
  }
  return { method: 'round-robin', replicas: sortReplicas(replicas) };
}

/**
 * eplb.py balanced_packing: items heaviest first, each into the lightest pack that still has room;
 * packs hold ceil(items / packs) (EPLB requires an exact multiple; the ceiling generalises it).
 */
function balancedPacking(weights: number[], packs: number): number[] {
  const cap = Math.ceil(weights.length / packs);
  const load = new Array<number>(packs).fill(0);
  const items = new Array<number>(packs).fill(0);
  const order = weights.map((_w, i) => i).sort((a, b) => weights[b]! - weights[a]! || a - b);
  const out = new Array<number>(weights.length).fill(0);
  for (const i of order) {
    let best = -1;
    for (let k = 0; k < packs; k++) if (items[k]! < cap && (best < 0 || load[k]! < load[best]!)) best = k;
    out[i] = best;
    load[best]! += weights[i]!;
    items[best]!++;
  }
  return out;
}

/**
 * EPLB (eplb.py rebalance_experts): hierarchical when the expert groups divide evenly over hosts —
 * groups packed onto hosts, replicas made per host, replicas packed onto the host's devices — else
 * the global policy (one group, one host). Load = work (tokens × FLOPs per token; EPLB counts tokens,
 * the same when experts are equal). Device speeds and memory are not EPLB's concern.
 */
export function placeGreedy(p: PlacementProblem): Placement {
  const hostNames = [...new Set(p.devices.map((d) => d.host))];
  const perHost = hostNames.map((h) => p.devices.map((d, i) => (d.host === h ? i : -1)).filter((i) => i >= 0));
  const equalHosts = perHost.every((ds) => ds.length === perHost[0]!.length);
  const total = p.experts + p.slots;
  const hierarchical = hostNames.length > 1 && p.groups % hostNames.length === 0 && p.experts % p.groups === 0 && equalHosts && total % hostNames.length === 0;
  const hosts = hierarchical ? perHost : [p.devices.map((_, i) => i)];
  const groups = hierarchical ? p.groups : 1;
  const work = (e: number): number => p.tokens[e]! * p.flops_per_token[e]!;
  // Step 1: expert groups onto hosts.
  const groupSize = p.experts / groups;
  const groupWork = Array.from({ length: groups }, (_, g) => Array.from({ length: groupSize }, (_, j) => work(g * groupSize + j)).reduce((a, b) => a + b, 0));
  const groupHost = hosts.length === 1 ? new Array<number>(groups).fill(0) : balancedPacking(groupWork, hosts.length);
  const replicas: Replica[] = [];
  hosts.forEach((devices, h) => {
    const experts: number[] = [];
    for (let g = 0; g < groups; g++) if (groupHost[g] === h) for (let j = 0; j < groupSize; j++) experts.push(g * groupSize + j);
    // Step 2: replicate within the host (replicate_experts).
    const count = new Array<number>(experts.length).fill(1);
    const physical = total / hosts.length;
    for (let s = experts.length; s < physical; s++) {
      let best = 0;
      for (let k = 1; k < experts.length; k++) if (work(experts[k]!) / count[k]! > work(experts[best]!) / count[best]!) best = k;
      count[best]!++;
    }
    // Step 3: replicas onto the host's devices (balanced_packing).
    const items: { expert: number; load: number }[] = [];
    experts.forEach((e, k) => {
      for (let r = 0; r < count[k]!; r++) items.push({ expert: e, load: work(e) / count[k]! });
    });
    const pack = balancedPacking(
      items.map((it) => it.load),
      devices.length,
    );
    items.forEach((it, k) =>
      replicas.push({ expert: it.expert, device: devices[pack[k]!]!, tokens: p.tokens[it.expert]! / count[experts.indexOf(it.expert)]! }),
    );
  });
  return { method: 'greedy', replicas: sortReplicas(replicas) };
}
