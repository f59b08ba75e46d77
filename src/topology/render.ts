// Printing a topology for people (`hxc topology`) and for machines (`hxc topology --json`).
// Text: devices, links, then the device-to-device route matrix for a large transfer. JSON: a stable
// object with units in field names. Both are deterministic: file order, fixed number formatting.

import { DTYPES } from './load.js';
import type { Device, Topology } from './load.js';
import type { RouteTable } from './routes.js';
import { deviceClasses, linkClasses, routeClasses, type DeviceClass, type LinkClass, type RouteClass } from './classes.js';

/** Racks with more devices print classes (devices, links, routes), not every device and pair, unless asked for the matrix. */
export const LARGE_RACK_DEVICES = 32;
import { formatNumber } from './units.js';

/** Routes are shown for a transfer this large: big enough that bandwidth, not latency, dominates. */
export const ROUTE_BYTES = 64 * 2 ** 20;

const BOLD = ['\x1b[1m', '\x1b[22m'] as const;
const DIM = ['\x1b[2m', '\x1b[22m'] as const;

type Align = 'left' | 'right';

/** A plain-text table: columns padded on the uncoloured text, colour applied afterwards. */
function table(header: string[], rows: string[][], align: Align[], color: boolean, indent = '  '): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const pad = (text: string, c: number) => (align[c] === 'right' ? text.padStart(widths[c] as number) : text.padEnd(widths[c] as number));
  const paint = (text: string, style: readonly [string, string]) => (color ? style[0] + text + style[1] : text);
  const line = (cells: string[], head: boolean) =>
    (
      indent +
      cells
        .map((cell, c) => {
          const padded = pad(cell, c);
          if (head) return paint(padded, BOLD);
          return cell === '-' ? paint(padded, DIM) : padded;
        })
        .join('  ')
    ).trimEnd();
  return [line(header, true), ...rows.map((r) => line(r, false))];
}

/** `gpu0, gpu1, gpu2, gpu3` → `gpu[0-3]`: runs of consecutive numbers with the same prefix. */
export function compactIds(ids: readonly string[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < ids.length) {
    const m = /^(.*?)(\d+)$/.exec(ids[i] as string);
    let j = i + 1;
    if (m && !((m[2] as string).length > 1 && (m[2] as string).startsWith('0'))) {
      const prefix = m[1] as string;
      let next = Number(m[2]) + 1;
      while (j < ids.length && ids[j] === `${prefix}${next}`) {
        j++;
        next++;
      }
      parts.push(j - i >= 3 ? `${prefix}[${m[2]}-${next - 1}]` : ids.slice(i, j).join(', '));
    } else {
      parts.push(ids[i] as string);
    }
    i = j;
  }
  return parts.join(', ');
}

function dtypesShown(devices: readonly Device[]): string[] {
  return DTYPES.filter((t) => devices.some((d) => d.peak_flops[t] !== undefined));
}

