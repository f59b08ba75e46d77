// Serving plans (`hxc plan MODEL --phase serve --workload W`): the prefill graph and the decode
// graph of one model planned on pools of the rack, as DistServe and Splitwise deploy them — prefill
// on some devices, decode on others, the KV cache handed over a link — or colocated on the same
// devices. Each candidate's phases are planned by the whole pipeline on its pool (a sub-rack),
// turned into service times (src/serve/sim.ts says how), and judged by the request-level
// simulator on the workload; the best goodput ships. `--disaggregate on|off` keeps one kind only.
//
// Candidate pools, cut along the rack's structure: with accelerators on two or more hosts, hosts
// go to one side or the other (each host's CPUs and NICs with it); on one host with several
// accelerator classes, a class against the rest; on one host with one class of N ≥ 2 identical
// accelerators, N/2 against N/2 (and N/4 against 3N/4 either way when N ≥ 8). A pool also holds
// as many replicas of its phase's placement as copies of the devices that placement uses fit in it.

import { Diagnostics, HxcError, reportTo } from '../diag/diagnostics.js';
import type { PlanOptions } from '../pass/pass.js';
import { readOption } from '../pass/options.js';
import { runPipeline } from '../cli/run-passes.js';
import { PASSES } from '../../passes/index.js';
import { partitionPass } from '../../passes/partition.js';
import { statePass, tensorBytes, tensorWriter } from '../../passes/state.js';
import { BATCH, CONTEXT, llmRoles, PHASE, positionLimit, PROMPT } from '../../passes/bind.js';
import { loadModel } from '../import/load.js';
import { defaultTopology, loadTopology, RouteTable, type Topology } from '../topology/index.js';
import { deviceClassKey } from '../topology/device.js';
import { cutTopology } from '../topology/cut.js';
import { plannedLengths, readWorkload, refuseTooLong, type Workload } from './workload.js';
import { capacity, laneSeconds, simulateServe, type HandoffLane, type ServeModel, type ServeResult } from './sim.js';
import { DISAGGREGATE, WORKLOAD } from './options.js';

/** The largest decode batch planned (continuous batching rarely gains past it on one replica). */
export const MAX_DECODE_BATCH = 64;
const ACCELERATOR = new Set(['gpu', 'accel', 'dataflow']);

export interface Pools {
  name: string;
  prefill: string[];
  decode: string[];
}

/** One phase planned on a pool: what the simulator needs from it. */
export interface PhaseEval {
  pool: string[];
  batch: number;
  /** Prompt tokens (prefill) and KV context (decode) it was planned at. */
  prompt: number;
  context: number;
  latency_s: number;
  interval_s: number;
  /** Devices the placement uses. */
  used: string[];
  kv_sequences: number;
  /** The device holding most of the KV state (null without state). */
  kv_owner: string | null;
  /** KV-cache objects (one per layer for a decoder): the handoff streams one at a time. */
  kv_objects: number;
  bytes_per_token: number;
  /** Per tensor of each KV-cache object: its object's name, the tensor (its past input), the device that writes it (where it lives) and its bytes per token. */
  kv: { name: string; tensor: string; device: string; bytes_per_token: number }[];
}

export interface ServeCandidate {
  name: string;
  disaggregated: boolean;
  pools: { prefill: string[]; decode: string[] };
  model: ServeModel;
  /** The route of the slowest handoff lane's pair (null when colocated). */
  route: { links: string[]; hops: string[] } | null;
  /** Every pair of KV owners the handoff moves cache between (disaggregated), slowest first. */
  handoff_pairs: HandoffPair[];
  prefill: PhaseEval;
  decode: PhaseEval;
  results: ServeResult[];
  /** Mean goodput over the workload's rates: what candidates are ranked by. */
  goodput_per_s: number;
  /** The highest arrival rate at which 90% of requests meet both SLOs (DistServe's measure): the tie-break. */
  capacity_per_s: number;
}

