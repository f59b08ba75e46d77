// A small builder for CPLEX-LP-format models and one way to run them through HiGHS (the `highs`
// npm package: HiGHS compiled to WebAssembly, CommonJS). The exact solver and the lower bound both
// write their models here, so naming, number formatting and status handling live in one place.
// Relies on HiGHS's persistent-model API (createModel/setSolution/run/info) to read the MIP dual
// bound and gap, which the one-shot `solve()` does not report.

import { createRequire } from 'node:module';
import type { Highs } from 'highs';

export type Sense = '<=' | '>=' | '=';
/** One term of a linear expression: coefficient times variable name. */
export type Term = readonly [coef: number, name: string];

interface Column {
  name: string;
  lower: number;
  upper: number;
  binary: boolean;
}

interface Row {
  name: string;
  terms: Term[];
  sense: Sense;
  rhs: number;
}

/**
 * A linear (or mixed-binary) minimisation model. Names must be short, start with a letter other
 * than e/E (the LP reader could take `e12` for an exponent) and contain only [A-Za-z0-9_].
 */
export class LpModel {
  private readonly columns: Column[] = [];
  private readonly rows: Row[] = [];
  private readonly known = new Set<string>();
  private objective: Term[] = [];

  get variableCount(): number {
    return this.columns.length;
  }

  get constraintCount(): number {
    return this.rows.length;
  }

  get hasBinaries(): boolean {
    return this.columns.some((c) => c.binary);
  }

