// The moe pass's routing and placement: routing files (errors, round trip, uniform default); the
// placement against round-robin and EPLB-style greedy on hand-checked examples, the Zipf target on
// the Mixtral-shaped model, and the 61-layer × 256-expert problem over the 64-device rack.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DEEPSEEK_SHAPE, syntheticLayers } from '../src/bench/moe.js';
import { planExperts } from '../passes/moe.js';
import { HxcError } from '../src/diag/diagnostics.js';
import { evaluate, noComm, placeGreedy, placeHxc, placeRoundRobin, type Placement, type PlacementProblem } from '../src/moe/place.js';
import {
  checkedRoutingText,
  parseRouting,
  readRouting,
  routingText,
  scaledLayer,
  syntheticRouting,
  uniformLayer,
  uniformScaled,
  type RoutingLayer,
} from '../src/moe/routing.js';
import { canRun, loadTopology, RouteTable } from '../src/topology/index.js';
import { EXAMPLES, FIXTURES, hxc, isOneLineError, tmpDir } from './helpers.js';
import { DENSE, MIXTRAL_8X7B, MIXTRAL_TINY, moe, trace } from './moe-helpers.js';

test('routing files: every error is one HXC2501 line naming the JSON path', () => {
  const good = {
    format: 'hxc-routing/v1',
    generator: { anything: 1 },
    layers: [
      {
        layer: 0,
        tokens: [3, 1],
        coactivation: [
          [3, 1],
          [1, 1],
        ],
        extra: true,
      },
    ],
  };
  assert.equal(parseRouting(JSON.stringify(good), 'r.json').layers[0]!.tokens[0], 3, 'unknown fields are accepted');
  const cases: [unknown, RegExp][] = [
    ['{', /\$: invalid JSON/],
    [{ ...good, format: 'hxc-routing/v2' }, /format: expected "hxc-routing\/v1"/],
    [{ format: 'hxc-routing/v1' }, /layers: expected an array/],
    [{ ...good, layers: [{ layer: -1, tokens: [1] }] }, /layers\[0\]\.layer: expected a non-negative integer/],
    [{ ...good, layers: [{ layer: 0, tokens: [1, 'x'] }] }, /layers\[0\]\.tokens\[1\]: expected a token count from 0 to \d+, found the string "x"/],
    [{ ...good, layers: [{ layer: 0, tokens: [1, 2], coactivation: [[1, 0], [0]] }] }, /layers\[0\]\.coactivation\[1\]: expected 2 numbers/],
    [
      {
        ...good,
        layers: [
          { layer: 0, tokens: [1] },
          { layer: 0, tokens: [2] },
        ],
      },
      /layers\[1\]\.layer: layer 0 is given twice/,
    ],
  ];
  for (const [doc, message] of cases) {
    try {
      parseRouting(typeof doc === 'string' ? doc : JSON.stringify(doc), 'r.json');
      assert.fail(`accepted ${JSON.stringify(doc)}`);
    } catch (err) {
      assert.ok(err instanceof HxcError, String(err));
      assert.equal(err.code, 'HXC2501');
      assert.equal(err.where, 'r.json');
      assert.match(err.message, message);
      assert.ok(!err.message.includes('\n'));
    }
  }
});

test('routing files from the CLI: bad file and wrong model are one line, exit 2', () => {
  const dir = tmpDir();
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ format: 'hxc-routing/v1', layers: [{ layer: 0, tokens: [1, 2, 'three', 4] }] }));
  let r = hxc(['plan', MIXTRAL_TINY, '--passes', 'moe', '--routing', bad]);
  assert.equal(isOneLineError(r, 'HXC2501'), null);
  assert.match(r.stderr, /bad\.json: layers\[0\]\.tokens\[2\]/);
  // The 8-expert trace does not fit the 4-expert model.
  r = hxc(['plan', MIXTRAL_TINY, '--passes', 'moe', '--routing', trace(MIXTRAL_8X7B)]);
  assert.equal(isOneLineError(r, 'HXC2501'), null);
  assert.match(r.stderr, /layers\[0\]\.tokens: 8 experts, but MoE layer 0 .* has 4/);
  r = hxc(['plan', MIXTRAL_TINY, '--passes', 'moe', '--expert-slots', 'many']);
  assert.equal(isOneLineError(r, 'HXC2002'), null);
});

