// Test helpers: where things are, and running the real CLI as a user would.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { reportTo } from '../src/diag/diagnostics.js';

/**
 * Warnings the library reports during in-process runs, captured here instead of filling the test
 * log (every test file imports this module); a test may read or clear them.
 */
export const reported: string[] = [];
reportTo((line) => {
  reported.push(line);
});

/** Tests run from dist/test/*.js: the repository is two folders up. */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED = path.resolve(REPO, '..', 'shared');
export const SHARED_MODELS = path.join(SHARED, 'models');
export const EXAMPLES = path.join(SHARED, 'examples');
export const FIXTURES = path.join(REPO, 'fixtures');
export const HXC = path.join(REPO, 'bin', 'hxc');

/** The shared models; a test that loops over them fails (not passes vacuously) when they are missing. */
export function sharedModels(): string[] {
  const files = fs.existsSync(SHARED_MODELS)
    ? fs
        .readdirSync(SHARED_MODELS)
        .filter((f) => f.endsWith('.onnx'))
        .sort()
    : [];
  if (files.length === 0) throw new Error(`no shared models in ${SHARED_MODELS}: the tests read ../shared/models`);
  return files.map((f) => path.join(SHARED_MODELS, f));
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function hxc(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(process.execPath, [HXC, ...args], {
    cwd: opts.cwd ?? REPO,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...opts.env },
    maxBuffer: 256 * 1024 * 1024,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A serving plan of the bundled GPT-2 for the bundled chat workload on `rack` (a path), written to `out`: what hxc said. */
export function servingPlan(rack: string, out: string): CliResult {
  const chat = path.join(FIXTURES, 'workloads', 'chat.yaml');
  return hxc(['plan', path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), '--topology', rack, '--phase', 'serve', '--workload', chat, '--out', out]);
}

/** Asserts the shape of a user-facing error: one line, a code, exit 2, no stack trace. */
export function isOneLineError(r: CliResult, code: string): string | null {
  if (r.code !== 2) return `exit code ${r.code}, expected 2 (stderr: ${r.stderr})`;
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('hxc: warning'));
  if (lines.length !== 1) return `expected one line on stderr, got ${lines.length}: ${r.stderr}`;
  if (!lines[0]!.includes(code)) return `expected ${code} in: ${lines[0]}`;
  if (/\n\s+at |Error:/.test(r.stderr)) return `stack trace or raw error in: ${r.stderr}`;
  return null;
}

const made: string[] = [];
// Scratch folders go when the test file's process ends (HXC_KEEP_TMP=1 keeps them to look at).
process.on('exit', () => {
  if (process.env.HXC_KEEP_TMP) return;
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

export function tmpDir(prefix = 'hxc-test-'): string {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? '/tmp'), prefix));
  made.push(dir);
  return dir;
}