  addVar(name: string, lower: number, upper: number, binary = false): string {
    if (!/^[A-DF-Za-df-z][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad LP variable name '${name}'`);
    if (this.known.has(name)) throw new Error(`duplicate LP variable '${name}'`);
    this.known.add(name);
    this.columns.push({ name, lower, upper, binary });
    return name;
  }

  /** Adds `Σ terms sense rhs`; `label` prefixes the row name (rows are numbered, for debugging). */
  addRow(label: string, terms: Term[], sense: Sense, rhs: number): void {
    const kept = terms.filter(([c]) => c !== 0);
    for (const [, v] of kept) if (!this.known.has(v)) throw new Error(`LP row uses unknown variable '${v}'`);
    this.rows.push({ name: `${label}${this.rows.length}`, terms: kept, sense, rhs });
  }

  minimize(terms: Term[]): void {
    this.objective = terms;
  }

  /** The model as CPLEX LP text. Long expressions wrap (the format caps line length). */
  toText(): string {
    const out: string[] = ['Minimize', ` obj: ${expr(this.objective) || '0 ' + this.columns[0]!.name}`, 'Subject To'];
    for (const r of this.rows) {
      // A row with no terms left is either trivially true or infeasible; keep infeasible ones visible.
      const body = r.terms.length > 0 ? expr(r.terms) : `0 ${this.columns[0]!.name}`;
      out.push(` ${r.name}: ${body} ${r.sense} ${num(r.rhs)}`);
    }
    out.push('Bounds');
    for (const c of this.columns) {
      if (c.binary) continue;
      const lo = c.lower === -Infinity ? '-inf' : num(c.lower);
      const hi = c.upper === Infinity ? '+inf' : num(c.upper);
      out.push(` ${lo} <= ${c.name} <= ${hi}`);
    }
    const binaries = this.columns.filter((c) => c.binary).map((c) => c.name);
    if (binaries.length > 0) {
      out.push('Binaries');
      for (let i = 0; i < binaries.length; i += 10) out.push(' ' + binaries.slice(i, i + 10).join(' '));
    }
    out.push('End');
    return out.join('\n') + '\n';
  }
}

/** Twelve significant digits: enough for scaled times, and keeps the text free of float noise. */
function num(x: number): string {
  if (Math.abs(x) < 1e-12) return '0';
  return String(Number(x.toPrecision(12)));
}

function expr(terms: readonly Term[]): string {
  const parts: string[] = [];
  terms.forEach(([c, v], i) => {
    const sign = c < 0 ? '-' : i === 0 ? '' : '+';
    const mag = Math.abs(c) === 1 ? '' : `${num(Math.abs(c))} `;
    parts.push(`${sign ? sign + ' ' : ''}${mag}${v}`);
  });
  const lines: string[] = [];
  for (let i = 0; i < parts.length; i += 8) lines.push(parts.slice(i, i + 8).join(' '));
  return lines.join('\n   ');
}

let highsPromise: Promise<Highs> | null = null;

/** Loads the WebAssembly solver once per process (loading costs ~50 ms; solves are independent). */
export function loadHighs(): Promise<Highs> {
  if (!highsPromise) {
    const loader = createRequire(import.meta.url)('highs') as () => Promise<Highs>;
    highsPromise = loader();
  }
  return highsPromise;
}

export interface LpRun {
  /** 'limit': a work limit (nodes, simplex iterations) or the optional time limit stopped it. */
  status: 'optimal' | 'infeasible' | 'limit' | 'other';
  /** HiGHS's model status text, for notes when status is 'other'. */
  status_code: number;
  /** Variable values by name when HiGHS holds a feasible primal solution, else null. */
  values: Map<string, number> | null;
  objective: number | null;
  /** Best proven bound on the objective (MIP dual bound; for an LP, its optimum). */
  dual_bound: number | null;
  mip_gap: number | null;
  solver_s: number;
}

export interface LpLimits {
  /** Branch-and-bound nodes (work, not seconds: the same answer on any machine). */
  max_nodes?: number;
  /** Simplex iterations over the whole solve (work, not seconds). */
  max_iterations?: number;
  /** Wall-clock seconds: only when the caller accepts an answer that depends on the machine. */
  time_limit_s?: number;
  mip_rel_gap?: number;
}

/**
 * Solves `model` with HiGHS (WebAssembly, one thread: deterministic for the same model text and
 * limits). `start` (values by name, missing names taken as 0) is handed over as a MIP start so a
 * limit never leaves us worse than a known incumbent.
 */
export async function runLp(model: LpModel, options: LpLimits, start?: Map<string, number>): Promise<LpRun> {
  const highs = await loadHighs();
  const m = highs.createModel({ format: 'lp', data: model.toText() });
  try {
    m.options.set({ output_flag: false });
    if (options.time_limit_s !== undefined) m.options.set({ time_limit: Math.max(0.01, options.time_limit_s) });
    if (options.max_nodes !== undefined) m.options.set({ mip_max_nodes: options.max_nodes });
    if (options.max_iterations !== undefined) m.options.set({ simplex_iteration_limit: options.max_iterations });
    if (options.mip_rel_gap !== undefined) m.options.set({ mip_rel_gap: options.mip_rel_gap });
    const n = m.getDimensions().numCols;
    const names: string[] = [];
    for (let i = 0; i < n; i++) names.push(m.getColName(i));
    if (start) m.setSolution({ colValue: Float64Array.from(names, (v) => start.get(v) ?? 0) });
    m.run();
    const code = m.getModelStatus() as number;
    const c = highs.constants.modelStatus;
    const status =
      code === c.optimal
        ? 'optimal'
        : code === c.infeasible || code === c.unboundedOrInfeasible
          ? 'infeasible'
          : code === c.timeLimit || code === c.iterationLimit || code === c.solutionLimit
            ? 'limit'
            : 'other';
    // primal_solution_status 2 = feasible (HiGHS SolutionStatus::kSolutionStatusFeasible).
    const hasPrimal = Number(m.info.get('primal_solution_status')) === 2;
    let values: Map<string, number> | null = null;
    if (hasPrimal) {
      const col = m.getSolution().colValue;
      values = new Map(names.map((v, i) => [v, col[i]!]));
    }
    const info = (key: string): number | null => {
      try {
        const x = Number(m.info.get(key));
        return Number.isFinite(x) ? x : null;
      } catch {
        return null; // LP solves do not carry MIP info items
      }
    };
    const objective = hasPrimal ? m.getObjectiveValue() : null;
    const isMip = model.hasBinaries;
    return {
      status,
      status_code: code,
      values,
      objective,
      dual_bound: isMip ? info('mip_dual_bound') : status === 'optimal' ? objective : null,
      mip_gap: isMip ? info('mip_gap') : status === 'optimal' ? 0 : null,
      solver_s: m.getRunTime(),
    };
  } finally {
    m.dispose();
  }
}
