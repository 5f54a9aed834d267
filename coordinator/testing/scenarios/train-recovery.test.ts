// A coordinator killed mid-round resumes the round on restart without losing or doubling an
// accepted update: Δs validated before the crash are aggregated (once), units not yet validated
// are computed again, every unit is credited once, and the trained parameters are the central
// reference's — as if nothing had happened.
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { loadOrCreateCoordinatorKeys } from '../../access/keys.js';
import { centralReference, trainUnitReference } from '../../jobs/train.js';
import { makeSealer } from '../../ledger/chain.js';
import { TrainJobSubmit, type JobStatus, type LedgerEntry, type TrainParams } from '../../protocol/index.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import { FileShardStore, sha256Hex } from '../../store/shards.js';
import { SqliteStore } from '../../store/sqlite/store.js';
import { makeTempDir } from '../helpers.js';
import { useGridPerTest } from '../fixtures.js';
import { SimWorker } from '../sim-worker.js';
import { blobsTask, relativeL2 } from '../train-task.js';

const task = blobsTask(256, 8, 4, 5);
// Both coordinators of a test share its folder: the fixture stops them and removes it after the test.
const { start, workers } = useGridPerTest();

test.each([
  ['every unit of round 1 validated, the round not yet closed', 3],
  ['2 of round 1 units validated, 1 leased and lost', 2],
])('killed with %s: the restarted coordinator finishes the job, each update counted once', async (_what, settleBeforeCrash) => {
  const dir = makeTempDir();
  const first = await start({ dir });
  const body = {
    kind: 'train',
    model: { type: 'mlp', layers: [8, 12, 4] },
    data: { x: await first.uploadShard(toNpy([task.n, task.f], task.x)), y: await first.uploadShard(toNpy([task.n], task.y)) },
    rounds: 3,
    localSteps: 6,
    batchSize: 16,
    innerOptimizer: { type: 'sgd', lr: 0.2 },
    unitsPerRound: 3,
    replication: 1,
  };
  const jobId = await first.submitJob(body);
  await first.stop({ keepDir: true });

  // What the dead coordinator had committed: round 1's units leased, some results validated and credited.
  const store = new SqliteStore(join(dir, 'tabgrid.sqlite'), { sealer: makeSealer(loadOrCreateCoordinatorKeys(dir).privateKey) });
  const shards = new FileShardStore(join(dir, 'shards'));
  const volunteerId = 'v_000000000000000000000001';
  await store.upsertVolunteer({ id: volunteerId, publicKey: 'unused', name: null, now: 1 });
  const leased = await store.leaseUnits({ volunteerId, now: 1, deadline: 1e15, count: 3 });
  expect(leased.map((l) => l.wu.id)).toEqual([0, 1, 2].map((i) => `${jobId}.${i}`));
  for (const { wu, lease } of leased.slice(0, settleBeforeCrash)) {
    const input = async (name: string) => parseNpy((await shards.get(wu.inputs[name]))!).data;
    const out = trainUnitReference(wu.params as unknown as TrainParams, await input('params'), await input('x'), await input('y'));
    const data = new Uint8Array(out.buffer);
    const id = `r_before_crash_${wu.idx}`;
    await store.addResult({ id, wuId: wu.id, leaseId: lease.id, volunteerId, sha256: sha256Hex(data), state: 'pending', receivedAt: 2, reason: null, data });
    await store.settle({ wuId: wu.id, canonicalResultId: id, valid: [id], invalid: [], credits: [{ volunteerId, amount: wu.flops }], now: 3 });
  }
  await store.close();

  const again = await start({ dir });
  for (let i = 0; i < 2; i++) {
    const w = new SimWorker({ url: again.base, kinds: ['train'] });
    workers.push(w);
    await w.connect();
  }
  const status = (await again.waitForJob(jobId, 30_000)) as JobStatus & { perRound: { units: number }[]; round: number };
  expect(status.state).toBe('done');
  expect(status.round).toBe(3);
  expect(status.perRound.map((r) => r.units)).toEqual([3, 3, 3]);
  // Credited once per unit: the pre-crash volunteer for what it had validated, the workers for the rest.
  const { entries } = (await (await again.api('/api/ledger?limit=100')).json()) as { entries: LedgerEntry[] };
  const mine = entries.filter((e) => e.jobId === jobId);
  expect(mine).toHaveLength(9);
  expect(new Set(mine.map((e) => e.wuId)).size).toBe(9);
  expect(mine.filter((e) => e.volunteerId === volunteerId).map((e) => e.wuId)).toEqual(leased.slice(0, settleBeforeCrash).map((l) => l.wu.id));
  expect(mine.every((e) => e.amount > 0)).toBe(true);
  const params = parseNpy(new Uint8Array(await (await again.api(`/api/jobs/${jobId}/outputs/params`)).arrayBuffer())).data;
  const ref = centralReference(TrainJobSubmit.parse(body), task).params;
  expect(relativeL2(params, ref)).toBeLessThan(1e-4);
  if (settleBeforeCrash === 3) expect(again.logs.some((l) => /round 1\/3 closed: 3\/3 units/.test(l))).toBe(true);
}, 60_000);
