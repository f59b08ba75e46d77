// The serving planner's options (hxc plan --phase serve): declared once, offered by the bind pass
// beside --phase (src/pass/options.ts).

import { choiceOption, fileOption } from '../pass/options.js';

export const WORKLOAD = fileOption({
  name: 'workload',
  arg: '<file>',
  on: ['check'],
  help: 'with --phase serve: the workload to serve (hxc-workload/v1: arrival rate, prompt and output lengths, TTFT/TPOT SLOs)',
});

export const DISAGGREGATE = choiceOption({
  name: 'disaggregate',
  arg: '<mode>',
  choices: ['auto', 'on', 'off'] as const,
  on: ['check'],
  help: 'with --phase serve: prefill and decode on separate device pools (on), on the same devices (off), or whichever serves more goodput (auto, the default)',
});
