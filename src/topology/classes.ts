// Symmetry classes of a rack: devices that are the same part with the same pattern of links, links
// of the same kind and size, and the routes between classes. A pod of 512 identical hosts has a
// handful of each; `hxc topology` prints them instead of a 5,000 × 5,000 matrix, and the
// partitioner treats a class's idle devices as one choice.

import type { Device, Topology } from './load.js';
import type { RouteTable } from './routes.js';
import { sha256 } from '../util/hash.js';
import { deviceClassKey } from './device.js';

export interface DeviceClass {
  /** `gpu h100-sxm` (kind and model), with a number when two classes share them. */
  name: string;
  devices: string[];
  /** One member (the first in file order): what is computed once stands for all. */
  representative: string;
}

export interface LinkClass {
  kind: string;
  bandwidth_bytes_per_s: number;
  latency_s: number;
  shared: boolean;
  /** Devices on each link of the class. */
  size: number;
  links: string[];
}

export interface RouteClass {
  from_class: string;
  to_class: string;
  same_host: boolean;
  /** Links crossed. */
  hops: number;
  latency_s: number;
  bandwidth_bytes_per_s: number;
  /** Link kinds in order, e.g. pcie → ethernet → pcie. */
  kinds: string[];
  /** Targets of this shape seen from the from-class's representative. */
  count: number;
}

/** What makes two devices interchangeable, apart from their links: the one notion (src/topology/device.ts). */
const partKey = deviceClassKey;

function linkKey(l: Topology['links'][number]): string {
  return JSON.stringify([l.kind, l.bandwidth_bytes_per_s, l.latency_s, l.shared, l.devices.length]);
}

/**
 * Devices grouped by part and by the multiset of link classes they sit on, refined once by the
 * classes of their link neighbours (so a GPU whose NVLink peers are GPUs differs from one whose
 * peers are accelerators). File order of first members.
 */
export function deviceClasses(topo: Pick<Topology, 'devices' | 'links'>): DeviceClass[] {
  const linksOf = new Map<string, string[]>();
  for (const l of topo.links) for (const d of l.devices) (linksOf.get(d) ?? linksOf.set(d, []).get(d)!).push(linkKey(l));
  const base = new Map<string, string>();
  for (const d of topo.devices) base.set(d.id, `${partKey(d)}|${(linksOf.get(d.id) ?? []).sort().join(';')}`);
  const peers = new Map<string, string[]>();
  for (const l of topo.links) {
    const tag = `${linkKey(l)}:${hashOf(
      l.devices
        .map((d) => base.get(d) ?? '')
        .sort()
        .join('\n'),
    )}`;
    for (const d of l.devices) (peers.get(d) ?? peers.set(d, []).get(d)!).push(tag);
  }
  const keyOf = (d: Device): string => `${base.get(d.id)}|${(peers.get(d.id) ?? []).sort().join(';')}`;
  const groups = new Map<string, string[]>();
  for (const d of topo.devices) (groups.get(keyOf(d)) ?? groups.set(keyOf(d), []).get(keyOf(d))!).push(d.id);
  const byId = new Map(topo.devices.map((d) => [d.id, d]));
  const named = new Map<string, number>();
  return [...groups.values()].map((devices) => {
    const d = byId.get(devices[0]!)!;
    const stem = `${d.kind}${d.model ? ` ${d.model}` : ''}`;
    const k = (named.get(stem) ?? 0) + 1;
    named.set(stem, k);
    return { name: k === 1 ? stem : `${stem} #${k}`, devices, representative: devices[0]! };
  });
}

export function linkClasses(topo: Pick<Topology, 'links'>): LinkClass[] {
  const groups = new Map<string, LinkClass>();
  for (const l of topo.links) {
    const key = linkKey(l);
    const have = groups.get(key);
    if (have) have.links.push(l.name);
    else
      groups.set(key, {
        kind: l.kind,
        bandwidth_bytes_per_s: l.bandwidth_bytes_per_s,
        latency_s: l.latency_s,
        shared: l.shared,
        size: l.devices.length,
        links: [l.name],
      });
  }
  return [...groups.values()];
}

/** Routes of `bytes` from each class's representative to every other device, grouped by shape. */
export function routeClasses(topo: Pick<Topology, 'devices' | 'links'>, routes: RouteTable, classes: DeviceClass[], bytes: number): RouteClass[] {
  const classOf = new Map<string, string>();
  for (const c of classes) for (const d of c.devices) classOf.set(d, c.name);
  const hostOf = new Map(topo.devices.map((d) => [d.id, d.host]));
  const kindOf = new Map(topo.links.map((l) => [l.name, l.kind]));
  const out: RouteClass[] = [];
  for (const c of classes) {
    const from = routes.indexOf(c.representative);
    const shapes = new Map<string, RouteClass>();
    topo.devices.forEach((d, to) => {
      if (to === from) return;
      const r = routes.routeIdx(from, to, bytes);
      const host = hostOf.get(c.representative) ?? null;
      const same = host !== null && host === hostOf.get(d.id);
      const kinds = r.links.map((l) => kindOf.get(l) ?? '?');
      const toClass = classOf.get(d.id)!;
      const key = JSON.stringify([toClass, same, r.links.length, r.latency_s, r.bandwidth_bytes_per_s, kinds]);
      const have = shapes.get(key);
      if (have) have.count++;
      else
        shapes.set(key, {
          from_class: c.name,
          to_class: toClass,
          same_host: same,
          hops: r.links.length,
          latency_s: r.latency_s,
          bandwidth_bytes_per_s: r.bandwidth_bytes_per_s,
          kinds,
          count: 1,
        });
    });
    out.push(...shapes.values());
  }
  return out;
}

/** A short stand-in for a long key (a spine's 512 members): its sha256. */
function hashOf(s: string): string {
  return sha256(s);
}
