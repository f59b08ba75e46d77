// Reads a topology (`hxc-topology/v1` YAML) into a normalized, fully numeric Topology: ranges
// expanded, units turned into SI numbers, catalog defaults filled in, every name checked. Every
// error is an HxcError whose `where` is `file:line` of the offending YAML node. Relies on `yaml`
// (parseDocument + LineCounter for positions, maxAliasCount against alias bombs), units.ts, catalog.ts.

import { statSync } from 'node:fs';
import { HxcError } from '../diag/diagnostics.js';
import type { ComputeClass, DeviceKind } from './catalog.js';
import { parseBandwidth, parseSeconds } from './units.js';
import { sha256 } from '../util/hash.js';
import { ID_PATTERN, MAX_FILE_BYTES, type Path } from './load-limits.js';
import { closeMatches, describe, expandIds, own, Reader, readYaml } from './yaml-source.js';
import { readDevice } from './read-device.js';
import { positive } from './read-device.js';
import { readBounded } from '../util/read-file.js';
export { DTYPES } from './load-limits.js';
export { closeMatches, expandIds } from './yaml-source.js';
export { normalizeDtype } from './read-device.js';

export type { DeviceKind } from './catalog.js';

export const TOPOLOGY_FORMAT = 'hxc-topology/v1';
export const LINK_KINDS = ['nvlink', 'pcie', 'ethernet', 'cxl', 'infiniband', 'other'] as const;

export interface Device {
  id: string;
  kind: DeviceKind;
  model: string | null;
  host: string | null;
  /** FLOP/s per dtype name (fp32, tf32, fp16, bf16, fp8, int8, ...); see peakFlops() for ONNX names. */
  peak_flops: Record<string, number>;
  memory_capacity_bytes: number;
  memory_bandwidth_bytes_per_s: number;
  launch_s: number;
  /** Fraction of peak FLOP/s achieved (every op class without its own entry below). */
  efficiency: number;
  /** Per op class where it differs from `efficiency`. */
  class_efficiency: Partial<Record<ComputeClass, number>>;
  /** Fraction of memory_bandwidth_bytes_per_s achieved. */
  memory_efficiency: number;
  /** SMs a tiled kernel fills in waves (GPUs); null: not modelled. */
  compute_units: number | null;
  /** include: null = every op (minus exclude); otherwise only these. Entries: `Op` or `domain.Op`. */
  ops: { include: string[] | null; exclude: string[] };
}

export interface Link {
  name: string;
  kind: string;
  devices: string[];
  bandwidth_bytes_per_s: number;
  latency_s: number;
  shared: boolean;
}

export interface Topology {
  format: 'hxc-topology/v1';
  name: string;
  devices: Device[];
  links: Link[];
  hosts: { id: string; devices: string[] }[];
  source: { file: string | null; sha256: string };
}

/** Reads and parses a topology file. Missing or unreadable file → HXC2001 naming the path. */
export function loadTopology(path: string): Topology {
  let bytes: Buffer;
  try {
    const size = statSync(path).size;
    if (size > MAX_FILE_BYTES) {
      throw new HxcError('HXC2106', `topology file is ${size} bytes, more than the ${MAX_FILE_BYTES} allowed`, { where: path });
    }
    bytes = readBounded(path, MAX_FILE_BYTES, 'the topology file');
  } catch (err) {
    if (err instanceof HxcError) throw err;
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new HxcError('HXC2001', `cannot read topology file: ${reason}`, { where: path, hint: 'check the --topology path' });
  }
  return build(bytes.toString('utf8'), path, sha256(bytes));
}

/** Parses topology text; `file` is used in error locations and recorded as source.file. */
export function parseTopology(text: string, file: string): Topology {
  return build(text, file, sha256(Buffer.from(text, 'utf8')));
}

export { sha256 } from '../util/hash.js';

// The topology itself.

