// A rack cut to some of its devices: links and hosts keep only those devices (a link left with one
// end is dropped). Used to plan on a part of a rack — the devices worth planning on in a pod
// (src/partition/narrow.ts), a serving pool (src/serve/plan.ts).

import type { Topology } from './load.js';

/** The rack on `keep` only, or null when those devices are not connected among themselves. */
export function cutTopology(topo: Topology, keep: ReadonlySet<string>): Topology | null {
  const devices = topo.devices.filter((d) => keep.has(d.id));
  const links = topo.links.map((l) => ({ ...l, devices: l.devices.filter((id) => keep.has(id)) })).filter((l) => l.devices.length >= 2);
  if (
    !connected(
      devices.map((d) => d.id),
      links,
    )
  )
    return null;
  const hosts = topo.hosts.map((h) => ({ ...h, devices: h.devices.filter((id) => keep.has(id)) })).filter((h) => h.devices.length > 0);
  return { ...topo, devices, links, hosts };
}

export function connected(ids: string[], links: Topology['links']): boolean {
  if (ids.length <= 1) return true;
  const adj = new Map<string, string[]>();
  for (const l of links) for (const id of l.devices) (adj.get(id) ?? adj.set(id, []).get(id)!).push(l.name);
  const members = new Map(links.map((l) => [l.name, l.devices]));
  const seen = new Set([ids[0]!]);
  const stack = [ids[0]!];
  const usedLinks = new Set<string>();
  while (stack.length > 0) {
    const d = stack.pop()!;
    for (const l of adj.get(d) ?? []) {
      if (usedLinks.has(l)) continue;
      usedLinks.add(l);
      for (const e of members.get(l)!)
        if (!seen.has(e)) {
          seen.add(e);
          stack.push(e);
        }
    }
  }
  return seen.size === ids.length;
}
