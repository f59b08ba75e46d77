// lower: write the plan directory — `plan.json` (hxc-plan/v1, schema in
// src/schema/hxc-plan.v1.schema.json) and `trace.json`, the estimated timeline as a Chrome trace
// — into a temporary folder renamed into place, so no half-written plan is ever left. Same inputs
// and options give a byte-identical directory: no timestamps, no absolute paths, stable orders.

import { CALIBRATE } from './profile.js';
import { ROUTING } from '../src/moe/routing.js';
import { ASSIGN } from './partition-options.js';
import { choiceOption, stringOption, switchOption } from '../src/pass/options.js';
import { layoutPrograms, PACK_ABOVE_PROGRAMS } from '../src/plan/programs.js';
import { buildReport } from '../src/report/data.js';
import { reportHtml } from '../src/report/html.js';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { HxcError } from '../src/diag/diagnostics.js';
import path from 'node:path';
import { refuseHoldingInputs, writeOutputDir } from '../src/util/output.js';
import { writeTrace } from '../src/sim/trace-text.js';
import { PLAN_HASH_FILE, planHashLine } from '../src/plan/read.js';
import { writeJson } from '../src/util/json-text.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import { bindPass, positionLimit } from './bind.js';
import { moePass, expertsAsPlaced } from './moe.js';
import { buildPrograms, decodeSource, type LoweredPrograms, type ProgramSpec } from '../src/lower/programs.js';
import { expertProbes } from '../src/moe/expected.js';
import { partitionPass, type PartitionResult } from './partition.js';
import { splitAndCopyNodes } from './partition-experts.js';
import { profilePass } from './profile.js';
import { replicatePass } from './replicate.js';
import { schedulePass, type ScheduleResult } from './schedule.js';
import { shapesPass } from './shapes.js';
import { statePass, tensorBytes, tensorWriter } from './state.js';
import { tpPass, type TpResult } from './tp.js';
import { verifyPass } from './verify.js';
import type { InputSpec } from '../src/plan/inputs.js';
import { DELTA_FORMAT, PLAN_FORMAT, type DeltaV1, type PlanStep, type PlanV1 } from '../src/plan/format.js';

export { PLAN_FORMAT };

export interface LowerResult {
  dir: string;
  plan: PlanV1;
  /** delta.json, when the plan is a replan. */
  delta: DeltaManifest | null;
  /** report.html's path, when --report asked for it. */
  report: string | null;
}

export type DeltaManifest = DeltaV1;