function build(text: string, file: string, digest: string): Topology {
  const { data, src } = readYaml(text, file);
  const r = new Reader(src);
  const top = r.object(data ?? null, [], 'a topology file');

  const format = own(top, 'format');
  if (format !== TOPOLOGY_FORMAT) {
    const found = format === undefined ? 'no "format" field' : `format ${describe(format)}`;
    throw r.invalid(['format'], `expected format "${TOPOLOGY_FORMAT}", found ${found}`, `start the file with "format: ${TOPOLOGY_FORMAT}"`);
  }
  const name = r.string(r.required(top, 'name', [], 'topology'), ['name'], 'name');

  const rawDevices = r.list(r.required(top, 'devices', [], 'topology', 'list the devices'), ['devices'], 'devices');
  if (rawDevices.length === 0) throw r.invalid(['devices'], 'devices is empty: a topology needs at least one device');
  const devices: Device[] = [];
  const defined = new Map<string, Path>();
  rawDevices.forEach((raw, i) => {
    for (const device of readDevice(r, raw, ['devices', i])) {
      const first = defined.get(device.id);
      if (first) {
        throw new HxcError('HXC2306', `device id "${device.id}" is defined twice (first at ${r.at(first)})`, {
          where: r.at(['devices', i, 'id']),
          hint: 'give each device its own id',
        });
      }
      defined.set(device.id, ['devices', i, 'id']);
      devices.push(device);
    }
  });
  const ids = devices.map((d) => d.id);
  const known = new Set(ids);

  const rawLinks = own(top, 'links') ?? [];
  const links = r.list(rawLinks, ['links'], 'links').map((raw, i) => readLink(r, raw, ['links', i], ids, known));
  const linkNames = new Map<string, number>();
  links.forEach((link, i) => {
    const first = linkNames.get(link.name);
    if (first !== undefined) {
      throw r.invalid(
        ['links', i, 'name'],
        `link name "${link.name}" is used twice (first at ${r.at(['links', first, 'name'])})`,
        'routes name links, so names must be unique',
      );
    }
    linkNames.set(link.name, i);
  });

  const hosts = readHosts(r, own(top, 'hosts'), ids, known);
  const hostOf = new Map<string, string>();
  for (const host of hosts) for (const id of host.devices) hostOf.set(id, host.id);
  for (const device of devices) device.host = hostOf.get(device.id) ?? null;

  checkConnected(r, devices, links, defined);
  return { format: TOPOLOGY_FORMAT, name, devices, links, hosts, source: { file, sha256: digest } };
}

function readLink(r: Reader, raw: unknown, path: Path, ids: readonly string[], known: ReadonlySet<string>): Link {
  const l = r.object(raw, path, `link ${path[1]}`);
  const name = r.string(r.required(l, 'name', path, `link ${path[1]}`), [...path, 'name'], 'link name');
  if (!ID_PATTERN.test(name)) throw r.invalid([...path, 'name'], `link name "${name}" has characters other than letters, digits, "_", "-" and "."`);
  const what = `link "${name}"`;
  const kindRaw = own(l, 'kind') ?? 'other';
  if (!(LINK_KINDS as readonly unknown[]).includes(kindRaw)) {
    throw r.invalid([...path, 'kind'], `${what}: unknown kind ${describe(kindRaw)}`, `use one of ${LINK_KINDS.join(' | ')}`);
  }
  const connects = r.list(r.required(l, 'connects', path, what, 'list the devices it joins'), [...path, 'connects'], `${what} connects`);
  const devices: string[] = [];
  connects.forEach((item, k) => {
    const at = [...path, 'connects', k];
    for (const id of expandOrThrow(r, r.string(item, at, `${what} connects entry`), at)) {
      if (!known.has(id)) throw unknownDevice(r, `${what} names unknown device "${id}"`, id, ids, at);
      if (!devices.includes(id)) devices.push(id);
    }
  });
  if (devices.length < 2) throw r.invalid([...path, 'connects'], `${what} connects ${devices.length} device; a link joins two or more`);
  const bandwidth_bytes_per_s = positive(
    r,
    parseBandwidth(r.required(l, 'bandwidth', path, what, 'add bandwidth: 64GB/s'), r.at([...path, 'bandwidth'])),
    [...path, 'bandwidth'],
    `${what} bandwidth`,
  );
  const latency_s = parseSeconds(r.required(l, 'latency', path, what, 'add latency: 2us'), r.at([...path, 'latency']));
  const sharedRaw = own(l, 'shared') ?? false;
  if (typeof sharedRaw !== 'boolean') throw r.invalid([...path, 'shared'], `${what}: shared must be true or false, found ${describe(sharedRaw)}`);
  return { name, kind: kindRaw as string, devices, bandwidth_bytes_per_s, latency_s, shared: sharedRaw };
}

