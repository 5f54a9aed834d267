// The train kind's pieces: the MLP's gradient against finite differences, the inner loop's
// determinism, the replica tolerance's calibration against float32/float64 divergence over H, what
// the cheap check and the replica comparison catch, and the aggregators' properties.
import { describe, expect, test } from 'vitest';
import { aggregateDeltas, decodeUnitOutput, deltaRtol, trainOutputsAgree, trainTolerance, train, trainUnitReference, unitSeed } from './train.js';
import { batchSchedule, innerSpecOf, runTrainUnit, trainInner, trainOutputBytes, type InnerSpec } from '../protocol/train-loop.js';
import { initMlp, mlpLossGrad, mlpModel, mlpParamCount } from '../protocol/train-mlp.js';
import { mixSeed } from '../protocol/train-model.js';
import { transformerModel } from '../protocol/train-transformer.js';
import { markovTask, markovTokens } from '../testing/lm-task.js';
import { toNpy } from '../protocol/npy.js';
import type { TrainParams } from '../protocol/index.js';
import { useTempShards } from '../testing/fixtures.js';
import { blobsTask, relativeL2 } from '../testing/train-task.js';
import type { WorkUnitRecord } from '../store/store.js';

const adamw = { type: 'adamw' as const, lr: 0.01, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };

test('the gradient matches central finite differences (float64)', () => {
  const layers = [5, 7, 6, 3];
  const task = blobsTask(20, 5, 3, 1);
  const p = Float64Array.from(initMlp(layers, 2));
  const rows = Int32Array.from({ length: 12 }, (_, i) => i);
  const x = Float64Array.from(task.x);
  const y = Float64Array.from(task.y);
  const g = new Float64Array(p.length);
  mlpLossGrad(Float64Array, layers, p, x, y, rows, g);
  let worst = 0;
  for (let i = 0; i < p.length; i++) {
    const h = 1e-6;
    const q = Float64Array.from(p);
    q[i] += h;
    const up = mlpLossGrad(Float64Array, layers, q, x, y, rows, null);
    q[i] -= 2 * h;
    const down = mlpLossGrad(Float64Array, layers, q, x, y, rows, null);
    worst = Math.max(worst, Math.abs((up - down) / (2 * h) - g[i]));
  }
  expect(worst).toBeLessThan(1e-6);
});

