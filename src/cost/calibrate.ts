// Calibration: a measured profile (onnxruntime's profiler JSON, produced with the session option
// `enableProfiling`, or hxc telemetry) replaces estimated node times for the device kind it was
// measured on, and fits an efficiency factor per device kind and op class:
//   factor = Σ ideal compute time / Σ measured time   over the class's nodes with FLOPs,
// i.e. the time-weighted least-squares fit of measured = ideal / factor (ideal: the compute term of
// src/cost/model.ts computeSeconds at the catalog or rack efficiency, the factor the correction).

import { HxcError } from '../diag/diagnostics.js';
import type { Device } from '../topology/index.js';
import { computeSeconds } from './model.js';
import type { OpClass } from './flops.js';
import type { EfficiencyTable } from './model.js';
import { median } from '../util/stats.js';
import { readBounded } from '../util/read-file.js';

/** onnxruntime execution provider → hxc device kind. */
const PROVIDER_KIND: Record<string, string> = {
  CPUExecutionProvider: 'cpu',
  CUDAExecutionProvider: 'gpu',
  TensorrtExecutionProvider: 'gpu',
  ROCMExecutionProvider: 'gpu',
  MIGraphXExecutionProvider: 'gpu',
  DmlExecutionProvider: 'gpu',
  OpenVINOExecutionProvider: 'cpu',
  WebGpuExecutionProvider: 'gpu',
};

export interface Measurements {
  source: 'onnxruntime-profile' | 'hxc-telemetry';
  /** Device kind → node name → median measured seconds. */
  by_kind: Map<string, Map<string, number>>;
  /** Measurements of several nodes at once (an hxc run program step): the caller splits them by estimate. */
  groups: { kind: string; nodes: string[]; seconds: number }[];
  /** The dims the timings were measured at (hxc telemetry: its first request's), when the file says. */
  dims: Record<string, number> | null;
  /** hxc telemetry of one request at those dims: every program's first, cold run (nothing warmer to take). */
  cold: boolean;
}

/** A calibration file larger than this is refused before it is parsed. */
const MAX_CALIBRATION_BYTES = 512 << 20;

export function readCalibration(file: string): Measurements {
  let measuredAt: Record<string, number> | null = null;
  let cold = false;
  let doc: unknown;
  try {
    doc = JSON.parse(readBounded(file, MAX_CALIBRATION_BYTES, 'the calibration file').toString('utf8'));
  } catch (err) {
    if (err instanceof HxcError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new HxcError(
      code === 'ENOENT' ? 'HXC2001' : 'HXC2502',
      code === 'ENOENT' ? 'calibration file does not exist' : `calibration file is not JSON: ${(err as Error).message}`,
      { where: file, hint: 'give an onnxruntime profile (enableProfiling) or hxc-telemetry/v1 JSON' },
    );
  }
  const samples = new Map<string, Map<string, number[]>>();
  const add = (kind: string, node: string, seconds: number): void => {
    let m = samples.get(kind);
    if (!m) samples.set(kind, (m = new Map()));
    let l = m.get(node);
    if (!l) m.set(node, (l = []));
    l.push(seconds);
  };
  let source: Measurements['source'];
  const groups: Measurements['groups'] = [];
  const bad = (at: string, what: string): never => {
    throw new HxcError('HXC2502', `${at}: ${what}`, {
      where: file,
      hint: 'give an onnxruntime profile (enableProfiling) or the telemetry `hxc run` writes, unedited',
    });
  };
  /** A duration: finite, non-negative, under a day (a measured kernel or program). */
  const seconds = (v: unknown, at: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 86_400) bad(at, `expected a duration from 0 to 86400 s, found ${JSON.stringify(v)}`);
    return v as number;
  };
  if (Array.isArray(doc)) {
    source = 'onnxruntime-profile';
    (doc as unknown[]).forEach((raw, i) => {
      const e = raw as Record<string, unknown> | null;
      // onnxruntime writes one "Node" event per kernel run: name "<node>_kernel_time", dur in µs.
      if (!e || typeof e !== 'object' || e.cat !== 'Node' || typeof e.name !== 'string' || !e.name.endsWith('_kernel_time')) return;
      const dur = seconds(typeof e.dur === 'number' ? e.dur * 1e-6 : e.dur, `[${i}].dur`);
      const args = (e.args ?? {}) as Record<string, unknown>;
      const kind = PROVIDER_KIND[String(args.provider ?? 'CPUExecutionProvider')] ?? 'cpu';
      add(kind, e.name.slice(0, -'_kernel_time'.length), dur);
    });
  } else if (doc && typeof doc === 'object' && (doc as Record<string, unknown>).format === 'hxc-telemetry/v1') {
    source = 'hxc-telemetry';
    // hxc run times whole programs: one group per (kind, program), its median over requests.
    const steps = (doc as { steps?: unknown }).steps ?? [];
    if (!Array.isArray(steps)) bad('$.steps', `expected an array of steps, found ${JSON.stringify(steps)}`);
    // A program's time depends on the shapes it ran at: the samples are those of the requests run
    // at the first request's dims (the plan's: a prefill, not the decode steps after it).
    const requests = (doc as { requests?: unknown }).requests;
    const same = new Set<unknown>();
    if (Array.isArray(requests) && requests.length > 0) {
      const dimsOf = (r: unknown): string =>
        JSON.stringify(Object.entries(((r as { dims?: unknown })?.dims ?? {}) as object).sort(([a], [b]) => (a < b ? -1 : 1)));
      const first = dimsOf(requests[0]);
      const given = (requests[0] as { dims?: unknown })?.dims;
      if (given && typeof given === 'object' && !Array.isArray(given))
        measuredAt = Object.fromEntries(Object.entries(given).filter((e): e is [string, number] => typeof e[1] === 'number'));
      for (const r of requests) if (dimsOf(r) === first) same.add((r as { request?: unknown }).request);
      // The first request at those dims runs every session cold (2–3× the later ones, measured on
      // GPT-2): a warm-up, left out when later requests ran at the same dims.
      if (same.size >= 2) same.delete((requests[0] as { request?: unknown }).request);
      else cold = true;
    }
    const byGroup = new Map<string, { kind: string; nodes: string[]; samples: number[] }>();
    for (const [i, raw] of (steps as unknown[]).entries()) {
      const at = `$.steps[${i}]`;
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) bad(at, `expected a step object, found ${JSON.stringify(raw)}`);
      const step = raw as { device_kind?: unknown; nodes?: unknown; start_s?: unknown; end_s?: unknown; request?: unknown };
      if (same.size > 0 && !same.has(step.request)) continue;
      if (step.nodes !== undefined && (!Array.isArray(step.nodes) || step.nodes.some((n) => typeof n !== 'string')))
        bad(`${at}.nodes`, `expected node names, found ${JSON.stringify(step.nodes)}`);
      if (step.device_kind !== undefined && step.device_kind !== null && typeof step.device_kind !== 'string')
        bad(`${at}.device_kind`, `expected a device kind, found ${JSON.stringify(step.device_kind)}`);
      const nodes = (step.nodes ?? []) as string[];
      if (nodes.length === 0) continue;
      const start = seconds(step.start_s, `${at}.start_s`);
      const end = seconds(step.end_s, `${at}.end_s`);
      if (end < start) bad(`${at}.end_s`, `ends (${end} s) before it starts (${start} s)`);
      const kind = (step.device_kind as string | null | undefined) ?? 'cpu';
      const key = `${kind}|${nodes.join('\u0000')}`;
      const g = byGroup.get(key) ?? { kind, nodes, samples: [] };
      g.samples.push(end - start);
      byGroup.set(key, g);
    }
    for (const g of byGroup.values()) groups.push({ kind: g.kind, nodes: g.nodes, seconds: median(g.samples) });
  } else {
    throw new HxcError('HXC2502', 'calibration file is neither an onnxruntime profile (a JSON array of trace events) nor hxc-telemetry/v1', {
      where: file,
      hint: "produce one with onnxruntime's enableProfiling session option or `hxc run`",
    });
  }
  const by_kind = new Map<string, Map<string, number>>();
  for (const [kind, m] of samples) {
    const med = new Map<string, number>();
    for (const [node, xs] of m) med.set(node, median(xs));
    by_kind.set(kind, med);
  }
  if ([...by_kind.values()].every((m) => m.size === 0) && groups.length === 0) {
    throw new HxcError('HXC2502', 'calibration file has no node timings', { where: file, hint: 'profile a run of the model with enableProfiling: true' });
  }
  return { source, by_kind, groups, dims: measuredAt, cold };
}

