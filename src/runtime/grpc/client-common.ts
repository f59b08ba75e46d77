// Calls to a worker (from the coordinator, or from a worker to its peers): the token in every
// call's metadata, TLS when the deployment gives a CA, message sizes bounded both ways.

import * as grpc from '@grpc/grpc-js';
import { MAX_MESSAGE_BYTES } from './proto.js';

let credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure();

/** TLS for every later call: trust `ca` (PEM); null for plain connections (loopback, a private network). */
export function useTls(ca: Buffer | null): void {
  credentials = ca ? grpc.credentials.createSsl(ca) : grpc.credentials.createInsecure();
  if (ca) quietIpServername();
}

/**
 * grpc-js names the server it dials (TLS SNI) by the address's host, an IP address too, and Node
 * then warns once per process (DEP0123: RFC 6066 gives no server name to an IP address). The
 * handshake and the certificate's check against the address are the same either way; workers are
 * mostly dialled by address, so the warning would come with every TLS run: it alone is not printed.
 */
let quieted = false;
function quietIpServername(): void {
  if (quieted) return;
  quieted = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: unknown }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

const clients = new Map<string, grpc.Client>();

/** A client for `address`: shared by the calls of this process, or (`own`) a connection of its own for the caller to close. */
export function peerClient(address: string, own = false): grpc.Client {
  const make = (): grpc.Client =>
    new grpc.Client(address, credentials, {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      // Not shared with other clients of the same address in this process.
      'grpc.use_local_subchannel_pool': 1,
    });
  if (own) return make();
  let c = clients.get(address);
  if (!c) {
    c = make();
    clients.set(address, c);
  }
  return c;
}

export function closeClients(): void {
  for (const c of clients.values()) c.close();
  clients.clear();
}

export function tokenMetadata(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}
