/// <reference lib="dom" />
// The report page's shared helpers. This file's functions run in the browser, not in node: the
// page embeds their source (src/report/html.ts), so each is self-contained — it uses only its
// arguments and the page's globals (d3, inlined from the d3 package, and the DOM).

import type { ReportData } from './data.js';

/** The d3 bundle the page inlines (node_modules/d3/dist/d3.min.js), untyped here. */
export type D3 = any;

export interface Kit {
  d3: D3;
  data: ReportData;
  bytes(n: number): string;
  time(s: number): string;
  rate(bps: number): string;
  /** A colour per planned device, the same in every section. */
  deviceColour(id: string): string;
  linkColour(kind: string): string;
  /** Show the tooltip near the pointer with these lines (the first bold). */
  tip(ev: MouseEvent, lines: string[]): void;
  untip(): void;
  section(id: string, title: string, note?: string): HTMLElement;
  /**
   * A canvas of `width` × `height` CSS pixels under `parent` (sharp on high-density screens), its
   * 2D context, and `hover` to show the tooltip lines `at(x, y)` gives for the pointer (null: none).
   */
  canvas(parent: HTMLElement, className: string, width: number, height: number): DrawnCanvas;
}

export interface DrawnCanvas {
  canvas: HTMLCanvasElement;
  paint: CanvasRenderingContext2D;
  /** Canvas pixels per CSS pixel (the context is scaled by it). */
  ratio: number;
  hover(at: (x: number, y: number) => string[] | null): void;
}

export function makeKit(d3: D3, data: ReportData): Kit {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  const bytes = (n: number): string => {
    let k = 0;
    let v = n;
    while (Math.abs(v) >= 1024 && k < units.length - 1) {
      v /= 1024;
      k++;
    }
    return `${k === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : 1)} ${units[k]}`;
  };
  const time = (s: number): string => {
    const a = Math.abs(s);
    if (a === 0) return '0 s';
    if (a >= 1) return `${s.toPrecision(4)} s`;
    if (a >= 1e-3) return `${(s * 1e3).toPrecision(4)} ms`;
    if (a >= 1e-6) return `${(s * 1e6).toPrecision(4)} µs`;
    return `${(s * 1e9).toPrecision(4)} ns`;
  };
  const rate = (bps: number): string => `${(bps / 1e9).toPrecision(3)} GB/s`;
  const planned = data.devices.filter((d) => d.planned).map((d) => d.id);
  const palette = [...d3.schemeTableau10, ...d3.schemeSet2, ...d3.schemePastel1];
  const colourOf = new Map<string, string>(planned.map((id, i) => [id, i < palette.length ? palette[i] : d3.interpolateRainbow((i * 0.618) % 1)]));
  const linkColours: Record<string, string> = {
    nvlink: '#59a14f',
    pcie: '#4e79a7',
    ethernet: '#f28e2b',
    infiniband: '#b07aa1',
    cxl: '#76b7b2',
    other: '#9c9c9c',
  };
  const tipEl = document.getElementById('tip') as HTMLElement;
  const tip = (ev: MouseEvent, lines: string[]): void => {
    tipEl.replaceChildren();
    lines.forEach((line, i) => {
      const div = document.createElement('div');
      div.textContent = line;
      if (i === 0) div.className = 'tip-head';
      tipEl.appendChild(div);
    });
    tipEl.style.display = 'block';
    const x = Math.min(ev.pageX + 14, window.scrollX + window.innerWidth - tipEl.offsetWidth - 8);
    tipEl.style.left = `${x}px`;
    tipEl.style.top = `${ev.pageY + 14}px`;
  };
  const untip = (): void => {
    tipEl.style.display = 'none';
  };
  const main = document.getElementById('main') as HTMLElement;
  const section = (id: string, title: string, note?: string): HTMLElement => {
    const s = document.createElement('section');
    s.id = id;
    const h = document.createElement('h2');
    h.textContent = title;
    s.appendChild(h);
    if (note) {
      const p = document.createElement('p');
      p.className = 'note';
      p.textContent = note;
      s.appendChild(p);
    }
    main.appendChild(s);
    return s;
  };
  const canvas = (parent: HTMLElement, className: string, width: number, height: number): DrawnCanvas => {
    const el = document.createElement('canvas');
    el.className = className;
    // (Chromium leaves a canvas blank past 32,767 pixels a side: fewer pixels per CSS pixel then.)
    const ratio = Math.min(window.devicePixelRatio || 1, 32767 / Math.max(1, width), 32767 / Math.max(1, height));
    el.width = Math.max(1, Math.round(width * ratio));
    el.height = Math.max(1, Math.round(height * ratio));
    el.style.width = `${width}px`;
    el.style.height = `${height}px`;
    parent.appendChild(el);
    const paint = el.getContext('2d') as CanvasRenderingContext2D;
    paint.scale(ratio, ratio);
    const hover = (at: (x: number, y: number) => string[] | null): void => {
      el.addEventListener('mousemove', (ev) => {
        const box = el.getBoundingClientRect();
        const lines = at(ev.clientX - box.left, ev.clientY - box.top);
        if (lines) tip(ev, lines);
        else untip();
      });
      el.addEventListener('mouseleave', untip);
    };
    return { canvas: el, paint, ratio, hover };
  };
  return {
    d3,
    data,
    bytes,
    time,
    rate,
    deviceColour: (id) => colourOf.get(id) ?? '#cccccc',
    linkColour: (kind) => linkColours[kind] ?? linkColours.other!,
    tip,
    untip,
    section,
    canvas,
  };
}

