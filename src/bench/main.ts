// `npm run bench`: each case in a fresh child process (its own peak RSS), repeated, medians
// printed as a table. Timing is not asserted anywhere: this machine is shared and noisy.

import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import YAML from 'yaml';
import { createRequire } from 'node:module';
import type { onnx as OnnxNs } from 'onnx-proto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { timePipeline, writeSynthetic } from './cases.js';
import { replanTable } from './replan.js';
import { serveTable } from './serve.js';
import { transportTable } from './transport.js';
import { DEEPSEEK_V3, writeDeepseek } from './deepseek.js';
import { rackYaml } from './rack.js';
import { loadTopology, RouteTable, topologyToJson } from '../topology/index.js';
import { jsonText } from '../cli/output.js';
import { writeJson } from '../util/json-text.js';
import { moeTable } from './moe.js';
import { qualitySuite } from './placement.js';
import { BASELINES, qualityTable } from './quality.js';
import { fidelityTable, geomeanError } from './fidelity.js';
import { loaderOverhead } from './runtime.js';
import { median } from '../util/stats.js';
import { resolvePipeline } from '../pass/manager.js';
import { PASSES } from '../../passes/index.js';

const here = fileURLToPath(import.meta.url);
/** The node flags `hxc` runs with: those of bin/hxc's first line (#!/usr/bin/env -S node FLAGS), so a case is timed as the CLI runs it. */
const HXC_NODE_FLAGS = (() => {
  const first = fs.readFileSync(path.join(path.dirname(here), '..', '..', '..', 'bin', 'hxc'), 'utf8').split('\n', 1)[0]!;
  const m = /^#!\S*env -S node((?: --[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  if (!m) throw new Error(`bin/hxc: its first line is not "#!/usr/bin/env -S node [flags]" (${first})`);
  return m[1]!.split(' ').filter(Boolean);
})();
const { onnx } = createRequire(import.meta.url)('onnx-proto') as { onnx: typeof OnnxNs };
const REPO = path.resolve(path.dirname(here), '..', '..', '..');
const MODELS = path.resolve(REPO, '..', 'shared', 'models');

interface Case {
  name: string;
  /** Model path, or a generated one: `synthetic:onnx:200000`, `deepseek:61` (layers of the DeepSeek-V3 shape). */
  model: string;
  passes: string[];
  reps: number;
  dims?: Record<string, number>;
  flags?: Record<string, string | number>;
  /** Rack path, or `rack:HOSTS` (src/bench/rack.ts: ten devices per host). */
  topology?: string;
}

const ANALYSIS = ['import', 'verify', 'bind', 'shapes', 'profile', 'classify', 'state', 'stage'];
const PLAN = [...ANALYSIS, 'moe', 'partition', 'schedule', 'lower'];
/** The pipeline `hxc plan` runs when no --passes is given. */
const EVERY_PASS = resolvePipeline(PASSES, null).passes.map((p) => p.name);

