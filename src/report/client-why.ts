/// <reference lib="dom" />
// The report's why: the bound and the gap, every candidate and baseline the plan was judged
// against, the variants weighed, the explain table (unit, device, reason, alternatives) with a
// search; and the comparison with another plan or a replan's running plan. Runs in the browser
// (see client-kit.ts).

import { drawTable, type Kit } from './client-kit.js';

export function drawWhy(kit: Kit): void {
  const { data, time, bytes } = kit;
  /** Explain rows drawn at once; a search narrows the rest. */
  const EXPLAIN_ROWS = 3000;
  const why = data.why;
  const s = data.summary;
  const sec = kit.section(
    'why',
    'Why',
    s.objective === 'throughput'
      ? `Throughput bound ${s.throughput_upper_per_s.toPrecision(4)} /s (the busiest device at least ${time(why.bounds.memory_spread_s)} per request); ${s.gap === null ? 'the shipped plan is not bounded' : `it is ${(s.gap * 100).toFixed(1)}% above the shipped plan's ${s.throughput_per_s.toPrecision(4)} /s`}. Latency lower bound ${time(s.lower_bound_s)} (critical path ${time(why.bounds.critical_path_s)}).`
      : `Lower bound ${time(s.lower_bound_s)} (critical path ${time(why.bounds.critical_path_s)}, work over speed ${time(why.bounds.work_over_speed_s)}, memory spread ${time(why.bounds.memory_spread_s)}${why.bounds.milp_s !== undefined ? `, exact MILP ${time(why.bounds.milp_s)}` : ''}); the shipped plan is ${s.gap === null ? 'not bounded' : `${(s.gap * 100).toFixed(1)}% above it`}.`,
  );
  const h3 = document.createElement('h3');
  h3.textContent = 'Candidates and baselines (simulated alike)';
  sec.appendChild(h3);
  const rows = drawTable(
    sec,
    ['plan', 'what', 'latency', 'throughput', 'fits'],
    why.candidates.map((c) => [
      c.shipped ? `${c.name} (shipped)` : c.name,
      `${c.kind}: ${c.label}`,
      time(c.latency_s),
      c.throughput_per_s === null ? 'not simulated' : `${c.throughput_per_s.toPrecision(4)} /s`,
      c.fits ? 'yes' : 'no',
    ]),
    'candidates',
  );
  rows.forEach((tr, i) => why.candidates[i]!.shipped && tr.classList.add('shipped'));
  if (why.variants.length > 1) {
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = `Variants weighed: ${why.variants.map((v) => `${v.name} (${v.splits} splits) ${time(v.latency_s)}${v.shipped ? ' ← shipped' : ''}`).join('; ')}.`;
    sec.appendChild(p);
  }

  const h4 = document.createElement('h3');
  h4.textContent = `Every unit: where it runs and why (${why.explain.length})`;
  sec.appendChild(h4);
  const search = document.createElement('input');
  search.type = 'search';
  search.id = 'explain-search';
  search.placeholder = 'search units, stages, devices, reasons…';
  const count = document.createElement('span');
  count.className = 'note';
  sec.append(search, count);
  const holder = document.createElement('div');
  sec.appendChild(holder);
  const text = why.explain.map((e) => `${e.unit} ${e.stage} ${e.device} ${e.reason} ${e.alternatives.join(' ')}`.toLowerCase());
  const render = (): void => {
    const q = search.value.trim().toLowerCase();
    const hits: number[] = [];
    text.forEach((t, i) => (q === '' || t.includes(q)) && hits.push(i));
    holder.replaceChildren();
    const shown = hits.slice(0, EXPLAIN_ROWS);
    const trs = drawTable(
      holder,
      ['unit', 'stage', 'device', 'finishes', 'resident', 'reason', 'alternatives'],
      shown.map((i) => {
        const e = why.explain[i]!;
        return [e.unit, e.stage, e.device, time(e.finish_s), bytes(e.resident_bytes), e.reason, e.alternatives.map((a) => a.split(' — ')[0]).join(' · ')];
      }),
      'explain',
    );
    trs.forEach((tr, k) => {
      tr.classList.add('explain-row');
      const e = why.explain[shown[k]!]!;
      (tr.cells[2] as HTMLTableCellElement).style.boxShadow = `inset 4px 0 0 ${kit.deviceColour(e.device)}`;
      tr.cells[6]!.title = e.alternatives.join('\n');
    });
    count.textContent = ` ${hits.length} of ${why.explain.length} units${hits.length > shown.length ? `; the first ${shown.length} shown, search to narrow` : ''}`;
  };
  search.addEventListener('input', render);
  render();
}

