// Expert placement for one MoE layer, and the two baselines it is measured against. The problem is a
// heterogeneous makespan problem (Graham 1969; Lenstra, Shmoys, Tardos 1990 for unrelated machines):
// expert e carries work tokens_e × flops_e per step, its replicas split that work, device d runs its
// share at `speed` FLOP/s and holds at most `memory_bytes` of expert weights, and the tokens travel
// from the devices that produce them (dispatch) and back (combine) over the topology's routes.
// A layer's time is dispatch + the slowest device's expert compute + combine (DeepEP-style phases).
//   hxc:         replicate (highest work per replica, EPLB's rule, on FLOPs); place replicas largest
//                first on the device whose compute finishes earliest (LPT, Graham 1969), near-ties
//                broken by co-activation affinity, then by the device's own traffic cost; split each
//                expert's tokens over its replicas by water-filling (block coordinate descent to the
//                lexicographically optimal split, Fujishige 1980); then pairwise interchange on the
//                slowest device (Finn & Horowitz 1979), and swaps that put co-activated experts
//                together, both judged on the layer time (traffic priced over the routes).
//   round-robin: replicas in expert order (redundant slots to experts 0, 1, … in turn) dealt to
//                devices in turn; tokens split evenly.
//   greedy:      DeepSeek's EPLB (github.com/deepseek-ai/EPLB, eplb.py): pack expert groups onto
//                hosts, replicate the expert with the highest load per replica, pack replicas onto
//                devices heaviest first into the lightest device with a free slot; tokens split evenly.
// Every placement is scored by the same `evaluate`.

import { evaluate, replicaCounts, sortReplicas, type Placement, type PlacementProblem, type Replica } from './problem.js';
export * from './problem.js';
export * from './baselines.js';
import { State } from './place-state.js';

// ---------------------------------------------------------------------------------------------
// hxc.

/**
 * Balance first: a move may raise the slowest device's compute only up to this fraction above the
 * balanced time (total work over total speed); within it, traffic decides.
 */
const BALANCE_TOLERANCE = 0.02;
/** In the greedy placement, devices within this fraction of the balanced time of the earliest finish count as tied. */
const AFFINITY_BAND = 0.005;
/** Co-location candidates must overlap by at least this fraction of the two devices' remote tokens. */
const MATERIAL = 0.005;
/** Layer times this close (relative) count as equal, so that compute balance still decides when traffic latency dominates. */
const SAME_TIME = 1e-4;
/** Re-split trials an interchange may spend breaking plateaus of tied devices (fewer on big layers: PLATEAU_WORK / replicas). */
const PLATEAU_TRIALS = 256;
const PLATEAU_WORK = 2048;
/** Candidate devices per interchange step: the least loaded ones. */
const INTERCHANGE_TARGETS = 8;

export function placeHxc(p: PlacementProblem): Placement {
  const n = p.devices.length;
  const st = new State(p);
  const work = (e: number): number => p.tokens[e]! * p.flops_per_token[e]!;
  const count = replicaCounts(p, work, p.slots, n, true);
  let totalWork = 0;
  for (let e = 0; e < p.experts; e++) totalWork += work(e);
  const balanced = totalWork / p.devices.reduce((s, d) => s + d.speed, 0);
  // LPT: replicas by work per replica, largest first; ties by expert, so the order is stable.
  const items: number[] = [];
  for (let e = 0; e < p.experts; e++) for (let k = 0; k < count[e]!; k++) items.push(e);
  items.sort((a, b) => work(b) / count[b]! - work(a) / count[a]! || a - b);
  for (const e of items) {
    const x = p.tokens[e]! / count[e]!;
    // Earliest compute finish; devices within a narrow band of it compete on co-activation
    // affinity, then on their own traffic cost (nearer the token sources), then by index.
    let earliest = Infinity;
    const finish = new Float64Array(n).fill(Infinity);
    for (let d = 0; d < n; d++) {
      if (st.holds(d, e)) continue;
      finish[d] = (st.flops[d]! + x * p.flops_per_token[e]!) / p.devices[d]!.speed + (st.fits(d, -1, e) ? 0 : 1e6);
      earliest = Math.min(earliest, finish[d]!);
    }
    if (earliest === Infinity) continue; // every device holds this expert already
    const room = earliest + AFFINITY_BAND * balanced;
    let pick = -1;
    let pickAffinity = 0;
    let pickTraffic = Infinity;
    for (let d = 0; d < n; d++) {
      if (finish[d]! > room) continue;
      // Tokens this replica shares with the experts already there: sent once, not twice.
      let affinity = 0;
      for (const r of st.onDevice[d]!) affinity += (p.coactivation[e * p.experts + st.expert[r]!]! * st.x[r]!) / (p.tokens[st.expert[r]!]! * count[e]! || 1);
      affinity *= 1 - p.source_share[d]!;
      if (affinity === 0 && finish[d]! > earliest) continue;
      const traffic = st.proxyTime(d, 0, st.remote[d]! + Math.max(0, x - p.source_share[d]! * p.tokens[e]!));
      if (pick < 0 || affinity > pickAffinity || (affinity === pickAffinity && traffic < pickTraffic)) {
        pick = d;
        pickAffinity = affinity;
        pickTraffic = traffic;
      }
    }
    st.add(e, pick, x);
  }
  st.waterfill(32);
  const cap = balanced * (1 + BALANCE_TOLERANCE);
  const partners = topPartners(p, 2);
  for (let round = 0; round < 2; round++) {
    const a = interchange(st, 2 * n);
    const b = colocate(st, cap, partners);
    st.waterfill(32);
    if (!a && !b) break;
  }
  const lpt = st.placement();
  // With a replica to spare per device boundary, the wrap-around chain balances exactly; keep it
  // when the layer (traffic included) is no slower.
  const chain = placeChain(p);
  if (!chain) return lpt;
  const [a, b] = [evaluate(p, lpt), evaluate(p, chain)];
  return b.over_memory === 0 && (b.time_s < a.time_s * (1 - 1e-9) || (b.time_s <= a.time_s * (1 + 1e-9) && b.imbalance < a.imbalance - 1e-9)) ? chain : lpt;
}

