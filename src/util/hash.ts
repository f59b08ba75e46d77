// The one content hash hxc writes (plan.json's own hash, program hashes, model and rack hashes):
// SHA-256, lower-case hex.

import { createHash } from 'node:crypto';

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
