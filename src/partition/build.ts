// From the analyses to a PlacementProblem: units are the stages, except that a node some device
// cannot run while that device can run the stage's heavy work (a NonZero on a GPU that excludes
// it) is split out as its own unit, so it falls back to a capable device the way onnxruntime's
// execution providers fall back per node, and the stage's work still goes where it runs best.
// A stage whose nodes the user pinned to different devices (`--assign`) is cut where the pin
// changes. Every unit gets a unique name (its id in the plan).

import { computeTime, doesWork, groupedLaunchSeconds } from '../cost/model.js';
import { HxcError } from '../diag/diagnostics.js';
import type { GraphIndex } from '../ir/algorithms.js';
import type { Graph } from '../ir/graph.js';
import type { Device, RouteTable, Topology } from '../topology/index.js';
import { canRun, deviceClassKey } from '../topology/index.js';
import type { NodeCost } from '../cost/model.js';
import { present, type NodeCosts } from '../cost/node-costs.js';
import type { EfficiencyTable } from '../cost/model.js';
import type { PlacementProblem, UnitValue } from './problem.js';
import { tensorBytes, tensorWriter, type StateObject } from '../../passes/state.js';
import { moveMetadataOps, relocatable, splitExperts } from './segments.js';

export interface Unit {
  name: string;
  /** The expert set (BuildInput.experts index) the unit computes, if any. */
  expert?: number;
  /** The expert set whose tokens the unit selects (an expert's dispatch), if any. */
  dispatch?: number;
  /** The stage it comes from. */
  stage: number;
  /** Node indices in execution order. */
  nodes: number[];
  /** Set when the unit is one node split out because some device cannot run it. */
  fallback: { node: number; excluded: string[] } | null;
}

export interface BuildInput {
  graph: Graph;
  index: GraphIndex;
  topology: Topology;
  routes: RouteTable;
  costs: NodeCosts;
  efficiency: EfficiencyTable;
  /** Bytes of each value by value id. */
  value_bytes_by_id: Float64Array;
  /** Stages: node lists in execution order (contiguous in `order`). */
  stages: { name: string; nodes: number[] }[];
  /** State objects: bytes and the nodes that write them. */
  state: Pick<StateObject, 'name' | 'bytes' | 'bytes_per_token' | 'writers' | 'parts'>[];
  /** MoE experts' node sets (each becomes a unit), with names for the plan. */
  experts?: number[][];
  expert_names?: string[];
  /** Per expert set, the devices it may run on (null: anywhere it can). */
  expert_devices?: (readonly string[] | null)[];
  /** Per node, the device index the user pinned it to (`--assign`), or -1: the pins that place something (segments.ts placedPins). */
  pins?: Int32Array;
  /** When replanning: per node, the device it ran on in the running plan (any number per device, gone ones too), else -1. */
  running?: Int32Array;
  /** Per node fused into its producer's kernel, that producer, else -1 (passes/profile.ts fused_producer). */
  fused_producer?: Int32Array;
  /** Per fused node, the bytes fusion saves its read and its producer's write (passes/profile.ts fused_saved). */
  fused_saved?: { read: Float64Array; write: Float64Array };
  /** Where the pins came from, for errors. */
  pins_file?: string;
}

/**
 * The device a unit's nodes are pinned to (--assign), or -1. Runs are cut where the pin changes,
 * and the nodes moved in afterwards (an unpinned Constant before its first reader, a Shape after
 * what it measures) are unpinned, so the unit's pin is its first pinned node's, wherever it sits.
 */
export function unitPin(nodes: readonly number[], pins: Int32Array | undefined): number {
  if (!pins) return -1;
  for (const i of nodes) if (pins[i]! >= 0) return pins[i]!;
  return -1;
}

export interface Built {
  problem: PlacementProblem;
  units: Unit[];
  unit_of: Int32Array;
  /**
   * Per node, the resident bytes it brings to its unit: each weight its unit reads, on the unit's
   * first node reading it, and each state tensor's share on its writer. A unit's weights and state
   * are the sum over its nodes (what a replan moves when only some of a unit's nodes change device).
   */
  node_resident_bytes: Float64Array;
}

const HEAVY = new Set(['matmul', 'conv', 'attention', 'moe']);

