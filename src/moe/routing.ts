// Routing statistics, `hxc-routing/v1` (DESIGN.md, Formats 5): per MoE layer, tokens per expert and an
// optional expert × expert co-activation matrix (diagonal = tokens). Read and validated here — every
// error is one HXC2501 line naming the JSON path — written here (`writeRouting`, what `hxc run` uses to
// close the loop), and made up here when there is no file: uniform routing, or a seeded Zipf trace.
// Readers accept fields they do not know (a trace's generator, popularity, ...).

import { fileOption } from '../pass/options.js';
import fs from 'node:fs';
import { mulberry32 } from '../util/stats.js';
import { HxcError } from '../diag/diagnostics.js';
import { readBounded } from '../util/read-file.js';

/**
 * `--routing FILE`, read by the passes that cost, place and replicate experts (profile, moe,
 * replicate, partition): declared with the format it names.
 */
export const ROUTING = fileOption({
  name: 'routing',
  arg: '<file>',
  on: ['inspect', 'check'],
  help: 'MoE routing statistics (hxc-routing/v1: tokens per expert, co-activation); uniform when absent (warning HXC1106)',
});

export const ROUTING_FORMAT = 'hxc-routing/v1';

export interface RoutingLayer {
  /** MoE layer, counted from 0 in graph order. */
  layer: number;
  /** Token-expert assignments per expert (sums to top_k × tokens for top-k routing). */
  tokens: number[];
  /** Tokens routed to both experts a and b; the diagonal repeats `tokens`. */
  coactivation?: number[][];
}

export interface Routing {
  /** The file it came from, or null (uniform default, synthetic). */
  file: string | null;
  layers: RoutingLayer[];
}

type Json = unknown;

function describe(v: Json): string {
  if (v === undefined) return 'nothing (the field is missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

function fail(file: string, at: string, message: string, hint = `see DESIGN.md, Formats 5 (${ROUTING_FORMAT})`): never {
  throw new HxcError('HXC2501', `${at}: ${message}`, { where: file, hint });
}

/** Token counts: whole traces of trillions of tokens fit; 1e308 is not a count. */
const MAX_COUNT = 1e15;

function count(file: string, v: Json, at: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_COUNT)
    fail(file, at, `expected a token count from 0 to ${MAX_COUNT}, found ${describe(v)}`);
  return v;
}