export function buildManifest(
  ctx: PassContext,
  pipeline: string,
  programs: Map<string, string[]> | null,
  dir: string,
): Omit<PlanV1, 'expert_probes' | 'programs'> {
  const part = ctx.get(partitionPass);
  const sched = ctx.get(schedulePass);
  const profile = ctx.get(profilePass);
  const state = ctx.get(statePass);
  const bind = ctx.get(bindPass);
  const topo = ctx.topology();
  const model = ctx.model;
  const g = model.graph;
  const p = part.problem;
  const assignment: Record<string, string> = {};
  g.nodes.forEach((n, i) => {
    const device = p.device_ids[part.placement.device[part.unit_of[i]!]!]!;
    // (A node named __proto__ is a member like any other, not the object's prototype.)
    if (n.name === '__proto__') Object.defineProperty(assignment, n.name, { value: device, enumerable: true, writable: true, configurable: true });
    else assignment[n.name] = device;
  });
  const latency = sched.one.makespan_s;
  const lb = part.lower_bound;
  const kinds = new Map(topo.devices.map((d) => [d.id, d.kind]));
  return {
    format: PLAN_FORMAT,
    model: {
      name: model.name,
      file: path.basename(model.path),
      sha256: model.sha256,
      format: model.format,
      // (The bytes planned: programs are cut from them too, whatever the file holds by now.)
      file_bytes: model.file_bytes,
      /** Where the source model was, relative to the plan directory (hxc run --check reads it). */
      path_from_plan: relativeTo(dir, model.path),
    },
    topology: {
      name: topo.name,
      sha256: topo.source.sha256,
      /** Where the rack file was, relative to the plan directory; null for the built-in rack (hxc replan reads it). */
      path_from_plan: ctx.options.topology_path === null ? null : relativeTo(dir, ctx.options.topology_path),
      links: topo.links.map((l) => ({ name: l.name, kind: l.kind, bandwidth_bytes_per_s: l.bandwidth_bytes_per_s, latency_s: l.latency_s, shared: l.shared })),
      /** On a large rack, the devices planned on and why (src/partition/narrow.ts). */
      ...(ctx.considered ? { considered: ctx.considered } : {}),
    },
    dims: Object.fromEntries(
      Object.entries(profile.bindings)
        .filter(([k]) => !(k in profile.estimated))
        .sort(([a], [b]) => (a < b ? -1 : 1)),
    ),
    /** Data-dependent sizes costed at their expectation (tokens per expert), not bound by anyone. */
    estimated_dims: Object.fromEntries(Object.entries(profile.estimated).sort(([a], [b]) => (a < b ? -1 : 1))),
    inputs: inputSpecs(ctx),
    outputs: g.outputs.map((o) => ({ name: o.name, dtype: o.type?.dtype ?? null, shape: o.type?.shape ?? null })),
    phase: bind.phase,
    /** The LLM symbols (batch, seq, past, total) hxc run uses for --decode-steps. */
    roles: bind.roles,
    /** Positions the model can address (a position table's rows), null when unbounded: hxc run keeps decode steps within it. */
    max_positions: finiteOrNull(positionLimit(model)),
    objective: part.objective,
    solver: part.solver,
    /** The planning options it was made with (files relative to the plan directory): what hxc replan makes it again with. */
    // (A serving plan's phase plan also records the pool of devices it was planned on: a replan keeps to it.)
    options: { flags: recordedOptions(ctx.options.flags, dir), dims: ctx.options.dims, ...(ctx.options.pool ? { pool: ctx.options.pool } : {}) },
    pipeline,
    assignment,
    devices: sched.devices.map((d) => {
      let computed = 0; // compute steps so far: the index of the step's program
      return {
        id: d.id,
        kind: kinds.get(d.id),
        program: programs?.has(d.id) ? `programs/${d.id}/` : (null as string | null),
        steps: d.steps.map((s) =>
          s.op === 'compute'
            ? {
                op: s.op,
                unit: s.unit,
                nodes: s.nodes,
                program: programs?.get(d.id)?.[computed++] ?? null,
                duration_s: s.duration_s!,
                round: s.round,
                start_s: s.start_s,
                end_s: s.end_s,
              }
            : // The schedule made it as plan.json lists it (passes/schedule.ts).
              (s as PlanStep),
        ),
        memory: d.memory,
      };
    }),
    transfers: sched.transfers,
    state: state.objects.map((o) => {
      // Each tensor lives where it is written (passes/state.ts parts; the object's first writer's
      // device when nothing writes it): the owner holds most of the object's bytes, `owners` lists
      // every device holding some when they are several.
      const home = new Map<string, string>();
      const held = new Map<string, number>();
      for (const t of o.parts) {
        const w = tensorWriter(o, t);
        if (w === null) continue;
        const dev = assignment[g.nodes[w]!.name]!;
        home.set(t.input, dev);
        home.set(t.output, dev);
        held.set(dev, (held.get(dev) ?? 0) + tensorBytes(o, t));
      }
      const byBytes = [...held].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      const owner = byBytes[0]?.[0] ?? (o.writers.length > 0 ? assignment[g.nodes[o.writers[0]!]!.name]! : null);
      // Readers placed away from a tensor they read pay to see it: each such node, where it runs,
      // and the state bytes it reads per step from tensors held elsewhere.
      // A reader of only the cache's shape (Shape, Size) moves no bytes: metadata is not data.
      const moves = o.readers
        .filter((r) => !(g.nodes[r]!.domain === '' && (g.nodes[r]!.op === 'Shape' || g.nodes[r]!.op === 'Size')))
        .flatMap((r) => {
          const device = assignment[g.nodes[r]!.name]!;
          const away = g.nodes[r]!.inputs.filter((v) => (home.get(v) ?? device) !== device);
          return away.length > 0 ? [{ node: g.nodes[r]!.name, device, bytes: away.reduce((sum, v) => sum + (profile.value_bytes.get(v) ?? 0), 0) }] : [];
        });
      return {
        name: o.name,
        kind: o.kind,
        bytes: o.bytes,
        bytes_per_token: o.bytes_per_token,
        owner,
        ...(byBytes.length > 1 ? { owners: byBytes.map(([device, bytes]) => ({ device, bytes })) } : {}),
        inputs: o.inputs,
        outputs: o.outputs,
        moves,
      };
    }),
    experts: ctx.has(moePass)
      ? // (The copies' nodes by name, as the partition found them: not the index's map of every node's name.)
        expertsAsPlaced(ctx.get(moePass), g, (i) => assignment[g.nodes[i]!.name]!, expertCopies(ctx), topo, ctx.routes(), splitAndCopyNodes(ctx))
      : [],
    estimate: {
      /** Everything here is the simulator's (src/partition/judge.ts), the model that chose the plan. */
      latency_s: latency,
      throughput_per_s: sched.many.throughput_per_s,
      throughput_requests: sched.requests,
      /** Throughput simulated with pipeline rounds (a device runs an early segment of the next request while a late one waits). */
      pipelined: sched.pipelined,
      lower_bound_s: lb.lower_bound_s,
      throughput_upper_per_s: part.throughput_bound.upper_per_s,
      /** For the objective: latency over its lower bound, or the throughput bound over throughput, minus 1. */
      gap:
        part.objective === 'latency'
          ? lb.lower_bound_s > 0
            ? latency / lb.lower_bound_s - 1
            : null
          : sched.many.throughput_per_s > 0 && Number.isFinite(part.throughput_bound.upper_per_s)
            ? part.throughput_bound.upper_per_s / sched.many.throughput_per_s - 1
            : null,
      lower_bounds: {
        critical_path_s: lb.critical_path_s,
        work_over_speed_s: lb.work_over_speed_s,
        memory_spread_s: lb.memory_spread_s,
        ...(lb.milp_s !== null ? { milp_s: lb.milp_s } : {}),
      },
      devices: Object.fromEntries(
        sched.devices.map((d, k) => [
          d.id,
          {
            busy_s: sched.one.devices[k]!.busy_s,
            utilisation: sched.one.devices[k]!.utilisation,
            memory_bytes: d.memory.total_bytes,
            capacity_bytes: d.memory.capacity_bytes,
          },
        ]),
      ),
      link_bytes: sched.one.link_bytes,
      /** Which candidate was shipped, and every candidate judged (the shipped plan is the best of them for the objective). */
      chosen: part.chosen,
      candidates: part.candidates,
      baselines: {
        heft: part.baselines.heft,
        single_device: part.baselines.single_device,
        fallback: part.baselines.fallback,
        even_split: part.baselines.even_split,
        tensor_parallel: part.baselines.tensor_parallel,
        exact: part.exact ? { status: part.exact.status, contention_free_s: part.exact.objective_s, gap: part.exact.gap } : null,
      },
      search: part.search,
      /** Pipeline variants weighed (with and without tensor-parallel splits), when there were several. */
      variants: part.variants ?? null,
      /** The stage cuts weighed (fine and coarse), when there were two (passes/stage.ts). */
      stage_cuts: part.stage_cuts ?? null,
      pipeline: shippedPipeline(part, sched),
      kv: part.kv,
    },
    explain: part.explain(),
    /** Executable expert replicas (the replicate pass): per expert, its share input, row-part values and each copy's device. */
    expert_replicas: ctx.has(replicatePass)
      ? ctx.get(replicatePass).replicated.map((r) => ({
          key: r.key,
          input: r.input,
          parts: r.replicas.map((_, j) => `${r.key}/rows${j}`),
          devices: r.replicas.map((names) => assignment[names[0]!]!),
        }))
      : [],
    /** Tensor parallelism applied (the tp pass): MatMuls split column-wise into k parts. */
    tensor_parallel: ctx.has(tpPass) ? tensorParallelRecord(ctx.get(tpPass)) : null,
    ...(ctx.options.serve ? { serve: ctx.options.serve } : {}),
  };
}

