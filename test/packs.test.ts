import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runPipeline } from '../src/cli/run-passes.js';
import { runPlan } from '../src/runtime/run.js';
import { planHashText } from '../src/plan/read.js';
import type { PlanV1 } from '../src/plan/format.js';
import { EXAMPLES, FIXTURES, hxc, isOneLineError, tmpDir } from './helpers.js';

const GPT2 = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
const DIMS = { batch_size: 1, sequence_length: 8, past_sequence_length: 0 };

async function plan(out: string, pack: 'on' | 'off' | 'auto', model = GPT2, rack = path.join(EXAMPLES, 'rack-8gpu.yaml')): Promise<PlanV1> {
  await runPipeline({ model_path: model, topology_path: rack, dims: model === GPT2 ? DIMS : {}, flags: { out, 'pack-programs': pack } }, null);
  return JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as PlanV1;
}

/** Files under `dir`, relative, sorted. */
const files = (dir: string): string[] => (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();

/** Rewrites plan.json with `edit` and plan.sha256 to match, as someone who knows the format would. */
function editPlan(dir: string, edit: (p: PlanV1) => void): void {
  const p = JSON.parse(fs.readFileSync(path.join(dir, 'plan.json'), 'utf8')) as PlanV1;
  edit(p);
  const text = JSON.stringify(p, null, 1) + '\n';
  fs.writeFileSync(path.join(dir, 'plan.json'), text);
  fs.writeFileSync(path.join(dir, 'plan.sha256'), planHashText(text));
}

test('packed programs: the same programs, in a few files per device, and the plan runs and matches the unsplit model', async () => {
  const dir = tmpDir();
  const own = await plan(path.join(dir, 'files'), 'off');
  const packed = await plan(path.join(dir, 'packed'), 'on');
  const programs = Object.keys(own.programs).sort();
  assert.ok(programs.length >= 2, `a split plan (${programs.length} programs)`);
  assert.deepEqual(Object.keys(packed.programs).sort(), programs, 'the same program names');
  for (const name of programs) {
    const a = own.programs[name]!;
    const b = packed.programs[name]!;
    assert.deepEqual([b.sha256, b.bytes, b.inputs, b.outputs], [a.sha256, a.bytes, a.inputs, a.outputs], name);
    assert.equal(a.pack, undefined);
    assert.equal(path.posix.dirname(b.pack!), path.posix.dirname(name), `${name} is packed in its own device's folder`);
    // Its bytes in the pack are the bytes of the program file.
    const pack = fs.readFileSync(path.join(dir, 'packed', b.pack!));
    assert.ok(pack.subarray(b.offset_bytes!, b.offset_bytes! + b.bytes).equals(fs.readFileSync(path.join(dir, 'files', name))), name);
  }
  const packs = files(path.join(dir, 'packed')).filter((f) => f.endsWith('.pack'));
  assert.equal(packs.length, new Set(programs.map((p) => path.posix.dirname(p))).size, 'one pack per device folder');
  assert.ok(!files(path.join(dir, 'packed')).some((f) => f.endsWith('.onnx')), 'no program file beside the packs');
  assert.ok(files(path.join(dir, 'files')).some((f) => f.endsWith('.onnx')) && !files(path.join(dir, 'files')).some((f) => f.endsWith('.pack')));
  // The estimate and the steps do not depend on where the bytes are.
  assert.deepEqual(packed.devices, own.devices);
  assert.equal(packed.estimate.latency_s, own.estimate.latency_s);
  const report = await runPlan({ plan_dir: path.join(dir, 'packed'), seed: 2, iterations: 1, check: true, decode_steps: 2, dims: {} });
  assert.ok(report.check!.passed, 'the packed plan matches the unsplit model');
  // auto keeps a small plan's programs as files (one to open on its own).
  const auto = await plan(path.join(dir, 'auto'), 'auto');
  assert.ok(Object.values(auto.programs).every((m) => m.pack === undefined));
});

test('a packed plan runs on worker processes (each worker is sent its programs, not the packs)', async () => {
  const dir = tmpDir();
  await plan(path.join(dir, 'p'), 'on');
  const r = hxc(['run', path.join(dir, 'p'), '--check', '--spawn']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /check passed/);
});

test('a changed pack, an offset past its end, or a pack of another folder is refused with one line, naming the program', async () => {
  const dir = tmpDir();
  const base = path.join(dir, 'base');
  const p = await plan(base, 'on');
  const [name, meta] = Object.entries(p.programs).sort(([a], [b]) => (a < b ? -1 : 1))[0]!;
  const fresh = (tag: string): string => {
    const d = path.join(dir, tag);
    fs.cpSync(base, d, { recursive: true });
    return d;
  };
  // One byte of the program inside its pack.
  const flipped = fresh('flipped');
  const packFile = path.join(flipped, meta.pack!);
  const bytes = fs.readFileSync(packFile);
  bytes[meta.offset_bytes! + Math.floor(meta.bytes / 2)]! ^= 0xff;
  fs.writeFileSync(packFile, bytes);
  let r = hxc(['run', flipped]);
  assert.equal(isOneLineError(r, 'HXC2601'), null);
  assert.match(r.stderr, new RegExp(`program ${name.replace(/[.]/g, '\\.')} does not match the manifest`));
  // An offset past the pack's end (the hash updated: the cross-checks must catch it).
  const past = fresh('past');
  editPlan(past, (q) => (q.programs[name]!.offset_bytes = fs.statSync(packFile).size));
  r = hxc(['run', past]);
  assert.equal(isOneLineError(r, 'HXC2601'), null);
  assert.match(r.stderr, /does not match the manifest \(\d+ bytes at \d+ in a pack of \d+\)/);
  // Another device's pack, and a pack outside the folder.
  const other = Object.values(p.programs).find((m) => m.pack !== meta.pack)!;
  const elsewhere = fresh('elsewhere');
  editPlan(elsewhere, (q) => (q.programs[name]!.pack = other.pack!));
  r = hxc(['run', elsewhere]);
  assert.equal(isOneLineError(r, 'HXC2601'), null);
  assert.match(r.stderr, /not a pack of its own folder/);
  const outside = fresh('outside');
  editPlan(outside, (q) => (q.programs[name]!.pack = '../../programs-0.pack'));
  assert.equal(isOneLineError(hxc(['run', outside]), 'HXC2601'), null);
  // The untouched copy still runs.
  assert.equal(hxc(['run', fresh('untouched')]).code, 0);
});

test('a packed program with external weights loads them from its folder (a hard link, nothing copied)', async () => {
  const { writeExternalAddModel } = await import('./onnx-builder.js');
  const dir = tmpDir();
  const model = writeExternalAddModel(dir);
  const out = path.join(dir, 'plan');
  const p = await plan(out, 'on', model, path.join(FIXTURES, 'topology', 'cpu-only.yaml'));
  const meta = Object.values(p.programs)[0]!;
  assert.ok(meta.pack !== undefined && meta.bytes < 400, 'packed, no weight bytes in it');
  const linked = fs.readdirSync(path.join(out, 'programs', 'cpu0')).find((f) => f.endsWith('w.bin'))!;
  assert.equal(fs.statSync(path.join(out, 'programs', 'cpu0', linked)).ino, fs.statSync(path.join(dir, 'm', 'w.bin')).ino);
  const report = await runPlan({ plan_dir: out, seed: 0, iterations: 1, check: true, decode_steps: 0, dims: {} });
  assert.ok(report.check!.passed);
});
