// `hxc-assignment/v1` (schema: src/schema/hxc-assignment.v1.schema.json): a user's placement,
// `{format, assignment: {node name: device id}}` — the same map as plan.json's `assignment`, so a
// plan can be edited and planned again. A partial map pins the nodes it names; hxc places the rest.
// A plan.json (`hxc-plan/v1`) is read as its `assignment`: `--assign old-plan/plan.json` plans again
// on the placement a plan shipped, as the help says it may.

import { HxcError } from '../diag/diagnostics.js';
import { PLAN_FORMAT } from './format.js';
import { readBounded } from '../util/read-file.js';

export const ASSIGNMENT_FORMAT = 'hxc-assignment/v1';

/** Largest assignment file read (a 275k-node model's map is ~20 MB). */
const MAX_BYTES = 256 << 20;

/**
 * Per node index, the device index it is pinned to (-1: free). Every name must be a node of the
 * model and every device a device of the rack; anything else is exit 2 naming the entry.
 */
export function readAssignment(
  file: string,
  nodeIndex: ReadonlyMap<string, number>,
  nodes: number,
  deviceIds: readonly string[],
  /** Told the names a plan.json assigns that this graph lacks (its tensor-parallel parts, its expert replicas); an assignment file's are refused. */
  absent?: (names: string[]) => void,
): { pins: Int32Array; start_s: Float64Array | null; step: { lane: Int32Array; position: Int32Array } | null } {
  let text: string;
  try {
    text = readBounded(file, MAX_BYTES, 'the assignment file').toString('utf8');
  } catch (err) {
    if (err instanceof HxcError) throw err;
    throw new HxcError('HXC2001', `cannot read the assignment file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      where: file,
      hint: 'give a path to an hxc-assignment/v1 JSON file',
    });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new HxcError('HXC2201', `not JSON: ${(err as Error).message}`, {
      where: file,
      hint: 'write {"format": "hxc-assignment/v1", "assignment": {"node": "device"}}',
    });
  }
  const bad = (where: string, msg: string, hint: string): never => {
    throw new HxcError('HXC2503', msg, { where: `${file}: ${where}`, hint });
  };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    return bad('$', 'the file is not a JSON object', `write {"format": "${ASSIGNMENT_FORMAT}", "assignment": {...}}`);
  const o = doc as Record<string, unknown>;
  if (o.format !== ASSIGNMENT_FORMAT && o.format !== PLAN_FORMAT)
    return bad(
      '$.format',
      `format is ${JSON.stringify(o.format)}, expected "${ASSIGNMENT_FORMAT}" (or a plan.json, "${PLAN_FORMAT}")`,
      `set "format": "${ASSIGNMENT_FORMAT}"`,
    );
  const a = o.assignment;
  if (typeof a !== 'object' || a === null || Array.isArray(a))
    return bad('$.assignment', 'assignment must be an object of node name → device id', 'e.g. {"/model/layers.0/MatMul": "gpu0"}');
  const devices = new Map(deviceIds.map((id, i) => [id, i]));
  const pins = new Int32Array(nodes).fill(-1);
  // A plan's assignment names the nodes of the graph it shipped: a tensor-parallel variant's split
  // parts, replicated experts. Planning again, another variant's graph lacks them: they are left free.
  const fromPlan = o.format === PLAN_FORMAT;
  const missing: string[] = [];
  for (const [name, dev] of Object.entries(a as Record<string, unknown>)) {
    const where = `$.assignment[${JSON.stringify(name)}]`;
    const i = nodeIndex.get(name);
    if (i === undefined && fromPlan) {
      missing.push(name);
      continue;
    }
    if (i === undefined) bad(where, `the model has no node "${name}"`, 'use node names as plan.json `assignment` lists them');
    if (typeof dev !== 'string') bad(where, `device must be a string, got ${JSON.stringify(dev)}`, `one of ${deviceIds.join(', ')}`);
    const d = devices.get(dev as string);
    if (d === undefined) bad(where, `the rack has no device "${String(dev)}"`, `one of ${deviceIds.join(', ')}`);
    pins[i!] = d!;
  }
  if (missing.length > 0) absent?.(missing);
  // A plan.json also says in what order it ran its nodes: each node's compute step start (NaN for
  // a node it does not run), and which device's list (lane, by the plan's device order) holds that
  // step at which position, so the plan it describes can be planned again as it was.
  let start_s: Float64Array | null = null;
  let step: { lane: Int32Array; position: Int32Array } | null = null;
  if (fromPlan && Array.isArray(o.devices)) {
    start_s = new Float64Array(nodes).fill(Number.NaN);
    step = { lane: new Int32Array(nodes).fill(-1), position: new Int32Array(nodes).fill(-1) };
    (o.devices as { steps?: { op?: unknown; nodes?: unknown; start_s?: unknown }[] }[]).forEach((d, lane) => {
      (Array.isArray(d?.steps) ? d.steps : []).forEach((st, position) => {
        if (st?.op !== 'compute' || !Array.isArray(st.nodes) || typeof st.start_s !== 'number' || !Number.isFinite(st.start_s)) return;
        for (const name of st.nodes) {
          const i = typeof name === 'string' ? nodeIndex.get(name) : undefined;
          if (i === undefined) continue;
          start_s![i] = st.start_s;
          step!.lane[i] = lane;
          step!.position[i] = position;
        }
      });
    });
  }
  return { pins, start_s, step };
}