/**
 * McNaughton's wrap-around rule (McNaughton 1959, preemptive scheduling on parallel machines): lay
 * the experts' work end to end — hottest first — and cut it where each device's share ends (its
 * speed's share of the total, so heterogeneous devices finish together); an expert cut at a
 * boundary becomes replicas on both sides whose token shares differ as the cut falls. Every device
 * then computes for exactly the balanced time, with at most one extra replica per boundary — so it
 * needs `slots ≥ devices − 1`. Devices in host order, so chains stay inside servers where they can.
 * Null when the slots are too few or a device's weights would not fit.
 */
export function placeChain(p: PlacementProblem): Placement | null {
  const n = p.devices.length;
  if (n < 2 || p.slots < n - 1) return null;
  const work = (e: number): number => p.tokens[e]! * p.flops_per_token[e]!;
  const total = Array.from({ length: p.experts }, (_, e) => work(e)).reduce((a, b) => a + b, 0);
  const speed = p.devices.reduce((s, d) => s + d.speed, 0);
  if (!(total > 0) || !(speed > 0)) return null;
  const hosts = [...new Set(p.devices.map((d) => d.host))];
  const devices = p.devices.map((_, d) => d).sort((a, b) => hosts.indexOf(p.devices[a]!.host) - hosts.indexOf(p.devices[b]!.host) || a - b);
  const experts = Array.from({ length: p.experts }, (_, e) => e).sort((a, b) => work(b) - work(a) || a - b);
  const replicas: Replica[] = [];
  const memory = new Float64Array(n);
  let k = 0;
  let room = (total * p.devices[devices[0]!]!.speed) / speed;
  for (const e of experts) {
    let left = work(e);
    const perToken = p.flops_per_token[e]!;
    while (left > 1e-12 * total) {
      const d = devices[Math.min(k, n - 1)]!;
      const take = k >= n - 1 ? left : Math.min(left, room);
      if (take > 1e-12 * total) {
        replicas.push({ expert: e, device: d, tokens: perToken > 0 ? take / perToken : p.tokens[e]! });
        memory[d]! += p.param_bytes[e]!;
      }
      left -= take;
      room -= take;
      if (room <= 1e-12 * total && k < n - 1) {
        k++;
        room = (total * p.devices[devices[k]!]!.speed) / speed;
      }
    }
  }
  if (replicas.length > p.experts + p.slots) return null;
  for (let d = 0; d < n; d++) if (memory[d]! > p.devices[d]!.memory_bytes) return null;
  return { method: 'hxc', replicas: sortReplicas(replicas) };
}

/** The `k` experts each expert is most often chosen with (a linear scan per expert). */
function topPartners(p: PlacementProblem, k: number): number[][] {
  const E = p.experts;
  return Array.from({ length: E }, (_, a) => {
    const best: number[] = [];
    for (let b = 0; b < E; b++) {
      const c = p.coactivation[a * E + b]!;
      if (b === a || c <= 0) continue;
      let i = best.length;
      while (i > 0 && c > p.coactivation[a * E + best[i - 1]!]!) i--;
      if (i < k) {
        best.splice(i, 0, b);
        if (best.length > k) best.pop();
      }
    }
    return best;
  });
}

/**
 * Pairwise interchange on the slowest device: move one of its replicas to one of the least loaded
 * devices, or swap it with one of theirs, when the layer time (dispatch + slowest compute + combine)
 * drops — or stays, the traffic not growing, while both devices end below the current slowest (a
 * plateau of tied devices is flattened one device at a time; Σ compute² falls, so it ends). Returns
 * whether anything moved.
 */
