// state: find recurrent state — KV-cache pairs (`past_key_values.*` / `past.*` inputs with matching
// `present.*` outputs), onnxruntime attention ops whose past inputs come from the graph, and
// `state` annotations of JSON graphs — size it at the bound batch and context, and tie each state
// object to the nodes that read and write it (its readers sit with its owner, or pay the move).

import { BATCH, CONTEXT } from './bind.js';
import { byteSizeOf } from '../src/ir/dtype.js';
import type { Dim, Model, Node } from '../src/ir/graph.js';
import type { Pass, PassContext } from '../src/pass/pass.js';
import { dimSymbols, evalDim } from '../src/shapes/symbolic.js';
import { bindPass, defaultContext, type BindResult } from './bind.js';
import { verifyPass } from './verify.js';

export interface StateObject {
  name: string;
  kind: 'kv-cache' | 'annotated';
  /** Decoder layer for KV caches (from the input names), else null. */
  layer: number | null;
  inputs: string[];
  outputs: string[];
  /** Bytes added per token per sequence (all tensors of the object). */
  bytes_per_token: number;
  /** bytes_per_token × context. */
  bytes_per_sequence: number;
  /** bytes_per_sequence × batch: what the owner device must hold. */
  bytes: number;
  /** Node indices that read the state (consumers of its inputs and of its updated outputs). */
  readers: number[];
  /** Node indices producing its updated outputs. */
  writers: number[];
  /**
   * Its tensors, each with the node writing its update (null when none does) and its bytes per
   * token: a K/V pair's key and value may be written on different devices, and each lives where it
   * is written.
   */
  parts: { input: string; output: string; writer: number | null; bytes_per_token: number }[];
}

/** The node whose update a state tensor lives with: its own writer, else its object's first (null when nothing writes the object). */
export function tensorWriter(o: Pick<StateObject, 'writers'>, t: StateObject['parts'][number]): number | null {
  return t.writer ?? o.writers[0] ?? null;
}

/** A state tensor's share of its object's bytes (in proportion to its bytes per token). */
export function tensorBytes(o: Pick<StateObject, 'bytes' | 'bytes_per_token'>, t: StateObject['parts'][number]): number {
  return o.bytes_per_token > 0 ? (o.bytes * t.bytes_per_token) / o.bytes_per_token : 0;
}

export interface StateResult {
  objects: StateObject[];
  batch: number;
  context: number;
  totals: { bytes_per_token: number; bytes_per_sequence: number; bytes: number };
}

/** `past_key_values.3.key` → `present.3.key`; `past.0` → `present.0`; `past_key_0` → `present_key_0`. */
export function presentNameFor(past: string): string[] {
  return [
    past.replace(/^past_key_values/, 'present'),
    past.replace(/^past/, 'present'),
    past.replace(/past/, 'present'),
    past.replace(/^cache/, 'present'),
  ].filter((n, i, all) => n !== past && all.indexOf(n) === i);
}

const ORT_PAST_SLOTS: Record<string, { past: number[]; present: number[] }> = {
  GroupQueryAttention: { past: [3, 4], present: [1, 2] },
  MultiHeadAttention: { past: [6, 7], present: [1, 2] },
  Attention: { past: [4], present: [1] },
  DecoderMaskedMultiHeadAttention: { past: [5, 6], present: [1, 2] },
};

function layerOf(name: string): number | null {
  const m = /(?:^|[._/])(\d+)(?:[._/]|$)/.exec(name);
  return m ? Number(m[1]) : null;
}