/** A table of rows (cells as text) under `parent`; returns the body's rows. */
export function drawTable(parent: HTMLElement, header: string[], rows: string[][], className: string): HTMLTableRowElement[] {
  const table = document.createElement('table');
  table.className = className;
  const head = table.createTHead().insertRow();
  for (const h of header) {
    const th = document.createElement('th');
    th.textContent = h;
    head.appendChild(th);
  }
  const body = table.createTBody();
  const out = rows.map((cells) => {
    const tr = body.insertRow();
    for (const c of cells) tr.insertCell().textContent = c;
    return tr;
  });
  parent.appendChild(table);
  return out;
}

/** The header: what was planned and the figures the plan ships with. */
export function drawSummary(kit: Kit): void {
  const { data, time } = kit;
  const s = data.summary;
  const head = document.getElementById('summary') as HTMLElement;
  const dims = Object.entries(s.dims)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  const figures: [string, string][] = [
    ['latency per request', time(s.latency_s)],
    [`throughput (${s.throughput_requests} requests)`, `${s.throughput_per_s.toPrecision(4)} /s`],
    // The objective's bound, as the CLI prints it: the gap is to that one.
    s.objective === 'throughput' ? ['throughput bound', `${s.throughput_upper_per_s.toPrecision(4)} /s`] : ['lower bound', time(s.lower_bound_s)],
    ['gap to the bound', s.gap === null ? '—' : `${(s.gap * 100).toFixed(1)}%`],
    ['shipped', s.chosen],
    ['objective', s.objective],
  ];
  if (s.kv_sequences !== null) figures.push(['KV sequences', String(s.kv_sequences)]);
  // A serving plan: what it serves first; the figures after are its prefill plan's.
  if (s.serve) {
    const v = s.serve;
    figures.unshift(
      ['serve capacity (90% within the SLOs)', `${v.capacity_per_s.toPrecision(4)} /s`],
      ['goodput (mean over the rates)', `${v.goodput_per_s.toPrecision(4)} /s`],
      [`TTFT p90 (SLO ${time(v.slo.ttft_p90_s)})`, time(v.ttft_p90_s)],
      [`TPOT p90 (SLO ${time(v.slo.tpot_p90_s)})`, time(v.tpot_p90_s)],
    );
    for (const f of figures.slice(4)) f[0] = `prefill plan: ${f[0]}`;
  }
  const grid = document.createElement('div');
  grid.className = 'figures';
  for (const [k, v] of figures) {
    const box = document.createElement('div');
    box.className = 'figure';
    const b = document.createElement('b');
    b.textContent = v;
    const small = document.createElement('span');
    small.textContent = k;
    box.append(b, small);
    grid.appendChild(box);
  }
  const p = document.createElement('p');
  p.className = 'note';
  p.textContent = `model ${s.model}; rack ${s.topology} (${data.rack_source}); phase ${s.phase ?? 'none'}${dims ? `; ${dims}` : ''}${
    s.serve
      ? `; serving ${s.serve.disaggregated ? `disaggregated: prefill on ${s.serve.pools.prefill.join(', ')}, decode on ${s.serve.pools.decode.join(', ')}` : 'colocated'} (${s.serve.why}); the decode plan is in ${s.serve.decode_plan}/ (hxc report ${s.serve.decode_plan} draws it)`
      : ''
  }`;
  head.append(grid, p);
}
