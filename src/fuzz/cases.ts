// The fuzz harness's cases: from a seed and an index, a mutated input (model, JSON graph, rack,
// routing trace, telemetry, plan directory, run inputs or flags) and the hxc command to run on it.
// A case is plain data — files to write and argv — so a child process can run it and a finding can
// be saved and replayed.

import { programLocation, type ProgramMeta } from '../plan/programs.js';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { onnx as OnnxNs } from 'onnx-proto';
import { planHashText } from '../plan/read.js';
import { mulberry32 } from '../util/stats.js';
import { EXTREME_NUMBERS, mutateBytes, mutateJson, mutateText, pick, TRICK_STRINGS, type Rand } from './mutate.js';

const require = createRequire(import.meta.url);

export type Target = 'onnx' | 'graph' | 'topology' | 'routing' | 'calibrate' | 'plan-dir' | 'inputs' | 'flags';
export const TARGETS: readonly Target[] = ['onnx', 'graph', 'topology', 'routing', 'calibrate', 'plan-dir', 'inputs', 'flags'];

/** A file operation in the case's own folder (paths relative to it). */
export type FileOp =
  | { op: 'write'; path: string; base64: string }
  | { op: 'copy-dir'; from: string; path: string }
  | { op: 'remove'; path: string }
  | { op: 'symlink'; path: string; target: string };

export interface FuzzCase {
  index: number;
  target: Target;
  what: string;
  files: FileOp[];
  /** hxc arguments; `{case}` is the case's folder, `{base}` the corpus folder. */
  argv: string[];
}

/** What the cases are made from: files the parent prepared in `dir`. */
export interface Corpus {
  dir: string;
  models: string[];
  graphs: string[];
  racks: string[];
  routing: { model: string; file: string }[];
  telemetry: { model: string; file: string } | null;
  plans: string[];
  inputs: { plan: string; file: string } | null;
}

const b64 = (x: string | Uint8Array): string => Buffer.from(x).toString('base64');
const json = (x: unknown): string => JSON.stringify(x, null, 1);