/**
 * The pipeline DP's chain (src/partition/pipeline.ts), when that plan is the one shipped (a
 * polished one has moved units off its segments; another candidate is not this plan): its segments
 * as the shipped steps run them — compute the sum of the segment's compute steps (grouped expert
 * launches included, which the DP's contention-free sums leave out), the bottleneck the larger of
 * a segment's compute and the transfer into it.
 */
function shippedPipeline(part: PartitionResult, sched: ScheduleResult): PlanV1['estimate']['pipeline'] {
  if (!part.pipeline || part.chosen !== 'pipeline') return null;
  const stepTime = new Float64Array(part.problem.unit_names.length);
  for (const d of sched.devices) for (const st of d.steps) if (st.op === 'compute') stepTime[st.unit_index!] = st.duration_s!;
  const segments = part.pipeline.segments.map((g) => {
    let compute_s = 0;
    for (let k = g.units[0]; k <= g.units[1]; k++) compute_s += stepTime[part.problem.order[k]!]!;
    return { ...g, compute_s };
  });
  return { bottleneck_s: Math.max(0, ...segments.map((g) => Math.max(g.compute_s, g.transfer_in_s))), chain: part.pipeline.chain, segments };
}

/** The tp pass's record as plan.json keeps it: `io` only when the plan holds graph inputs or outputs as parts. */
function tensorParallelRecord(r: TpResult): PlanV1['tensor_parallel'] {
  const { io, ...rest } = r;
  return io.length > 0 ? { ...rest, io } : rest;
}

