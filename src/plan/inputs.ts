// How hxc run makes a graph input when the user gives none: its dtype, shape and fill rule, as
// plan.json's `inputs` lists them (written by passes/lower.ts, read by src/runtime/tensors.ts).

export interface InputSpec {
  name: string;
  dtype: string | null;
  shape: (number | string)[] | null;
  fill:
    | { kind: 'uniform-int'; high: number }
    | { kind: 'ones' }
    | { kind: 'positions'; offset_dim: string | null }
    | { kind: 'uniform-float' }
    | { kind: 'bool' }
    | { kind: 'replica-share'; replicas: number };
}