export function poolCandidates(topo: Topology): Pools[] {
  const accel = topo.devices.filter((d) => ACCELERATOR.has(d.kind));
  const hostOf = new Map<string, string>();
  for (const h of topo.hosts) for (const d of h.devices) hostOf.set(d, h.id);
  const hosts = [...new Set(accel.map((d) => hostOf.get(d.id) ?? ''))];
  const others = topo.devices.filter((d) => !ACCELERATOR.has(d.kind));
  const withHosts = (side: Set<string>): string[] => {
    const sideHosts = new Set([...side].map((id) => hostOf.get(id) ?? ''));
    return topo.devices.filter((d) => side.has(d.id) || (!ACCELERATOR.has(d.kind) && sideHosts.has(hostOf.get(d.id) ?? ''))).map((d) => d.id);
  };
  const out: Pools[] = [];
  const add = (name: string, a: Set<string>, b: Set<string>, othersTo: 'host' | 'decode'): void => {
    let prefill: string[];
    let decode: string[];
    if (othersTo === 'host') {
      prefill = withHosts(a);
      decode = withHosts(b).filter((id) => !prefill.includes(id));
    } else {
      prefill = topo.devices.filter((d) => a.has(d.id)).map((d) => d.id);
      decode = topo.devices.filter((d) => b.has(d.id) || others.some((o) => o.id === d.id)).map((d) => d.id);
    }
    // The devices that are no accelerator go with the decode pool here: its name says so.
    const also = othersTo === 'decode' ? others.map((o) => o.id) : [];
    const named = also.length > 0 ? `${name} (${also.join(', ')} with decode)` : name;
    if (prefill.length && decode.length && cutTopology(topo, new Set(prefill)) && cutTopology(topo, new Set(decode)))
      out.push({ name: named, prefill, decode });
  };
  if (hosts.length >= 2) {
    const half = Math.ceil(hosts.length / 2);
    const first = new Set(hosts.slice(0, half));
    const side = (inFirst: boolean): Set<string> => new Set(accel.filter((d) => first.has(hostOf.get(d.id) ?? '') === inFirst).map((d) => d.id));
    const name = (hs: string[]): string => (hs.length === 1 ? hs[0]! : `${hs[0]}…${hs[hs.length - 1]}`);
    add(`prefill on ${name(hosts.slice(0, half))}, decode on ${name(hosts.slice(half))}`, side(true), side(false), 'host');
    add(`prefill on ${name(hosts.slice(half))}, decode on ${name(hosts.slice(0, half))}`, side(false), side(true), 'host');
    return out;
  }
  const classes = new Map<string, string[]>();
  for (const d of accel) (classes.get(deviceClassKey(d)) ?? classes.set(deviceClassKey(d), []).get(deviceClassKey(d))!).push(d.id);
  const blocks = [...classes.values()];
  const label = (ids: string[]): string => (ids.length === 1 ? ids[0]! : `${ids[0]}…${ids[ids.length - 1]}`);
  if (blocks.length >= 2) {
    for (const b of blocks) {
      const rest = accel.map((d) => d.id).filter((id) => !b.includes(id));
      add(`prefill on ${label(b)}, decode on the rest`, new Set(b), new Set(rest), 'decode');
      add(`decode on ${label(b)}, prefill on the rest`, new Set(rest), new Set(b), 'decode');
    }
    return out;
  }
  const only = blocks[0] ?? [];
  const n = only.length;
  if (n >= 2) {
    const cuts = n >= 8 ? [n / 2, n / 4, (3 * n) / 4] : [Math.floor(n / 2)];
    for (const k of cuts.map(Math.floor))
      add(`prefill on ${label(only.slice(0, k))}, decode on ${label(only.slice(k))}`, new Set(only.slice(0, k)), new Set(only.slice(k)), 'decode');
  }
  return out;
}