function readJson(file: string): unknown {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** A structured ONNX mutation: decode, mutate the message as JSON, encode (falls back to bytes). */
function mutateOnnx(rand: Rand, bytes: Uint8Array): Uint8Array {
  if (rand() < 0.5) return mutateBytes(rand, bytes);
  const { onnx } = require('onnx-proto') as { onnx: typeof OnnxNs };
  try {
    const msg = onnx.ModelProto.decode(bytes);
    const obj = onnx.ModelProto.toObject(msg, { longs: Number, bytes: String, defaults: false }) as Record<string, unknown>;
    // Raw tensor bytes are large and dull: keep them out of the mutation's reach.
    const graph = obj.graph as Record<string, unknown> | undefined;
    const raw = new Map<number, unknown>();
    ((graph?.initializer ?? []) as Record<string, unknown>[]).forEach((t, i) => {
      if (t.rawData !== undefined) {
        raw.set(i, t.rawData);
        delete t.rawData;
      }
    });
    mutateJson(rand, obj as never);
    const g2 = obj.graph as Record<string, unknown> | undefined;
    ((g2?.initializer ?? []) as Record<string, unknown>[]).forEach((t, i) => {
      if (raw.has(i) && t && typeof t === 'object') t.rawData = raw.get(i);
    });
    const back = onnx.ModelProto.fromObject(obj);
    return onnx.ModelProto.encode(back).finish();
  } catch {
    return mutateBytes(rand, bytes);
  }
}

export function makeCase(corpus: Corpus, seed: number, index: number, only?: Target): FuzzCase {
  const rand = mulberry32((seed * 1_000_003 + index * 7919) >>> 0);
  const weights: [Target, number][] = [
    ['onnx', 22],
    ['graph', 14],
    ['topology', 14],
    ['routing', 8],
    ['calibrate', 8],
    ['plan-dir', 22],
    ['inputs', 5],
    ['flags', 7],
  ];
  let target: Target = only ?? 'onnx';
  if (!only) {
    let x = rand() * weights.reduce((s, [, w]) => s + w, 0);
    for (const [t, w] of weights) {
      x -= w;
      if (x < 0) {
        target = t;
        break;
      }
    }
  }
  const base = corpus.dir;
  const out = ['--out', '{case}/out'];
  const rack = (): string => `{base}/${pick(rand, corpus.racks)}`;
  switch (target) {
    case 'onnx': {
      const m = pick(rand, corpus.models);
      const bytes = mutateOnnx(rand, fs.readFileSync(path.join(base, m)));
      const argv = rand() < 0.2 ? ['inspect', '{case}/m.onnx', '--json'] : ['plan', '{case}/m.onnx', '--topology', rack(), ...out];
      return { index, target, what: `mutated ${m}`, files: [{ op: 'write', path: 'm.onnx', base64: b64(bytes) }], argv };
    }
    case 'graph': {
      const g = pick(rand, corpus.graphs);
      const text =
        rand() < 0.15 ? mutateText(rand, fs.readFileSync(path.join(base, g), 'utf8')) : json(mutateJson(rand, readJson(path.join(base, g)) as never));
      return {
        index,
        target,
        what: `mutated ${g}`,
        files: [{ op: 'write', path: 'g.json', base64: b64(text) }],
        argv: ['plan', '{case}/g.json', '--topology', rack(), ...out],
      };
    }
    case 'topology': {
      const r = pick(rand, corpus.racks);
      const src = fs.readFileSync(path.join(base, r), 'utf8');
      let text: string;
      if (rand() < 0.5) text = mutateText(rand, src);
      else {
        try {
          text = stringifyYaml(mutateJson(rand, parseYaml(src) as never));
        } catch {
          text = mutateText(rand, src);
        }
      }
      const argv = rand() < 0.7 ? ['topology', '{case}/r.yaml', '--json'] : ['plan', `{base}/${corpus.models[0]}`, '--topology', '{case}/r.yaml', ...out];
      return { index, target, what: `mutated ${r}`, files: [{ op: 'write', path: 'r.yaml', base64: b64(text) }], argv };
    }
    case 'routing': {
      if (corpus.routing.length === 0) return makeCase(corpus, seed, index, 'graph');
      const r = pick(rand, corpus.routing);
      const text = json(mutateJson(rand, readJson(path.join(base, r.file)) as never));
      return {
        index,
        target,
        what: `mutated ${r.file}`,
        files: [{ op: 'write', path: 'routing.json', base64: b64(text) }],
        argv: ['plan', `{base}/${r.model}`, '--routing', '{case}/routing.json', '--passes', 'moe', ...out],
      };
    }
    case 'calibrate': {
      if (!corpus.telemetry) return makeCase(corpus, seed, index, 'graph');
      const t = corpus.telemetry;
      const text = json(mutateJson(rand, readJson(path.join(base, t.file)) as never));
      return {
        index,
        target,
        what: `mutated ${t.file}`,
        files: [{ op: 'write', path: 'telemetry.json', base64: b64(text) }],
        argv: ['plan', `{base}/${t.model}`, '--calibrate', '{case}/telemetry.json', '--passes', 'profile', ...out],
      };
    }
    case 'plan-dir': {
      const p = pick(rand, corpus.plans);
      const files: FileOp[] = [{ op: 'copy-dir', from: p, path: 'plan' }];
      const planJson = fs.readFileSync(path.join(base, p, 'plan.json'), 'utf8');
      const kind = Math.floor(rand() * 5);
      let what = '';
      if (kind <= 1) {
        const text = json(mutateJson(rand, JSON.parse(planJson) as never)) + '\n';
        files.push({ op: 'write', path: 'plan/plan.json', base64: b64(text) });
        // Half the time the hash is updated too: the cross-checks must catch what the hash cannot.
        if (kind === 1) files.push({ op: 'write', path: 'plan/plan.sha256', base64: b64(planHashText(text)) });
        what = kind === 1 ? 'plan.json edited, hash updated' : 'plan.json edited';
      } else if (kind === 2) {
        const listed = (JSON.parse(planJson) as { programs?: Record<string, ProgramMeta> }).programs ?? {};
        // The file holding a program's bytes: its own, or its pack.
        const programs = [...new Set(Object.entries(listed).map(([name, meta]) => programLocation(name, meta).file))].sort();
        const f = programs.length ? pick(rand, programs) : 'plan.sha256';
        files.push({ op: 'write', path: `plan/${f}`, base64: b64(mutateBytes(rand, fs.readFileSync(path.join(base, p, f)))) });
        what = `${f} bytes mutated`;
      } else if (kind === 3) {
        const all = (fs.readdirSync(path.join(base, p), { recursive: true }) as string[]).sort();
        const f = pick(rand, all);
        files.push({ op: 'remove', path: `plan/${f}` });
        what = `${f} removed`;
      } else {
        const f = pick(rand, ['run', 'sim', 'plan.json', 'programs']);
        files.push({ op: 'remove', path: `plan/${f}` }, { op: 'symlink', path: `plan/${f}`, target: pick(rand, ['/etc', '/tmp', '..', '/etc/passwd']) });
        what = `${f} made a symlink`;
      }
      const argv = rand() < 0.65 ? ['simulate', '{case}/plan', '--json'] : ['run', '{case}/plan', ...(rand() < 0.5 ? ['--check'] : [])];
      return { index, target, what: `${p}: ${what}`, files, argv };
    }
    case 'inputs': {
      if (!corpus.inputs) return makeCase(corpus, seed, index, 'graph');
      const text = json(mutateJson(rand, readJson(path.join(base, corpus.inputs.file)) as never));
      return {
        index,
        target,
        what: 'run inputs mutated',
        files: [
          { op: 'copy-dir', from: corpus.inputs.plan, path: 'plan' },
          { op: 'write', path: 'inputs.json', base64: b64(text) },
        ],
        argv: ['run', '{case}/plan', '--inputs', '{case}/inputs.json'],
      };
    }
    default: {
      const value = (): string =>
        String(
          rand() < 0.5
            ? pick(rand, EXTREME_NUMBERS)
            : pick(
                rand,
                TRICK_STRINGS.filter((s) => !s.includes('\u0000') && s.length < 100),
              ),
        );
      const m = `{base}/${pick(rand, corpus.models)}`;
      const choices: string[][] = [
        ['plan', m, '--dim', `batch=${value()}`, ...out],
        ['plan', m, '--batch', value(), '--phase', 'decode', ...out],
        ['plan', m, '--context', value(), ...out],
        ['plan', m, '--objective', value(), ...out],
        ['plan', m, '--max-stages', value(), ...out],
        ['plan', m, '--expert-slots', value(), ...out],
        ['plan', m, '--min-sequences', value(), ...out],
        ['plan', m, '--time-limit', value(), ...out],
        ['plan', m, '--tensor-parallel', value(), ...out],
        ['plan', m, '--out', value()],
        ['simulate', `{base}/${pick(rand, corpus.plans)}`, '--requests', value()],
        ['check', m, '--max-latency', value()],
        ['check', m, '--max-memory', value()],
        ['inspect', value()],
        ['topology', value()],
      ];
      return { index, target, what: 'flag values', files: [], argv: pick(rand, choices) };
    }
  }
}
