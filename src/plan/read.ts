// Reading a plan directory back (simulate, run, check): a plan someone handed over is untrusted.
// Before anything uses it: a swap killed half-way is put back (src/util/output.ts); plan.json is a
// regular file inside the folder, of bounded size, whose sha256 matches plan.sha256 (so any edit is
// refused, and since plan.json lists every program's sha256, so is an edited program); it is
// valid against its schema (src/schema/hxc-plan.v1.schema.json) and consistent — unique device ids,
// every send with its recv on the transfer's two devices, every program path inside the folder,
// every node on the device the assignment names. `verifyPrograms` then checks each program file
// against its hash and its declared inputs and outputs against the ONNX graph itself.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ValidateFunction } from 'ajv';
import type { onnx as OnnxNs } from 'onnx-proto';
import { HxcError } from '../diag/diagnostics.js';
import type { PlanV1 } from './format.js';
import { recoverStale } from '../util/output.js';
import { sha256 } from '../util/hash.js';
import { PACK_NAME, ProgramReader, programLocation } from './programs.js';

const require = createRequire(import.meta.url);

/** plan.json larger than this is refused before it is read (a 275k-node plan is ~100 MB). */
export const MAX_PLAN_BYTES = 1 << 30;
/** The file holding plan.json's sha256 (`<hex>  plan.json`). */
export const PLAN_HASH_FILE = 'plan.sha256';

export function planHashText(planJson: string | Uint8Array): string {
  return planHashLine(sha256(planJson));
}

/** plan.json's sha256 in hex as `dir`'s plan.sha256 records it (readPlan checks the two agree). */
export function recordedPlanSha256(dir: string): string {
  return fs.readFileSync(path.join(dir, PLAN_HASH_FILE), 'utf8').trim().split(/\s+/)[0]!;
}

/** plan.sha256's text for plan.json's sha256 in hex. */
export function planHashLine(hex: string): string {
  return `${hex}  plan.json\n`;
}

const validators = new Map<string, ValidateFunction>();
/** The validator of a format's schema (`hxc-plan.v1`, `hxc-delta.v1`), compiled once. */
export function schemaValidator(schema = 'hxc-plan.v1'): ValidateFunction {
  let validator = validators.get(schema);
  if (!validator) {
    const { Ajv } = require('ajv') as typeof import('ajv');
    const here = path.dirname(fileURLToPath(import.meta.url));
    // dist/src/plan → src/schema of the package (the schema ships beside the sources).
    const file = path.resolve(here, '..', '..', '..', 'src', 'schema', `${schema}.schema.json`);
    validator = new Ajv({ allErrors: false, strict: false }).compile(JSON.parse(fs.readFileSync(file, 'utf8')));
    validators.set(schema, validator);
  }
  return validator;
}

/** A schema failure's place, a JSON pointer shown with its keys unescaped (~1 is /, ~0 is ~). */
export function schemaPlace(validate: ValidateFunction): string {
  return (validate.errors?.[0]?.instancePath ?? '')
    .split('/')
    .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join(' › ')
    .replace(/^ › /, '');
}

/** A regular file of at most `max` bytes, read without following a symlink at its own name. */
function readRegular(file: string, max: number, what: string, where: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    throw new HxcError('HXC2001', `no ${what} here`, { where, hint: 'give a folder written by `hxc plan --out DIR`' });
  }
  if (!st.isFile()) throw new HxcError('HXC2601', `${what} is not a regular file`, { where: file, hint: 'write the plan again with hxc plan' });
  if (st.size > max) throw new HxcError('HXC2106', `${what} has ${st.size} bytes, more than the ${max} hxc reads`, { where: file });
  return fs.readFileSync(file);
}

const tampered = (where: string, what: string): HxcError =>
  new HxcError('HXC2601', what, { where, hint: 'the plan directory was changed after hxc wrote it: plan again' });

