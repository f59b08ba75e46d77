// Serving plans (issue 15): the workload format, the request-level simulator against what queueing
// gives in closed form, and a serve plan of a shared KV model on the heterogeneous rack — disjoint
// pools, the KV handoff priced from the state pass, hxc simulate reproducing the plan's goodput,
// never below the colocated plan it reports, and hxc run checking prefill on one pool and decode
// steps on the other against the unsplit model.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseWorkload, drawRequests, type Workload } from '../src/serve/workload.js';
import { capacity, handoffTimes, laneSeconds, serviceRate, simulateServe, type ServeModel } from '../src/serve/sim.js';
import { handoffPairs, type PhaseEval } from '../src/serve/plan.js';
import { loadTopology, RouteTable } from '../src/topology/index.js';
import { HxcError } from '../src/diag/diagnostics.js';
import type { PlanV1 } from '../src/plan/format.js';
import { EXAMPLES, FIXTURES, REPO, SHARED_MODELS, hxc, isOneLineError, tmpDir } from './helpers.js';
import { createRequire } from 'node:module';
import { parse } from 'yaml';

const require = createRequire(import.meta.url);
import { readPlan } from '../src/plan/read.js';

const WORKLOAD = path.join(FIXTURES, 'workloads', 'chat.yaml');

function workload(extra = ''): Workload {
  return parseWorkload(
    `format: hxc-workload/v1\nrate_per_s: 2\nprompt_tokens: {fixed: 100}\noutput_tokens: {fixed: 11}\nslo: {ttft_p90: 1s, tpot_p90: 100ms}\nrequests: 300\n${extra}`,
    'w.yaml',
  );
}

const model = (over: Partial<ServeModel> = {}): ServeModel => ({
  disaggregated: true,
  prefill: { replicas: 1, prompt_tokens: 100, latency_s: 0.05, interval_s: 0.05 },
  decode: { replicas: 1, context_tokens: 111, max_batch: 8, step_s_batch1: 0.01, step_s_batch_max: 0.024 },
  handoff: { bytes_per_token: 1000, bandwidth_bytes_per_s: 1e9, latency_s: 1e-5, layers: 4 },
  ...over,
});