function cases(): Case[] {
  const list: Case[] = [
    { name: 'import+verify, synthetic ONNX 200k nodes', model: 'synthetic:onnx:200000', passes: ['import', 'verify'], reps: 5 },
    { name: 'import+verify, synthetic JSON 200k nodes', model: 'synthetic:json:200000', passes: ['import', 'verify'], reps: 5 },
  ];
  const largest = ['mixtral_8x7b_shaped.graph_only.onnx', 'mobilenet_v3_small.onnx', 'mixtral_tiny_moe_kv.onnx'];
  for (const m of largest) {
    const p = path.join(MODELS, m);
    if (fs.existsSync(p)) list.push({ name: `import+verify, ${m}`, model: p, passes: ['import', 'verify'], reps: 9 });
  }
  list.push({ name: 'analysis (import..stage), synthetic ONNX 100k nodes', model: 'synthetic:onnx:100000', passes: ANALYSIS, reps: 5, dims: { batch: 8 } });
  const rack64 = path.join(REPO, 'fixtures', 'topology', 'rack-64.yaml');
  list.push({
    name: 'plan (import..schedule), synthetic ONNX 100k nodes, 64-device rack',
    model: 'synthetic:onnx:100000',
    passes: PLAN.slice(0, -1),
    reps: 5,
    dims: { batch: 8 },
    topology: rack64,
  });
  list.push({ name: 'plan + write programs (all passes), same', model: 'synthetic:onnx:100000', passes: PLAN, reps: 5, dims: { batch: 8 }, topology: rack64 });
  const mixtral = path.join(MODELS, 'mixtral_8x7b_shaped.graph_only.onnx');
  if (fs.existsSync(mixtral))
    list.push({
      name: 'analysis (import..stage), mixtral_8x7b_shaped prefill 512',
      model: mixtral,
      passes: ANALYSIS,
      reps: 5,
      flags: { phase: 'prefill', prompt: 512 },
    });
  // Frontier scale (issue 10): the DeepSeek-V3 shape, 61 layers × 256 experts, and a pod of 512 hosts.
  const ds = { batch_size: 1, sequence_length: 1, past_sequence_length: 1024 };
  // The yardstick (issue 10: the whole plan within 3× of it).
  list.push({ name: 'read + decode alone (onnx-proto), DeepSeek-V3-shaped', model: 'deepseek:61', passes: ['onnx-decode'], reps: 3 });
  list.push({ name: 'import+verify, DeepSeek-V3-shaped', model: 'deepseek:61', passes: ['import', 'verify'], reps: 3 });
  list.push({
    name: 'analysis + moe (import..moe), DeepSeek-V3-shaped decode',
    model: 'deepseek:61',
    passes: [...ANALYSIS, 'moe'],
    reps: 3,
    dims: ds,
    topology: path.resolve(REPO, '..', 'shared', 'examples', 'rack-8gpu.yaml'),
  });
  list.push({
    name: 'plan (all passes but tp), DeepSeek-V3-shaped prefill 512, rack-8gpu',
    model: 'deepseek:61',
    passes: PLAN,
    reps: 1,
    flags: { phase: 'prefill', prompt: 512 },
    topology: path.resolve(REPO, '..', 'shared', 'examples', 'rack-8gpu.yaml'),
  });
  // The issue's own measure: `hxc plan` as a user runs it, every pass with tensor parallelism weighed
  // (--tensor-parallel auto, two variants), decode at past 1,024.
  list.push({
    name: 'hxc plan as run (every pass, tensor-parallel auto), DeepSeek-V3-shaped decode, rack-8gpu',
    model: 'deepseek:61',
    passes: EVERY_PASS,
    reps: 1,
    dims: ds,
    topology: path.resolve(REPO, '..', 'shared', 'examples', 'rack-8gpu.yaml'),
  });
  // The part of that no planner can skip: the plan directory the contract asks for (DESIGN: every
  // node in `assignment` and in one compute step, a program per run of compute steps, the trace)
  // written again from the finished plan's own files, and hashed as lower hashes them.
  list.push({
    name: 'hxc plan as run: its files alone (plan.json, trace.json, programs written again), DeepSeek-V3-shaped decode',
    model: 'deepseek:61',
    passes: ['write-plan-files'],
    reps: 3,
    dims: ds,
    topology: path.resolve(REPO, '..', 'shared', 'examples', 'rack-8gpu.yaml'),
  });
  // Over a pod: 64 generated hosts of 8 H100s (640 devices; the passes plan on the first 32).
  list.push({
    name: 'hxc plan as run, DeepSeek-V3-shaped decode, 64 generated hosts (640 devices)',
    model: 'deepseek:61',
    passes: EVERY_PASS,
    reps: 1,
    dims: ds,
    topology: 'rack:64',
  });
  list.push({
    name: 'plan (all passes), DeepSeek-V3-shaped 8 layers decode, rack-8gpu',
    model: 'deepseek:8',
    passes: PLAN,
    reps: 1,
    dims: ds,
    topology: path.resolve(REPO, '..', 'shared', 'examples', 'rack-8gpu.yaml'),
  });
  const tiny = path.join(MODELS, 'mixtral_tiny_moe_kv.onnx');
  if (fs.existsSync(tiny)) {
    // The yardstick for the two below (issue 10: each within 10× of it).
    list.push({ name: 'YAML parse alone (the yaml package), 5,120-device rack', model: tiny, passes: ['yaml-parse'], reps: 5, topology: 'rack:512' });
    list.push({ name: 'hxc topology --json (its text made), 5,120-device rack', model: tiny, passes: ['topology-json'], reps: 5, topology: 'rack:512' });
    list.push({
      name: 'import..classify (topology load), mixtral_tiny, 5,120-device rack',
      model: tiny,
      passes: ['import', 'verify', 'bind', 'shapes', 'profile', 'classify'],
      reps: 3,
      dims: { batch_size: 1, sequence_length: 8, past_sequence_length: 0 },
      topology: 'rack:512',
    });
    list.push({
      name: 'plan (all passes), mixtral_tiny, 5,120-device rack',
      model: tiny,
      passes: PLAN,
      reps: 3,
      dims: { batch_size: 1, sequence_length: 8, past_sequence_length: 0 },
      topology: 'rack:512',
    });
  }
  return list;
}

