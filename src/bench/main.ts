// `npm run bench`: each case in a fresh child process (its own peak RSS), repeated, medians
// printed as a table. Timing is not asserted anywhere: this machine is shared and noisy.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { timePipeline, writeSynthetic } from './cases.js';

const here = fileURLToPath(import.meta.url);
const REPO = path.resolve(path.dirname(here), '..', '..', '..');
const MODELS = path.resolve(REPO, '..', 'shared', 'models');

interface Case {
  name: string;
  /** Model path, or a synthetic spec `synthetic:onnx:200000`. */
  model: string;
  passes: string[];
  reps: number;
  dims?: Record<string, number>;
  flags?: Record<string, string | number>;
}

const ANALYSIS = ['import', 'verify', 'bind', 'shapes', 'profile', 'classify', 'state', 'stage'];

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
  const mixtral = path.join(MODELS, 'mixtral_8x7b_shaped.graph_only.onnx');
  if (fs.existsSync(mixtral)) list.push({ name: 'analysis (import..stage), mixtral_8x7b_shaped prefill 512', model: mixtral, passes: ANALYSIS, reps: 5, flags: { phase: 'prefill', prompt: 512 } });
  return list;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Child mode: run one case and print its measurements as JSON. */
async function runChild(c: Case): Promise<void> {
  let file = c.model;
  if (file.startsWith('synthetic:')) {
    const [, kind, n] = file.split(':');
    file = writeSynthetic(kind as 'onnx' | 'json', Number(n));
  }
  const r = await timePipeline(file, c.passes, c.reps, c.dims ?? {}, c.flags ?? {});
  const maxrss_bytes = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify({ ...r, maxrss_bytes, file_bytes: fs.statSync(file).size }));
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
    const r = spawnSync(process.execPath, [here, '--child', JSON.stringify(c)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) {
      rows.push([c.name, 'failed', r.stderr.split('\n')[0] ?? '', '', '', '']);
      continue;
    }
    const m = JSON.parse(r.stdout) as { times_ms: number[]; nodes: number; maxrss_bytes: number; file_bytes: number };
    const med = median(m.times_ms);
    rows.push([c.name, String(m.nodes), (m.file_bytes / 1e6).toFixed(2), med.toFixed(1), Math.min(...m.times_ms).toFixed(1),
      (m.nodes / (med / 1000) / 1e6).toFixed(2), (m.maxrss_bytes / 2 ** 20).toFixed(0)]);
    process.stderr.write(`  done: ${c.name}\n`);
  }
  const header = ['case', 'nodes', 'file MB', 'median ms', 'min ms', 'Mnodes/s', 'peak RSS MiB'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join(' | ');
  process.stdout.write(`${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}\n${rows.map(line).join('\n')}\n`);
}

await main();
