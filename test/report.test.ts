// hxc report (issue 14): one self-contained HTML page per plan, loaded in a real browser — Debian's
// Chromium, headless, driven by puppeteer-core. The page must load without a console error and
// draw every device of the rack and every compute step and transfer of the plan; the search must
// filter the explain table; a replan's page and a --compare page must list what moved. A screenshot
// of each page is kept in test-artifacts/ (CI keeps that folder).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { EXAMPLES, FIXTURES, REPO, SHARED_MODELS, hxc, isOneLineError, servingPlan, tmpDir } from './helpers.js';

const ARTIFACTS = path.join(REPO, 'test-artifacts');

/** The system browser (.ci/run installs Debian's chromium when it is missing); HXC_CHROMIUM overrides. */
function chromium(): string {
  const candidates = [process.env.HXC_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => !!p);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`no Chromium at ${candidates.join(', ')}: install it (apt-get install chromium) or set HXC_CHROMIUM`);
  return found;
}

let browser: Browser;
before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await puppeteer.launch({ executablePath: chromium(), args: ['--no-sandbox', '--disable-gpu'], headless: true });
});
after(async () => {
  await browser?.close();
});

interface Loaded {
  page: Page;
  errors: string[];
}

/** Opens a report from disk, failing on any console error, page error or request that failed. */
async function open(file: string): Promise<Loaded> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => errors.push(`page: ${String(e)}`));
  page.on('requestfailed', (r) => errors.push(`request: ${r.url()}`));
  page.on('request', (r) => !r.url().startsWith('file:') && !r.url().startsWith('data:') && errors.push(`network: ${r.url()}`));
  await page.setViewport({ width: 1400, height: 1000 });
  await page.goto(`file://${file}`, { waitUntil: 'load' });
  await page.waitForFunction(() => document.body.dataset.ready === 'yes', { timeout: 20_000 });
  return { page, errors };
}

function planJson(dir: string): Record<string, any> {
  return JSON.parse(fs.readFileSync(path.join(dir, 'plan.json'), 'utf8'));
}

/** Every device of the rack drawn; every compute step and every transfer of the one-request timeline drawn. */
async function assertDrawn(page: Page, plan: Record<string, any>, rackDevices: number): Promise<void> {
  const ids: string[] = await page.$$eval('g.device', (gs) => gs.map((g) => g.getAttribute('data-device') ?? ''));
  assert.equal(ids.length, rackDevices, 'one card per device of the rack');
  for (const d of plan.devices) assert.ok(ids.includes(d.id), `device ${d.id} is drawn`);
  const computeSteps = plan.devices.reduce((n: number, d: any) => n + d.steps.filter((s: any) => s.op === 'compute').length, 0);
  const bars = await page.$eval('#timeline canvas.gantt-bars', (c) => ({ ...(c as HTMLCanvasElement).dataset }));
  assert.equal(bars.view, 'one');
  assert.equal(Number(bars.bars), computeSteps + plan.transfers.length, 'one bar per compute step and per transfer');
  assert.equal(Number(bars.computeBars), computeSteps, 'one compute bar per compute step');
  assert.equal(Number(bars.painted), Number(bars.bars), 'unzoomed, every bar is painted');
  assert.ok(Number(bars.critical) > 0, 'a critical path is highlighted');
  // The bars are painted: the canvas holds the critical path's red, and the longest compute step
  // answers the pointer with its device.
  const red = await page.$eval('#timeline canvas.gantt-bars', (c) => {
    const canvas = c as HTMLCanvasElement;
    const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i] === 0xd6 && px[i + 1] === 0x27 && px[i + 2] === 0x28) n++;
    return n;
  });
  assert.ok(red > 0, 'critical bars are painted');
  await assertHover(page, plan);
  const rows = await page.$$eval('tr.explain-row', (r) => r.length);
  assert.equal(rows, Math.min(plan.explain.length, 3000), 'one explain row per unit');
  const cells = await page.$$eval('#placement canvas.heat', (c) => c.map((x) => Number((x as HTMLCanvasElement).dataset.cells)));
  assert.deepEqual(cells, plan.experts.length > 0 ? [plan.experts.length, plan.experts.length] : [], 'one cell per expert in each heat map');
  if (plan.experts.length > 0) {
    // An expert of the last layer, under the pointer: its layer, its number and its devices. Cells
    // are squares in rows by layer from y = 20 and columns by expert from x = 60.
    const last = plan.experts.reduce((a: any, b: any) => (b.layer > a.layer || (b.layer === a.layer && b.expert > a.expert) ? b : a));
    const perLayer = 1 + plan.experts.reduce((m: number, e: any) => Math.max(m, e.expert), 0);
    const map = (await page.$('#placement canvas.heat.expert'))!;
    await map.scrollIntoView();
    const box = (await map.boundingBox())!;
    const cell = (box.width - 60) / perLayer;
    await page.mouse.move(box.x + 60 + (last.expert + 0.5) * cell, box.y + 20 + (last.layer + 0.5) * cell);
    const lines = await page.$$eval('#tip div', (d) => d.map((x) => x.textContent ?? ''));
    assert.equal(lines[0], `layer ${last.layer}, expert ${last.expert}`, lines.join(' / '));
    const devices = [...new Set(last.replicas.flatMap((r: any) => r.devices))].sort();
    assert.equal(lines[2], `on ${devices.join(', ')}`, lines.join(' / '));
  }
  const runs = Number(await page.$eval('#placement canvas.strip', (c) => (c as HTMLCanvasElement).dataset.runs));
  assert.ok(runs > 0 && runs <= plan.explain.length, 'the layer strip is drawn');
  // The strip's first run, under the pointer: its units and device, as the page's data lists them.
  const first = await page.$eval('#hxc-data', (d) => JSON.parse(d.textContent ?? '{}').placement.stages[0].runs[0]);
  const strip = (await page.$('#placement canvas.strip'))!;
  await strip.scrollIntoView();
  const sbox = (await strip.boundingBox())!;
  await page.mouse.move(sbox.x + 1, sbox.y + 11);
  const runLines = await page.$$eval('#tip div', (d) => d.map((x) => x.textContent ?? ''));
  assert.equal(runLines[1], `${first.units} unit${first.units === 1 ? '' : 's'} on ${first.device}`, runLines.join(' / '));
}

