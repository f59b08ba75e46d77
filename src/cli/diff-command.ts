// `hxc diff A B [--json]`: what changes between two plan directories (any two: a replan and its
// origin, two racks, two objectives) — units moved and the bytes that moving them moves, experts
// moved or replicated, per-device memory and utilisation, the estimates, transfers added or
// removed. It reports; it always exits 0 (2 on bad input: a path that is not a plan).

import { formatDiagnostic, report } from '../diag/diagnostics.js';
import { readPlan } from '../plan/read.js';
import type { PlanV1 } from '../plan/format.js';
import { formatBytes, jsonText, table } from './output.js';
import { majorityDevice } from '../partition/migration.js';

export const DIFF_FORMAT = 'hxc-diff/v1';

export interface UnitMove {
  unit: string;
  from: string;
  to: string;
  /** Weights and owned state of the unit (plan B's figure): what the move carries. */
  bytes: number;
}

export interface PlanDiff {
  format: typeof DIFF_FORMAT;
  /** Units of B (named as in its plan.json `explain`) whose nodes mostly ran on another device in A. */
  moved: UnitMove[];
  migration_bytes: number;
  /** Units none of whose nodes the other plan has (a tensor-parallel split's parts, another model). */
  unmatched_units: { only_a: number; only_b: number };
  /** Graph nodes on another device in B (plan.json `assignment`; every plan of one model names the same nodes). */
  nodes_moved: number;
  /** Graph nodes each plan assigns, and those both do: moves are counted over the shared ones. */
  nodes: { a: number; b: number; both: number };
  /**
   * Units of B that stayed where most of their nodes ran in A but some of whose nodes ran elsewhere
   * in A: each with its device in B, how many of its nodes came from another device, and from where.
   * With `moved`, they hold every node counted in nodes_moved.
   */
  partly_moved: { unit: string; to: string; nodes: number; from: string[] }[];
  experts: { layer: number; expert: number; a: string[]; b: string[] }[];
  devices: { id: string; memory_bytes: [number | null, number | null]; utilisation: [number | null, number | null] }[];
  transfers: { added: number; removed: number; bytes: [number, number] };
  a: Figures;
  b: Figures;
}

interface Figures {
  dir: string;
  latency_s: number;
  throughput_per_s: number;
  kv_sequences: number | null;
  /** Bytes the plan holds over all its devices (plan.json estimate.devices' memory_bytes), and on its fullest device. */
  memory_bytes: number;
  max_device_memory_bytes: number;
  objective: string;
  /** A serving plan's figures under its workload (plan.json `serve`); the ones above are its prefill plan's. */
  serve: { disaggregated: boolean; goodput_per_s: number; capacity_per_s: number; ttft_p90_s: number; tpot_p90_s: number } | null;
}

function figures(dir: string, p: PlanV1): Figures {
  return {
    dir,
    latency_s: p.estimate.latency_s,
    throughput_per_s: p.estimate.throughput_per_s,
    kv_sequences: p.estimate.kv?.sequences ?? null,
    memory_bytes: Object.values(p.estimate.devices).reduce((a, d) => a + d.memory_bytes, 0),
    max_device_memory_bytes: Object.values(p.estimate.devices).reduce((a, d) => Math.max(a, d.memory_bytes), 0),
    objective: String(p.objective),
    serve: p.serve
      ? {
          disaggregated: p.serve.disaggregated,
          goodput_per_s: p.serve.goodput_per_s,
          capacity_per_s: p.serve.capacity_per_s,
          ttft_p90_s: p.serve.ttft_p90_s,
          tpot_p90_s: p.serve.tpot_p90_s,
        }
      : null,
  };
}

/** Every replica's devices of each expert, as a sorted list per (layer, expert). */
function expertDevices(p: PlanV1): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const e of p.experts) m.set(`${e.layer}/${e.expert}`, [...new Set(e.replicas.flatMap((r) => r.devices))].sort());
  return m;
}

