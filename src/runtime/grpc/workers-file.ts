// hxc-workers/v1: which worker process (hxc worker) serves which devices of a plan, and the token
// the coordinator presents to them. YAML or JSON; schema: src/schema/hxc-workers.v1.schema.json.
//
//   format: hxc-workers/v1
//   token_file: token.txt            # relative to this file; or HXC_TOKEN in the environment
//   tls: {ca: ca.pem}                # optional: workers started with --tls-cert/--tls-key
//   workers:
//     - {address: "10.0.0.1:7001", devices: [cpu0, gpu0, gpu1]}
//     - {address: "10.0.0.2:7001", devices: [gaudi0, gaudi1]}

import fs from 'node:fs';
import path from 'node:path';
import { HxcError } from '../../diag/diagnostics.js';
import { Reader, readYaml } from '../../topology/yaml-source.js';
import type { WorkerSpec } from './remote.js';
import { readBounded } from '../../util/read-file.js';

export const WORKERS_FORMAT = 'hxc-workers/v1';
const MAX_FILE_BYTES = 1 << 20;
/** A token file larger than this is not a token. */
export const MAX_TOKEN_BYTES = 4096;

export interface WorkersFile {
  workers: WorkerSpec[];
  token: string;
  ca: Buffer | null;
}

/** A token from a file: one line, trimmed, not empty; the file's size checked first. */
export function readToken(file: string, where: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new HxcError('HXC2001', `token file ${file} not found`, { where, hint: 'write a secret into a file (e.g. openssl rand -hex 32 > token.txt)' });
  }
  if (!st.isFile() || st.size > MAX_TOKEN_BYTES) throw new HxcError('HXC2002', `token file ${file} is not a small file`, { where });
  const token = readBounded(file, MAX_TOKEN_BYTES, `token file ${file}`).toString('utf8').trim();
  if (token.length < 8 || /\s/.test(token))
    throw new HxcError('HXC2002', `token file ${file} must hold one token of at least 8 characters and no spaces`, { where });
  return token;
}

/** `devices`: those that must have a worker (they have steps); `known`: every device of the plan's rack (a name outside it is a typo). */
export function readWorkersFile(file: string, devices: readonly string[], known: readonly string[] | null = null): WorkersFile {
  let text: string;
  try {
    if (fs.statSync(file).size > MAX_FILE_BYTES) throw new HxcError('HXC2106', 'the workers file is larger than 1 MiB', { where: file });
    text = readBounded(file, MAX_FILE_BYTES, 'the workers file').toString('utf8');
  } catch (err) {
    if (err instanceof HxcError) throw err;
    throw new HxcError('HXC2001', 'workers file not found', { where: file, hint: 'give an hxc-workers/v1 YAML file' });
  }
  const { data, src } = readYaml(text, file);
  const r = new Reader(src, 'see the hxc-workers/v1 schema (src/schema/hxc-workers.v1.schema.json)');
  const top = r.object(data, [], 'the workers file');
  if (top.format !== WORKERS_FORMAT) throw r.invalid(['format'], `format must be "${WORKERS_FORMAT}", found ${JSON.stringify(top.format ?? null)}`);
  for (const k of Object.keys(top)) if (!['format', 'workers', 'token_file', 'tls'].includes(k)) throw r.invalid([k], `unknown field "${k}"`);
  const list = r.list(r.required(top, 'workers', [], 'the workers file'), ['workers'], 'workers');
  const owner = new Map<string, string>();
  const workers: WorkerSpec[] = list.map((raw, i) => {
    const w = r.object(raw, ['workers', i], 'a worker');
    const address = r.string(r.required(w, 'address', ['workers', i], 'a worker', 'e.g. address: "10.0.0.1:7001"'), ['workers', i, 'address'], 'address');
    if (!/^[A-Za-z0-9._-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(address))
      throw r.invalid(['workers', i, 'address'], `address "${address}" is not HOST:PORT`);
    const devs = r
      .list(r.required(w, 'devices', ['workers', i], 'a worker'), ['workers', i, 'devices'], 'devices')
      .map((d, k) => r.string(d, ['workers', i, 'devices', k], 'a device id'));
    for (const [k, d] of devs.entries()) {
      if (owner.has(d)) throw r.invalid(['workers', i, 'devices', k], `device ${d} is given to two workers (${owner.get(d)} and ${address})`);
      if (known && !known.includes(d))
        throw r.invalid(['workers', i, 'devices', k], `device ${d} is no device of the plan (${known.join(', ')})`, 'name the devices as plan.json does');
      owner.set(d, address);
    }
    return { address, devices: devs };
  });
  const missing = devices.filter((d) => !owner.has(d));
  if (missing.length) throw r.invalid(['workers'], `no worker serves ${missing.join(', ')}`, 'every device with steps in the plan needs a worker');
  const tokenFile = top.token_file;
  let token: string;
  if (tokenFile !== undefined) token = readToken(path.resolve(path.dirname(file), r.string(tokenFile, ['token_file'], 'token_file')), r.at(['token_file']));
  else if (process.env.HXC_TOKEN) token = process.env.HXC_TOKEN;
  else throw r.invalid([], 'no token: give token_file or set HXC_TOKEN', 'the workers refuse a coordinator without their token');
  let ca: Buffer | null = null;
  if (top.tls !== undefined) {
    const tls = r.object(top.tls, ['tls'], 'tls');
    const caFile = path.resolve(path.dirname(file), r.string(r.required(tls, 'ca', ['tls'], 'tls'), ['tls', 'ca'], 'tls.ca'));
    try {
      ca = readBounded(caFile, MAX_FILE_BYTES, 'the CA file');
    } catch (err) {
      if (err instanceof HxcError) throw err;
      throw r.invalid(['tls', 'ca'], `CA file ${caFile} not found`);
    }
  }
  return { workers, token, ca };
}
