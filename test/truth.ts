// Checks that a plan says truly what it will do, recomputed from plan.json and the model alone
// (not from the partitioner's own structures): the shipped plan beats every candidate and baseline
// it reports, `hxc simulate` reproduces its figures, unit ids are unique, peak activation memory
// recounts, experts sit where the assignment puts their nodes, fused kernels run whole.

import { TIE_REL } from '../src/partition/explain.js';
import assert from 'node:assert/strict';
import type { PlanV1 } from '../src/plan/format.js';
import type { JudgedPlan } from '../passes/partition.js';
import type { Context } from '../src/pass/context.js';
import { simulate } from '../src/sim/simulate.js';
import { moePass } from '../passes/moe.js';
import { profilePass } from '../passes/profile.js';
import { launchesFused } from '../src/cost/fusion.js';
import { statePass } from '../passes/state.js';

/** Replays plan.json in the simulator, as `hxc simulate` does (rounds included, unless `rounds` is false). */
export function replay(p: PlanV1, requests: number, rounds = true): { latency_s: number; throughput_per_s: number } {
  const r = simulate({
    devices: p.devices.map((d) => ({
      id: d.id,
      steps: d.steps.map((s) =>
        s.op === 'compute'
          ? { op: 'compute' as const, duration_s: s.duration_s, label: '', round: rounds ? s.round : 0 }
          : { op: s.op, transfer: s.transfer, label: '', round: rounds ? s.round : 0 },
      ),
    })),
    transfers: p.transfers.map((t) => ({ value: t.value, bytes: t.bytes, from: t.from, to: t.to, links: t.route })),
    links: p.topology.links,
    requests,
  });
  return { latency_s: r.request_finish_s[0]!, throughput_per_s: r.throughput_per_s };
}

const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b));

/** The shipped figure is at least as good as every eligible candidate's, for the objective. */
export function checkShippedBeatsCandidates(p: PlanV1, where: string): void {
  const e = p.estimate;
  const asked = e.kv?.asked ?? null;
  const all: JudgedPlan[] = [...e.candidates, ...Object.values(e.baselines).filter((b): b is JudgedPlan => b !== null && typeof b === 'object' && 'name' in b)];
  assert.ok(all.length > 0, `${where}: candidates reported`);
  for (const c of all) {
    const eligible =
      c.fits && (c as { tp_spread?: boolean }).tp_spread !== false && (asked === null || ((c as { kv_sequences?: number }).kv_sequences ?? Infinity) >= asked);
    if (!eligible) continue;
    if (p.objective === 'latency')
      assert.ok(e.latency_s <= c.latency_s * (1 + 1e-12), `${where}: ${c.name} ${c.latency_s} s beats the shipped ${e.latency_s} s`);
    else {
      assert.ok(c.throughput_per_s !== null, `${where}: ${c.name}'s throughput was not simulated, and the objective is throughput`);
      assert.ok(
        e.throughput_per_s >= c.throughput_per_s * (1 - 1e-12),
        `${where}: ${c.name} ${c.throughput_per_s}/s beats the shipped ${e.throughput_per_s}/s`,
      );
    }
  }
}

