// A browser without WebGPU still computes: on the CPU (WebAssembly), and the page says why.
import { chromium, expect, test } from '@playwright/test';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy } from '../coordinator/npy';
import { randomMatrix } from '../coordinator/test-helpers';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config';
import { maxRelativeError, startGrid, uploadMatrix } from './grid';

test('without WebGPU the page computes on the CPU and its units are done', async () => {
  const grid = await startGrid();
  // No --enable-unsafe-webgpu, and WebGPU disabled outright.
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, '--disable-features=WebGPU,Vulkan'] });
  try {
    const page = await browser.newPage();
    await page.goto(grid.base + '/');
    await page.getByRole('button', { name: 'Start computing' }).click();
    await expect(page.getByTestId('no-webgpu')).toContainText('WebGPU is missing', { timeout: 60_000 });
    await expect(page.getByTestId('no-webgpu')).toContainText('computes on the CPU');
    await expect(page.getByTestId('backend')).toHaveAttribute('data-backend', 'cpu');
    await expect(page.getByTestId('backend-speeds')).toHaveAttribute('data-webgpu', '');

    const [m, k, n] = [40, 30, 20];
    const A = randomMatrix(m, k, 5);
    const B = randomMatrix(k, n, 6);
    const jobId = await grid.submitJob({
      kind: 'matmul',
      inputs: { a: await uploadMatrix(grid, m, k, A), b: await uploadMatrix(grid, k, n, B) },
      replication: 1,
      tile: { rows: 20, cols: 20 },
    });
    const status = await grid.waitForJob(jobId, 60_000);
    expect(status.state).toBe('done');
    const C = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${jobId}/result`)).arrayBuffer()));
    expect(maxRelativeError(C.data, matmulReference(A, B, m, k, n))).toBeLessThanOrEqual(1e-4);
    await expect(page.getByTestId('units-done')).toHaveText('2');
  } finally {
    await browser.close();
    await grid.stop();
  }
});
