// Every node's costs, column by column (the profile pass's result): a typed array per number, one
// array per string field, and a node's NodeCost object made when a reader asks for one.
//
// Why columns: an object per node held seven heap cells (the object and a box per double field),
// 275k of them per variant of the DeepSeek-V3 shape, alive from the profile pass to the end of
// planning. Every collection walked or copied them: a second copy of them, kept as long, made the
// whole plan 2.9 s (median of three) slower. The two text fields are kept as codes into a short
// table (a few dtypes and op classes), and the explicit and measured seconds, which most graphs
// never have, in arrays made on the first one set: four arrays of a slot per node, filled and then
// walked by every collection to the end of planning, were 8.8 MB of fresh memory a variant.

import type { NodeCost } from './model.js';
import type { OpClass } from './flops.js';

/** A field a node may lack: NaN in its column stands for "absent" (undefined in the node's object). */
const ABSENT = Number.NaN;
export const present = (x: number): number | undefined => (Number.isNaN(x) ? undefined : x);
const column = (x: number | undefined): number => (x === undefined ? ABSENT : x);

/** `fused` per node: absent, true or false. */
const FUSED_ABSENT = 0;
const FUSED_TRUE = 1;
const FUSED_FALSE = 2;

export class NodeCosts {
  readonly length: number;
  readonly flops: Float64Array;
  /** Bytes read plus bytes written. */
  readonly bytes: Float64Array;
  readonly bytes_read: Float64Array;
  readonly bytes_written: Float64Array;
  readonly param_bytes: Float64Array;
  readonly intensity: Float64Array;
  /** By node: the place of its dtype and op class in `dtypes` and `classes` (dtypeAt, opClassAt). */
  private readonly dtypeCode: Uint8Array;
  private readonly classCode: Uint8Array;
  private readonly dtypes: string[] = [''];
  private readonly classes: OpClass[] = ['other'];
  /** Explicit seconds (abstract task graphs) and measured seconds per kind (calibration) by node; null until one is set. */
  private times: (Record<string, number> | undefined)[] | null = null;
  private measured: (Record<string, number> | undefined)[] | null = null;
  /** The fields below: NaN where the node lacks them (NodeCost's optional fields). */
  readonly tiles: Float64Array;
  readonly k_splits: Float64Array;
  readonly activity: Float64Array;
  readonly launch_group: Float64Array;
  readonly fused_bytes: Float64Array;
  private readonly fused: Uint8Array;
  /** The object view() fills. */
  private readonly scratch: NodeCost;

  constructor(n: number) {
    this.length = n;
    this.flops = new Float64Array(n);
    this.bytes = new Float64Array(n);
    this.bytes_read = new Float64Array(n);
    this.bytes_written = new Float64Array(n);
    this.param_bytes = new Float64Array(n);
    this.intensity = new Float64Array(n);
    this.dtypeCode = new Uint8Array(n);
    this.classCode = new Uint8Array(n);
    this.tiles = new Float64Array(n).fill(ABSENT);
    this.k_splits = new Float64Array(n).fill(ABSENT);
    this.activity = new Float64Array(n).fill(ABSENT);
    this.launch_group = new Float64Array(n).fill(ABSENT);
    this.fused_bytes = new Float64Array(n).fill(ABSENT);
    this.fused = new Uint8Array(n);
    this.scratch = NodeCosts.empty();
  }

  /** Columns holding `list`'s costs (tests, and costs a caller changed). */
  static from(list: readonly NodeCost[]): NodeCosts {
    const out = new NodeCosts(list.length);
    list.forEach((c, i) => out.set(i, c));
    return out;
  }

  private static empty(): NodeCost {
    return {
      flops: 0,
      bytes: 0,
      bytes_read: 0,
      bytes_written: 0,
      param_bytes: 0,
      intensity: 0,
      dtype: '',
      op_class: 'other',
      time_s: undefined,
      measured_s: undefined,
      tiles: undefined,
      k_splits: undefined,
      activity: undefined,
      launch_group: undefined,
      fused: undefined,
      fused_bytes: undefined,
    };
  }