export function renderTopology(topo: Topology, routes: RouteTable, color: boolean, opts: { matrix?: boolean } = {}): string {
  const title = (text: string) => (color ? BOLD[0] + text + BOLD[1] : text);
  const out: string[] = [];
  const file = topo.source.file ?? 'built-in default';
  out.push(`${title('topology')} ${topo.name}  (${file}, sha256 ${topo.source.sha256.slice(0, 12)})`);
  out.push([count(topo.devices.length, 'device'), count(topo.links.length, 'link'), count(topo.hosts.length, 'host')].join(', '));
  if (topo.devices.length > LARGE_RACK_DEVICES && !opts.matrix) return renderSummary(topo, routes, color, out, title);

  const dtypes = dtypesShown(topo.devices);
  out.push('', title('devices'));
  out.push(
    ...table(
      ['id', 'kind', 'model', 'host', 'mem GiB', 'mem GB/s', ...dtypes, 'launch us', 'eff'],
      topo.devices.map((d) => [
        d.id,
        d.kind,
        d.model ?? '-',
        d.host ?? '-',
        formatNumber(d.memory_capacity_bytes / 2 ** 30),
        formatNumber(d.memory_bandwidth_bytes_per_s / 1e9),
        ...dtypes.map((t) => (d.peak_flops[t] !== undefined ? formatNumber((d.peak_flops[t] as number) / 1e12) : '-')),
        formatNumber(d.launch_s * 1e6),
        formatNumber(d.efficiency),
      ]),
      ['left', 'left', 'left', 'left', 'right', 'right', ...dtypes.map((): Align => 'right'), 'right', 'right'],
      color,
    ),
  );
  if (dtypes.length > 0) out.push(`  (${dtypes.join(', ')}: peak dense TFLOP/s; '-' = not given, a slower listed dtype is used)`);
  const restricted = topo.devices.filter((d) => d.ops.include !== null || d.ops.exclude.length > 0);
  for (const d of restricted) {
    const include = d.ops.include === null ? 'all ops' : `${d.ops.include.length} ops`;
    out.push(`  ops ${d.id}: ${include}${d.ops.exclude.length ? `, except ${d.ops.exclude.join(', ')}` : ''}`);
  }

  out.push('', title('links'));
  if (topo.links.length === 0) out.push('  (none)');
  else {
    out.push(
      ...table(
        ['name', 'kind', 'devices', 'GB/s', 'latency us', 'shared'],
        topo.links.map((l) => [
          l.name,
          l.kind,
          compactIds(l.devices),
          formatNumber(l.bandwidth_bytes_per_s / 1e9),
          formatNumber(l.latency_s * 1e6),
          l.shared ? 'yes' : 'no',
        ]),
        ['left', 'left', 'left', 'right', 'right', 'left'],
        color,
      ),
    );
  }

  if (topo.hosts.length > 0) {
    out.push('', title('hosts'));
    out.push(
      ...table(
        ['id', 'devices'],
        topo.hosts.map((h) => [h.id, compactIds(h.devices)]),
        ['left', 'left'],
        color,
      ),
    );
  }

  if (topo.devices.length > 1) {
    const m = routes.matrix(ROUTE_BYTES);
    const grid = (label: string, value: (i: number, j: number) => string) => {
      out.push('', title(label));
      out.push(
        ...table(
          ['from \\ to', ...m.devices],
          m.devices.map((id, i) => [id, ...m.devices.map((_, j) => value(i, j))]),
          ['left', ...m.devices.map((): Align => 'right')],
          color,
        ),
      );
    };
    const cell = (i: number, j: number) => m.cells[i]?.[j] ?? null;
    grid('routes, 64 MiB transfer: effective GB/s (bytes / time, latency included)', (i, j) => {
      const c = cell(i, j);
      return c ? formatNumber(c.effective_bytes_per_s / 1e9) : '-';
    });
    grid('routes, 64 MiB transfer: latency us', (i, j) => {
      const c = cell(i, j);
      return c ? formatNumber(c.latency_s * 1e6) : '-';
    });
    grid('routes, 64 MiB transfer: links crossed', (i, j) => {
      const c = cell(i, j);
      return c ? String(c.hops) : '-';
    });
  }
  return out.join('\n') + '\n';
}

/** A large rack: its device, link and route classes. */
function renderSummary(topo: Topology, routes: RouteTable, color: boolean, out: string[], title: (t: string) => string): string {
  const devices = deviceClasses(topo);
  const byId = new Map(topo.devices.map((d) => [d.id, d]));
  const dtypes = dtypesShown(topo.devices);
  out.push('', title('device classes') + ' (same part, same pattern of links)');
  out.push(
    ...table(
      ['class', 'count', 'devices', 'mem GiB', 'mem GB/s', ...dtypes, 'launch us'],
      devices.map((c) => {
        const d = byId.get(c.representative)!;
        return [
          c.name,
          String(c.devices.length),
          abbreviate(compactIds(c.devices)),
          formatNumber(d.memory_capacity_bytes / 2 ** 30),
          formatNumber(d.memory_bandwidth_bytes_per_s / 1e9),
          ...dtypes.map((t) => (d.peak_flops[t] !== undefined ? formatNumber((d.peak_flops[t] as number) / 1e12) : '-')),
          formatNumber(d.launch_s * 1e6),
        ];
      }),
      ['left', 'right', 'left', 'right', 'right', ...dtypes.map((): Align => 'right'), 'right'],
      color,
    ),
  );
  // A class's op limits, as the device table says them on a small rack (a class is one part: one set of limits).
  for (const c of devices) {
    const d = byId.get(c.representative)!;
    if (d.ops.include === null && d.ops.exclude.length === 0) continue;
    const include = d.ops.include === null ? 'all ops' : d.ops.include.length <= 8 ? `only ${d.ops.include.join(', ')}` : `${d.ops.include.length} ops`;
    out.push(`  ops ${c.name}: ${include}${d.ops.exclude.length ? `, except ${d.ops.exclude.join(', ')}` : ''}`);
  }
  out.push('', title('link classes'));
  out.push(
    ...table(
      ['kind', 'count', 'devices each', 'GB/s', 'latency us', 'shared', 'links'],
      linkClasses(topo).map((l) => [
        l.kind,
        String(l.links.length),
        String(l.size),
        formatNumber(l.bandwidth_bytes_per_s / 1e9),
        formatNumber(l.latency_s * 1e6),
        l.shared ? 'yes' : 'no',
        abbreviate(compactIds(l.links)),
      ]),
      ['left', 'right', 'right', 'right', 'right', 'left', 'left'],
      color,
    ),
  );
  if (topo.hosts.length > 0) out.push('', `${title('hosts')} ${abbreviate(compactIds(topo.hosts.map((h) => h.id)))}`);
  if (topo.devices.length > 1) {
    out.push('', title('route classes') + ", 64 MiB transfer, from each class's first device");
    out.push(
      ...table(
        ['from', 'to', 'same host', 'targets', 'links crossed', 'via', 'GB/s', 'latency us', 'effective GB/s'],
        routeClasses(topo, routes, devices, ROUTE_BYTES).map((r) => {
          const time = r.latency_s + ROUTE_BYTES / r.bandwidth_bytes_per_s;
          return [
            r.from_class,
            r.to_class,
            r.same_host ? 'yes' : 'no',
            String(r.count),
            String(r.hops),
            r.kinds.join(' → '),
            formatNumber(r.bandwidth_bytes_per_s / 1e9),
            formatNumber(r.latency_s * 1e6),
            formatNumber(ROUTE_BYTES / time / 1e9),
          ];
        }),
        ['left', 'left', 'left', 'right', 'right', 'left', 'right', 'right', 'right'],
        color,
      ),
    );
  }
  out.push('', `(${topo.devices.length} devices: classes shown; \`hxc topology FILE --matrix\` prints every device and pair)`);
  return out.join('\n') + '\n';
}

