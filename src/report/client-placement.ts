/// <reference lib="dom" />
// The report's placement: the model as a strip of stages in order, each cut into runs of units
// coloured by device; the experts as a layer × expert heat map (expected tokens, or the devices
// holding each expert); who owns each KV-cache / state object. Runs in the browser (see client-kit.ts).

import { drawTable, type Kit } from './client-kit.js';

export function drawPlacement(kit: Kit): void {
  const { d3, data, bytes } = kit;
  const pl = data.placement;
  const units = pl.stages.reduce((n, s) => n + s.runs.reduce((m, r) => m + r.units, 0), 0);
  const sec = kit.section(
    'placement',
    'Placement',
    `${pl.stages.length} stages, ${units} units in plan order; each run of units on one device in that device's colour.`,
  );
  const width = Math.max(720, Math.min(1400, document.body.clientWidth - 40));

  // Device legend (the colours every section uses).
  const legend = document.createElement('div');
  legend.className = 'legend';
  for (const d of data.devices.filter((x) => x.planned && x.units > 0)) {
    const s = document.createElement('span');
    const i = document.createElement('i');
    i.style.background = kit.deviceColour(d.id);
    s.append(i, document.createTextNode(`${d.id} (${d.units})`));
    legend.appendChild(s);
  }
  sec.appendChild(legend);

  // The strip: stage blocks flowing left to right, width by units, wrapping into rows.
  const unitW = Math.max(1.5, Math.min(8, (width * 6) / Math.max(1, units)));
  const rowH = 34;
  type Run = { stage: string; device: string; units: number; resident_bytes: number; x: number; y: number; w: number };
  const runs: Run[] = [];
  const stageBoxes: { name: string; x: number; y: number; w: number }[] = [];
  let x = 0;
  let y = 0;
  for (const st of pl.stages) {
    const w = Math.max(4, st.runs.reduce((n, r) => n + r.units, 0) * unitW);
    if (x + w > width - 20 && x > 0) {
      x = 0;
      y += rowH;
    }
    stageBoxes.push({ name: st.name, x, y, w });
    let at = x;
    for (const r of st.runs) {
      const rw =
        (w * r.units) /
        Math.max(
          1,
          st.runs.reduce((n, q) => n + q.units, 0),
        );
      runs.push({ stage: st.name, ...r, x: at, y, w: rw });
      at += rw;
    }
    x += w + 2;
  }
  const svg = d3
    .select(sec)
    .append('svg')
    .attr('class', 'strip')
    .attr('width', width)
    .attr('height', y + rowH);
  svg
    .selectAll('rect.run')
    .data(runs)
    .join('rect')
    .attr('class', 'run')
    .attr('x', (r: Run) => r.x)
    .attr('y', (r: Run) => r.y)
    .attr('width', (r: Run) => Math.max(0.5, r.w))
    .attr('height', 22)
    .attr('fill', (r: Run) => kit.deviceColour(r.device))
    .on('mousemove', (ev: MouseEvent, r: Run) =>
      kit.tip(ev, [r.stage, `${r.units} unit${r.units === 1 ? '' : 's'} on ${r.device}`, `resident ${bytes(r.resident_bytes)}`]),
    )
    .on('mouseleave', kit.untip);
  svg
    .selectAll('rect.stage')
    .data(stageBoxes)
    .join('rect')
    .attr('class', 'stage')
    .attr('x', (s: (typeof stageBoxes)[number]) => s.x)
    .attr('y', (s: (typeof stageBoxes)[number]) => s.y)
    .attr('width', (s: (typeof stageBoxes)[number]) => s.w)
    .attr('height', 22);
  svg
    .selectAll('text')
    .data(stageBoxes.filter((s) => s.w > s.name.length * 6))
    .join('text')
    .attr('class', 'stage-name')
    .attr('x', (s: (typeof stageBoxes)[number]) => s.x + 2)
    .attr('y', (s: (typeof stageBoxes)[number]) => s.y + 32)
    .text((s: (typeof stageBoxes)[number]) => s.name);

  // Experts: layer × expert.
  const ex = pl.experts;
  type Cell = NonNullable<typeof ex>['cells'][number];
  if (ex) {
    const h3 = document.createElement('h3');
    h3.textContent = `Experts: ${ex.layers} layers × ${ex.experts} experts`;
    sec.appendChild(h3);
    const maxTokens = d3.max(ex.cells, (c: Cell) => c.tokens) ?? 1;
    const minTokens = d3.min(ex.cells, (c: Cell) => c.tokens) ?? 0;
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = `Left: expected tokens per step (${minTokens.toPrecision(4)} to ${maxTokens.toPrecision(4)}${minTokens === maxTokens ? ': every expert equally loaded' : ''}). Right: the device holding each expert (a replicated expert: its first device).`;
    sec.appendChild(p);
    const row = document.createElement('div');
    row.className = 'heat-row';
    sec.appendChild(row);
    const cell = Math.max(3, Math.min(22, Math.floor((width / 2 - 80) / ex.experts)));
    const heat = d3.scaleSequential(d3.interpolateViridis).domain(minTokens === maxTokens ? [0, Math.max(1e-9, maxTokens)] : [minTokens, maxTokens]);
    const grid = (cls: string, fill: (c: Cell) => string): void => {
      const svg = d3
        .select(row)
        .append('svg')
        .attr('class', 'heat')
        .attr('width', 60 + ex.experts * cell)
        .attr('height', 24 + ex.layers * cell);
      svg
        .selectAll(`rect.${cls}`)
        .data(ex.cells)
        .join('rect')
        .attr('class', cls)
        .attr('x', (c: Cell) => 60 + c.expert * cell)
        .attr('y', (c: Cell) => 20 + c.layer * cell)
        .attr('width', cell - (cell > 6 ? 1 : 0))
        .attr('height', cell - (cell > 6 ? 1 : 0))
        .attr('fill', fill)
        .on('mousemove', (ev: MouseEvent, c: Cell) =>
          kit.tip(ev, [`layer ${c.layer}, expert ${c.expert}`, `${c.tokens.toPrecision(4)} tokens per step`, `on ${c.devices.join(', ')}`]),
        )
        .on('mouseleave', kit.untip);
      const step = Math.max(1, Math.ceil(14 / cell));
      svg
        .selectAll('text.layer')
        .data(d3.range(0, ex.layers, step))
        .join('text')
        .attr('class', 'axis-label')
        .attr('x', 4)
        .attr('y', (l: number) => 20 + l * cell + Math.min(cell, 12) - 2)
        .text((l: number) => `layer ${l}`);
      svg
        .append('text')
        .attr('class', 'axis-label')
        .attr('x', 60)
        .attr('y', 12)
        .text(cls === 'expert' ? 'expert → (tokens)' : 'expert → (device)');
    };
    grid('expert', (c) => heat(c.tokens));
    grid('expert-device', (c) => kit.deviceColour(c.devices[0] ?? ''));
  }

  const h3 = document.createElement('h3');
  h3.textContent = 'KV cache and state';
  sec.appendChild(h3);
  if (pl.state.length === 0) {
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = 'The model carries no state between steps.';
    sec.appendChild(p);
  } else {
    const rows = drawTable(
      sec,
      ['state', 'kind', 'owner', 'bytes', 'bytes per token'],
      pl.state.map((s) => [s.name, s.kind, s.owner ?? '(none)', bytes(s.bytes), bytes(s.bytes_per_token)]),
      'state',
    );
    rows.forEach((tr, i) => {
      const owner = pl.state[i]!.owner;
      if (owner) (tr.cells[2] as HTMLTableCellElement).style.boxShadow = `inset 4px 0 0 ${kit.deviceColour(owner)}`;
    });
  }
}
