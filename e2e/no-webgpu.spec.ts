// A browser without WebGPU still computes: on the CPU (WebAssembly), and the page says why.
import { chromium } from '@playwright/test';
import { expect, test } from './fixtures';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config';
import { expectComputedOn, runMatmulJob, startGrid } from './grid';

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

    const { status, relativeError } = await runMatmulJob(grid, { m: 40, k: 30, n: 20, seed: 5, replication: 1, tile: { rows: 20, cols: 20 }, timeoutMs: 60_000 });
    expect(status.state).toBe('done');
    expect(relativeError).toBeLessThanOrEqual(1e-4);
    await expect(page.getByTestId('units-done')).toHaveText('2');
    await expectComputedOn(page, 'cpu', 2);
  } finally {
    await browser.close();
    await grid.stop();
  }
});
