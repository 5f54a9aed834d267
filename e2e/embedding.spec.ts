// The volunteer page framed by a page on another origin (a project site embedding it): the frame
// cannot be cross-origin isolated there, so the CPU backend runs one thread — and still computes.
import { expect, test } from './fixtures';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runMatmulJob, startGrid } from './grid';

test('framed on another origin, the page computes without isolation on one CPU thread', async ({ browser }) => {
  let coordinator = '';
  const site = createServer((_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><title>a project page</title><iframe src="${coordinator}/?backend=cpu" width="900" height="700"></iframe>`);
  });
  await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
  // The project's site may frame the page only once it is on the allow-list (TABGRID_ALLOWED_ORIGINS).
  const grid = await startGrid({ allowedOrigins: [`http://127.0.0.1:${(site.address() as AddressInfo).port}`] });
  coordinator = grid.base;
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`);
    const frame = page.frameLocator('iframe');
    await frame.getByRole('button', { name: 'Start computing' }).click();
    await expect(frame.getByTestId('volunteer-id')).toHaveText(/^v_/, { timeout: 60_000 });
    await expect(frame.getByTestId('backend-speeds')).toContainText('CPU threads: 1, page not cross-origin isolated');
    const { status, relativeError } = await runMatmulJob(grid, { m: 24, k: 16, n: 24, seed: 9, replication: 1, tile: { rows: 24, cols: 24 }, timeoutMs: 60_000 });
    expect(status.state).toBe('done');
    expect(relativeError).toBeLessThanOrEqual(1e-4);
  } finally {
    site.close();
    await grid.stop();
  }
});
