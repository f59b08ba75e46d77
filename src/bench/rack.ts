// A generated rack of many hosts for the scale benchmark: per host a CPU, eight GPUs on an NVLink
// switch and a NIC (an IPU-class smart NIC), all on the host's shared PCIe; every NIC on one
// Ethernet spine. 512 hosts are 5,120 devices.
//
// `node dist/src/bench/rack.js OUT.yaml HOSTS`

import fs from 'node:fs';

export function rackYaml(hosts: number): string {
  const lines = [
    `# ${hosts} hosts × (1 CPU, 8 H100 on NVLink, 1 NIC on PCIe); the NICs on one spine.`,
    'format: hxc-topology/v1',
    `name: generated-${hosts}-hosts`,
    'hosts:',
  ];
  for (let h = 0; h < hosts; h++) {
    const gpus = Array.from({ length: 8 }, (_, k) => `gpu${h * 8 + k}`);
    lines.push(`  - id: host${h}`, `    devices: [cpu${h}, ${gpus.join(', ')}, nic${h}]`);
  }
  lines.push(
    'devices:',
    `  - id: cpu[0-${hosts - 1}]`,
    '    kind: cpu',
    '    model: xeon-8480',
    `  - id: gpu[0-${hosts * 8 - 1}]`,
    '    kind: gpu',
    '    model: h100-sxm',
    `  - id: nic[0-${hosts - 1}]`,
    '    kind: ipu',
    '    model: ipu-e2100',
    'links:',
  );
  for (let h = 0; h < hosts; h++) {
    const gpus = Array.from({ length: 8 }, (_, k) => `gpu${h * 8 + k}`);
    lines.push(
      `  - name: nvlink${h}`,
      '    kind: nvlink',
      `    connects: [${gpus.join(', ')}]`,
      '    bandwidth: 450GB/s',
      '    latency: 2us',
      `  - name: pcie${h}`,
      '    kind: pcie',
      `    connects: [cpu${h}, ${gpus.join(', ')}, nic${h}]`,
      '    bandwidth: 64GB/s',
      '    latency: 2us',
      '    shared: true',
    );
  }
  if (hosts > 1)
    lines.push(
      '  - name: spine',
      '    kind: ethernet',
      `    connects: [${Array.from({ length: hosts }, (_, h) => `nic${h}`).join(', ')}]`,
      '    bandwidth: 50GB/s',
      '    latency: 5us',
    );
  return lines.join('\n') + '\n';
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const [out, hosts] = process.argv.slice(2);
  if (!out || !(Number(hosts) >= 1)) {
    process.stderr.write('usage: node dist/src/bench/rack.js OUT.yaml HOSTS\n');
    process.exit(2);
  }
  fs.writeFileSync(out, rackYaml(Number(hosts)));
}
