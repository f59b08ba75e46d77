// Messages between the runtime's coordinator and its device workers. Tensors travel as
// {type, dims, data}; `data` is an ArrayBuffer moved (transferred) whenever the sender no longer
// needs it, copied otherwise.

import type { ProgramMeta } from '../plan/programs.js';

export interface WireTensor {
  type: string;
  dims: number[];
  data: ArrayBuffer;
  byteOffset: number;
  length: number;
}

export interface WorkerStep {
  op: 'compute' | 'send' | 'recv';
  program?: string;
  inputs?: string[];
  outputs?: string[];
  value?: string;
  peer?: string;
  /** send: whether no later step on this device reads the value (then its buffer is transferred). */
  last_use?: boolean;
  label: string;
}

export interface WorkerInit {
  device: string;
  plan_dir: string;
  steps: WorkerStep[];
  /** Graph outputs this device produces. */
  outputs: string[];
  /** KV state on this device: present output → past input of the next decode step. */
  state: [string, string][];
  /** KV state this device produces for a past input read on another device: sent there at each decode step. */
  state_sends: { present: string; past: string; peer: string }[];
  /** Past inputs whose state another device produces: received at each decode step. */
  state_recvs: { past: string; peer: string }[];
  /** 0: onnxruntime's defaults. */
  intra_op_threads: number;
  /** Live queue depth of every device (compute steps still ahead of it in the current request), shared by all workers. */
  queue: SharedArrayBuffer;
  /** This device's slot in `queue`, and each device's slot by id. */
  queue_slot: number;
  queue_slots: Record<string, number>;
  /** Expert replica shares this device feeds: input name → the copies' devices, in order. */
  shares: Record<string, string[]>;
  /** Values whose dims the worker reports back (expert token counts). */
  probes: string[];
  /** Packed programs (src/plan/programs.ts): name → its meta with the pack, read from `plan_dir`; a program not listed is its own file there. */
  packed?: Record<string, ProgramMeta>;
  /** Epoch (ms since the time origin of the coordinator) to report times against. */
  epoch_ms: number;
  /** Post a `progress` message as each step starts (workers in other processes: a failure then names the step). */
  report_progress?: boolean;
}

/** A step starting on a device (only when WorkerInit.report_progress). */
export interface StepProgress {
  type: 'progress';
  device: string;
  request: number;
  step: number;
  label: string;
}

/** The coordinator's word to stop: the worker exits once no session.run is under way (src/runtime/stop.ts). */
export interface QuitRequest {
  type: 'quit';
}

export interface RunRequest {
  type: 'run';
  request: number;
  feeds: Record<string, WireTensor>;
  /** Use the state kept from the previous request as the past inputs. */
  use_state: boolean;
  /** Return state tensors (presents) to the coordinator this time (the last decode step, for --check). */
  return_state: boolean;
}

export interface StepRecord {
  op: string;
  label: string;
  program?: string;
  start_ms: number;
  end_ms: number;
  bytes?: number;
  peer?: string;
  /** A recv: when its sender posted it and when it arrived here (the run's clock, ms). */
  sent_ms?: number;
  arrived_ms?: number;
}

export interface RunDone {
  type: 'done';
  request: number;
  device: string;
  outputs: Record<string, WireTensor>;
  steps: StepRecord[];
  /** Time spent blocked in recv steps. */
  wait_ms: number;
  busy_ms: number;
  /** Dims of the probe values this request produced. */
  probes: Record<string, number[]>;
  /** Each expert split made: the share input and the copies' queue depths it was made from. */
  dispatch: { input: string; depths: number[] }[];
  /** Wall time in the worker from receiving the request to posting this (the rest of the latency is messaging). */
  handle_ms?: number;
}

export type WorkerMessage =
  | RunDone
  | StepProgress
  | { type: 'ready'; device: string }
  /** `deployment`: the link to another worker (at `peer`) failed, not the device's work. */
  | { type: 'error'; device: string; message: string; deployment?: boolean; peer?: string };

export interface TransferMessage {
  value: string;
  request: number;
  tensor: WireTensor;
  sent_ms: number;
  /** Set by the receiving worker's inbox when the message lands. */
  arrived_ms?: number;
}

/** Options every onnxruntime session of hxc takes: only fatal messages may log (errors surface as exceptions hxc reports). */
export const SESSION_OPTIONS = { logSeverityLevel: 4 } as const;
