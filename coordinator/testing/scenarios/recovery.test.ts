// Crash recovery at start-up: a coordinator that died between storing a result and settling its
// unit, or between settling the last unit and assembling the job's result, finishes the work when
// it starts again on the same data directory.
import { expect, test } from 'vitest';
import { matmulReference } from '../../jobs/matmul.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import type { LedgerEntry } from '../../protocol/index.js';
import { SqliteStore } from '../../store/sqlite/store.js';
import { makeTempDir, randomMatrix } from '../helpers.js';
import { useGridPerTest } from '../fixtures.js';
import { join } from 'node:path';
import { makeSealer } from '../../ledger/chain.js';
import { loadOrCreateCoordinatorKeys } from '../../access/keys.js';
import { sha256Hex } from '../../store/shards.js';

const [M, K, N] = [6, 5, 4];
const A = randomMatrix(M, K, 61);
const B = randomMatrix(K, N, 62);
const C = matmulReference(A, B, M, K, N);
// Both coordinators of a test share its folder: the fixture stops them and removes it after the test.
const { start } = useGridPerTest();

test.each(['after storing the result', 'after settling the last unit'] as const)('a crash %s is finished at the next start', async (crashPoint) => {
  const dir = makeTempDir();
  // A job of one unit, then the coordinator goes away.
  const first = await start({ dir });
  const jobId = await first.submitJob({
    kind: 'matmul',
    inputs: { a: await first.uploadShard(toNpy([M, K], A)), b: await first.uploadShard(toNpy([K, N], B)) },
    replication: 1,
  });
  await first.stop({ keepDir: true });

  // What the dead coordinator had committed when it died.
  const store = new SqliteStore(join(dir, 'tabgrid.sqlite'), { sealer: makeSealer(loadOrCreateCoordinatorKeys(dir).privateKey) });
  const volunteerId = 'v_000000000000000000000001';
  await store.upsertVolunteer({ id: volunteerId, publicKey: 'unused', name: null, now: 1 });
  const leased = (await store.leaseUnits({ volunteerId, now: 1, deadline: 1e15 }))[0];
  const data = new Uint8Array(C.buffer.slice(0));
  const resultId = 'r_before_crash';
  await store.addResult({ id: resultId, wuId: leased.wu.id, leaseId: leased.lease.id, volunteerId, sha256: sha256Hex(data), state: 'pending', receivedAt: 2, reason: null, data });
  if (crashPoint === 'after settling the last unit') {
    const outcome = await store.settle({
      wuId: leased.wu.id,
      canonicalResultId: resultId,
      valid: [resultId],
      invalid: [],
      credits: [{ volunteerId, amount: leased.wu.flops }],
      now: 3,
    });
    expect(outcome.jobComplete).toBe(true);
  }
  await store.close();

  const again = await start({ dir });
  const status = await again.waitForJob(jobId, 10_000);
  expect(status.state).toBe('done');
  const result = parseNpy(new Uint8Array(await (await again.api(`/api/jobs/${jobId}/result`)).arrayBuffer())).data;
  expect(Array.from(result)).toEqual(Array.from(C));
  const { entries } = (await (await again.api('/api/ledger')).json()) as { entries: LedgerEntry[] };
  expect(entries.map((e) => [e.volunteerId, e.amount])).toEqual([[volunteerId, 2 * M * N * K]]); // credited once
});
