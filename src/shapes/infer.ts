// Shape and dtype inference over a verified graph: graph inputs (declared types with bound dims
// substituted) and initializers seed the walk, then each node in topological order gets
// its outputs' types from its operator's rule. Small integer tensors are folded alongside so that
// shape arithmetic stays exact and symbolic. An operator without a rule, or a rule that cannot
// decide, falls back to the declared value_info type, else leaves the value's shape unknown.

import { HxcError } from '../diag/diagnostics.js';
import { nodesBySource, sameNodeIn, type GraphIndex, type NameLookup } from '../ir/algorithms.js';
import { byteSizeOf, type DType } from '../ir/dtype.js';
import { declaredEditedFrom, type Attr, type Dim, type Graph, type Node, type Shape, type TensorType } from '../ir/graph.js';
import { MAX_FOLD_ELEMENTS, decodeTensor, mayDecode } from './constant-fold.js';
import { DATA_RULES } from './ops-data.js';
import { ELEMENTWISE_RULES } from './ops-elementwise.js';
import { MS_RULES } from './ops-ms.js';
import { NN_RULES } from './ops-nn.js';
import { TENSOR_RULES } from './ops-tensor.js';
import { InferError, InvalidNode, type OpCall, type Out, type Rule } from './rule.js';
import { canonDim, dimSymbols, parseDim, substituteDim } from './symbolic.js';

const DEFAULT_RULES = new Map<string, Rule>(Object.entries({ ...ELEMENTWISE_RULES, ...TENSOR_RULES, ...DATA_RULES, ...NN_RULES }));
const MICROSOFT_RULES = new Map<string, Rule>(Object.entries(MS_RULES));
/** The op types the shape rules know, ONNX's and com.microsoft's (src/topology/op-names.ts lists them as known). */
export const RULE_OPS: readonly string[] = [...DEFAULT_RULES.keys(), ...MICROSOFT_RULES.keys()];
const MAX_NOTES = 500;

export interface InferOptions {
  /** Domain ('' = ai.onnx) → opset version, as the model declares. */
  opsets: Record<string, number>;
  /** Bound symbols (from the bind pass: `--dim batch=8`, `--phase`). */
  dims: Record<string, number>;
  /** The graph's index (verify): with it, types are also kept by value id (`types_by_id`). */
  index?: GraphIndex;
  /** With the index: given what this inference leaves for another over a graph sharing its nodes (InferMemo). */
  leave?: (memo: InferMemo) => void;
  /** With the index: what an inference over a graph sharing this one's nodes left, read once (InferMemo). */
  reuse?: InferMemo;
}

/**
 * What one inference leaves for another over a graph that shares most of its nodes: the variant
 * without tensor-parallel splits for the one with them (src/cli/run-passes.ts), whose rewrite keeps
 * every node it does not split as the same Node object (src/transform/tensor-parallel.ts). A rule
 * sees only its node, the opset and its inputs' types and folded values (OpCall), so a node that is
 * the same object, reads inputs of the same types and folded elements, and whose rule had no other
 * effect (no note, fresh symbol, error, fallback or disagreement: `plain`) gets the outputs it got
 * there; the rest, the nodes the rewrite made and whatever reads a value they changed, are inferred
 * again. Types are found in the same tree of distinct types, so one type is one object in both and
 * "the same type" is one comparison; folded elements are compared as objects (a value folded again
 * is another array, and what reads it is inferred again).
 */
export interface InferMemo {
  readonly graph: Graph;
  readonly index: GraphIndex;
  readonly opsets: Record<string, number>;
  readonly dims: Record<string, number>;
  /** Types by value id of `index`. */
  readonly typesById: readonly (TensorType | undefined)[];
  readonly values: ReadonlyMap<string, Dim[]>;
  /** By value id: 1 when `values` holds it. */
  readonly folded: Uint8Array;
  /** By node index: 1 when its rule typed every output it names and did nothing else. */
  readonly plain: Uint8Array;
  readonly tree: Map<string, TypeBranch>;
}

