// IndexedDB version 3 was made twice, in parallel: with `deviceKeys` (identity export, issue 6) and
// with `backend` (backend choice, issue 4). A browser holding either one must upgrade to version 4
// with both stores and go on computing, its identity kept.
import { expect, test } from '@playwright/test';
import { startGrid } from './grid';

for (const v3Store of ['deviceKeys', 'backend']) test(`a version-3 database with ${v3Store} upgrades and the page computes`, async ({ browser }) => {
  const grid = await startGrid();
  try {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (err) => console.error('page error:', err.message));
    await page.goto(grid.base + '/api/health'); // same origin, without the app opening the database first
    await page.evaluate(
      (store) =>
        new Promise<void>((resolve, reject) => {
          const req = indexedDB.open('tabgrid', 3);
          req.onupgradeneeded = () => {
            const db = req.result;
            db.createObjectStore('identity');
            db.createObjectStore('shard-meta', { keyPath: 'sha256' }).createIndex('by-last-used', 'lastUsed');
            db.createObjectStore('shard-bytes');
            db.createObjectStore('settings').put(0.5, 'throttle');
            db.createObjectStore(store);
          };
          req.onsuccess = () => (req.result.close(), resolve());
          req.onerror = () => reject(req.error);
        }),
      v3Store,
    );
    await page.goto(grid.base + '/');
    await page.getByRole('button', { name: 'Start computing' }).click();
    await expect(page.getByTestId('volunteer-id')).toHaveText(/^v_[0-9a-f]{24}$/, { timeout: 60_000 });
    await expect(page.getByTestId('backend')).toHaveAttribute('data-backend', /^(cpu|webgpu)$/);
    const db = await page.evaluate(
      () =>
        new Promise<{ version: number; stores: string[] }>((resolve, reject) => {
          const req = indexedDB.open('tabgrid');
          req.onsuccess = () => resolve({ version: req.result.version, stores: [...req.result.objectStoreNames].sort() });
          req.onerror = () => reject(req.error);
        }),
    );
    expect(db).toEqual({ version: 4, stores: ['backend', 'deviceKeys', 'identity', 'settings', 'shard-bytes', 'shard-meta'] });
    // The stored setting survived the upgrade.
    await expect(page.getByTestId('throttle')).toHaveValue('50');
  } finally {
    await grid.stop();
  }
});