export function readPlan(dir: string): PlanV1 {
  try {
    recoverStale(path.resolve(dir));
  } catch {
    // recovery is best effort; reading below reports what is there
  }
  const file = path.join(dir, 'plan.json');
  const bytes = readRegular(file, MAX_PLAN_BYTES, 'plan.json', dir);
  const hashFile = path.join(dir, PLAN_HASH_FILE);
  const recorded = readRegular(hashFile, 4096, PLAN_HASH_FILE, dir).toString('utf8');
  if (recorded !== planHashText(bytes)) throw tampered(file, `plan.json does not match ${PLAN_HASH_FILE}`);
  let plan: Record<string, unknown>;
  try {
    plan = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new HxcError('HXC2201', `plan.json is not JSON: ${(err as Error).message}`, { where: file, hint: 'write the plan again with hxc plan' });
  }
  if (plan === null || typeof plan !== 'object' || Array.isArray(plan)) throw new HxcError('HXC2003', 'plan.json is not a JSON object', { where: file });
  if (plan.format !== 'hxc-plan/v1')
    throw new HxcError('HXC2003', `plan.json has format ${JSON.stringify(plan.format)}, expected "hxc-plan/v1"`, { where: file });
  const validate = schemaValidator();
  if (!validate(plan))
    throw tampered(`${file}: ${schemaPlace(validate) || '$'}`, `plan.json does not follow hxc-plan/v1: ${validate.errors?.[0]?.message ?? 'invalid'}`);
  const p = plan as unknown as PlanV1;
  crossCheck(p, dir, file);
  return p;
}

/** The plan is consistent with itself (what a schema cannot say). */
function crossCheck(p: PlanV1, dir: string, file: string): void {
  const ids = new Set<string>();
  for (const d of p.devices) {
    if (ids.has(d.id)) throw tampered(file, `device "${d.id}" appears twice`);
    ids.add(d.id);
  }
  const root = path.resolve(dir);
  const programs = p.programs ?? {};
  const inside = (f: string): boolean => !path.isAbsolute(f) && path.resolve(root, f).startsWith(root + path.sep) && !f.split(/[\\/]/).includes('..');
  for (const [f, meta] of Object.entries(programs)) {
    if (!inside(f)) throw tampered(file, `program path "${f}" leaves the plan directory`);
    if (
      meta.pack !== undefined &&
      (!inside(meta.pack) || path.posix.dirname(meta.pack) !== path.posix.dirname(f) || !PACK_NAME.test(path.posix.basename(meta.pack)))
    )
      throw tampered(file, `program "${f}" names the pack "${meta.pack}", which is not a pack of its own folder`);
  }
  const sends = new Map<number, string>();
  const recvs = new Map<number, string>();
  // Every node computed once, on the device the assignment names; then the assignment names no
  // other node (as many nodes as computed). Read per node, not through Object.entries: on a
  // 275k-node plan its 275k pairs cost half a second at every read.
  const assignment = p.assignment;
  const computed = new Set<string>();
  for (const d of p.devices) {
    for (const [k, s] of d.steps.entries()) {
      const at = `devices[${d.id}].steps[${k}]`;
      if (s.op === 'compute') {
        if (s.program !== null && s.program !== undefined && !(s.program in programs))
          throw tampered(file, `${at} runs program "${s.program}", which the plan does not list`);
        for (const n of s.nodes ?? []) {
          if (computed.has(n)) throw tampered(file, `node "${n}" is computed twice`);
          computed.add(n);
          // (An inherited member, "constructor" say, is never a device id: the check below tells them apart.)
          if (assignment[n] !== d.id)
            throw tampered(
              file,
              Object.hasOwn(assignment, n)
                ? `node "${n}" is assigned to ${assignment[n]} but runs on ${d.id}`
                : 'a compute step runs a node the assignment does not list',
            );
        }
        continue;
      }
      const t = p.transfers[s.transfer!];
      if (!t) throw tampered(file, `${at} names transfer ${s.transfer}, which does not exist`);
      const [self, other, seen] = s.op === 'send' ? [t.from, t.to, sends] : [t.to, t.from, recvs];
      if (self !== d.id || other !== s.peer || t.value !== s.value)
        throw tampered(file, `${at} (${s.op} ${s.value}) does not match transfer ${s.transfer} (${t.value} ${t.from}→${t.to})`);
      if (seen.has(s.transfer!)) throw tampered(file, `transfer ${s.transfer} is ${s.op === 'send' ? 'sent' : 'received'} twice`);
      seen.set(s.transfer!, d.id);
    }
  }
  p.transfers.forEach((t, k) => {
    if (!ids.has(t.from) || !ids.has(t.to)) throw tampered(file, `transfer ${k} names a device the plan does not have`);
    if (!sends.has(k) || !recvs.has(k)) throw tampered(file, `transfer ${k} (${t.value} ${t.from}→${t.to}) has no ${sends.has(k) ? 'recv' : 'send'}`);
  });
  const listed = Object.keys(assignment);
  if (listed.length !== computed.size) {
    const idle = listed.find((node) => !computed.has(node))!;
    throw tampered(file, `node "${idle}" is assigned to ${assignment[idle]} but runs nowhere`);
  }
}