test('hxc-workload/v1: rates, length distributions and SLOs parse; a bad field is one line naming its line', () => {
  const w = parseWorkload(fs.readFileSync(WORKLOAD, 'utf8'), WORKLOAD);
  assert.deepEqual([w.rates_per_s, w.prompt_tokens, w.output_tokens, w.slo], [[4], { fixed: 160 }, { fixed: 64 }, { ttft_p90_s: 0.3, tpot_p90_s: 0.04 }]);
  // The schema accepts what the reader accepts.
  const { Ajv } = require('ajv') as typeof import('ajv');
  const schema = JSON.parse(fs.readFileSync(path.join(REPO, 'src', 'schema', 'hxc-workload.v1.schema.json'), 'utf8'));
  const validate = new Ajv({ strict: false }).compile(schema);
  assert.ok(validate(parse(fs.readFileSync(WORKLOAD, 'utf8'))), JSON.stringify(validate.errors));
  assert.ok(!validate({ format: 'hxc-workload/v1', rate_per_s: 1 }));
  const sweep = parseWorkload(
    'format: hxc-workload/v1\nrates_per_s: [1, 2, 4]\nprompt_tokens: {uniform: [10, 20]}\noutput_tokens: {samples: [3, 5, 8]}\nslo: {ttft_p90: 0.5, tpot_p90: 20ms}\n',
    'sweep.yaml',
  );
  assert.deepEqual(sweep.rates_per_s, [1, 2, 4]);
  const reqs = drawRequests(sweep, 2);
  assert.equal(reqs.length, 400);
  assert.ok(reqs.every((r) => r.prompt >= 10 && r.prompt <= 20 && [3, 5, 8].includes(r.output)));
  assert.deepEqual(drawRequests(sweep, 2), reqs, 'seeded: the same requests every time');
  const bad: [string, RegExp][] = [
    ['format: hxc-workload/v1\nrate_per_s: -1\nprompt_tokens: {fixed: 1}\noutput_tokens: {fixed: 1}\nslo: {ttft_p90: 1s, tpot_p90: 1s}\n', /bad\.yaml:2/],
    ['format: hxc-workload/v1\nrate_per_s: 1\nprompt_tokens: {uniform: [9, 3]}\noutput_tokens: {fixed: 1}\nslo: {ttft_p90: 1s, tpot_p90: 1s}\n', /bad\.yaml:3/],
    ['format: hxc-workload/v1\nrate_per_s: 1\nprompt_tokens: {fixed: 1}\noutput_tokens: {fixed: 1}\nslo: {ttft_p90: 1s}\n', /tpot_p90/],
    [
      'format: hxc-workload/v1\nrate_per_s: 1\nprompt_tokens: {fixed: 1}\noutput_tokens: {fixed: 1}\nslo: {ttft_p90: 1s, tpot_p90: 1s}\nrate: 3\n',
      /bad\.yaml:6.*give rate or rate_per_s, not both/,
    ],
    [
      'format: hxc-workload/v1\nrate: 1\nprompt: {fixed: 1}\nprompt_tokens: {fixed: 1}\noutput: {fixed: 1}\nslo: {ttft_p90: 1s, tpot_p90: 1s}\n',
      /bad\.yaml:3.*give prompt or prompt_tokens, not both/,
    ],
    ['format: hxc-workload/v1\nrate: [2, 0]\nprompt: {fixed: 1}\noutput: {fixed: 1}\nslo: {ttft_p90: 1s, tpot_p90: 1s}\n', /bad\.yaml:2.*arrival rate/],
    ['format: hxc-workload/v1\nrate: 1\nprompt: {fixed: 1}\noutput: {fixed: 0}\nslo: {ttft_p90: 1s, tpot_p90: 1s}\n', /bad\.yaml:4.*output: a token count/],
  ];
  // DESIGN.md §9's spelling (rate, prompt, output) reads as the same workload, and the schema takes it.
  const design = 'format: hxc-workload/v1\nrate: [1, 2, 4]\nprompt: {uniform: [10, 20]}\noutput: {samples: [3, 5, 8]}\nslo: {ttft_p90: 0.5, tpot_p90: 20ms}\n';
  assert.deepEqual({ ...parseWorkload(design, 'sweep.yaml') }, { ...sweep });
  assert.ok(validate(parse(design)), JSON.stringify(validate.errors));
  assert.deepEqual(parseWorkload(design.replace('[1, 2, 4]', '3'), 'one.yaml').rates_per_s, [3]);
  assert.ok(!validate(parse(`${design}rate_per_s: 2\n`)), 'one spelling per field');
  for (const [text, where] of bad) {
    assert.throws(
      () => parseWorkload(text, 'bad.yaml'),
      (e: unknown) => e instanceof HxcError && where.test(`${e.where} ${e.message}`),
    );
  }
});