test('measured routing round-trips, and the shared traces read as hxc-routing/v1', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'measured.json');
  const layers = [uniformLayer(1, 3, 2, 30), { layer: 0, tokens: [10, 0, 50] }];
  fs.writeFileSync(file, checkedRoutingText(layers, { generator: 'hxc run' }, file));
  const back = readRouting(file);
  assert.deepEqual(
    back.layers.map((l) => l.layer),
    [0, 1],
  );
  assert.deepEqual(back.layers[1]!.tokens, [20, 20, 20]);
  assert.equal(back.layers[1]!.coactivation![0]![1], 10);
  assert.equal(fs.readFileSync(file, 'utf8'), routingText(layers, { generator: 'hxc run' }), 'stable text');
  assert.throws(() => checkedRoutingText([{ layer: 0, tokens: [-1] }]), /HXC2501|token count from 0/);
  for (const model of [MIXTRAL_TINY, DENSE, MIXTRAL_8X7B]) {
    const r = readRouting(trace(model));
    assert.ok(r.layers.length >= 2 && r.layers.every((l) => l.coactivation?.length === l.tokens.length));
  }
});

test('no routing file: uniform routing and one HXC1106 warning', async () => {
  const { result, warnings } = await moe(MIXTRAL_TINY, 'rack-8gpu.yaml');
  assert.equal(warnings.filter((w) => w === 'HXC1106').length, 1);
  assert.equal(result.routing.uniform, true);
  const l = result.plan!.layers[0]!;
  assert.ok(l.problem.tokens.every((t) => Math.abs(t - l.problem.tokens[0]!) < 1e-9));
});

// A hand example: 4 experts with 70/20/6/4 tokens, 2 equal devices, 2 redundant slots, no traffic.
function handProblem(hosts = ['h0', 'h0'], groups = 1): PlacementProblem {
  const E = 4;
  const tokens = Float64Array.from([70, 20, 6, 4]);
  const co = new Float64Array(E * E);
  for (let e = 0; e < E; e++) co[e * E + e] = tokens[e]!;
  return {
    name: 'hand',
    experts: E,
    top_k: 1,
    step_tokens: 100,
    tokens,
    coactivation: co,
    flops_per_token: new Float64Array(E).fill(1e9),
    param_bytes: new Float64Array(E).fill(1e6),
    token_bytes: 0,
    devices: hosts.map((host, i) => ({ id: `d${i}`, speed: 1e12, memory_bytes: 1e9, host })),
    source_share: new Float64Array(hosts.length).fill(1 / hosts.length),
    comm: noComm(hosts.length),
    slots: 2,
    groups,
  };
}

const list = (p: Placement): string => p.replicas.map((r) => `${r.expert}@${r.device}:${r.tokens.toFixed(2)}`).join(' ');

test('round-robin baseline on the hand example', () => {
  const p = handProblem();
  // Replicas 0,1,2,3 then redundant 0,1; dealt d0,d1,d0,d1; expert 0's copy skips d0 (holds it) → d1, expert 1's → d0.
  assert.equal(list(placeRoundRobin(p)), '0@0:35.00 0@1:35.00 1@0:10.00 1@1:10.00 2@0:6.00 3@1:4.00');
  const m = evaluate(p, placeRoundRobin(p));
  assert.ok(Math.abs(m.imbalance - 51 / 50) < 1e-12);
});

test('EPLB-style greedy baseline on the hand example, global and hierarchical', () => {
  const p = handProblem();
  // replicate_experts: 70 → 35 → 23.3 (expert 0 gets both slots); balanced_packing, 3 per device,
  // heaviest first into the lightest: 23.3→d0, 23.3→d1, 23.3→d0, 20→d1, 6→d1, 4→d0.
  assert.equal(list(placeGreedy(p)), '0@0:23.33 0@0:23.33 0@1:23.33 1@1:20.00 2@1:6.00 3@0:4.00');
  assert.ok(Math.abs(evaluate(p, placeGreedy(p)).imbalance - ((70 / 3) * 2 + 4) / 50) < 1e-12);
  // Two hosts, two groups {0,1} and {2,3}: a group per host, replicas made within it.
  const h = handProblem(['h0', 'h1'], 2);
  assert.equal(list(placeGreedy(h)), '0@0:35.00 0@0:35.00 1@0:20.00 2@1:3.00 2@1:3.00 3@1:4.00');
});