/** A number, or null for Infinity (JSON has no infinity). */
const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** `file` relative to the plan directory `dir`, with forward slashes. */
function relativeTo(dir: string, file: string): string {
  return path.relative(path.resolve(dir), path.resolve(file)).split(path.sep).join('/');
}

/** Option flags naming a file: recorded relative to the plan directory. */
export const FILE_OPTIONS: readonly string[] = [CALIBRATE, ROUTING, ASSIGN].map((o) => o.name);
/** Where the plan went is not how it was made. */
const NOT_OPTIONS = new Set(['out']);

function recordedOptions(flags: Record<string, string | number | boolean>, dir: string): Record<string, string | number | boolean> {
  return Object.fromEntries(
    Object.entries(flags)
      .filter(([k]) => !NOT_OPTIONS.has(k))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => [k, FILE_OPTIONS.includes(k) && typeof v === 'string' ? relativeTo(dir, v) : v]),
  );
}

/** delta.json (hxc-delta/v1): what `hxc replan` moved from the running plan, and what it buys. */
function deltaManifest(ctx: PassContext, dir: string, latency_s: number, throughput_per_s: number): DeltaV1 | null {
  const m = ctx.get(partitionPass).migration;
  const origin = ctx.options.replan?.origin;
  if (!m || !origin) return null;
  return {
    format: DELTA_FORMAT,
    /** The running plan: its directory (relative to this one), plan.json's sha256 and what it estimated when it was made. */
    from: { dir: relativeTo(dir, origin.dir), plan_sha256: origin.plan_sha256, latency_s: origin.latency_s, throughput_per_s: origin.throughput_per_s },
    objective: ctx.get(partitionPass).objective,
    amortize_requests: m.amortize_requests,
    limits: { max_moves: ctx.options.replan!.max_moves, migration_budget_bytes: ctx.options.replan!.migration_budget_bytes },
    moved: m.moved.map((x) => ({ unit: x.unit, from: x.from, to: x.to, bytes: x.bytes, seconds: x.seconds, why: x.why })),
    moves: m.moves,
    forced_moves: m.forced,
    migration_bytes: m.bytes,
    /** Over the routes, transfers into different devices at once: the busiest receiving device's sum. */
    migration_s: m.seconds,
    within_limits: m.within_limits,
    /** The running plan judged under today's inputs (routing, calibration, rack); null when it cannot run as it was. */
    running_now: m.running,
    new: { latency_s, throughput_per_s },
    /** The best plan made from scratch under the same inputs, and what going there would move. */
    fresh: m.fresh,
  };
}