function readHosts(r: Reader, raw: unknown, ids: readonly string[], known: ReadonlySet<string>): Topology['hosts'] {
  if (raw === undefined || raw === null) return [];
  const hosts: Topology['hosts'] = [];
  const owner = new Map<string, string>();
  r.list(raw, ['hosts'], 'hosts').forEach((item, i) => {
    const path = ['hosts', i];
    const h = r.object(item, path, `host ${i}`);
    const id = r.string(r.required(h, 'id', path, `host ${i}`), [...path, 'id'], 'host id');
    if (hosts.some((x) => x.id === id)) throw r.invalid([...path, 'id'], `host id "${id}" is used twice`);
    const devices: string[] = [];
    r.list(r.required(h, 'devices', path, `host "${id}"`), [...path, 'devices'], `host "${id}" devices`).forEach((entry, k) => {
      const at = [...path, 'devices', k];
      for (const dev of expandOrThrow(r, r.string(entry, at, `host "${id}" devices entry`), at)) {
        if (!known.has(dev)) throw unknownDevice(r, `host "${id}" names unknown device "${dev}"`, dev, ids, at);
        const other = owner.get(dev);
        if (other !== undefined && other !== id) throw r.invalid(at, `device "${dev}" is in two hosts, "${other}" and "${id}"`);
        owner.set(dev, id);
        if (!devices.includes(dev)) devices.push(dev);
      }
    });
    hosts.push({ id, devices });
  });
  return hosts;
}

function expandOrThrow(r: Reader, text: string, at: Path): string[] {
  const expanded = expandIds(text);
  if (typeof expanded === 'string') throw r.invalid(at, expanded);
  return expanded;
}

function unknownDevice(r: Reader, message: string, id: string, ids: readonly string[], at: Path): HxcError {
  const close = closeMatches(id, ids);
  const list =
    close.length > 0 ? ` (did you mean ${close.join(', ')}?)` : ` (devices: ${ids.slice(0, 8).join(', ')}${ids.length > 8 ? `, … ${ids.length} in all` : ''})`;
  return new HxcError('HXC2304', message + list, { where: r.at(at), hint: 'declare the device under devices, or fix the name' });
}

/** Every device must reach every other over links (relays allowed); one device needs no link. */
function checkConnected(r: Reader, devices: readonly Device[], links: readonly Link[], defined: ReadonlyMap<string, Path>): void {
  if (devices.length < 2) return;
  const parent = new Map<string, string>(devices.map((d) => [d.id, d.id]));
  const find = (x: string): string => {
    let root = x;
    while (parent.get(root) !== root) root = parent.get(root) as string;
    parent.set(x, root);
    return root;
  };
  for (const link of links) for (const id of link.devices.slice(1)) parent.set(find(id), find(link.devices[0] as string));
  const first = (devices[0] as Device).id;
  const lonely = devices.filter((d) => find(d.id) !== find(first));
  if (lonely.length > 0) {
    const names =
      lonely
        .map((d) => `"${d.id}"`)
        .slice(0, 5)
        .join(', ') + (lonely.length > 5 ? ` and ${lonely.length - 5} more` : '');
    throw new HxcError('HXC2307', `device ${names} cannot be reached from "${first}" over any link`, {
      where: r.at(defined.get((lonely[0] as Device).id) ?? []),
      hint: 'add a link that connects it (any device can relay)',
    });
  }
}