export function checkTruth(p: PlanV1, ctx: Context, where: string): void {
  checkShippedBeatsCandidates(p, where);
  const e = p.estimate;
  // hxc simulate reproduces the estimate, one request and the pipelined requests.
  assert.ok(close(replay(p, 1).latency_s, e.latency_s), `${where}: simulate ${replay(p, 1).latency_s} vs estimate ${e.latency_s}`);
  assert.ok(close(replay(p, e.throughput_requests).throughput_per_s, e.throughput_per_s), `${where}: simulated throughput differs from the estimate`);
  // The chosen plan's row among the candidates (and the baselines, when it is one) says what ships:
  // its figures are the estimate's, judged in the step order the plan runs.
  const rows = [...e.candidates, ...Object.values(e.baselines)].filter((c): c is JudgedPlan => !!c && 'name' in c && c.name === e.chosen);
  assert.ok(rows.length > 0, `${where}: the chosen plan ${e.chosen} is among the candidates`);
  for (const c of rows) {
    assert.ok(close(c.latency_s, e.latency_s), `${where}: ${c.name}'s row says latency ${c.latency_s}, the plan ${e.latency_s}`);
    assert.ok(
      c.throughput_per_s !== null && close(c.throughput_per_s, e.throughput_per_s),
      `${where}: ${c.name}'s row says throughput ${c.throughput_per_s}, the plan ${e.throughput_per_s}`,
    );
    assert.equal(c.pipelined, e.pipelined, `${where}: ${c.name}'s row and the plan run different step orders`);
  }
  // Pipeline rounds never reorder one request's steps: a plan ships them (either objective) only
  // where they raise throughput, its one-request latency the same as without them.
  if (e.pipelined) {
    assert.equal(replay(p, 1, false).latency_s, replay(p, 1).latency_s, `${where}: one request takes another time without the plan's rounds`);
    assert.ok(replay(p, e.throughput_requests, false).throughput_per_s <= e.throughput_per_s * (1 + 1e-12), `${where}: the plan's rounds cost throughput`);
  }
  // The pipeline section describes the shipped plan only: its segments cover every unit, as the steps run them.
  if (e.pipeline) {
    assert.equal(e.chosen, 'pipeline', `${where}: estimate.pipeline describes a plan other than the shipped ${e.chosen}`);
    const perDevice = new Map<string, number>();
    for (const g of e.pipeline.segments) perDevice.set(g.device, (perDevice.get(g.device) ?? 0) + g.compute_s);
    for (const [d, t] of perDevice)
      assert.ok(
        Math.abs(t - e.devices[d]!.busy_s) <= 1e-9 * Math.max(t, 1e-12),
        `${where}: ${d}'s segments compute ${t} s, its steps ${e.devices[d]!.busy_s} s`,
      );
  }
  // KV capacity as the shipped schedule holds memory: capacity − weights − peak activations, per state owner.
  if (e.kv) {
    for (const k of e.kv.devices) {
      const m = p.devices.find((d) => d.id === k.id)!.memory;
      assert.equal(k.free_bytes, m.capacity_bytes - m.weights_bytes - m.peak_activation_bytes, `${where}: ${k.id}'s free bytes for KV`);
      assert.equal(k.sequences, Math.max(0, Math.floor(k.free_bytes / k.state_bytes_per_sequence)), `${where}: ${k.id}'s KV sequences`);
    }
    if (e.kv.devices.length > 0) assert.equal(e.kv.sequences, Math.min(...e.kv.devices.map((k) => k.sequences)), `${where}: the plan's KV sequences`);
  }
  if (e.kv?.after) assert.ok(close(e.kv.after.throughput_per_s, e.throughput_per_s), `${where}: the KV report's throughput after lifting is not the plan's`);
  assert.ok(
    e.throughput_per_s <= e.throughput_upper_per_s * (1 + 1e-9),
    `${where}: throughput ${e.throughput_per_s} above its bound ${e.throughput_upper_per_s}`,
  );
  // Unit ids are unique.
  const units = p.devices.flatMap((d) => d.steps.filter((s) => s.op === 'compute').map((s) => s.unit!));
  assert.equal(new Set(units).size, units.length, `${where}: repeated unit ids`);
  // Explain: one entry per unit, where the plan runs it, finishing when its step ends.
  const stepOf = new Map(p.devices.flatMap((d) => d.steps.filter((s) => s.op === 'compute').map((s) => [s.unit!, { device: d.id, end_s: s.end_s }] as const)));
  assert.equal(p.explain.length, units.length, `${where}: explain covers every unit`);
  for (const x of p.explain) {
    const st = stepOf.get(x.unit)!;
    assert.equal(x.device, st.device, `${where}: explain puts ${x.unit} on ${x.device}`);
    assert.equal(x.finish_s, st.end_s, `${where}: explain's finish of ${x.unit}`);
    for (const a of x.alternatives) {
      assert.notEqual(a.device, x.device);
      const shipped = p.objective === 'latency' ? e.latency_s : e.throughput_per_s;
      if (a.latency_at_least_s !== undefined)
        assert.ok(a.latency_at_least_s >= shipped * (1 - 1e-9) || /budget/.test(a.why), `${where}: ${x.unit} → ${a.device} bound below the plan`);
      if (a.throughput_at_most_per_s !== undefined)
        assert.ok(a.throughput_at_most_per_s <= shipped * (1 + 1e-9) || /budget/.test(a.why), `${where}: ${x.unit} → ${a.device} bound above the plan`);
      // (Within TIE_REL, a millionth, a move is a tie: src/partition/explain.ts.)
      if (a.latency_s !== null && a.latency_s < e.latency_s * (1 - TIE_REL)) assert.match(a.why, /faster/, `${where}: a faster alternative must say so`);
      // "slower" only when it is: a tie says so.
      if (a.latency_s !== null && /slower/.test(a.why))
        assert.ok(a.latency_s > e.latency_s * (1 + TIE_REL), `${where}: ${x.unit} → ${a.device} called slower at ${a.latency_s} s, the plan ${e.latency_s} s`);
      if (a.throughput_per_s !== null && /less throughput/.test(a.why))
        assert.ok(
          a.throughput_per_s < e.throughput_per_s * (1 - TIE_REL),
          `${where}: ${x.unit} → ${a.device} called less throughput at ${a.throughput_per_s}/s`,
        );
    }
    // The plan ships no single move it knows would make it better: the partition pass took every
    // move explain's scan finds (pool.ts takeBetterMoves), so explain shows none (a pinned unit aside).
    if (!/assigned/.test(x.reason))
      assert.ok(
        !x.alternatives.some((a) => /beyond the search budget/.test(a.why)),
        `${where}: ${x.unit} → ${x.alternatives.find((a) => /beyond the search budget/.test(a.why))?.device} makes the plan better, yet it shipped without it`,
      );
    // A reason claims no more than its alternative shows: "slower with it there" only when the move was ruled out or simulated.
    const claimed = /^communication\/queueing: (\S+) computes it faster, but the plan is slower with it there$/.exec(x.reason);
    const shown = claimed ? x.alternatives.find((a) => a.device === claimed[1]) : undefined;
    if (shown) assert.ok(!/budget/.test(shown.why), `${where}: ${x.unit}: "${x.reason}", yet ${shown.device} was ${shown.why}`);
  }
  checkMemory(p, ctx, where);
  checkExperts(p, ctx, where);
  checkMetadata(p, ctx, where);
  checkFusion(p, ctx, where);
}

