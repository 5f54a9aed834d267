// A browser without WebGPU is told so plainly instead of failing silently.
import { chromium, expect, test } from '@playwright/test';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config';
import { startGrid } from './grid';

test('without WebGPU the page says it cannot compute', async () => {
  const grid = await startGrid();
  // No --enable-unsafe-webgpu, and WebGPU disabled outright.
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, '--disable-features=WebGPU,Vulkan'] });
  try {
    const page = await browser.newPage();
    await page.goto(grid.base + '/');
    await page.getByRole('button', { name: 'Start computing' }).click();
    await expect(page.getByTestId('no-webgpu')).toContainText('WebGPU is not available');
  } finally {
    await browser.close();
    await grid.stop();
  }
});
