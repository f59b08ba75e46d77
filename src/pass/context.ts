// The concrete PassContext: holds options, diagnostics, the model once imported, the topology
// (loaded lazily, default rack when none is given) and the analyses by pass name.

import { readOption, type OptionSpec, type OptionValue } from './options.js';
import { Diagnostics, HxcError } from '../diag/diagnostics.js';
import type { Model } from '../ir/graph.js';
import { defaultTopology, loadTopology, RouteTable, type Topology } from '../topology/index.js';
import type { Pass, PassContext, PlanOptions } from './pass.js';
import type { Considered } from '../partition/narrow.js';
import { cutTopology } from '../topology/cut.js';

export class Context implements PassContext {
  readonly analyses = new Map<string, unknown>();
  private modelValue: Model | null = null;
  private topologyValue: Topology | null = null;
  private routesValue: RouteTable | null = null;

  constructor(
    readonly options: PlanOptions,
    readonly diagnostics = new Diagnostics(),
  ) {}

  get model(): Model {
    if (!this.modelValue) throw new Error('internal: the model is read before the import pass ran');
    return this.modelValue;
  }

  set model(m: Model) {
    this.modelValue = m;
  }

  topology(): Topology {
    if (!this.topologyValue) {
      const rack = this.options.topology_path ? loadTopology(this.options.topology_path) : defaultTopology();
      const pool = this.options.pool;
      if (pool) {
        const cut = cutTopology(rack, new Set(pool));
        if (!cut) throw new HxcError('HXC2002', `the devices ${pool.join(', ')} are not connected among themselves`, { where: rack.source.file ?? 'the rack' });
        this.topologyValue = cut;
      } else this.topologyValue = rack;
    }
    return this.topologyValue;
  }

  routes(): RouteTable {
    if (!this.routesValue) this.routesValue = new RouteTable(this.topology());
    return this.routesValue;
  }

  /** Set once by src/partition/narrow.ts: null when the whole rack is planned on. */
  considered?: Considered | null;

  /** From here on, passes plan on these devices of the rack (src/partition/narrow.ts). */
  narrow(t: Topology, considered: Considered): void {
    this.topologyValue = t;
    this.routesValue = null;
    this.considered = considered;
  }

  progressTo?: ((detail: string) => void) | undefined;

  progress(detail: string): void {
    this.progressTo?.(detail);
  }

  option<T extends OptionValue>(spec: OptionSpec<T>): T | undefined {
    return readOption(this.options.flags, spec);
  }

  get<T>(pass: Pass<T, any>): T {
    const name = pass.name;
    if (!this.analyses.has(name))
      throw new HxcError('HXC2402', `the analysis of pass "${name}" is needed but that pass has not run`, { hint: `add ${name} to --passes` });
    return this.analyses.get(name) as T;
  }

  has(pass: Pass<any, any>): boolean {
    return this.analyses.has(pass.name);
  }

  /** Whether the pass of this name has stored its analysis (the manager's own bookkeeping). */
  ran(name: string): boolean {
    return this.analyses.has(name);
  }

  store(pass: string, result: unknown): void {
    this.analyses.set(pass, result);
  }

  /**
   * A context planning on from this one with other options: the same model, topology (as narrowed)
   * and routes, and the analyses of the passes named, shared, not copied (src/cli/run-passes.ts
   * plans a kept variant's partition again from its analyses). Its diagnostics are its own.
   */
  fork(options: PlanOptions, keep: readonly string[]): Context {
    const ctx = new Context(options);
    ctx.modelValue = this.modelValue;
    ctx.topologyValue = this.topologyValue;
    ctx.routesValue = this.routesValue;
    if (this.considered !== undefined) ctx.considered = this.considered;
    for (const name of keep) if (this.analyses.has(name)) ctx.analyses.set(name, this.analyses.get(name));
    return ctx;
  }

  /** Drop every analysis but those named (a transform rewrote the graph they describe); the names dropped. */
  invalidate(keep: ReadonlySet<string>): string[] {
    const dropped = [...this.analyses.keys()].filter((name) => !keep.has(name));
    for (const name of dropped) this.analyses.delete(name);
    return dropped;
  }
}
