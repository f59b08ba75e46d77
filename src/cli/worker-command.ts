// `hxc worker --listen HOST:PORT --token-file FILE [--tls-cert F --tls-key F] [--tls-ca F]`: serve
// devices of plans to coordinators (src/runtime/grpc/server.ts). Prints `hxc worker: listening on
// HOST:PORT` once bound; SIGTERM or SIGINT drains (the current run finishes, at most --drain
// seconds), then exits 0.

import fs from 'node:fs';
import { HxcError } from '../diag/diagnostics.js';
import { startWorkerServer } from '../runtime/grpc/server.js';
import { readToken } from '../runtime/grpc/workers-file.js';
import { useTls } from '../runtime/grpc/client-common.js';

export interface WorkerFlags {
  listen: string;
  tokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  drain: string;
  parentWatch?: boolean;
}

const readPem = (file: string, flag: string): Buffer => {
  try {
    return fs.readFileSync(file);
  } catch {
    throw new HxcError('HXC2001', `${file} not found`, { where: flag });
  }
};

export async function workerCommand(f: WorkerFlags): Promise<void> {
  if (!/^([A-Za-z0-9._-]+|\[[0-9a-fA-F:]+\]):\d{1,5}$/.test(f.listen))
    throw new HxcError('HXC2002', `--listen takes HOST:PORT, got "${f.listen}"`, { where: '--listen' });
  if (!f.tokenFile)
    throw new HxcError('HXC2002', 'a worker needs a token', {
      where: '--token-file',
      hint: 'openssl rand -hex 32 > token.txt; give the same file to the coordinator',
    });
  const token = readToken(f.tokenFile, '--token-file');
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw new HxcError('HXC2002', 'TLS takes both --tls-cert and --tls-key', { where: '--tls-cert' });
  const tls = f.tlsCert && f.tlsKey ? { cert: readPem(f.tlsCert, '--tls-cert'), key: readPem(f.tlsKey, '--tls-key') } : null;
  useTls(f.tlsCa ? readPem(f.tlsCa, '--tls-ca') : tls ? tls.cert : null);
  const drainS = Number(f.drain);
  if (!(drainS >= 0)) throw new HxcError('HXC2002', `--drain takes seconds, got "${f.drain}"`, { where: '--drain' });
  let server: Awaited<ReturnType<typeof startWorkerServer>>;
  try {
    server = await startWorkerServer({ listen: f.listen, token, tls, log: (line) => process.stderr.write(`${line}\n`) });
  } catch (err) {
    throw new HxcError('HXC2002', `cannot listen on ${f.listen}: ${(err as Error).message}`, { where: '--listen' });
  }
  process.stdout.write(`hxc worker: listening on ${server.address}\n`);
  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    if (!f.parentWatch) process.stderr.write(`hxc worker: ${why}: draining\n`);
    void server.drain(drainS * 1000).then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Spawned by a coordinator: its end (its pipe closing) ends this worker at once.
  if (f.parentWatch) {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
  }
  await new Promise<never>(() => {});
}
