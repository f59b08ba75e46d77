/// <reference lib="dom" />
// The report's timeline: a Gantt per device of compute steps (top) and the transfers it receives
// (below), for one request (the plan's own estimate, critical path in red) and for pipelined
// requests (the simulator's run of the same steps); zoom and pan with the wheel and drag (d3-zoom).
// Runs in the browser (see client-kit.ts).

import type { Kit } from './client-kit.js';
import type { Bar } from './data.js';

export function drawTimeline(kit: Kit): void {
  const { d3, data, time, bytes } = kit;
  const tl = data.timeline;
  const sec = kit.section(
    'timeline',
    'Timeline',
    `One request: every compute step and transfer as the plan estimates it; the critical path in red. Pipelined: ${tl.pipelined_requests} request${tl.pipelined_requests === 1 ? '' : 's'} run through the same steps by the simulator${tl.pipelined_requests < tl.throughput_requests ? ` (of the ${tl.throughput_requests} the throughput is judged over)` : ''}. Wheel to zoom, drag to pan.`,
  );
  const controls = document.createElement('div');
  controls.className = 'controls';
  sec.appendChild(controls);
  const views: [string, string][] = [
    ['one', 'one request'],
    ['pipelined', `pipelined (${tl.pipelined_requests} requests)`],
  ];
  const buttons = views.map(([key, text]) => {
    const b = document.createElement('button');
    b.textContent = text;
    b.dataset.view = key;
    b.addEventListener('click', () => show(key));
    controls.appendChild(b);
    return b;
  });
  // Lanes: the plan's devices in plan order (a bar's first field indexes them).
  const lanes = tl.lanes;
  const left = 90;
  const laneH = 30;
  const width = Math.max(720, Math.min(1400, document.body.clientWidth - 40));
  const height = lanes.length * laneH + 36;
  const svg = d3.select(sec).append('svg').attr('class', 'gantt').attr('width', width).attr('height', height);
  svg
    .append('defs')
    .append('clipPath')
    .attr('id', 'gantt-clip')
    .append('rect')
    .attr('x', left)
    .attr('y', 0)
    .attr('width', width - left - 10)
    .attr('height', height);
  svg
    .append('g')
    .selectAll('text')
    .data(lanes)
    .join('text')
    .attr('class', 'lane-name')
    .attr('x', 6)
    .attr('y', (_: unknown, i: number) => i * laneH + 18)
    .text((d: string) => d);
  svg
    .append('g')
    .selectAll('line')
    .data(lanes)
    .join('line')
    .attr('class', 'lane-line')
    .attr('x1', left)
    .attr('x2', width - 10)
    .attr('y1', (_: unknown, i: number) => (i + 1) * laneH - 1)
    .attr('y2', (_: unknown, i: number) => (i + 1) * laneH - 1);
  const plot = svg.append('g').attr('clip-path', 'url(#gantt-clip)');
  const axisG = svg
    .append('g')
    .attr('class', 'axis')
    .attr('transform', `translate(0,${lanes.length * laneH + 4})`);
  const x0 = d3.scaleLinear().range([left, width - 10]);
  let x = x0;
  let bars: Bar[] = [];
  let current = '';
  const critical = new Set(tl.critical);
  const requestColour = d3.scaleOrdinal(d3.schemeTableau10);
  const fmtAxis = (s: number): string => time(s);

  const place = (sel: { attr: (k: string, f: unknown) => unknown }): void => {
    sel.attr('x', (i: number) => x(bars[i]![1]));
    sel.attr('width', (i: number) => Math.max(1, x(bars[i]![2]) - x(bars[i]![1])));
  };
  const axis = (): void => {
    axisG.call(
      d3
        .axisBottom(x)
        .ticks(Math.floor((width - left) / 90))
        .tickFormat(fmtAxis),
    );
  };
  const zoom = d3
    .zoom()
    .scaleExtent([1, 1e6])
    .extent([
      [left, 0],
      [width - 10, height],
    ])
    .translateExtent([
      [left, 0],
      [width - 10, height],
    ])
    .on('zoom', (ev: { transform: { rescaleX: (s: unknown) => typeof x0 } }) => {
      x = ev.transform.rescaleX(x0);
      place(plot.selectAll('rect.bar'));
      axis();
    });
  svg.call(zoom);

  function show(view: string): void {
    if (view === current) return;
    current = view;
    buttons.forEach((b) => b.classList.toggle('on', b.dataset.view === view));
    svg.call(zoom.transform, d3.zoomIdentity);
    bars = view === 'one' ? tl.one : tl.pipelined;
    const end = Math.max(1e-12, d3.max(bars, (b: Bar) => b[2]) ?? 0);
    x0.domain([0, end * 1.01]);
    x = x0;
    const bar = (i: number): Bar => bars[i]!;
    plot
      .selectAll('rect.bar')
      .data(d3.range(bars.length))
      .join('rect')
      .attr('class', (i: number) => `bar ${bar(i)[3] === 0 ? 'compute' : 'transfer'}${view === 'one' && critical.has(i) ? ' critical' : ''}`)
      .attr('y', (i: number) => bar(i)[0] * laneH + (bar(i)[3] === 0 ? 3 : 20))
      .attr('height', (i: number) => (bar(i)[3] === 0 ? 16 : 6))
      .attr('fill', (i: number) =>
        view === 'one'
          ? critical.has(i)
            ? '#d62728'
            : bar(i)[3] === 0
              ? '#4e79a7'
              : '#f28e2b'
          : bar(i)[3] === 0
            ? requestColour(String(bar(i)[5] % 10))
            : '#f28e2b',
      )
      .on('mousemove', (ev: MouseEvent, i: number) => {
        const b = bar(i);
        const lane = lanes[b[0]] ?? '';
        const lines = [
          `${data.labels[b[4]]}`,
          b[3] === 0 ? `compute on ${lane}` : `transfer into ${lane}`,
          `${time(b[1])} → ${time(b[2])} (${time(b[2] - b[1])})`,
        ];
        if (view === 'pipelined') lines.push(`request ${b[5]}`);
        if (b[3] === 1) {
          const t = tl.transfer_detail.find((d) => d.value === data.labels[b[4]] && d.to === lane);
          if (t) lines.push(`${bytes(t.bytes)} ${t.from} → ${t.to} over ${t.route.join(', ')}`);
        }
        if (view === 'one' && critical.has(i)) lines.push('on the critical path');
        kit.tip(ev, lines);
      })
      .on('mouseleave', kit.untip);
    place(plot.selectAll('rect.bar'));
    axis();
  }
  show('one');
  const legend = document.createElement('p');
  legend.className = 'note';
  const crit = tl.critical.reduce((s, i) => s + (tl.one[i]![2] - tl.one[i]![1]), 0);
  legend.textContent = `${tl.one.length} bars for one request (${tl.one.filter((b) => b[3] === 0).length} compute steps, ${tl.one.filter((b) => b[3] === 1).length} transfers); critical path: ${tl.critical.length} steps and transfers spanning ${time(crit)} of the ${time(data.summary.latency_s)} latency.`;
  sec.appendChild(legend);
}
