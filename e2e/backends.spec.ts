// Issue 9: the same job computed by a browser forced onto WebGPU and one forced onto the CPU
// (WebAssembly); the replicas validate against each other and both earn credit by FLOPs.
import { expect, test } from './fixtures';
import type { VolunteerSummary } from '../coordinator/protocol';
import { expectComputedOn, openVolunteer, runMatmulJob, startGrid } from './grid';

test('a WebGPU browser and a CPU browser compute the same matmul units and agree', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const gpuPage = await openVolunteer(browser, grid, { query: '?backend=webgpu' });
    const cpuPage = await openVolunteer(browser, grid, { query: '?backend=cpu' });
    await expect(gpuPage.getByTestId('backend')).toHaveAttribute('data-backend', 'webgpu');
    await expect(cpuPage.getByTestId('backend')).toHaveAttribute('data-backend', 'cpu');
    // Both figures are measured (in the background, once the page waits for work) and shown; the
    // page is cross-origin isolated, so wasm has threads.
    for (const page of [gpuPage, cpuPage]) {
      const speeds = page.getByTestId('backend-speeds');
      await expect(speeds).toHaveAttribute('data-state', 'measured', { timeout: 60_000 });
      expect(Number(await speeds.getAttribute('data-webgpu'))).toBeGreaterThan(0);
      expect(Number(await speeds.getAttribute('data-cpu'))).toBeGreaterThan(0);
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    }
    // The hello told the coordinator which backend each computes on.
    expect(grid.logs.some((l) => /\(webgpu: /.test(l))).toBe(true);
    expect(grid.logs.some((l) => /\(cpu: /.test(l))).toBe(true);

    const [m, k, n] = [70, 50, 60];
    const { status, relativeError } = await runMatmulJob(grid, { m, k, n, seed: 21, replication: 2, tile: { rows: 35, cols: 60 }, timeoutMs: 120_000 });
    expect(status.state).toBe('done');
    expect(relativeError).toBeLessThanOrEqual(1e-4);

    const { volunteers } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
    expect(volunteers).toHaveLength(2);
    for (const v of volunteers) {
      // Replication 2 with two volunteers: each computed both units, and each was validated.
      expect(v.results).toEqual({ valid: 2, invalid: 0, pending: 0 });
      expect(v.credit).toBe(2 * m * n * k);
    }
    // The labels are right: each page's units ran on its backend.
    await expectComputedOn(gpuPage, 'webgpu', 2);
    await expectComputedOn(cpuPage, 'cpu', 2);

    // The figures are remembered per device (IndexedDB): a reload does not measure again.
    const before = await cpuPage.getByTestId('backend-speeds').getAttribute('data-cpu');
    await cpuPage.reload();
    await cpuPage.getByRole('button', { name: 'Start computing' }).click();
    await expect(cpuPage.getByTestId('backend-speeds')).toContainText('remembered for this device', { timeout: 30_000 });
    expect(await cpuPage.getByTestId('backend-speeds').getAttribute('data-cpu')).toBe(before);
  } finally {
    await grid.stop();
  }
});