export function diffPlans(dirA: string, a: PlanV1, dirB: string, b: PlanV1): PlanDiff {
  // A unit of B came from where most of its nodes ran in A (the first device in name order on a
  // tie) — the rule hxc replan prices moves by (src/partition/migration.ts); units are matched by
  // their nodes, not their names, since another stage cut names them differently.
  const nodesOf = (p: PlanV1): Map<string, string[]> => {
    const m = new Map<string, string[]>();
    for (const d of p.devices)
      for (const st of d.steps) if (st.op === 'compute' && st.unit) (m.get(st.unit) ?? m.set(st.unit, []).get(st.unit)!).push(...(st.nodes ?? []));
    return m;
  };
  const majority = majorityDevice;
  const explainB = new Map(b.explain.map((e) => [e.unit, e]));
  const moved: UnitMove[] = [];
  const partly: PlanDiff['partly_moved'] = [];
  let onlyB = 0;
  for (const [unit, nodes] of nodesOf(b)) {
    const from = majority(nodes, a.assignment);
    const to = majority(nodes, b.assignment);
    if (from === null) onlyB++;
    else if (to !== null && from !== to) moved.push({ unit, from, to, bytes: explainB.get(unit)?.resident_bytes ?? 0 });
    else if (to !== null) {
      const away = nodes.filter((n) => a.assignment[n] !== undefined && a.assignment[n] !== b.assignment[n]);
      if (away.length > 0) partly.push({ unit, to, nodes: away.length, from: [...new Set(away.map((n) => a.assignment[n]!))].sort() });
    }
  }
  let onlyA = 0;
  for (const nodes of nodesOf(a).values()) if (!nodes.some((n) => b.assignment[n] !== undefined)) onlyA++;
  let nodesMoved = 0;
  let both = 0;
  for (const [node, device] of Object.entries(b.assignment)) {
    if (a.assignment[node] === undefined) continue;
    both++;
    if (a.assignment[node] !== device) nodesMoved++;
  }
  const ea = expertDevices(a);
  const eb = expertDevices(b);
  const experts: PlanDiff['experts'] = [];
  for (const key of [...new Set([...ea.keys(), ...eb.keys()])].sort((x, y) => x.localeCompare(y, 'en', { numeric: true }))) {
    const da = ea.get(key) ?? [];
    const db = eb.get(key) ?? [];
    if (da.join() !== db.join()) {
      const [layer, expert] = key.split('/').map(Number) as [number, number];
      experts.push({ layer, expert, a: da, b: db });
    }
  }
  const ids = [...new Set([...Object.keys(a.estimate.devices), ...Object.keys(b.estimate.devices)])].sort();
  const devices = ids.map((id) => {
    const x = a.estimate.devices[id];
    const y = b.estimate.devices[id];
    return {
      id,
      memory_bytes: [x?.memory_bytes ?? null, y?.memory_bytes ?? null] as [number | null, number | null],
      utilisation: [x?.utilisation ?? null, y?.utilisation ?? null] as [number | null, number | null],
    };
  });
  const key = (t: PlanV1['transfers'][number]): string => `${t.value}\u0000${t.from}\u0000${t.to}`;
  const ta = new Set(a.transfers.map(key));
  const tb = new Set(b.transfers.map(key));
  return {
    format: DIFF_FORMAT,
    moved,
    migration_bytes: moved.reduce((s, m) => s + m.bytes, 0),
    unmatched_units: { only_a: onlyA, only_b: onlyB },
    nodes_moved: nodesMoved,
    nodes: { a: Object.keys(a.assignment).length, b: Object.keys(b.assignment).length, both },
    partly_moved: partly,
    experts,
    devices,
    transfers: {
      added: [...tb].filter((t) => !ta.has(t)).length,
      removed: [...ta].filter((t) => !tb.has(t)).length,
      bytes: [a.transfers.reduce((s, t) => s + t.bytes, 0), b.transfers.reduce((s, t) => s + t.bytes, 0)],
    },
    a: figures(dirA, a),
    b: figures(dirB, b),
  };
}

const ms = (s: number): string => `${(s * 1e3).toFixed(3)} ms`;
const pct = (x: number | null): string => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
const change = (x: number, y: number): string => (x === 0 ? '' : ` (${y >= x ? '+' : ''}${(((y - x) / x) * 100).toFixed(1)}%)`);