export function drawCompare(kit: Kit): void {
  const { d3, data, time, bytes } = kit;
  const c = data.compare;
  if (!c) {
    kit.section('compare', 'Compare', 'Nothing to compare with: give --compare OTHER_PLAN_DIR, or report a replan (its delta.json names the running plan).');
    return;
  }
  const sec = kit.section('compare', 'Compare', `This plan against ${c.against}: ${c.moved.length} units moved, ${bytes(c.migration_bytes)} carried.`);
  drawTable(
    sec,
    ['', 'before', 'after', 'change'],
    [
      ['latency', time(c.before.latency_s), time(c.after.latency_s), pct(c.after.latency_s, c.before.latency_s)],
      [
        'throughput',
        `${c.before.throughput_per_s.toPrecision(4)} /s`,
        `${c.after.throughput_per_s.toPrecision(4)} /s`,
        pct(c.after.throughput_per_s, c.before.throughput_per_s),
      ],
    ],
    'figures-table',
  );
  // Per device: memory before and after, side by side.
  const devs = c.devices.filter((d) => d.memory_bytes[0] !== null || d.memory_bytes[1] !== null);
  if (devs.length) {
    const width = Math.max(600, Math.min(1200, devs.length * 70 + 80));
    const height = 200;
    const y = d3
      .scaleLinear()
      .domain([0, d3.max(devs, (d: (typeof devs)[number]) => Math.max(d.memory_bytes[0] ?? 0, d.memory_bytes[1] ?? 0)) || 1])
      .range([height - 30, 10]);
    const x = d3
      .scaleBand()
      .domain(devs.map((d) => d.id))
      .range([70, width - 10])
      .padding(0.25);
    const svg = d3.select(sec).append('svg').attr('class', 'compare-mem').attr('width', width).attr('height', height);
    svg
      .append('g')
      .attr('transform', `translate(0,${height - 30})`)
      .call(d3.axisBottom(x));
    svg.append('g').attr('transform', 'translate(70,0)').call(d3.axisLeft(y).ticks(5).tickFormat(bytes));
    for (const [k, colour] of [
      [0, '#bab0ac'],
      [1, '#4e79a7'],
    ] as const) {
      svg
        .append('g')
        .selectAll('rect')
        .data(devs)
        .join('rect')
        .attr('x', (d: (typeof devs)[number]) => x(d.id) + (k * x.bandwidth()) / 2)
        .attr('width', x.bandwidth() / 2)
        .attr('y', (d: (typeof devs)[number]) => y(d.memory_bytes[k] ?? 0))
        .attr('height', (d: (typeof devs)[number]) => y(0) - y(d.memory_bytes[k] ?? 0))
        .attr('fill', colour)
        .on('mousemove', (ev: MouseEvent, d: (typeof devs)[number]) =>
          kit.tip(ev, [
            d.id,
            `memory ${d.memory_bytes[0] === null ? '—' : bytes(d.memory_bytes[0])} → ${d.memory_bytes[1] === null ? '—' : bytes(d.memory_bytes[1])}`,
            `utilisation ${fmtUtil(d.utilisation[0])} → ${fmtUtil(d.utilisation[1])}`,
          ]),
        )
        .on('mouseleave', kit.untip);
    }
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = 'Memory per device: grey before, blue after.';
    sec.appendChild(p);
  }
  if (c.moved.length) {
    drawTable(
      sec,
      ['unit', 'from', 'to', 'carries', 'why'],
      c.moved.map((m) => [m.unit, m.from ?? '(new)', m.to, bytes(m.bytes), m.why]),
      'moved',
    );
  }

  function pct(after: number, before: number): string {
    return before > 0 ? `${((after / before - 1) * 100).toFixed(2)}%` : '—';
  }
  function fmtUtil(u: number | null): string {
    return u === null ? '—' : `${(u * 100).toFixed(1)}%`;
  }
}