/** Copies of `used`'s devices (by class) that fit in `pool`. */
export function replicasIn(topo: Topology, used: readonly string[], pool: readonly string[]): number {
  const byId = new Map(topo.devices.map((d) => [d.id, d]));
  const need = new Map<string, number>();
  for (const id of used) need.set(deviceClassKey(byId.get(id)!), (need.get(deviceClassKey(byId.get(id)!)) ?? 0) + 1);
  const have = new Map<string, number>();
  for (const id of pool) have.set(deviceClassKey(byId.get(id)!), (have.get(deviceClassKey(byId.get(id)!)) ?? 0) + 1);
  let r = Infinity;
  for (const [k, c] of need) r = Math.min(r, Math.floor((have.get(k) ?? 0) / c));
  return Number.isFinite(r) ? Math.max(1, r) : 1;
}

const PLANNING = PASSES.map((p) => p.name).filter((n) => n !== 'lower');

/** Plan one phase on a pool with the whole pipeline (no lowering); null when it does not fit there. */
async function evalPhase(
  base: PlanOptions,
  pool: string[],
  phase: 'prefill' | 'decode',
  prompt: number,
  context: number,
  batch: number,
  /** A pool of part of the rack: a pin (--assign) it cannot honour rules the pool out, not the plan. */
  partOfRack = false,
): Promise<PhaseEval | null> {
  const flags = { ...base.flags, [PHASE.name]: phase, [PROMPT.name]: prompt, [CONTEXT.name]: context, [BATCH.name]: batch };
  delete flags[WORKLOAD.name];
  delete flags[DISAGGREGATE.name];
  let run: Awaited<ReturnType<typeof runPipeline>>;
  try {
    run = await runPipeline({ ...base, flags, pool, default_phase: false }, PLANNING);
  } catch (err) {
    if (err instanceof HxcError && (err.code === 'HXC3001' || (partOfRack && err.code === 'HXC2503'))) return null; // does not fit on this pool
    throw err;
  }

  const part = run.ctx.get(partitionPass);
  const state = run.ctx.get(statePass);
  const ids = part.problem.device_ids;
  const used = [...new Set(Array.from(part.placement.device, (d) => ids[d]!))].sort();
  const ownerBytes = new Map<string, number>();
  const kv: PhaseEval['kv'] = [];
  // Each tensor where it is written (passes/state.ts parts).
  for (const o of state.objects)
    for (const t of o.parts) {
      const w = tensorWriter(o, t);
      if (w === null) continue;
      const dev = ids[part.placement.device[part.unit_of[w]!]!]!;
      ownerBytes.set(dev, (ownerBytes.get(dev) ?? 0) + tensorBytes(o, t));
      kv.push({ name: o.name, tensor: t.input, device: dev, bytes_per_token: t.bytes_per_token });
    }
  const owner = [...ownerBytes].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0] ?? null;
  return {
    pool,
    batch,
    prompt,
    context,
    latency_s: part.verdict.latency_s,
    interval_s: (part.verdict.throughput_per_s ?? 0) > 0 ? Math.min(part.verdict.latency_s, 1 / part.verdict.throughput_per_s!) : part.verdict.latency_s,
    used,
    kv_sequences: part.kv?.sequences ?? 1,
    kv_owner: owner,
    kv_objects: state.objects.length,
    bytes_per_token: state.totals.bytes_per_token,
    kv,
  };
}

/** Cache moved between two KV owners in a handoff: bytes per prompt token, over the route between them. */
export interface HandoffPair {
  from: string;
  to: string;
  bytes_per_token: number;
  links: string[];
  hops: string[];
}

/**
 * The handoff as it moves: each KV-cache tensor from the prefill device that wrote it to the decode
 * device that keeps it (matched by object and tensor, else by object; a decode plan holding an object in shards, `NAME.tpJofK`, gets
 * it split in their proportion; one the decode plan does not name goes to its main owner), bytes
 * summed per pair of devices. Pairs move at once, each over its best route; bytes crossing one
 * `shared` link split its bandwidth. `lanes` are what the simulator prices: one per pair, and one
 * per shared link that two or more pairs cross (all their bytes on it, no latency of its own) —
 * the handoff takes as long as its slowest lane (src/serve/sim.ts handoffTimes).
 */
