// `npm run fuzz -- [--cases N] [--seed S] [--jobs J] [--only TARGET] [--out DIR]`: mutate real
// inputs (the bundled and shared models, JSON graphs, racks, routing traces, telemetry, plan
// directories, run inputs, flag values) and run hxc on each, in worker processes watched for hangs
// and crashes; classify every outcome and print a table. A good outcome is a plan (exit 0), one
// clear line with a fix and exit 2, or a budget/check failure with exit 1; anything else — a stack
// trace, an internal error, several lines, a crash, a hang, a refusal without a fix — is a finding,
// saved (case and output) under --out to become a fixture.

import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCase, TARGETS, type Corpus, type FuzzCase, type Target } from './cases.js';
import type { CaseResult } from './child.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '..', '..', '..');
const HXC = path.join(REPO, 'bin', 'hxc');
const SHARED = path.resolve(REPO, '..', 'shared');

export const OUTCOMES = ['ok', 'refused', 'budget', 'no-fix', 'noisy', 'internal', 'stack', 'crash', 'hang'] as const;
export type Outcome = (typeof OUTCOMES)[number];
export const GOOD: ReadonlySet<Outcome> = new Set(['ok', 'refused', 'budget']);

export interface FuzzOptions {
  cases: number;
  seed: number;
  jobs: number;
  /** Seconds a case may take before it counts as a hang. */
  timeout_s: number;
  only?: Target;
  out?: string;
  log?: (line: string) => void;
}

export interface Finding {
  case: FuzzCase;
  outcome: Outcome;
  code: number | null;
  stderr: string;
}

export interface FuzzReport {
  counts: Record<Target, Record<Outcome, number>>;
  findings: Finding[];
}

/** What one result is. */
export function classify(r: { code: number; stderr: string }): Outcome {
  const lines = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('hxc: warning') && !l.startsWith('hxc: note'));
  if (/UNCAUGHT|\n\s+at [\w.<]+ \(|^\s+at /m.test(r.stderr)) return 'stack';
  if (r.code === 0) return 'ok';
  if (/hxc: internal error/.test(r.stderr)) return 'internal';
  if (r.code === 2) {
    if (lines.length !== 1 || !/^hxc: error HXC2\d{3}: /.test(lines[0]!)) return 'noisy';
    return /\(fix: .+\)$/.test(lines[0]!) ? 'refused' : 'no-fix';
  }
  if (r.code === 1) return lines.length === 1 && /^hxc: error HXC3\d{3}: /.test(lines[0]!) ? 'budget' : 'noisy';
  return 'crash';
}

function hxcSync(args: string[]): void {
  const r = spawnSync(process.execPath, [HXC, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  if (r.status !== 0) throw new Error(`fuzz corpus: hxc ${args.join(' ')} failed: ${r.stderr}`);
}

/** The corpus: real inputs copied (or made) into `dir`. */
export function prepareCorpus(dir: string): Corpus {
  const copy = (from: string, to: string): string | null => {
    if (!fs.existsSync(from)) return null;
    fs.mkdirSync(path.dirname(path.join(dir, to)), { recursive: true });
    fs.copyFileSync(from, path.join(dir, to));
    return to;
  };
  const models = [
    copy(path.join(REPO, 'fixtures', 'models', 'hello_deepa.onnx'), 'models/hello_deepa.onnx'),
    copy(path.join(REPO, 'fixtures', 'models', 'gpt2_tiny_kv.onnx'), 'models/gpt2_tiny_kv.onnx'),
  ].filter((x): x is string => x !== null);
  const mixtral = copy(path.join(SHARED, 'models', 'mixtral_tiny_moe_kv.onnx'), 'models/mixtral_tiny_moe_kv.onnx');
  const graphs = fs
    .readdirSync(path.join(REPO, 'fixtures', 'graphs'))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => copy(path.join(REPO, 'fixtures', 'graphs', f), `graphs/${f}`)!);
  const racks = [
    ...(fs.existsSync(path.join(SHARED, 'examples'))
      ? fs
          .readdirSync(path.join(SHARED, 'examples'))
          .filter((f) => f.endsWith('.yaml'))
          .sort()
          .map((f) => copy(path.join(SHARED, 'examples', f), `racks/${f}`)!)
      : []),
    ...fs
      .readdirSync(path.join(REPO, 'fixtures', 'topology'))
      .filter((f) => f.endsWith('.yaml'))
      .sort()
      .map((f) => copy(path.join(REPO, 'fixtures', 'topology', f), `racks/fixture-${f}`)!),
  ];
  const routing = mixtral
    ? [{ model: mixtral, file: copy(path.join(SHARED, 'models', 'mixtral_tiny_moe_kv.expert_routing.json'), 'routing/mixtral_tiny.json')! }]
    : [];
  const tiny = racks.find((r) => r.endsWith('rack-tiny.yaml')) ?? racks[0]!;
  const hetero = racks.find((r) => r.endsWith('rack-hetero.yaml')) ?? tiny;
  hxcSync(['plan', path.join(dir, models[0]!), '--topology', path.join(dir, tiny), '--out', path.join(dir, 'plans', 'hello')]);
  hxcSync(['plan', path.join(dir, models[1]!), '--topology', path.join(dir, hetero), '--objective', 'throughput', '--out', path.join(dir, 'plans', 'gpt2')]);
  hxcSync(['run', path.join(dir, 'plans', 'gpt2')]);
  fs.copyFileSync(path.join(dir, 'plans', 'gpt2', 'run', 'telemetry.json'), path.join(dir, 'telemetry.json'));
  fs.rmSync(path.join(dir, 'plans', 'gpt2', 'run'), { recursive: true });
  const inputs = { 'onnx::Flatten_0': { dtype: 'float32', shape: [1, 25, 96], data: Array.from({ length: 2400 }, (_, i) => Math.sin(i)) } };
  fs.writeFileSync(path.join(dir, 'inputs.json'), JSON.stringify(inputs));
  return {
    dir,
    models,
    graphs,
    racks,
    routing,
    telemetry: { model: models[1]!, file: 'telemetry.json' },
    plans: ['plans/hello', 'plans/gpt2'],
    inputs: { plan: 'plans/hello', file: 'inputs.json' },
  };
}

class Worker {
  private child: ChildProcess | null = null;
  private waiting: ((r: CaseResult | { crash: number | string | null }) => void) | null = null;

  constructor(
    private readonly root: string,
    private readonly base: string,
  ) {}

  private start(): ChildProcess {
    const child = fork(path.join(here, 'child.js'), [this.root, this.base], {
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      execArgv: ['--max-old-space-size=3072'],
    });
    child.on('message', (r: CaseResult) => {
      const w = this.waiting;
      this.waiting = null;
      w?.(r);
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      const w = this.waiting;
      this.waiting = null;
      w?.({ crash: signal ?? code });
    });
    return child;
  }

  run(c: FuzzCase, timeout_s: number): Promise<{ result: CaseResult | null; outcome: Outcome | null; code: number | null }> {
    if (!this.child) this.child = this.start();
    const child = this.child;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        child.kill('SIGKILL');
        this.child = null;
        resolve({ result: null, outcome: 'hang', code: null });
      }, timeout_s * 1000);
      this.waiting = (r) => {
        clearTimeout(timer);
        if ('crash' in r) resolve({ result: null, outcome: 'crash', code: typeof r.crash === 'number' ? r.crash : null });
        else resolve({ result: r, outcome: null, code: r.code });
      };
      child.send(c);
    });
  }

  stop(): void {
    this.child?.kill('SIGKILL');
    this.child = null;
  }
}

