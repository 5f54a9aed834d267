// Scale-out: two coordinators on one PostgreSQL (a throwaway cluster started here), browser
// volunteers on each, one matmul job: it completes with the right result and one verifiable ledger.
// Not about the backend: the headless volunteers compute on the one their page picks (the CPU
// where WebGPU is SwiftShader), and are checked to have computed on it.
import { expect, test, traceNote } from './fixtures';
import { copyFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { launchVolunteers, type VolunteerFleet } from '../coordinator/tools/headless-volunteers';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy } from '../coordinator/protocol/npy';
import { startPgCluster } from '../coordinator/testing/pg-cluster';
import { makeTempDir, randomMatrix, startTestCoordinator, type TestCoordinator } from '../coordinator/testing/helpers';
import { expectComputedOnShownBackend, expectHonestLedger, maxRelativeError, ROOT, uploadMatrix } from './grid';

const [M, K, N] = [128, 96, 160];
const TILE = 32; // 4 × 5 = 20 units

test('two coordinators on one PostgreSQL run a matmul job for browser volunteers on both', async () => {
  const cluster = await startPgCluster();
  const grids: TestCoordinator[] = [];
  const fleets: VolunteerFleet[] = [];
  try {
    const staticDir = resolve(ROOT, 'dist');
    const one = await startTestCoordinator({ database: cluster.url, staticDir, heartbeatMs: 500, onLog: (m) => traceNote('coordinator one', m) });
    grids.push(one);
    const dir2 = makeTempDir();
    copyFileSync(join(one.dir, 'coordinator-key.pem'), join(dir2, 'coordinator-key.pem')); // one signing key for the ledger
    const two = await startTestCoordinator({ database: cluster.url, staticDir, dir: dir2, heartbeatMs: 500, onLog: (m) => traceNote('coordinator two', m) });
    grids.push(two);
    for (const g of grids) fleets.push(await launchVolunteers({ count: 2, url: g.base, tune: false }));

    const A = randomMatrix(M, K, 51);
    const B = randomMatrix(K, N, 52);
    const jobId = await one.submitJob({
      kind: 'matmul',
      inputs: { a: await uploadMatrix(one, M, K, A), b: await uploadMatrix(two, K, N, B) },
      replication: 2,
      adaptive: false, // every unit credited to two volunteers, as the ledger check below expects
      tile: { rows: TILE, cols: TILE },
    });
    const status = await two.waitForJob(jobId, 150_000);
    expect(status.state).toBe('done');
    const C = parseNpy(new Uint8Array(await (await two.api(`/api/jobs/${jobId}/result`)).arrayBuffer()));
    expect(maxRelativeError(C.data, matmulReference(A, B, M, K, N))).toBeLessThanOrEqual(1e-4);

    const entries = await expectHonestLedger(one, one.dir, { units: 20, replication: 2, env: { ...process.env, TABGRID_DB: cluster.url } });
    // Volunteers of both coordinators earned credit.
    const credited = new Set(entries.map((e) => e.volunteerId));
    for (const fleet of fleets) {
      const ids = await Promise.all(fleet.volunteers.map(async (v) => (await v.status()).volunteerId));
      expect(ids.some((id) => id && credited.has(id))).toBe(true);
      for (const v of fleet.volunteers) if ((await v.status()).unitsDone > 0) await expectComputedOnShownBackend(v.page);
    }
  } finally {
    for (const f of fleets) await f.close();
    for (const g of grids) await g.stop();
    cluster.stop();
  }
});
