// Bad transformer submissions (and bad `init` uploads of either family) are 400s that say what is
// wrong. Refused submissions change nothing, so one coordinator answers them all.
import { describe, expect, test } from 'vitest';
import { toNpy } from '../../protocol/npy.js';
import { mlpParamCount } from '../../protocol/train-mlp.js';
import { transformerParamCount, type TransformerSpec } from '../../protocol/train-transformer.js';
import { useTestGrid } from '../fixtures.js';
import { markovTask, markovTokens } from '../lm-task.js';
import { blobsTask, int32Npy } from '../train-task.js';

const tokens = markovTokens(markovTask(8), 4096, 1);
const MODEL: TransformerSpec = { vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2 };

const { grid } = useTestGrid(undefined, 'all');

function lmBody(data: Record<string, string>, over: Record<string, unknown> = {}) {
  return { kind: 'train', model: { type: 'transformer', ...MODEL }, data, rounds: 6, localSteps: 32, batchSize: 8, unitsPerRound: 2, ...over };
}

async function post(body: unknown): Promise<[number, string]> {
  const res = await grid.api('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return [res.status, await res.text()];
}

describe('bad transformer submissions are 400s that say what is wrong', () => {
  const P = transformerParamCount(MODEL);
  const bad = (values: number[]) => Float32Array.from(tokens.subarray(0, 200), (v, i) => (i < values.length && !Number.isNaN(values[i]) ? values[i] : v));
  const cases: [string, () => Promise<Record<string, unknown>>, RegExp][] = [
    ['dModel not divisible by heads', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(tokens)) }, { model: { type: 'transformer', ...MODEL, heads: 3 } }), /dModel must be divisible by heads/],
    ['context over 256', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(tokens)) }, { model: { type: 'transformer', ...MODEL, context: 257 } }), /context/],
    ['a vocabulary of one', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(tokens)) }, { model: { type: 'transformer', ...MODEL, vocab: 1 } }), /vocab/],
    ['an unknown model field', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(tokens)) }, { model: { type: 'transformer', ...MODEL, dropout: 0.1 } }), /dropout/],
    ['x and y for a transformer', async () => lmBody({ x: await grid.uploadShard(toNpy([4], new Float32Array(4))), y: await grid.uploadShard(toNpy([4], new Float32Array(4))) }), /a transformer trains on data.tokens/],
    ['tokens for an MLP', async () => ({ ...lmBody({ tokens: await grid.uploadShard(int32Npy(tokens)) }), model: { type: 'mlp', layers: [8, 4] } }), /an mlp model trains on data.x and data.y/],
    ['a token id out of range', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(bad([NaN, NaN, NaN, NaN, NaN, 8]))) }, { unitsPerRound: 1 }), /token ids must be integers in \[0, 8\) \(model.vocab\); position 5 has 8/],
    ['a negative token id', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(bad([NaN, -1]))) }, { unitsPerRound: 1 }), /position 1 has -1/],
    ['a fractional token id (float32)', async () => lmBody({ tokens: await grid.uploadShard(toNpy([200], bad([NaN, NaN, NaN, 2.5]))) }, { unitsPerRound: 1 }), /position 3 has 2.5/],
    ['bad validation tokens', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(tokens)), validation: await grid.uploadShard(int32Npy([1, 2, 9])) }), /data.validation: token ids must be integers in \[0, 8\).*position 2 has 9/],
    ['2-D tokens', async () => lmBody({ tokens: await grid.uploadShard(toNpy([2, 100], tokens.slice(0, 200))) }), /data.tokens: must be a 1-D array of token ids, got shape \(2, 100\)/],
    ['slices shorter than a window', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(tokens.subarray(0, 60))) }, { unitsPerRound: 4 }), /data.tokens has 60 tokens.*every slice needs at least context \+ 1 = 17 tokens/],
    ['init of the wrong length', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(tokens)) }, { init: await grid.uploadShard(toNpy([10], new Float32Array(10))) }), new RegExp(`init: has 10 values but the model has ${P} parameters`)],
    ['init with a NaN', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(tokens)) }, { init: await grid.uploadShard(toNpy([P], Float32Array.from({ length: P }, (_, i) => (i === 3 ? NaN : 0)))) }), /init: must be finite \(no NaN or Infinity\); value 3 is NaN/],
    ['init 2-D', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(tokens)) }, { init: await grid.uploadShard(toNpy([1, P], new Float32Array(P))) }), /init: must be a flat 1-D array/],
    ['init never uploaded', async () => lmBody({ tokens: await grid.uploadShard(int32Npy(tokens)) }, { init: 'ab'.repeat(32) }), /init: no shard/],
    ['MLP init of the wrong length', async () => ({ kind: 'train', model: { type: 'mlp', layers: [8, 4] }, data: await mlpData(), init: await grid.uploadShard(toNpy([5], new Float32Array(5))), rounds: 1, localSteps: 1, batchSize: 4 }), new RegExp(`init: has 5 values but the model has ${mlpParamCount([8, 4])} parameters`)],
  ];
  async function mlpData() {
    const t = blobsTask(16, 8, 4, 1);
    return { x: await grid.uploadShard(toNpy([t.n, t.f], t.x)), y: await grid.uploadShard(toNpy([t.n], t.y)) };
  }
  test.each(cases)('%s', async (_what, make, message) => {
    const [status, text] = await post(await make());
    expect(status, text).toBe(400);
    expect(text).toMatch(message);
  });
});
