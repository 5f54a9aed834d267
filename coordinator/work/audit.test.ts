// The audit's parts: the recomputation runs on its thread (the event loop keeps turning meanwhile)
// and returns what the kind's CPU reference computes here; a recomputation past its time limit has
// no verdict and the next one gets a fresh thread; which quorums are drawn (kind, FLOPs, trust).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { trainTolerance, trainUnitReference } from '../jobs/train.js';
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

describe('which quorums are audited, and how long they may wait', () => {
  let dir = '';
  let store: SqliteStore;
  let shards: FileShardStore;
  beforeAll(async () => {
    dir = makeTempDir();
    store = new SqliteStore(join(dir, 'audit.sqlite'));
    shards = new FileShardStore(join(dir, 'shards'));
    for (const id of ['v_old', 'v_old2']) await store.putTrust({ volunteerId: id, validStreak: 1e6, strikes: 0, suspendedUntil: 0, verifiedAt: 0 });
  });
  afterAll(async () => {
    await store.close();
    removeDir(dir);
  });
  const unit = (kind: string, flops: number) => ({ id: 'j.0', kind, flops }) as WorkUnitRecord;

  /** `n` train units of 2 steps in the store, each with a result of `volunteerId`: the honest output, or a forged one. */
  async function unitsWithResults(jobId: string, n: number, volunteerId: string, forged: boolean) {
    const shas = Object.fromEntries(await Promise.all(Object.entries(inputs()).map(async ([name, bytes]) => [name, await shards.put(bytes)] as const)));
    const units = Array.from({ length: n }, (_, idx) => ({ id: `${jobId}.${idx}`, jobId, idx, kind: 'train', params: params(2) as unknown as WorkUnitRecord['params'], inputs: shas, outputBytes: 0, flops: 1e6, tolerance: trainTolerance(2), meta: {}, target: 1 }));
    await store.createJob({ id: jobId, kind: 'train', name: null, state: 'queued', replication: 2, meta: {}, createdAt: 1, finishedAt: null, error: null, resultSha: null, resultShape: null }, units);
    await store.upsertVolunteer({ id: volunteerId, publicKey: `k_${volunteerId}`, name: null, now: 1 });
    const honest = trainUnitReference(params(2), theta, task.x, task.y);
    const output = forged ? honest.map((v) => -10 * v) : honest;
    const leased = await store.leaseUnits({ volunteerId, now: 10, deadline: 1e15, count: n, kinds: ['train'] });
    expect(leased).toHaveLength(n);
    return Promise.all(
      leased.map(async ({ wu, lease }) => {
        const resultId = `r_${wu.id}`;
        await store.addResult({ id: resultId, wuId: wu.id, leaseId: lease.id, volunteerId, sha256: '0'.repeat(64), state: 'pending', receivedAt: 20, reason: null, data: new Uint8Array(output.buffer) });
        return { wu, resultId };
      }),
    );
  }

  test('by kind and the least-trusted member’s streak, into the queue of its least-trusted member; too big: no audit', async () => {
    const policy = { ...DEFAULT_TRUST_POLICY, auditNewProbability: 1, auditMinProbability: 0, auditMaxFlops: 1e9 };
    const auditor = new Auditor({ store, shards, log: () => undefined, trustPolicy: policy });
    // A new member: always (auditNewProbability 1) — whoever it is paired with.
    expect(await auditor.draw(unit('train', 1e6), ['v_new', 'v_old'])).toBe('newcomers');
    expect(await auditor.draw(unit('onnx', 1e6), ['v_old', 'v_new'])).toBe('newcomers');
    // Long streaks on both sides: (4/1e6)² with no floor here, so practically never.
    expect(await auditor.draw(unit('train', 1e6), ['v_old', 'v_old2'])).toBe(null);
    // Matmul's check vouches for each result on its own: never.
    expect(await auditor.draw(unit('matmul', 1e6), ['v_new', 'v_new2'])).toBe(null);
    // With the floor at 1, an established quorum is drawn too, into its own queue.
    const always = new Auditor({ store, shards, log: () => undefined, trustPolicy: { ...policy, auditMinProbability: 1 } });
    expect(await always.draw(unit('train', 1e6), ['v_old', 'v_old2'])).toBe('established');
    // Too big to recompute: drawn, but the audit says so at once (the validator escalates it) and nothing waits.
    expect(await auditor.draw(unit('train', 2e9), ['v_new', 'v_new2'])).toBe('newcomers');
    expect(await auditor.audit(unit('train', 2e9), 'r_x', 'newcomers')).toBe('too big');
    expect(auditor.waiting()).toEqual({ established: 0, newcomers: 0 });
    expect(auditor.stats).toEqual({ audited: 0, forged: 0, escalated: 0, outvoted: 0, skipped: 0 });
  });

  test('a flood of newcomers’ audits cannot push out an established quorum’s: it runs next, and its forgery is caught; both queues are bounded', async () => {
    const policy = { ...DEFAULT_TRUST_POLICY, auditMinProbability: 1, auditMaxWaiting: 2, auditMaxWaitingNew: 3 };
    const auditor = new Auditor({ store, shards, log: () => undefined, trustPolicy: policy });
    const [first] = await unitsWithResults('first', 1, 'v_new0', false);
    const flood = await unitsWithResults('flood', 5, 'v_new1', false);
    const established = await unitsWithResults('est', 3, 'v_old', true);
    const ran: string[] = [];
    const audit = (u: { wu: WorkUnitRecord; resultId: string }, queue: 'newcomers' | 'established') =>
      auditor.audit(u.wu, u.resultId, queue).then((verdict) => {
        if (verdict !== 'queue full') ran.push(u.wu.id);
        return verdict;
      });
    // All queued in one turn of the event loop: the first runs at once, the others wait behind it.
    const firstVerdict = audit(first, 'newcomers');
    const floodVerdicts = Promise.all(flood.map((u) => audit(u, 'newcomers')));
    const establishedVerdicts = Promise.all(established.map((u) => audit(u, 'established')));
    expect(auditor.waiting()).toEqual({ established: 2, newcomers: 3 });
    // Past each bound the quorum is told at once (and nothing more waits): the validator escalates it.
    expect(await establishedVerdicts).toEqual(['forged', 'forged', 'queue full']);
    expect(await floodVerdicts).toEqual(['agrees', 'agrees', 'agrees', 'queue full', 'queue full']);
    expect(await firstVerdict).toBe('agrees');
    // One at a time; the established quorums' before every newcomer's that was waiting when they came.
    expect(ran).toEqual([first.wu.id, established[0].wu.id, established[1].wu.id, flood[0].wu.id, flood[1].wu.id, flood[2].wu.id]);
    expect(auditor.stats).toMatchObject({ audited: 6, forged: 2 });
    expect(auditor.waiting()).toEqual({ established: 0, newcomers: 0 });
  }, 60_000);
});
