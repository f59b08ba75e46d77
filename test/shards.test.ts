import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { joinAxis, modelInputs, modelOutputNames, splitAxis, toParts, toWhole } from '../src/runtime/shards.js';
import type { IoShard } from '../src/transform/tensor-parallel.js';

/** [2, 4, 3] with element i = i (as the tensor type holds it). */
function ramp(type: 'float32' | 'int64' | 'float16'): ort.Tensor {
  const n = 24;
  if (type === 'int64')
    return new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
      [2, 4, 3],
    );
  if (type === 'float16')
    return new ort.Tensor(
      'float16',
      Uint16Array.from({ length: n }, (_, i) => i),
      [2, 4, 3],
    );
  return new ort.Tensor(
    'float32',
    Float32Array.from({ length: n }, (_, i) => i),
    [2, 4, 3],
  );
}

test('a tensor cut along any axis into k parts holds the right elements in each, and joining the parts gives it back, for float32, int64 and float16 data', () => {
  for (const type of ['float32', 'int64', 'float16'] as const) {
    const t = ramp(type);
    for (const [axis, k] of [
      [0, 2],
      [1, 2],
      [1, 4],
      [2, 3],
    ] as const) {
      const parts = splitAxis(t, axis, k);
      assert.equal(parts.length, k);
      for (const p of parts) assert.equal(p.dims[axis], t.dims[axis]! / k);
      // Element (a, b, c) of part j is element (…, j·size + ·, …) of the whole.
      const at = (x: ort.Tensor, i: number[]): number => Number((x.data as ArrayLike<number | bigint>)[(i[0]! * x.dims[1]! + i[1]!) * x.dims[2]! + i[2]!]);
      const size = t.dims[axis]! / k;
      for (let j = 0; j < k; j++)
        for (let a = 0; a < parts[j]!.dims[0]!; a++)
          for (let b = 0; b < parts[j]!.dims[1]!; b++)
            for (let c = 0; c < parts[j]!.dims[2]!; c++) {
              const w = [a, b, c];
              w[axis] = w[axis]! + j * size;
              assert.equal(at(parts[j]!, [a, b, c]), at(t, w), `${type} axis ${axis} k ${k} part ${j} (${a},${b},${c})`);
            }
      const back = joinAxis(parts, axis);
      assert.deepEqual(back.dims, t.dims);
      assert.deepEqual(Array.from(back.data as ArrayLike<number | bigint>), Array.from(t.data as ArrayLike<number | bigint>));
      assert.equal(back.type, t.type);
    }
  }
});

test("the model's inputs and outputs against a plan that holds some as parts: specs made whole, names mapped, tensors cut on the way in and joined on the way out, a shape the parts cannot divide refused", () => {
  const io: IoShard[] = [
    { name: 'past', role: 'input', axis: 1, parts: ['past/tp0of2', 'past/tp1of2'] },
    { name: 'present', role: 'output', axis: 1, parts: ['present/tp0of2', 'present/tp1of2'] },
  ];
  const fill = { kind: 'normal' } as never;
  const specs = [
    { name: 'ids', dtype: 'int64', shape: ['batch', 5], fill },
    { name: 'past/tp0of2', dtype: 'float32', shape: ['batch', 2, 'past_len', 3], fill },
    { name: 'past/tp1of2', dtype: 'float32', shape: ['batch', 2, 'past_len', 3], fill },
  ];
  assert.deepEqual(
    modelInputs(specs, io).map((s) => [s.name, s.shape]),
    [
      ['ids', ['batch', 5]],
      ['past', ['batch', 4, 'past_len', 3]],
    ],
  );
  assert.deepEqual(modelOutputNames(['logits', 'present/tp0of2', 'present/tp1of2'], io), ['logits', 'present']);
  const whole = ramp('float32');
  const parts = toParts({ past: whole, ids: ramp('int64') }, io, 'input');
  assert.deepEqual(Object.keys(parts).sort(), ['ids', 'past/tp0of2', 'past/tp1of2']);
  const outs = toWhole({ 'present/tp0of2': parts['past/tp0of2']!, 'present/tp1of2': parts['past/tp1of2']! }, io, 'output');
  assert.deepEqual(Array.from(outs.present!.data as Float32Array), Array.from(whole.data as Float32Array));
  assert.throws(() => toParts({ past: new ort.Tensor('float32', new Float32Array(6), [2, 3]) }, io, 'input'), /HXC2602|does not divide/);
});
