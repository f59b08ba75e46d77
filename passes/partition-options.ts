// The partition pass's options (passes/partition.ts owns them; the stage pass reads two to size a
// large rack's narrowing, the moe pass none): declared here, apart from the pass, so that passes
// the partitioner imports can read them without an import cycle.

import { EXACT_MAX_UNITS } from '../src/partition/exact.js';
import { choiceOption, fileOption, intOption, secondsOption, switchOption } from '../src/pass/options.js';

export const OBJECTIVE = choiceOption({
  name: 'objective',
  arg: '<objective>',
  choices: ['latency', 'throughput'] as const,
  on: ['check'],
  help: 'latency: one request (makespan); throughput: pipelined requests (default latency)',
});
export const SOLVER = choiceOption({
  name: 'solver',
  arg: '<solver>',
  choices: ['auto', 'heuristic', 'exact'] as const,
  help: `heuristic, exact (MILP with HiGHS, at most ${EXACT_MAX_UNITS} units) or auto (the MILP as a candidate when small; default)`,
});
export const TIME_LIMIT = secondsOption({
  name: 'time-limit',
  arg: '<s>',
  max: 86_400,
  example: 10,
  help: 'wall-clock seconds for the exact solver instead of its work limit (the plan may then differ between machines)',
});
export const ASSIGN = fileOption({
  name: 'assign',
  arg: '<file>',
  help: 'hxc-assignment/v1 JSON {format, assignment: {node: device}}: pin those nodes (a plan.json is read as its `assignment`); hxc places the rest',
});
export const MIN_SEQUENCES = intOption({
  name: 'min-sequences',
  arg: '<n>',
  min: 1,
  example: 64,
  help: 'move KV-owning layers until the cache holds N sequences of --context tokens; plan.json shows the cost',
});
export const PIN_EXPERTS = switchOption({
  name: 'pin-experts',
  help: 'keep MoE experts on the devices the moe pass chose (otherwise that placement is one candidate among others)',
});
export const EXPERT_UNITS = intOption({
  name: 'expert-units',
  arg: '<n>',
  min: 1,
  example: 2048,
  help: 'above N experts in the model, the experts of a layer the moe pass put on the same devices are planned in groups of ceil(experts / N): fewer units, steps and programs for a coarser placement (default: each expert its own unit)',
});
