// A unit that will not end in a real page: a 1536² matmul on SwiftShader's WebGPU (tens of seconds)
// whose job is cancelled mid-compute. Five seconds later the page takes it for hung, terminates its
// compute worker and starts a fresh one, which computes the next job correctly. (The GPU still
// finishes the dispatch it was given, so the next job waits for that; a real GPU's driver resets a
// shader that truly hangs.)
import { expect, test } from './fixtures';
import { openVolunteer, runMatmulJob, startGrid, uploadMatrix } from './grid';
import { randomMatrix } from '../coordinator/testing/helpers';

test('a unit still computing 5 s after its job was cancelled: the page restarts its compute worker, and the fresh one computes', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const page = await openVolunteer(browser, grid, { query: 'backend=webgpu' });
    const s = 1536;
    const a = await uploadMatrix(grid, s, s, randomMatrix(s, s, 1));
    const b = await uploadMatrix(grid, s, s, randomMatrix(s, s, 2));
    const slow = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: s, cols: s } });
    await expect(page.getByTestId('phase')).toContainText(/computing/i, { timeout: 60_000 });
    expect((await grid.api(`/api/jobs/${slow}/cancel`, { method: 'POST' })).status).toBe(200);
    await expect(page.getByTestId('status')).toContainText(/its lease was cancelled and it was still computing 5\.0 s later; the compute worker restarted/, { timeout: 30_000 });
    const next = await runMatmulJob(grid, { m: 40, k: 24, n: 40, seed: 5, replication: 1, tile: { rows: 20, cols: 40 }, timeoutMs: 120_000 });
    expect(next.status.state).toBe('done');
    expect(next.relativeError).toBeLessThanOrEqual(1e-4);
  } finally {
    await grid.stop();
  }
});
