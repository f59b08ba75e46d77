// import: read the model file (ONNX protobuf or hxc-graph/v1 JSON, sniffed from its bytes) into
// the IR. Weights are never copied; external data is resolved inside the model's folder only.

import { loadModel } from '../src/import/load.js';
import { constantBytes, nodesInSubgraphs, paramBytes, type Model } from '../src/ir/graph.js';
import { printModel } from '../src/ir/print.js';
import type { Pass } from '../src/pass/pass.js';

export const importPass: Pass<Model> = {
  name: 'import',
  summary: 'read an ONNX model or an hxc-graph/v1 JSON graph into the IR',
  requires: [],
  options: [],
  run(ctx) {
    // A later variant of one `hxc plan` (src/cli/run-passes.ts) takes the first one's import.
    const model = ctx.options.imported ?? loadModel(ctx.options.model_path, ctx.diagnostics);
    ctx.model = model;
    return model;
  },
  statistics(model) {
    return {
      nodes: model.graph.nodes.length,
      'subgraph nodes': nodesInSubgraphs(model.graph),
      initializers: model.graph.initializers.size,
      'param bytes': paramBytes(model.graph),
      'constant bytes': constantBytes(model.graph),
      'weights present': model.weights_present ? 'yes' : 'no',
    };
  },
  dump(model) {
    return printModel(model);
  },
};