/**
 * A fusion the cost model prices is one the plan runs: every node the profile fuses into a kernel
 * (src/cost/fusion.ts) runs in the same program as that kernel's head when its device fuses — not
 * on another device, not in another program (routed experts run in grouped kernels, priced per
 * device, and are not held to this).
 */
export function checkFusion(p: PlanV1, ctx: Context, where: string): void {
  const prof = ctx.get(profilePass);
  const g = ctx.model.graph;
  const kind = new Map(p.devices.map((d) => [d.id, d.kind]));
  const program = new Map<string, string>();
  for (const d of p.devices) for (const s of d.steps) if (s.op === 'compute') for (const n of s.nodes ?? []) program.set(n, `${d.id} ${s.program ?? s.unit}`);
  g.nodes.forEach((node, i) => {
    const h = prof.fused_into[i]!;
    if (h < 0 || prof.nodes.at(i).launch_group !== undefined || prof.nodes.at(h).launch_group !== undefined) return;
    const dev = p.assignment[node.name];
    if (dev === undefined || !launchesFused(kind.get(dev) ?? '')) return;
    const head = g.nodes[h]!.name;
    assert.equal(
      program.get(node.name),
      program.get(head),
      `${where}: ${node.name} is priced fused into ${head}'s kernel, yet runs in ${program.get(node.name)}, its head in ${program.get(head)}`,
    );
  });
}