/**
 * Each program is a regular file inside the plan directory (no symlink out), matches its sha256,
 * and its ONNX graph's inputs and outputs are the ones plan.json declares; the plan's outputs are
 * produced by some program. A failure names the file.
 */
export function verifyPrograms(dir: string, plan: PlanV1): void {
  const { onnx } = require('onnx-proto') as { onnx: typeof OnnxNs };
  if (Object.keys(plan.programs ?? {}).length === 0) return;
  const root = fs.realpathSync(dir);
  const produced = new Set<string>();
  // Each file holding programs (a program's own, or a pack) is checked once: inside the folder, regular, its size.
  const sizes = new Map<string, number>();
  const fileSize = (name: string, what: string): number => {
    let size = sizes.get(name);
    if (size !== undefined) return size;
    const p = path.join(dir, name);
    let real: string;
    try {
      real = fs.realpathSync(p);
    } catch {
      throw new HxcError('HXC2601', `${what} is missing`, { where: dir, hint: 'write the plan again with hxc plan' });
    }
    if (!real.startsWith(root + path.sep)) throw tampered(p, `${what} leads outside the plan directory`);
    const st = fs.lstatSync(real);
    if (!st.isFile()) throw new HxcError('HXC2601', `${what} is not a regular file`, { where: p, hint: 'write the plan again with hxc plan' });
    size = st.size;
    sizes.set(name, size);
    return size;
  };
  const reader = new ProgramReader(dir);
  const present = new Map<string, boolean>();
  try {
    for (const [file, meta] of Object.entries(plan.programs ?? {})) {
      const where = programLocation(file, meta);
      const p = path.join(dir, where.file);
      const size = fileSize(where.file, meta.pack !== undefined ? `pack ${meta.pack}` : `program ${file}`);
      if (meta.pack === undefined ? size !== meta.bytes : where.offset + meta.bytes > size)
        throw tampered(
          p,
          `program ${file} does not match the manifest (${meta.bytes} bytes${meta.pack !== undefined ? ` at ${where.offset} in a pack of ${size}` : `, the file has ${size}`})`,
        );
      if (meta.bytes > 2 ** 31 - 1)
        throw new HxcError('HXC2106', `program ${file} has ${meta.bytes} bytes, more than the ${2 ** 31 - 1} hxc reads`, { where: p });
      const bytes = reader.read(file, meta);
      const sha = sha256(bytes);
      if (sha !== meta.sha256)
        throw tampered(p, `program ${file} does not match the manifest (sha256 ${sha.slice(0, 12)}…, expected ${meta.sha256.slice(0, 12)}…)`);
      let graph: OnnxNs.IGraphProto | null | undefined;
      try {
        graph = onnx.ModelProto.decode(bytes).graph;
      } catch (err) {
        throw tampered(p, `program ${file} is not an ONNX model: ${(err as Error).message}`);
      }
      // Weights held as external data are files beside the program (hard links the lowering made):
      // a model planned without its weights file has none, which is said here, before anything runs.
      for (const t of graph?.initializer ?? []) {
        if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
        const location = t.externalData?.find((e) => e.key === 'location')?.value ?? '';
        const weights = path.join(path.dirname(path.join(dir, file)), location);
        let there = present.get(weights);
        if (there === undefined) present.set(weights, (there = fs.existsSync(weights)));
        if (!there)
          throw new HxcError('HXC2601', `program ${file} reads weights from ${location}, which the plan folder does not hold`, {
            where: p,
            hint: 'the model was planned without its weights file: put the weights next to the model and plan again',
          });
      }
      const inits = new Set((graph?.initializer ?? []).map((t) => t.name ?? ''));
      const inputs = (graph?.input ?? []).map((v) => v.name ?? '').filter((n) => !inits.has(n));
      const outputs = (graph?.output ?? []).map((v) => v.name ?? '');
      const same = (a: string[], b: string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
      if (!same(inputs, meta.inputs) || !same(outputs, meta.outputs))
        throw tampered(p, `program ${file} declares other inputs or outputs than plan.json lists`);
      for (const o of outputs) produced.add(o);
    }
  } finally {
    reader.close();
  }
  const manifest = path.join(dir, 'plan.json');
  if (plan.outputs.length === 0) throw tampered(manifest, 'the plan lists no model outputs');
  for (const o of plan.outputs) if (!produced.has(o.name)) throw tampered(manifest, `no program produces the model output "${o.name}"`);
  // A graph input or output held as parts: every part is one plan.json lists (hxc run joins and splits them).
  const names = { input: new Set(plan.inputs.map((v) => v.name)), output: new Set(plan.outputs.map((v) => v.name)) };
  for (const x of plan.tensor_parallel?.io ?? []) {
    const list: { name: string; shape: (number | string)[] | null }[] = x.role === 'input' ? plan.inputs : plan.outputs;
    const listed = names[x.role];
    if (x.parts.length !== plan.tensor_parallel!.k || listed.has(x.name))
      throw tampered(manifest, `tensor_parallel.io: ${x.role} "${x.name}" must be listed as its ${plan.tensor_parallel!.k} parts only`);
    for (const v of list)
      if (x.parts.includes(v.name) && v.shape && (v.shape.length <= x.axis || typeof v.shape[x.axis] !== 'number'))
        throw tampered(manifest, `tensor_parallel.io: part "${v.name}" has no numeric dim on axis ${x.axis}`);
    for (const part of x.parts)
      if (!listed.has(part)) throw tampered(manifest, `tensor_parallel.io names ${x.role} part "${part}", which plan.json's ${x.role}s do not list`);
  }
  // Every value a program yields goes somewhere plan.json names: a model output, a transfer, a later
  // step, a state write, an expert probe or replica share. One that goes nowhere means a list was cut.
  const used = new Set<string>(plan.outputs.map((o) => o.name));
  for (const t of plan.transfers ?? []) used.add(t.value);
  for (const d of plan.devices) for (const s of d.steps) if (s.op !== 'compute' && s.value !== undefined) used.add(s.value);
  for (const meta of Object.values(plan.programs ?? {})) for (const v of meta.inputs) used.add(v);
  for (const st of plan.state ?? []) for (const v of st.outputs ?? []) used.add(v);
  for (const p of plan.expert_probes ?? []) used.add(p.value);
  for (const r of plan.expert_replicas ?? []) for (const v of r.parts) used.add(v);
  for (const [file, meta] of Object.entries(plan.programs ?? {})) {
    const lost = meta.outputs.find((v) => !used.has(v));
    if (lost !== undefined)
      throw tampered(manifest, `program ${file} yields "${lost}", which plan.json sends nowhere (no output, transfer, step or state lists it)`);
  }
}