/**
 * The pointer over the middle of the one-request timeline's longest compute step shows that step:
 * its device and its times (the timeline is a canvas, so the bar is found from where it is drawn:
 * lanes 30 px high, the plot 90 px in from the left, the x domain the canvas says).
 */
async function assertHover(page: Page, plan: Record<string, any>): Promise<void> {
  let longest: { device: string; unit: string; start: number; end: number } | null = null;
  for (const d of plan.devices)
    for (const st of d.steps)
      if (st.op === 'compute' && (!longest || st.end_s - st.start_s > longest.end - longest.start))
        longest = { device: d.id, unit: st.unit, start: st.start_s, end: st.end_s };
  assert.ok(longest, 'the plan has a compute step');
  const lanes: string[] = await page.$$eval('#timeline .lane-name', (t) => t.map((x) => x.textContent ?? ''));
  const lane = lanes.indexOf(longest.device);
  assert.ok(lane >= 0, `${longest.device} has a lane`);
  await page.$eval('#timeline svg.gantt', (svg) => svg.scrollIntoView({ block: 'center' }));
  const [d0, d1] = (await page.$eval('#timeline canvas.gantt-bars', (c) => (c as HTMLCanvasElement).dataset.domain ?? '')).split(',').map(Number) as [
    number,
    number,
  ];
  // The SVG's box is its width (box-sizing: border-box), its 1px border inside: the plot spans
  // x = 90 … width − 10 from the border's inner edge.
  const box = (await (await page.$('#timeline svg.gantt'))!.boundingBox())!;
  const at = box.x + 1 + 90 + (((longest.start + longest.end) / 2 - d0) / (d1 - d0)) * (box.width - 100);
  await page.mouse.move(at, box.y + 1 + lane * 30 + 11);
  const lines = await page.$$eval('#tip div', (d) => d.map((x) => x.textContent ?? ''));
  assert.equal(await page.$eval('#tip', (t) => (t as HTMLElement).style.display), 'block', 'the tooltip shows');
  assert.equal(lines[0], longest.unit, lines.join(' / '));
  assert.equal(lines[1], `compute on ${longest.device}`, lines.join(' / '));
  // Below a lane's transfers' row (y 20–26 of its 30) there is nothing to show.
  await page.mouse.move(at, box.y + 1 + lane * 30 + 28);
  assert.equal(await page.$eval('#tip', (t) => (t as HTMLElement).style.display), 'none', 'nothing under the pointer between lanes');
}

