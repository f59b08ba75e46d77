// The pass registry in default pipeline order: adding a pass is one file and one line here.

import type { Pass } from '../src/pass/pass.js';
import { bindPass } from './bind.js';
import { classifyPass } from './classify.js';
import { importPass } from './import.js';
import { lowerPass } from './lower.js';
import { moePass } from './moe.js';
import { partitionPass } from './partition.js';
import { profilePass } from './profile.js';
import { schedulePass } from './schedule.js';
import { shapesPass } from './shapes.js';
import { stagePass } from './stage.js';
import { tpPass } from './tp.js';
import { replicatePass } from './replicate.js';
import { statePass } from './state.js';
import { verifyPass } from './verify.js';

export const PASSES: readonly Pass<any, any>[] = [
  importPass, // read the model into the IR
  tpPass, // tensor parallelism where it pays: large MatMuls split column-wise (a graph rewrite)
  replicatePass, // executable replicas of hot MoE experts, tokens split at run time by load (a graph rewrite)
  verifyPass, // well-formed, acyclic; node index and topological order
  bindPass, // numeric values of symbolic dims: --dim, --phase with --batch/--prompt/--context
  shapesPass, // dtype and symbolic shape of every value
  profilePass, // FLOPs, bytes, parameters, intensity per node; calibration
  classifyPass, // compute/memory-bound per device kind, cut weight, critical-path slack
  statePass, // KV caches and other recurrent state: size, readers, writers
  stagePass, // convex stages, the units the partitioner moves
  moePass, // MoE layers: experts, routing statistics, expert placement and replication vs round-robin and EPLB
  partitionPass, // stages → devices for an objective, with a lower bound and explanations
  schedulePass, // ordered steps per device, simulated times, buffers, peak memory
  lowerPass, // the plan directory
];
