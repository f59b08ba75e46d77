// Coarsening a graph into stages: contiguous intervals of one topological order. An interval of a
// topological order is convex by construction (a path that leaves it and comes back would pass a
// node whose position lies inside the interval), so contracting any stage never creates a cycle.
// The order is chosen so that repeated blocks (transformer layers, ResNet blocks) come out
// contiguous: Kahn's algorithm with the block rank as first priority.

import type { GraphIndex } from './algorithms.js';
import { Heap } from '../util/heap.js';

/** A repeated container's segment (`layers.3`, `h_0`), matched where `lastIndex` points (sticky). */
const BLOCK_SEGMENT =
  /(?:layers?|h|blocks?|block|encoder_layer|decoder_layer|features|stages?|res\d*|layer\d*|transformer_blocks?|resblocks?)[._]\d+(?=[/._]|$)/iy;

/**
 * The block a node belongs to, from the module path exporters write into names
 * (`/model/layers.3/mlp/...`, `/h.0/attn/...`, `/features/features.7/...`): the first `name.N` or
 * `name_N` segment whose name looks like a repeated container. null when there is none.
 */
export function blockKey(nodeName: string): string | null {
  // Tried at each segment start (the name's, or after a / or .), leftmost first: the match one exec
  // of `(?:^|[/.])(segment)` finds, without the match array it made per node (106 MB a run, sampled).
  for (let p = 0; p < nodeName.length; p++) {
    if (p > 0 && nodeName[p - 1] !== '/' && nodeName[p - 1] !== '.') continue;
    BLOCK_SEGMENT.lastIndex = p;
    if (BLOCK_SEGMENT.test(nodeName)) return nodeName.slice(p, BLOCK_SEGMENT.lastIndex).replace('_', '.');
  }
  return null;
}

/** Block rank per node: blocks are numbered in order of first appearance; unkeyed nodes inherit from their nearest keyed consumer. */
export function blockRanks(index: GraphIndex, order: Int32Array): { rank: Int32Array; labels: string[] } {
  const n = index.size;
  const labels: string[] = [];
  const ids = new Map<string, number>();
  const rank = new Int32Array(n).fill(-1);
  // Counted loops over the index's CSR arrays here and below: a for-of over a subarray made a view
  // and iterator results per node (149 MB of blockOrder's, 23 MB of blockRanks' allocation, sampled).
  const { succOffsets, succs } = index;
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    const key = blockKey(index.graph.nodes[i]!.name);
    if (key === null) continue;
    let id = ids.get(key);
    if (id === undefined) {
      id = labels.length;
      ids.set(key, id);
      labels.push(key);
    }
    rank[i] = id;
  }
  // Unkeyed nodes (constants, shape arithmetic) join the earliest block that consumes them, so they
  // travel with it; nodes nothing keyed consumes keep rank -1 and are ordered by position.
  for (let k = order.length - 1; k >= 0; k--) {
    const i = order[k]!;
    if (rank[i] !== -1) continue;
    let best = -1;
    for (let e = succOffsets[i]!; e < succOffsets[i + 1]!; e++) {
      const r = rank[succs[e]!]!;
      if (r !== -1 && (best === -1 || r < best)) best = r;
    }
    rank[i] = best;
  }
  return { rank, labels };
}

/**
 * Topological order where nodes of earlier blocks go first: priority (block rank, original index).
 * Unranked nodes get the rank of the latest block among their predecessors, so a tail (final norm,
 * lm_head) stays after the last block and a head (embedding) before the first. Source nodes that
 * `sinkable` marks (constants: no inputs, no work) are then moved to just before their first
 * consumer, so they travel with it instead of piling up at the start. Returns the order and the
 * ranks to cut it by.
 */
export function blockOrder(index: GraphIndex, rankIn: Int32Array, sinkable?: (i: number) => boolean): { order: Int32Array; rank: Int32Array } {
  const n = index.size;
  const rank = Int32Array.from(rankIn);
  /** Ranks to cut by: the blocks' own (a tail after the last block stays unranked), sunk sources take their consumer's. */
  const cutRank = Int32Array.from(rankIn);
  const { succOffsets, succs, predOffsets, preds } = index;
  const indeg = new Int32Array(n);
  for (let i = 0; i < n; i++) indeg[i] = predOffsets[i + 1]! - predOffsets[i]!;
  // Key = (rank + 1) * n + index: exact in a double for any graph that fits in memory.
  const heap = new Heap<number>((a, b) => a < b);
  const key = (i: number): number => (rank[i]! + 1) * n + i;
  for (let i = 0; i < n; i++) if (indeg[i] === 0) heap.push(key(i));
  const order = new Int32Array(n);
  let k = 0;
  while (heap.size > 0) {
    const i = heap.pop()! % n;
    order[k++] = i;
    for (let e = succOffsets[i]!; e < succOffsets[i + 1]!; e++) {
      const s = succs[e]!;
      if (rank[s] === -1 || rank[s]! < rank[i]!) rank[s] = Math.max(rank[s]!, rank[i]!);
      if (--indeg[s]! === 0) heap.push(key(s));
    }
  }
  const topo = order.subarray(0, k);
  if (!sinkable) return { order: topo, rank: cutRank };
  // Sink: emit each sinkable source right before the first node (in order) that reads it.
  const sunk = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (indeg[i] === 0 && predOffsets[i + 1] === predOffsets[i] && succOffsets[i + 1]! > succOffsets[i]! && sinkable(i)) sunk[i] = 1;
  }
  const out = new Int32Array(k);
  const placed = new Uint8Array(n);
  let m = 0;
  for (let t = 0; t < k; t++) {
    const i = order[t]!;
    if (sunk[i]) continue;
    for (let e = predOffsets[i]!; e < predOffsets[i + 1]!; e++) {
      const p = preds[e]!;
      if (sunk[p] && !placed[p]) {
        placed[p] = 1;
        out[m++] = p;
        cutRank[p] = cutRank[i]!;
      }
    }
    out[m++] = i;
  }
  return { order: out.subarray(0, m), rank: cutRank };
}

