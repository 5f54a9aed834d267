// The researcher dashboard: sign in with the API token, submit a matmul by uploading .npy files in
// the browser, watch it finish, download the result and check it against the CPU reference; cancel
// a job nobody computes. The interactive API page answers a call.
import { expect, test } from './fixtures';
import { readFileSync } from 'node:fs';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy, toNpy } from '../coordinator/protocol/npy';
import { randomMatrix, TOKEN } from '../coordinator/testing/helpers';
import type { JobStatus } from '../coordinator/protocol';
import { maxRelativeError, openVolunteer, startGrid, uploadMatrix } from './grid';

const SHOTS = 'test-results/screenshots';

test('submit by upload, follow progress, download a result that matches the CPU reference', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const volunteer = await openVolunteer(browser, grid);
    const page = await (await browser.newContext()).newPage();
    await page.goto(grid.base + '/dashboard');
    await page.getByLabel('Token').fill('wrong');
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await expect(page.getByLabel('Token')).toBeVisible(); // a wrong token sends you back
    await page.getByLabel('Token').fill(TOKEN);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await expect(page.getByTestId('stat-volunteers')).toContainText('1');

    const [m, k, n] = [50, 30, 40];
    const A = randomMatrix(m, k, 11);
    const B = randomMatrix(k, n, 12);
    await page.getByLabel('A (.npy)').setInputFiles({ name: 'a.npy', mimeType: 'application/octet-stream', buffer: Buffer.from(toNpy([m, k], A)) });
    await page.getByLabel('B (.npy)').setInputFiles({ name: 'b.npy', mimeType: 'application/octet-stream', buffer: Buffer.from(toNpy([k, n], B)) });
    await page.getByLabel('Replicas that must agree').fill('1');
    await page.getByRole('button', { name: 'Submit job' }).click();
    await expect(page.getByTestId('submit-message')).toContainText('50×30 · 30×40');

    const row = page.getByTestId('job-row').first();
    await expect(row).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
    await expect(page.getByTestId('agreed')).not.toHaveText('0');
    await page.screenshot({ path: `${SHOTS}/dashboard.png`, fullPage: true });
    const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: 'Download .npy' }).click()]);
    const C = parseNpy(new Uint8Array(readFileSync(await download.path())));
    expect(C.shape).toEqual([m, n]);
    expect(maxRelativeError(C.data, matmulReference(A, B, m, k, n))).toBeLessThanOrEqual(1e-4);

    // A job nobody computes (the only volunteer paused) is cancelled from its row, after a confirmation.
    await volunteer.getByRole('button', { name: 'Pause' }).click();
    const idle = await grid.submitJob({ kind: 'matmul', inputs: { a: await uploadMatrix(grid, m, k, A), b: await uploadMatrix(grid, k, n, B) }, replication: 1 });
    const idleRow = page.locator(`[data-testid="job-row"][data-job="${idle}"]`);
    await expect(idleRow).toHaveAttribute('data-state', 'queued', { timeout: 10_000 });
    page.once('dialog', (d) => void d.accept());
    await idleRow.getByRole('button', { name: 'Cancel' }).click();
    await expect(idleRow).toHaveAttribute('data-state', 'failed');
    await expect(idleRow).toContainText('cancelled');
    expect(((await (await grid.api(`/api/jobs/${idle}`)).json()) as JobStatus).error).toBe('cancelled');

    // A wrong file is refused with the server's message.
    await page.getByLabel('A (.npy)').setInputFiles({ name: 'a.npy', mimeType: 'application/octet-stream', buffer: Buffer.from('not an npy') });
    await page.getByRole('button', { name: 'Submit job' }).click();
    await expect(page.getByTestId('submit-error')).toBeVisible();

    // The API page: generated from the OpenAPI document, and it can make calls.
    await page.goto(grid.base + '/api/docs');
    const op = page.getByTestId('operation').filter({ hasText: '/api/volunteers/{id}/receipts' });
    await op.locator('summary').click();
    await op.getByLabel(/^id/).fill('v_nobody');
    await op.getByRole('button', { name: 'Send' }).click();
    await expect(op.getByTestId('try-result')).toContainText('HTTP 404');
    await page.screenshot({ path: `${SHOTS}/api-docs.png`, fullPage: true });
  } finally {
    await grid.stop();
  }
});