export function findStatePairs(model: Model): { name: string; kind: StateObject['kind']; inputs: string[]; outputs: string[] }[] {
  const g = model.graph;
  const outputs = new Set(g.outputs.map((o) => o.name));
  const inputs = new Set(g.inputs.map((i) => i.name));
  const pairs = new Map<string, [string, string]>();
  for (const v of g.inputs) {
    if (!/past|cache/i.test(v.name)) continue;
    const present = presentNameFor(v.name).find((p) => outputs.has(p));
    if (present) pairs.set(v.name, [v.name, present]);
  }
  // Head-sharded attention (src/transform/tensor-parallel.ts) reads its past through a Split of
  // the graph input and writes its present through a Concat into the graph output.
  // (Indexed when an attention op is first met: a graph without one is not walked again.)
  let indexed: { producer: Map<string, Node>; reader: Map<string, Node> } | null = null;
  const index = (): NonNullable<typeof indexed> => {
    if (indexed) return indexed;
    indexed = { producer: new Map(), reader: new Map() };
    for (const n of g.nodes) {
      for (const o of n.outputs) indexed.producer.set(o, n);
      if (n.op === 'Concat') for (const i of n.inputs) indexed.reader.set(i, n);
    }
    return indexed;
  };
  const throughSplit = (v: string | undefined): string | undefined => {
    const p = v === undefined ? undefined : index().producer.get(v);
    return p?.op === 'Split' ? p.inputs[0] : v;
  };
  const throughJoin = (v: string | undefined): string | undefined => {
    const c = v === undefined ? undefined : index().reader.get(v);
    return c && outputs.has(c.outputs[0]!) ? c.outputs[0] : v;
  };
  // (A counted loop: run once a variant, this for-of stayed unoptimised and made an iterator result per node, 21 MB a run, sampled.)
  for (let i = 0; i < g.nodes.length; i++) {
    const n = g.nodes[i]!;
    const slots = n.domain === 'com.microsoft' ? ORT_PAST_SLOTS[n.op] : undefined;
    if (!slots) continue;
    slots.past.forEach((slot, k) => {
      const past = throughSplit(n.inputs[slot]);
      const present = throughJoin(n.outputs[slots.present[k]!]);
      if (past && present && inputs.has(past) && !pairs.has(past)) pairs.set(past, [past, present]);
    });
  }
  // Group a layer's tensors (key and value) into one object.
  const groups = new Map<string, { inputs: string[]; outputs: string[] }>();
  for (const [past, present] of [...pairs.values()]) {
    const layer = layerOf(past);
    // A head-sharded cache (`…/tp0of2`, src/transform/tensor-parallel.ts) is one object per shard: each lives with its shard.
    const shard = /\/tp(\d+of\d+)$/.exec(past)?.[1];
    const key = layer === null ? past : `kv.layer${layer}${shard ? `.tp${shard}` : ''}`;
    const grp = groups.get(key) ?? { inputs: [], outputs: [] };
    grp.inputs.push(past);
    grp.outputs.push(present);
    groups.set(key, grp);
  }
  // A tensor the graph annotates as state is the annotation's alone: a pair found by name over the
  // same tensors is not a second object (its bytes were counted twice, its KV capacity halved).
  const annotated = new Set(model.annotations.state.flatMap((a) => [...a.inputs, ...a.outputs]));
  const found: ReturnType<typeof findStatePairs> = [];
  for (const [name, grp] of groups) {
    const keep = grp.inputs.map((_, k) => k).filter((k) => !annotated.has(grp.inputs[k]!) && !annotated.has(grp.outputs[k]!));
    if (keep.length > 0) found.push({ name, kind: 'kv-cache', inputs: keep.map((k) => grp.inputs[k]!), outputs: keep.map((k) => grp.outputs[k]!) });
  }
  for (const a of model.annotations.state) found.push({ name: a.name, kind: 'annotated', inputs: a.inputs, outputs: a.outputs });
  const layerKey = (x: { inputs: string[] }): number => layerOf(x.inputs[0] ?? '') ?? 1e9;
  return found.sort((a, b) => layerKey(a) - layerKey(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Bytes per token of one state tensor: the product of its dims other than the batch axis and the
 * growing (sequence) axis, times the element size — for [batch, kv_heads, past, head_dim] that is
 * kv_heads × head_dim × dtype bytes (DESIGN.md: a K/V pair per layer is 2 × kv_heads × head_dim ×
 * context × batch × dtype bytes; a compressed latent cache is whatever its shape says).
 */
function tensorBytesPerToken(shape: Dim[], dtype: Parameters<typeof byteSizeOf>[0], roles: BindResult['roles'], dims: Record<string, number>): number {
  const seqAxis = shape.findIndex((d) => typeof d === 'string' && (d === roles.past || dimSymbols(d).some((s) => /past|cache|total/i.test(s))));
  const growing = seqAxis >= 0 ? seqAxis : shape.length - 2;
  const batchAxis = shape.findIndex((d) => typeof d === 'string' && (d === roles.batch || /batch/i.test(d)));
  let elements = 1;
  shape.forEach((d, i) => {
    if (i === growing || i === batchAxis) return;
    elements *= typeof d === 'number' ? d : (evalDim(d, dims) ?? 1);
  });
  return byteSizeOf(dtype, elements);
}

export function analyzeState(ctx: PassContext): StateResult {
  const model = ctx.model;
  const g = model.graph;
  const { index } = ctx.get(verifyPass);
  const bind = ctx.get(bindPass);
  const batch = ctx.option(BATCH) ?? (bind.roles.batch ? bind.dims[bind.roles.batch] : undefined) ?? 1;
  // By default the cache holds the model's usual context, and never fewer tokens than a prefill
  // writes (a prompt longer than that context: its present tensors hold every prompt token).
  const prompt = bind.phase === 'prefill' && bind.roles.seq ? (bind.dims[bind.roles.seq] ?? 0) : 0;
  const context = ctx.option(CONTEXT) ?? Math.max(defaultContext(model), prompt);
  const objects: StateObject[] = findStatePairs(model).map((p) => {
    let perToken = 0;
    const parts: StateObject['parts'] = [];
    p.inputs.forEach((name, i) => {
      const t = g.declared.get(name);
      const bpt = t?.shape ? tensorBytesPerToken(t.shape, t.dtype, bind.roles, bind.dims) : 0;
      perToken += bpt;
      const output = p.outputs[i] ?? '';
      parts.push({ input: name, output, writer: index.producer.get(output) ?? null, bytes_per_token: bpt });
    });
    const readers = new Set<number>();
    const writers = new Set<number>();
    for (const v of p.inputs) for (const c of index.consumers.get(v) ?? []) readers.add(c);
    for (const v of p.outputs) {
      const w = index.producer.get(v);
      if (w !== undefined) writers.add(w);
      for (const c of index.consumers.get(v) ?? []) readers.add(c);
    }
    return {
      name: p.name,
      kind: p.kind,
      layer: p.kind === 'kv-cache' ? layerOf(p.inputs[0] ?? '') : null,
      inputs: p.inputs,
      outputs: p.outputs,
      bytes_per_token: perToken,
      bytes_per_sequence: perToken * context,
      bytes: perToken * context * batch,
      readers: [...readers].sort((a, b) => a - b),
      writers: [...writers].sort((a, b) => a - b),
      parts,
    };
  });
  const totals = { bytes_per_token: 0, bytes_per_sequence: 0, bytes: 0 };
  for (const o of objects) {
    totals.bytes_per_token += o.bytes_per_token;
    totals.bytes_per_sequence += o.bytes_per_sequence;
    totals.bytes += o.bytes;
  }
  return { objects, batch, context, totals };
}

export const statePass: Pass<StateResult> = {
  name: 'state',
  summary: 'find recurrent state (KV caches, ORT attention past/present, annotations), size it, tie it to its readers and writers',
  requires: ['verify', 'bind'],
  options: [BATCH, CONTEXT],
  run: analyzeState,
  statistics(r) {
    return { 'state objects': r.objects.length, 'bytes per token': r.totals.bytes_per_token, 'state bytes': r.totals.bytes };
  },
  dump(r, ctx) {
    const names = (ids: number[]): string => ids.map((i) => ctx.model.graph.nodes[i]!.name).join(', ');
    const lines = [`batch=${r.batch} context=${r.context} total bytes_per_token=${r.totals.bytes_per_token} bytes=${r.totals.bytes}`];
    for (const o of r.objects) {
      lines.push(
        `${o.name}: kind=${o.kind} layer=${o.layer ?? '-'} bytes_per_token=${o.bytes_per_token} bytes_per_sequence=${o.bytes_per_sequence} bytes=${o.bytes}`,
      );
      lines.push(`  inputs: ${o.inputs.join(', ')}; outputs: ${o.outputs.join(', ')}`);
      lines.push(`  writers: ${names(o.writers)}`);
      lines.push(`  readers: ${names(o.readers)}`);
    }
    return lines.join('\n') + '\n';
  },
};
