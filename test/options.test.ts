// Options declared once: every pass option is one declaration, `hxc plan --help` shows each of
// them (built from the registry), inspect and check take exactly those that say so, and a bad
// value is refused by its declaration with one line — on the command line and in a flags bag alike.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { PASSES } from '../passes/index.js';
import { runPipeline } from '../src/cli/run-passes.js';
import { HxcError } from '../src/diag/diagnostics.js';
import { parseOption, type OptionSpec } from '../src/pass/options.js';
import { EXAMPLES, FIXTURES, hxc, isOneLineError } from './helpers.js';

const declared = (): OptionSpec[] => [...new Set(PASSES.flatMap((p) => p.options))];

test('each pass option is declared once, and every command that runs passes offers the ones it takes', () => {
  const specs = declared();
  const names = specs.map((o) => o.name);
  assert.equal(new Set(names).size, names.length, `one declaration per name: ${names.join(', ')}`);
  assert.ok(specs.length >= 15, `the passes declare their options (${specs.length})`);
  const help = hxc(['plan', '--help']);
  assert.equal(help.code, 0);
  for (const o of specs) assert.match(help.stdout, new RegExp(`--${o.name}\\b`), `plan --help shows --${o.name}`);
  for (const command of ['inspect', 'check'] as const) {
    const text = hxc([command, '--help']).stdout;
    for (const o of specs) {
      const shown = new RegExp(`^\\s+(-\\w, )?--${o.name}\\b`, 'm').test(text);
      // check has a --min-sequences budget of its own (a KV floor to hold a plan to).
      if (command === 'check' && o.name === 'min-sequences') continue;
      assert.equal(shown, o.on?.includes(command) ?? false, `${command} --help ${shown ? 'shows' : 'lacks'} --${o.name}`);
    }
  }
});

test('a bad option value is refused by its declaration: on the command line (one line, exit 2) and in a flags bag', async () => {
  const model = path.join(FIXTURES, 'models', 'gpt2_tiny_kv.onnx');
  for (const [flag, value, says] of [
    ['--batch', '0', 'a positive integer'],
    ['--expert-slots', '-1', 'a non-negative integer'],
    ['--time-limit', '0', 'a time above 0 s and at most 86400 s'],
    ['--max-stages', 'x', 'a positive integer'],
  ] as const) {
    const r = hxc(['plan', model, '--out', path.join('/nonexistent', 'never'), flag, value]);
    assert.equal(isOneLineError(r, 'HXC2002'), null, `${flag} ${value}`);
    assert.match(r.stderr, new RegExp(`${flag} takes ${says}`));
  }
  await assert.rejects(
    runPipeline({ model_path: model, topology_path: path.join(EXAMPLES, 'rack-tiny.yaml'), dims: {}, flags: { 'max-stages': 0 } }, [
      'import',
      'verify',
      'bind',
      'shapes',
      'profile',
      'classify',
      'state',
      'stage',
    ]),
    (err: unknown) => err instanceof HxcError && /--max-stages takes a positive integer/.test(err.message),
  );
  const objective = declared().find((o) => o.name === 'objective')!;
  assert.equal(parseOption(objective, 'throughput'), 'throughput');
  assert.throws(() => parseOption(objective, 'fastest'), /--objective takes one of latency, throughput/);
});