/** Metadata is not data: a Shape or Size node runs where the tensor it measures is produced. */
export function checkMetadata(p: PlanV1, ctx: Context, where: string): void {
  const g = ctx.model.graph;
  const producer = new Map<string, string>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n.name);
  for (const n of g.nodes) {
    if ((n.op !== 'Shape' && n.op !== 'Size') || n.domain !== '') continue;
    const from = producer.get(n.inputs[0]!);
    if (from === undefined) continue;
    assert.equal(p.assignment[n.name], p.assignment[from], `${where}: ${n.name} reads only the shape of ${n.inputs[0]}, yet runs away from it`);
  }
}

/**
 * Peak activation memory per device, recounted from plan.json's steps and transfers and the
 * model's value sizes: a unit's working set while its step runs (the largest over its nodes of
 * the non-weight bytes a node reads and writes), and each value crossing steps from its
 * production (or arrival) to its last reader there, on the producer until its transfers arrive.
 */
export function checkMemory(p: PlanV1, ctx: Context, where: string): void {
  const g = ctx.model.graph;
  // State lives where it is written: each tensor's share of its object's bytes on the device of the
  // node producing its update; plan.json's owners and each device's state_bytes say so.
  const stateOn = new Map<string, number>();
  const producerOf = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n.name] as const)));
  for (const o of ctx.get(statePass).objects) {
    const held = new Map<string, number>();
    for (const t of o.parts) {
      const writer = producerOf.get(t.output);
      if (writer === undefined || o.bytes_per_token <= 0) continue;
      const dev = p.assignment[writer]!;
      held.set(dev, (held.get(dev) ?? 0) + (o.bytes * t.bytes_per_token) / o.bytes_per_token);
    }
    for (const [d, b] of held) stateOn.set(d, (stateOn.get(d) ?? 0) + b);
    const st = p.state.find((x) => x.name === o.name)!;
    const listed = new Map((st.owners ?? (st.owner ? [{ device: st.owner, bytes: o.bytes }] : [])).map((x) => [x.device, x.bytes]));
    if (held.size > 0) assert.deepEqual(listed, held, `${where}: ${o.name} is held where its tensors are written`);
  }
  for (const d of p.devices)
    assert.ok(
      Math.abs(d.memory.state_bytes - (stateOn.get(d.id) ?? 0)) <= 1e-6 * Math.max(1, d.memory.state_bytes),
      `${where}: ${d.id} holds ${d.memory.state_bytes} B of state, its tensors ${stateOn.get(d.id) ?? 0}`,
    );
  const bytes = ctx.get(profilePass).value_bytes;
  const weight = new Set<string>(g.initializers.keys());
  for (const n of g.nodes) if (n.op === 'Constant' && n.domain === '') for (const o of n.outputs) weight.add(o);
  const nodeByName = new Map(g.nodes.map((n) => [n.name, n]));
  const size = (v: string): number => (v && !weight.has(v) ? (bytes.get(v) ?? 0) : 0);
  const events = new Map<string, { t: number; d: number }[]>(p.devices.map((d) => [d.id, []]));
  const producedAt = new Map<string, { device: string; end: number }>();
  const readers = new Map<string, { device: string; end: number }[]>();
  const stepOfNode = new Map<string, number>();
  let k = 0;
  for (const d of p.devices) {
    for (const s of d.steps) {
      if (s.op !== 'compute') continue;
      let floor = 0;
      for (const name of s.nodes!) {
        const n = nodeByName.get(name)!;
        let live = 0;
        for (const v of n.inputs) live += size(v);
        for (const v of n.outputs) live += size(v);
        floor = Math.max(floor, live);
        stepOfNode.set(name, k);
      }
      events.get(d.id)!.push({ t: s.start_s, d: floor }, { t: s.end_s, d: -floor });
      k++;
    }
  }
  k = 0;
  for (const d of p.devices) {
    for (const s of d.steps) {
      if (s.op !== 'compute') continue;
      for (const name of s.nodes!) {
        const n = nodeByName.get(name)!;
        for (const v of n.outputs) if (v) producedAt.set(v, { device: d.id, end: s.end_s });
        for (const v of n.inputs)
          if (v && size(v) > 0) (readers.get(v) ?? readers.set(v, []).get(v)!).push({ device: d.id, end: s.end_s, step: k } as { device: string; end: number });
      }
      k++;
    }
  }
  const taken = new Map<(typeof p.transfers)[number], number>();
  for (const d of p.devices) for (const s of d.steps) if (s.op === 'recv') taken.set(p.transfers[s.transfer!]!, s.start_s);
  for (const [v, list] of readers) {
    const prod = producedAt.get(v);
    if (!prod) continue; // a graph input: available everywhere, not an activation of the plan
    const producerStep = stepOfNode.get(g.nodes.find((n) => n.outputs.includes(v))!.name)!;
    const crossing = list.filter((r) => (r as { step?: number }).step !== producerStep);
    if (crossing.length === 0) continue;
    const moves = p.transfers.filter((t) => t.value === v);
    let lastOnProducer = prod.end;
    for (const r of crossing) if (r.device === prod.device) lastOnProducer = Math.max(lastOnProducer, r.end);
    // A value sent is the sender's until its receiver takes it (the recv step's start), then the receiver's.
    for (const t of moves) lastOnProducer = Math.max(lastOnProducer, taken.get(t)!);
    events.get(prod.device)!.push({ t: prod.end, d: size(v) }, { t: lastOnProducer, d: -size(v) });
    for (const t of moves) {
      const last = Math.max(taken.get(t)!, ...crossing.filter((r) => r.device === t.to).map((r) => r.end));
      events.get(t.to)!.push({ t: taken.get(t)!, d: size(v) }, { t: last, d: -size(v) });
      // The bytes are across the links before the receiver takes them, and leave with the send.
      assert.ok(t.end_s <= taken.get(t)! * (1 + 1e-12) + 1e-15, `${where}: ${v} is taken before it is across`);
    }
  }
  for (const d of p.devices) {
    const ev = events.get(d.id)!.sort((a, b) => a.t - b.t || a.d - b.d);
    let live = 0;
    let peak = 0;
    for (const x of ev) {
      live += x.d;
      peak = Math.max(peak, live);
    }
    assert.equal(d.memory.peak_activation_bytes, peak, `${where}: ${d.id} peak activations ${d.memory.peak_activation_bytes}, recounted ${peak}`);
  }
}