export interface Disagreement {
  value: string;
  ours: TensorType;
  declared: TensorType;
}

export interface InferResult {
  /** Every value: graph inputs, initializers, node outputs (in the order added). */
  types: ReadonlyMap<string, TensorType>;
  /** The same by value id (GraphIndex.valueIds), when the index was given. */
  types_by_id?: (TensorType | undefined)[];
  /** Folded elements of small tensors (shape vectors, scalars), row-major. */
  values: Map<string, Dim[]>;
  /** Value names in topological order: graph inputs, initializers, then node outputs. */
  order: string[];
  /** `domain.op` of every operator without a rule, sorted. */
  unknown_ops: string[];
  /** Nodes whose op has no rule. */
  unknown_op_nodes: number;
  /** Values typed from the declared value_info because no rule decided them. */
  declared_fallback: string[];
  /** Values whose shape (rank) stays unknown. */
  unknown_values: string[];
  /** Fresh symbols made for data-dependent or undecidable sizes, sorted. */
  fresh_symbols: string[];
  /** Where our type and a declared value_info type differ (dtype, rank, or two numbers). */
  disagreements: Disagreement[];
  /** Assumptions and fallbacks, `node: message`, in walk order (capped). */
  notes: string[];
  /** Unexpected failures inside a rule (a bug or a malformed node), `node (op): message`. */
  rule_errors: string[];
}

/** Identifier-safe text for symbol names derived from node and value names. */
export function sanitizeName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_.]+/g, '_').replace(/^[_.]+|[_.]+$/g, '');
  return s === '' || /^[0-9]/.test(s) ? `n${s}` : s;
}

export function inferShapes(graph: Graph, order: Int32Array, opts: InferOptions): InferResult {
  return new Inference(graph, opts).run(order);
}

/**
 * Types by value id, read by name through the graph's index: a map the size of the graph (320k
 * values on the DeepSeek-V3 shape) cost more to fill than the rules that compute the types.
 * Iterates in the order values were added, as a Map would.
 */
class TypesById implements ReadonlyMap<string, TensorType> {
  /**
   * Names and types in the order added (the first `count`), and each id's place among them (-1
   * until added). Sized for every id at once: grown by push, the two lists and the walk's value
   * order were copied as they grew into fresh memory each time (320k values: 113 against 37 ms of
   * CPU for the three, medians of 15 in one process).
   */
  private readonly names: string[];
  private readonly added: TensorType[];
  private count = 0;
  private readonly place: Int32Array;
  /** Whether a value was added again: a type by id is then not the one every reader saw (no InferMemo is left). */
  readded = false;

  constructor(
    private readonly ids: NameLookup<number>,
    readonly byId: (TensorType | undefined)[],
  ) {
    this.place = new Int32Array(byId.length).fill(-1);
    this.names = new Array<string>(byId.length);
    this.added = new Array<TensorType>(byId.length);
  }

  /**
   * Sets value `id`'s type. A value added again (a node writing a graph input's name) keeps its
   * place and takes the new type, as Map.set does.
   */
  add(name: string, id: number, t: TensorType): void {
    this.byId[id] = t;
    const at = this.place[id]!;
    if (at >= 0) {
      this.added[at] = t;
      this.readded = true;
      return;
    }
    this.place[id] = this.count;
    this.names[this.count] = name;
    this.added[this.count++] = t;
  }

  /** Drops the room left unused (each id is added once: at most one place each). */
  seal(): void {
    this.names.length = this.count;
    this.added.length = this.count;
  }