/** Per replicated expert key, the nodes of each executable copy (replicate pass). */
function expertCopies(ctx: PassContext): Map<string, string[][]> {
  const m = new Map<string, string[][]>();
  if (ctx.has(replicatePass)) for (const r of ctx.get(replicatePass).replicated) m.set(r.key, r.replicas);
  return m;
}

/**
 * How `hxc run` fills each graph input when no --inputs file is given: token ids uniformly below
 * the vocabulary of the embedding they index (read from the Gather they feed), attention masks all
 * ones, position ids counting on from the past length, floats uniform in [-1, 1).
 */

function inputSpecs(ctx: PassContext): InputSpec[] {
  const g = ctx.model.graph;
  const bind = ctx.get(bindPass);
  const inits = g.initializers;
  return g.inputs
    .filter((v) => !inits.has(v.name))
    .map((v) => {
      const dtype = v.type?.dtype ?? null;
      const shape = v.type?.shape ?? null;
      let fill: InputSpec['fill'] = { kind: 'uniform-float' };
      if (v.name.startsWith('hxc.share.')) fill = { kind: 'replica-share', replicas: typeof shape?.[0] === 'number' ? shape[0] : 1 };
      else if (dtype === 'bool') fill = { kind: 'bool' };
      else if (dtype && /int/.test(dtype)) {
        if (/mask/i.test(v.name)) fill = { kind: 'ones' };
        else if (/position/i.test(v.name)) fill = { kind: 'positions', offset_dim: bind.roles.past ?? null };
        else {
          // The vocabulary: the first dim of the table a Gather indexes with this input.
          let high = 2;
          for (const n of g.nodes) {
            if (n.op === 'Gather' && n.inputs[1] === v.name) {
              const table = inits.get(n.inputs[0]!) ?? null;
              if (table && table.dims.length > 0) {
                high = table.dims[0]!;
                break;
              }
            }
          }
          fill = { kind: 'uniform-int', high };
        }
      }
      return { name: v.name, dtype, shape, fill };
    });
}

/** The values `hxc run` reads expert token counts from: one NonZero output per expert of each routed MoE layer. */
function expertProbeList(ctx: PassContext): { value: string; layer: number; expert: number }[] {
  if (!ctx.has(moePass)) return [];
  const { index } = ctx.get(verifyPass);
  const layers = ctx.get(moePass).layers;
  return expertProbes(ctx.model, index, layers)
    .map((p) => ({ value: ctx.model.graph.nodes[p.node]!.outputs[0]!, layer: p.layer, expert: p.expert }))
    .filter((p) => p.value);
}

