// What the e2e tests share: a coordinator serving the built page, volunteer pages, job helpers.
import { expect, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { startTestCoordinator, type TestCoordinator } from '../coordinator/test-helpers';
import { toNpy } from '../coordinator/npy';

export const ROOT = resolve(import.meta.dirname, '..');

/** The volunteer pages' browser contexts of each grid, closed when it stops. */
const volunteerContexts = new WeakMap<TestCoordinator, BrowserContext[]>();

/**
 * A coordinator serving the built page. Its stop() also closes the volunteer pages opened on it:
 * the browser lives as long as the Playwright worker, and pages left open would go on reconnecting
 * (and holding GPU devices) through every later test.
 */
export async function startGrid(): Promise<TestCoordinator> {
  // A unit whose worker goes quiet is reissued within a test's time (the default is 10 minutes).
  const grid = await startTestCoordinator({ staticDir: resolve(ROOT, 'dist'), leaseMs: 60_000 });
  const stop = grid.stop.bind(grid);
  grid.stop = async (opts) => {
    for (const context of volunteerContexts.get(grid) ?? []) await context.close().catch(() => undefined);
    volunteerContexts.delete(grid);
    await stop(opts);
  };
  return grid;
}

/** Opens a volunteer page in its own browser context (its own IndexedDB, so its own identity). */
export async function openVolunteer(browser: Browser, grid: TestCoordinator): Promise<Page> {
  const context = await browser.newContext();
  volunteerContexts.set(grid, [...(volunteerContexts.get(grid) ?? []), context]);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error('page error:', err.message));
  await page.goto(grid.base + '/');
  await page.getByRole('button', { name: 'Start computing' }).click();
  await expect(page.getByTestId('volunteer-id')).toHaveText(/^v_[0-9a-f]{24}$/, { timeout: 60_000 });
  return page;
}

export async function uploadMatrix(grid: TestCoordinator, rows: number, cols: number, data: Float32Array): Promise<string> {
  return grid.uploadShard(toNpy([rows, cols], data));
}

/** Runs `npm run ledger -- verify` against the grid's data directory. */
export function ledgerVerify(dataDir: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [resolve(ROOT, 'node_modules/tsx/dist/cli.mjs'), resolve(ROOT, 'coordinator/cli.ts'), 'ledger', 'verify', '--data', dataDir], {
    encoding: 'utf8',
  });
  return { status: r.status, output: r.stdout + r.stderr };
}

/** max |c - r| / max |r|: the normwise relative error of c against the reference r. */
export function maxRelativeError(c: Float32Array, r: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < r.length; i++) {
    diff = Math.max(diff, Math.abs(c[i] - r[i]));
    scale = Math.max(scale, Math.abs(r[i]));
  }
  return diff / scale;
}
