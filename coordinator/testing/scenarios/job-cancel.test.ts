// Cancelling a job (POST /api/jobs/<id>/cancel): real coordinator, real WebSockets, a Node worker
// speaking the real protocol. What was done keeps its credit; what was in flight is stopped and
// earns nothing; the grid goes on with the next job.
import { expect, test } from 'vitest';
import { toNpy } from '../../protocol/npy.js';
import type { JobStatus, LedgerEntry } from '../../protocol/index.js';
import { honestCompute, SimWorker, type Compute } from '../sim-worker.js';
import { randomMatrix, waitFor, type TestCoordinator } from '../helpers.js';
import { useTestGrid } from '../fixtures.js';

const { grid, workers } = useTestGrid();

async function submit(g: TestCoordinator, units: number): Promise<string> {
  const a = await g.uploadShard(toNpy([2 * units, 6], randomMatrix(2 * units, 6, 1)));
  const b = await g.uploadShard(toNpy([6, 5], randomMatrix(6, 5, 2)));
  return g.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 2, cols: 5 } });
}

const ledger = async (g: TestCoordinator) => ((await (await g.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] }).entries;

test('a cancelled job fails with "cancelled", its worker is told to stop, done units keep their credit, late results earn nothing', async () => {
  // The first unit is computed at once; every later one waits until `open()`.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let calls = 0;
  const compute: Compute = async (wu, inputs) => {
    if (calls++ > 0) await gate;
    return honestCompute(wu, inputs);
  };
  const worker = new SimWorker({ url: grid.base, name: 'w', compute });
  workers.push(worker);
  await worker.connect();
  const jobId = await submit(grid, 4);
  await waitFor(() => worker.received('result-ack').some((a) => a.accepted), 10_000, 'the first unit');
  await waitFor(() => worker.received('assign').length >= 2, 10_000, 'the second unit to be leased');
  const inFlight = worker.received('assign')[1].lease.id;

  const res = await grid.api(`/api/jobs/${jobId}/cancel`, { method: 'POST' });
  expect(res.status).toBe(200);
  const status = (await res.json()) as JobStatus;
  expect(status).toMatchObject({ state: 'failed', error: 'cancelled', progress: { done: 1, total: 4 } });
  await waitFor(() => worker.received('lease-cancelled').some((m) => m.leaseId === inFlight), 5_000, 'the worker to be told');

  open(); // the in-flight unit finishes anyway: refused, no credit
  await waitFor(() => worker.received('result-ack').length >= 2, 10_000, 'the late result answered');
  expect(worker.received('result-ack').filter((a) => a.accepted)).toHaveLength(1);
  const entries = await ledger(grid);
  expect(entries.filter((e) => e.jobId === jobId)).toHaveLength(1);
  expect(((await (await grid.api(`/api/jobs/${jobId}`)).json()) as JobStatus).state).toBe('failed');
  expect(worker.received('assign').every((m) => m.wu.jobId === jobId)).toBe(true); // nothing else was sent since

  // Once over, a job cannot be cancelled again; an unknown job is 404; a token is needed.
  const again = await grid.api(`/api/jobs/${jobId}/cancel`, { method: 'POST' });
  expect(again.status).toBe(409);
  expect(((await again.json()) as { error: { code: string } }).error.code).toBe('conflict');
  expect((await grid.api('/api/jobs/j_nope/cancel', { method: 'POST' })).status).toBe(404);
  expect((await grid.api(`/api/jobs/${jobId}/cancel`, { method: 'POST', token: null })).status).toBe(401);

  // The grid goes on: the next job completes on the same worker.
  const next = await submit(grid, 2);
  expect((await grid.waitForJob(next, 10_000)).state).toBe('done');
  expect((await ledger(grid)).filter((e) => e.jobId === next)).toHaveLength(2);
});
