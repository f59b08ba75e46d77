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

import { evaluate, replicaCounts, settle, sortReplicas, type Placement, type PlacementProblem, type Replica } from './problem.js';

export * from './problem.js';
export * from './baselines.js';

// ---------------------------------------------------------------------------------------------
// hxc.

/**
 * Mutable placement: replicas, their token shares, and per-device aggregates kept exact, so that a
 * what-if (one replica out, one in) costs O(replicas on the device), not a recount.
 */
class State {
  readonly n: number;
  readonly expert: number[] = [];
  readonly device: number[] = [];
  readonly x: number[] = [];
  readonly onDevice: number[][];
  readonly ofExpert: number[][];
  readonly flops: Float64Array;
  readonly compute: Float64Array;
  readonly memory: Float64Array;
  /** Per device: Σ x, tokens served locally, the pairwise overlap, and the tokens from elsewhere. */
  readonly sum: Float64Array;
  readonly local: Float64Array;
  readonly pairs: Float64Array;
  readonly remote: Float64Array;
  /** Shared-link seconds of dispatch and combine at the current remote tokens. */
  readonly linkIn: Float64Array;
  readonly linkOut: Float64Array;
  /**
   * A device's own traffic cost (its slowest transfers in and out), to steer the greedy placement
   * toward devices near the token sources; the interchange prices the whole layer exactly.
   */
  readonly proxyFixed: Float64Array;
  readonly proxyPerToken: Float64Array;

  constructor(readonly p: PlacementProblem) {
    const n = (this.n = p.devices.length);
    this.onDevice = Array.from({ length: n }, () => []);
    this.ofExpert = Array.from({ length: p.experts }, () => []);
    this.flops = new Float64Array(n);
    this.compute = new Float64Array(n);
    this.memory = new Float64Array(n);
    this.sum = new Float64Array(n);
    this.local = new Float64Array(n);
    this.pairs = new Float64Array(n);
    this.remote = new Float64Array(n);
    this.linkIn = new Float64Array(p.comm.shared.length);
    this.linkOut = new Float64Array(p.comm.shared.length);
    const c = p.comm;
    this.proxyFixed = Float64Array.from({ length: n }, (_, d) => c.in_latency_s[d]! + c.out_latency_s[d]!);
    this.proxyPerToken = Float64Array.from({ length: n }, (_, d) => c.in_per_token_s[d]! + c.out_per_token_s[d]!);
  }

  holds(d: number, e: number): boolean {
    for (const r of this.onDevice[d]!) if (this.expert[r] === e) return true;
    return false;
  }

  pairOverlap(a: number, xa: number, b: number, xb: number): number {
    return this.pair(a, xa, b, xb);
  }

  private pair(a: number, xa: number, b: number, xb: number): number {
    const p = this.p;
    const ta = p.tokens[a]!;
    const tb = p.tokens[b]!;
    return a === b || ta <= 0 || tb <= 0 ? 0 : (p.coactivation[a * p.experts + b]! * xa * xb) / (ta * tb);
  }

  private localOf(d: number, e: number, x: number): number {
    return Math.min(x, this.p.source_share[d]! * this.p.tokens[e]!);
  }

  /** Remote tokens from the aggregates (see remoteTokens). */
  private remoteFrom(sum: number, local: number, pairs: number, most: number): number {
    if (sum <= 0) return 0;
    const T = this.p.step_tokens;
    const hits = Math.min(T > 0 ? Math.max(T, most) : sum, Math.max(most, sum - pairs));
    return settle(hits * Math.max(0, 1 - local / sum), sum);
  }

  /** Device d's remote tokens with replica `out` taken out and expert `inE` with `inX` tokens put in (either may be -1). */
  remoteWith(d: number, out: number, inE: number, inX: number): number {
    let sum = this.sum[d]!;
    let local = this.local[d]!;
    let pairs = this.pairs[d]!;
    let most = inE >= 0 ? inX : 0;
    if (out >= 0) {
      sum -= this.x[out]!;
      local -= this.localOf(d, this.expert[out]!, this.x[out]!);
    }
    if (inE >= 0) {
      sum += inX;
      local += this.localOf(d, inE, inX);
    }
    for (const r of this.onDevice[d]!) {
      if (r === out) continue;
      const e = this.expert[r]!;
      const x = this.x[r]!;
      if (x > most) most = x;
      if (out >= 0) pairs -= this.pair(this.expert[out]!, this.x[out]!, e, x);
      if (inE >= 0) pairs += this.pair(inE, inX, e, x);
    }
    return this.remoteFrom(sum, local, pairs, most);
  }

