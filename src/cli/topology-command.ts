// `hxc topology [FILE | --default] [--json]`.

import { HxcError } from '../diag/diagnostics.js';
import { defaultTopology, loadTopology, RouteTable, renderTopology, topologyToJson } from '../topology/index.js';
import { colorEnabled, jsonText } from './output.js';

/** Devices up to which --matrix prints every pair (2048: 4.2 million routes, ~250 MB of text). */
export const MATRIX_MAX_DEVICES = 2048;

export function topologyCommand(file: string | undefined, opts: { json?: boolean; default?: boolean; matrix?: boolean }): void {
  if (file && opts.default) {
    throw new HxcError('HXC2002', 'give a topology file or --default, not both', { hint: 'drop one of them' });
  }
  const topo = file ? loadTopology(file) : defaultTopology();
  // Every pair's route is N² lines (65,536 devices: 4.3 billion): refused past a size a terminal or a file can use.
  if (opts.matrix && topo.devices.length > MATRIX_MAX_DEVICES)
    throw new HxcError(
      'HXC2002',
      `--matrix prints every pair of the ${topo.devices.length} devices (${topo.devices.length ** 2} routes), more than the ${MATRIX_MAX_DEVICES ** 2} it prints`,
      {
        where: '--matrix',
        hint: `drop --matrix for the classes of devices, links and routes, or give a rack of at most ${MATRIX_MAX_DEVICES} devices`,
      },
    );
  const routes = new RouteTable(topo);
  process.stdout.write(opts.json ? jsonText(topologyToJson(topo, routes, opts)) : renderTopology(topo, routes, colorEnabled(process.stdout), opts));
}