/** plan.json `experts` agrees with `assignment`: each expert's body runs where its replicas say. */
export function checkExperts(p: PlanV1, ctx: Context, where: string): void {
  if (!ctx.has(moePass)) return;
  const g = ctx.model.graph;
  const experts = p.experts;
  let checked = 0;
  for (const l of ctx.get(moePass).layers) {
    if (l.form === 'operator') continue;
    for (const e of l.experts) {
      const entry = experts.find((x) => x.layer === l.layer && x.expert === e.expert);
      assert.ok(entry, `${where}: expert ${l.layer}/${e.expert} missing from plan.json experts`);
      const devices = new Set(entry.replicas.flatMap((r) => r.devices));
      for (const r of entry.replicas) assert.ok(r.devices.includes(r.device), `${where}: a replica's device is among its devices`);
      // Tokens as the moe pass expects them (not rounded): the replicas' shares add up to the expert's.
      const lp = ctx.get(moePass).plan?.layers.find((x) => x.layer === l.layer);
      if (lp) assert.equal(entry.tokens, lp.problem.tokens[e.expert], `${where}: expert ${l.layer}/${e.expert}'s tokens`);
      const shares = entry.replicas.reduce((a, r) => a + r.tokens, 0);
      assert.ok(
        Math.abs(shares - entry.tokens) <= 1e-9 * Math.max(1, entry.tokens),
        `${where}: expert ${l.layer}/${e.expert}'s replicas see ${shares} tokens of ${entry.tokens}`,
      );
      for (const i of e.nodes)
        assert.ok(
          devices.has(p.assignment[g.nodes[i]!.name]!),
          `${where}: ${g.nodes[i]!.name} on ${p.assignment[g.nodes[i]!.name]}, expert ${l.layer}/${e.expert} says ${[...devices]}`,
        );
      checked++;
    }
  }
  assert.equal(checked, experts.length, `${where}: every expert entry checked`);
}
