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
  // Drawn on a canvas, as the heat maps below: the DeepSeek-V3-shaped plan has ~28k runs and
  // 2 × 14,848 expert cells, which as SVG rects were a third of its page's elements; the item
  // under the pointer is found from where it is drawn.
  const strip = kit.canvas(sec, 'strip', width, y + rowH);
  for (const r of runs) {
    strip.paint.fillStyle = kit.deviceColour(r.device);
    strip.paint.fillRect(r.x, r.y, Math.max(0.5, r.w), 22);
  }
  strip.paint.strokeStyle = '#333';
  strip.paint.lineWidth = 0.6;
  strip.paint.fillStyle = '#656d76';
  strip.paint.font = '10px system-ui, sans-serif';
  for (const st of stageBoxes) {
    strip.paint.strokeRect(st.x, st.y, st.w, 22);
    if (st.w > st.name.length * 6) strip.paint.fillText(st.name, st.x + 2, st.y + 32);
  }
  strip.canvas.dataset.runs = String(runs.length);
  strip.canvas.dataset.stages = String(stageBoxes.length);
  // Runs are laid out in order, row by row, left to right: the last run starting at or before the
  // pointer in its row is the one under it, when the pointer is within its width.
  strip.hover((px, py) => {
    const row = Math.floor(py / rowH);
    if (py - row * rowH >= 22) return null;
    let lo = 0;
    let hi = runs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const r = runs[mid]!;
      if (r.y < row * rowH || (r.y === row * rowH && r.x <= px)) lo = mid + 1;
      else hi = mid;
    }
    const r = lo > 0 ? runs[lo - 1]! : null;
    if (!r || r.y !== row * rowH || px > r.x + Math.max(0.5, r.w)) return null;
    return [r.stage, `${r.units} unit${r.units === 1 ? '' : 's'} on ${r.device}`, `resident ${bytes(r.resident_bytes)}`];
  });

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
    // Cells by layer and expert, for the pointer (a cell per expert of each layer, as the plan lists them).
    const cellAt = new Map<number, Cell>();
    for (const c of ex.cells) cellAt.set(c.layer * ex.experts + c.expert, c);
    const grid = (cls: string, fill: (c: Cell) => string): void => {
      const map = kit.canvas(row, `heat ${cls}`, 60 + ex.experts * cell, 24 + ex.layers * cell);
      const side = cell - (cell > 6 ? 1 : 0);
      for (const c of ex.cells) {
        map.paint.fillStyle = fill(c);
        map.paint.fillRect(60 + c.expert * cell, 20 + c.layer * cell, side, side);
      }
      map.paint.fillStyle = '#656d76';
      map.paint.font = '10px system-ui, sans-serif';
      const step = Math.max(1, Math.ceil(14 / cell));
      for (let l = 0; l < ex.layers; l += step) map.paint.fillText(`layer ${l}`, 4, 20 + l * cell + Math.min(cell, 12) - 2);
      map.paint.fillText(cls === 'expert' ? 'expert → (tokens)' : 'expert → (device)', 60, 12);
      map.canvas.dataset.cells = String(ex.cells.length);
      map.hover((px, py) => {
        if (px < 60 || py < 20) return null;
        const expert = Math.floor((px - 60) / cell);
        const layer = Math.floor((py - 20) / cell);
        const c = expert < ex.experts ? cellAt.get(layer * ex.experts + expert) : undefined;
        return c ? [`layer ${c.layer}, expert ${c.expert}`, `${c.tokens.toPrecision(4)} tokens per step`, `on ${c.devices.join(', ')}`] : null;
      });
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
      ['state', 'kind', 'held by', 'bytes', 'bytes per token'],
      // A state written apart (a layer's key on one device, its value on another) names every holder and its bytes.
      pl.state.map((s) => [
        s.name,
        s.kind,
        s.owners.length > 1 ? s.owners.map((o) => `${o.device} ${bytes(o.bytes)}`).join(', ') : (s.owner ?? '(none)'),
        bytes(s.bytes),
        bytes(s.bytes_per_token),
      ]),
      'state',
    );
    rows.forEach((tr, i) => {
      const owner = pl.state[i]!.owner;
      if (owner) (tr.cells[2] as HTMLTableCellElement).style.boxShadow = `inset 4px 0 0 ${kit.deviceColour(owner)}`;
    });
  }
}