test('serving simulator: no queueing at a trickle gives the planned times exactly; past the service rate the SLOs fail', () => {
  const w = workload();
  const m = model();
  const slow = simulateServe(m, w, 1e-3);
  // Alone in the system: TTFT is the prefill latency; TPOT the batch-1 step, plus the share of the
  // handoff left after prefill (the last of 4 layers: (10 µs + 100 kB at 1 GB/s) / 4) over 10 tokens.
  assert.ok(Math.abs(slow.ttft_p90_s - 0.05) < 1e-9, `${slow.ttft_p90_s}`);
  assert.ok(Math.abs(slow.tpot_p90_s - (0.01 + (1e-5 + 1e5 / 1e9) / 4 / 10)) < 1e-9, `${slow.tpot_p90_s}`);
  assert.equal(slow.slo_attainment, 1);
  assert.ok(Math.abs(slow.goodput_per_s - 1e-3) < 1e-15, 'goodput = rate × the share within the SLOs');
  // The same model and workload give the same figures.
  assert.deepEqual(simulateServe(m, w, 5), simulateServe(m, w, 5));
  // Prefill sustains 20/s; decode 8 sequences × 1/(0.024 s × 10 tokens) ≈ 33/s: past 20/s the queue grows.
  assert.ok(Math.abs(serviceRate(m, w) - 20) < 1e-9);
  const over = simulateServe(m, w, 40);
  assert.ok(over.slo_attainment < 0.9 && over.goodput_per_s < 40 * 0.9, `attainment ${over.slo_attainment}`);
  const cap = capacity(m, w);
  assert.ok(cap > 0 && cap <= 20 + 1e-9, `capacity ${cap}`);
  assert.ok(simulateServe(m, w, cap).slo_attainment >= 0.9);
  // Colocated on the same devices: prefill stalls the decode batch, so TPOT at load is worse than disaggregated's.
  const co = simulateServe(model({ disaggregated: false, handoff: null }), w, 10);
  const dis = simulateServe(m, w, 10);
  assert.ok(co.tpot_p90_s > dis.tpot_p90_s, `colocated ${co.tpot_p90_s} vs disaggregated ${dis.tpot_p90_s}`);
});