export interface Interval {
  start: number;
  end: number; // exclusive
}

/**
 * Cut `order` into intervals: at every change of block rank; then split so the graph has about
 * `splitTarget` pieces — every block into the same number of equal-weight pieces (so repeated
 * blocks stay repeats of each other), stretches outside blocks by a weight limit; then merge the
 * lightest adjacent pairs until at most `maxStages` remain. Never between positions k − 1 and k
 * where `joined[k]` is set (a kernel fusion the cut must not break: passes/stage.ts).
 */
export function cutIntervals(
  order: Int32Array,
  rank: Int32Array,
  weight: Float64Array,
  maxStages: number,
  splitTarget: number,
  joined?: Uint8Array,
): Interval[] {
  const runs: Interval[] = [];
  let start = 0;
  for (let k = 1; k <= order.length; k++) {
    if (k === order.length || (rank[order[k]!] !== rank[order[k - 1]!] && !joined?.[k])) {
      runs.push({ start, end: k });
      start = k;
    }
  }
  const total = weight.reduce((a, b) => a + b, 0);
  const blocks = runs.filter((iv) => rank[order[iv.start]!]! >= 0).length;
  const piecesPerBlock = blocks > 0 && blocks < splitTarget ? Math.ceil(splitTarget / blocks) : 1;
  const limit = splitTarget > 0 && total > 0 ? total / splitTarget : Infinity;
  const out: Interval[] = [];
  for (const iv of runs) {
    let runWeight = 0;
    for (let k = iv.start; k < iv.end; k++) runWeight += weight[order[k]!]!;
    const pieces = rank[order[iv.start]!]! >= 0 ? piecesPerBlock : Math.max(1, Math.ceil(runWeight / limit));
    out.push(...splitEvenly(iv, order, weight, runWeight, Math.min(pieces, iv.end - iv.start), joined));
  }
  return mergeLightest(out, order, weight, maxStages);
}

/**
 * Split an interval into `pieces` parts of about equal weight (cut where the running weight crosses
 * each quantile, or at the first place after it that `joined` does not join).
 */
function splitEvenly(iv: Interval, order: Int32Array, weight: Float64Array, runWeight: number, pieces: number, joined?: Uint8Array): Interval[] {
  if (pieces <= 1 || runWeight <= 0) return [iv];
  const parts: Interval[] = [];
  let acc = 0;
  let s = iv.start;
  let next = 1;
  for (let k = iv.start; k < iv.end && next < pieces; k++) {
    acc += weight[order[k]!]!;
    if (acc >= (runWeight * next) / pieces && k + 1 < iv.end && !joined?.[k + 1]) {
      parts.push({ start: s, end: k + 1 });
      s = k + 1;
      next++;
    }
  }
  parts.push({ start: s, end: iv.end });
  return parts;
}

/** Greedy: merge the adjacent pair with the smallest combined weight until `maxStages` remain (heap with lazy deletion). */
function mergeLightest(intervals: Interval[], order: Int32Array, weight: Float64Array, maxStages: number): Interval[] {
  if (intervals.length <= maxStages) return intervals;
  const m = intervals.length;
  const w = intervals.map((iv) => {
    let s = 0;
    for (let k = iv.start; k < iv.end; k++) s += weight[order[k]!]!;
    return s;
  });
  const next = Int32Array.from({ length: m }, (_, i) => (i + 1 < m ? i + 1 : -1));
  const prev = Int32Array.from({ length: m }, (_, i) => i - 1);
  const alive = new Uint8Array(m).fill(1);
  const version = new Int32Array(m);
  type Pair = { w: number; i: number; v: number; vn: number };
  const heap = new Heap<Pair>((a, b) => a.w < b.w || (a.w === b.w && a.i < b.i));
  const push = (i: number): void => {
    const j = next[i]!;
    if (j >= 0) heap.push({ w: w[i]! + w[j]!, i, v: version[i]!, vn: version[j]! });
  };
  for (let i = 0; i < m; i++) push(i);
  let count = m;
  while (count > maxStages && heap.size > 0) {
    const e = heap.pop()!;
    const j = next[e.i]!;
    if (!alive[e.i] || j < 0 || version[e.i] !== e.v || version[j] !== e.vn) continue;
    // Merge j into i.
    intervals[e.i] = { start: intervals[e.i]!.start, end: intervals[j]!.end };
    w[e.i] = w[e.i]! + w[j]!;
    alive[j] = 0;
    next[e.i] = next[j]!;
    if (next[j]! >= 0) prev[next[j]!] = e.i;
    version[e.i]!++;
    count--;
    push(e.i);
    if (prev[e.i]! >= 0) {
      version[prev[e.i]!]!++;
      push(prev[e.i]!);
    }
  }
  return intervals.filter((_, i) => alive[i]);
}