/** Parses and validates routing text; `file` names it in errors. */
export function parseRouting(text: string, file: string): Routing {
  let doc: Json;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    fail(file, '$', `invalid JSON: ${(err as Error).message}`, 'fix the JSON syntax');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail(file, '$', `expected an object, found ${describe(doc)}`);
  const root = doc as Record<string, Json>;
  if (root.format !== ROUTING_FORMAT) fail(file, 'format', `expected "${ROUTING_FORMAT}", found ${describe(root.format)}`, `set "format": "${ROUTING_FORMAT}"`);
  if (!Array.isArray(root.layers)) fail(file, 'layers', `expected an array, found ${describe(root.layers)}`);
  const seen = new Map<number, number>();
  const layers = root.layers.map((raw, i): RoutingLayer => {
    const at = `layers[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, at, `expected an object, found ${describe(raw)}`);
    const o = raw as Record<string, Json>;
    if (typeof o.layer !== 'number' || !Number.isSafeInteger(o.layer) || o.layer < 0)
      fail(file, `${at}.layer`, `expected a non-negative integer, found ${describe(o.layer)}`);
    const before = seen.get(o.layer);
    if (before !== undefined) fail(file, `${at}.layer`, `layer ${o.layer} is given twice (also layers[${before}])`);
    seen.set(o.layer, i);
    if (!Array.isArray(o.tokens) || o.tokens.length === 0)
      fail(file, `${at}.tokens`, `expected a non-empty array of token counts, found ${describe(o.tokens)}`);
    const tokens = o.tokens.map((t, e) => count(file, t, `${at}.tokens[${e}]`));
    if (tokens.every((t) => t === 0)) fail(file, `${at}.tokens`, 'no token was routed in this layer (every count is 0)');
    const out: RoutingLayer = { layer: o.layer, tokens };
    if (o.coactivation !== undefined) {
      const n = tokens.length;
      if (!Array.isArray(o.coactivation) || o.coactivation.length !== n)
        fail(file, `${at}.coactivation`, `expected ${n} rows (one per expert), found ${describe(o.coactivation)}`);
      out.coactivation = o.coactivation.map((row, a) => {
        if (!Array.isArray(row) || row.length !== n) fail(file, `${at}.coactivation[${a}]`, `expected ${n} numbers, found ${describe(row)}`);
        return row.map((c, b) => count(file, c, `${at}.coactivation[${a}][${b}]`));
      });
    }
    return out;
  });
  return { file, layers: layers.sort((a, b) => a.layer - b.layer) };
}

/** Files read, by path, size and modification time: the passes that need routing read it once. */
const readFiles = new Map<string, Routing>();
/** A routing file larger than this is refused before it is parsed (a trace of 256 experts × 61 layers with coactivation is ~20 MB). */
const MAX_ROUTING_BYTES = 256 << 20;

/** Reads a routing file (missing file: HXC2001; bad content: HXC2501 with the JSON path). */
export function readRouting(file: string): Routing {
  let text: string;
  let key: string;
  try {
    const st = fs.statSync(file);
    key = `${file}\u0000${st.size}\u0000${st.mtimeMs}`;
    const known = readFiles.get(key);
    if (known) return known;
    text = readBounded(file, MAX_ROUTING_BYTES, 'the routing file').toString('utf8');
  } catch (err) {
    if (err instanceof HxcError) throw err;
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new HxcError('HXC2001', `cannot read routing file: ${reason}`, { where: file, hint: 'check the --routing path' });
  }
  const routing = parseRouting(text, file);
  if (readFiles.size > 16) readFiles.clear();
  readFiles.set(key, routing);
  return routing;
}

/** The file text: stable key order, one layer per block, a final newline. */
export function routingText(layers: readonly RoutingLayer[], extra: Record<string, unknown> = {}): string {
  const body = {
    format: ROUTING_FORMAT,
    ...extra,
    layers: [...layers]
      .sort((a, b) => a.layer - b.layer)
      .map((l) => (l.coactivation ? { layer: l.layer, tokens: l.tokens, coactivation: l.coactivation } : { layer: l.layer, tokens: l.tokens })),
  };
  return JSON.stringify(body, null, 1) + '\n';
}

/**
 * Measured counts as `hxc-routing/v1` text (what `hxc run` records, so `hxc plan --routing` can
 * read them back), validated by the reader before anyone writes it.
 */
export function checkedRoutingText(layers: readonly RoutingLayer[], extra: Record<string, unknown> = {}, file = 'expert_routing.json'): string {
  const text = routingText(layers, extra);
  parseRouting(text, file);
  return text;
}

/**
 * One layer's routing as the placement reads it: tokens per expert, and co-activation E×E row-major,
 * per step. Read only: layers of one uniform routing share one (passes/moe.ts).
 */
export interface ScaledRouting {
  tokens: Float64Array;
  coactivation: Float64Array;
}

/**
 * Routing of one layer as the placement reads it: tokens and co-activation per step of `stepTokens`
 * tokens (the trace's own token count is tokens summed / top_k). A missing co-activation matrix is
 * filled by independence: P(a and b) ≈ P(a)·P(b)·(k−1)/k, so that a token still counts k experts.
 */
export function scaledLayer(l: RoutingLayer, topK: number, stepTokens: number): ScaledRouting {
  const n = l.tokens.length;
  const assignments = l.tokens.reduce((s, t) => s + t, 0);
  const traceTokens = assignments / Math.max(1, topK);
  const scale = traceTokens > 0 ? stepTokens / traceTokens : 0;
  const tokens = Float64Array.from(l.tokens, (t) => t * scale);
  const co = new Float64Array(n * n);
  // Row by row, the diagonal after (a branch per entry over 58 layers × 256² cost the moe pass
  // ~0.3 s on the DeepSeek-V3 shape, sampled); each entry is the same expression as before.
  const pairs = stepTokens > 0 && topK > 1;
  for (let a = 0; a < n; a++) {
    const row = a * n;
    if (l.coactivation) {
      const given = l.coactivation[a]!;
      for (let b = 0; b < n; b++) co[row + b] = given[b]! * scale;
    } else if (pairs) {
      const ta = tokens[a]!;
      for (let b = 0; b < n; b++) co[row + b] = (ta * tokens[b]! * (topK - 1)) / (topK * stepTokens);
    }
    co[row + a] = tokens[a]!;
  }
  return { tokens, coactivation: co };
}

/** Uniform routing: every expert equally likely, k distinct experts per token (`tokens` per layer). */
export function uniformLayer(layer: number, experts: number, topK: number, tokens: number): RoutingLayer {
  const k = Math.min(topK, experts);
  const per = (tokens * k) / experts;
  const pair = experts > 1 ? (tokens * k * (k - 1)) / (experts * (experts - 1)) : 0;
  return {
    layer,
    tokens: new Array(experts).fill(per),
    // Rows filled whole, then the diagonal (a closure per entry was 0.25 s for 58 layers × 256²).
    coactivation: Array.from({ length: experts }, (_, a) => {
      const row = new Array<number>(experts).fill(pair);
      row[a] = per;
      return row;
    }),
  };
}

/**
 * scaledLayer(uniformLayer(layer, experts, topK, tokens), topK, tokens), number for number, without
 * the E×E rows of arrays in between (uniform routing of the DeepSeek-V3 shape: 58 layers × 256²
 * numbers made and read back a variant).
 */
export function uniformScaled(experts: number, topK: number, tokens: number): ScaledRouting {
  const k = Math.min(topK, experts);
  const per = (tokens * k) / experts;
  const pair = experts > 1 ? (tokens * k * (k - 1)) / (experts * (experts - 1)) : 0;
  // scaledLayer's scale, its sum taken in the same order over the same values.
  let assignments = 0;
  for (let e = 0; e < experts; e++) assignments += per;
  const traceTokens = assignments / Math.max(1, topK);
  const scale = traceTokens > 0 ? tokens / traceTokens : 0;
  const scaled = new Float64Array(experts).fill(per * scale);
  const co = new Float64Array(experts * experts).fill(pair * scale);
  for (let a = 0; a < experts; a++) co[a * experts + a] = scaled[a]!;
  return { tokens: scaled, coactivation: co };
}

export interface SyntheticSpec {
  layers: number;
  experts: number;
  topK: number;
  /** Tokens drawn per layer. */
  tokens: number;
  /** Zipf exponent of expert popularity (p_r ∝ r^-s). */
  zipfS: number;
  seed: number;
}

/**
 * A skewed trace like ../shared/models/tools/routing_trace.py: per layer, popularity p_r ∝ r^-s
 * assigned to experts through a seeded permutation; each token draws top_k distinct experts in
 * proportion to p (successive sampling without replacement, the distribution Gumbel-top-k gives),
 * here by rejection: draw from p, redraw an expert already chosen.
 */
export function syntheticRouting(spec: SyntheticSpec): RoutingLayer[] {
  const n = spec.experts;
  const k = Math.min(spec.topK, n);
  const out: RoutingLayer[] = [];
  for (let layer = 0; layer < spec.layers; layer++) {
    const rand = mulberry32(spec.seed * 1000003 + layer);
    const perm = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    const p = new Float64Array(n);
    for (let r = 0; r < n; r++) p[perm[r]!] = Math.pow(r + 1, -spec.zipfS);
    const cdf = new Float64Array(n);
    let acc = 0;
    for (let e = 0; e < n; e++) cdf[e] = acc += p[e]!;
    const draw = (): number => {
      const u = rand() * acc;
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[mid]! > u) hi = mid;
        else lo = mid + 1;
      }
      return lo;
    };
    const tokens = new Float64Array(n);
    const co = new Float64Array(n * n);
    const chosen = new Int32Array(k);
    for (let t = 0; t < spec.tokens; t++) {
      for (let c = 0; c < k; c++) {
        let e = draw();
        while (chosen.subarray(0, c).includes(e)) e = draw();
        chosen[c] = e;
        tokens[e]!++;
        for (let c2 = 0; c2 < c; c2++) {
          co[e * n + chosen[c2]!]!++;
          co[chosen[c2]! * n + e]!++;
        }
      }
    }
    out.push({
      layer,
      tokens: Array.from(tokens),
      coactivation: Array.from({ length: n }, (_, a) => Array.from({ length: n }, (_, b) => (a === b ? tokens[a]! : co[a * n + b]!))),
    });
  }
  return out;
}
