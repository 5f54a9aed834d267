// The volunteer page's controls really stop and restart work, settings persist, receipts verify,
// and the identity key moves to another browser with its credit.
import { expect, test } from './fixtures';
import { readFileSync } from 'node:fs';
import { randomMatrix } from '../coordinator/testing/helpers';
import { openVolunteer, startGrid, uploadMatrix } from './grid';

const SHOTS = 'test-results/screenshots';

test('pause, hidden tab and resume control the worker; receipts verify; settings persist', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const page = await openVolunteer(browser, grid);
    await page.getByTestId('pause').click();
    await expect(page.getByTestId('phase')).toHaveText('Paused');
    await expect(page.getByTestId('pause-reasons')).toContainText('you paused');

    const [m, k, n] = [48, 32, 48];
    const a = await uploadMatrix(grid, m, k, randomMatrix(m, k, 5));
    const b = await uploadMatrix(grid, k, n, randomMatrix(k, n, 6));
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 24, cols: 48 } });
    // Paused: the coordinator hands this volunteer nothing.
    await page.waitForTimeout(1500);
    expect((await (await grid.api(`/api/jobs/${jobId}`)).json()).progress.done).toBe(0);
    await expect(page.getByTestId('units-done')).toHaveText('0');

    // A hidden tab pauses too (pause-when-hidden is on by default), even after Resume.
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await page.getByTestId('resume').click();
    await expect(page.getByTestId('pause-reasons')).toHaveText(/the tab is hidden/);
    await page.waitForTimeout(1000);
    await expect(page.getByTestId('units-done')).toHaveText('0');

    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    expect((await grid.waitForJob(jobId, 60_000)).state).toBe('done');
    await expect(page.getByTestId('units-done')).toHaveText('2');
    await expect(page.getByTestId('receipt')).toHaveCount(2, { timeout: 10_000 });
    await expect(page.locator('[data-verified="true"]')).toHaveCount(2);
    await expect(page.getByTestId('gflops')).toContainText(/FLOP\/s/);
    await page.screenshot({ path: `${SHOTS}/volunteer-running.png`, fullPage: true });

    // Settings live in IndexedDB: a reload keeps them.
    await page.getByLabel(/Compute \d+% of the time/).fill('50');
    await page.getByLabel('Pause while this tab is hidden').uncheck();
    await page.getByLabel('Display name').fill('Grace');
    await page.getByTestId('save-name').click();
    // The new name reaches the coordinator (the page reconnects with it).
    await expect
      .poll(async () => ((await (await grid.api('/api/volunteers')).json()) as { volunteers: { name: string }[] }).volunteers[0].name)
      .toBe('Grace');
    await page.reload();
    await page.getByRole('button', { name: 'Start computing' }).click();
    await expect(page.getByLabel(/Compute 50% of the time/)).toHaveValue('50');
    await expect(page.getByLabel('Pause while this tab is hidden')).not.toBeChecked();
    await expect(page.getByLabel('Display name')).toHaveValue('Grace');
    await page.getByTestId('stop').click();
    await expect(page.getByTestId('phase')).toHaveText('Stopped');
  } finally {
    await grid.stop();
  }
});

test('the identity key exports with a passphrase and imports in another browser, credit included', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const first = await openVolunteer(browser, grid);
    const id = await first.getByTestId('volunteer-id').textContent();
    await first.getByText('Back up or move your identity').click();
    await first.getByLabel(/Passphrase/).fill('correct horse battery');
    const [download] = await Promise.all([first.waitForEvent('download'), first.getByTestId('export').click()]);
    const file = readFileSync(await download.path());
    expect(JSON.parse(file.toString()).format).toBe('tabgrid-identity');

    const second = await openVolunteer(browser, grid);
    expect(await second.getByTestId('volunteer-id').textContent()).not.toBe(id);
    await second.getByText('Back up or move your identity').click();
    await second.getByLabel(/Passphrase/).fill('wrong passphrase');
    await second.getByLabel('Identity file').setInputFiles({ name: 'tabgrid-identity.json', mimeType: 'application/json', buffer: file });
    await second.getByTestId('import').click();
    await expect(second.getByTestId('identity-error')).toContainText('wrong passphrase');
    await second.getByLabel(/Passphrase/).fill('correct horse battery');
    await second.getByTestId('import').click();
    await expect(second.getByTestId('identity-message')).toContainText('imported');
    await second.waitForEvent('load');
    await second.getByRole('button', { name: 'Start computing' }).click();
    await expect(second.getByTestId('volunteer-id')).toHaveText(id!, { timeout: 60_000 });
  } finally {
    await grid.stop();
  }
});