/** Programs per device: `programs/<device>/<ordinal>.onnx`, one per run of consecutive compute steps; `byDevice` lists each compute step's file. */
function lowerPrograms(ctx: PassContext): {
  files: LoweredPrograms;
  byDevice: Map<string, string[]>;
  links: { file: string; link: string }[];
  /** The expert probes (plan.json `expert_probes`), outputs of the programs that compute them. */
  probes: ReturnType<typeof expertProbeList>;
} | null {
  if (ctx.model.format !== 'onnx') return null;
  const sched = ctx.get(schedulePass);
  const { index } = ctx.get(verifyPass);
  // Types by value id as the shapes pass keeps them with verify's index (by name when it ran without it).
  const shapes = ctx.get(shapesPass);
  const byId = shapes.types_by_id;
  const typeOf = byId ? (id: number) => byId[id] : (id: number) => shapes.types.get(index.valueNames[id]!);
  const units = ctx.get(partitionPass).units;
  const specs: ProgramSpec[] = [];
  const byDevice = new Map<string, string[]>();
  for (const d of sched.devices) {
    // Consecutive compute steps (no send or recv between them) share one program: fewer session
    // runs, and onnxruntime optimises across what would otherwise be program boundaries.
    const files: string[] = [];
    let k = 0;
    let group: ProgramSpec | null = null;
    for (const s of d.steps) {
      if (s.op !== 'compute') {
        group = null;
        continue;
      }
      if (!group) {
        group = { file: `programs/${d.id}/${String(k++).padStart(3, '0')}.onnx`, nodes: [] };
        specs.push(group);
      }
      // The unit's own node indices, whose names the step lists (not each name looked up again).
      group.nodes.push(...units[s.unit_index!]!.nodes);
      files.push(group.file);
    }
    if (files.length > 0) byDevice.set(d.id, files);
  }
  const source = decodeSource(ctx.model);
  const modelDir = path.resolve(ctx.model.dir);
  // External weights: onnxruntime only reads external data inside a program's own folder, so each
  // device folder gets a hard link to the source weights file (same bytes on disk, nothing copied)
  // and the program names the link.
  const linkNames = new Map<string, string>();
  const probes = expertProbeList(ctx);
  const probeValues = new Set(probes.map((p) => p.value));
  // Replica row parts too: hxc run reports tokens per replica.
  if (ctx.has(replicatePass)) for (const r of ctx.get(replicatePass).replicated) r.replicas.forEach((_, j) => probeValues.add(`${r.key}/rows${j}`));
  const files = buildPrograms(
    ctx.model,
    index,
    source,
    specs,
    typeOf,
    (location) => {
      let name = linkNames.get(location);
      if (name === undefined) {
        name = `weights-${linkNames.size}-${path.basename(location)}`;
        linkNames.set(location, name);
      }
      return name;
    },
    probeValues,
  );
  const links: { file: string; link: string }[] = [];
  // The import checked each weights file; it is checked again now, when it is linked — a file
  // that became a symlink out of the model's folder since must not reach the plan.
  const realDir = fs.realpathSync(modelDir);
  for (const [location, name] of linkNames) {
    const source = path.join(modelDir, location);
    if (!fs.existsSync(source)) continue;
    const real = fs.realpathSync(source);
    const rel = path.relative(realDir, real);
    if (rel === '' || rel.split(path.sep)[0] === '..' || path.isAbsolute(rel) || !fs.statSync(real).isFile()) {
      throw new HxcError('HXC2104', `external data "${location}" now leads outside the model's folder (or is not a file)`, {
        where: ctx.model.path,
        hint: "copy the weights into the model's folder and plan again",
      });
    }
    for (const device of byDevice.keys()) links.push({ file: `programs/${device}/${name}`, link: real });
  }
  return { files, byDevice, links, probes };
}

export const OUT = stringOption({ name: 'out', short: '-o', arg: '<dir>', help: 'plan directory to write (default hxc-plan)' });
export const REPORT = switchOption({ name: 'report', help: 'also write report.html into the plan directory (what hxc report PLAN_DIR writes)' });
export const PACK_PROGRAMS = choiceOption({
  name: 'pack-programs',
  arg: '<when>',
  choices: ['auto', 'on', 'off'] as const,
  help: `on: each device's programs in a few programs-<k>.pack files; off: one .onnx file per program; auto (default): packed above ${PACK_ABOVE_PROGRAMS} programs`,
});