  get(name: string): TensorType | undefined {
    const id = this.ids.get(name);
    return id === undefined ? undefined : this.byId[id];
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  get size(): number {
    return this.count;
  }

  forEach(fn: (t: TensorType, name: string, map: ReadonlyMap<string, TensorType>) => void): void {
    for (let k = 0; k < this.count; k++) fn(this.added[k]!, this.names[k]!, this);
  }

  *entries(): MapIterator<[string, TensorType]> {
    for (let k = 0; k < this.count; k++) yield [this.names[k]!, this.added[k]!];
  }

  keys(): MapIterator<string> {
    return this.names[Symbol.iterator]();
  }

  values(): MapIterator<TensorType> {
    return this.added[Symbol.iterator]();
  }

  [Symbol.iterator](): MapIterator<[string, TensorType]> {
    return this.entries();
  }
}

class Inference {
  /** By name (without the index), or by value id through it. */
  readonly types: Map<string, TensorType> | TypesById;
  readonly values = new Map<string, Dim[]>();
  /** The first `ordered` are the values in the order added (sized for every value id up front, as TypesById's lists). */
  readonly valueOrder: string[];
  private ordered = 0;
  readonly usedSymbols = new Set<string>();
  readonly fresh: string[] = [];
  readonly unknownOps = new Set<string>();
  unknownOpNodes = 0;
  readonly declaredFallback: string[] = [];
  readonly unknownValues: string[] = [];
  readonly disagreements: Disagreement[] = [];
  readonly notes: string[] = [];
  readonly ruleErrors: string[] = [];
  /** One call object, re-pointed at each node: rules use it only while they run. */
  private readonly call = new Call(this);
  /** Types by value id, when the index is given (filled as values are added, no lookup by name per value). */
  readonly byId: (TensorType | undefined)[] | null;
  /** Notes, fresh symbols, errors, fallbacks and disagreements made so far: a node that made none is plain (InferMemo). */
  private effects = 0;
  /** Leaving or reusing a memo (InferMemo): by value id, 1 when folded; by node index, 1 when plain. */
  private readonly folded: Uint8Array | null;
  private readonly plain: Uint8Array | null;
  /** Reusing: the memo, and its node index by source_index (-1 for none). */
  private readonly memo: InferMemo | null;
  private readonly memoBySource: Int32Array | null;
  /** Reusing: the names whose declared type may differ between the two graphs (null: any may). */
  private readonly declaredEdits: ReadonlySet<string> | null;

  constructor(
    readonly graph: Graph,
    readonly opts: InferOptions,
  ) {
    const index = opts.index;
    this.byId = index ? new Array<TensorType | undefined>(index.valueNames.length).fill(undefined) : null;
    this.valueOrder = new Array<string>(index ? index.valueNames.length : 0);
    this.types = index ? new TypesById(index.valueIds, this.byId!) : new Map<string, TensorType>();
    this.memo = index && opts.reuse && sameRecord(opts.reuse.opsets, opts.opsets) && sameRecord(opts.reuse.dims, opts.dims) ? opts.reuse : null;
    this.folded = index && (opts.leave || this.memo) ? new Uint8Array(index.valueNames.length) : null;
    this.plain = index && opts.leave ? new Uint8Array(graph.nodes.length) : null;
    this.memoBySource = this.memo ? nodesBySource(this.memo.graph) : null;
    this.declaredEdits = this.memo ? declaredEditedFrom(graph.declared, this.memo.graph.declared) : null;
    this.tree = this.memo?.tree ?? new Map<string, TypeBranch>();
  }

