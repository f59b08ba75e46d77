// The built-in default rack, used when no --topology is given and printed by `hxc topology --default`.
// It is YAML text read by the same loader as user files, so it is also an example of the format.
// Its source.file is null and its sha256 is that of this text.

import { parseTopology, sha256 } from './load.js';
import type { Topology } from './load.js';

/**
 * One heterogeneous server: a Xeon 8480+ host with 2 TiB, four H100 SXM on NVLink, two Gaudi 3 on
 * their own RoCE ports, and an IPU E2100 smart NIC. Link numbers: NVLink 4 is 900 GB/s per GPU both
 * ways, 450 GB/s each way (H100 datasheet); PCIe Gen5 x16 64 GB/s each way, Gen4 x16 32 GB/s (PCI-SIG);
 * Gaudi 3 has 24 × 200 GbE ports, and an 8-card HLS-3 board wires 3 per peer: 600 Gb/s (Gaudi 3
 * white paper). The IPU's 200 GbE port faces the rest of the data centre and is not modelled.
 */
const DEFAULT_TOPOLOGY_TEXT = `# hxc default rack: one heterogeneous server (printed by \`hxc topology --default\`).
format: hxc-topology/v1
name: hxc-default
hosts:
  - id: server0
    devices: [cpu0, "gpu[0-3]", "gaudi[0-1]", ipu0]
devices:
  - id: cpu0
    kind: cpu
    model: xeon-8480
    memory: {capacity: 2TiB}
  - id: gpu[0-3]
    kind: gpu
    model: h100-sxm
  - id: gaudi[0-1]
    kind: accel
    model: gaudi3
  - id: ipu0
    kind: ipu
    model: ipu-e2100
links:
  # NVLink 4 between the four H100s (an NVSwitch-style all-to-all: one hop).
  - name: nvlink
    kind: nvlink
    connects: ["gpu[0-3]"]
    bandwidth: 450GB/s
    latency: 2us
  # Gaudi 3 to Gaudi 3 over three 200 GbE RoCE ports.
  - name: gaudi-rdma
    kind: ethernet
    connects: [gaudi0, gaudi1]
    bandwidth: 600Gb/s
    latency: 3us
  # PCIe Gen5 switch for the GPUs, uplink to the host shared by all transfers.
  - name: pcie0
    kind: pcie
    connects: [cpu0, "gpu[0-3]"]
    bandwidth: 64GB/s
    latency: 2us
    shared: true
  # PCIe Gen5 switch for the Gaudis.
  - name: pcie1
    kind: pcie
    connects: [cpu0, "gaudi[0-1]"]
    bandwidth: 64GB/s
    latency: 2us
    shared: true
  # The IPU sits on its own PCIe Gen4 x16 slot.
  - name: pcie-ipu
    kind: pcie
    connects: [cpu0, ipu0]
    bandwidth: 32GB/s
    latency: 2us
`;

export function defaultTopologyText(): string {
  return DEFAULT_TOPOLOGY_TEXT;
}

/** The default rack, parsed by the ordinary loader; source.file is null. */
export function defaultTopology(): Topology {
  const topology = parseTopology(DEFAULT_TOPOLOGY_TEXT, '<default topology>');
  return { ...topology, source: { file: null, sha256: sha256(Buffer.from(DEFAULT_TOPOLOGY_TEXT, 'utf8')) } };
}
