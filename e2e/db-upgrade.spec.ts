// IndexedDB versions 3 and 4 were made in parallel: v3 with `deviceKeys` (identity export)
// or with `backend` (backend choice); v4 with `deviceKeys` + `tuning` (autotuner)
// or with `deviceKeys` + `backend`. A browser holding any of them must upgrade to version 5 with
// every store and go on computing, its settings kept.
import { expect, test } from './fixtures';
import { startGrid } from './grid';

const flavours = [
  { version: 3, stores: ['backend'] },
  { version: 4, stores: ['deviceKeys', 'tuning'] },
  { version: 4, stores: ['deviceKeys', 'backend'] },
];

for (const old of flavours) test(`a version-${old.version} database with ${old.stores.join(' + ')} upgrades and the page computes`, async ({ browser }) => {
  const grid = await startGrid();
  try {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (err) => console.error('page error:', err.message));
    await page.goto(grid.base + '/api/health'); // same origin, without the app opening the database first
    await page.evaluate(
      ({ version, stores }) =>
        new Promise<void>((resolve, reject) => {
          const req = indexedDB.open('tabgrid', version);
          req.onupgradeneeded = () => {
            const db = req.result;
            db.createObjectStore('identity');
            db.createObjectStore('shard-meta', { keyPath: 'sha256' }).createIndex('by-last-used', 'lastUsed');
            db.createObjectStore('shard-bytes');
            db.createObjectStore('settings').put(0.5, 'throttle');
            for (const store of stores) db.createObjectStore(store);
          };
          req.onsuccess = () => (req.result.close(), resolve());
          req.onerror = () => reject(req.error);
        }),
      old,
    );
    await page.goto(grid.base + '/?tune=off');
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
    expect(db).toEqual({ version: 5, stores: ['backend', 'deviceKeys', 'identity', 'settings', 'shard-bytes', 'shard-meta', 'tuning'] });
    // The stored setting survived the upgrade.
    await expect(page.getByTestId('throttle')).toHaveValue('50');
  } finally {
    await grid.stop();
  }
});