export function handoffPairs(
  pre: PhaseEval,
  dec: PhaseEval,
  topo: Topology,
  routes: RouteTable,
  prompt: number,
): { pairs: HandoffPair[]; lanes: HandoffLane[] } {
  const mainTo = dec.kv_owner ?? dec.used[0]!;
  const byPair = new Map<string, { from: string; to: string; bytes_per_token: number }>();
  const add = (from: string, to: string, bpt: number): void => {
    const k = `${from}\u0000${to}`;
    const e = byPair.get(k);
    if (e) e.bytes_per_token += bpt;
    else byPair.set(k, { from, to, bytes_per_token: bpt });
  };
  const sources = pre.kv.length > 0 ? pre.kv : [{ name: '', tensor: '', device: pre.kv_owner ?? pre.used[0]!, bytes_per_token: pre.bytes_per_token }];
  for (const o of sources) {
    const same = dec.kv.filter((d) => d.name === o.name && d.tensor === o.tensor);
    const exact = same.length > 0 ? same : dec.kv.filter((d) => d.name === o.name);
    const held = exact.length > 0 ? exact : dec.kv.filter((d) => o.name !== '' && (d.name.startsWith(`${o.name}.tp`) || d.name.startsWith(`${o.name}/`)));
    const total = held.reduce((a, d) => a + d.bytes_per_token, 0);
    if (held.length === 0 || total <= 0) add(o.device, mainTo, o.bytes_per_token);
    else for (const d of held) add(o.device, d.device, (o.bytes_per_token * d.bytes_per_token) / total);
  }
  const linkByName = new Map(topo.links.map((l) => [l.name, l]));
  const pairs: (HandoffPair & { lane: HandoffLane })[] = [...byPair.values()]
    .filter((e) => e.from !== e.to && e.bytes_per_token > 0)
    .map((e) => {
      const r = routes.route(e.from, e.to, Math.max(1, e.bytes_per_token * prompt));
      return {
        ...e,
        links: r.links,
        hops: r.hops,
        lane: { bytes_per_token: e.bytes_per_token, bandwidth_bytes_per_s: r.bandwidth_bytes_per_s, latency_s: r.latency_s },
      };
    });
  const lanes = pairs.map((p) => p.lane);
  const crossing = new Map<string, number>();
  for (const p of pairs) for (const l of new Set(p.links)) if (linkByName.get(l)?.shared) crossing.set(l, (crossing.get(l) ?? 0) + 1);
  for (const [name, count] of [...crossing].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    if (count < 2) continue;
    const bpt = pairs.filter((p) => p.links.includes(name)).reduce((a, p) => a + p.bytes_per_token, 0);
    lanes.push({ bytes_per_token: bpt, bandwidth_bytes_per_s: linkByName.get(name)!.bandwidth_bytes_per_s, latency_s: 0 });
  }
  // Slowest first at the planned prompt (ties: as made, pairs by device names).
  const time = (l: HandoffLane): number => laneSeconds(l, prompt);
  const order = pairs
    .map((p, i) => ({ p, i }))
    .sort((a, b) => time(b.p.lane) - time(a.p.lane) || a.i - b.i)
    .map(({ p: { lane: _l, ...p } }) => p);
  return { pairs: order, lanes };
}

/** Decode on a pool: at batch 1, then at the largest batch its KV capacity allows (halved until it fits). */
async function evalDecode(base: PlanOptions, pool: string[], prompt: number, context: number, partOfRack = false): Promise<[PhaseEval, PhaseEval] | null> {
  const one = await evalPhase(base, pool, 'decode', prompt, context, 1, partOfRack);
  if (!one) return null;
  let b = Math.max(1, Math.min(MAX_DECODE_BATCH, one.kv_sequences));
  while (b > 1) {
    const many = await evalPhase(base, pool, 'decode', prompt, context, b, partOfRack);
    if (many) return [one, many];
    b = Math.floor(b / 2);
  }
  return [one, one];
}

