// A user's input file, read whole within a bound. stat's size is 0 for a device (/dev/zero), a pipe
// or a socket, which may also never end: a size checked that way let `hxc topology /dev/zero` grow
// to gigabytes. So the file is opened (without waiting on a pipe that has no writer), must be a
// regular file, and is read no further than the bound: one that grows meanwhile is refused too.

import fs from 'node:fs';
import { HxcError } from '../diag/diagnostics.js';

/**
 * The bytes of `file`, a regular file of at most `maxBytes`. `what` names it in the line said ("the
 * topology file"). A file that cannot be opened (ENOENT, EACCES) throws the system's error as it
 * is, for the caller's own words; a folder, a non-regular file or one too large is an HxcError.
 */
export function readBounded(file: string, maxBytes: number, what: string): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new HxcError('HXC2001', `${what} is a folder, not a file`, { where: file, hint: 'name the file inside it' });
    if (!st.isFile())
      throw new HxcError('HXC2001', `${what} is not a regular file (a device, a pipe or a socket has no size to check)`, {
        where: file,
        hint: 'save it to a file and give that',
      });
    const tooBig = (bytes: string): HxcError => new HxcError('HXC2106', `${what} has ${bytes} bytes, more than the ${maxBytes} hxc reads`, { where: file });
    if (st.size > maxBytes) throw tooBig(String(st.size));
    // Room for one byte past the bound: reading it means the file grew beyond it.
    let buf = Buffer.allocUnsafe(Math.min(maxBytes, st.size) + 1);
    let got = 0;
    for (;;) {
      if (got === buf.length) {
        if (got > maxBytes) throw tooBig(`over ${maxBytes}`);
        // Grown since it was measured: read on in a larger buffer, still within the bound.
        const more = Buffer.allocUnsafe(Math.min(maxBytes + 1, 2 * buf.length));
        buf.copy(more, 0, 0, got);
        buf = more;
      }
      const n = fs.readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) return buf.subarray(0, got);
      got += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
