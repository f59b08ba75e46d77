// One self-contained HTML page per plan: the report's data (src/report/data.ts) as JSON, d3
// (node_modules/d3/dist/d3.min.js, ISC) and the page's own drawing functions inlined — no network,
// it opens from disk or a CI artifact — and the same bytes for the same plan.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { ReportData } from './data.js';
import { drawSummary, drawTable, makeKit } from './client-kit.js';
import { drawRack } from './client-rack.js';
import { drawTimeline } from './client-timeline.js';
import { drawPlacement } from './client-placement.js';
import { drawCompare, drawWhy } from './client-why.js';
import { VERSION } from '../version.js';

const require = createRequire(import.meta.url);

let d3Source: string | null = null;
/** The d3 bundle: its package resolves to dist/d3.mjs; the UMD build is beside it. */
function d3Bundle(): string {
  if (d3Source === null) {
    const file = path.join(path.dirname(require.resolve('d3')), 'd3.min.js');
    d3Source = fs.readFileSync(file, 'utf8');
  }
  return d3Source;
}

/** Text safe inside <script>: no "</" (it would end the element) and no U+2028/2029 oddities. */
const scriptSafe = (s: string): string =>
  s
    .replace(/<\//g, '<\\/')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const CSS = `
:root { --ink:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#ffffff; --panel:#f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
header { padding: 16px 20px 8px; border-bottom: 1px solid var(--line); background: var(--panel); }
header h1 { margin: 0 0 8px; font-size: 20px; }
nav a { margin-right: 14px; color: #0969da; text-decoration: none; }
main { padding: 0 20px 40px; }
section { margin-top: 22px; }
h2 { font-size: 17px; margin: 0 0 4px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
.note { color: var(--muted); margin: 4px 0 8px; }
.figures { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.figure { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; min-width: 120px; }
.figure b { display: block; font-size: 16px; }
.figure span { color: var(--muted); font-size: 11px; }
table { border-collapse: collapse; margin: 6px 0 10px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; position: sticky; top: 0; }
tr.shipped td { font-weight: 600; background: #eef6ee; }
table.explain td:nth-child(7) { color: var(--muted); max-width: 520px; }
.legend { display: flex; flex-wrap: wrap; gap: 12px; margin: 6px 0; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px; vertical-align: -2px; }
svg, canvas { display: block; }
svg text { font-size: 11px; fill: var(--ink); }
.host rect { fill: #fbfbfc; stroke: var(--line); }
.host text { font-weight: 600; fill: var(--muted); }
.device rect.card { stroke-width: 2.5; }
.device.unplanned rect.card { stroke-dasharray: 4 3; }
.device .dev-name { font-weight: 600; }
.device .dev-sub { fill: #333; font-size: 10px; }
.device .mem-bg { fill: #ffffffcc; stroke: #999; stroke-width: 0.5; }
.link:hover path { stroke-opacity: 1; }
.gantt { border: 1px solid var(--line); cursor: grab; background: #fff; }
.gantt .lane-line { stroke: #eee; }
.gantt .lane-name { font-weight: 600; }
.gantt-box { position: relative; }
.gantt-bars { position: absolute; pointer-events: none; }
.controls { margin: 6px 0; }
.heat-row { display: flex; gap: 24px; flex-wrap: wrap; }
.controls button { margin-right: 6px; padding: 3px 10px; border: 1px solid var(--line); background: #fff; border-radius: 4px; cursor: pointer; }
.controls button.on { background: #0969da; color: #fff; border-color: #0969da; }
#explain-search { width: 360px; padding: 5px 8px; border: 1px solid var(--line); border-radius: 4px; margin: 4px 8px 4px 0; }
#tip { position: absolute; display: none; pointer-events: none; background: #1f2328; color: #fff; padding: 6px 8px; border-radius: 4px; font-size: 12px; max-width: 520px; z-index: 10; }
#tip .tip-head { font-weight: 600; }
`;

export function reportHtml(data: ReportData): string {
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  const fns = [makeKit, drawTable, drawSummary, drawRack, drawTimeline, drawPlacement, drawWhy, drawCompare];
  const client = fns.map((f) => f.toString()).join('\n');
  const boot = `
(function () {
  const data = JSON.parse(document.getElementById('hxc-data').textContent);
  const kit = makeKit(window.d3, data);
  drawSummary(kit);
  drawRack(kit);
  drawTimeline(kit);
  drawPlacement(kit);
  drawWhy(kit);
  drawCompare(kit);
  document.body.dataset.ready = 'yes';
})();`;
  const title = escapeHtml(`hxc report: ${data.title}`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="hxc ${escapeHtml(VERSION)}">
<link rel="icon" href="data:,">
<title>${title}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${escapeHtml(data.title)}</h1>
<nav><a href="#rack">Rack</a><a href="#timeline">Timeline</a><a href="#placement">Placement</a><a href="#why">Why</a><a href="#compare">Compare</a></nav>
<div id="summary"></div>
</header>
<main id="main"></main>
<div id="tip"></div>
<script id="hxc-data" type="application/json">${json}</script>
<script>${scriptSafe(d3Bundle())}</script>
<script>
"use strict";
${scriptSafe(client)}
${boot}
</script>
</body>
</html>
`;
}
