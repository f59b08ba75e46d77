// JSON graph import (`hxc-graph/v1`, schema in src/schema/hxc-graph.v1.schema.json). Every error
// names the JSON path of what is wrong (`nodes[12].inputs[1]: value "h3" is never produced`).
// Unknown fields are accepted, as DESIGN.md asks of every reader.

import { MAX_DIM } from '../ir/graph.js';
import { HxcError } from '../diag/diagnostics.js';
import { byteSizeOf, parseDType } from '../ir/dtype.js';
import {
  newGraph,
  type Attr,
  type Dim,
  type Model,
  type MoeAnnotation,
  type Node,
  type StateAnnotation,
  type TaskCost,
  type TensorType,
  type ValueInfo,
} from '../ir/graph.js';

export const GRAPH_FORMAT = 'hxc-graph/v1';

type Json = unknown;

class Reader {
  constructor(readonly file: string) {}

  fail(at: string, message: string, hint?: string): never {
    throw new HxcError('HXC2202', `${at}: ${message}`, { where: this.file, hint: hint ?? 'see the hxc-graph/v1 schema (src/schema/hxc-graph.v1.schema.json)' });
  }

  object(v: Json, at: string): Record<string, Json> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(at, `expected an object, found ${describe(v)}`);
    return v as Record<string, Json>;
  }

  array(v: Json, at: string): Json[] {
    if (!Array.isArray(v)) this.fail(at, `expected an array, found ${describe(v)}`);
    return v;
  }

  string(v: Json, at: string): string {
    if (typeof v !== 'string') this.fail(at, `expected a string, found ${describe(v)}`);
    return v;
  }

  number(v: Json, at: string, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > max) this.fail(at, `expected a number from 0 to ${max}, found ${describe(v)}`);
    return v;
  }

  strings(v: Json, at: string): string[] {
    return this.array(v, at).map((x, i) => this.string(x, `${at}[${i}]`));
  }
}

function describe(v: Json): string {
  if (v === undefined) return 'nothing (the field is missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`}`;
}

/** A task's time on a device: at most a day (a graph of longer tasks is a unit mistake). */
const MAX_TASK_SECONDS = 86_400;