  /** Recount device d's aggregates and its share of the shared links. */
  refresh(d: number): void {
    const rs = this.onDevice[d]!;
    let sum = 0;
    let local = 0;
    let pairs = 0;
    let most = 0;
    let flops = 0;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i]!;
      const e = this.expert[r]!;
      const x = this.x[r]!;
      flops += x * this.p.flops_per_token[e]!;
      sum += x;
      local += this.localOf(d, e, x);
      if (x > most) most = x;
      for (let j = 0; j < i; j++) pairs += this.pair(e, x, this.expert[rs[j]!]!, this.x[rs[j]!]!);
    }
    this.flops[d] = flops;
    this.compute[d] = flops / this.p.devices[d]!.speed;
    this.sum[d] = sum;
    this.local[d] = local;
    this.pairs[d] = pairs;
    const before = this.remote[d]!;
    this.remote[d] = this.remoteFrom(sum, local, pairs, most);
    const delta = this.remote[d]! - before;
    const c = this.p.comm;
    for (let l = 0; l < c.shared.length; l++) {
      this.linkIn[l]! += delta * c.shared[l]!.in_per_token_s[d]!;
      this.linkOut[l]! += delta * c.shared[l]!.out_per_token_s[d]!;
    }
  }

  add(e: number, d: number, x: number): void {
    const r = this.expert.length;
    this.expert.push(e);
    this.device.push(d);
    this.x.push(x);
    this.onDevice[d]!.push(r);
    this.ofExpert[e]!.push(r);
    this.memory[d]! += this.p.param_bytes[e]!;
    this.refresh(d);
  }

  /** Move replica r to device d (its share travels with it). */
  move(r: number, d: number): void {
    const from = this.device[r]!;
    const e = this.expert[r]!;
    const list = this.onDevice[from]!;
    list.splice(list.indexOf(r), 1);
    this.onDevice[d]!.push(r);
    this.device[r] = d;
    this.memory[from]! -= this.p.param_bytes[e]!;
    this.memory[d]! += this.p.param_bytes[e]!;
    this.refresh(from);
    this.refresh(d);
  }

  proxyTime(d: number, compute: number, remote: number): number {
    return compute + (remote > 0 ? this.proxyFixed[d]! + remote * this.proxyPerToken[d]! : 0);
  }

  /** Device d's compute seconds with replica `out` replaced by `inR` (either may be -1). */
  computeWith(d: number, out: number, inR: number): number {
    let f = this.flops[d]!;
    if (out >= 0) f -= this.x[out]! * this.p.flops_per_token[this.expert[out]!]!;
    if (inR >= 0) f += this.x[inR]! * this.p.flops_per_token[this.expert[inR]!]!;
    return f / this.p.devices[d]!.speed;
  }

  fits(d: number, out: number, inExpert: number): boolean {
    const p = this.p;
    return this.memory[d]! - (out >= 0 ? p.param_bytes[this.expert[out]!]! : 0) + p.param_bytes[inExpert]! <= p.devices[d]!.memory_bytes;
  }

  /** The slowest compute among devices other than a and b. */
  slowestExcept(a: number, b: number): number {
    let m = 0;
    for (let d = 0; d < this.n; d++) if (d !== a && d !== b && this.compute[d]! > m) m = this.compute[d]!;
    return m;
  }

  /** Dispatch + combine seconds, with devices a and b (when ≥ 0) at remote tokens ra, rb. */
  commWith(a = -1, ra = 0, b = -1, rb = 0): number {
    const c = this.p.comm;
    let din = 0;
    let dout = 0;
    for (let d = 0; d < this.n; d++) {
      const r = d === a ? ra : d === b ? rb : this.remote[d]!;
      if (r <= 0) continue;
      din = Math.max(din, c.in_latency_s[d]! + r * c.in_per_token_s[d]!);
      dout = Math.max(dout, c.out_latency_s[d]! + r * c.out_per_token_s[d]!);
    }
    for (let l = 0; l < c.shared.length; l++) {
      const link = c.shared[l]!;
      let tin = this.linkIn[l]!;
      let tout = this.linkOut[l]!;
      if (a >= 0) {
        tin += (ra - this.remote[a]!) * link.in_per_token_s[a]!;
        tout += (ra - this.remote[a]!) * link.out_per_token_s[a]!;
      }
      if (b >= 0) {
        tin += (rb - this.remote[b]!) * link.in_per_token_s[b]!;
        tout += (rb - this.remote[b]!) * link.out_per_token_s[b]!;
      }
      if (tin > 1e-15) din = Math.max(din, link.latency_s + tin);
      if (tout > 1e-15) dout = Math.max(dout, link.latency_s + tout);
    }
    return din + dout;
  }

  slowest(): { device: number; compute: number } {
    let best = 0;
    for (let d = 1; d < this.n; d++) if (this.compute[d]! > this.compute[best]!) best = d;
    return { device: best, compute: this.compute[best]! };
  }

  /**
   * Water-filling of each replicated expert's tokens over its replicas' devices, the others' loads
   * held: a device's compute time is affine in the share, so the level λ with Σ max(0, (λ − b_d)/a_d)
   * = t_e follows from the sorted intercepts. Sweeps are block coordinate descent toward the
   * lexicographically optimal split (Fujishige 1980). Traffic is not a device's own cost (dispatch
   * and combine are layer-wide phases), so it is left to the interchange, which prices the layer.
   */
  waterfill(sweeps: number, only?: readonly number[]): void {
    const p = this.p;
    const experts = only ?? Array.from({ length: p.experts }, (_, e) => e);
    let cap = 8;
    let rep = new Int32Array(cap);
    let slope = new Float64Array(cap);
    let base = new Float64Array(cap);
    for (let sweep = 0; sweep < sweeps; sweep++) {
      let moved = 0;
      for (const e of experts) {
        const rs = this.ofExpert[e]!;
        const c = rs.length;
        if (c < 2 || p.tokens[e]! <= 0) continue;
        if (c > cap) {
          cap = 2 * c;
          rep = new Int32Array(cap);
          slope = new Float64Array(cap);
          base = new Float64Array(cap);
        }
        const fe = p.flops_per_token[e]!;
        // Replicas by intercept (insertion sort: an expert has few replicas).
        for (let i = 0; i < c; i++) {
          const r = rs[i]!;
          const d = this.device[r]!;
          const speed = p.devices[d]!.speed;
          const b = (this.flops[d]! - this.x[r]! * fe) / speed;
          let j = i;
          while (j > 0 && (base[j - 1]! > b || (base[j - 1]! === b && this.device[rep[j - 1]!]! > d))) {
            rep[j] = rep[j - 1]!;
            slope[j] = slope[j - 1]!;
            base[j] = base[j - 1]!;
            j--;
          }
          rep[j] = r;
          slope[j] = fe / speed;
          base[j] = b;
        }
        let sumInv = 0;
        let sumBase = 0;
        let level = 0;
        let k = 0;
        for (; k < c; k++) {
          sumInv += 1 / slope[k]!;
          sumBase += base[k]! / slope[k]!;
          level = (p.tokens[e]! + sumBase) / sumInv;
          if (k + 1 === c || level <= base[k + 1]!) break;
        }
        for (let j = 0; j < c; j++) {
          const r = rep[j]!;
          const x = j <= k ? Math.max(0, (level - base[j]!) / slope[j]!) : 0;
          moved += Math.abs(x - this.x[r]!);
          this.x[r] = x;
        }
        for (let j = 0; j < c; j++) this.refresh(this.device[rep[j]!]!);
      }
      if (moved <= 1e-4 * p.step_tokens) break;
    }
  }

  /**
   * The layer time and slowest compute if replica r moved to device d (swapping with q when q ≥ 0)
   * and the experts on both devices were re-split; the state is restored afterwards.
   */
  trial(r: number, d: number, q: number): { time: number; slowest: number } {
    const b = this.device[r]!;
    // Small layers re-split every expert (a plateau of tied devices falls only together); big ones
    // the experts on the two devices.
    const whole = this.expert.length <= SMALL_LAYER;
    const experts = whole
      ? Array.from({ length: this.p.experts }, (_, e) => e)
      : [...new Set([...this.onDevice[b]!, ...this.onDevice[d]!].map((x) => this.expert[x]!))];
    const reps = experts.flatMap((e) => this.ofExpert[e]!);
    const saved = reps.map((x) => this.x[x]!);
    this.move(r, d);
    if (q >= 0) this.move(q, b);
    this.waterfill(whole ? 16 : 3, experts);
    const slowest = this.slowest().compute;
    const time = slowest + this.commWith();
    this.move(r, b);
    if (q >= 0) this.move(q, d);
    reps.forEach((x, i) => (this.x[x] = saved[i]!));
    for (const dev of new Set(reps.map((x) => this.device[x]!))) this.refresh(dev);
    return { time, slowest };
  }

  placement(): Placement {
    return { method: 'hxc', replicas: sortReplicas(this.expert.map((e, r) => ({ expert: e, device: this.device[r]!, tokens: this.x[r]! }))) };
  }
}

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
/** Layers with at most this many replicas are re-split whole in interchange trials. */
const SMALL_LAYER = 64;
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
