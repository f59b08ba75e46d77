import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { FIXTURES, REPO } from './helpers.js';
import { syntheticJson } from '../src/bench/cases.js';

const schema = JSON.parse(fs.readFileSync(path.join(REPO, 'src', 'schema', 'hxc-graph.v1.schema.json'), 'utf8'));

test('the shipped hxc-graph/v1 schema accepts the graphs hxc accepts and rejects malformed ones', () => {
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  const graphs = fs.readdirSync(path.join(FIXTURES, 'graphs')).filter((f) => f.endsWith('.json'));
  assert.ok(graphs.length > 0);
  for (const f of graphs) {
    const doc = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'graphs', f), 'utf8'));
    assert.ok(validate(doc), `${f}: ${JSON.stringify(validate.errors)}`);
  }
  assert.ok(validate(JSON.parse(syntheticJson(50))));
  assert.ok(!validate({ format: 'hxc-graph/v1', inputs: [], outputs: [], nodes: [{ name: 'n', op: 'Relu', inputs: 'x', outputs: [] }] }));
  assert.ok(!validate({ format: 'hxc-graph/v1', inputs: [{ name: 'x' }], outputs: [], nodes: [] }), 'a value needs dtype+shape or bytes');
  assert.ok(!validate({ format: 'hxc-graph/v2', inputs: [], outputs: [], nodes: [] }));
});