export function importJsonGraph(file: string, text: string): Omit<Model, 'sha256' | 'file_bytes' | 'path' | 'dir'> {
  let doc: Json;
  try {
    doc = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new HxcError('HXC2201', `invalid JSON: ${msg}`, {
      where: file,
      hint: 'fix the JSON syntax (a linter such as `node -e "JSON.parse(...)"` shows the spot)',
    });
  }
  const r: Reader = new Reader(file);
  const root = r.object(doc, '$');
  if (root.format !== GRAPH_FORMAT) {
    r.fail('format', `expected "${GRAPH_FORMAT}", found ${describe(root.format)}`, `set "format": "${GRAPH_FORMAT}"`);
  }
  const graph = newGraph(typeof root.name === 'string' ? root.name : 'graph');

  const readValue = (v: Json, at: string): ValueInfo => {
    const o = r.object(v, at);
    const name = r.string(o.name, `${at}.name`);
    let type: TensorType | null = null;
    if (o.dtype !== undefined || o.shape !== undefined) {
      const dtypeName = r.string(o.dtype, `${at}.dtype`);
      const dtype = parseDType(dtypeName);
      if (!dtype) r.fail(`${at}.dtype`, `unknown dtype "${dtypeName}"`, 'use an ONNX type name such as float32, float16, bfloat16, int64, bool');
      const shape: Dim[] | null =
        o.shape === undefined || o.shape === null
          ? null
          : r.array(o.shape, `${at}.shape`).map((d, i) => {
              if (typeof d === 'number' && Number.isSafeInteger(d) && d >= 0 && d <= MAX_DIM) return d;
              if (typeof d === 'string' && d.length > 0) return d;
              return r.fail(`${at}.shape[${i}]`, `expected an integer from 0 to ${MAX_DIM} or a symbol name, found ${describe(d)}`);
            });
      type = { dtype, shape };
    }
    const info: ValueInfo = { name, type };
    if (o.bytes !== undefined) info.bytes = r.number(o.bytes, `${at}.bytes`);
    if (!type && info.bytes === undefined) r.fail(at, `value "${name}" needs a dtype with a shape, or bytes`);
    return info;
  };
  const declare = (v: ValueInfo): void => {
    if (v.type) graph.declared.set(v.name, v.type);
    if (v.bytes !== undefined) graph.declared_bytes.set(v.name, v.bytes);
  };

  graph.inputs = r.array(root.inputs, 'inputs').map((v, i) => readValue(v, `inputs[${i}]`));
  graph.outputs = r.array(root.outputs, 'outputs').map((v, i) => readValue(v, `outputs[${i}]`));
  const defined = new Map<string, string>();
  const define = (name: string, at: string): void => {
    const prev = defined.get(name);
    if (prev !== undefined)
      throw new HxcError('HXC2205', `${at}: value "${name}" is already defined at ${prev}`, {
        where: file,
        hint: 'every value has exactly one producer: rename one of them',
      });
    defined.set(name, at);
  };
  graph.inputs.forEach((v, i) => {
    define(v.name, `inputs[${i}]`);
    declare(v);
  });
  if (root.initializers !== undefined) {
    r.array(root.initializers, 'initializers').forEach((x, i) => {
      const v = readValue(x, `initializers[${i}]`);
      define(v.name, `initializers[${i}]`);
      declare(v);
      const dims = v.type?.shape?.map((d) => (typeof d === 'number' ? d : NaN)) ?? [];
      if (v.type && dims.some((d) => Number.isNaN(d))) r.fail(`initializers[${i}].shape`, 'an initializer needs numeric dims');
      const bytes =
        v.bytes ??
        (v.type
          ? byteSizeOf(
              v.type.dtype,
              dims.reduce((a, b) => a * b, 1),
            )
          : 0);
      graph.initializers.set(v.name, {
        name: v.name,
        dtype: v.type?.dtype ?? 'uint8',
        dims: v.type ? dims : [bytes],
        byte_size: bytes,
        location: { kind: 'absent' },
      });
    });
  }
  if (root.values !== undefined) {
    r.array(root.values, 'values').forEach((x, i) => declare(readValue(x, `values[${i}]`)));
  }
  graph.outputs.forEach(declare);

  const nodeNames = new Map<string, number>();
  r.array(root.nodes, 'nodes').forEach((x, i) => {
    const at = `nodes[${i}]`;
    const o = r.object(x, at);
    const name = r.string(o.name, `${at}.name`);
    const prev = nodeNames.get(name);
    if (prev !== undefined)
      throw new HxcError('HXC2205', `${at}.name: node name "${name}" is already used by nodes[${prev}]`, {
        where: file,
        hint: 'give every node a unique name',
      });
    nodeNames.set(name, i);
    const node: Node = {
      name,
      op: r.string(o.op, `${at}.op`),
      domain: o.domain === undefined ? '' : r.string(o.domain, `${at}.domain`),
      inputs: r.strings(o.inputs, `${at}.inputs`),
      outputs: r.strings(o.outputs, `${at}.outputs`),
      attrs: o.attrs === undefined ? {} : readAttrs(r, r.object(o.attrs, `${at}.attrs`), `${at}.attrs`),
      outer_refs: [],
    };
    if (node.domain === 'ai.onnx') node.domain = '';
    node.outputs.forEach((v, k) => {
      if (v) define(v, `${at}.outputs[${k}]`);
    });
    const task: TaskCost = {};
    if (o.time !== undefined) {
      const t = r.object(o.time, `${at}.time`);
      task.time_s = {};
      for (const [k, v] of Object.entries(t)) task.time_s[k] = r.number(v, `${at}.time.${k}`, MAX_TASK_SECONDS);
    }
    if (o.cost !== undefined) {
      const c = r.object(o.cost, `${at}.cost`);
      if (c.flops !== undefined) task.flops = r.number(c.flops, `${at}.cost.flops`, 1e24);
      if (c.bytes !== undefined) task.bytes = r.number(c.bytes, `${at}.cost.bytes`, 1e18);
    }
    if (task.time_s || task.flops !== undefined || task.bytes !== undefined) node.task = task;
    graph.nodes.push(node);
  });
  graph.nodes.forEach((node, i) =>
    node.inputs.forEach((v, k) => {
      if (v && !defined.has(v)) {
        throw new HxcError('HXC2203', `nodes[${i}].inputs[${k}]: value "${v}" is never produced`, {
          where: file,
          hint: 'add it to "inputs" or "initializers", or add the node that produces it',
        });
      }
    }),
  );
  graph.outputs.forEach((v, i) => {
    if (!defined.has(v.name))
      throw new HxcError('HXC2203', `outputs[${i}]: value "${v.name}" is never produced`, { where: file, hint: 'name a value some node produces' });
  });

  return {
    format: GRAPH_FORMAT,
    name: graph.name,
    ir_version: null,
    producer: typeof root.producer === 'string' ? root.producer : '',
    opsets: root.opset === undefined ? { '': 17 } : readOpsets(r, root.opset),
    graph,
    functions: [],
    annotations: readAnnotations(r, root.annotations, nodeNames, defined),
    weights_present: graph.initializers.size === 0,
  };
}

function readOpsets(r: Reader, v: Json): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(r.object(v, 'opset'))) out[k === 'ai.onnx' ? '' : k] = r.number(n, `opset.${k}`);
  return out;
}

