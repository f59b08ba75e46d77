// Routes between every pair of devices, for any transfer size. The network is bipartite (devices ↔
// links); a link joining more than two devices is a switch (one hop between any two of them); any
// device may relay. Cost of b bytes over a route (DESIGN.md, Cost model): sum(latency) + b / min(bandwidth).
// Contention on `shared` links is not modelled here (the simulator does that; DESIGN.md).
//
// Which route is fastest depends on b, so for each ordered pair we keep the Pareto set of routes over
// (total latency ↓, bottleneck bandwidth ↑): for each distinct link bandwidth w, a Dijkstra on
// latency over the links with bandwidth ≥ w gives the lowest-latency route whose bottleneck is ≥ w;
// the non-dominated ones are kept. time() then scans that small set: O(pareto size) per call.

import { HxcError } from '../diag/diagnostics.js';
import { Heap } from '../util/heap.js';
import type { Topology } from './load.js';
import { closeMatches } from './load.js';

export interface Route {
  from: string;
  to: string;
  /** Link names in order from `from` to `to`; empty when from === to. */
  links: string[];
  /** Device ids along the route, both ends included (relays in between). */
  hops: string[];
  latency_s: number;
  /** Bottleneck bandwidth of the route; Infinity when from === to. */
  bandwidth_bytes_per_s: number;
  time_s: number;
}

/** One Pareto-optimal route of a pair (size independent). */
export interface RouteOption {
  links: string[];
  hops: string[];
  latency_s: number;
  bandwidth_bytes_per_s: number;
}

export interface MatrixCell {
  /** Number of links on the chosen route. */
  hops: number;
  latency_s: number;
  bandwidth_bytes_per_s: number;
  time_s: number;
  /** bytes / time_s: what a transfer of this size sees, latency included. */
  effective_bytes_per_s: number;
}

export interface RouteMatrix {
  bytes: number;
  devices: string[];
  /** cells[i][j] for devices[i] → devices[j]; null on the diagonal. */
  cells: (MatrixCell | null)[][];
}

/** A route found by one Dijkstra run, before the Pareto filter. */
interface Candidate {
  latency_ps: number;
  bandwidth: number;
  links: number[];
  devices: number[];
}

/**
 * Latencies are summed as integer picoseconds so that equal routes compare equal (float sums
 * depend on order) and the tie-break (fewer hops, then link names, then device ids) is exact.
 */
const PS_PER_S = 1e12;

