// `hxc worker --listen HOST:PORT --token-file FILE [--tls-cert F --tls-key F] [--tls-ca F]`: serve
// devices of plans to coordinators (src/runtime/grpc/server.ts). Prints `hxc worker: listening on
// HOST:PORT` once bound; SIGTERM or SIGINT drains (the current run finishes, at most --drain
// seconds), then exits 0.

import { HxcError } from '../diag/diagnostics.js';
import { startWorkerServer } from '../runtime/grpc/server.js';
import { readToken } from '../runtime/grpc/workers-file.js';
import { closeClients, peerClient, tokenMetadata, useTls } from '../runtime/grpc/client-common.js';
import { decodeEnvelope, encodeEnvelope, WORKER_SERVICE } from '../runtime/grpc/proto.js';
import { readBounded } from '../util/read-file.js';

export interface WorkerFlags {
  listen?: string;
  health?: string;
  tokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  drain: string;
  parentWatch?: boolean;
  json?: boolean;
}

const readPem = (file: string, flag: string): Buffer => {
  try {
    return readBounded(file, 1 << 20, `${flag} ${file}`);
  } catch (err) {
    if (err instanceof HxcError) throw err;
    throw new HxcError('HXC2001', `${file} not found`, { where: flag });
  }
};

const ADDRESS = /^([A-Za-z0-9._-]+|\[[0-9a-fA-F:]+\]):\d{1,5}$/;

/** `hxc worker --health ADDRESS`: the worker's Health answer, within 5 seconds. */
async function health(f: WorkerFlags, address: string): Promise<void> {
  if (!ADDRESS.test(address)) throw new HxcError('HXC2002', `--health takes HOST:PORT, got "${address}"`, { where: '--health' });
  if (!f.tokenFile) throw new HxcError('HXC2002', 'a health check presents the token too', { where: '--token-file' });
  const token = readToken(f.tokenFile, '--token-file');
  useTls(f.tlsCa ? readPem(f.tlsCa, '--tls-ca') : null);
  const client = peerClient(address);
  const reply = await new Promise<Buffer>((resolve, reject) =>
    client.makeUnaryRequest(
      WORKER_SERVICE.health!.path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      encodeEnvelope({ json: '{"type":"health"}' }),
      tokenMetadata(token),
      { deadline: Date.now() + 5000 },
      (err, value) => (err || !value ? reject(err ?? new Error('no answer')) : resolve(value)),
    ),
  ).catch((err: { details?: string; message: string }) => {
    throw new HxcError('HXC2603', `the worker at ${address} does not answer: ${err.details || err.message}`, { where: '--health' });
  });
  closeClients();
  const status = JSON.parse(decodeEnvelope(reply).json) as { status: string };
  process.stdout.write(`${JSON.stringify({ address, ...status })}\n`);
  if (status.status !== 'serving') process.exitCode = 1;
}

export async function workerCommand(f: WorkerFlags): Promise<void> {
  if (f.health !== undefined) return health(f, f.health);
  if (f.listen === undefined)
    throw new HxcError('HXC2002', 'a worker needs an address to listen on', { where: '--listen', hint: 'e.g. --listen 0.0.0.0:7001' });
  if (!ADDRESS.test(f.listen)) throw new HxcError('HXC2002', `--listen takes HOST:PORT, got "${f.listen}"`, { where: '--listen' });
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
    throw listenError(f.listen, err);
  }
  process.stdout.write(f.json ? `${JSON.stringify({ listening: server.address })}\n` : `hxc worker: listening on ${server.address}\n`);
  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    if (!f.parentWatch) process.stderr.write(`hxc worker: ${why}: draining\n`);
    void server.drain(drainS * 1000).then(() => process.exit(0));
  };
  // However the process ends (a coordinator gone, a drain done), the sessions' folders go with it:
  // each holds copies of a plan's programs, weights included.
  process.on('exit', () => server.discard());
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

/** Why a worker could not listen, in one line: the system's reason (grpc-js wraps it in its own words), and what to do. */
function listenError(listen: string, err: unknown): HxcError {
  const raw = err instanceof Error ? err.message : String(err);
  const known: [RegExp, string, string][] = [
    [/EADDRINUSE/, 'the address is in use', 'choose another port, or stop the process that listens there'],
    [/EADDRNOTAVAIL/, 'no interface of this machine has that address', "listen on 0.0.0.0, or on one of this machine's addresses"],
    [/EACCES/, 'permission denied', 'ports below 1024 need privileges: choose a port above 1024'],
  ];
  // A certificate or key that is no PEM fails the bind too, in OpenSSL's words: it is the files' fault.
  if (/PEM routines|no start line|ASN1|bad end line|key values mismatch/i.test(raw))
    return new HxcError('HXC2002', `the TLS certificate or key cannot be used: ${raw.replace(/^.*?error:[0-9A-F]+:/, '')}`, {
      where: '--tls-cert',
      hint: 'give a PEM certificate (--tls-cert) and its PEM private key (--tls-key), e.g. from openssl req -x509 -newkey rsa:2048 -nodes',
    });
  const hit = known.find(([re]) => re.test(raw));
  return hit
    ? new HxcError('HXC2002', `cannot listen on ${listen}: ${hit[1]}`, { where: '--listen', hint: hit[2] })
    : new HxcError('HXC2002', `cannot listen on ${listen}: ${raw}`, { where: '--listen', hint: 'check HOST:PORT' });
}
