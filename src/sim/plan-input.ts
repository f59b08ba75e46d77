// A plan directory's steps as the simulator's input (hxc simulate, hxc report): each device's steps
// in plan order with their durations and pipeline rounds, the transfers over their routes.

import type { PlanV1 } from '../plan/format.js';
import type { SimInput } from './simulate.js';

export function planSimInput(plan: PlanV1, requests: number): SimInput {
  return {
    devices: plan.devices.map((d) => ({
      id: d.id,
      steps: d.steps.map((s) =>
        s.op === 'compute'
          ? { op: 'compute' as const, duration_s: s.duration_s, label: s.unit ?? 'compute', round: s.round ?? 0 }
          : { op: s.op, transfer: s.transfer, label: s.value ?? '', round: s.round ?? 0 },
      ),
    })),
    transfers: plan.transfers.map((t) => ({ value: t.value, bytes: t.bytes, from: t.from, to: t.to, links: t.route })),
    links: plan.topology.links,
    requests,
  };
}