function interchange(st: State, limit: number): boolean {
  let changed = false;
  let plateauTrials = Math.min(PLATEAU_TRIALS, Math.ceil(PLATEAU_WORK / st.expert.length));
  const n = st.n;
  const order = Array.from({ length: n }, (_, d) => d);
  for (let step = 0; step < limit; step++) {
    const { device: b, compute: top } = st.slowest();
    const comm = st.commWith();
    const now = comm + top;
    let best = { r: -1, q: -1, d: -1, time: Infinity, pair: Infinity };
    const targets = order
      .filter((d) => d !== b)
      .sort((x, y) => st.compute[x]! - st.compute[y]! || x - y)
      .slice(0, INTERCHANGE_TARGETS);
    for (const d of targets) {
      const rest = st.slowestExcept(b, d);
      for (const r of st.onDevice[b]!) {
        const e = st.expert[r]!;
        if (st.holds(d, e)) continue;
        const consider = (q: number): void => {
          const cb = st.computeWith(b, r, q);
          const cd = st.computeWith(d, q, r);
          const pair = Math.max(cb, cd);
          if (pair >= top * (1 - 1e-9)) return;
          const rb = st.remoteWith(b, r, q >= 0 ? st.expert[q]! : -1, q >= 0 ? st.x[q]! : 0);
          const rd = st.remoteWith(d, q, e, st.x[r]!);
          const c = st.commWith(b, rb, d, rd);
          const t = Math.max(rest, pair) + c;
          const better = t < now * (1 - SAME_TIME) || (t <= now * (1 + SAME_TIME) && c <= comm + SAME_TIME * now);
          if (better && (t < best.time * (1 - 1e-12) || (t <= best.time * (1 + 1e-12) && pair < best.pair))) best = { r, q, d, time: t, pair };
        };
        if (st.fits(d, -1, e)) consider(-1);
        for (const q of st.onDevice[d]!) if (!st.holds(b, st.expert[q]!) && st.fits(d, q, e) && st.fits(b, r, st.expert[q]!)) consider(q);
      }
    }
    if (best.r < 0 && plateauTrials > 0) {
      // Tied devices that no single move can relieve: try swaps with the two least loaded devices,
      // each judged after re-splitting the experts involved.
      for (const d of targets.slice(0, 2)) {
        for (const r of st.onDevice[b]!) {
          if (st.holds(d, st.expert[r]!)) continue;
          for (const q of [-1, ...st.onDevice[d]!]) {
            if (plateauTrials-- <= 0) break;
            if (q >= 0 ? st.holds(b, st.expert[q]!) || !st.fits(d, q, st.expert[r]!) || !st.fits(b, r, st.expert[q]!) : !st.fits(d, -1, st.expert[r]!))
              continue;
            const t = st.trial(r, d, q);
            if ((t.time < now * (1 - SAME_TIME) || (t.time <= now * (1 + SAME_TIME) && t.slowest < top * (1 - 1e-6))) && t.time < best.time + SAME_TIME * now)
              best = { r, q, d, time: t.time, pair: t.slowest };
          }
        }
      }
    }
    if (best.r < 0) break;
    st.move(best.r, best.d);
    if (best.q >= 0) st.move(best.q, b);
    st.waterfill(4);
    changed = true;
  }
  return changed;
}

/**
 * Co-location: swap a replica onto a device holding one of the experts it is most often chosen
 * with, when that lowers the tokens crossing between devices, keeps compute within the balance
 * cap, and does not lengthen the layer.
 */
function colocate(st: State, cap: number, partners: number[][]): boolean {
  const p = st.p;
  let changed = false;
  let { compute: top } = st.slowest();
  let time = top + st.commWith();
  const limit = Math.max(top, cap);
  for (let r = 0; r < st.expert.length; r++) {
    const a = st.expert[r]!;
    for (const b of partners[a]!) {
      for (const rb of st.ofExpert[b]!) {
        const d1 = st.device[r]!;
        const d2 = st.device[rb]!;
        if (d2 === d1 || st.holds(d2, a)) continue;
        const before = st.remote[d1]! + st.remote[d2]!;
        // Worth a look only when the pair's overlap is a visible part of the two devices' traffic.
        if (st.pairOverlap(a, st.x[r]!, b, st.x[rb]!) < MATERIAL * before) continue;
        let best = { q: -1, gain: 1e-9 * p.step_tokens, time: 0 };
        for (const q of st.onDevice[d2]!) {
          const c = st.expert[q]!;
          if (q === rb || st.holds(d1, c) || !st.fits(d2, q, a) || !st.fits(d1, r, c)) continue;
          const c1 = st.computeWith(d1, r, q);
          const c2 = st.computeWith(d2, q, r);
          if (Math.max(c1, c2) > limit) continue;
          const r1 = st.remoteWith(d1, r, c, st.x[q]!);
          const r2 = st.remoteWith(d2, q, a, st.x[r]!);
          const gain = before - r1 - r2;
          if (gain <= best.gain) continue;
          const t = Math.max(c1, c2, st.slowestExcept(d1, d2)) + st.commWith(d1, r1, d2, r2);
          if (t <= time * (1 + 1e-9)) best = { q, gain, time: t };
        }
        if (best.q >= 0) {
          st.move(r, d2);
          st.move(best.q, d1);
          top = st.slowest().compute;
          time = best.time;
          changed = true;
          break;
        }
      }
    }
  }
  return changed;
}