test('hxc plan --phase serve on rack-hetero: pools, KV handoff from the state pass, simulate reproduces the goodput, run checks both pools', () => {
  const dir = tmpDir();
  const out = path.join(dir, 'serve');
  const modelFile = path.join(SHARED_MODELS, 'gpt2_tiny_kv.onnx');
  const r = hxc(['plan', modelFile, '--topology', path.join(EXAMPLES, 'rack-hetero.yaml'), '--phase', 'serve', '--workload', WORKLOAD, '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const plan = readPlan(out); // schema-valid, hashes intact
  const decode = readPlan(path.join(out, plan.serve!.decode_plan));
  const s = plan.serve!;
  assert.ok(s.candidates.length >= 2, 'colocated and at least one split weighed');
  if (s.disaggregated) {
    assert.equal(s.pools.prefill.filter((d) => s.pools.decode.includes(d)).length, 0, `disjoint pools: ${s.pools.prefill} / ${s.pools.decode}`);
    // The plans run on their pools.
    for (const d of plan.devices) if (d.steps.length) assert.ok(s.pools.prefill.includes(d.id), `prefill step on ${d.id}`);
    for (const d of decode.devices) if (d.steps.length) assert.ok(s.pools.decode.includes(d.id), `decode step on ${d.id}`);
    const perToken = plan.state.reduce((n, o) => n + o.bytes_per_token, 0);
    assert.ok(perToken > 0);
    assert.equal(s.kv_handoff!.bytes_per_request, perToken * 160, "the state pass's bytes per token × prompt tokens");
    // Each layer's cache goes from the prefill devices that write it to the decode devices that keep it.
    const holders = (p: typeof plan): Set<string> => new Set(p.state.flatMap((o) => (o.owners ? o.owners.map((x) => x.device) : [o.owner!])));
    const pairs = s.kv_handoff!.pairs ?? [{ from: s.kv_handoff!.from, to: s.kv_handoff!.to, bytes_per_token: s.kv_handoff!.bytes_per_token }];
    for (const x of pairs) assert.ok(holders(plan).has(x.from) && holders(decode).has(x.to), `${x.from} → ${x.to}: KV holders on both sides`);
    assert.equal(
      pairs.reduce((a, x) => a + x.bytes_per_token, 0),
      perToken,
      'every byte of the cache handed over once',
    );
    const lanes = s.model.handoff!.lanes!;
    assert.equal(s.kv_handoff!.seconds_per_request, Math.max(...lanes.map((l) => l.latency_s + (l.bytes_per_token * 160) / l.bandwidth_bytes_per_s)));
  } else {
    assert.match(s.why, /colocated serves/);
  }
  assert.ok(s.colocated_goodput_per_s !== null && s.goodput_per_s >= s.colocated_goodput_per_s, 'never below the colocated plan it reports');
  const sim = hxc(['simulate', out, '--workload', WORKLOAD, '--json']);
  assert.equal(sim.code, 0, sim.stderr);
  const got = JSON.parse(sim.stdout);
  assert.deepEqual([got.goodput_per_s, got.ttft_p90_s, got.tpot_p90_s], [s.goodput_per_s, s.ttft_p90_s, s.tpot_p90_s]);

  // hxc check holds a serving plan to what it serves: its capacity, TTFT and TPOT, the memory of
  // both pools' plans, the decode plan's KV cache; --max-latency is refused (one line, exit 2).
  const checked = hxc([
    'check',
    out,
    '--min-throughput',
    '1',
    '--max-ttft',
    '1s',
    '--max-tpot',
    '1s',
    '--max-memory',
    '100%',
    '--min-sequences',
    '1',
    '--json',
  ]);
  assert.equal(checked.code, 0, checked.stderr);
  const budgets: { name: string; actual: string; ok: boolean }[] = JSON.parse(checked.stdout).budgets;
  const actual = (name: string): string => budgets.find((b) => b.name === name)!.actual;
  assert.equal(Number.parseFloat(actual('throughput (serve capacity: 90% within the SLOs)')), Number(s.capacity_per_s.toPrecision(7)));
  assert.equal(Number.parseFloat(actual('TTFT p90')), Number((s.ttft_p90_s * 1e3).toPrecision(6)));
  assert.equal(Number.parseFloat(actual('TPOT p90')), Number((s.tpot_p90_s * 1e3).toPrecision(6)));
  assert.equal(actual('KV sequences (decode)'), String(decode.estimate.kv!.sequences));
  for (const [p, label] of [
    [plan, 'prefill'],
    [decode, 'decode'],
  ] as const)
    for (const d of p.devices)
      if (d.memory.total_bytes > 0) assert.equal(Number.parseInt(actual(`memory ${d.id} (${label})`), 10), d.memory.total_bytes, `${d.id} (${label})`);
  // A budget the prefill plan holds is judged on the decode plan's devices too.
  const prefillMax = Math.max(...plan.devices.map((d) => d.memory.total_bytes));
  const held = hxc(['check', out, '--max-memory', String(prefillMax), '--json']);
  const decodeOver = decode.devices.filter((d) => d.memory.total_bytes > prefillMax).map((d) => `memory ${d.id} (decode)`);
  assert.equal(held.code, decodeOver.length > 0 ? 1 : 0, held.stderr);
  assert.deepEqual(
    JSON.parse(held.stdout)
      .budgets.filter((b: { ok: boolean }) => !b.ok)
      .map((b: { name: string }) => b.name),
    decodeOver,
  );
  assert.equal(isOneLineError(hxc(['check', out, '--max-latency', '1s']), 'HXC2002'), null);

  const run = hxc(['run', out, '--check', '--decode-steps', '4', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const rep = JSON.parse(run.stdout);
  assert.equal(rep.check.passed, true);
  assert.deepEqual(
    rep.requests.map((q: { kind: string }) => q.kind),
    ['prefill', 'decode', 'decode', 'decode', 'decode'],
  );
  // The decode rows compare steps at other dims than the decode plan's estimate, and say so.
  const decodeRows = rep.measured_vs_estimated.filter((m: { device: string }) => m.device.endsWith(' (decode)'));
  assert.ok(decodeRows.length > 0);
  for (const m of decodeRows) assert.deepEqual([m.at_plan_dims, m.requests], [false, 4], m.device);
  const text = hxc(['run', out, '--decode-steps', '2']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /measured busy \(decode rows\): the median over the 2 step\(s\) run, none at the decode plan's dims/);
  assert.match(text.stdout, /measured busy \(prefill rows\): the median over the 1 request\(s\) run at the plan's dims/);
  if (s.disaggregated) {
    assert.equal(rep.serve.kv_handoff_bytes, s.kv_handoff!.bytes_per_request, 'the KV bytes handed over are the ones priced');
    for (const d of rep.serve.prefill_devices) assert.ok(s.pools.prefill.includes(d));
    for (const d of rep.serve.decode_devices) assert.ok(s.pools.decode.includes(d));
  }
  // The same across processes: a worker per device of both pools, the KV cache over gRPC.
  const spawned = hxc(['run', out, '--spawn', '--check', '--decode-steps', '2', '--json']);
  assert.equal(spawned.code, 0, spawned.stderr);
  assert.equal(JSON.parse(spawned.stdout).check.passed, true);
});

test('the KV handoff moves each cache object from the device that wrote it to the one that keeps it, pairs at once, a shared link carrying all that cross it', () => {
  const topo = loadTopology(path.join(EXAMPLES, 'rack-hetero.yaml'));
  const routes = new RouteTable(topo);
  const phase = (objects: Omit<PhaseEval['kv'][number], 'tensor'>[], owner: string): PhaseEval => {
    const kv = objects.map((o) => ({ ...o, tensor: `${o.name}.key` }));
    return {
      pool: [],
      batch: 1,
      prompt: 100,
      context: 200,
      latency_s: 1e-3,
      interval_s: 1e-3,
      used: [owner],
      kv_sequences: 1,
      kv_owner: owner,
      kv_objects: kv.length,
      bytes_per_token: kv.reduce((a, o) => a + o.bytes_per_token, 0),
      kv,
    };
  };
  const pre = phase(
    [
      { name: 'kv.0', device: 'cpu1', bytes_per_token: 100 },
      { name: 'kv.1', device: 'cpu1', bytes_per_token: 300 },
      { name: 'kv.2', device: 'cpu1', bytes_per_token: 50 },
    ],
    'cpu1',
  );
  // kv.0 kept whole on gpu0, kv.1 in two shards (1 : 2) on gpu0 and gpu1, kv.2 not named: to the main owner.
  const dec = phase(
    [
      { name: 'kv.0', device: 'gpu0', bytes_per_token: 100 },
      { name: 'kv.1.tp0of2', device: 'gpu0', bytes_per_token: 10 },
      { name: 'kv.1.tp1of2', device: 'gpu1', bytes_per_token: 20 },
    ],
    'gpu1',
  );
  const prompt = 1000;
  const { pairs, lanes } = handoffPairs(pre, dec, topo, routes, prompt);
  assert.deepEqual(
    new Map(pairs.map((p) => [`${p.from} → ${p.to}`, p.bytes_per_token])),
    new Map<string, number>([
      ['cpu1 → gpu0', 200],
      ['cpu1 → gpu1', 250],
    ]),
  );
  for (const p of pairs) assert.deepEqual(p.links, routes.route(p.from, p.to, p.bytes_per_token * prompt).links);
  // A lane per pair, and per shared link both cross one lane with all their bytes.
  const shared = [...new Set(pairs.flatMap((p) => p.links))].filter((l) => topo.links.find((x) => x.name === l)!.shared).sort();
  assert.ok(shared.length > 0, 'rack-hetero: the pairs share a bus');
  assert.equal(lanes.length, pairs.length + shared.length);
  for (const [k, name] of shared.entries()) {
    const lane = lanes[pairs.length + k]!;
    assert.equal(lane.bytes_per_token, 450);
    assert.equal(lane.bandwidth_bytes_per_s, topo.links.find((x) => x.name === name)!.bandwidth_bytes_per_s);
  }
  // The handoff takes its slowest lane; pairs are listed slowest first.
  const m: ServeModel = {
    disaggregated: true,
    prefill: { replicas: 1, prompt_tokens: 100, latency_s: 1e-3, interval_s: 1e-3 },
    decode: { replicas: 1, context_tokens: 200, max_batch: 1, step_s_batch1: 1e-4, step_s_batch_max: 1e-4 },
    handoff: { bytes_per_token: 450, bandwidth_bytes_per_s: 1, latency_s: 0, layers: 3, lanes },
  };
  assert.equal(handoffTimes(m, prompt, 1).busy, Math.max(...lanes.map((l) => laneSeconds(l, prompt))));
  assert.ok(
    laneSeconds({ ...routes.route(pairs[0]!.from, pairs[0]!.to, 1), bytes_per_token: pairs[0]!.bytes_per_token }, prompt) >=
      laneSeconds({ ...routes.route(pairs[1]!.from, pairs[1]!.to, 1), bytes_per_token: pairs[1]!.bytes_per_token }, prompt),
  );
  // A plan written before lanes: its one route.
  const { lanes: _l, ...old } = m.handoff!;
  assert.equal(handoffTimes({ ...m, handoff: old }, prompt, 1).busy, (450 * prompt) / 1);
});

test('--disaggregate off ships the colocated plan; bad serve input is one line and exit 2', () => {
  const dir = tmpDir();
  const modelFile = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const out = path.join(dir, 'co');
  const r = hxc([
    'plan',
    modelFile,
    '--topology',
    path.join(EXAMPLES, 'rack-tiny.yaml'),
    '--phase',
    'serve',
    '--workload',
    WORKLOAD,
    '--disaggregate',
    'off',
    '--out',
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const s = readPlan(out).serve!;
  assert.equal(s.disaggregated, false);
  assert.equal(s.kv_handoff, null);
  assert.equal(s.goodput_per_s, s.colocated_goodput_per_s);
  // Its reason says what was asked, not that no split of the rack holds both phases.
  assert.match(s.why, /not weighed \(--disaggregate off\)/);
  // hxc diff of serving plans compares what they serve (the plan's serve figures, not its prefill plan's).
  const diff = hxc(['diff', out, out, '--json']);
  assert.equal(diff.code, 0, diff.stderr);
  assert.deepEqual(JSON.parse(diff.stdout).b.serve, {
    disaggregated: false,
    goodput_per_s: s.goodput_per_s,
    capacity_per_s: s.capacity_per_s,
    ttft_p90_s: s.ttft_p90_s,
    tpot_p90_s: s.tpot_p90_s,
  });
  assert.match(hxc(['diff', out, out]).stdout, /^capacity {4}[\d.]+\/s → [\d.]+\/s/m);
  assert.equal(isOneLineError(hxc(['plan', modelFile, '--phase', 'serve', '--out', path.join(dir, 'x')]), 'HXC2002'), null, 'no workload');
  const long = path.join(dir, 'long.yaml');
  fs.writeFileSync(long, fs.readFileSync(WORKLOAD, 'utf8').replace('{fixed: 160}', '{fixed: 4000}'));
  const tooLong = hxc(['plan', modelFile, '--phase', 'serve', '--workload', long, '--out', path.join(dir, 'y')]);
  assert.equal(isOneLineError(tooLong, 'HXC2002'), null, 'prompts beyond the positions');
  // Said of the workload file (its lengths), not of --prompt, which the user never gave.
  assert.match(
    tooLong.stderr,
    new RegExp(
      `${long.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the workload's prompts and outputs: 4064 tokens reach position 4065, beyond the \\d+ positions the model addresses`,
    ),
  );
  // hxc simulate holds a workload to the same positions, in the same words.
  const simulated = hxc(['simulate', out, '--workload', long]);
  assert.equal(isOneLineError(simulated, 'HXC2002'), null);
  assert.equal(simulated.stderr, tooLong.stderr);
  assert.equal(isOneLineError(hxc(['inspect', modelFile, '--phase', 'serve']), 'HXC2002'), null);
  assert.equal(isOneLineError(hxc(['simulate', out, '--workload', path.join(dir, 'missing.yaml')]), 'HXC2001'), null);
});

test("serving plans, as an audit used them: a sweep reports the worst rate's p90s; replanning the decode plan keeps to its pool and never replaces the serving plan that holds it; a CNN, pools on a rack with no split, and --requests with --workload are refused in one line; a pin outside a pool rules out that pool only", () => {
  const dir = tmpDir();
  const gpt2 = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const rack8 = path.join(EXAMPLES, 'rack-8gpu.yaml');
  // A sweep past what the rack serves: the p90s of the rates differ, and the plan's is the worst one's.
  const sweep = path.join(dir, 'sweep.yaml');
  fs.writeFileSync(
    sweep,
    'format: hxc-workload/v1\nrates_per_s: [500, 1500, 3000]\nprompt_tokens: {fixed: 160}\noutput_tokens: {fixed: 64}\nslo: {ttft_p90: 300ms, tpot_p90: 40ms}\nrequests: 400\nseed: 1\n',
  );
  const swept = path.join(dir, 'swept');
  const r = hxc(['plan', gpt2, '--topology', rack8, '--phase', 'serve', '--workload', sweep, '--disaggregate', 'on', '--out', swept]);
  assert.equal(r.code, 0, r.stderr);
  const serve = (JSON.parse(fs.readFileSync(path.join(swept, 'plan.json'), 'utf8')) as PlanV1).serve!;
  const ttfts = serve.rates.map((x) => x.ttft_p90_s);
  assert.ok(new Set(ttfts).size > 1, `the rates' p90s differ: ${ttfts}`);
  assert.equal(serve.ttft_p90_s, Math.max(...ttfts));
  assert.equal(serve.tpot_p90_s, Math.max(...serve.rates.map((x) => x.tpot_p90_s)));
  // The decode plan replanned on the rack without gpu5 fails over within its pool.
  const pool = serve.pools.decode;
  const gone = pool.filter((d) => d.startsWith('gpu')).at(-1)!;
  const gpus = ['gpu0', 'gpu1', 'gpu2', 'gpu3', 'gpu4', 'gpu5', 'gpu6', 'gpu7'].filter((d) => d !== gone);
  // rack-8gpu without that GPU.
  const rack = [
    'format: hxc-topology/v1',
    'name: h200x7',
    'devices:',
    '  - {id: cpu0, kind: cpu, model: xeon-8480, memory: {capacity: 2TiB}}',
    ...gpus.map((id) => `  - {id: ${id}, kind: gpu, model: h200}`),
    'links:',
    `  - {name: nvswitch, kind: nvlink, connects: [${gpus.join(', ')}], bandwidth: 450GB/s, latency: 2us}`,
    `  - {name: pcie, kind: pcie, connects: [cpu0, ${gpus.join(', ')}], bandwidth: 64GB/s, latency: 2us, shared: true}`,
  ].join('\n');
  const smaller = path.join(dir, 'rack-smaller.yaml');
  fs.writeFileSync(smaller, rack + '\n');
  const replanned = path.join(dir, 'replanned');
  const rp = hxc(['replan', path.join(swept, 'decode'), '--topology', smaller, '--out', replanned]);
  assert.equal(rp.code, 0, rp.stderr);
  const devices = new Set(Object.values((JSON.parse(fs.readFileSync(path.join(replanned, 'plan.json'), 'utf8')) as PlanV1).assignment));
  assert.ok(
    [...devices].every((d) => pool.includes(d) && d !== gone),
    `decode replanned on ${[...devices]}, its pool ${pool}`,
  );
  // Its output may not be the serving plan that holds it: refused before planning, nothing lost.
  const before = fs.readdirSync(swept).sort();
  const into = hxc(['replan', path.join(swept, 'decode'), '--out', swept]);
  assert.equal(isOneLineError(into, 'HXC2004'), null);
  assert.match(into.stderr, /holds .*decode, which this command reads/);
  assert.deepEqual(fs.readdirSync(swept).sort(), before);
  // Refused in one line: a model with no KV cache, pools where the rack has no split, --requests with --workload.
  const chat = path.join(FIXTURES, 'workloads', 'chat.yaml');
  const cnn = hxc(['plan', path.join(FIXTURES, 'models', 'hello_deepa.onnx'), '--phase', 'serve', '--workload', chat, '--out', path.join(dir, 'cnn')]);
  assert.equal(isOneLineError(cnn, 'HXC2002'), null);
  assert.match(cnn.stderr, /--phase serve plans an LLM with a KV cache/);
  assert.doesNotMatch(cnn.stderr, /warning/);
  const split = hxc([
    'plan',
    gpt2,
    '--topology',
    path.join(EXAMPLES, 'rack-tiny.yaml'),
    '--phase',
    'serve',
    '--workload',
    chat,
    '--disaggregate',
    'on',
    '--out',
    path.join(dir, 'nosplit'),
  ]);
  assert.equal(isOneLineError(split, 'HXC2002'), null);
  assert.match(split.stderr, /--disaggregate on: the rack has no split into a prefill and a decode pool/);
  const requests = hxc(['simulate', swept, '--workload', sweep, '--requests', '5']);
  assert.equal(isOneLineError(requests, 'HXC2002'), null);
  // A node pinned to gpu7: the pools without gpu7 are ruled out, the plan is not.
  const assign = path.join(dir, 'assign.json');
  fs.writeFileSync(assign, JSON.stringify({ format: 'hxc-assignment/v1', assignment: { '/transformer/Unsqueeze': 'gpu7' } }));
  const pinned = hxc(['plan', gpt2, '--topology', rack8, '--phase', 'serve', '--workload', chat, '--assign', assign, '--out', path.join(dir, 'pinned')]);
  assert.equal(pinned.code, 0, pinned.stderr);
});

test('--calibrate with telemetry measured at other dims calibrates nothing, said once (HXC1105): an 8-token prompt is not priced with a 256-token run', () => {
  const dir = tmpDir();
  const gpt2 = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  const tiny = path.join(EXAMPLES, 'rack-tiny.yaml');
  const ran = path.join(dir, 'ran');
  assert.equal(hxc(['plan', gpt2, '--topology', tiny, '--prompt', '256', '--out', ran]).code, 0);
  // Three requests: the first, cold, is left out as a warm-up (one alone is calibrated from, and said).
  const run = hxc(['run', ran, '--iterations', '3']);
  assert.equal(run.code, 0, run.stderr);
  const telemetry = path.join(ran, 'run', 'telemetry.json');
  const latency = (out: string): number => (JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as PlanV1).estimate.latency_s;
  const plain = path.join(dir, 'plain');
  assert.equal(hxc(['plan', gpt2, '--topology', tiny, '--prompt', '8', '--out', plain]).code, 0);
  const other = path.join(dir, 'other');
  const r = hxc(['plan', gpt2, '--topology', tiny, '--prompt', '8', '--calibrate', telemetry, '--out', other]);
  assert.equal(r.code, 0, r.stderr);
  const warned = r.stderr.split('\n').filter((l) => l.includes('HXC1105'));
  assert.equal(warned.length, 1, r.stderr);
  assert.match(warned[0]!, /measured at sequence_length=256, but this plan binds sequence_length=8: its times are not used/);
  assert.equal(latency(other), latency(plain), 'priced as without the telemetry');
  // At the dims it was measured at, it calibrates (the measured times replace the estimates).
  const same = path.join(dir, 'same');
  const s = hxc(['plan', gpt2, '--topology', tiny, '--prompt', '256', '--calibrate', telemetry, '--out', same]);
  assert.equal(s.code, 0, s.stderr);
  assert.doesNotMatch(s.stderr, /HXC1105/);
  assert.notEqual(latency(same), latency(ran));
});
