// Churn: six browser volunteers, two of them (30%) killed at random moments in the middle of the
// job. The job must still complete with the exact result, no work unit lost, no credit doubled.
// Not about the backend: the headless volunteers compute on the one their page picks (the CPU
// where WebGPU is SwiftShader), and the survivors are checked to have computed on it.
import { expect, test } from './fixtures';
import { launchVolunteers } from '../coordinator/tools/headless-volunteers';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy } from '../coordinator/protocol/npy';
import type { JobStatus } from '../coordinator/protocol';
import { randomMatrix, rng, sleep } from '../coordinator/testing/helpers';
import { expectComputedOnShownBackend, expectHonestLedger, maxRelativeError, startGrid, uploadMatrix } from './grid';

const [M, K, N] = [192, 256, 128];
const TILE = 32; // 6 × 4 = 24 units × 2 replicas

test('a job survives 2 of 6 volunteers being killed mid-job', async () => {
  const grid = await startGrid();
  const fleet = await launchVolunteers({ count: 6, url: grid.base, tune: false, log: (m) => console.log(m) });
  try {
    const A = randomMatrix(M, K, 31);
    const B = randomMatrix(K, N, 32);
    const jobId = await grid.submitJob({
      kind: 'matmul',
      inputs: { a: await uploadMatrix(grid, M, K, A), b: await uploadMatrix(grid, K, N, B) },
      replication: 2,
      adaptive: false, // every unit credited to two volunteers, as the ledger check below expects
      tile: { rows: TILE, cols: TILE },
    });
    const total = (M / TILE) * (N / TILE);
    // Two victims, each killed when the job reaches a random point between 10% and 70% done.
    const random = rng(7);
    const victims = [0, 1, 2, 3, 4, 5].sort(() => random() - 0.5).slice(0, 2);
    const killAt = victims.map(() => Math.floor(total * (0.1 + 0.6 * random())));
    const killed: number[] = [];
    let status: JobStatus;
    for (;;) {
      status = (await (await grid.api(`/api/jobs/${jobId}`)).json()) as JobStatus;
      if (status.state === 'done' || status.state === 'failed') break;
      for (const [i, v] of victims.entries()) {
        if (!killed.includes(v) && status.progress.done >= killAt[i]) {
          await fleet.volunteers[v].kill();
          killed.push(v);
          console.log(`killed volunteer ${v} at ${status.progress.done}/${total} units`);
        }
      }
      await sleep(50);
    }
    expect(status.state).toBe('done');
    expect(status.progress).toEqual({ done: total, total });
    expect(killed.length).toBeGreaterThan(0); // the job did not finish before the first kill

    const C = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${jobId}/result`)).arrayBuffer()));
    expect(maxRelativeError(C.data, matmulReference(A, B, M, K, N))).toBeLessThanOrEqual(1e-4);
    await expectHonestLedger(grid, grid.dir, { units: total, replication: 2 });
    // Survivors show what the coordinator credited them.
    for (const v of fleet.volunteers.filter((x) => x.alive)) {
      const s = await v.status();
      const { volunteers } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: { id: string; credit: number }[] };
      await expect
        .poll(async () => (await v.status()).credit, { timeout: 10_000 })
        .toBe(volunteers.find((x) => x.id === s.volunteerId)?.credit);
      if (s.unitsDone > 0) console.log(`volunteer ${v.index} computed ${s.unitsDone} units on ${await expectComputedOnShownBackend(v.page)}`);
    }
  } finally {
    await fleet.close();
    await grid.stop();
  }
});