  /** Node i's costs set from `c` (its optional fields absent where `c` lacks them). */
  set(i: number, c: NodeCost): void {
    this.flops[i] = c.flops;
    this.bytes[i] = c.bytes;
    this.bytes_read[i] = c.bytes_read;
    this.bytes_written[i] = c.bytes_written;
    this.param_bytes[i] = c.param_bytes;
    this.intensity[i] = c.intensity;
    this.setDtype(i, c.dtype);
    this.setOpClass(i, c.op_class);
    this.setTime(i, c.time_s);
    if (c.measured_s !== undefined || this.measured) (this.measured ??= new Array(this.length).fill(undefined))[i] = c.measured_s;
    this.tiles[i] = column(c.tiles);
    this.k_splits[i] = column(c.k_splits);
    this.activity[i] = column(c.activity);
    this.launch_group[i] = column(c.launch_group);
    this.fused[i] = c.fused === undefined ? FUSED_ABSENT : c.fused ? FUSED_TRUE : FUSED_FALSE;
    this.fused_bytes[i] = column(c.fused_bytes);
  }

  dtypeAt(i: number): string {
    return this.dtypes[this.dtypeCode[i]!]!;
  }

  opClassAt(i: number): OpClass {
    return this.classes[this.classCode[i]!]!;
  }

  setDtype(i: number, dtype: string): void {
    this.dtypeCode[i] = codeIn(this.dtypes, dtype);
  }

  setOpClass(i: number, cls: OpClass): void {
    this.classCode[i] = codeIn(this.classes, cls);
  }

  /** Node i's explicit seconds per device id or kind (abstract task graphs), else undefined. */
  timeAt(i: number): Record<string, number> | undefined {
    return this.times ? this.times[i] : undefined;
  }

  setTime(i: number, t: Record<string, number> | undefined): void {
    if (t !== undefined || this.times) (this.times ??= new Array(this.length).fill(undefined))[i] = t;
  }

  /** Whether any node has explicit seconds. */
  hasTimes(): boolean {
    return this.times?.some((t) => t !== undefined) ?? false;
  }

  /** Node i's measured seconds per kind (calibration), else undefined. */
  measuredAt(i: number): Record<string, number> | undefined {
    return this.measured ? this.measured[i] : undefined;
  }

  /** Node i's measured seconds per kind, made empty if it has none, to set kinds in. */
  measuredFor(i: number): Record<string, number> {
    const measured = (this.measured ??= new Array(this.length).fill(undefined));
    return (measured[i] ??= {});
  }

  /** Node i runs inside its producer's kernel (src/cost/fusion.ts). */
  markFused(i: number): void {
    this.fused[i] = FUSED_TRUE;
  }

  /** Whether node i runs inside its producer's kernel (src/cost/fusion.ts); undefined when not said. */
  fusedAt(i: number): boolean | undefined {
    const f = this.fused[i];
    return f === FUSED_ABSENT ? undefined : f === FUSED_TRUE;
  }

  /** Node i's costs as an object of its own (the fields it lacks undefined). */
  at(i: number): NodeCost {
    return this.fill(NodeCosts.empty(), i);
  }

  /**
   * Node i's costs in one object reused from call to call: valid until the next view(), for a
   * reader that hands it to the cost model at once (computeTime) and keeps nothing of it.
   */
  view(i: number): NodeCost {
    return this.fill(this.scratch, i);
  }

  /** Every node's costs as objects (tests, dumps). */
  toArray(): NodeCost[] {
    return Array.from({ length: this.length }, (_, i) => this.at(i));
  }

  private fill(c: NodeCost, i: number): NodeCost {
    c.flops = this.flops[i]!;
    c.bytes = this.bytes[i]!;
    c.bytes_read = this.bytes_read[i]!;
    c.bytes_written = this.bytes_written[i]!;
    c.param_bytes = this.param_bytes[i]!;
    c.intensity = this.intensity[i]!;
    c.dtype = this.dtypeAt(i);
    c.op_class = this.opClassAt(i);
    c.time_s = this.timeAt(i);
    c.measured_s = this.measuredAt(i);
    c.tiles = present(this.tiles[i]!);
    c.k_splits = present(this.k_splits[i]!);
    c.activity = present(this.activity[i]!);
    c.launch_group = present(this.launch_group[i]!);
    c.fused = this.fusedAt(i);
    c.fused_bytes = present(this.fused_bytes[i]!);
    return c;
  }
}

/** `x`'s place in `table`, added on first sight (a node's code is a byte: a few dtypes and op classes). */
function codeIn<T>(table: T[], x: T): number {
  let k = table.indexOf(x);
  if (k < 0) {
    if (table.length > 255) throw new Error(`internal: more than 256 distinct values in a cost column (${String(x)})`);
    k = table.push(x) - 1;
  }
  return k;
}