/** Child mode: run one case and print its measurements as JSON. */
async function runChild(c: Case): Promise<void> {
  let file = c.model;
  if (file.startsWith('synthetic:')) {
    const [, kind, n] = file.split(':');
    file = writeSynthetic(kind as 'onnx' | 'json', Number(n));
  } else if (file.startsWith('deepseek:')) {
    const layers = Number(file.split(':')[1]);
    file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-bench-')), `deepseek-${layers}.onnx`);
    writeDeepseek(file, { ...DEEPSEEK_V3, layers });
  }
  let topology = c.topology ?? null;
  if (topology?.startsWith('rack:')) {
    topology = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-bench-')), 'rack.yaml');
    fs.writeFileSync(topology, rackYaml(Number(c.topology!.split(':')[1])));
  }
  const out = path.join(path.dirname(file), 'plan');
  // Yardsticks: what node alone takes to read the same file.
  if (c.passes[0] === 'yaml-parse' || c.passes[0] === 'onnx-decode') {
    const yaml = c.passes[0] === 'yaml-parse';
    const times_ms: number[] = [];
    let nodes = 0;
    for (let k = 0; k < c.reps; k++) {
      const t0 = process.hrtime.bigint();
      if (yaml) YAML.parse(fs.readFileSync(topology!, 'utf8'));
      else nodes = onnx.ModelProto.decode(fs.readFileSync(file)).graph?.node?.length ?? 0;
      times_ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    process.stdout.write(
      JSON.stringify({ times_ms, nodes, maxrss_bytes: process.resourceUsage().maxRSS * 1024, file_bytes: fs.statSync(yaml ? topology! : file).size }),
    );
    return;
  }
  // What `hxc topology FILE --json` does (src/cli/topology-command.ts) but the write to stdout.
  if (c.passes[0] === 'topology-json') {
    const times_ms: number[] = [];
    let bytes = 0;
    for (let k = 0; k < c.reps; k++) {
      const t0 = process.hrtime.bigint();
      const topo = loadTopology(topology!);
      bytes = jsonText(topologyToJson(topo, new RouteTable(topo), {})).length;
      times_ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    if (bytes === 0) throw new Error('hxc topology --json wrote nothing');
    process.stdout.write(JSON.stringify({ times_ms, nodes: 0, maxrss_bytes: process.resourceUsage().maxRSS * 1024, file_bytes: fs.statSync(topology!).size }));
    return;
  }
  if (c.passes[0] === 'write-plan-files') {
    process.stdout.write(JSON.stringify(await timePlanFiles(file, c, out, topology)));
    return;
  }
  const r = await timePipeline(file, c.passes, c.reps, c.dims ?? {}, { out, ...(c.flags ?? {}) }, topology);
  const maxrss_bytes = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify({ ...r, maxrss_bytes, file_bytes: fs.statSync(file).size }));
}

/**
 * The floor of `hxc plan` below the import: the plan is made once (untimed) with every pass, its
 * files are read back (untimed), and each rep writes them again into a fresh folder as lower does —
 * plan.json as JSON text through src/util/json-text.ts and sha256'd on the way, plan.sha256, the
 * trace as compact text, each program's bytes written and sha256'd. Not counted: building the
 * manifest and encoding the programs, so this is less than lower can ever take.
 */
async function timePlanFiles(
  file: string,
  c: Case,
  out: string,
  topology: string | null,
): Promise<{ times_ms: number[]; nodes: number; maxrss_bytes: number; file_bytes: number }> {
  await timePipeline(file, EVERY_PASS, 1, c.dims ?? {}, { out, ...(c.flags ?? {}) }, topology);
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as {
    assignment: Record<string, string>;
    programs: Record<string, { pack?: string }>;
  };
  const trace = JSON.parse(fs.readFileSync(path.join(out, 'trace.json'), 'utf8')) as unknown;
  const programFiles = new Set(Object.entries(plan.programs).map(([f, m]) => m.pack ?? f));
  const programs = [...programFiles].sort().map((f) => ({ file: f, bytes: fs.readFileSync(path.join(out, f)) }));
  if (programs.length === 0) throw new Error(`${out}: the plan wrote no programs`);
  const times_ms: number[] = [];
  for (let k = 0; k < c.reps; k++) {
    const dir = fs.mkdtempSync(path.join(path.dirname(out), 'files-'));
    const t0 = process.hrtime.bigint();
    const written = (name: string, write: (sink: (bytes: Uint8Array) => void) => void, hash: crypto.Hash | null): void => {
      const p = path.join(dir, name);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      const fd = fs.openSync(p, 'wx');
      try {
        write((bytes) => {
          hash?.update(bytes);
          for (let at = 0; at < bytes.length; ) at += fs.writeSync(fd, bytes, at);
        });
      } finally {
        fs.closeSync(fd);
      }
    };
    for (const p of programs) written(p.file, (sink) => sink(p.bytes), crypto.createHash('sha256'));
    const planHash = crypto.createHash('sha256');
    written('plan.json', (sink) => writeJson(plan, sink), planHash);
    fs.writeFileSync(path.join(dir, 'plan.sha256'), `${planHash.digest('hex')}  plan.json\n`);
    written('trace.json', (sink) => writeJson(trace, sink, 1 << 20, 0), null);
    times_ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    fs.rmSync(dir, { recursive: true });
  }
  return {
    times_ms,
    nodes: Object.keys(plan.assignment).length,
    maxrss_bytes: process.resourceUsage().maxRSS * 1024,
    file_bytes: fs.statSync(file).size,
  };
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (arg === '--child') {
    await runChild(JSON.parse(process.argv[3]!) as Case);
    return;
  }
  const filter = arg ?? '';
  const rows: string[][] = [];
  for (const c of cases().filter((x) => x.name.includes(filter))) {
    const r = spawnSync(process.execPath, [...HXC_NODE_FLAGS, here, '--child', JSON.stringify(c)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) {
      rows.push([c.name, 'failed', r.stderr.split('\n')[0] ?? '', '', '', '']);
      continue;
    }
    const m = JSON.parse(r.stdout) as { times_ms: number[]; nodes: number; maxrss_bytes: number; file_bytes: number };
    const med = median(m.times_ms);
    rows.push([
      c.name,
      String(m.nodes),
      (m.file_bytes / 1e6).toFixed(2),
      med.toFixed(1),
      Math.min(...m.times_ms).toFixed(1),
      (m.nodes / (med / 1000) / 1e6).toFixed(2),
      (m.maxrss_bytes / 2 ** 20).toFixed(0),
    ]);
    process.stderr.write(`  done: ${c.name}\n`);
  }
  if (rows.length > 0) printTable(['case', 'nodes', 'file MB', 'median ms', 'min ms', 'Mnodes/s', 'peak RSS MiB'], rows);
  if ('placement quality'.includes(filter) || filter === 'placement') await placementTable();
  if (filter === '' || filter.startsWith('quality')) await planQualityTable(filter.replace(/^quality:?/, ''));
  if (filter === '' || filter === 'moe') await moeTable();
  if (filter === '' || filter === 'runtime') await runtimeTable();
  if (filter === '' || filter.startsWith('fidelity')) await fidelity(filter.replace(/^fidelity:?/, ''));
  if (filter === '' || filter === 'replan') await replanBench();
  if (filter === '' || filter === 'serve') await serveBench();
}

/** Serving plans (issue 15): colocated against disaggregated goodput, and where hxc's choice lands. */
async function serveBench(): Promise<void> {
  const rows = await serveTable(MODELS, path.resolve(REPO, '..', 'shared', 'examples'));
  const f = (x: number | null): string => (x === null ? '—' : x.toFixed(2));
  printTable(
    ['model', 'rack', 'workload', 'colocated goodput /s', 'best disaggregated /s', 'best split', 'hxc ships', 'hxc goodput /s', 'hxc / better'],
    rows.map((r) => {
      const better = Math.max(r.colocated ?? 0, r.disaggregated ?? 0);
      return [
        r.model,
        r.rack,
        r.scenario,
        f(r.colocated),
        f(r.disaggregated),
        r.best_split ?? '—',
        r.chosen,
        f(r.chosen_goodput),
        better > 0 ? (r.chosen_goodput / better).toFixed(4) : '—',
      ];
    }),
  );
  const at = rows.filter((r) => r.chosen_goodput >= Math.max(r.colocated ?? 0, r.disaggregated ?? 0) * (1 - 1e-9)).length;
  process.stdout.write(`hxc ships the better of colocated and disaggregated in ${at} of ${rows.length} workloads\n\n`);
}

/** hxc replan against a fresh plan on the shared MoE models (issue: fewer moves, within 2% of fresh). */
async function replanBench(): Promise<void> {
  const rows = await replanTable(MODELS, path.resolve(REPO, '..', 'shared', 'examples'));
  const ms = (s: number | null): string => (s === null ? '-' : (s * 1e3).toFixed(4));
  const mib = (b: number): string => (b / 2 ** 20).toFixed(2);
  printTable(
    ['replan case (rack-8gpu)', 'replan moves', 'replan MiB', 'fresh moves', 'fresh MiB', 'running now ms', 'replan ms', 'fresh ms', 'replan/fresh'],
    rows.map((r) => [
      r.name,
      String(r.replan_moves),
      mib(r.replan_bytes),
      String(r.fresh_moves),
      mib(r.fresh_bytes),
      ms(r.running_s),
      ms(r.replan_s),
      ms(r.fresh_s),
      (r.replan_s / r.fresh_s).toFixed(4),
    ]),
  );
  const fewer = rows.filter((r) => r.replan_moves < r.fresh_moves).length;
  const within = rows.filter((r) => r.replan_s <= r.fresh_s * 1.02).length;
  process.stdout.write(
    `replan moves fewer units than the fresh plan in ${fewer} of ${rows.length} cases; within 2% of its latency in ${within} of ${rows.length}\n\n`,
  );
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join(' | ');
  process.stdout.write(`${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}\n${rows.map(line).join('\n')}\n\n`);
}

/** Makespans on the random suite: heuristic vs exact vs bounds and baselines (issue: within 5% of exact on average). */
async function placementTable(): Promise<void> {
  const rows = await qualitySuite(10);
  const f = (x: number | null): string => (x === null ? '-' : x.toFixed(3));
  const ratios = rows.filter((r) => r.exact_status === 'optimal' && r.exact_s).map((r) => r.heuristic_s / r.exact_s!);
  const heftRatios = rows.filter((r) => r.exact_status === 'optimal' && r.exact_s).map((r) => r.heft_s / r.exact_s!);
  printTable(
    ['placement case', 'hxc heuristic', 'hxc exact', 'status', 'lower bound', 'HEFT', 'single fastest', 'heur/exact', 'heur ms', 'exact ms'],
    rows.map((r) => [
      r.name,
      f(r.heuristic_s),
      f(r.exact_s),
      r.exact_status,
      f(r.lower_bound_s),
      f(r.heft_s),
      f(r.single_s),
      r.exact_s ? (r.heuristic_s / r.exact_s).toFixed(4) : '-',
      r.heuristic_ms.toFixed(1),
      r.exact_ms.toFixed(0),
    ]),
  );
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  process.stdout.write(
    `heuristic / exact optimum: mean ${mean(ratios).toFixed(4)}, worst ${Math.max(...ratios).toFixed(4)} over ${ratios.length} proven optima; HEFT alone: mean ${mean(heftRatios).toFixed(4)}\n`,
  );
}

/**
 * Every shared model on every example rack and one H100 with its host, both objectives, prefill and
 * decode: the shipped plan against each baseline (simulated alike), the gap to the bound, the
 * planning time.
 * `npm run bench -- quality[:FILTER]` (e.g. `quality:mixtral`).
 */
async function planQualityTable(filter: string): Promise<void> {
  const examples = path.resolve(REPO, '..', 'shared', 'examples');
  // And one H100 with its host, where a model larger than the GPU keeps the rest in host memory.
  const racks = [
    null,
    ...['rack-tiny.yaml', 'rack-8gpu.yaml', 'rack-hetero.yaml'].map((r) => path.join(examples, r)),
    path.join(REPO, 'fixtures', 'topology', 'h100-and-host.yaml'),
  ];
  const rows = await qualityTable(MODELS, racks, filter);
  const f = (x: number | null, objective: string): string => (x === null ? '-' : objective === 'latency' ? (x * 1e3).toFixed(4) : x.toFixed(1));
  printTable(
    ['plan (model rack phase)', 'objective', 'shipped', 'chosen', 'HEFT', 'one device', 'with fallbacks', 'even split', 'tensor parallel', 'gap', 'plan s'],
    rows.map((r) => [
      r.name,
      r.objective === 'latency' ? 'latency ms' : 'throughput /s',
      f(r.shipped, r.objective),
      r.chosen,
      ...BASELINES.map((b) => f(r.baselines[b]!, r.objective)),
      r.gap === null ? '-' : `${(r.gap * 100).toFixed(1)}%`,
      r.plan_s.toFixed(2),
    ]),
  );
  const lost = rows.filter((r) => r.losses.length > 0);
  const times = rows.map((r) => r.plan_s).sort((a, b) => a - b);
  process.stdout.write(
    `shipped plan at least as good as every baseline it reports: ${rows.length - lost.length} of ${rows.length} plans${lost.length ? ` (lost: ${lost.map((r) => `${r.name} ${r.objective} to ${r.losses.join('+')}`).join('; ')})` : ''}; plan time median ${median(times).toFixed(2)} s, max ${times[times.length - 1]?.toFixed(2) ?? '-'} s\n\n`,
  );
}

/**
 * hxc's estimates beside published measurements (fixtures/measured): the ratio per row and the
 * typical error over the scored rows (issue 17: geomean ≤ 10%, no row past 35%).
 * `npm run bench -- fidelity[:FILTER]` (e.g. `fidelity:H100`).
 */
async function fidelity(filter: string): Promise<void> {
  const rows = await fidelityTable(path.join(REPO, 'fixtures', 'measured', 'llm_measured.json'), filter, (l) => process.stderr.write(l + '\n'));
  const fmt = (x: number | null): string => (x === null ? '-' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  printTable(
    ['#', 'model', 'GPU', 'precision', 'TP', 'batch', 'in/out', 'metric', 'measured', 'unit', 'hxc', 'hxc/measured', 'scored'],
    rows.map(({ row: r, estimate, ratio, unscored }) => [
      String(r.id),
      r.model.slice(0, 14),
      r.gpu_norm.slice(0, 16),
      r.precision.split(' ')[0]!,
      String(r.tp ?? '-'),
      String(r.batch_size).slice(0, 14),
      `${r.input_len ?? '-'}/${r.output_len ?? '-'}`,
      r.metric.split(' ')[0]!,
      fmt(r.value),
      r.unit.slice(0, 14),
      fmt(estimate),
      ratio === null ? '-' : ratio.toFixed(2),
      unscored || 'yes',
    ]),
  );
  const scored = rows.filter((r) => !r.unscored && r.ratio !== null);
  const ratios = scored.map((r) => r.ratio!);
  const worst = scored.reduce<(typeof scored)[number] | null>((w, r) => (!w || Math.abs(Math.log(r.ratio!)) > Math.abs(Math.log(w.ratio!)) ? r : w), null);
  const within = ratios.filter((x) => Math.abs(Math.log(x)) <= Math.log(1.35)).length;
  process.stdout.write(
    `fidelity: ${scored.length} scored rows, typical error (geomean) ${(geomeanError(ratios) * 100).toFixed(1)}%, ${within} of ${scored.length} within 35%` +
      `${worst ? `, worst #${worst.row.id} ${worst.setup} ×${worst.ratio!.toFixed(2)}` : ''}; ${rows.length - scored.length} rows unscored\n\n`,
  );
}

/** hxc run on a one-device plan vs a plain onnxruntime session (target: within 10%). */
async function runtimeTable(): Promise<void> {
  const models = ['mobilenet_v3_small', 'gpt2_tiny_kv', 'hello_deepa']
    .map((m) => ({ file: path.join(MODELS, `${m}.onnx`), dims: path.join(MODELS, `${m}.dims.json`) }))
    .filter((m) => fs.existsSync(m.file))
    .map((m) => ({ file: m.file, dims: fs.existsSync(m.dims) ? (JSON.parse(fs.readFileSync(m.dims, 'utf8')) as Record<string, number>) : {} }));
  // A serving-size batch too: the loader's cost is a fixed ~0.2 ms per request (two thread hops).
  const mobilenet = models.find((m) => m.file.includes('mobilenet'));
  if (mobilenet) models.splice(1, 0, { file: mobilenet.file, dims: { batch: 8 } });
  const rows = await loaderOverhead(REPO, models);
  printTable(
    ['loader (one-device plan)', 'plain session median ms', 'hxc run median ms', 'hxc / plain'],
    rows.map((r) => [r.model, r.plain_ms.toFixed(3), r.hxc_ms.toFixed(3), r.ratio.toFixed(3)]),
  );
  process.stdout.write('(the models run at their dims.json sizes; mobilenet also at batch 8)\n');
  const t = await transportTable(MODELS, path.resolve(REPO, '..', 'shared', 'examples'));
  printTable(
    [
      'transport (30 requests)',
      'devices',
      'transfers',
      'threads median ms',
      'processes (--spawn) median ms',
      'processes / threads',
      'per transfer us',
      'plan estimate ms',
    ],
    t.map((r) => [
      r.model,
      String(r.devices),
      String(r.transfers),
      r.threads_ms.toFixed(3),
      r.processes_ms.toFixed(3),
      (r.processes_ms / r.threads_ms).toFixed(2),
      (((r.processes_ms - r.threads_ms) / Math.max(1, r.transfers)) * 1e3).toFixed(1),
      r.estimate_ms.toFixed(3),
    ]),
  );
  process.stdout.write('(every transfer crosses gRPC on loopback with --spawn; the estimate is for the rack the plan was made for, not this CPU)\n');
}

await main();