test('hxc on the hand example: tokens conserved, memory kept, better balance than both baselines', () => {
  const p = handProblem();
  const hx = placeHxc(p);
  const sums = new Float64Array(4);
  for (const r of hx.replicas) sums[r.expert]! += r.tokens;
  assert.deepEqual(
    Array.from(sums, (s) => Number(s.toFixed(9))),
    [70, 20, 6, 4],
  );
  const m = evaluate(p, hx);
  assert.equal(m.over_memory, 0);
  assert.ok(m.imbalance < 1.001, `imbalance ${m.imbalance}: ${list(hx)}`);
  assert.ok(m.imbalance <= evaluate(p, placeGreedy(p)).imbalance && m.imbalance <= evaluate(p, placeRoundRobin(p)).imbalance);
});

test('Zipf 1.1 trace, Mixtral-shaped model, 8 GPUs, 8 redundant slots: imbalance ≤ 1.05, fewer all-to-all bytes than round-robin', async () => {
  const { result } = await moe(MIXTRAL_8X7B, 'rack-8gpu.yaml', { routing: trace(MIXTRAL_8X7B), 'expert-slots': 8 });
  const plan = result.plan!;
  assert.deepEqual(plan.devices, ['gpu0', 'gpu1', 'gpu2', 'gpu3', 'gpu4', 'gpu5', 'gpu6', 'gpu7']);
  const s = plan.summary;
  assert.ok(s.hxc.imbalance_max <= 1.05, `hxc worst-layer imbalance ${s.hxc.imbalance_max}`);
  assert.ok(s.hxc.imbalance_max <= s['round-robin'].imbalance_max && s.hxc.imbalance_max <= s.greedy.imbalance_max);
  assert.ok(s.hxc.bytes_per_token < s['round-robin'].bytes_per_token, `hxc ${s.hxc.bytes_per_token} vs round-robin ${s['round-robin'].bytes_per_token}`);
  assert.ok(s.hxc.time_s <= s['round-robin'].time_s && s.hxc.time_s <= s.greedy.time_s);
  for (const l of plan.layers) {
    assert.ok(l.placements.hxc.replicas.length >= 8 && l.placements.hxc.replicas.length <= 16, 'one replica per expert, at most the 8 redundant slots more');
    const sums = new Float64Array(8);
    for (const r of l.placements.hxc.replicas) sums[r.expert]! += r.tokens;
    sums.forEach((x, e) => assert.ok(Math.abs(x - l.problem.tokens[e]!) < 1e-6 * l.problem.step_tokens, `layer ${l.layer} expert ${e}`));
    assert.equal(l.metrics.hxc.over_memory, 0);
  }
});

