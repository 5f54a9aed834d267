// A unit that will not end in a real page: its WebGPU readback is made to hang (the test replaces
// GPUBuffer.mapAsync in the page's compute worker with a promise that never settles — a GPU that
// stopped answering), and its job is cancelled mid-compute. Five seconds later the page takes it
// for hung, terminates its compute worker and starts a fresh one (whose mapAsync is the real one
// again), which computes the next job correctly on WebGPU. Nothing depends on how fast the GPU is.
import { expect, test } from './fixtures';
import { computedOn, openVolunteer, runMatmulJob, startGrid, uploadMatrix } from './grid';
import { randomMatrix } from '../coordinator/testing/helpers';

test('a unit still computing 5 s after its job was cancelled: the page restarts its compute worker, and the fresh one computes', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const page = await openVolunteer(browser, grid, { backend: 'webgpu' });
    const computeWorkers = () => page.workers().filter((w) => w.url().includes('compute.worker'));
    expect(computeWorkers()).toHaveLength(1);
    const hung = computeWorkers()[0];
    await hung.evaluate(() => {
      GPUBuffer.prototype.mapAsync = () => new Promise<undefined>(() => {});
    });
    const s = 64;
    const a = await uploadMatrix(grid, s, s, randomMatrix(s, s, 1));
    const b = await uploadMatrix(grid, s, s, randomMatrix(s, s, 2));
    const stuck = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: s, cols: s } });
    await expect(page.getByTestId('phase')).toContainText(/computing/i, { timeout: 60_000 });
    expect((await grid.api(`/api/jobs/${stuck}/cancel`, { method: 'POST' })).status).toBe(200);
    await expect(page.getByTestId('status')).toContainText(/its lease was cancelled and it was still computing 5\.0 s later; the compute worker restarted/, { timeout: 30_000 });
    // A fresh worker took the hung one's place.
    await expect.poll(() => computeWorkers().length).toBe(1);
    expect(computeWorkers()[0]).not.toBe(hung);
    const next = await runMatmulJob(grid, { m: 40, k: 24, n: 40, seed: 5, replication: 1, tile: { rows: 20, cols: 40 }, timeoutMs: 120_000 });
    expect(next.status.state).toBe('done');
    expect(next.relativeError).toBeLessThanOrEqual(1e-4);
    expect(await computedOn(page)).toEqual({ webgpu: 2, cpu: 0 }); // the fresh worker's count: both units of the next job
  } finally {
    await grid.stop();
  }
});
