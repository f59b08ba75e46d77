import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Diagnostics, HxcError } from '../src/diag/diagnostics.js';
import { loadModel } from '../src/import/load.js';
import { paramBytes } from '../src/ir/graph.js';
import { verifyGraph } from '../src/ir/verify.js';
import { externalAddModel, onnx, valueInfo } from './onnx-builder.js';
import { indexSource } from '../src/lower/programs.js';
import { splitModel } from '../src/import/onnx-fields.js';
import { FIXTURES, SHARED_MODELS, sharedModels, tmpDir } from './helpers.js';

/** The facts MANIFEST.md states for each model (an oracle independent of our importer). */
function manifestFacts(): Map<string, { nodes: number; initializers: number; param_bytes: number }> {
  const text = fs.readFileSync(path.join(SHARED_MODELS, 'MANIFEST.md'), 'utf8');
  const facts = new Map<string, { nodes: number; initializers: number; param_bytes: number }>();
  for (const row of text.matchAll(/^\| `([^`]+\.onnx)` \|.*?(\d+) nodes; (\d+) initializers[^;|]*; parameter bytes ([\d,]+)/gm)) {
    facts.set(row[1]!, { nodes: Number(row[2]), initializers: Number(row[3]), param_bytes: Number(row[4]!.replace(/,/g, '')) });
  }
  for (const section of text.split(/^### /m).slice(1)) {
    const file = /^`([^`]+)`/.exec(section)?.[1];
    const nodes = /^- nodes: (\d+) in the main graph/m.exec(section)?.[1];
    const init = /^- initializers: (\d+) .*?([\d,]+) bytes;/m.exec(section);
    if (file && nodes && init) {
      facts.set(file, { nodes: Number(nodes), initializers: Number(init[1]), param_bytes: Number(init[2]!.replace(/,/g, '')) });
    }
  }
  return facts;
}

test('every shared model imports with the node, initializer and parameter counts its file holds', () => {
  const models = sharedModels();
  assert.ok(models.length >= 6, `expected the shared models, found ${models.length}`);
  const facts = manifestFacts();
  for (const file of models) {
    const diagnostics = new Diagnostics();
    const model = loadModel(file, diagnostics);
    const raw = onnx.ModelProto.decode(fs.readFileSync(file));
    assert.equal(model.graph.nodes.length, raw.graph!.node!.length, `${file}: node count`);
    const fact = facts.get(path.basename(file));
    assert.ok(fact, `MANIFEST.md describes ${path.basename(file)}`);
    assert.equal(model.graph.nodes.length, fact.nodes, `${file}: nodes per MANIFEST`);
    assert.equal(model.graph.initializers.size, fact.initializers, `${file}: initializers per MANIFEST`);
    assert.equal(paramBytes(model.graph), fact.param_bytes, `${file}: parameter bytes per MANIFEST`);
    const names = new Set(model.graph.nodes.map((n) => n.name));
    assert.equal(names.size, model.graph.nodes.length, `${file}: node names are made unique`);
    verifyGraph(model.graph, file);
  }
});

test('the graph-only Mixtral imports with one warning and no weight bytes', () => {
  const diagnostics = new Diagnostics();
  const model = loadModel(path.join(SHARED_MODELS, 'mixtral_8x7b_shaped.graph_only.onnx'), diagnostics);
  assert.equal(model.weights_present, false);
  assert.equal(diagnostics.warnings.length, 1);
  assert.equal(diagnostics.warnings[0]!.code, 'HXC1101');
  assert.match(diagnostics.warnings[0]!.message, /997 initializers \(93422362624 bytes\).*weights\.bin/);
  const ext = [...model.graph.initializers.values()].filter((t) => t.location.kind === 'external');
  assert.equal(ext.length, 997);
  const last = ext[ext.length - 1]!;
  assert.equal(last.location.kind === 'external' && last.location.offset + last.location.length, 93422362624);
});

test('Paddle Constant nodes with empty names get stable unique names', () => {
  const model = loadModel(path.join(SHARED_MODELS, 'ch_PP-OCRv4_det_infer.onnx'), new Diagnostics());
  const constants = model.graph.nodes.filter((n) => n.op === 'Constant');
  assert.equal(constants.length, 342);
  const idx = model.graph.nodes.indexOf(constants[0]!);
  assert.equal(constants[0]!.name, `Constant_${idx}`);
  const attr = constants.find((c) => c.attrs.value?.type === 'tensor' && c.attrs.value.value.byte_size > 1000)!.attrs.value!;
  assert.ok(attr.type === 'tensor' && attr.value.location.kind === 'inline' && attr.value.location.data.length === attr.value.byte_size);
});

test('external data: inside the folder resolves, outside is refused, missing is a warning', () => {
  const dir = tmpDir();
  const inner = path.join(dir, 'm');
  fs.mkdirSync(inner);
  fs.writeFileSync(path.join(inner, 'w.bin'), Buffer.alloc(16));
  fs.writeFileSync(path.join(inner, 'ok.onnx'), externalAddModel('w.bin'));
  const ok = loadModel(path.join(inner, 'ok.onnx'), new Diagnostics());
  const w = ok.graph.initializers.get('w')!;
  assert.deepEqual({ kind: w.location.kind, present: w.location.kind === 'external' && w.location.present }, { kind: 'external', present: true });
  assert.equal(ok.weights_present, true);

  fs.writeFileSync(path.join(dir, 'secret.bin'), Buffer.alloc(16));
  fs.writeFileSync(path.join(inner, 'escape.onnx'), externalAddModel('../secret.bin'));
  assert.throws(
    () => loadModel(path.join(inner, 'escape.onnx'), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && e.code === 'HXC2104',
  );
  fs.writeFileSync(path.join(inner, 'abs.onnx'), externalAddModel(path.join(dir, 'secret.bin')));
  assert.throws(
    () => loadModel(path.join(inner, 'abs.onnx'), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && e.code === 'HXC2104',
  );
  fs.symlinkSync(path.join(dir, 'secret.bin'), path.join(inner, 'link.bin'));
  fs.writeFileSync(path.join(inner, 'link.onnx'), externalAddModel('link.bin'));
  assert.throws(
    () => loadModel(path.join(inner, 'link.onnx'), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && e.code === 'HXC2104',
  );

  fs.writeFileSync(path.join(inner, 'short.bin'), Buffer.alloc(8));
  fs.writeFileSync(path.join(inner, 'short.onnx'), externalAddModel('short.bin'));
  assert.throws(
    () => loadModel(path.join(inner, 'short.onnx'), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && e.code === 'HXC2105',
  );

  fs.writeFileSync(path.join(inner, 'missing.onnx'), externalAddModel('nothere.bin'));
  const d = new Diagnostics();
  const missing = loadModel(path.join(inner, 'missing.onnx'), d);
  assert.equal(missing.weights_present, false);
  assert.equal(d.warnings.length, 1);
});

test('a corrupt initializer is one line naming it; one whose field is not length-delimited is read as protobufjs reads the graph', () => {
  const dir = tmpDir();
  const graph = (extra: number[]): Buffer => {
    const body = onnx.GraphProto.encode({
      name: 'g',
      node: [{ name: 'add', opType: 'Add', input: ['x', 'x'], output: ['y'] }],
      input: [valueInfo('x', 1, [4])],
      output: [valueInfo('y', 1, [4])],
    }).finish();
    const g = Buffer.concat([Buffer.from(body), Buffer.from(extra)]);
    const head = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }] }).finish();
    const length = g.length < 128 ? [g.length] : [(g.length & 127) | 128, g.length >> 7]; // a varint (graphs of < 16 kB)
    return Buffer.concat([Buffer.from(head), Buffer.from([(7 << 3) | 2, ...length]), g]);
  };
  // Initializer (field 5, length-delimited) of two bytes: field 15 (unused) of wire type 7, which no field has.
  fs.writeFileSync(path.join(dir, 'bad-init.onnx'), graph([(5 << 3) | 2, 2, (15 << 3) | 7, 0]));
  assert.throws(
    () => loadModel(path.join(dir, 'bad-init.onnx'), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && e.code === 'HXC2102' && /initializer 0 of the graph does not decode/.test(e.message),
  );
  // An empty initializer, length-delimited, then field 5 as a varint: the graph decoded whole by
  // protobufjs, as it was, which reads any field 5 as a TensorProto (of length 0 here: the first,
  // of data_type 0, is refused), or fails as it failed (of length 9 here, past the file's end).
  fs.writeFileSync(path.join(dir, 'varint-init.onnx'), graph([(5 << 3) | 2, 0, (5 << 3) | 0, 0]));
  assert.throws(
    () => loadModel(path.join(dir, 'varint-init.onnx'), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && e.code === 'HXC2107' && /unknown data_type 0/.test(e.message),
  );
  const past = graph([(5 << 3) | 2, 0, (5 << 3) | 0, 9]);
  fs.writeFileSync(path.join(dir, 'varint-past.onnx'), past);
  const whole = ((): string => {
    try {
      onnx.GraphProto.decode(splitModel(past)!.graph_rest); // what the import decoded before it split off initializers
    } catch (err) {
      return (err as Error).message;
    }
    return 'decoded';
  })();
  assert.throws(
    () => loadModel(path.join(dir, 'varint-past.onnx'), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && e.code === 'HXC2103' && e.message.includes(whole),
  );
  // A node whose name runs past its end into the next node's bytes: decoded alone, as the import
  // always decoded it (protobufjs cuts the name at the node's end: "x"), not read on into its neighbour.
  const relu = Buffer.from(onnx.NodeProto.encode({ name: 'r', opType: 'Relu', input: ['y'], output: ['z'] }).finish());
  const crossing = [(4 << 3) | 2, 3, 0x41, 0x64, 0x64, (3 << 3) | 2, 10, 0x78];
  fs.writeFileSync(path.join(dir, 'crossing.onnx'), graph([(1 << 3) | 2, crossing.length, ...crossing, (1 << 3) | 2, relu.length, ...relu]));
  const crossed = new Diagnostics();
  const nodes = loadModel(path.join(dir, 'crossing.onnx'), crossed).graph.nodes;
  assert.deepEqual(
    nodes.map((n) => n.name),
    ['add'],
  );
  assert.match(crossed.warnings[0]!.message, /2 node\(s\) compute values nothing reads \(e\.g\. Add "x"\)/);
  // Both well formed: an empty initializer (no name, float32, no dims: one element, no data).
  fs.writeFileSync(path.join(dir, 'empty-init.onnx'), graph([(5 << 3) | 2, 2, (2 << 3) | 0, 1]));
  assert.throws(
    () => loadModel(path.join(dir, 'empty-init.onnx'), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && e.code === 'HXC2107',
  );
});

test('JSON graph imports with declared types, attributes and initializers', () => {
  const model = loadModel(path.join(FIXTURES, 'graphs', 'mlp.json'), new Diagnostics());
  assert.equal(model.format, 'hxc-graph/v1');
  assert.equal(model.graph.nodes.length, 5);
  assert.deepEqual(model.graph.declared.get('x'), { dtype: 'float32', shape: ['batch', 256] });
  assert.equal(model.graph.initializers.get('w1')!.byte_size, 256 * 512 * 4);
  assert.deepEqual(model.graph.nodes[4]!.attrs.axis, { type: 'int', value: -1 });
});

test('JSON graph errors name the JSON path', () => {
  const check = (file: string, code: string, pattern: RegExp): void => {
    assert.throws(
      () => {
        const m = loadModel(path.join(FIXTURES, 'bad', file), new Diagnostics());
        verifyGraph(m.graph, file);
      },
      (e: unknown) => e instanceof HxcError && e.code === code && pattern.test(e.message),
    );
  };
  check('undefined-value.json', 'HXC2203', /^nodes\[1\]\.inputs\[1\]: value "h3" is never produced$/);
  check('cycle.json', 'HXC2204', /"a" → "b" → "c" → "a"/);
  const dir = tmpDir();
  const bad = (name: string, doc: unknown): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, typeof doc === 'string' ? doc : JSON.stringify(doc));
    return p;
  };
  const base = { format: 'hxc-graph/v1', inputs: [{ name: 'x', dtype: 'float32', shape: [2] }], outputs: [{ name: 'y', dtype: 'float32', shape: [2] }] };
  assert.throws(
    () => loadModel(bad('dtype.json', { ...base, inputs: [{ name: 'x', dtype: 'flaot', shape: [2] }], nodes: [] }), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && /^inputs\[0\]\.dtype: unknown dtype "flaot"/.test(e.message),
  );
  assert.throws(
    () =>
      loadModel(
        bad('dup.json', {
          ...base,
          nodes: [
            { name: 'n', op: 'Relu', inputs: ['x'], outputs: ['y'] },
            { name: 'n', op: 'Relu', inputs: ['x'], outputs: ['z'] },
          ],
        }),
        new Diagnostics(),
      ),
    (e: unknown) => e instanceof HxcError && e.code === 'HXC2205' && /nodes\[1\]\.name/.test(e.message),
  );
  assert.throws(
    () => loadModel(bad('fmt.json', { ...base, format: 'hxc-graph/v9', nodes: [] }), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && /^format: expected "hxc-graph\/v1"/.test(e.message),
  );
  assert.throws(
    () => loadModel(bad('syntax.json', '{"format": '), new Diagnostics()),
    (e: unknown) => e instanceof HxcError && e.code === 'HXC2201',
  );
});

test("the lowering indexes a model by the import's split as by splitting it again: the same header, NodeProto bytes and initializers", () => {
  for (const file of sharedModels()) {
    const model = loadModel(file, new Diagnostics());
    assert.ok(model.source && model.source_split, `${file}: split by the import`);
    const kept = indexSource(model.source, model.source_split);
    const fresh = indexSource(model.source);
    assert.equal(kept.nodeCount, fresh.nodeCount, file);
    for (let i = 0; i < fresh.nodeCount; i++) assert.deepEqual(kept.nodeBytes(i), fresh.nodeBytes(i), `${file}: node ${i}`);
    assert.deepEqual(
      [kept.irVersion, kept.opsetImport, kept.functions, kept.graphName],
      [fresh.irVersion, fresh.opsetImport, fresh.functions, fresh.graphName],
    );
    assert.deepEqual([...kept.initializers.keys()], [...fresh.initializers.keys()], file);
  }
  // A ModelProto whose graph field comes twice is decoded whole (the last graph is the graph): not split.
  const one = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'first' } }).finish();
  const twice = Buffer.concat([one, Buffer.from(onnx.ModelProto.encode({ graph: { name: 'second' } }).finish())]);
  assert.equal(splitModel(twice), null);
  assert.equal(indexSource(twice).graphName, 'second');
});