test('plan.json lists expert replicas; the moe dump is deterministic', async () => {
  const dir = tmpDir();
  const r = hxc([
    'plan',
    MIXTRAL_TINY,
    '--topology',
    path.join(EXAMPLES, 'rack-8gpu.yaml'),
    '--phase',
    'prefill',
    '--routing',
    trace(MIXTRAL_TINY),
    '--expert-slots',
    '4',
    '--out',
    path.join(dir, 'plan'),
    '--dump-dir',
    path.join(dir, 'dump'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /MoE: 2 layers × 4 experts \(top-2\)/);
  assert.match(r.stdout, /token imbalance max\/mean over a layer's expert devices \(worst layer\): [\d.]+/);
  assert.match(r.stdout, /moe placer's own placement \(a candidate, .*\): imbalance hxc [\d.]+, round-robin [\d.]+, greedy [\d.]+/);
  const plan = JSON.parse(fs.readFileSync(path.join(dir, 'plan', 'plan.json'), 'utf8')) as {
    experts: { layer: number; expert: number; tokens: number; replicas: { device: string; devices: string[]; tokens: number }[] }[];
  };
  assert.equal(plan.experts.length, 8);
  // The summary counts every device an expert's nodes run on, as plan.json lists them.
  const spanned = new Set(plan.experts.flatMap((e) => e.replicas.flatMap((x) => x.devices)));
  assert.match(r.stdout, new RegExp(`experts on ${spanned.size} device${spanned.size === 1 ? '' : 's'}\n`));
  for (const d of spanned) assert.match(r.stdout, new RegExp(`all layers\\): .*\\b${d} `), `${d} in the per-device line`);
  const devices = new Set(JSON.parse(fs.readFileSync(path.join(dir, 'plan', 'plan.json'), 'utf8')).devices.map((d: { id: string }) => d.id));
  for (const e of plan.experts)
    assert.ok(Math.abs(e.replicas.reduce((s, x) => s + x.tokens, 0) - e.tokens) < 0.01 && e.replicas.every((x) => devices.has(x.device)));
  const dump = fs.readdirSync(path.join(dir, 'dump')).find((f) => f.endsWith('-moe.txt'))!;
  const again = hxc([
    'plan',
    MIXTRAL_TINY,
    '--topology',
    path.join(EXAMPLES, 'rack-8gpu.yaml'),
    '--phase',
    'prefill',
    '--routing',
    trace(MIXTRAL_TINY),
    '--expert-slots',
    '4',
    '--passes',
    'moe',
    '--dump-dir',
    path.join(dir, 'dump2'),
  ]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(
    fs.readFileSync(path.join(dir, 'dump2', fs.readdirSync(path.join(dir, 'dump2')).find((f) => f.endsWith('-moe.txt'))!), 'utf8'),
    fs.readFileSync(path.join(dir, 'dump', dump), 'utf8'),
  );
  const inspect = JSON.parse(hxc(['inspect', DENSE, '--json']).stdout) as { moe: { num_experts: number; top_k: number; form: string }[] };
  assert.deepEqual(
    inspect.moe.map((l) => [l.num_experts, l.top_k, l.form]),
    [
      [6, 2, 'dense'],
      [6, 2, 'dense'],
      [6, 2, 'dense'],
    ],
  );
});

test('61 layers × 256 experts, top-8, over the 64-device rack: placed, balanced, dispatch through the IPUs', () => {
  const topo = loadTopology(path.join(FIXTURES, 'topology', 'rack-64.yaml'));
  const layers = syntheticLayers(DEEPSEEK_SHAPE, 2048);
  const plan = planExperts(topo, new RouteTable(topo), layers, {
    slots: DEEPSEEK_SHAPE.slots,
    groups: DEEPSEEK_SHAPE.groups,
    canHold: (d) => canRun(d, 'MatMul'),
  })!;
  assert.equal(plan.layers.length, 61);
  assert.ok(plan.devices.length >= 48 && plan.devices.every((d) => !d.startsWith('ipu')));
  for (const l of plan.layers) {
    assert.equal(l.placements.hxc.replicas.length, 256 + 32);
    assert.deepEqual(l.dispatch_via, ['ipu0', 'ipu1', 'ipu2', 'ipu3', 'ipu4', 'ipu5', 'ipu6', 'ipu7']);
  }
  const s = plan.summary;
  assert.ok(
    s.hxc.imbalance_max < 1.05 && s.hxc.imbalance_max < s.greedy.imbalance_max && s.hxc.imbalance_max < s['round-robin'].imbalance_max,
    JSON.stringify(s),
  );
  assert.ok(s.hxc.bytes_per_token < s['round-robin'].bytes_per_token && s.hxc.time_s < s.greedy.time_s);
  // The Zipf generator is seeded: the same trace twice.
  assert.deepEqual(
    syntheticRouting({ layers: 1, experts: 16, topK: 2, tokens: 100, zipfS: 1.1, seed: 5 }),
    syntheticRouting({ layers: 1, experts: 16, topK: 2, tokens: 100, zipfS: 1.1, seed: 5 }),
  );
});

test('with a replica to spare per device boundary, chained replicas (shares that differ between siblings) balance a layer exactly', async () => {
  // mixtral_tiny's Zipf trace on 8 GPUs with 8 redundant slots: even splits of each expert over its
  // copies cannot balance 4 skewed experts, uneven ones can (McNaughton's wrap-around).
  const { result } = await moe(MIXTRAL_TINY, 'rack-8gpu.yaml', { routing: trace(MIXTRAL_TINY), 'expert-slots': 8 });
  const plan = result.plan!;
  for (const l of plan.layers) {
    const m = l.metrics.hxc;
    assert.ok(m.imbalance < 1 + 1e-5, `layer ${l.layer}: imbalance ${m.imbalance}`);
    assert.ok(m.time_s <= l.metrics.greedy.time_s && m.time_s <= l.metrics['round-robin'].time_s);
    assert.ok(l.placements.hxc.replicas.length <= 4 + 8);
    const shares = new Map<number, number[]>();
    for (const r of l.placements.hxc.replicas) (shares.get(r.expert) ?? shares.set(r.expert, []).get(r.expert)!).push(r.tokens);
    for (const [e, xs] of shares)
      assert.ok(Math.abs(xs.reduce((a, b) => a + b, 0) - l.problem.tokens[e]!) < 1e-6 * l.problem.step_tokens, `expert ${e}'s tokens all served`);
  }
});

/** scaledLayer as first written: one expression per entry, a branch for each. */
function scaledByEntry(l: RoutingLayer, topK: number, stepTokens: number): { tokens: number[]; coactivation: number[] } {
  const n = l.tokens.length;
  const traceTokens = l.tokens.reduce((s, t) => s + t, 0) / Math.max(1, topK);
  const scale = traceTokens > 0 ? stepTokens / traceTokens : 0;
  const tokens = l.tokens.map((t) => t * scale);
  const co: number[] = [];
  for (let a = 0; a < n; a++)
    for (let b = 0; b < n; b++)
      co.push(
        a === b
          ? tokens[a]!
          : l.coactivation
            ? l.coactivation[a]![b]! * scale
            : stepTokens > 0 && topK > 1
              ? (tokens[a]! * tokens[b]! * (topK - 1)) / (topK * stepTokens)
              : 0,
      );
  return { tokens, coactivation: co };
}

test('scaled routing: row by row and the uniform shortcut give every number of the per-entry formula', () => {
  const bits = (xs: ArrayLike<number>): string => Buffer.from(Float64Array.from(xs).buffer).toString('hex');
  let cases = 0;
  for (const experts of [1, 2, 3, 7, 64, 256]) {
    for (const topK of [1, 2, 3, 8, 300]) {
      for (const tokens of [0, 1, 3, 7.5, 1000, 123457]) {
        const uniform = uniformLayer(4, experts, topK, tokens);
        const want = scaledByEntry(uniform, topK, tokens);
        const fast = uniformScaled(experts, topK, tokens);
        assert.equal(bits(fast.tokens), bits(want.tokens), `uniform tokens E=${experts} k=${topK} T=${tokens}`);
        assert.equal(bits(fast.coactivation), bits(want.coactivation), `uniform co-activation E=${experts} k=${topK} T=${tokens}`);
        const rows = scaledLayer(uniform, topK, tokens);
        assert.equal(bits(rows.coactivation), bits(want.coactivation), `given co-activation E=${experts} k=${topK} T=${tokens}`);
        // Without a co-activation matrix: the independence fill, on skewed counts.
        const skewed = { layer: 0, tokens: Array.from({ length: experts }, (_, e) => ((e * 7919) % 13) + e / 3) };
        const noCo = scaledLayer(skewed, topK, tokens);
        const noCoWant = scaledByEntry(skewed, topK, tokens);
        assert.equal(bits(noCo.tokens), bits(noCoWant.tokens));
        assert.equal(bits(noCo.coactivation), bits(noCoWant.coactivation), `independence fill E=${experts} k=${topK} T=${tokens}`);
        cases++;
      }
    }
  }
  assert.equal(cases, 180);
});

test('a layer placed as an earlier one it equals gets the very placement a fresh one would, and only such a layer', () => {
  // Layers 1 and 3 share layer 0's routing arrays, as layers of one uniform routing do (passes/moe.ts);
  // layer 2 shares them too but its experts are larger, layer 4 has routing of its own. The plan
  // must equal one where every layer's arrays are copies (nothing shared, each layer placed alone).
  const topo = loadTopology(path.join(EXAMPLES, 'rack-8gpu.yaml'));
  const shape = { ...DEEPSEEK_SHAPE, layers: 5, experts: 32, slots: 8, groups: 4 };
  const base = syntheticLayers(shape, 2048);
  const first = base[0]!;
  const larger = Float64Array.from(first.param_bytes, (b, e) => (e === 3 ? b * 2 : b));
  const shared = base.map((l, i) =>
    i === 4 ? l : { ...l, tokens: first.tokens, coactivation: first.coactivation, param_bytes: i === 2 ? larger : Float64Array.from(first.param_bytes) },
  );
  const copied = shared.map((l) => ({ ...l, tokens: Float64Array.from(l.tokens), coactivation: Float64Array.from(l.coactivation) }));
  const opts = { slots: shape.slots, groups: shape.groups, canHold: (d: { kind: string }) => d.kind === 'gpu' };
  const a = planExperts(topo, new RouteTable(topo), shared, opts)!;
  const b = planExperts(topo, new RouteTable(topo), copied, opts)!;
  assert.equal(a.layers.length, 5);
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(a.layers[i]!.placements, b.layers[i]!.placements, `layer ${i}`);
    assert.deepEqual(a.layers[i]!.metrics, b.layers[i]!.metrics, `layer ${i}`);
  }
  assert.equal(a.layers[1]!.placements, a.layers[0]!.placements, 'an equal layer is placed once');
  assert.equal(a.layers[3]!.placements, a.layers[0]!.placements);
  assert.notDeepEqual(a.layers[2]!.metrics.hxc.memory_bytes, a.layers[0]!.metrics.hxc.memory_bytes, 'larger experts weigh more');
  assert.deepEqual(a.summary, b.summary);
});
