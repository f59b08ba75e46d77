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
  // Lanes: the plan's devices in plan order (a bar's first field indexes them). The lanes, their
  // names and the axis are SVG; the bars are drawn on a canvas over the plot: a DeepSeek-V3-shaped
  // plan has 82k of them, and as SVG rects its page took 9 s to open and ~1 s per zoom step
  // (Chromium, headless), every rect placed again at each step.
  const lanes = tl.lanes;
  const left = 90;
  const laneH = 30;
  const width = Math.max(720, Math.min(1400, document.body.clientWidth - 40));
  const height = lanes.length * laneH + 36;
  const box = document.createElement('div');
  box.className = 'gantt-box';
  sec.appendChild(box);
  const svg = d3.select(box).append('svg').attr('class', 'gantt').attr('width', width).attr('height', height);
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
  const axisG = svg
    .append('g')
    .attr('class', 'axis')
    .attr('transform', `translate(0,${lanes.length * laneH + 4})`);
  // The plot: x from `left` to width − 10 in the SVG's coordinates (its 1px border outside them).
  const plotW = width - 10 - left;
  const plotH = lanes.length * laneH;
  const { canvas, paint, ratio } = kit.canvas(box, 'gantt-bars', plotW, plotH);
  canvas.style.left = `${left + 1}px`;
  canvas.style.top = '1px';
  const x0 = d3.scaleLinear().range([left, width - 10]);
  let x = x0;
  let bars: Bar[] = [];
  let current = '';
  const critical = new Set(tl.critical);
  const requestColour = d3.scaleOrdinal(d3.schemeTableau10);
  const fmtAxis = (s: number): string => time(s);
  // The view's bars by colour (one fill style set per colour, not per bar), critical ones last
  // (drawn over the rest, outlined); and per lane and kind (0 compute, 1 transfer) by start, for
  // finding the bar under the pointer.
  let byColour: [string, number[]][] = [];
  let byLane: number[][][] = [];
  let byLaneReach: Float64Array[][] = [];
  const COMPUTE_Y = 3;
  const COMPUTE_H = 16;
  const TRANSFER_Y = 20;
  const TRANSFER_H = 6;
  const draw = (): void => {
    // (The whole backing store, whatever the pixel ratio rounds it to.)
    paint.setTransform(1, 0, 0, 1, 0, 0);
    paint.clearRect(0, 0, canvas.width, canvas.height);
    paint.setTransform(ratio, 0, 0, ratio, 0, 0);
    const [d0, d1] = x.domain() as [number, number];
    let painted = 0;
    for (const [colour, list] of byColour) {
      paint.fillStyle = colour;
      const outline = colour === '#d62728';
      if (outline) {
        paint.strokeStyle = '#7f0000';
        paint.lineWidth = 0.6;
      }
      for (const i of list) {
        const b = bars[i]!;
        if (b[2] < d0 || b[1] > d1) continue;
        const bx = x(b[1]) - left;
        const w = Math.max(1, x(b[2]) - x(b[1]));
        const by = b[0] * laneH + (b[3] === 0 ? COMPUTE_Y : TRANSFER_Y);
        const h = b[3] === 0 ? COMPUTE_H : TRANSFER_H;
        paint.fillRect(bx, by, w, h);
        if (outline) paint.strokeRect(bx, by, w, h);
        painted++;
      }
    }
    canvas.dataset.domain = `${d0},${d1}`;
    canvas.dataset.painted = String(painted);
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
      draw();
      axis();
    });
  svg.call(zoom);

  /** The bar under the pointer at (px, py) in the SVG's coordinates, or -1: within a pixel of it along x. */
  const barAt = (px: number, py: number): number => {
    if (px < left || px > width - 10) return -1;
    const lane = Math.floor(py / laneH);
    const inLane = py - lane * laneH;
    const kind = inLane >= COMPUTE_Y && inLane < COMPUTE_Y + COMPUTE_H ? 0 : inLane >= TRANSFER_Y && inLane < TRANSFER_Y + TRANSFER_H ? 1 : -1;
    const list = kind < 0 ? undefined : byLane[lane]?.[kind];
    if (!list || list.length === 0) return -1;
    const t = x.invert(px);
    const slack = x.invert(px + 1) - t;
    // The last bar starting by t (+ a pixel), then back over the bars while one before may still
    // reach t (transfers into a device overlap; compute steps on one do not): `reach`, the latest
    // end up to each place in the list, says when none can.
    const reach = byLaneReach[lane]![kind]!;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (bars[list[mid]!]![1] <= t + slack) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo - 1; k >= 0 && reach[k]! >= t - slack; k--) if (bars[list[k]!]![2] >= t - slack) return list[k]!;
    return -1;
  };
  svg
    .on('mousemove', (ev: MouseEvent) => {
      const [px, py] = d3.pointer(ev, svg.node()) as [number, number];
      const i = barAt(px, py);
      if (i < 0) {
        kit.untip();
        return;
      }
      const b = bars[i]!;
      const lane = lanes[b[0]] ?? '';
      const lines = [
        `${data.labels[b[4]]}`,
        b[3] === 0 ? `compute on ${lane}` : `transfer into ${lane}`,
        `${time(b[1])} → ${time(b[2])} (${time(b[2] - b[1])})`,
      ];
      if (current === 'pipelined') lines.push(`request ${b[5]}`);
      if (b[3] === 1) {
        const t = tl.transfer_detail.find((d) => d.value === data.labels[b[4]] && d.to === lane);
        if (t) lines.push(`${bytes(t.bytes)} ${t.from} → ${t.to} over ${t.route.join(', ')}`);
      }
      if (current === 'one' && critical.has(i)) lines.push('on the critical path');
      kit.tip(ev, lines);
    })
    .on('mouseleave', kit.untip);

  function show(view: string): void {
    if (view === current) return;
    current = view;
    buttons.forEach((b) => b.classList.toggle('on', b.dataset.view === view));
    bars = view === 'one' ? tl.one : tl.pipelined;
    const colourOf = (i: number): string => {
      const b = bars[i]!;
      if (view === 'one') return critical.has(i) ? '#d62728' : b[3] === 0 ? '#4e79a7' : '#f28e2b';
      return b[3] === 0 ? requestColour(String(b[5] % 10)) : '#f28e2b';
    };
    const groups = new Map<string, number[]>();
    byLane = lanes.map(() => [[], []]);
    for (let i = 0; i < bars.length; i++) {
      const colour = colourOf(i);
      (groups.get(colour) ?? groups.set(colour, []).get(colour)!).push(i);
      byLane[bars[i]![0]]?.[bars[i]![3]]?.push(i);
    }
    byColour = [...groups].sort((a, b) => (a[0] === '#d62728' ? 1 : 0) - (b[0] === '#d62728' ? 1 : 0));
    for (const lane of byLane) for (const list of lane) list.sort((a, b) => bars[a]![1] - bars[b]![1] || a - b);
    byLaneReach = byLane.map((lane) =>
      lane.map((list) => {
        const reach = new Float64Array(list.length);
        for (let k = 0; k < list.length; k++) reach[k] = Math.max(k > 0 ? reach[k - 1]! : -Infinity, bars[list[k]!]![2]);
        return reach;
      }),
    );
    canvas.dataset.view = view;
    canvas.dataset.bars = String(bars.length);
    canvas.dataset.computeBars = String(bars.reduce((n, b) => n + (b[3] === 0 ? 1 : 0), 0));
    canvas.dataset.critical = String(view === 'one' ? critical.size : 0);
    const end = Math.max(1e-12, d3.max(bars, (b: Bar) => b[2]) ?? 0);
    x0.domain([0, end * 1.01]);
    x = x0;
    // (Resetting the zoom draws the bars and the axis: its event does.)
    svg.call(zoom.transform, d3.zoomIdentity);
  }
  show('one');
  const legend = document.createElement('p');
  legend.className = 'note';
  const crit = tl.critical.reduce((s, i) => s + (tl.one[i]![2] - tl.one[i]![1]), 0);
  legend.textContent = `${tl.one.length} bars for one request (${tl.one.filter((b) => b[3] === 0).length} compute steps, ${tl.one.filter((b) => b[3] === 1).length} transfers); critical path: ${tl.critical.length} steps and transfers spanning ${time(crit)} of the ${time(data.summary.latency_s)} latency.`;
  sec.appendChild(legend);
}