export interface ServePlanning {
  workload: Workload;
  topology: Topology;
  chosen: ServeCandidate;
  colocated: ServeCandidate | null;
  candidates: ServeCandidate[];
  prompt: number;
  context: number;
  /** --disaggregate: auto weighs both, on disaggregated pools only, off colocated only. */
  mode: 'auto' | 'on' | 'off';
}

/** Runs `f` with each reported line (warning) passed on once, however many pipelines report it. */
export async function reportingOnce<T>(f: () => Promise<T>): Promise<T> {
  const seen = new Set<string>();
  const previous = reportTo((line) => {
    if (seen.has(line)) return;
    seen.add(line);
    previous(line);
  });
  try {
    return await f();
  } finally {
    reportTo(previous);
  }
}

export async function planServe(options: PlanOptions): Promise<ServePlanning> {
  const file = readOption(options.flags, WORKLOAD);
  if (!file) throw new HxcError('HXC2002', '--phase serve needs a workload', { where: '--workload', hint: 'give --workload W.yaml (hxc-workload/v1)' });
  const workload = readWorkload(file);
  const mode = readOption(options.flags, DISAGGREGATE) ?? 'auto';
  const topo = options.topology_path ? loadTopology(options.topology_path) : defaultTopology();
  const routes = new RouteTable(topo);
  const { prompt, context } = plannedLengths(workload);
  const all = topo.devices.map((d) => d.id);
  // Serving is prefill then decode steps over a KV cache: a model with no sequence and cache-length
  // dims has neither phase (said before planning, its import's warnings given by the plans after).
  const model = loadModel(options.model_path, new Diagnostics());
  const roles = llmRoles(model);
  if (!roles.seq || !roles.past)
    throw new HxcError('HXC2002', '--phase serve plans an LLM with a KV cache: the model has no sequence or past-length dim', {
      where: options.model_path,
      hint: 'plan it with hxc plan (no --phase), or give a KV-cache LLM',
    });
  refuseTooLong(workload, positionLimit(model), file);
  // Pools are asked for where the rack has no split into two: said before anything is planned (a
  // usage error, not a budget one).
  if (mode === 'on' && poolCandidates(topo).length === 0)
    throw new HxcError(
      'HXC2002',
      '--disaggregate on: the rack has no split into a prefill and a decode pool (two hosts, two accelerator classes, or two of one class)',
      {
        where: options.topology_path ?? 'the built-in rack',
        hint: 'use --disaggregate auto or off, or a rack with more accelerators',
      },
    );
  const judge = (c: Omit<ServeCandidate, 'results' | 'goodput_per_s' | 'capacity_per_s'>): ServeCandidate => judgeCandidate(c, workload);
  const candidates: ServeCandidate[] = [];
  // Colocated: both phases on the whole rack, replicas of the devices both use.
  let colocated: ServeCandidate | null = null;
  const pre = await evalPhase(options, all, 'prefill', prompt, context, 1);
  const dec = pre ? await evalDecode(options, all, prompt, context) : null;
  if (pre && dec) {
    const used = [...new Set([...pre.used, ...dec[0].used, ...dec[1].used])].sort();
    const replicas = replicasIn(topo, used, all);
    colocated = judge({
      name: 'colocated',
      disaggregated: false,
      pools: { prefill: all, decode: all },
      model: serveModel(false, pre, dec, replicas, replicas, null),
      route: null,
      handoff_pairs: [],
      prefill: pre,
      decode: dec[1],
    });
    candidates.push(colocated);
  }
  if (mode !== 'off') {
    for (const p of poolCandidates(topo)) {
      const pe = await evalPhase(options, p.prefill, 'prefill', prompt, context, 1, true);
      if (!pe) continue;
      const de = await evalDecode(options, p.decode, prompt, context, true);
      if (!de) continue;
      const { pairs, lanes } = handoffPairs(pe, de[1], topo, routes, prompt);
      // The slowest lane at the planned prompt stands for the handoff where one figure is shown.
      const slowest = lanes.reduce<HandoffLane | null>((a, l) => (!a || laneSeconds(l, prompt) > laneSeconds(a, prompt) ? l : a), null);
      const first = pairs[0];
      const route = first ? { links: first.links, hops: first.hops } : { links: [], hops: [] };
      const handoff = slowest
        ? {
            bytes_per_token: pe.bytes_per_token,
            bandwidth_bytes_per_s: slowest.bandwidth_bytes_per_s,
            latency_s: slowest.latency_s,
            layers: Math.max(1, pe.kv_objects),
            lanes,
          }
        : null;
      candidates.push(
        judge({
          name: p.name,
          disaggregated: true,
          pools: { prefill: p.prefill, decode: p.decode },
          model: serveModel(
            true,
            pe,
            de,
            replicasIn(topo, pe.used, p.prefill),
            replicasIn(topo, [...new Set([...de[0].used, ...de[1].used])], p.decode),
            handoff,
          ),
          route,
          handoff_pairs: pairs,
          prefill: pe,
          decode: de[1],
        }),
      );
    }
  }
  const chosen = chooseServe(candidates, mode, options.topology_path ?? 'the built-in rack');
  return { workload, topology: topo, chosen, colocated, candidates, prompt, context, mode };
}

