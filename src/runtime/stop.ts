// Stopping a device's worker thread. Worker.terminate() tears its environment down at once, and
// onnxruntime finishing a session.run there then raises into the torn-down environment: the whole
// process aborts ("terminate called after throwing an instance of 'Napi::Error'", exit 134) — a
// run that failed on one device (a token id past the vocabulary) crashed on another, about one run
// in six. So a worker is asked to quit: it exits at once when no session.run is under way, else
// when the one under way returns (src/runtime/worker.ts). Terminated only if it has not exited
// within the bound (a session stuck in a kernel), as before.

import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import type { QuitRequest } from './protocol.js';

/**
 * How long a session.run under way may take to return once the worker is asked to quit: a kernel
 * still running after that is stuck, and the worker is terminated as before. (Bounded apart from
 * --timeout: after a stall the run has waited that long once already.)
 */
export const QUIT_GRACE_MS = 30_000;

export async function stopWorker(w: Worker, timeout_ms = QUIT_GRACE_MS): Promise<void> {
  // A worker that has exited already (it failed, or was killed) has no 'exit' left to wait for.
  if (w.threadId === -1) return;
  const exited = once(w, 'exit').then(() => true);
  try {
    w.postMessage({ type: 'quit' } satisfies QuitRequest);
  } catch {
    // Already gone.
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeout_ms)));
  const done = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (!done) await w.terminate();
}