export async function fuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-fuzz-'));
  const log = opts.log ?? (() => {});
  try {
    const corpus = prepareCorpus(path.join(root, 'corpus'));
    const counts = Object.fromEntries(TARGETS.map((t) => [t, Object.fromEntries(OUTCOMES.map((o) => [o, 0]))])) as FuzzReport['counts'];
    const findings: Finding[] = [];
    const workers = Array.from({ length: Math.max(1, opts.jobs) }, () => new Worker(path.join(root, 'cases'), corpus.dir));
    fs.mkdirSync(path.join(root, 'cases'));
    let next = 0;
    let done = 0;
    const results: { c: FuzzCase; outcome: Outcome; code: number | null; stderr: string }[] = [];
    await Promise.all(
      workers.map(async (w) => {
        while (next < opts.cases) {
          const c = makeCase(corpus, opts.seed, next++, opts.only);
          const r = await w.run(c, opts.timeout_s);
          const outcome = r.outcome ?? classify(r.result!);
          results.push({ c, outcome, code: r.code, stderr: r.result?.stderr ?? '' });
          if (++done % 100 === 0) log(`  ${done} of ${opts.cases} cases`);
        }
        w.stop();
      }),
    );
    results.sort((a, b) => a.c.index - b.c.index);
    for (const r of results) {
      counts[r.c.target][r.outcome]++;
      if (!GOOD.has(r.outcome)) findings.push({ case: r.c, outcome: r.outcome, code: r.code, stderr: r.stderr });
    }
    if (opts.out) {
      fs.mkdirSync(opts.out, { recursive: true });
      for (const f of findings) fs.writeFileSync(path.join(opts.out, `finding-${opts.seed}-${f.case.index}.json`), JSON.stringify(f, null, 1) + '\n');
    }
    return { counts, findings };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

export function reportTable(report: FuzzReport): string {
  const rows = TARGETS.map((t) => [t, ...OUTCOMES.map((o) => String(report.counts[t][o]))]);
  rows.push(['all', ...OUTCOMES.map((o) => String(TARGETS.reduce((s, t) => s + report.counts[t][o], 0)))]);
  const header = ['target', ...OUTCOMES];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n') + '\n';
}

async function cli(): Promise<void> {
  const args = process.argv.slice(2);
  const get = (name: string, dflt: string): string => {
    const k = args.indexOf(`--${name}`);
    return k >= 0 && args[k + 1] !== undefined ? args[k + 1]! : dflt;
  };
  const only = get('only', '');
  if (only && !TARGETS.includes(only as Target)) throw new Error(`--only must be one of ${TARGETS.join(', ')}`);
  const opts: FuzzOptions = {
    cases: Number(get('cases', '1000')),
    seed: Number(get('seed', '1')),
    jobs: Number(get('jobs', String(Math.max(1, os.cpus().length)))),
    timeout_s: Number(get('timeout', '60')),
    ...(only ? { only: only as Target } : {}),
    ...(get('out', '') ? { out: get('out', '') } : {}),
    log: (l) => process.stderr.write(l + '\n'),
  };
  const t0 = performance.now();
  const report = await fuzz(opts);
  process.stdout.write(`fuzz: ${opts.cases} cases, seed ${opts.seed}, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  process.stdout.write(reportTable(report));
  for (const f of report.findings.slice(0, 40))
    process.stdout.write(
      `  #${f.case.index} ${f.case.target} (${f.case.what}) → ${f.outcome}: hxc ${f.case.argv.join(' ')} :: ${f.stderr.split('\n').find((l) => l.trim()) ?? `exit ${f.code}`}\n`,
    );
  if (report.findings.length > 40) process.stdout.write(`  … ${report.findings.length - 40} more\n`);
  process.exitCode = report.findings.length > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  cli().catch((e) => {
    process.stderr.write(`fuzz: ${(e as Error).message}\n`);
    process.exit(2);
  });
}
