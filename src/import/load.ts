// Model loading: read the file once (size-checked), sniff what it is from its first bytes rather
// than its name, and hand it to the ONNX or JSON importer.

import fs from 'node:fs';
import path from 'node:path';
import { HxcError, type Diagnostics } from '../diag/diagnostics.js';
import type { Model } from '../ir/graph.js';
import { importJsonGraph } from './json.js';
import { importOnnx, MAX_ONNX_FILE_BYTES } from './onnx.js';
import { sha256 } from '../util/hash.js';
import { readBounded } from '../util/read-file.js';

/** Read a whole input file, turning every failure into one clear line. */
export function readInputFile(file: string, what: string, maxBytes: number): Buffer {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new HxcError('HXC2001', `${what} does not exist`, { where: file, hint: 'check the path' });
  }
  if (stat.isDirectory()) throw new HxcError('HXC2001', `${what} is a folder, not a file`, { where: file, hint: 'name the file inside it' });
  if (stat.size > maxBytes) {
    throw new HxcError('HXC2106', `${what} is ${stat.size} bytes, more than the ${maxBytes} hxc accepts`, {
      where: file,
      hint: 'keep weights in ONNX external data; the graph file itself must stay under 2 GiB',
    });
  }
  try {
    return readBounded(file, maxBytes, what);
  } catch (err) {
    if (err instanceof HxcError) throw err;
    throw new HxcError('HXC2001', `cannot read ${what}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      where: file,
      hint: "check the file's permissions",
    });
  }
}

/**
 * JSON when the first character after whitespace (and a UTF-8 byte-order mark) opens an object or
 * an array — a serialized ONNX ModelProto starts with a field tag, never with these — else ONNX.
 */
export function sniffFormat(buffer: Buffer): 'json' | 'onnx' {
  const start = buffer[0] === 0xef && buffer[1] === 0xbb && buffer[2] === 0xbf ? 3 : 0;
  for (let i = start; i < Math.min(buffer.length, start + 64); i++) {
    const c = buffer[i]!;
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    return c === 0x7b /* { */ || c === 0x5b /* [ */ ? 'json' : 'onnx';
  }
  return 'onnx';
}

export function loadModel(file: string, diagnostics: Diagnostics): Model {
  const buffer = readInputFile(file, 'model file', MAX_ONNX_FILE_BYTES);
  const hash = sha256(buffer);
  const base = { path: file, sha256: hash, file_bytes: buffer.length };
  if (sniffFormat(buffer) === 'json') {
    return { ...importJsonGraph(file, buffer.toString('utf8')), ...base, dir: path.dirname(path.resolve(file)) };
  }
  // No ModelProto outlives the import: it decodes the graph's NodeProtos one at a time
  // (src/import/onnx.ts decodeModel), and lowering reads them back by their byte ranges
  // (src/lower/programs.ts indexSource), so a frontier-sized model's ~850 MB of decoded node
  // objects never live together.
  return { ...importOnnx(file, buffer, diagnostics), ...base, source: buffer };
}