  run(order: Int32Array): InferResult {
    const g = this.graph;
    for (const v of g.inputs) {
      if (g.initializers.has(v.name)) continue;
      for (const d of v.type?.shape ?? []) if (typeof d === 'string') for (const s of dimSymbols(d)) this.usedSymbols.add(s);
    }
    for (const v of g.inputs) {
      if (g.initializers.has(v.name) || this.types.has(v.name)) continue;
      const declared = v.type ?? g.declared.get(v.name) ?? null;
      this.addValue(v.name, declared ? this.canonDeclared(v.name, declared) : { dtype: 'float32', shape: null }, this.idOf(v.name));
      if (!declared) this.unknownValues.push(v.name);
    }
    // (Ids as the index interned them, in the map's order; by name without the index.)
    const initializerIds = this.opts.index?.initializerOrder;
    let at = 0;
    for (const t of g.initializers.values()) {
      const id = initializerIds ? initializerIds[at++]! : this.idOf(t.name);
      this.addValue(t.name, { dtype: t.dtype, shape: t.dims.slice() }, id);
      // (The memo's elements of the same tensor object: the very array, so what reads it can be
      // reused. A tensor too big to fold, or held outside the file, has none there either: not
      // looked up, most weights.)
      const value = !mayDecode(t) ? undefined : this.memo?.graph.initializers.get(t.name) === t ? this.memo.values.get(t.name) : decodeTensor(t);
      if (value) this.setValue(t.name, id, value);
    }
    for (let k = 0; k < order.length; k++) this.visit(g.nodes[order[k]!]!, order[k]!);
    this.valueOrder.length = this.ordered;
    if (this.types instanceof TypesById) this.types.seal();
    const byId = this.byId;
    if (this.opts.leave && byId && !(this.types as TypesById).readded)
      this.opts.leave({
        graph: g,
        index: this.opts.index!,
        opsets: this.opts.opsets,
        dims: this.opts.dims,
        typesById: byId,
        values: this.values,
        folded: this.folded!,
        plain: this.plain!,
        tree: this.tree,
      });
    return {
      types: this.types,
      ...(this.byId ? { types_by_id: this.byId } : {}),
      values: this.values,
      order: this.valueOrder,
      unknown_ops: [...this.unknownOps].sort(),
      unknown_op_nodes: this.unknownOpNodes,
      declared_fallback: this.declaredFallback,
      unknown_values: this.unknownValues,
      fresh_symbols: this.fresh.slice().sort(),
      disagreements: this.disagreements,
      notes: this.notes,
      rule_errors: this.ruleErrors,
    };
  }

  /**
   * Each distinct type once: values of one dtype and shape share a TensorType object. On the
   * DeepSeek-V3 shape 323k values have 104k distinct types, and every object alive through
   * planning costs the collector again at each collection (a million held objects: +3 s a plan).
   * Types are never changed after inference, so sharing them is safe. Found by walking a tree of
   * the dtype and then the dims, one small map per level (a number dim by its value, a text dim by
   * its text), not by a key text built and hashed per value: that was most of the walk's own time,
   * and a dim text holding a comma made its key text another shape's.
   */
  private readonly tree: Map<string, TypeBranch>;

  private interned(t: TensorType): TensorType {
    const shape = t.shape;
    let branch = this.tree.get(t.dtype);
    if (branch === undefined) this.tree.set(t.dtype, (branch = new TypeBranch()));
    if (!shape) return (branch.unknown ??= plainType(t));
    for (let k = 0; k < shape.length; k++) branch = branch.next(shape[k]!);
    return (branch.type ??= plainType(t));
  }

  /** Each value is added once: verify guarantees one producer, and inputs skip initializers. `id`: its value id, or -1. */
  private addValue(name: string, given: TensorType, id: number): void {
    const t = this.interned(given);
    this.valueOrder[this.ordered++] = name;
    // (With the index every value added has an id: graph inputs and initializers are interned, and node outputs.)
    if (this.types instanceof TypesById) this.types.add(name, id, t);
    else this.types.set(name, t);
  }

  /** A graph input's or initializer's value id (-1 without the index, or when nothing reads it). */
  private idOf(name: string): number {
    return this.opts.index?.valueIds.get(name) ?? -1;
  }

  /** A declared type with bound dims substituted and unnamed dims ('?') given fresh symbols. */
  private canonDeclared(owner: string, t: TensorType): TensorType {
    if (!t.shape) return { dtype: t.dtype, shape: null };
    const shape = t.shape.map((d, i) => {
      if (typeof d === 'string' && (d === '?' || d.trim() === '')) return this.freshSymbol(`${sanitizeName(owner)}_dim${i}`);
      return substituteDim(canonDim(d), this.opts.dims);
    });
    return { dtype: t.dtype, shape };
  }

  freshSymbol(base: string): string {
    this.effects++;
    let name = base;
    for (let k = 2; this.usedSymbols.has(name); k++) name = `${base}_${k}`;
    this.usedSymbols.add(name);
    this.fresh.push(name);
    return name;
  }