test('hxc plan --report and hxc report: the same bytes; in Chromium every device and step is drawn, the search filters, zoom works', async () => {
  const dir = tmpDir();
  const planDir = path.join(dir, 'plan');
  const model = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx');
  const routing = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.expert_routing.json');
  const made = hxc(['plan', model, '--topology', path.join(EXAMPLES, 'rack-hetero.yaml'), '--routing', routing, '--report', '--out', planDir]);
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /report to .*report\.html/);
  const inPlan = path.join(planDir, 'report.html');
  const again = path.join(dir, 'again.html');
  const r = hxc(['report', planDir, '--out', again]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(fs.readFileSync(inPlan).equals(fs.readFileSync(again)), 'hxc report writes what hxc plan --report wrote, byte for byte');
  const html = fs.readFileSync(inPlan, 'utf8');
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href="(?!data:)/i, 'no script or style from elsewhere (requests are watched in the browser too)');

  const plan = planJson(planDir);
  const { page, errors } = await open(inPlan);
  try {
    await assertDrawn(page, plan, 11);
    // Search: the rows left are exactly the units whose text holds the query.
    const query = 'expert1';
    await page.type('#explain-search', query);
    const visible = await page.$$eval('tr.explain-row', (r) => r.length);
    const expected = plan.explain.filter((e: any) => [e.unit, e.stage, e.device, e.reason].join(' ').toLowerCase().includes(query)).length;
    assert.ok(expected > 0 && expected < plan.explain.length, 'the query narrows the table');
    assert.equal(visible, expected);
    // The pipelined view draws the simulated requests; zooming widens the bars.
    await page.click('button[data-view="pipelined"]');
    const pipelined = await page.$eval('#timeline canvas.gantt-bars', (c) => ({ ...(c as HTMLCanvasElement).dataset }));
    assert.equal(pipelined.view, 'pipelined');
    assert.ok(Number(pipelined.bars) > plan.transfers.length, `pipelined bars: ${pipelined.bars}`);
    const span = (domain: string): number => {
      const [a, b] = domain.split(',').map(Number) as [number, number];
      return b - a;
    };
    const before = span(pipelined.domain!);
    const box = (await (await page.$('svg.gantt'))!.boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    for (let i = 0; i < 5; i++) await page.mouse.wheel({ deltaY: -400 });
    // Zooming narrows the time the plot spans (and draws the bars again at that scale).
    await page.waitForFunction(
      (w) => {
        const [a, b] = ((document.querySelector('#timeline canvas.gantt-bars') as HTMLCanvasElement).dataset.domain ?? '').split(',').map(Number);
        return b! - a! < w / 2;
      },
      { timeout: 5000 },
      before,
    );
    const zoomed = await page.$eval('#timeline canvas.gantt-bars', (c) => ({ ...(c as HTMLCanvasElement).dataset }));
    assert.ok(span(zoomed.domain!) < before / 2);
    // Zoomed in, only the bars that reach into the time shown are painted again.
    assert.ok(Number(zoomed.painted) > 0 && Number(zoomed.painted) < Number(zoomed.bars), `painted ${zoomed.painted} of ${zoomed.bars}`);
    await page.click('button[data-view="one"]');
    await page.screenshot({ path: path.join(ARTIFACTS, 'report-mixtral_tiny_moe_kv.png'), fullPage: false });
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('hxc report draws plans of a CNN and of the bundled LLM on other racks without a console error', async () => {
  const dir = tmpDir();
  const cases: [string, string | null, number][] = [
    [path.join(SHARED_MODELS, 'mobilenet_v3_small.onnx'), path.join(EXAMPLES, 'rack-8gpu.yaml'), 9],
    [path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), null, 8],
  ];
  for (const [model, rack, devices] of cases) {
    const out = path.join(dir, path.basename(model, '.onnx'));
    const made = hxc(['plan', model, ...(rack ? ['--topology', rack] : []), '--out', out]);
    assert.equal(made.code, 0, made.stderr);
    const r = hxc(['report', out]);
    assert.equal(r.code, 0, r.stderr);
    const { page, errors } = await open(path.join(out, 'report.html'));
    try {
      await assertDrawn(page, planJson(out), devices);
      await page.screenshot({ path: path.join(ARTIFACTS, `report-${path.basename(out)}.png`) });
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  }
});

test('hxc report of a serving plan leads with what it serves: capacity, goodput, TTFT and TPOT p90 as plan.json says, its pools and where the decode plan is', async () => {
  const dir = tmpDir();
  const out = path.join(dir, 'serve');
  const made = servingPlan(path.join(EXAMPLES, 'rack-tiny.yaml'), out);
  assert.equal(made.code, 0, made.stderr);
  const r = hxc(['report', out]);
  assert.equal(r.code, 0, r.stderr);
  const serve = planJson(out).serve;
  const { page, errors } = await open(path.join(out, 'report.html'));
  try {
    const figures: [string, string][] = await page.$$eval('#summary .figure', (boxes) =>
      boxes.map((b) => [b.querySelector('span')!.textContent ?? '', b.querySelector('b')!.textContent ?? ''] as [string, string]),
    );
    const shown = new Map(figures);
    assert.equal(shown.get('serve capacity (90% within the SLOs)'), `${serve.capacity_per_s.toPrecision(4)} /s`);
    assert.equal(shown.get('goodput (mean over the rates)'), `${serve.goodput_per_s.toPrecision(4)} /s`);
    assert.ok([...shown.keys()].some((k) => k.startsWith('TTFT p90')) && [...shown.keys()].some((k) => k.startsWith('TPOT p90')));
    assert.ok(
      [...shown.keys()].some((k) => k === 'prefill plan: latency per request'),
      "the one-request figures say they are the prefill plan's",
    );
    const note = await page.$eval('#summary p.note', (p) => p.textContent ?? '');
    assert.match(note, new RegExp(`the decode plan is in ${serve.decode_plan}/`));
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('hxc report of a replan lists what delta.json moved; --compare lists what hxc diff moves', async () => {
  const dir = tmpDir();
  const model = path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx');
  const rack = path.join(EXAMPLES, 'rack-hetero.yaml');
  const a = path.join(dir, 'a');
  assert.equal(hxc(['plan', model, '--topology', rack, '--out', a]).code, 0);
  // The GPU holding the most nodes leaves the rack: the replan must move its units.
  const counts = new Map<string, number>();
  for (const d of Object.values(planJson(a).assignment as Record<string, string>)) if (d.startsWith('gpu')) counts.set(d, (counts.get(d) ?? 0) + 1);
  const gone = [...counts].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1))[0]![0];
  const keep = ['gpu0', 'gpu1', 'gpu2', 'gpu3'].filter((g) => g !== gone);
  const smaller = path.join(dir, 'rack-smaller.yaml');
  fs.writeFileSync(
    smaller,
    fs
      .readFileSync(rack, 'utf8')
      .replace('id: gpu[0-3]', `id: gpu[${keep.map((g) => g.slice(3)).join(',')}]`)
      .replace('devices: [cpu0, gpu0, gpu1, gpu2, gpu3, ipu0]', `devices: [cpu0, ${keep.join(', ')}, ipu0]`)
      .replace('connects: [gpu0, gpu1, gpu2, gpu3]', `connects: [${keep.join(', ')}]`)
      .replace('connects: [cpu0, gpu0, gpu1, gpu2, gpu3, ipu0]', `connects: [cpu0, ${keep.join(', ')}, ipu0]`),
  );
  const b = path.join(dir, 'b');
  const rp = hxc(['replan', a, '--topology', smaller, '--out', b]);
  assert.equal(rp.code, 0, rp.stderr);
  const delta = JSON.parse(fs.readFileSync(path.join(b, 'delta.json'), 'utf8'));
  assert.equal(hxc(['report', b]).code, 0);
  let { page, errors } = await open(path.join(b, 'report.html'));
  try {
    const moved = await page.$$eval('#compare table.moved tbody tr', (r) => r.length);
    assert.ok(delta.moved.length > 0, `units of ${gone} moved`);
    assert.equal(moved, delta.moved.length);
    const whys = await page.$$eval('#compare table.moved tbody tr td:nth-child(5)', (c) => c.map((x) => x.textContent));
    assert.deepEqual(
      whys,
      delta.moved.map((m: any) => m.why),
    );
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
  // --compare: the same moves hxc diff counts.
  const other = path.join(dir, 'other.html');
  assert.equal(hxc(['report', b, '--compare', a, '--out', other]).code, 0);
  const diff = JSON.parse(hxc(['diff', a, b, '--json']).stdout);
  ({ page, errors } = await open(other));
  try {
    const moved = await page.$$eval('#compare table.moved tbody tr', (r) => r.length);
    assert.equal(moved, diff.moved.length);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('hxc report refuses to overwrite a file it did not write, a folder that is not a plan and an empty --out, with one line and exit 2', () => {
  const dir = tmpDir();
  const mine = path.join(dir, 'notes.html');
  fs.writeFileSync(mine, '<html>my notes</html>');
  const planDir = path.join(dir, 'p');
  assert.equal(hxc(['plan', path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx'), '--out', planDir]).code, 0);
  const r = hxc(['report', planDir, '--out', mine]);
  assert.equal(isOneLineError(r, 'HXC2004'), null);
  assert.equal(fs.readFileSync(mine, 'utf8'), '<html>my notes</html>');
  assert.equal(isOneLineError(hxc(['report', dir]), 'HXC2001'), null);
  const empty = hxc(['report', planDir, '--out', '']);
  assert.equal(isOneLineError(empty, 'HXC2002'), null);
  assert.match(empty.stderr, /--out: the file name is empty/);
});

test('hxc report of a throughput plan gives the throughput bound its gap is to, as the CLI does; a KV cache written on two devices names both with their bytes', async () => {
  const dir = tmpDir();
  const out = path.join(dir, 'thr');
  const made = hxc([
    'plan',
    path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.onnx'),
    '--topology',
    path.join(EXAMPLES, 'rack-8gpu.yaml'),
    '--routing',
    path.join(SHARED_MODELS, 'mixtral_tiny_moe_kv.expert_routing.json'),
    '--phase',
    'decode',
    '--batch',
    '4',
    '--context',
    '256',
    '--objective',
    'throughput',
    '--report',
    '--out',
    out,
  ]);
  assert.equal(made.code, 0, made.stderr);
  const plan = planJson(out);
  const est = plan.estimate;
  assert.match(made.stdout, new RegExp(`throughput bound ${est.throughput_upper_per_s.toFixed(2)}/s .*; gap ${(est.gap * 100).toFixed(1)}%`));
  const split = plan.state.filter((s: any) => (s.owners ?? []).length > 1);
  assert.ok(split.length > 0, 'this plan writes some layer’s key and value on two devices');
  const { page, errors } = await open(path.join(out, 'report.html'));
  try {
    const shown = new Map<string, string>(
      await page.$$eval('#summary .figure', (boxes) =>
        boxes.map((b) => [b.querySelector('span')!.textContent ?? '', b.querySelector('b')!.textContent ?? ''] as [string, string]),
      ),
    );
    assert.equal(shown.get('throughput bound'), `${est.throughput_upper_per_s.toPrecision(4)} /s`);
    assert.equal(shown.has('lower bound'), false, "a throughput plan's gap is not to the latency bound");
    assert.equal(shown.get('gap to the bound'), `${(est.gap * 100).toFixed(1)}%`);
    const why = await page.$eval('#why', (s) => s.textContent ?? '');
    const said = `Throughput bound ${est.throughput_upper_per_s.toPrecision(4)} /s (the busiest device at least `;
    assert.ok(why.includes(said), why.slice(0, 300));
    assert.ok(why.includes(`it is ${(est.gap * 100).toFixed(1)}% above the shipped plan's ${est.throughput_per_s.toPrecision(4)} /s`), why.slice(0, 300));
    const rows: string[][] = await page.$$eval('table.state tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    for (const s of split) {
      const row = rows.find((r) => r[0] === s.name);
      assert.ok(row, `${s.name} is listed`);
      for (const o of s.owners) assert.match(row[2]!, new RegExp(`${o.device} `), `${s.name}: ${o.device} named`);
    }
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});