export const lowerPass: Pass<LowerResult> = {
  name: 'lower',
  summary:
    'write the plan directory: one ONNX program per run of consecutive compute steps on a device, plan.json (hxc-plan/v1), the estimated timeline trace.json',
  requires: ['verify', 'shapes', 'schedule'],
  uses: ['moe', 'replicate', 'tp'],
  options: [OUT, REPORT, PACK_PROGRAMS],
  run(ctx) {
    const dir = ctx.option(OUT) ?? 'hxc-plan';
    const pipeline = ctx.options.pipeline ?? '';
    ctx.progress('programs');
    const programs = lowerPrograms(ctx);
    const packWhen = ctx.option(PACK_PROGRAMS) ?? 'auto';
    const written = programs?.files.programs ?? [];
    const layout = layoutPrograms(written, packWhen === 'on' || (packWhen === 'auto' && written.length > PACK_ABOVE_PROGRAMS));
    // Each program's entry; its sha256 is known once it is written (before plan.json).
    const metas = written.map((f) => ({ sha256: '', bytes: f.size, inputs: f.inputs, outputs: f.outputs, ...layout.place.get(f.file) }));
    ctx.progress("plan.json: every unit's placement explained");
    const plan = {
      ...buildManifest(ctx, pipeline, programs?.byDevice ?? null, dir),
      expert_probes: programs?.probes ?? [],
      programs: Object.fromEntries(written.map((f, k) => [f.file, metas[k]!])),
    };
    const sched = ctx.get(schedulePass);
    // plan.json is written in pieces through one small buffer (src/util/json-text.ts: a 275k-node
    // plan is ~124 MB of text) and hashed on the way; plan.sha256, written after it, takes the hash.
    const planHash = crypto.createHash('sha256');
    const delta = deltaManifest(ctx, dir, plan.estimate.latency_s, plan.estimate.throughput_per_s);
    // (Built before the packs are written: the programs' sha256 are still blank here; the report reads none.)
    const report = ctx.option(REPORT)
      ? reportHtml(
          buildReport({
            dir,
            plan,
            topology: ctx.topology(),
            rackSource: plan.topology.path_from_plan ?? 'the built-in rack',
            delta,
            compare: null,
          }),
        )
      : null;
    ctx.progress(`writing ${dir}`);
    refuseHoldingInputs(dir, [
      ctx.options.model_path,
      ctx.options.topology_path,
      ...FILE_OPTIONS.map((name) => ctx.options.flags[name]).filter((v): v is string => typeof v === 'string'),
      ctx.options.replan?.origin?.dir,
    ]);
    const output = writeOutputDir(
      dir,
      [
        ...(delta ? [{ file: 'delta.json', text: JSON.stringify(delta, null, 1) + '\n' }] : []),
        ...(report !== null ? [{ file: 'report.html', text: report }] : []),
        ...layout.files.map((f) => ({
          file: f.file,
          write: (sink: (bytes: Uint8Array) => void) => programs!.files.write(f.programs, sink, (k, sha256) => (metas[k]!.sha256 = sha256)),
        })),
        ...(programs?.links ?? []),
        {
          file: 'plan.json',
          write: (sink) =>
            writeJson(plan, (bytes) => {
              planHash.update(bytes);
              sink(bytes);
            }),
        },
        // plan.json's sha256: any edit of the plan (or, through the hashes it lists, of a program) is refused.
        { file: PLAN_HASH_FILE, text: () => planHashLine(planHash.digest('hex')) },
        {
          file: 'trace.json',
          // The one-request run again, now with its trace, each event's text written as it happens
          // (src/sim/trace-text.ts): as one string (two bytes a character: transfer names hold a →)
          // and its UTF-8 copy, the DeepSeek-V3 plan's 18 MB trace was ~54 MB of fresh memory, and
          // its 91k events, kept until the run ended, were promoted by the collector.
          write: (sink) => writeTrace(sched.sim_input, { generator: 'hxc', kind: 'estimate' }, sink),
        },
      ],
      PLAN_FORMAT,
    );
    if (output.copied.length > 0)
      ctx.diagnostics.warn(
        'HXC1115',
        `the plan's folder is on another file system than the model's weights, which cannot be hard-linked there: ${output.copied.length} weight file(s) copied once into the plan (${output.copied.reduce((s, c) => s + c.bytes, 0)} bytes), every device's folder linking that copy`,
        { where: dir },
      );
    return { dir, plan, delta, report: report !== null ? path.join(dir, 'report.html') : null };
  },
  statistics(r) {
    return { devices: r.plan.devices.length, transfers: r.plan.transfers.length };
  },
  dump(r) {
    return JSON.stringify({ ...r.plan, devices: r.plan.devices.map((d) => ({ id: d.id, steps: d.steps.length, memory: d.memory })) }, null, 1) + '\n';
  },
};