  note(node: Node, message: string): void {
    this.effects++;
    if (this.notes.length < MAX_NOTES) this.notes.push(`${node.name}: ${message}`);
  }

  private ruleFor(node: Node): Rule | undefined {
    if (node.domain === '' || node.domain === 'ai.onnx') return DEFAULT_RULES.get(node.op);
    if (node.domain === 'com.microsoft') return MICROSOFT_RULES.get(node.op) ?? DEFAULT_RULES.get(node.op);
    return undefined;
  }

  private visit(node: Node, i: number): void {
    if (this.memo && this.reused(node, i)) return;
    const effects = this.effects;
    const rule = this.ruleFor(node);
    let outs: (Out | undefined)[] = [];
    if (!rule) {
      this.unknownOps.add(node.domain ? `${node.domain}.${node.op}` : node.op);
      this.unknownOpNodes++;
    } else {
      try {
        outs = rule(this.call.reset(node, i));
      } catch (err) {
        // A rule that trips over a malformed node must not stop the walk: the node falls back
        // like an unknown op, and the error is kept for the analysis (tests require none).
        if (err instanceof InvalidNode)
          throw new HxcError('HXC2107', err.message, { where: `node "${node.name}"`, hint: 'the model breaks the ONNX operator spec here: export it again' });
        if (err instanceof InferError) this.note(node, err.message);
        else {
          this.effects++;
          this.ruleErrors.push(`${node.name} (${node.op}): ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
    // (Output ids line up with node.outputs: an omitted output is -1. Read in place, not through a
    // subarray view per node: 47 MB a run, sampled.)
    const index = this.byId ? this.opts.index! : null;
    const at = index ? index.outputOffsets[i]! : -1;
    for (let k = 0; k < node.outputs.length; k++) {
      const name = node.outputs[k]!;
      if (name) this.assign(node, name, outs[k], index ? index.outputIds[at + k]! : -1);
    }
    if (this.plain && rule && this.effects === effects) this.plain[i] = 1;
  }

  /**
   * Node i as the memo's inference typed it, when it is the same node, plain there, and reads inputs
   * of the same types and folded elements (InferMemo); false, having done nothing, otherwise.
   */
  private reused(node: Node, i: number): boolean {
    const m = this.memo!;
    const p = sameNodeIn(m.graph, this.memoBySource!, node);
    if (p < 0 || m.plain[p] !== 1) return false;
    const index = this.opts.index!;
    const byId = this.byId!;
    const folded = this.folded!;
    // (Counted loops over the CSR arrays: run for every node of the graph.)
    const at = index.inputOffsets[i]!;
    const from = m.index.inputOffsets[p]!;
    for (let k = 0; k < node.inputs.length; k++) {
      const id = index.inputIds[at + k]!;
      if (id < 0) continue; // (omitted in both: the same names)
      const was = m.index.inputIds[from + k]!;
      if (byId[id] !== m.typesById[was]) return false;
      if ((folded[id]! | m.folded[was]!) !== 0 && this.values.get(node.inputs[k]!) !== m.values.get(node.inputs[k]!)) return false;
    }
    const outAt = index.outputOffsets[i]!;
    const outFrom = m.index.outputOffsets[p]!;
    const declared = this.graph.declared;
    const edits = this.declaredEdits;
    for (let k = 0; k < node.outputs.length; k++) {
      const name = node.outputs[k]!;
      if (!name) continue;
      const id = index.outputIds[outAt + k]!;
      const was = m.index.outputIds[outFrom + k]!;
      // (Plain: typed by its rule, a valid shape, found in the tree this inference shares.)
      const t = m.typesById[was]!;
      this.valueOrder[this.ordered++] = name;
      (this.types as TypesById).add(name, id, t);
      if (m.folded[was] === 1) this.setValue(name, id, m.values.get(name)!);
      // The same declaration agreed there; another is compared. (Looked up only for the names a
      // rewrite edited, when the graph's declarations were made from the memo's: editDeclared.)
      if (declared.size > 0 && (edits === null || edits.has(name)) && declared.get(name) !== m.graph.declared.get(name)) this.compareDeclared(name, t, id);
    }
    return true;
  }

  /** Folded elements of value `id` (-1 without the index). */
  private setValue(name: string, id: number, value: Dim[]): void {
    this.values.set(name, value);
    if (this.folded && id >= 0) this.folded[id] = 1;
  }

  private assign(node: Node, name: string, out: Out | undefined, id: number): void {
    if (out?.shape) refuseImpossible(node, name, out);
    if (out?.shape && validShape(out.shape)) {
      const v = out.value;
      // (addValue keeps a type without the elements: the distinct one, or a plain copy.)
      this.addValue(name, out, id);
      if (v && v.length <= MAX_FOLD_ELEMENTS && v.length === numericCount(out.shape)) this.setValue(name, id, v);
      if (this.graph.declared.size > 0) this.compareDeclared(name, out, id);
      return;
    }
    if (out?.shape) this.note(node, `output ${name} got an invalid shape [${out.shape.join(', ')}]`);
    // No shape from a rule (unknown op, unknown input, undecidable): the declared type if any.
    this.effects++;
    const declared = this.graph.declared.get(name);
    if (declared) {
      this.addValue(name, this.canonDeclared(name, declared), id);
      this.declaredFallback.push(name);
      if (!declared.shape) this.unknownValues.push(name);
    } else {
      this.addValue(name, { dtype: out?.dtype ?? this.guessDtype(node, node.outputs.indexOf(name)), shape: null }, id);
      this.unknownValues.push(name);
    }
  }

  /**
   * Without any declaration: a control-flow op's outputs take their subgraph's declared output
   * dtype (If: the then-branch's outputs; Loop: the body's outputs after the condition; Scan: the
   * body's outputs); any other unknown op most often keeps its first input's dtype.
   */
  private guessDtype(node: Node, output = -1): DType {
    if (output >= 0 && node.domain === '') {
      const a = node.op === 'If' ? node.attrs.then_branch : node.op === 'Loop' || node.op === 'Scan' ? node.attrs.body : undefined;
      const offset = node.op === 'Loop' ? 1 : 0;
      const t = a?.type === 'graph' ? a.value.outputs[output + offset]?.type : undefined;
      if (t) return t.dtype;
    }
    for (const i of node.inputs) {
      const t = i ? this.types.get(i) : undefined;
      if (t) return t.dtype;
    }
    return 'float32';
  }

  /** With the index, by value id: 1 when the graph declares a type for it (made on first use). */
  private declaredIds: Uint8Array | null = null;

  /** `id`: the value's id, or -1 without the index. */
  private compareDeclared(name: string, out: Out, id: number): void {
    // A value the graph does not declare is not looked up by name: by id, from one lookup per
    // declared name (the DeepSeek-V3 shape declares 46k of its 320k values; a lookup in that map for
    // each was 0.1-0.17 s of the shapes pass, sampled).
    if (id >= 0) {
      const index = this.opts.index!;
      let ids = this.declaredIds;
      if (ids === null) {
        ids = this.declaredIds = new Uint8Array(index.valueNames.length);
        this.graph.declared.forEach((_, declaredName) => {
          const d = index.valueIds.get(declaredName);
          if (d !== undefined) ids![d] = 1;
        });
      }
      if (ids[id] === 0) return;
    }
    const declared = this.graph.declared.get(name);
    if (!declared) return;
    // Compared in place, each declared dim canonicalised once per distinct text: a declared type
    // copied per value was 0.3 s of a DeepSeek-V3-shaped plan, whose every value is declared.
    const ds = declared.shape;
    const os = out.shape;
    let differs = declared.dtype !== out.dtype;
    if (!differs && ds && os) {
      if (ds.length !== os.length) differs = true;
      else
        for (let k = 0; k < ds.length && !differs; k++) {
          const x = this.quietDim(ds[k]!);
          differs = typeof x === 'number' && typeof os[k] === 'number' && x !== os[k];
        }
    }
    if (differs) {
      this.effects++;
      this.disagreements.push({ value: name, ours: { dtype: out.dtype, shape: out.shape }, declared: this.canonDeclaredQuiet(declared) });
    }
  }

  /** A declared dim as compared: bound dims substituted, '?' kept (no fresh symbols); by its text, once. */
  private readonly quietDims = new Map<string, Dim>();

  private quietDim(d: Dim): Dim {
    if (typeof d === 'number' || d === '?') return d;
    let q = this.quietDims.get(d);
    if (q === undefined) this.quietDims.set(d, (q = substituteDim(canonDim(d), this.opts.dims)));
    return q;
  }

  /** For comparison only: no fresh symbols are made for unnamed dims. */
  private canonDeclaredQuiet(t: TensorType): TensorType {
    return { dtype: t.dtype, shape: t.shape ? t.shape.map((d) => this.quietDim(d)) : null };
  }
}

/** Whether two records hold the same keys and numbers (in any order). */
export function sameRecord(a: Record<string, number>, b: Record<string, number>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) if (!Object.hasOwn(b, k) || a[k] !== b[k]) return false;
  return true;
}

/** A type without any field a rule's Out adds: the one given when it is plain, else a plain copy. */
function plainType(t: TensorType): TensorType {
  return Object.keys(t).length === 2 ? t : { dtype: t.dtype, shape: t.shape };
}

/** One level of Inference's tree of distinct types: the type whose dims end here, and the branches for one more dim. */
export class TypeBranch {
  /** The type of this dtype and these dims. */
  type: TensorType | undefined = undefined;
  /** At the dtype's own branch: its type of unknown shape. */
  unknown: TensorType | undefined = undefined;
  numbers: Map<number, TypeBranch> | undefined = undefined;
  texts: Map<string, TypeBranch> | undefined = undefined;

  next(d: Dim): TypeBranch {
    const map = typeof d === 'number' ? (this.numbers ??= new Map()) : (this.texts ??= new Map());
    let b = (map as Map<Dim, TypeBranch>).get(d);
    if (b === undefined) (map as Map<Dim, TypeBranch>).set(d, (b = new TypeBranch()));
    return b;
  }
}

/** Bytes past which a size is no longer an exact number (2^53), and no device holds it anyway. */
const MAX_EXACT_BYTES = 2 ** 53;

/**
 * A shape a rule computed from known values that is more bytes than a number counts exactly (2^53):
 * no rack holds it, and planning on would report sizes that mean nothing. (A dim below 0 is the
 * rules' to refuse where the spec says so — ConstantOfShape, Expand: here it is an invalid shape,
 * noted, and the declared type taken, as before.)
 */
function refuseImpossible(node: Node, name: string, out: Out): void {
  const shape = out.shape!;
  let elements = 1;
  for (let k = 0; k < shape.length; k++) {
    const d = shape[k]!;
    if (typeof d !== 'number') return;
    elements *= d;
  }
  if (!(elements >= 0)) return;
  if (byteSizeOf(out.dtype, elements) > MAX_EXACT_BYTES)
    throw new HxcError(
      'HXC2107',
      `output "${name}" would be [${shape.join(', ')}] ${out.dtype}, ${byteSizeOf(out.dtype, elements).toExponential(2)} bytes: past 2^53 bytes, more than any rack holds`,
      {
        where: `node "${node.name}"`,
        hint: 'a shape input holds an impossible size: export the model again, or check the --dim values it was computed from',
      },
    );
}

// (Counted loops: the for-ofs here made iterators per call, 60 MB a run, sampled.)
function validShape(shape: Shape | null): boolean {
  if (!shape) return true;
  for (let k = 0; k < shape.length; k++) {
    const d = shape[k]!;
    if (typeof d === 'number' ? !(Number.isInteger(d) && d >= 0) : typeof d !== 'string' || d.length === 0) return false;
  }
  return true;
}

function numericCount(shape: Shape): number {
  let n = 1;
  for (let k = 0; k < shape.length; k++) {
    const d = shape[k]!;
    if (typeof d !== 'number') return -1;
    n *= d;
  }
  return n;
}

/** What one rule sees of one node (see OpCall). */
class Call implements OpCall {
  node!: Node;
  opset = 0;

  constructor(private readonly inf: Inference) {}

  /** With the index: where the node's input ids start in it (they line up with node.inputs). */
  private inputAt = -1;

  reset(node: Node, i: number): this {
    const opsets = this.inf.opts.opsets;
    this.node = node;
    this.inputAt = this.inf.byId ? this.inf.opts.index!.inputOffsets[i]! : -1;
    this.opset = node.domain === '' ? (opsets[''] ?? opsets['ai.onnx'] ?? 0) : (opsets[node.domain] ?? 0);
    return this;
  }

  has(i: number): boolean {
    return i < this.node.inputs.length && this.node.inputs[i] !== '';
  }

  type(i: number): TensorType | undefined {
    if (!this.has(i)) return undefined;
    const byId = this.inf.byId;
    return byId ? byId[this.inf.opts.index!.inputIds[this.inputAt + i]!] : this.inf.types.get(this.node.inputs[i]!);
  }

  dtype(i: number): DType {
    const t = this.type(i);
    if (!t) throw new InferError(`input ${i} is missing or untyped`);
    return t.dtype;
  }

  shape(i: number, minRank = 0): Shape {
    const s = this.type(i)?.shape;
    if (!s) throw new InferError(`input ${i} has an unknown shape`);
    if (s.length < minRank) throw new InferError(`input ${i} has rank ${s.length}, ${this.node.op} needs at least ${minRank}`);
    return s;
  }

  shapeOrNull(i: number): Shape | null {
    return this.type(i)?.shape ?? null;
  }

  value(i: number): Dim[] | undefined {
    return this.has(i) ? this.inf.values.get(this.node.inputs[i]!) : undefined;
  }

  ints(i: number): number[] | undefined {
    const v = this.value(i);
    return v?.every((x) => typeof x === 'number') ? (v as number[]) : undefined;
  }

  private attr(name: string): Attr | undefined {
    return Object.hasOwn(this.node.attrs, name) ? this.node.attrs[name] : undefined;
  }

  attrInt(name: string, fallback: number): number {
    return this.attrIntOpt(name) ?? fallback;
  }

  attrIntOpt(name: string): number | undefined {
    const a = this.attr(name);
    return a && (a.type === 'int' || a.type === 'float') ? a.value : undefined;
  }

  attrInts(name: string): number[] | undefined {
    const a = this.attr(name);
    if (!a) return undefined;
    if (a.type === 'ints' || a.type === 'floats') return a.value;
    if (a.type === 'int') return [a.value];
    return undefined;
  }

  attrFloat(name: string, fallback: number): number {
    const a = this.attr(name);
    return a && (a.type === 'float' || a.type === 'int') ? a.value : fallback;
  }

  attrFloats(name: string): number[] | undefined {
    const a = this.attr(name);
    return a && (a.type === 'floats' || a.type === 'ints') ? a.value : undefined;
  }

  attrString(name: string, fallback: string): string {
    const a = this.attr(name);
    return a && a.type === 'string' ? a.value : fallback;
  }

  fresh(tag: string): string {
    return this.inf.freshSymbol(`${tag}_${sanitizeName(this.node.name)}`);
  }

  note(message: string): void {
    this.inf.note(this.node, message);
  }
}

/**
 * Free symbols (bindable names, floor atoms opened) of every shape, sorted; each distinct dim is
 * parsed once. (forEach and a counted loop: run once, for-ofs over 320k values stayed unoptimised
 * and made two iterator results per value and dim, 120 MB, sampled.)
 */
export function freeSymbols(types: ReadonlyMap<string, TensorType>): string[] {
  const set = new Set<string>();
  const seen = new Set<string>();
  types.forEach((t) => {
    const shape = t.shape;
    if (!shape) return;
    for (let k = 0; k < shape.length; k++) {
      const d = shape[k]!;
      if (typeof d !== 'string' || seen.has(d)) continue;
      seen.add(d);
      for (const s of parseDim(d).freeSymbols()) set.add(s);
    }
  });
  return [...set].sort();
}
