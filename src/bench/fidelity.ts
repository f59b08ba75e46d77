// The fidelity table (issue 17): hxc's estimate beside each published measurement in
// fixtures/measured/llm_measured.json. Each row is reproduced as a user would: a graph-only model
// of the row's shape and precision (src/bench/llm.ts), a rack of the row's GPUs on their links,
// `--tensor-parallel` at the row's parallelism, and the row's batch and lengths; the row's metric
// is read from plan.json's estimate:
//   first-token latency = the prefill plan's latency (batch B, prompt L, empty cache);
//   time per output token = the decode plan's latency at the middle of the generation (past
//     L + O/2: attention's cost is linear in the past length, so the middle step is the mean step);
//   end-to-end latency = first-token latency + (O − 1) decode steps;
//   batch-1 output throughput = 1 / time per output token.
// A row is scored when hxc can know what was run: its precision, parallelism, batch and lengths
// are stated and its model has a shape here. The others are printed unscored, with the reason.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PlanV1 } from '../plan/format.js';
import { runPipeline } from '../cli/run-passes.js';
import { LLM_SHAPES, llmOnnx, type LlmDtype } from './llm.js';

export interface MeasuredRow {
  id: number;
  model: string;
  gpu_norm: string;
  gpu_count: number;
  precision: string;
  batch_size: number | string;
  input_len: number | null;
  output_len: number | null;
  tp: number | null;
  pp: number | null;
  metric: string;
  value: number;
  unit: string;
  regime: string;
  stack: string;
}

/** How hxc reproduces a GPU of the table: its catalog model and the link between its GPUs. */
interface Gpu {
  model: string;
  /** GPU-to-GPU link: NVLink through an NVSwitch, or PCIe through the host. */
  link: { kind: 'nvlink' | 'pcie'; bandwidth: string; latency: string };
}

// Per-direction bandwidths: NVLink 4 (H100/H200 SXM) 900 GB/s total = 450 GB/s each way; NVLink 3
// (A100 SXM4) 600 GB/s total = 300 each way (NVIDIA datasheets); L40S and A100 PCIe have no
// NVLink in the measured systems: PCIe Gen4 x16, 32 GB/s each way (PCI-SIG).
const NVLINK4 = { kind: 'nvlink', bandwidth: '450GB/s', latency: '2us' } as const;
const NVLINK3 = { kind: 'nvlink', bandwidth: '300GB/s', latency: '2us' } as const;
const PCIE4 = { kind: 'pcie', bandwidth: '32GB/s', latency: '2us' } as const;
const GPUS: Record<string, Gpu> = {
  'H100-SXM-80GB': { model: 'h100-sxm', link: NVLINK4 },
  // vLLM's CI and NIM say "H100 80GB" on 8-GPU nodes: the SXM part (the PCIe card has no 8-way NVLink).
  'H100-80GB (form factor not stated)': { model: 'h100-sxm', link: NVLINK4 },
  'H200-SXM-141GB': { model: 'h200', link: NVLINK4 },
  'A100-SXM4-80GB': { model: 'a100-sxm', link: NVLINK3 },
  'A100-80GB (form factor not stated)': { model: 'a100-sxm', link: NVLINK3 },
  'A100-PCIE-80GB': { model: 'a100-pcie', link: PCIE4 },
  'A100-SXM4-40GB': { model: 'a100-sxm-40gb', link: NVLINK3 },
  'L40S-48GB': { model: 'l40s', link: PCIE4 },
  'A10G-24GB': { model: 'a10g', link: PCIE4 },
};

/** The table's model names → a shape of LLM_SHAPES. */
function shapeName(model: string): string | undefined {
  if (LLM_SHAPES[model]) return model;
  if (/^Llama-3(\.1)?-8B/.test(model)) return 'Llama-3-8B';
  if (/^Llama-3(\.[13])?-70B/.test(model)) return 'Llama-3-70B';
  return undefined;
}

function dtypeOf(precision: string): LlmDtype | undefined {
  if (precision.startsWith('fp8')) return 'fp8';
  if (precision.startsWith('fp16')) return 'float16';
  if (precision.startsWith('bf16')) return 'bfloat16';
  return undefined;
}

