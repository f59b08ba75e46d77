// `hxc topology [FILE | --default] [--json]`.

import { HxcError } from '../diag/diagnostics.js';
import { defaultTopology, loadTopology, RouteTable, renderTopology, topologyToJson } from '../topology/index.js';
import { colorEnabled, jsonText } from './output.js';

export function topologyCommand(file: string | undefined, opts: { json?: boolean; default?: boolean; matrix?: boolean }): void {
  if (file && opts.default) {
    throw new HxcError('HXC2002', 'give a topology file or --default, not both', { hint: 'drop one of them' });
  }
  const topo = file ? loadTopology(file) : defaultTopology();
  const routes = new RouteTable(topo);
  process.stdout.write(opts.json ? jsonText(topologyToJson(topo, routes, opts)) : renderTopology(topo, routes, colorEnabled(process.stdout), opts));
}