export function diffCommand(dirA: string, dirB: string, opts: { json?: boolean }): void {
  const a = readPlan(dirA);
  const b = readPlan(dirB);
  const d = diffPlans(dirA, a, dirB, b);
  // Plans of two models compare end to end (estimates, memory, transfers), but their moves say
  // little: a model change keeps most node names, so fewer than half shared is said, once.
  if (d.nodes.both * 2 < Math.min(d.nodes.a, d.nodes.b))
    report(
      formatDiagnostic(
        'warning',
        'HXC1112',
        `A and B share ${d.nodes.both} of their ${d.nodes.a} and ${d.nodes.b} nodes: plans of different models (${a.model.file}, ${b.model.file})? moves compare only the shared nodes`,
        { where: dirB, hint: 'diff plans of one model; a model change keeps most node names' },
      ),
    );
  if (opts.json) {
    process.stdout.write(jsonText(d));
    return;
  }
  let text = `A ${dirA} (${d.a.objective})\nB ${dirB} (${d.b.objective})\n\n`;
  // Serving plans: what they serve comes first; the one-request figures are their prefill plans'.
  const sa = d.a.serve;
  const sb = d.b.serve;
  if (sa || sb) {
    const rate = (x: number | undefined): string => (x === undefined ? '-' : `${x.toFixed(2)}/s`);
    const both = (x: number | undefined, y: number | undefined): string => (x !== undefined && y !== undefined ? change(x, y) : '');
    const mode = (v: Figures['serve']): string => (v ? (v.disaggregated ? 'disaggregated' : 'colocated') : 'not a serving plan');
    text += `serving     ${mode(sa)} → ${mode(sb)}\n`;
    text += `capacity    ${rate(sa?.capacity_per_s)} → ${rate(sb?.capacity_per_s)}${both(sa?.capacity_per_s, sb?.capacity_per_s)} (90% within the SLOs)\n`;
    text += `goodput     ${rate(sa?.goodput_per_s)} → ${rate(sb?.goodput_per_s)}${both(sa?.goodput_per_s, sb?.goodput_per_s)}\n`;
    text += `TTFT p90    ${sa ? ms(sa.ttft_p90_s) : '-'} → ${sb ? ms(sb.ttft_p90_s) : '-'}${both(sa?.ttft_p90_s, sb?.ttft_p90_s)}\n`;
    text += `TPOT p90    ${sa ? ms(sa.tpot_p90_s) : '-'} → ${sb ? ms(sb.tpot_p90_s) : '-'}${both(sa?.tpot_p90_s, sb?.tpot_p90_s)}\n`;
    text += 'prefill plans:\n';
  }
  text += `latency     ${ms(d.a.latency_s)} → ${ms(d.b.latency_s)}${change(d.a.latency_s, d.b.latency_s)}\n`;
  text += `throughput  ${d.a.throughput_per_s.toFixed(2)}/s → ${d.b.throughput_per_s.toFixed(2)}/s${change(d.a.throughput_per_s, d.b.throughput_per_s)}\n`;
  if (d.a.kv_sequences !== null || d.b.kv_sequences !== null) text += `KV sequences ${d.a.kv_sequences ?? '-'} → ${d.b.kv_sequences ?? '-'}\n`;
  text += `\n${d.moved.length} unit(s) moved, ${formatBytes(d.migration_bytes)} to migrate; ${d.nodes_moved} node(s) on another device`;
  text +=
    d.unmatched_units.only_a + d.unmatched_units.only_b > 0
      ? `; units whose nodes only one plan has: ${d.unmatched_units.only_a} in A, ${d.unmatched_units.only_b} in B\n`
      : '\n';
  if (d.moved.length > 0) {
    const shown = [...d.moved].sort((x, y) => y.bytes - x.bytes || x.unit.localeCompare(y.unit)).slice(0, 20);
    text += table(
      ['unit', 'from', 'to', 'bytes'],
      shown.map((m) => [m.unit, m.from, m.to, formatBytes(m.bytes)]),
      [3],
    );
    if (d.moved.length > shown.length) text += `(${d.moved.length - shown.length} more; --json lists every one)\n`;
  }
  if (d.partly_moved.length > 0) {
    const nodes = d.partly_moved.reduce((n, x) => n + x.nodes, 0);
    text += `${nodes} more node(s) moved within ${d.partly_moved.length} unit(s) whose majority stayed: `;
    text += `${d.partly_moved
      .slice(0, 10)
      .map((x) => `${x.unit} on ${x.to} (${x.nodes} from ${x.from.join(', ')})`)
      .join('; ')}${d.partly_moved.length > 10 ? `; ${d.partly_moved.length - 10} more (--json)` : ''}\n`;
  }
  if (d.experts.length > 0) {
    text += `\n${d.experts.length} expert(s) moved or replicated differently\n`;
    text += table(
      ['layer', 'expert', 'A', 'B'],
      d.experts.slice(0, 20).map((e) => [String(e.layer), String(e.expert), e.a.join(', ') || '-', e.b.join(', ') || '-']),
      [0, 1],
    );
  }
  text += `\ntransfers: ${d.transfers.added} added, ${d.transfers.removed} removed; ${formatBytes(d.transfers.bytes[0])} → ${formatBytes(d.transfers.bytes[1])} per request\n\n`;
  const changed = d.devices.filter((x) => x.memory_bytes[0] !== x.memory_bytes[1] || x.utilisation[0] !== x.utilisation[1]);
  text += table(
    ['device', 'memory A', 'memory B', 'util A', 'util B'],
    changed.map((x) => [
      x.id,
      x.memory_bytes[0] === null ? '-' : formatBytes(x.memory_bytes[0]),
      x.memory_bytes[1] === null ? '-' : formatBytes(x.memory_bytes[1]),
      pct(x.utilisation[0]),
      pct(x.utilisation[1]),
    ]),
    [1, 2, 3, 4],
  );
  process.stdout.write(text);
}
