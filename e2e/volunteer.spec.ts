// The volunteer page's controls really stop and restart work, settings persist, receipts verify,
// and the identity key moves to another browser with its credit.
import { expect, test } from './fixtures';
import { readFileSync } from 'node:fs';
import { randomMatrix, waitFor, type TestCoordinator } from '../coordinator/testing/helpers';
import { SimWorker } from '../coordinator/testing/sim-worker';
import { expectComputedOn, openVolunteer, startGrid, uploadMatrix, wireOf } from './grid';

const SHOTS = 'test-results/screenshots';

/**
 * A Node worker that takes up to `slots` units and holds them without answering, until killed:
 * proof that there was work to hand out while a page got none.
 */
function holder(grid: TestCoordinator, slots: number): SimWorker {
  return new SimWorker({ url: grid.base, name: 'holder', slots, compute: () => new Promise<never>(() => {}) });
}

// The controls, not the backend: the page computes on the CPU (forced; the fast one here).
test('pause, hidden tab and resume control the worker; receipts verify; settings persist', async ({ browser }) => {
  const grid = await startGrid();
  const holders: SimWorker[] = [];
  try {
    const page = await openVolunteer(browser, grid, { backend: 'cpu' });
    const wire = wireOf(page);
    const readies = () => wire.sent.filter((m) => m.type === 'ready').map((m) => m.slots);
    const assigned = () => wire.received.filter((m) => m.type === 'assign').length;
    await page.getByTestId('pause').click();
    await expect(page.getByTestId('phase')).toHaveText('Paused');
    await expect(page.getByTestId('pause-reasons')).toContainText('you paused');
    await expect.poll(() => readies().at(-1)).toBe(0); // it told the coordinator it wants nothing

    const [m, k, n] = [48, 32, 48];
    const a = await uploadMatrix(grid, m, k, randomMatrix(m, k, 5));
    const b = await uploadMatrix(grid, k, n, randomMatrix(k, n, 6));
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 24, cols: 48 } });
    // Paused: a worker that connects now is handed both units, and the page neither.
    const first = holder(grid, 2);
    holders.push(first);
    await first.connect();
    await waitFor(() => first.received('assign').length === 2, 20_000, 'the holder to take both units');
    expect(assigned()).toBe(0);
    await expect(page.getByTestId('units-done')).toHaveText('0');

    // A hidden tab pauses too (pause-when-hidden is on by default), even after Resume.
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    const before = readies().length;
    await page.getByTestId('resume').click();
    await expect(page.getByTestId('pause-reasons')).toHaveText(/the tab is hidden/);
    await expect.poll(() => readies().length).toBeGreaterThan(before); // Resume was announced…
    expect(readies().at(-1)).toBe(0); // …still wanting nothing
    // The holder leaves: its units go back to the queue while the tab is hidden, and the next
    // worker to connect gets both of them again.
    first.kill();
    const second = holder(grid, 2);
    holders.push(second);
    await second.connect();
    await waitFor(() => second.received('assign').length === 2, 20_000, 'the second holder to take both units');
    expect(assigned()).toBe(0);
    await expect(page.getByTestId('units-done')).toHaveText('0');

    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await expect.poll(() => readies().at(-1)).toBe(1);
    second.kill(); // now the page gets them
    expect((await grid.waitForJob(jobId, 60_000)).state).toBe('done');
    await expect(page.getByTestId('units-done')).toHaveText('2');
    await expectComputedOn(page, 'cpu', 2);
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
    for (const h of holders) h.kill();
    await grid.stop();
  }
});

test('pause while on battery: off by default; on, unplugging pauses and plugging in resumes', async ({ browser }) => {
  const grid = await startGrid();
  let holding: SimWorker | null = null;
  try {
    // The Battery Status API, played by the test: a laptop running on battery.
    const page = await openVolunteer(browser, grid, {
      backend: 'cpu',
      beforeLoad: (p) =>
        p.addInitScript(() => {
          const battery = Object.assign(new EventTarget(), { charging: false, level: 0.5, chargingTime: Infinity, dischargingTime: 3600 });
          (window as unknown as { testBattery: typeof battery }).testBattery = battery;
          Object.defineProperty(navigator, 'getBattery', { configurable: true, value: () => Promise.resolve(battery) });
        }),
    });
    const wire = wireOf(page);
    const readies = () => wire.sent.filter((m) => m.type === 'ready').map((m) => m.slots);
    const assigned = () => wire.received.filter((m) => m.type === 'assign').length;
    const plug = (charging: boolean) =>
      page.evaluate((charging) => {
        const battery = (window as unknown as { testBattery: EventTarget & { charging: boolean } }).testBattery;
        battery.charging = charging;
        battery.dispatchEvent(new Event('chargingchange'));
      }, charging);
    const [m, k, n] = [24, 16, 24];
    const a = await uploadMatrix(grid, m, k, randomMatrix(m, k, 9));
    const b = await uploadMatrix(grid, k, n, randomMatrix(k, n, 10));
    const job = () => grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 12, cols: 24 } });

    // Off by default: on battery, it computes.
    await expect(page.getByLabel('Pause while on battery')).not.toBeChecked();
    expect((await grid.waitForJob(await job(), 60_000)).state).toBe('done');
    await expect(page.getByTestId('units-done')).toHaveText('2');

    // Turned on while unplugged: paused at once, and a job's units go to another worker.
    await page.getByLabel('Pause while on battery').check();
    await expect(page.getByTestId('pause-reasons')).toHaveText(/on battery/);
    await expect.poll(() => readies().at(-1)).toBe(0);
    const before = assigned();
    const second = await job();
    holding = holder(grid, 2);
    await holding.connect();
    await waitFor(() => holding!.received('assign').length === 2, 20_000, 'the holder to take both units');
    expect(assigned()).toBe(before);

    // Plugged in: it asks for work again and computes them once the holder is gone.
    await plug(true);
    await expect(page.getByTestId('pause-reasons')).toHaveCount(0);
    await expect.poll(() => readies().at(-1)).toBe(1);
    holding.kill();
    expect((await grid.waitForJob(second, 60_000)).state).toBe('done');
    await expect(page.getByTestId('units-done')).toHaveText('4');
    // Unplugged again: paused again.
    await plug(false);
    await expect(page.getByTestId('pause-reasons')).toHaveText(/on battery/);
  } finally {
    holding?.kill();
    await grid.stop();
  }
});

test('the identity key exports with a passphrase and imports in another browser, credit included', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const first = await openVolunteer(browser, grid, { backend: 'cpu' });
    const id = await first.getByTestId('volunteer-id').textContent();
    await first.getByText('Back up or move your identity').click();
    await first.getByLabel(/Passphrase/).fill('correct horse battery');
    const [download] = await Promise.all([first.waitForEvent('download'), first.getByTestId('export').click()]);
    const file = readFileSync(await download.path());
    expect(JSON.parse(file.toString()).format).toBe('tabgrid-identity');

    const second = await openVolunteer(browser, grid, { backend: 'cpu' });
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
