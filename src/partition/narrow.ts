// Planning on a pod without touching every device. Identical hosts are interchangeable: a plan that
// uses k of them is as good on any k (the route between two hosts' devices is the same for every
// pair of hosts). So on a rack of more than NARROW_ABOVE devices, the moe and partition passes plan
// on the first hosts (file order) that give each accelerator class as many devices as the model
// could use — enough memory for its weights and state (with a quarter to spare), one per expert of
// its widest MoE layer, one per pipeline stage for a throughput plan, at least eight — and name
// those devices in the plan. plan.json's `topology.considered` says so; a rack with no spare
// identical hosts is planned whole.

import type { PassContext } from '../pass/pass.js';
import { deviceClasses } from '../topology/classes.js';
import type { Topology } from '../topology/index.js';
import { cutTopology } from '../topology/cut.js';

export const NARROW_ABOVE = 64;
/** Devices of each accelerator class kept at the least. */
export const MIN_PER_CLASS = 8;

export interface Considered {
  devices: number;
  of_devices: number;
  hosts: number;
  of_hosts: number;
  /** Devices of each accelerator class the model could use, and why. */
  need: number;
  reason: string;
}

const ACCELERATOR = new Set(['gpu', 'accel', 'dataflow']);

/**
 * The devices worth planning on, as a topology of its own (links and hosts cut to them), or null
 * when the rack is small, has no identical hosts to spare, or the cut would disconnect it.
 */
export function narrowTopology(topo: Topology, need: number): { topology: Topology; considered: Omit<Considered, 'need' | 'reason'> } | null {
  if (topo.devices.length <= NARROW_ABOVE) return null;
  const classes = deviceClasses(topo);
  const byId = new Map(topo.devices.map((d) => [d.id, d]));
  const classOf = new Map<string, number>();
  classes.forEach((c, k) => {
    for (const d of c.devices) classOf.set(d, k);
  });
  const cap: number[] = classes.map((c) => (ACCELERATOR.has(byId.get(c.representative)!.kind) ? Math.min(c.devices.length, Math.max(need, MIN_PER_CLASS)) : 0));
  // Without accelerators every class counts.
  if (!cap.some((c) => c > 0)) classes.forEach((c, k) => (cap[k] = Math.min(c.devices.length, Math.max(need, MIN_PER_CLASS))));
  const taken = new Int32Array(classes.length);
  const keep = new Set<string>();
  const wants = (ids: readonly string[]): boolean =>
    ids.some((id) => {
      const k = classOf.get(id)!;
      return taken[k]! < cap[k]!;
    });
  const take = (ids: readonly string[]): void => {
    for (const id of ids) {
      keep.add(id);
      taken[classOf.get(id)!]!++;
    }
  };
  let hostsKept = 0;
  for (const h of topo.hosts) {
    if (!wants(h.devices)) continue;
    take(h.devices);
    hostsKept++;
  }
  // Devices in no host: accelerators up to their class's cap, then anything sharing a link with a
  // kept device that is not itself an accelerator (a NIC, a switch CPU) so routes stay.
  const inHost = new Set(topo.hosts.flatMap((h) => h.devices));
  for (const d of topo.devices) if (!inHost.has(d.id) && !keep.has(d.id) && cap[classOf.get(d.id)!]! > 0 && wants([d.id])) take([d.id]);
  for (const l of topo.links) {
    if (!l.devices.some((id) => keep.has(id) && !inHost.has(id))) continue;
    for (const id of l.devices) if (!inHost.has(id) && !keep.has(id) && cap[classOf.get(id)!] === 0) keep.add(id);
  }
  if (keep.size === topo.devices.length || keep.size === 0) return null;
  const cut = cutTopology(topo, keep);
  if (!cut) return null;
  return {
    topology: cut,
    considered: { devices: cut.devices.length, of_devices: topo.devices.length, hosts: hostsKept, of_hosts: topo.hosts.length },
  };
}

/**
 * Narrow the context's topology for this model (once; later calls keep the first answer). The
 * devices each accelerator class could use: memory for weights and state with a quarter to spare,
 * one per expert of the widest MoE layer, one per pipeline stage for throughput, at least eight.
 */
/** What the model needs, measured by the passes that ran (the caller reads them). */
export interface ModelNeeds {
  /** Weight bytes (profile). */
  param_bytes: number;
  /** Recurrent state bytes (state). */
  state_bytes: number;
  /** Distinct pipeline stages (stage), 0 when unknown. */
  stages: number;
  /** Experts of the widest MoE layer, 0 for a dense model. */
  widest_moe: number;
  /** The user pinned nodes (--assign): every device stays, since a pin may name any. */
  assigned: boolean;
  /** Planned for throughput: the pipeline's stages count among the devices needed. */
  throughput: boolean;
}

export function narrowForModel(ctx: PassContext & { narrow?(t: Topology, c: Considered): void; considered?: Considered | null }, needs: ModelNeeds): void {
  if (ctx.considered !== undefined || !ctx.narrow) return;
  const topo = ctx.topology();
  if (topo.devices.length <= NARROW_ABOVE || needs.assigned) {
    ctx.considered = null;
    return;
  }
  const accel = topo.devices.filter((d) => ACCELERATOR.has(d.kind));
  const smallest = Math.min(...(accel.length > 0 ? accel : topo.devices).map((d) => d.memory_capacity_bytes));
  const bytes = needs.param_bytes + needs.state_bytes;
  const memory = Math.ceil((bytes * 1.25) / smallest);
  const stages = needs.throughput ? needs.stages : 0;
  const widestMoe = needs.widest_moe;
  const need = Math.max(MIN_PER_CLASS, memory, widestMoe, stages);
  const cut = narrowTopology(topo, need);
  const why = [
    `memory ${memory}`,
    widestMoe > 0 ? `experts per layer ${widestMoe}` : '',
    stages > 0 ? `pipeline stages ${stages}` : '',
    `at least ${MIN_PER_CLASS}`,
  ]
    .filter(Boolean)
    .join(', ');
  if (!cut) {
    ctx.considered = null;
    return;
  }
  ctx.narrow(cut.topology, {
    ...cut.considered,
    need,
    reason: `identical hosts are interchangeable: planned on the first ${cut.considered.hosts} of ${cut.considered.of_hosts} hosts, enough for ${need} devices of each accelerator class (${why})`,
  });
}
