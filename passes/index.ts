// The pass registry in default pipeline order: adding a pass is one file and one line here.

import type { Pass } from '../src/pass/pass.js';
import { importPass } from './import.js';
import { verifyPass } from './verify.js';

export const PASSES: readonly Pass<any>[] = [
  importPass, // read the model into the IR
  verifyPass, // well-formed, acyclic; node index and topological order
];