export function buildProblem(inp: BuildInput): Built {
  const { graph, index, topology, costs } = inp;
  const devices = topology.devices;
  const nd = devices.length;
  const N = graph.nodes.length;
  // Identical devices (src/topology/device.ts) give every node the same time: price each node once
  // per class, not once per device (64 H100s are one class).
  const abstract = costs.hasTimes();
  const classKey = (d: Device): string => (abstract ? d.id : deviceClassKey(d));
  const classOf = new Int32Array(nd);
  const classes: Device[] = [];
  const keys = new Map<string, number>();
  devices.forEach((d, k) => {
    const key = classKey(d);
    let c = keys.get(key);
    if (c === undefined) {
      c = classes.length;
      keys.set(key, c);
      classes.push(d);
    }
    classOf[k] = c;
  });
  const classDevices = classes.map((_, c) => devices.filter((_, k) => classOf[k] === c).map((d) => d.id));
  // Whether each class runs each node, asked once per node and class: the cuts below ask it up to
  // four times a node (canRun's memo is three Map lookups a time: 0.3 s over both variants of the
  // DeepSeek-V3 shape).
  const runsOn = new Uint8Array(classes.length * N);
  classes.forEach((d, c) => {
    // canRun's answers for the default domain's ops, by op (one lookup a node, not its memo's three).
    const byOp = new Map<string, boolean>();
    for (let i = 0; i < N; i++) {
      const node = graph.nodes[i]!;
      let runs: boolean;
      if (costs.timeAt(i)) runs = Number.isFinite(computeTime(costs.view(i), d));
      else if (node.domain === '') {
        let answer = byOp.get(node.op);
        if (answer === undefined) byOp.set(node.op, (answer = canRun(d, node.op, '')));
        runs = answer;
      } else runs = canRun(d, node.op, node.domain);
      runsOn[c * N + i] = runs ? 1 : 0;
    }
  });
  const runs = (i: number, c: number): boolean => runsOn[c * N + i] === 1;
  const units: Unit[] = [];
  // MoE experts become units of their own (experts of one layer are independent: they can run on
  // different devices at once); each stage is first cut into expert and non-expert segments.
  // (Every segment with both fields, undefined when not an expert's: one shape, no object spread.)
  const segments: { name: string; stage: number; nodes: number[]; expert: number | undefined; dispatch: number | undefined }[] = [];
  const expertOf = new Int32Array(graph.nodes.length).fill(-1);
  (inp.experts ?? []).forEach((set, k) => {
    for (const i of set) expertOf[i] = k;
  });
  inp.stages.forEach((stage, s) => {
    if (!stage.nodes.some((i) => expertOf[i]! >= 0)) {
      segments.push({ name: stage.name, stage: s, nodes: stage.nodes, expert: undefined, dispatch: undefined });
      return;
    }
    const seen = new Map<string, number>();
    for (const seg of splitExperts(index, stage.nodes, expertOf)) {
      const expertName = seg.expert >= 0 ? (inp.expert_names?.[seg.expert] ?? `expert${seg.expert}`) : '';
      const base = seg.expert < 0 ? `${stage.name}/${seg.part}` : seg.dispatch ? `${stage.name}/${expertName}.dispatch` : `${stage.name}/${expertName}`;
      const k = seen.get(base) ?? 0;
      seen.set(base, k + 1);
      segments.push({
        name: k === 0 ? base : `${base}.${k}`,
        stage: s,
        nodes: seg.nodes,
        expert: seg.expert >= 0 && !seg.dispatch ? seg.expert : undefined,
        dispatch: seg.expert >= 0 && seg.dispatch ? seg.expert : undefined,
      });
    }
  });
  // An expert is atomic: when stage cuts fall inside its body (fine stages cut anywhere), its
  // pieces join into one segment, at the place of its last piece — unless something between the
  // pieces depends on an earlier one (its MatMuls split for tensor parallelism: the parts are
  // segments of their own between the expert's pieces, and joining around them would be a cycle).
  // (Only experts in two pieces or more are listed, in the order they first appear: the rest join nothing.)
  const pieceCount = new Int32Array(inp.experts?.length ?? 0);
  for (let k = 0; k < segments.length; k++) {
    const e = segments[k]!.expert;
    if (e !== undefined && e >= 0) pieceCount[e]!++;
  }
  const pieces = new Map<number, number[]>();
  for (let k = 0; k < segments.length; k++) {
    const e = segments[k]!.expert;
    if (e !== undefined && e >= 0 && pieceCount[e]! >= 2) (pieces.get(e) ?? pieces.set(e, []).get(e)!).push(k);
  }
  const between = new Int32Array(graph.nodes.length).fill(-1);
  for (const [expert, list] of pieces) {
    if (list.length < 2) continue;
    const lo = list[0]!;
    const hi = list[list.length - 1]!;
    for (let k = lo + 1; k < hi; k++) if (segments[k]!.expert !== expert) for (const i of segments[k]!.nodes) between[i] = expert;
    const stack = list.slice(0, -1).flatMap((k) => segments[k]!.nodes);
    const reached = new Set<number>();
    let depends = false;
    while (stack.length > 0 && !depends) {
      const i = stack.pop()!;
      for (const id of index.outputsOf(i))
        for (const c of index.consumersOfId(id)) {
          if (between[c] !== expert || reached.has(c)) continue;
          depends = true;
          reached.add(c);
          stack.push(c);
        }
    }
    if (depends) continue;
    const first = segments[list[0]!]!;
    const last = segments[list[list.length - 1]!]!;
    last.nodes = list.flatMap((k) => segments[k]!.nodes);
    last.stage = first.stage;
    last.name = first.name;
    for (const k of list.slice(0, -1)) segments[k]!.nodes = [];
  }
  for (let k = segments.length - 1; k >= 0; k--) if (segments[k]!.nodes.length === 0) segments.splice(k, 1);
  // When replanning, a run is also cut where the device a node ran on in the running plan changes
  // (a Shape ran with what it measures and moves there with it: it cuts nothing), so that each unit
  // ran on one device and the running plan is a placement of these units — its migration, counted
  // node by node (src/partition/migration.ts), then its true one. The stage cut is made afresh
  // (another calibration, measured routing or a newer hxc cut elsewhere); an unchanged plan's units
  // each ran on one device, and are cut as they were.
  // What moveMetadataOps moves afterwards (a Constant to its first reader, a Shape to what it
  // measures) ran there, and is placed by where it goes.
  const ranOn = (i: number): number => (!inp.running || relocatable(graph, index, devices, i) ? -1 : inp.running[i]!);
  segments.forEach((stage) => {
    const s = stage.stage;
    const heavy = stage.nodes.filter((i) => HEAVY.has(costs.opClassAt(i)));
    const core = heavy.length > 0 ? heavy : stage.nodes;
    const heavyClasses = classes.map((_, c) => c).filter((c) => core.every((i) => runs(i, c)));
    let run: number[] = [];
    let runPin = -1;
    let runRan = -1;
    let part = 0;
    const flush = (): void => {
      runRan = -1;
      if (run.length === 0) return;
      const unit: Unit = { name: part === 0 && run.length === stage.nodes.length ? stage.name : `${stage.name}#${part}`, stage: s, nodes: run, fallback: null };
      // (Set, not spread in: the same fields in the same order.)
      if (stage.expert !== undefined && stage.expert >= 0) unit.expert = stage.expert;
      if (stage.dispatch !== undefined) unit.dispatch = stage.dispatch;
      units.push(unit);
      part++;
      run = [];
    };
    for (let k = 0; k < stage.nodes.length; k++) {
      const i = stage.nodes[k]!;
      const pin = inp.pins ? inp.pins[i]! : -1;
      if (pin >= 0 && !runs(i, classOf[pin]!)) {
        const node = graph.nodes[i]!;
        throw new HxcError(
          'HXC2503',
          `node "${node.name}" is assigned to ${devices[pin]!.id}, which cannot run ${node.domain ? `${node.domain}.` : ''}${node.op}`,
          { where: inp.pins_file ?? '--assign', hint: `assign it to a device that runs ${node.op}, or leave it out of the file and hxc places it` },
        );
      }
      // The devices it cannot run on are listed only when there are some (every class has one; a filter
      // and a flatMap for every node were 141 MB of garbage over a DeepSeek-V3 plan), and the loops
      // here are counted (their for-of iterators were 33 MB more).
      let barred = false;
      if (pin < 0 && heavy.length > 0) for (let c = 0; c < heavyClasses.length; c++) if (!runs(i, heavyClasses[c]!)) barred = true;
      if (barred) {
        const excluded = heavyClasses.filter((c) => !runs(i, c)).flatMap((c) => classDevices[c]!);
        flush();
        units.push({ name: `${stage.name}#${part}:${graph.nodes[i]!.name}`, stage: s, nodes: [i], fallback: { node: i, excluded } });
        part++;
      } else {
        const ran = ranOn(i);
        // A node placed by where it goes (segments.ts relocatable: a pin on it places nothing) cuts no run.
        const free = inp.pins !== undefined && pin < 0 && relocatable(graph, index, devices, i);
        if (!free && run.length > 0 && (pin !== runPin || (ran >= 0 && runRan >= 0 && ran !== runRan))) flush();
        if (!free) runPin = pin;
        if (ran >= 0) runRan = ran;
        run.push(i);
      }
    }
    flush();
  });
  // Unique names: a stage name repeats when a block is cut into several stages (gpt2: nine "h.0").
  const seenNames = new Map<string, number>();
  for (const u of units) seenNames.set(u.name, (seenNames.get(u.name) ?? 0) + 1);
  const ordinal = new Map<string, number>();
  for (const u of units) {
    if (seenNames.get(u.name)! < 2) continue;
    const k = ordinal.get(u.name) ?? 0;
    ordinal.set(u.name, k + 1);
    u.name = `${u.name}@${k}`;
  }
  moveMetadataOps(graph, index, devices, units);
  const nu = units.length;
  const unit_of = new Int32Array(graph.nodes.length).fill(-1);
  units.forEach((u, k) => {
    for (const i of u.nodes) unit_of[i] = k;
  });

  // A fused node whose kernel's producer sits in another unit — the stage pass never cuts a chain,
  // but pins, fallbacks, expert segments and split MatMuls can — runs as its own kernel, reading
  // its input from memory, and its producer writes that value out (src/cost/fusion.ts): priced
  // unfused, whatever the placement (in two units even one device may run the two in two programs).
  const fp = inp.fused_producer;
  const saved = inp.fused_saved;
  const backBytes = new Float64Array(graph.nodes.length);
  const cutFrom = new Uint8Array(graph.nodes.length);
  if (fp)
    for (let i = 0; i < graph.nodes.length; i++) {
      const q = fp[i]!;
      if (q < 0 || unit_of[q] === unit_of[i]) continue;
      cutFrom[i] = 1;
      backBytes[i]! += saved ? saved.read[i]! : 0;
      backBytes[q]! += saved ? saved.write[i]! : 0;
    }
  // (A view of the node's columns, or a copy changed: handed to computeTime at once.)
  const costOf = (i: number): NodeCost => {
    const c = costs.view(i);
    if (!cutFrom[i] && backBytes[i] === 0) return c;
    const back = Math.min(backBytes[i]!, c.fused_bytes ?? 0);
    return { ...c, fused: c.fused && !cutFrom[i], bytes: c.bytes + back, fused_bytes: (c.fused_bytes ?? 0) - back };
  };
  const nodeTime = classes.map((d, c) => {
    const t = new Float64Array(N);
    for (let i = 0; i < N; i++) t[i] = runs(i, c) ? computeTime(costOf(i), d, inp.efficiency) : Infinity;
    return t;
  });
  const time_s = new Float64Array(nu * nd);
  // Grouped expert launches: per unit, the routed layer whose grouped kernels its nodes run in
  // (-1 for none; a unit holding nodes of two layers counts the first one's), paid once per device
  // and layer (src/cost/fusion.ts, "Grouped experts").
  const groupIds = new Map<number, number>();
  const launchGroup = new Int32Array(nu).fill(-1);
  // Where every node of a group that does work has a measured time (calibration: per device kind)
  // or an explicit one (per kind or device id), those times already hold the launches that runtime
  // made (computeTime returns them whole): no grouped launch there. A group measured only in part
  // (a profile of a run where some experts never fired) still pays it: its other nodes launch
  // nothing of their own.
  const working: number[] = []; // per group: nodes that do work
  const timed: Map<string, number>[] = []; // per group: key → its working nodes timed for that key
  units.forEach((u, k) => {
    let layer: number | undefined;
    for (const i of u.nodes) if ((layer = present(costs.launch_group[i]!)) !== undefined) break;
    if (layer === undefined) return;
    if (!groupIds.has(layer)) groupIds.set(layer, groupIds.size);
    const g = groupIds.get(layer)!;
    launchGroup[k] = g;
    const keys = (timed[g] ??= new Map());
    // (The columns read in place: a node's whole view filled for three of its fields was most of this loop.)
    for (let j = 0; j < u.nodes.length; j++) {
      const i = u.nodes[j]!;
      if (present(costs.launch_group[i]!) !== layer) continue;
      if (!doesWork({ flops: costs.flops[i]!, bytes: costs.bytes[i]!, fused_bytes: present(costs.fused_bytes[i]!) })) continue;
      working[g] = (working[g] ?? 0) + 1;
      const measured = costs.measuredAt(i);
      const given = costs.timeAt(i);
      if (!measured && !given) continue; // (most nodes: no set made for them)
      const seen = new Set([...Object.keys(measured ?? {}), ...Object.keys(given ?? {})]);
      for (const key of seen) keys.set(key, (keys.get(key) ?? 0) + 1);
    }
  });
  const groupLaunch = new Float64Array(groupIds.size * nd);
  for (let g = 0; g < groupIds.size; g++)
    devices.forEach((d, j) => {
      const keys = timed[g];
      const all = (key: string): boolean => (working[g] ?? 0) > 0 && keys?.get(key) === working[g];
      groupLaunch[g * nd + j] = all(d.kind) || all(d.id) ? 0 : groupedLaunchSeconds(d);
    });
  const weight_bytes = new Float64Array(nu);
  const activation_bytes = new Float64Array(nu);
  const state_bytes = new Float64Array(nu);
  const node_resident_bytes = new Float64Array(graph.nodes.length);
  const weightIds = index.initializerIds.slice();
  for (let id = 0; id < weightIds.length; id++) {
    const p = index.producerOf[id]!;
    if (p >= 0 && graph.nodes[p]!.op === 'Constant') weightIds[id] = 1;
  }
  const isWeight = (id: number): boolean => weightIds[id] === 1;
  // (The index's CSR arrays read in place, here and for the values below: a view per node and per
  // value was 140 MB over a DeepSeek-V3 plan's two variants.)
  const { inputOffsets, inputIds, outputOffsets, outputIds, consumerOffsets, consumerList } = index;
  // Each unit's weights once, in the order first read: marked with the unit (no set per unit).
  const weightSeen = new Int32Array(index.valueNames.length).fill(-1);
  const unitWeights: number[] = [];
  const perClass = new Float64Array(classes.length);
  // Device indices by id, and the devices of one expert's (marked while its unit is priced).
  const deviceIndex = new Map(devices.map((d, k) => [d.id, k]));
  const allowedMark = new Uint8Array(nd);
  for (let k = 0; k < nu; k++) {
    const u = units[k]!;
    const nodes = u.nodes;
    for (let c = 0; c < classes.length; c++) {
      const t = nodeTime[c]!;
      let sum = 0;
      for (let j = 0; j < nodes.length; j++) sum += t[nodes[j]!]!;
      perClass[c] = sum;
    }
    for (let d = 0; d < nd; d++) time_s[k * nd + d] = perClass[classOf[d]!]!;
    // An expert pinned by the moe pass stays on its devices (when it can run on one of them; a
    // device of the moe pass's not in this problem is none of them).
    const allowed = u.expert !== undefined ? inp.expert_devices?.[u.expert] : null;
    if (allowed) {
      let runs = false;
      for (const id of allowed) {
        const d = deviceIndex.get(id);
        if (d === undefined) continue;
        allowedMark[d] = 1;
        if (Number.isFinite(time_s[k * nd + d]!)) runs = true;
      }
      for (let d = 0; d < nd; d++) {
        if (runs && !allowedMark[d]) time_s[k * nd + d] = Infinity;
        allowedMark[d] = 0;
      }
    }
    // A unit the user pinned runs only there (its nodes share one pin: runs were cut where it changes).
    const pin = unitPin(nodes, inp.pins);
    if (pin >= 0) for (let d = 0; d < nd; d++) if (d !== pin) time_s[k * nd + d] = Infinity;
    unitWeights.length = 0;
    let peak = 0;
    for (let j = 0; j < nodes.length; j++) {
      const i = nodes[j]!;
      let live = 0;
      for (let e = inputOffsets[i]!; e < inputOffsets[i + 1]!; e++) {
        const id = inputIds[e]!;
        if (id < 0) continue;
        if (isWeight(id)) {
          if (weightSeen[id] !== k) {
            weightSeen[id] = k;
            unitWeights.push(id);
            node_resident_bytes[i]! += inp.value_bytes_by_id[id]!;
          }
        } else live += inp.value_bytes_by_id[id]!;
      }
      for (let e = outputOffsets[i]!; e < outputOffsets[i + 1]!; e++) {
        const id = outputIds[e]!;
        if (id >= 0 && !isWeight(id)) live += inp.value_bytes_by_id[id]!;
      }
      peak = Math.max(peak, live);
    }
    // Constant nodes inside the unit produce their own weights; count them once, as weights.
    for (let j = 0; j < unitWeights.length; j++) weight_bytes[k]! += inp.value_bytes_by_id[unitWeights[j]!]!;
    activation_bytes[k] = peak;
  }
  // Each tensor of a state object lives where it is written (a layer's key and value may not be
  // together): its share of the object's bytes goes to its writer's unit (the object's first
  // writer's when nothing writes it).
  for (const st of inp.state)
    for (const part of st.parts) {
      const w = tensorWriter(st, part);
      if (w !== null) {
        state_bytes[unit_of[w]!]! += tensorBytes(st, part);
        node_resident_bytes[w]! += tensorBytes(st, part);
      }
    }
  // Values crossing units: produced in one unit, read by others (weights travel with their readers).
  const values: UnitValue[] = [];
  // Each reading unit once: marked with the value's id (no set per value).
  const readerOf = new Int32Array(nu).fill(-1);
  for (let id = 0; id < index.valueNames.length; id++) {
    const p = index.producerOf[id]!;
    if (p < 0 || isWeight(id)) continue;
    const pu = unit_of[p]!;
    // (The list made at its first reader elsewhere: most values stay in their unit, and an empty
    // list for each was 280k arrays a variant of the DeepSeek-V3 shape. Sorted only when its readers
    // came out of order: a sort by comparator was a call per value.)
    let cons: number[] | null = null;
    let ascending = true;
    for (let j = consumerOffsets[id]!; j < consumerOffsets[id + 1]!; j++) {
      const cu = unit_of[consumerList[j]!]!;
      if (cu === pu || readerOf[cu] === id) continue;
      readerOf[cu] = id;
      if (cons === null) cons = [cu];
      else {
        if (cu < cons[cons.length - 1]!) ascending = false;
        cons.push(cu);
      }
    }
    if (cons === null) continue;
    if (!ascending) cons.sort((a, b) => a - b);
    values.push({ name: index.valueNames[id]!, producer: pu, consumers: cons, bytes: inp.value_bytes_by_id[id]! });
  }
  // Units are cut from one topological order of stages, so their creation order is topological.
  const order = Int32Array.from({ length: nu }, (_, k) => k);
  const routes = inp.routes;
  const problem: PlacementProblem = {
    unit_names: units.map((u) => u.name),
    device_ids: devices.map((d) => d.id),
    time_s,
    values,
    weight_bytes,
    state_bytes,
    activation_bytes,
    capacity_bytes: Float64Array.from(devices, (d) => d.memory_capacity_bytes),
    transfer_s: (a, b, bytes) => (a === b ? 0 : routes.timeIdx(a, b, bytes)),
    order,
    ...(groupIds.size > 0 ? { grouped_launch: { group: launchGroup, launch_s: groupLaunch, groups: groupIds.size } } : {}),
  };
  return { problem, units, unit_of, node_resident_bytes };
}

/** Ops that read only their input's shape, never its data (ONNX Shape, Size). */