test('batches: epochs of a seeded shuffle, the same for the same seed', () => {
  const a = batchSchedule(10, 5, 4, 7);
  expect(a.map((b) => Array.from(b))).toEqual(batchSchedule(10, 5, 4, 7).map((b) => Array.from(b)));
  const firstEpoch = [...a[0], ...a[1], ...a[2].slice(0, 2)];
  expect([...firstEpoch].sort((p, q) => p - q)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  expect(batchSchedule(10, 5, 4, 8).map((b) => Array.from(b))).not.toEqual(a.map((b) => Array.from(b)));
  expect(unitSeed(0, 1, 2)).not.toBe(unitSeed(0, 2, 1));
});

describe('calibration: honest replicas vs the tolerance, as H grows', () => {
  // Float32 storage with float32 accumulation (as a GPU kernel) against float64 throughout: the
  // widest honest disagreement we can produce on the CPU. The tolerance must clear it by 100×.
  const configs = [
    { layers: [16, 32, 4], opt: { ...adamw, type: 'sgd' as const, lr: 0.1 } },
    { layers: [16, 32, 4], opt: adamw },
    { layers: [64, 128, 64, 10], opt: { ...adamw, type: 'sgd' as const, lr: 0.1 } },
    { layers: [64, 128, 64, 10], opt: adamw },
  ];
  const measured: string[] = [];
  test.each(configs.flatMap((c) => [1, 8, 64, 256].map((H) => ({ ...c, H }))))('$layers $opt.type lr $opt.lr, H = $H', ({ layers, opt, H }) => {
    const task = blobsTask(512, layers[0], layers.at(-1)!, 7);
    const p0 = initMlp(layers, 1);
    const spec: InnerSpec = { model: mlpModel(layers), steps: H, batchSize: 32, seed: mixSeed(3, H), optimizer: opt };
    const f32 = trainInner(Float32Array, spec, p0, task.x, task.y, undefined, Float32Array).delta;
    const f64 = trainInner(Float64Array, spec, Float64Array.from(p0), Float64Array.from(task.x), Float64Array.from(task.y)).delta;
    const d = relativeL2(f32, f64);
    measured.push(`${layers.join('-')} ${opt.type} H=${H}: ${d.toExponential(1)} (tolerance ${deltaRtol(H).toExponential(1)})`);
    expect(d * 100).toBeLessThan(deltaRtol(H));
  });

  // The transformer sums in float64 numbers and stores in the array's precision: float32 storage
  // against float64 throughout, on the LM scenario's model, task and optimizer.
  test.each([1, 8, 32, 64])('transformer (V 8, T 16, D 16, 2 heads) adamw lr 0.015, H = %i', (H) => {
    const s = { vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2 };
    const model = transformerModel(s);
    const tokens = markovTokens(markovTask(8), 1024, 5);
    const p0 = model.init(1);
    const spec: InnerSpec = { model, steps: H, batchSize: 8, seed: mixSeed(3, H), optimizer: { ...adamw, lr: 0.015, weightDecay: 0 } };
    const f32 = trainInner(Float32Array, spec, p0, tokens, null).delta;
    const f64 = trainInner(Float64Array, spec, Float64Array.from(p0), Float64Array.from(tokens), null).delta;
    const d = relativeL2(f32, f64);
    measured.push(`transformer adamw H=${H}: ${d.toExponential(1)} (tolerance ${deltaRtol(H).toExponential(1)})`);
    expect(d * 100).toBeLessThan(deltaRtol(H));
  });

  test('a schedule that is chaotic in float32 diverges past the tolerance: its units find no quorum (documented)', () => {
    const layers = [64, 128, 64, 10];
    const task = blobsTask(512, 64, 10, 7);
    const p0 = initMlp(layers, 1);
    const spec: InnerSpec = { model: mlpModel(layers), steps: 256, batchSize: 32, seed: mixSeed(3, 256), optimizer: { ...adamw, lr: 0.05 } };
    const f32 = trainInner(Float32Array, spec, p0, task.x, task.y, undefined, Float32Array).delta;
    const f64 = trainInner(Float64Array, spec, Float64Array.from(p0), Float64Array.from(task.x), Float64Array.from(task.y)).delta;
    expect(relativeL2(f32, f64)).toBeGreaterThan(deltaRtol(256));
    console.log(`calibration (relative L2, float32 vs float64):\n  ${measured.join('\n  ')}`);
  });
});

describe('what the check and the replica comparison catch', () => {
  const fixture = useTempShards();
  const layers = [8, 16, 4];
  const task = blobsTask(64, 8, 4, 3);
  const H = 16;
  const params: TrainParams = { round: 0, rounds: 1, slice: 0, rows: 64, layers, steps: H, batchSize: 16, seed: 99, optimizer: 'adamw', lr: 0.01, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, compress: 'none' };
  const theta = initMlp(layers, 4);

  async function unit(): Promise<WorkUnitRecord> {
    const { shards } = fixture;
    const inputs = { params: await shards.put(toNpy([theta.length], theta)), x: await shards.put(toNpy([64, 8], task.x)), y: await shards.put(toNpy([64], task.y)) };
    return { id: 'j.0', jobId: 'j', idx: 0, kind: 'train', params: params as unknown as WorkUnitRecord['params'], inputs, outputBytes: (theta.length + 2) * 4, flops: 1, tolerance: trainTolerance(H), meta: {}, target: 2, state: 'open', canonicalResultId: null };
  }
  const honest = () => trainUnitReference(params, theta, task.x, task.y);
  const P = mlpParamCount(layers);
  const tamper = (f: (v: number, i: number) => number) => {
    const out = honest();
    for (let i = 0; i < P; i++) out[i] = f(out[i], i);
    return out;
  };
  const cheats: [string, () => Float32Array][] = [
    ['sign-flipped ×10', () => tamper((v) => -10 * v)],
    ['random', () => tamper((_, i) => Math.sin(i * 12.9898) * 0.01)],
    ['zero', () => tamper(() => 0)],
    ['half the steps', () => trainUnitReference({ ...params, steps: H / 2 }, theta, task.x, task.y)],
  ];

  test('an honest output passes the check and agrees with a float64 replica', async () => {
    const wu = await unit();
    expect(await train.check(wu, honest(), fixture.shards)).toBe(true);
    const r64 = trainInner(Float64Array, { model: mlpModel(layers), steps: H, batchSize: 16, seed: 99, optimizer: { type: 'adamw', lr: 0.01, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8 } }, Float64Array.from(theta), Float64Array.from(task.x), Float64Array.from(task.y));
    const other = new Float32Array(P + 2);
    other.set(r64.delta);
    other[P] = r64.trainLoss;
    other[P + 1] = r64.checkLoss;
    expect(trainOutputsAgree(decodeUnitOutput(params, honest()), decodeUnitOutput(params, other), wu.tolerance)).toBe(true);
  });

  test.each(cheats)('%s: disagrees with an honest replica', async (_what, make) => {
    const wu = await unit();
    expect(trainOutputsAgree(decodeUnitOutput(params, honest()), decodeUnitOutput(params, make()), wu.tolerance)).toBe(false);
  });

  test.each(cheats.slice(0, 3))('%s, sent with the honest losses: fails the check', async (_what, make) => {
    expect(await train.check(await unit(), make(), fixture.shards)).toBe(false);
  });

  test('int8: an honest output passes the check and agrees with a float64-summed replica; a flipped one fails both', async () => {
    const wu = await unit();
    const p8: TrainParams = { ...params, compress: 'int8' };
    const w8 = { ...wu, params: p8 as unknown as WorkUnitRecord['params'], tolerance: trainTolerance(H, 'int8'), outputBytes: trainOutputBytes(mlpModel(layers), 'int8') };
    const spec = innerSpecOf(p8);
    const a = runTrainUnit(spec, 'int8', theta, task.x, task.y, Float32Array);
    const b = runTrainUnit(spec, 'int8', theta, task.x, task.y, Float64Array);
    expect(a.byteLength).toBe(w8.outputBytes);
    expect(await train.check(w8, a, fixture.shards)).toBe(true);
    expect(train.agree!(w8, a, b)).toBe(true);
    const flipped = a.slice();
    const q = new Int8Array(flipped.buffer, 6 * 4, P);
    for (let i = 0; i < P; i++) q[i] = -q[i];
    expect(await train.check(w8, flipped, fixture.shards)).toBe(false);
    expect(train.agree!(w8, a, flipped)).toBe(false);
  });

  test('non-finite values fail the check', async () => {
    const out = honest();
    out[3] = NaN;
    expect(await train.check(await unit(), out, fixture.shards)).toBe(false);
  });
});

describe('a transformer unit: tokens and no labels, the same check and comparison', () => {
  const fixture = useTempShards();
  const model = { type: 'transformer' as const, vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2 };
  const tokens = markovTokens(markovTask(8), 300, 4);
  const H = 8;
  const base: TrainParams = { round: 0, rounds: 1, slice: 0, rows: tokens.length, model, steps: H, batchSize: 4, seed: 7, optimizer: 'adamw', lr: 0.015, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, compress: 'none' };
  const theta = transformerModel(model).init(2);

  async function unit(p: TrainParams): Promise<WorkUnitRecord> {
    const { shards } = fixture;
    const inputs = { params: await shards.put(toNpy([theta.length], theta)), x: await shards.put(toNpy([tokens.length], tokens)) };
    const tolerance = trainTolerance(H, p.compress);
    return { id: 'j.0', jobId: 'j', idx: 0, kind: 'train', params: p as unknown as WorkUnitRecord['params'], inputs, outputBytes: trainOutputBytes(transformerModel(model), p.compress), flops: 1, tolerance, meta: {}, target: 2, state: 'open', canonicalResultId: null };
  }

  test.each(['none', 'int8'] as const)('compress %s: an honest output passes the check and agrees with a float64 replica; a sign-flipped one fails both', async (compress) => {
    const p = { ...base, compress };
    const wu = await unit(p);
    const honest = trainUnitReference(p, theta, tokens, null);
    expect(honest.byteLength).toBe(wu.outputBytes);
    expect(await train.check(wu, honest, fixture.shards)).toBe(true);
    const r64 = trainInner(Float64Array, innerSpecOf(p), Float64Array.from(theta), Float64Array.from(tokens), null);
    if (compress === 'none') {
      const other = Float32Array.from([...r64.delta, r64.trainLoss, r64.checkLoss]);
      expect(train.agree!(wu, honest, other)).toBe(true);
    }
    const flipped = honest.slice();
    const P = theta.length;
    if (compress === 'none') for (let i = 0; i < P; i++) flipped[i] = -flipped[i];
    else {
      const q = new Int8Array(flipped.buffer, (2 + transformerModel(model).tensors.length) * 4, P);
      for (let i = 0; i < P; i++) q[i] = -q[i];
    }
    expect(await train.check(wu, flipped, fixture.shards)).toBe(false);
    expect(train.agree!(wu, honest, flipped)).toBe(false);
  });
});

describe('aggregators', () => {
  const honest = [[1, 2], [1.2, 2.2], [0.8, 1.8], [1.1, 2.1], [0.9, 1.9]].map((v) => Float32Array.from(v));
  const evil = Float32Array.from([-100, 1e6]);

  test('order does not matter', () => {
    for (const how of ['mean', 'trimmed-mean', 'median'] as const) {
      const a = aggregateDeltas([...honest, evil], how, 0.2);
      const b = aggregateDeltas([evil, ...honest].reverse(), how, 0.2);
      expect(Array.from(a)).toEqual(Array.from(b));
    }
  });

  test('one outlier of six moves the mean anywhere, the trimmed mean and the median within the honest range', () => {
    const mean = aggregateDeltas([...honest, evil], 'mean', 0);
    expect(mean[1]).toBeGreaterThan(1e5);
    for (const how of ['trimmed-mean', 'median'] as const) {
      const g = aggregateDeltas([...honest, evil], how, 0.2);
      expect(g[0]).toBeGreaterThanOrEqual(0.8);
      expect(g[0]).toBeLessThanOrEqual(1.2);
      expect(g[1]).toBeGreaterThanOrEqual(1.8);
      expect(g[1]).toBeLessThanOrEqual(2.2);
    }
  });

  test('norm clipping scales each Δ down to the clip', () => {
    const g = aggregateDeltas([Float32Array.from([3, 4])], 'mean', 0, 1);
    expect(Array.from(g).map((v) => +v.toFixed(6))).toEqual([0.6, 0.8]);
  });
});