type Metric = 'ttft' | 'tpot' | 'e2e' | 'tokens_per_s';

function metricOf(r: MeasuredRow): Metric | undefined {
  if (r.metric.startsWith('first_token_latency')) return 'ttft';
  if (/^(inter_token_latency|time_per_output_token|per_output_token_latency)/.test(r.metric)) return 'tpot';
  if (r.metric.startsWith('end_to_end_latency')) return 'e2e';
  if (r.metric.startsWith('output_throughput') && batchOf(r) === 1) return 'tokens_per_s';
  return undefined;
}

/** A fixed batch, or client concurrency 1 (one request in flight is batch 1). */
function batchOf(r: MeasuredRow): number | undefined {
  if (typeof r.batch_size === 'number') return r.batch_size;
  return r.batch_size === 'concurrency 1' ? 1 : undefined;
}

export interface FidelityRow {
  row: MeasuredRow;
  /** Why the row is not scored ('' when it is). */
  unscored: string;
  /** hxc's estimate in the row's unit, or null when it could not be made. */
  estimate: number | null;
  /** estimate / measured. */
  ratio: number | null;
  /** What hxc planned: model, dtype, GPUs, TP, batch, lengths. */
  setup: string;
}

/** Why hxc cannot reproduce the row, or '' when it can. */
function unscoredReason(r: MeasuredRow): string {
  if (!shapeName(r.model)) return 'no shape for this model';
  if (!GPUS[r.gpu_norm]) return 'GPU not in the catalog';
  if (!metricOf(r)) return `metric not reproducible at this load (${r.regime})`;
  if (batchOf(r) === undefined) return 'batch not stated';
  if (r.tp === null) return 'parallelism not stated';
  if (r.input_len === null || (metricOf(r) === 'e2e' && r.output_len === null)) return 'lengths not stated';
  if ((r.pp ?? 1) !== 1) return 'pipeline parallelism';
  if (!dtypeOf(r.precision)) return 'precision not stated';
  return '';
}

/** Rack YAML: a host CPU and `n` GPUs of one model, on NVLink (switched) or PCIe. */
function rackYaml(gpu: Gpu, n: number): string {
  const ids = Array.from({ length: n }, (_, i) => `gpu${i}`);
  const lines = [
    'format: hxc-topology/v1',
    `name: ${gpu.model}x${n}`,
    'devices:',
    '  - id: cpu0',
    '    kind: cpu',
    '    model: xeon-8480',
    ...ids.flatMap((id) => [`  - id: ${id}`, '    kind: gpu', `    model: ${gpu.model}`]),
    'links:',
    '  - name: host',
    '    kind: pcie',
    `    connects: [cpu0, ${ids.join(', ')}]`,
    '    bandwidth: 32GB/s',
    '    latency: 2us',
    '    shared: true',
  ];
  if (n > 1)
    lines.push(
      '  - name: gpus',
      `    kind: ${gpu.link.kind}`,
      `    connects: [${ids.join(', ')}]`,
      `    bandwidth: ${gpu.link.bandwidth}`,
      `    latency: ${gpu.link.latency}`,
      ...(gpu.link.kind === 'pcie' ? ['    shared: true'] : []),
    );
  return lines.join('\n') + '\n';
}

/**
 * The table for the latency rows of `file` (hxc-measured/v1). `select`: row ids, 'scored' (the
 * scored rows only), or a text the row's "id model GPU" contains ('' = every row).
 */