/** A candidate's figures on a workload: per rate, their mean goodput, and its capacity. */
export function judgeCandidate(c: Omit<ServeCandidate, 'results' | 'goodput_per_s' | 'capacity_per_s'>, workload: Workload): ServeCandidate {
  const results = workload.rates_per_s.map((r) => simulateServe(c.model, workload, r));
  return {
    ...c,
    results,
    goodput_per_s: results.reduce((s, r) => s + r.goodput_per_s, 0) / results.length,
    capacity_per_s: capacity(c.model, workload),
  };
}

/**
 * The candidate to ship: the best goodput at the workload's rates; on a tie (both meet the SLOs as
 * often), the one with more headroom (a higher rate at which 90% still meet them); then the
 * colocated plan (the simpler deployment), then the earlier candidate.
 */
export function chooseServe(candidates: readonly ServeCandidate[], mode: 'auto' | 'on' | 'off', rack: string): ServeCandidate {
  const eligible = candidates.filter((c) => (mode === 'on' ? c.disaggregated : mode === 'off' ? !c.disaggregated : true));
  if (eligible.length === 0) {
    throw new HxcError(
      'HXC3001',
      mode === 'on' ? 'no disaggregated pools fit the model: each pool must hold a whole phase' : 'the model does not fit the rack for serving',
      { where: rack, hint: mode === 'on' ? 'use --disaggregate auto, or add devices' : 'add devices or memory' },
    );
  }
  const better = (a: ServeCandidate, b: ServeCandidate): boolean => {
    const d = a.goodput_per_s - b.goodput_per_s;
    if (Math.abs(d) > 1e-9 * Math.max(a.goodput_per_s, b.goodput_per_s)) return d > 0;
    return a.capacity_per_s > b.capacity_per_s * (1 + 1e-6);
  };
  let chosen = eligible[0]!;
  for (const c of eligible.slice(1)) if (better(c, chosen)) chosen = c;
  return chosen;
}

function serveModel(
  disaggregated: boolean,
  pre: PhaseEval,
  dec: [PhaseEval, PhaseEval],
  prefillReplicas: number,
  decodeReplicas: number,
  handoff: ServeModel['handoff'],
): ServeModel {
  return {
    disaggregated,
    prefill: { replicas: prefillReplicas, prompt_tokens: pre.prompt, latency_s: pre.latency_s, interval_s: pre.interval_s },
    decode: {
      replicas: decodeReplicas,
      context_tokens: dec[0].context,
      max_batch: dec[1].batch,
      step_s_batch1: dec[0].latency_s,
      step_s_batch_max: dec[1].latency_s,
    },
    handoff,
  };
}