/** JSON attribute values: integers → int, other numbers → float, arrays by their elements; or `{type, value}`. */
function readAttrs(r: Reader, o: Record<string, Json>, at: string): Record<string, Attr> {
  const out: Record<string, Attr> = {};
  for (const [k, v] of Object.entries(o)) {
    const here = `${at}.${k}`;
    if (typeof v === 'number') out[k] = Number.isInteger(v) ? { type: 'int', value: v } : { type: 'float', value: v };
    else if (typeof v === 'string') out[k] = { type: 'string', value: v };
    else if (Array.isArray(v)) {
      if (v.every((x) => typeof x === 'number')) {
        out[k] = (v as number[]).every(Number.isInteger) ? { type: 'ints', value: v as number[] } : { type: 'floats', value: v as number[] };
      } else if (v.every((x) => typeof x === 'string')) out[k] = { type: 'strings', value: v as string[] };
      else r.fail(here, 'an attribute list holds only numbers or only strings');
    } else if (typeof v === 'object' && v !== null && typeof (v as Record<string, Json>).type === 'string') {
      const t = (v as Record<string, Json>).type as string;
      const val = (v as Record<string, Json>).value;
      if (t === 'float' && typeof val === 'number') out[k] = { type: 'float', value: val };
      else if (t === 'floats' && Array.isArray(val) && val.every((x) => typeof x === 'number')) out[k] = { type: 'floats', value: val as number[] };
      else if (t === 'int' && typeof val === 'number') out[k] = { type: 'int', value: Math.trunc(val) };
      else r.fail(here, `unsupported attribute form {type: "${t}"}`, 'write ints, floats and strings as plain JSON values');
    } else r.fail(here, `unsupported attribute value ${describe(v)}`);
  }
  return out;
}

function readAnnotations(r: Reader, v: Json, nodeNames: Map<string, number>, values: { has(name: string): boolean }): Model['annotations'] {
  const out: Model['annotations'] = { state: [], moe: [] };
  if (v === undefined) return out;
  const o = r.object(v, 'annotations');
  const checkNode = (n: string, at: string): string => {
    if (!nodeNames.has(n)) r.fail(at, `node "${n}" does not exist`);
    return n;
  };
  if (o.state !== undefined) {
    out.state = r.array(o.state, 'annotations.state').map((s, i): StateAnnotation => {
      const at = `annotations.state[${i}]`;
      const so = r.object(s, at);
      const st: StateAnnotation = {
        name: r.string(so.name, `${at}.name`),
        inputs: r.strings(so.inputs, `${at}.inputs`),
        outputs: r.strings(so.outputs, `${at}.outputs`),
      };
      for (const [field, names] of [
        ['inputs', st.inputs],
        ['outputs', st.outputs],
      ] as const) {
        names.forEach((n, j) => {
          if (!values.has(n)) r.fail(`${at}.${field}[${j}]`, `value "${n}" does not exist in the graph`);
        });
      }
      if (so.kind !== undefined) st.kind = r.string(so.kind, `${at}.kind`);
      return st;
    });
  }
  if (o.moe !== undefined) {
    out.moe = r.array(o.moe, 'annotations.moe').map((m, i): MoeAnnotation => {
      const at = `annotations.moe[${i}]`;
      const mo = r.object(m, at);
      const ann: MoeAnnotation = {
        layer: mo.layer === undefined ? i : r.number(mo.layer, `${at}.layer`),
        experts: r
          .array(mo.experts, `${at}.experts`)
          .map((e, k) => r.strings(e, `${at}.experts[${k}]`).map((n, j) => checkNode(n, `${at}.experts[${k}][${j}]`))),
      };
      if (mo.router !== undefined) ann.router = r.strings(mo.router, `${at}.router`).map((n, j) => checkNode(n, `${at}.router[${j}]`));
      if (mo.top_k !== undefined) ann.top_k = r.number(mo.top_k, `${at}.top_k`);
      // A layer's parts are disjoint: a node is one expert's, or the router's; a token picks at most every expert.
      const owner = new Map<string, string>();
      const claim = (n: string, part: string, where: string): void => {
        const before = owner.get(n);
        if (before !== undefined) r.fail(where, `node "${n}" is in ${before} and in ${part}`, 'give each node to one expert, or to the router');
        owner.set(n, part);
      };
      ann.router?.forEach((n, j) => claim(n, 'the router', `${at}.router[${j}]`));
      ann.experts.forEach((names, k) => names.forEach((n, j) => claim(n, `expert ${k}`, `${at}.experts[${k}][${j}]`)));
      if (ann.top_k !== undefined && !(Number.isInteger(ann.top_k) && ann.top_k >= 1 && ann.top_k <= ann.experts.length))
        r.fail(`${at}.top_k`, `top_k is ${ann.top_k}: each token picks a whole number of experts from 1 to the layer's ${ann.experts.length}`);
      return ann;
    });
  }
  return out;
}
