// A fuzz worker: reads cases (one JSON per line) from stdin, runs each hxc command in this process
// (its own folder as the current directory, stdout and stderr captured) and writes one JSON result
// per line. The parent watches it: a case that hangs or crashes the process is the parent's to
// classify, and it starts a new worker.

import fs from 'node:fs';
import path from 'node:path';
import { runCli } from '../cli/main.js';
import type { FuzzCase } from './cases.js';

export interface CaseResult {
  index: number;
  code: number;
  stdout: string;
  stderr: string;
}

function applyFiles(c: FuzzCase, dir: string, base: string): void {
  for (const f of c.files) {
    const p = path.join(dir, f.path);
    if (f.op === 'write') {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.rmSync(p, { recursive: true, force: true });
      fs.writeFileSync(p, Buffer.from(f.base64, 'base64'));
    } else if (f.op === 'copy-dir') fs.cpSync(path.join(base, f.from), p, { recursive: true });
    else if (f.op === 'remove') fs.rmSync(p, { recursive: true, force: true });
    else fs.symlinkSync(f.target, p);
  }
}

async function runCase(c: FuzzCase, root: string, base: string): Promise<CaseResult> {
  const dir = path.join(root, `case-${c.index}`);
  fs.mkdirSync(dir, { recursive: true });
  applyFiles(c, dir, base);
  const argv = c.argv.map((a) => a.replaceAll('{case}', dir).replaceAll('{base}', base));
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  const cwd = process.cwd();
  process.chdir(dir);
  process.exitCode = undefined;
  let code: number;
  try {
    code = await runCli(['node', 'hxc', ...argv]);
  } catch (e) {
    code = 99;
    stderr += `UNCAUGHT ${(e as Error).stack ?? String(e)}\n`;
  } finally {
    process.chdir(cwd);
    process.stdout.write = out;
    process.stderr.write = err;
    process.exitCode = undefined;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return { index: c.index, code, stdout: stdout.slice(0, 4000), stderr: stderr.slice(0, 4000) };
}

async function main(): Promise<void> {
  const [root, base] = process.argv.slice(2) as [string, string];
  // Cases arrive over the IPC channel and results go back over it, one at a time: whatever the
  // commands print stays off the channel.
  const queue: FuzzCase[] = [];
  let busy = false;
  const pump = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    while (queue.length > 0) {
      const r = await runCase(queue.shift()!, root, base);
      process.send!(r);
    }
    busy = false;
  };
  process.on('message', (c: FuzzCase) => {
    queue.push(c);
    void pump();
  });
}

main().catch((e) => {
  process.stderr.write(`fuzz worker failed: ${(e as Error).stack}\n`);
  process.exit(97);
});
