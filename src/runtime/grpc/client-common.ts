// Calls to a worker (from the coordinator, or from a worker to its peers): the token in every
// call's metadata, TLS when the deployment gives a CA, message sizes bounded both ways.

import * as grpc from '@grpc/grpc-js';
import { MAX_MESSAGE_BYTES } from './proto.js';

let credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure();

/** TLS for every later call: trust `ca` (PEM); null for plain connections (loopback, a private network). */
export function useTls(ca: Buffer | null): void {
  credentials = ca ? grpc.credentials.createSsl(ca) : grpc.credentials.createInsecure();
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
