// The placer's mutable state: replicas, their token shares and per-device aggregates kept exact, so
// that a what-if (one replica out, one in) costs O(replicas on the device), not a recount.

import { settle, sortReplicas, type Placement, type PlacementProblem } from './problem.js';

/** Layers with at most this many replicas are re-split whole in interchange trials. */
export const SMALL_LAYER = 64;

/**
 * Mutable placement: replicas, their token shares, and per-device aggregates kept exact, so that a
 * what-if (one replica out, one in) costs O(replicas on the device), not a recount.
 */
export class State {
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