export interface CalibrationItem {
  name: string;
  flops: number;
  dtype: string;
  op_class: OpClass;
  tiles?: number;
  k_splits?: number;
}

export interface FittedFactor {
  kind: string;
  op_class: OpClass;
  factor: number;
  nodes: number;
  measured_s: number;
  estimated_s: number;
}

export interface CalibrationReport {
  source: Measurements['source'];
  matched_nodes: number;
  unmatched_names: number;
  /** The first few unmatched names (sorted), and the measured seconds matched and not. */
  unmatched_examples: string[];
  matched_s: number;
  unmatched_s: number;
  factors: FittedFactor[];
  efficiency: EfficiencyTable;
}

/** Fit factors for each measured kind against a representative device of that kind. */
export function fitEfficiency(m: Measurements, items: CalibrationItem[], deviceOfKind: (kind: string) => Device | undefined): CalibrationReport {
  const byName = new Map(items.map((it) => [it.name, it]));
  const factors: FittedFactor[] = [];
  const efficiency: EfficiencyTable = {};
  let matched = 0;
  let unmatched = 0;
  let matched_s = 0;
  let unmatched_s = 0;
  const unmatchedNames = new Set<string>();
  for (const [kind, times] of [...m.by_kind.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const device = deviceOfKind(kind);
    const sums = new Map<OpClass, { ideal: number; measured: number; n: number }>();
    for (const [name, seconds] of times) {
      const it = byName.get(name);
      if (!it) {
        unmatched++;
        unmatched_s += seconds;
        unmatchedNames.add(name);
        continue;
      }
      matched++;
      matched_s += seconds;
      if (!device || it.flops <= 0) continue;
      const ideal = computeSeconds(it, device);
      const s = sums.get(it.op_class) ?? { ideal: 0, measured: 0, n: 0 };
      s.ideal += ideal;
      s.measured += seconds;
      s.n++;
      sums.set(it.op_class, s);
    }
    for (const [cls, s] of [...sums.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      if (s.measured <= 0) continue;
      const factor = s.ideal / s.measured;
      factors.push({ kind, op_class: cls, factor, nodes: s.n, measured_s: s.measured, estimated_s: s.ideal });
      (efficiency[kind] ??= {})[cls] = factor;
    }
  }
  const unmatched_examples = [...unmatchedNames].sort().slice(0, 3);
  return { source: m.source, matched_nodes: matched, unmatched_names: unmatched, unmatched_examples, matched_s, unmatched_s, factors, efficiency };
}