/** A growable typed array (the options of rows computed so far). */
class Grow<T extends Int32Array | Float64Array> {
  data: T;
  length = 0;
  constructor(private readonly make: (n: number) => T) {
    this.data = make(1024);
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = this.make(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
}

export class RouteTable {
  readonly devices: readonly string[];
  readonly links: readonly string[];
  private readonly n: number;
  private readonly index: Map<string, number>;
  private readonly net: Network;
  private readonly levels: number[];
  /**
   * Routes are found per source device when first asked for (a Dijkstra per bandwidth level), so
   * a rack of thousands of devices costs what the plan touches, not all N² pairs. Row s: options of
   * pair (s, t) are rows[s][t] .. rows[s][t + 1] - 1 in the option arrays, latency ascending.
   * Option ids are handles (their order depends on which rows were asked for first); nothing
   * printed depends on them.
   */
  private readonly rows: (Int32Array | undefined)[];
  private readonly optLatency = new Grow((n) => new Float64Array(n));
  private readonly optBandwidth = new Grow((n) => new Float64Array(n));
  /** Links of option k: pathLinks[pathOffset[k] .. pathOffset[k + 1]); devices at pathDevStart[k], one more than links. */
  private readonly pathOffset = new Grow((n) => new Int32Array(n));
  private readonly pathDevStart = new Grow((n) => new Int32Array(n));
  private readonly pathLinks = new Grow((n) => new Int32Array(n));
  private readonly pathDevices = new Grow((n) => new Int32Array(n));

  constructor(topology: Pick<Topology, 'devices' | 'links'>) {
    this.devices = topology.devices.map((d) => d.id);
    this.links = topology.links.map((l) => l.name);
    this.n = this.devices.length;
    this.index = new Map(this.devices.map((id, i) => [id, i]));
    const n = this.n;
    const linkDevices = topology.links.map((l) => l.devices.map((id) => this.index.get(id)).filter((i): i is number => i !== undefined));
    const linkLatencyPs = topology.links.map((l) => Math.round(l.latency_s * PS_PER_S));
    const linkBandwidth = topology.links.map((l) => l.bandwidth_bytes_per_s);
    const deviceLinks: number[][] = Array.from({ length: n }, () => []);
    linkDevices.forEach((devs, l) => devs.forEach((d) => deviceLinks[d]?.push(l)));
    this.levels = [...new Set(linkBandwidth)].sort((a, b) => b - a);
    this.net = { n, linkDevices, linkLatencyPs, linkBandwidth, deviceLinks, linkNames: this.links, deviceIds: this.devices };
    this.rows = new Array(n);
    this.pathOffset.push(0);
  }

  /** Row s's option offsets (computed on first use). */
  private row(s: number): Int32Array {
    const have = this.rows[s];
    if (have) return have;
    const n = this.n;
    const perTarget: Candidate[][] = Array.from({ length: n }, () => []);
    for (const level of this.levels) {
      for (const c of shortestFrom(this.net, s, level)) perTarget[c.devices[c.devices.length - 1] as number]?.push(c);
    }
    const offsets = new Int32Array(n + 1);
    for (let t = 0; t < n; t++) {
      offsets[t] = this.optLatency.length;
      if (t === s) continue;
      for (const c of pareto(this.net, perTarget[t] as Candidate[])) {
        this.optLatency.push(c.latency_ps / PS_PER_S);
        this.optBandwidth.push(c.bandwidth);
        this.pathDevStart.push(this.pathDevices.length);
        for (const l of c.links) this.pathLinks.push(l);
        for (const d of c.devices) this.pathDevices.push(d);
        this.pathOffset.push(this.pathLinks.length);
      }
    }
    offsets[n] = this.optLatency.length;
    this.rows[s] = offsets;
    return offsets;
  }

  /** Devices whose routes were computed (for tests and the benchmark). */
  rowsComputed(): number {
    let c = 0;
    for (const r of this.rows) if (r) c++;
    return c;
  }

  /** Integer index of a device id (file order); unknown id → HXC2304 with close matches. */
  indexOf(id: string): number {
    const i = this.index.get(id);
    if (i === undefined) {
      const close = closeMatches(id, this.devices);
      throw new HxcError('HXC2304', `unknown device "${id}"${close.length ? ` (did you mean ${close.join(', ')}?)` : ''}`, {
        hint: `devices: ${this.devices.slice(0, 8).join(', ')}${this.devices.length > 8 ? ', …' : ''}`,
      });
    }
    return i;
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  /** Seconds to move `bytes` from device i to device j on the best route for that size (0 when i === j). */
  timeIdx(i: number, j: number, bytes: number): number {
    if (i === j) return 0;
    const row = this.row(i);
    const lat = this.optLatency.data;
    const bw = this.optBandwidth.data;
    let best = Infinity;
    for (let k = row[j] as number, end = row[j + 1] as number; k < end; k++) {
      const t = (lat[k] as number) + bytes / (bw[k] as number);
      if (t < best) best = t;
    }
    return best;
  }

  time(from: string, to: string, bytes: number): number {
    return this.timeIdx(this.indexOf(from), this.indexOf(to), bytes);
  }

  /**
   * Index of the option chosen for `bytes` (-1 when i === j or unreachable): least time, then fewer
   * hops, then link names, then device ids. Use with optionLinks() to charge links without strings.
   */
  choiceIdx(i: number, j: number, bytes: number): number {
    if (i === j) return -1;
    const row = this.row(i);
    let best = -1;
    let bestTime = Infinity;
    for (let k = row[j] as number, end = row[j + 1] as number; k < end; k++) {
      const t = (this.optLatency.data[k] as number) + bytes / (this.optBandwidth.data[k] as number);
      if (best < 0 || t < bestTime || (t === bestTime && this.comparePaths(k, best) < 0)) {
        best = k;
        bestTime = t;
      }
    }
    return best;
  }

  /** How many routes pair (i, j) has to choose from (one: every transfer takes it, whatever its size). */
  optionCount(i: number, j: number): number {
    if (i === j) return 0;
    const row = this.row(i);
    return (row[j + 1] as number) - (row[j] as number);
  }

  /** Link indices (into `links`) of option k, in order. */
  optionLinks(k: number): Int32Array {
    return this.pathLinks.data.subarray(this.pathOffset.data[k], this.pathOffset.data[k + 1]);
  }

  routeIdx(i: number, j: number, bytes: number): Route {
    const from = this.devices[i] as string;
    const to = this.devices[j] as string;
    if (i === j) return { from, to, links: [], hops: [from], latency_s: 0, bandwidth_bytes_per_s: Infinity, time_s: 0 };
    const k = this.choiceIdx(i, j, bytes);
    if (k < 0) {
      throw new HxcError('HXC2307', `no route from "${from}" to "${to}"`, { hint: 'add a link that connects them' });
    }
    const option = this.option(k);
    const time_s = option.latency_s + bytes / option.bandwidth_bytes_per_s;
    return { from, to, ...option, time_s };
  }

  /** The best route for a transfer of `bytes` (route(a, a, b) is zero time, no links). */
  route(from: string, to: string, bytes: number): Route {
    return this.routeIdx(this.indexOf(from), this.indexOf(to), bytes);
  }

  /** All Pareto-optimal routes of a pair, latency ascending (bandwidth ascending too). */
  pareto(from: string, to: string): RouteOption[] {
    const i = this.indexOf(from);
    const j = this.indexOf(to);
    if (i === j) return [];
    const row = this.row(i);
    const out: RouteOption[] = [];
    for (let k = row[j] as number; k < (row[j + 1] as number); k++) out.push(this.option(k));
    return out;
  }

  /** Chosen route per ordered pair for a transfer of `bytes`, for printing. */
  matrix(bytes: number): RouteMatrix {
    const cells = this.devices.map((_, i) =>
      this.devices.map((__, j): MatrixCell | null => {
        if (i === j) return null;
        const k = this.choiceIdx(i, j, bytes);
        if (k < 0) return null;
        const latency_s = this.optLatency.data[k] as number;
        const bandwidth_bytes_per_s = this.optBandwidth.data[k] as number;
        const time_s = latency_s + bytes / bandwidth_bytes_per_s;
        const hops = (this.pathOffset.data[k + 1] as number) - (this.pathOffset.data[k] as number);
        return { hops, latency_s, bandwidth_bytes_per_s, time_s, effective_bytes_per_s: time_s > 0 ? bytes / time_s : Infinity };
      }),
    );
    return { bytes, devices: [...this.devices], cells };
  }

  private option(k: number): RouteOption {
    const start = this.pathOffset.data[k] as number;
    const end = this.pathOffset.data[k + 1] as number;
    const devStart = this.pathDevStart.data[k] as number;
    return {
      links: Array.from(this.pathLinks.data.subarray(start, end), (l) => this.links[l] as string),
      hops: Array.from(this.pathDevices.data.subarray(devStart, devStart + (end - start) + 1), (d) => this.devices[d] as string),
      latency_s: this.optLatency.data[k] as number,
      bandwidth_bytes_per_s: this.optBandwidth.data[k] as number,
    };
  }

  /** Tie-break between two options of the same pair: fewer hops, then link names, then device ids. */
  private comparePaths(a: number, b: number): number {
    const oa = this.option(a);
    const ob = this.option(b);
    if (oa.links.length !== ob.links.length) return oa.links.length - ob.links.length;
    return compareStrings(oa.links, ob.links) || compareStrings(oa.hops, ob.hops);
  }
}

// ---------------------------------------------------------------------------------------------

interface Network {
  n: number;
  linkDevices: number[][];
  linkLatencyPs: number[];
  linkBandwidth: number[];
  deviceLinks: number[][];
  linkNames: readonly string[];
  deviceIds: readonly string[];
}

function compareStrings(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] as string;
    const y = b[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/**
 * Dijkstra from device `s` over links with bandwidth ≥ `level`. Nodes 0..n-1 are devices, n..n+m-1
 * links; entering a link costs its latency and one hop, leaving it is free. Order: latency, hops,
 * links before devices at equal (latency, hops) — so that every way into a device is seen before the
 * device is settled — and ties in both are broken on the path (link names, then device ids).
 */
function shortestFrom(net: Network, s: number, level: number): Candidate[] {
  const total = net.n + net.linkDevices.length;
  const latency = new Float64Array(total).fill(Infinity);
  const hops = new Int32Array(total);
  const prev = new Int32Array(total).fill(-1);
  const settled = new Uint8Array(total);
  const heap = new Heap<HeapEntry>(heapLess);
  latency[s] = 0;
  heap.push({ latency: 0, hops: 0, isDevice: 1, node: s });

  // Path of a node as (link names, device ids): the tie-break key.
  const pathOf = (node: number): { links: string[]; devices: string[] } => {
    const links: string[] = [];
    const devices: string[] = [];
    for (let x = node; x >= 0; x = prev[x] as number) {
      if (x < net.n) devices.push(net.deviceIds[x] as string);
      else links.push(net.linkNames[x - net.n] as string);
    }
    return { links: links.reverse(), devices: devices.reverse() };
  };
  const better = (node: number, via: number, lat: number, h: number): boolean => {
    if (lat !== latency[node]) return lat < (latency[node] as number);
    if (h !== hops[node]) return h < (hops[node] as number);
    const current = pathOf(node);
    const saved = prev[node] as number;
    prev[node] = via;
    const candidate = pathOf(node);
    prev[node] = saved;
    return (compareStrings(candidate.links, current.links) || compareStrings(candidate.devices, current.devices)) < 0;
  };

  for (let entry = heap.pop(); entry; entry = heap.pop()) {
    const u = entry.node;
    if (settled[u] || entry.latency !== latency[u] || entry.hops !== hops[u]) continue;
    settled[u] = 1;
    if (u < net.n) {
      for (const l of net.deviceLinks[u] as number[]) {
        if ((net.linkBandwidth[l] as number) < level) continue;
        const node = net.n + l;
        if (settled[node]) continue;
        const lat = (latency[u] as number) + (net.linkLatencyPs[l] as number);
        const h = (hops[u] as number) + 1;
        if (better(node, u, lat, h)) {
          latency[node] = lat;
          hops[node] = h;
          prev[node] = u;
          heap.push({ latency: lat, hops: h, isDevice: 0, node });
        }
      }
    } else {
      for (const v of net.linkDevices[u - net.n] as number[]) {
        if (settled[v]) continue;
        const lat = latency[u] as number;
        const h = hops[u] as number;
        if (better(v, u, lat, h)) {
          latency[v] = lat;
          hops[v] = h;
          prev[v] = u;
          heap.push({ latency: lat, hops: h, isDevice: 1, node: v });
        }
      }
    }
  }

  const out: Candidate[] = [];
  for (let t = 0; t < net.n; t++) {
    if (t === s || !settled[t]) continue;
    const links: number[] = [];
    const devices: number[] = [];
    for (let x = t; x >= 0; x = prev[x] as number) {
      if (x < net.n) devices.push(x);
      else links.push(x - net.n);
    }
    links.reverse();
    devices.reverse();
    const bandwidth = Math.min(...links.map((l) => net.linkBandwidth[l] as number));
    out.push({ latency_ps: latency[t] as number, bandwidth, links, devices });
  }
  return out;
}

/** Keeps routes not dominated in (latency ↓, bandwidth ↑); equal ones keep the better tie-break. */
function pareto(net: Network, candidates: Candidate[]): Candidate[] {
  const names = (c: Candidate) => c.links.map((l) => net.linkNames[l] as string);
  const ids = (c: Candidate) => c.devices.map((d) => net.deviceIds[d] as string);
  const sorted = [...candidates].sort(
    (a, b) =>
      a.latency_ps - b.latency_ps ||
      b.bandwidth - a.bandwidth ||
      a.links.length - b.links.length ||
      compareStrings(names(a), names(b)) ||
      compareStrings(ids(a), ids(b)),
  );
  const kept: Candidate[] = [];
  for (const c of sorted) {
    if (kept.length === 0 || c.bandwidth > (kept[kept.length - 1] as Candidate).bandwidth) kept.push(c);
  }
  return kept;
}

interface HeapEntry {
  latency: number;
  hops: number;
  isDevice: number;
  node: number;
}

/** Route search order: latency, then hops, then devices before links, then index (deterministic ties). */
function heapLess(a: HeapEntry, b: HeapEntry): boolean {
  return (a.latency - b.latency || a.hops - b.hops || a.isDevice - b.isDevice || a.node - b.node) < 0;
}

/** Binary min-heap on (latency, hops, isDevice, node); stale entries are skipped by the caller. */
