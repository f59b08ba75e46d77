/// <reference lib="dom" />
// The report's rack: hosts as boxes, each device a card coloured by its utilisation and filled by
// its memory (weights, activations, state against capacity), links drawn by kind with a width by
// bandwidth; hovering a link shows its bytes per request. Runs in the browser (see client-kit.ts).

import { drawTable, type Kit } from './client-kit.js';

export function drawRack(kit: Kit): void {
  const { d3, data, bytes, rate } = kit;
  const sec = kit.section(
    'rack',
    'Rack',
    `${data.devices.length} devices on ${data.hosts.length} host${data.hosts.length === 1 ? '' : 's'}; colour: utilisation; bar: memory (weights, activations, KV/state) of capacity; lines: links by kind, width by bandwidth.`,
  );
  const W = 150;
  const H = 70;
  const gap = 14;
  const pad = 16;
  const width = Math.max(720, Math.min(1400, document.body.clientWidth - 40));
  // Hosts flow left to right, wrapping; a host's devices in rows of up to 4, grouped by kind.
  const pos = new Map<string, { x: number; y: number }>();
  const boxes: { id: string; x: number; y: number; w: number; h: number }[] = [];
  const byId = new Map(data.devices.map((d) => [d.id, d]));
  let x = pad;
  let y = pad;
  let rowH = 0;
  for (const host of data.hosts) {
    const kinds = [...new Set(host.devices.map((id) => byId.get(id)!.kind))];
    const rows: string[][] = [];
    for (const k of kinds) {
      const of = host.devices.filter((id) => byId.get(id)!.kind === k);
      for (let i = 0; i < of.length; i += 4) rows.push(of.slice(i, i + 4));
    }
    const cols = Math.max(...rows.map((r) => r.length));
    const w = cols * (W + gap) + gap;
    const h = rows.length * (H + gap) + gap + 18;
    if (x + w > width - pad && x > pad) {
      x = pad;
      y += rowH + gap * 2;
      rowH = 0;
    }
    boxes.push({ id: host.id, x, y, w, h });
    rows.forEach((r, ri) => r.forEach((id, ci) => pos.set(id, { x: x + gap + ci * (W + gap), y: y + 18 + gap + ri * (H + gap) })));
    x += w + gap * 2;
    rowH = Math.max(rowH, h);
  }
  const height = y + rowH + pad;
  const svg = d3.select(sec).append('svg').attr('class', 'rack').attr('width', width).attr('height', height).attr('viewBox', `0 0 ${width} ${height}`);
  const hosts = svg.append('g').selectAll('g').data(boxes).join('g').attr('class', 'host');
  hosts
    .append('rect')
    .attr('x', (b: (typeof boxes)[number]) => b.x)
    .attr('y', (b: (typeof boxes)[number]) => b.y)
    .attr('width', (b: (typeof boxes)[number]) => b.w)
    .attr('height', (b: (typeof boxes)[number]) => b.h)
    .attr('rx', 8);
  hosts
    .append('text')
    .attr('x', (b: (typeof boxes)[number]) => b.x + 8)
    .attr('y', (b: (typeof boxes)[number]) => b.y + 15)
    .text((b: (typeof boxes)[number]) => b.id);

  // Links under the devices: two devices, a line; more, spokes from their centre.
  const centre = (id: string): { x: number; y: number } => {
    const p = pos.get(id)!;
    return { x: p.x + W / 2, y: p.y + H / 2 };
  };
  const maxBytes = Math.max(1, ...data.links.map((l) => l.bytes_per_request));
  const linkLayer = svg.append('g').attr('class', 'links');
  for (const l of data.links) {
    const ends = (l.devices ?? []).filter((id) => pos.has(id));
    if (ends.length < 2) continue;
    const pts = ends.map(centre);
    const hub = ends.length === 2 ? null : { x: d3.mean(pts, (p: { x: number }) => p.x), y: d3.mean(pts, (p: { y: number }) => p.y) + H * 0.62 };
    const segs = hub ? pts.map((p) => [hub, p]) : [[pts[0]!, pts[1]!]];
    const g = linkLayer.append('g').attr('class', 'link').attr('data-link', l.name);
    const widthPx = 1.5 + Math.max(0, Math.log10(l.bandwidth_bytes_per_s / 1e9)) * 2;
    g.selectAll('path')
      .data(segs)
      .join('path')
      .attr('d', (s: { x: number; y: number }[]) => {
        const [a, b] = s as [{ x: number; y: number }, { x: number; y: number }];
        const bend = Math.abs(a.y - b.y) < 1 ? -H * 0.55 : 0;
        return `M${a.x},${a.y} Q${(a.x + b.x) / 2},${(a.y + b.y) / 2 + bend} ${b.x},${b.y}`;
      })
      .attr('stroke', kit.linkColour(l.kind))
      .attr('stroke-width', widthPx)
      .attr('stroke-opacity', 0.35 + 0.65 * (l.bytes_per_request / maxBytes))
      .attr('fill', 'none');
    if (hub) g.append('circle').attr('cx', hub.x).attr('cy', hub.y).attr('r', 4).attr('fill', kit.linkColour(l.kind));
    const lines = [
      `${l.name} (${l.kind}${l.shared ? ', shared' : ''})`,
      `${rate(l.bandwidth_bytes_per_s)}, latency ${kit.time(l.latency_s)}`,
      `${bytes(l.bytes_per_request)} per request`,
      `joins ${ends.join(', ')}`,
    ];
    g.on('mousemove', (ev: MouseEvent) => kit.tip(ev, lines)).on('mouseleave', kit.untip);
  }

  const util = d3.scaleSequential(d3.interpolateYlOrRd).domain([0, 1]);
  const cards = svg
    .append('g')
    .selectAll('g')
    .data(data.devices.filter((d) => pos.has(d.id)))
    .join('g')
    .attr('class', (d: (typeof data.devices)[number]) => `device${d.planned ? '' : ' unplanned'}`)
    .attr('data-device', (d: (typeof data.devices)[number]) => d.id)
    .attr('transform', (d: (typeof data.devices)[number]) => `translate(${pos.get(d.id)!.x},${pos.get(d.id)!.y})`);
  cards
    .append('rect')
    .attr('class', 'card')
    .attr('width', W)
    .attr('height', H)
    .attr('rx', 6)
    .attr('fill', (d: (typeof data.devices)[number]) => (d.planned ? util(0.05 + 0.6 * d.utilisation) : '#f2f2f2'))
    .attr('stroke', (d: (typeof data.devices)[number]) => kit.deviceColour(d.id));
  cards
    .append('text')
    .attr('x', 8)
    .attr('y', 17)
    .attr('class', 'dev-name')
    .text((d: (typeof data.devices)[number]) => d.id);
  cards
    .append('text')
    .attr('x', 8)
    .attr('y', 32)
    .attr('class', 'dev-sub')
    .text((d: (typeof data.devices)[number]) => `${d.kind}${d.model ? ` · ${d.model}` : ''}`);
  cards
    .append('text')
    .attr('x', 8)
    .attr('y', 47)
    .attr('class', 'dev-sub')
    .text((d: (typeof data.devices)[number]) => (d.planned ? `${(d.utilisation * 100).toFixed(1)}% busy · ${d.units} units` : 'not planned on'));
  // Memory: stacked weights / activations / state over the capacity.
  const barW = W - 16;
  const parts: [string, (d: (typeof data.devices)[number]) => number, string][] = [
    ['weights', (d) => d.weights_bytes, '#3b5b92'],
    ['activations', (d) => d.activation_bytes, '#7aa6d8'],
    ['KV / state', (d) => d.state_bytes, '#9b59b6'],
  ];
  cards.each(function (this: SVGGElement, d: (typeof data.devices)[number]) {
    const g = d3.select(this);
    g.append('rect').attr('class', 'mem-bg').attr('x', 8).attr('y', 54).attr('width', barW).attr('height', 9);
    let at = 0;
    for (const [, f, c] of parts) {
      const w = d.capacity_bytes > 0 ? (barW * f(d)) / d.capacity_bytes : 0;
      if (w > 0)
        g.append('rect')
          .attr('x', 8 + at)
          .attr('y', 54)
          .attr('width', Math.min(w, barW - at))
          .attr('height', 9)
          .attr('fill', c);
      at = Math.min(barW, at + w);
    }
  });
  cards
    .on('mousemove', (ev: MouseEvent, d: (typeof data.devices)[number]) =>
      kit.tip(ev, [
        `${d.id} (${d.kind}${d.model ? `, ${d.model}` : ''}) on ${d.host}`,
        d.planned ? `busy ${kit.time(d.busy_s)} per request, ${(d.utilisation * 100).toFixed(1)}%` : 'not among the devices planned on',
        `${d.units} units, ${d.steps} steps`,
        ...parts.map(([name, f]) => `${name} ${bytes(f(d))}`),
        `capacity ${bytes(d.capacity_bytes)}`,
      ]),
    )
    .on('mouseleave', kit.untip);

  // Legend and the link table (every link, also those the rack file could not place).
  const legend = document.createElement('div');
  legend.className = 'legend';
  const kinds = [...new Set(data.links.map((l) => l.kind))];
  for (const [name, , c] of parts) legend.appendChild(chip(c, name));
  for (const k of kinds) legend.appendChild(chip(kit.linkColour(k), `${k} link`));
  sec.appendChild(legend);
  drawTable(
    sec,
    ['link', 'kind', 'bandwidth', 'latency', 'bytes per request', 'devices'],
    data.links.map((l) => [
      l.name,
      l.kind + (l.shared ? ' (shared)' : ''),
      rate(l.bandwidth_bytes_per_s),
      kit.time(l.latency_s),
      bytes(l.bytes_per_request),
      l.devices ? l.devices.join(', ') : '—',
    ]),
    'links',
  );

  function chip(colour: string, text: string): HTMLElement {
    const s = document.createElement('span');
    const sw = document.createElement('i');
    sw.style.background = colour;
    s.append(sw, document.createTextNode(text));
    return s;
  }
}
