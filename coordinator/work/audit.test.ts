// The audit's parts: the recomputation runs on its thread (the event loop keeps turning meanwhile)
// and returns what the kind's CPU reference computes here; a recomputation past its time limit has
// no verdict and the next one gets a fresh thread; which quorums are drawn (kind, FLOPs, trust).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { trainUnitReference } from '../jobs/train.js';
import { toNpy } from '../protocol/npy.js';
import type { TrainParams } from '../protocol/index.js';
import { FileShardStore } from '../store/shards.js';
import { SqliteStore } from '../store/sqlite/store.js';
import type { WorkUnitRecord } from '../store/store.js';
import { makeTempDir, removeDir } from '../testing/helpers.js';
import { blobsTask } from '../testing/train-task.js';
import { initMlp } from '../protocol/train-mlp.js';
import { transformerModel } from '../protocol/train-transformer.js';
import { markovTask, markovTokens } from '../testing/lm-task.js';
import { Auditor } from './audit.js';
import { recomputeOffThread } from './audit-thread.js';
import { DEFAULT_TRUST_POLICY } from './trust.js';

const task = blobsTask(512, 32, 4, 3);
const layers = [32, 128, 4];
const params = (steps: number): TrainParams => ({
  round: 0,
  rounds: 1,
  slice: 0,
  rows: task.n,
  layers,
  steps,
  batchSize: 64,
  seed: 7,
  optimizer: 'adamw',
  lr: 0.003,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  compress: 'none',
});
const theta = initMlp(layers, 1);
const inputs = (): Record<string, Uint8Array> => ({ params: toNpy([theta.length], theta), x: toNpy([task.n, task.f], task.x), y: toNpy([task.n], task.y) });
const trainUnit = (steps: number) => ({ kind: 'train', params: params(steps), outputBytes: 0 });

describe('the audit thread', () => {
  test('recomputes a train unit off the event loop, to exactly what the reference computes here', async () => {
    let longestGap = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
    }, 2);
    const started = performance.now();
    const [off] = await Promise.all([recomputeOffThread(trainUnit(300), inputs(), 60_000)]);
    const took = performance.now() - started;
    clearInterval(tick);
    const here = trainUnitReference(params(300), theta, task.x, task.y);
    expect(Array.from(off)).toEqual(Array.from(here));
    // The unit took a while, and the loop kept turning (a gap the length of the unit would mean it ran here).
    expect(took).toBeGreaterThan(100);
    expect(longestGap).toBeLessThan(took / 2);
  }, 60_000);

  test('recomputes a transformer unit, whose slice is tokens with no labels', async () => {
    const model = { type: 'transformer' as const, vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2 };
    const tokens = markovTokens(markovTask(8), 600, 5);
    const theta = transformerModel(model).init(3);
    const p: TrainParams = { round: 0, rounds: 1, slice: 0, rows: tokens.length, model, steps: 4, batchSize: 8, seed: 7, optimizer: 'adamw', lr: 0.01, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, compress: 'none' };
    const off = await recomputeOffThread({ kind: 'train', params: p, outputBytes: 0 }, { params: toNpy([theta.length], theta), x: toNpy([tokens.length], tokens) }, 60_000);
    expect(Array.from(off)).toEqual(Array.from(trainUnitReference(p, theta, tokens, null)));
  }, 60_000);

  test('a recomputation past its time limit has no output; the next runs on a fresh thread', async () => {
    await expect(recomputeOffThread(trainUnit(2000), inputs(), 20)).rejects.toThrow(/more than 20 ms/);
    const out = await recomputeOffThread(trainUnit(2), inputs(), 60_000);
    expect(Array.from(out)).toEqual(Array.from(trainUnitReference(params(2), theta, task.x, task.y)));
  }, 60_000);

  test('a kind without a reference is an error, not an output', async () => {
    await expect(recomputeOffThread({ kind: 'nope', params: {}, outputBytes: 4 }, {}, 10_000)).rejects.toThrow(/no reference for nope units/);
  });
});

describe('which quorums are audited', () => {
  let dir = '';
  let store: SqliteStore;
  beforeAll(() => {
    dir = makeTempDir();
    store = new SqliteStore(join(dir, 'audit.sqlite'));
  });
  afterAll(async () => {
    await store.close();
    removeDir(dir);
  });
  const unit = (kind: string, flops: number) => ({ id: 'j.0', kind, flops }) as WorkUnitRecord;

  test('by kind, size and the least-trusted member’s streak', async () => {
    const policy = { ...DEFAULT_TRUST_POLICY, auditNewProbability: 1, auditMinProbability: 0, auditMaxFlops: 1e9 };
    const auditor = new Auditor({ store, shards: new FileShardStore(join(dir, 'shards')), log: () => undefined, trustPolicy: policy });
    await store.putTrust({ volunteerId: 'v_old', validStreak: 1e6, strikes: 0, suspendedUntil: 0, verifiedAt: 0 });
    await store.putTrust({ volunteerId: 'v_old2', validStreak: 1e6, strikes: 0, suspendedUntil: 0, verifiedAt: 0 });
    // A new member: always (auditNewProbability 1) — whoever it is paired with.
    expect(await auditor.wanted(unit('train', 1e6), ['v_new', 'v_old'])).toBe(true);
    expect(await auditor.wanted(unit('onnx', 1e6), ['v_old', 'v_new'])).toBe(true);
    // Long streaks on both sides: (4/1e6)² with no floor here, so practically never.
    expect(await auditor.wanted(unit('train', 1e6), ['v_old', 'v_old2'])).toBe(false);
    // Matmul's check vouches for each result on its own: never.
    expect(await auditor.wanted(unit('matmul', 1e6), ['v_new', 'v_new2'])).toBe(false);
    // Too big to recompute: not audited, and counted as skipped.
    expect(await auditor.wanted(unit('train', 2e9), ['v_new', 'v_new2'])).toBe(false);
    expect(auditor.stats).toEqual({ audited: 0, forged: 0, skipped: 1 });
  });
});