function abbreviate(text: string, max = 60): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The JSON form of a topology (what `hxc topology --json` prints). Field order is fixed. */
export interface TopologyJson {
  format: 'hxc-topology/v1';
  name: string;
  source: { file: string | null; sha256: string };
  devices: Device[];
  links: { name: string; kind: string; devices: string[]; bandwidth_bytes_per_s: number; latency_s: number; shared: boolean }[];
  hosts: { id: string; devices: string[] }[];
  /** Size of the transfer the routes are chosen for (64 MiB). */
  route_bytes: number;
  device_classes: DeviceClass[];
  link_classes: LinkClass[];
  /** Routes from each device class's representative, grouped by shape. */
  route_classes: RouteClass[];
  /** Every ordered pair of distinct devices, in device order: racks of at most 32 devices, or with --matrix. */
  routes?: { from: string; to: string; links: string[]; hops: string[]; latency_s: number; bandwidth_bytes_per_s: number; time_s: number }[];
}

export function topologyToJson(topo: Topology, routes: RouteTable, opts: { matrix?: boolean } = {}): TopologyJson {
  const order = (flops: Record<string, number>): Record<string, number> => {
    const keys = Object.keys(flops).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(keys.map((k) => [k, flops[k] as number]));
  };
  const pairs: NonNullable<TopologyJson['routes']> = [];
  const listed = topo.devices.length <= LARGE_RACK_DEVICES || opts.matrix === true;
  if (listed)
    topo.devices.forEach((_, i) =>
      topo.devices.forEach((__, j) => {
        if (i === j) return;
        const r = routes.routeIdx(i, j, ROUTE_BYTES);
        pairs.push({
          from: r.from,
          to: r.to,
          links: r.links,
          hops: r.hops,
          latency_s: r.latency_s,
          bandwidth_bytes_per_s: r.bandwidth_bytes_per_s,
          time_s: r.time_s,
        });
      }),
    );
  const classes = deviceClasses(topo);
  return {
    format: topo.format,
    name: topo.name,
    source: { file: topo.source.file, sha256: topo.source.sha256 },
    devices: topo.devices.map((d) => ({
      id: d.id,
      kind: d.kind,
      model: d.model,
      host: d.host,
      peak_flops: order(d.peak_flops),
      memory_capacity_bytes: d.memory_capacity_bytes,
      memory_bandwidth_bytes_per_s: d.memory_bandwidth_bytes_per_s,
      launch_s: d.launch_s,
      efficiency: d.efficiency,
      class_efficiency: d.class_efficiency,
      memory_efficiency: d.memory_efficiency,
      compute_units: d.compute_units,
      ops: { include: d.ops.include ? [...d.ops.include] : null, exclude: [...d.ops.exclude] },
    })),
    links: topo.links.map((l) => ({
      name: l.name,
      kind: l.kind,
      devices: [...l.devices],
      bandwidth_bytes_per_s: l.bandwidth_bytes_per_s,
      latency_s: l.latency_s,
      shared: l.shared,
    })),
    hosts: topo.hosts.map((h) => ({ id: h.id, devices: [...h.devices] })),
    route_bytes: ROUTE_BYTES,
    device_classes: classes,
    link_classes: linkClasses(topo),
    route_classes: routeClasses(topo, routes, classes, ROUTE_BYTES),
    ...(listed ? { routes: pairs } : {}),
  };
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function rank(dtype: string): number {
  const i = (DTYPES as readonly string[]).indexOf(dtype);
  return i < 0 ? DTYPES.length : i;
}
