// The topology module: read a rack description (hxc-topology/v1 YAML), route transfers over it,
// print it. Everything other layers need is re-exported here.

export { parseBytes, parseBandwidth, parseFlops, parseSeconds, formatNumber, formatBytes, formatBandwidth, formatFlops, formatSeconds } from './units.js';
export { CATALOG, CATALOG_NAMES, DEVICE_KINDS, KIND_DEFAULTS, OP_SETS, catalogEntry } from './catalog.js';
export type { CatalogEntry, DeviceKind } from './catalog.js';
export { TOPOLOGY_FORMAT, LINK_KINDS, DTYPES, loadTopology, parseTopology, normalizeDtype, expandIds, closeMatches, sha256 } from './load.js';
export { peakFlops, canRun, deviceClassKey, identicalAccelerators } from './device.js';
export type { Device, Link, Topology } from './load.js';
export { RouteTable } from './routes.js';
export type { Route, RouteOption, MatrixCell, RouteMatrix } from './routes.js';
export { defaultTopology, defaultTopologyText } from './default.js';
export { ROUTE_BYTES, renderTopology, topologyToJson, compactIds } from './render.js';
export type { TopologyJson } from './render.js';