export async function fidelityTable(file: string, select: number[] | string = '', log: (line: string) => void = () => {}): Promise<FidelityRow[]> {
  const chosen = (r: MeasuredRow): boolean =>
    Array.isArray(select) ? select.includes(r.id) : select === 'scored' ? unscoredReason(r) === '' : `${r.id} ${r.model} ${r.gpu_norm}`.includes(select);
  const rows = (JSON.parse(fs.readFileSync(file, 'utf8')) as { rows: MeasuredRow[] }).rows.filter((r) => /latency/.test(r.regime) && chosen(r));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hxc-fidelity-'));
  const models = new Map<string, string>();
  const plans = new Map<string, number | null>();
  try {
    const modelFile = (shape: string, dtype: LlmDtype): string => {
      const key = `${shape}-${dtype}`;
      let f = models.get(key);
      if (!f) {
        f = path.join(dir, `${key}.onnx`);
        fs.writeFileSync(f, llmOnnx(LLM_SHAPES[shape]!, dtype));
        models.set(key, f);
      }
      return f;
    };
    /** One plan's latency in seconds (cached: rows share plans). */
    const latency = async (
      shape: string,
      dtype: LlmDtype,
      gpu: Gpu,
      n: number,
      tp: number,
      batch: number,
      seq: number,
      past: number,
    ): Promise<number | null> => {
      const key = JSON.stringify([shape, dtype, gpu.model, n, tp, batch, seq, past]);
      if (plans.has(key)) return plans.get(key)!;
      const rack = path.join(dir, `${gpu.model}x${n}.yaml`);
      if (!fs.existsSync(rack)) fs.writeFileSync(rack, rackYaml(gpu, n));
      const out = path.join(dir, `plan${plans.size}`);
      let value: number | null = null;
      try {
        await runPipeline(
          {
            model_path: modelFile(shape, dtype),
            topology_path: rack,
            dims: { batch_size: batch, sequence_length: seq, past_sequence_length: past },
            flags: { out, objective: 'latency', phase: past > 0 ? 'decode' : 'prefill', 'tensor-parallel': tp > 1 ? String(tp) : 'off' },
          },
          null,
        );
        value = (JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as PlanV1).estimate.latency_s;
      } catch (err) {
        log(`  ${shape} ${dtype} ${gpu.model}×${n} tp${tp} b${batch} s${seq} p${past}: ${(err as Error).message.split('\n')[0]}`);
      }
      fs.rmSync(out, { recursive: true, force: true });
      plans.set(key, value);
      return value;
    };
    const result: FidelityRow[] = [];
    for (const r of rows) {
      const reason = unscoredReason(r);
      const shape = shapeName(r.model);
      const gpu = GPUS[r.gpu_norm];
      const metric = metricOf(r);
      const batch = batchOf(r);
      // Unscored rows still get an estimate when hxc can make one (fp16 where the precision is not stated).
      if (!shape || !gpu || !metric || batch === undefined || r.input_len === null || r.tp === null || (metric === 'e2e' && r.output_len === null)) {
        result.push({ row: r, unscored: reason, estimate: null, ratio: null, setup: '' });
        continue;
      }
      const dtype = dtypeOf(r.precision) ?? 'float16';
      const n = r.gpu_count;
      const L = r.input_len;
      const O = r.output_len ?? 1;
      const ttft = metric === 'ttft' || metric === 'e2e' ? await latency(shape, dtype, gpu, n, r.tp, batch, L, 0) : 0;
      const tpot = metric !== 'ttft' ? await latency(shape, dtype, gpu, n, r.tp, batch, 1, L + Math.floor(O / 2)) : 0;
      let estimate: number | null = null;
      if (ttft !== null && tpot !== null) {
        const s = metric === 'ttft' ? ttft : metric === 'tpot' ? tpot : metric === 'e2e' ? ttft + (O - 1) * tpot : batch / tpot;
        estimate = metric === 'tokens_per_s' ? s : s * 1e3; // the table's latencies are in ms
      }
      const setup = `${shape} ${dtype} ${gpu.model}×${n} tp${r.tp} b${batch} ${L}/${r.output_len ?? '-'}`;
      result.push({ row: r, unscored: reason, estimate, ratio: estimate === null ? null : estimate / r.value, setup });
      log(`  done: #${r.id} ${setup}`);
    }
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Typical error: the geometric mean of max(ratio, 1/ratio) − 1, over the scored rows. */
export function geomeanError(ratios: number[]): number {
  if (ratios.length === 0) return NaN;
  const logs = ratios.map((x) => Math.abs(Math.log(x)));
  return Math.exp(logs.reduce((a, b) => a + b, 0) / logs.length) - 1;
}
