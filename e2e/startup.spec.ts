// The first seconds of a volunteer: the Start button on a phone's first screen, progress at once,
// the room and its board joined before any measurement; the first unit on the backend likelier to
// be faster, measured between units afterwards (or not at all when this device's figures are
// remembered), and switched when the measurement says so — with results that still validate.
import type { Page } from '@playwright/test';
import type { RoomCreated, VolunteerSummary } from '../coordinator/protocol';
import { expect, test } from './fixtures';
import { runMatmulJob, startGrid, uploadMatrix } from './grid';
import { randomMatrix } from '../coordinator/testing/helpers';

const SHOTS = 'test-results/screenshots';

/** This device's remembered backend figures (IndexedDB `backend`/`current`), as the page stored them. */
type BackendRecord = { webgpu: number | null; cpu: number | null; choice: string; fingerprint: string; measuredAt: number };

function readRecord(page: Page): Promise<BackendRecord | undefined> {
  return page.evaluate(
    () =>
      new Promise<BackendRecord | undefined>((resolve, reject) => {
        const open = indexedDB.open('tabgrid');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const get = open.result.transaction('backend').objectStore('backend').get('current');
          get.onsuccess = () => {
            open.result.close();
            resolve(get.result as BackendRecord | undefined);
          };
        };
      }),
  );
}

function writeRecord(page: Page, record: BackendRecord): Promise<void> {
  return page.evaluate(
    (r) =>
      new Promise<void>((resolve, reject) => {
        const open = indexedDB.open('tabgrid');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction('backend', 'readwrite');
          tx.objectStore('backend').put(r, 'current');
          tx.oncomplete = () => {
            open.result.close();
            resolve();
          };
        };
      }),
    record,
  );
}

test('on a phone the Start button is on the first screen; after Start the page shows progress at once and the board lists it as starting', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const created = (await (
      await grid.api('/api/rooms', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Biology 1A' }) })
    ).json()) as RoomCreated;
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();

    // The home page: gist and Start on the first screen, the full explanation a tap away.
    await page.goto(`${grid.base}/?tune=off`);
    await expect(page.getByRole('button', { name: 'Start computing' })).toBeInViewport({ ratio: 1 });
    await expect(page.getByTestId('gist')).toBeInViewport({ ratio: 1 });
    await expect(page.getByText('Nothing else on your device is read.')).toBeHidden();
    await page.getByText('What happens when you start').click();
    await expect(page.getByText('Nothing else on your device is read.')).toBeVisible();
    await page.screenshot({ path: `${SHOTS}/phone-home.png` });

    // The room page: name and Start on the first screen too.
    await page.goto(`${grid.base}/room/${created.code}?tune=off`);
    await expect(page.getByTestId('room-title')).toHaveText('Biology 1A');
    await expect(page.getByLabel('Your name on the board')).toBeInViewport({ ratio: 1 });
    await expect(page.getByRole('button', { name: 'Start computing' })).toBeInViewport({ ratio: 1 });
    await page.screenshot({ path: `${SHOTS}/phone-room.png` });
    await page.getByLabel('Your name on the board').fill('Ada');
    await page.getByRole('button', { name: 'Start computing' }).click();
    // Progress from the first second: what the page is doing, and for how long.
    await expect(page.getByTestId('phase')).toBeVisible({ timeout: 1_000 });
    await expect(page.getByTestId('startup')).toContainText('s since Start', { timeout: 1_000 });
    await expect(page.getByTestId('room-name')).toHaveText('Biology 1A', { timeout: 10_000 });

    // The board lists the student at once, as starting (no unit computed yet).
    const board = await (await browser.newContext()).newPage();
    await board.goto(`${grid.base}/board/${created.code}`);
    const row = board.getByTestId('board-row').filter({ hasText: 'Ada' });
    await expect(row.getByTestId('board-state')).toHaveText('starting', { timeout: 5_000 });
    await page.screenshot({ path: `${SHOTS}/phone-started.png` });

    // After its first unit the board shows it computing.
    const [m, k, n] = [32, 32, 32];
    const a = await uploadMatrix(grid, m, k, randomMatrix(m, k, 3));
    const b = await uploadMatrix(grid, k, n, randomMatrix(k, n, 4));
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 32, cols: 32 } });
    expect((await grid.waitForJob(jobId, 60_000)).state).toBe('done');
    await expect(row.getByTestId('board-state')).toHaveText('computing', { timeout: 10_000 });
  } finally {
    await grid.stop();
  }
});

test('a page with a remembered measurement starts computing without measuring again', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${grid.base}/?tune=off`);
    await page.getByRole('button', { name: 'Start computing' }).click();
    // A first visit measures both backends in the background (here: after waiting a moment for work).
    const speeds = page.getByTestId('backend-speeds');
    await expect(speeds).toHaveAttribute('data-state', 'measuring');
    await expect(speeds).toHaveAttribute('data-state', 'measured', { timeout: 60_000 });
    const first = await readRecord(page);
    expect(first?.cpu).toBeGreaterThan(0);

    // The next visit computes a queued unit on the remembered choice and measures nothing.
    const [m, k, n] = [40, 24, 40];
    const a = await uploadMatrix(grid, m, k, randomMatrix(m, k, 11));
    const b = await uploadMatrix(grid, k, n, randomMatrix(k, n, 12));
    await page.reload();
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 40, cols: 40 } });
    await page.getByRole('button', { name: 'Start computing' }).click();
    await expect(speeds).toHaveAttribute('data-state', 'remembered', { timeout: 10_000 });
    await expect(speeds).toContainText('remembered for this device');
    await expect(page.getByTestId('backend')).toHaveAttribute('data-backend', first!.choice);
    expect((await grid.waitForJob(jobId, 60_000)).state).toBe('done');
    await expect(page.getByTestId('units-done')).toHaveText('1');
    // Past the moment a first visit would measure (after a unit, or a wait for work): nothing measured.
    await page.waitForTimeout(3_000);
    await expect(speeds).toHaveAttribute('data-state', 'remembered');
    expect((await readRecord(page))?.measuredAt).toBe(first!.measuredAt);
  } finally {
    await grid.stop();
  }
});

test('a page whose first backend is wrong switches after measuring between units; its results validate on both', async ({ browser }) => {
  const grid = await startGrid();
  try {
    // A CPU page is the other replica of every unit.
    const other = await (await browser.newContext()).newPage();
    await other.goto(`${grid.base}/?tune=off&backend=cpu`);
    await other.getByRole('button', { name: 'Start computing' }).click();
    await expect(other.getByTestId('volunteer-id')).toHaveText(/^v_/, { timeout: 60_000 });

    // This device's figures, measured once, then aged past their validity with WebGPU said the
    // faster (as an old visit on other drivers might have found): the next visit starts on WebGPU.
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${grid.base}/?tune=off`);
    await page.getByRole('button', { name: 'Start computing' }).click();
    const speeds = page.getByTestId('backend-speeds');
    await expect(speeds).toHaveAttribute('data-state', 'measured', { timeout: 60_000 });
    const measured = (await readRecord(page))!;
    expect(measured.choice).toBe('cpu'); // SwiftShader: the CPU is far faster
    await writeRecord(page, { ...measured, choice: 'webgpu', webgpu: 1000, measuredAt: Date.now() - 31 * 24 * 3600 * 1000 });
    await page.reload();

    // One unit is queued before Start, so it is the page's first, computed before any measuring.
    const requests: string[] = [];
    page.on('request', (r) => requests.push(new URL(r.url()).pathname));
    let wasmBeforeFirstResult: string[] | null = null;
    page.on('websocket', (ws) =>
      ws.on('framesent', (f) => {
        if (typeof f.payload !== 'string' && wasmBeforeFirstResult === null) wasmBeforeFirstResult = requests.filter((p) => p.endsWith('.wasm'));
      }),
    );
    const firstJob = runMatmulJob(grid, { m: 48, k: 32, n: 40, seed: 31, replication: 2, tile: { rows: 48, cols: 40 }, timeoutMs: 90_000 });
    await expect.poll(async () => ((await (await grid.api('/api/jobs')).json()) as { jobs: unknown[] }).jobs.length).toBe(1);
    await page.getByRole('button', { name: 'Start computing' }).click();
    await expect(page.getByTestId('backend')).toHaveAttribute('data-backend', 'webgpu', { timeout: 10_000 });
    await expect(speeds).toHaveAttribute('data-first-choice', 'expired');
    const one = await firstJob;
    expect(one.status.state).toBe('done');
    expect(one.relativeError).toBeLessThanOrEqual(1e-4);
    await expect(page.getByTestId('units-done')).toHaveText('1');
    await expect(page.getByTestId('gflops')).toHaveAttribute('data-backend', 'webgpu');
    // A WebGPU matmul unit needs no onnxruntime: none of its wasm was fetched before the result went out.
    expect(wasmBeforeFirstResult).toEqual([]);

    // The measurement after that unit finds the CPU faster: the page switches and tells the coordinator.
    await expect(speeds).toHaveAttribute('data-state', 'measured', { timeout: 60_000 });
    await expect(page.getByTestId('backend')).toHaveAttribute('data-backend', 'cpu');
    expect((await readRecord(page))?.choice).toBe('cpu');
    await expect.poll(() => grid.logs.some((l) => /now computes on cpu: CPU \(WebAssembly/.test(l))).toBe(true);

    const two = await runMatmulJob(grid, { m: 64, k: 48, n: 56, seed: 41, replication: 2, tile: { rows: 32, cols: 56 }, timeoutMs: 90_000 });
    expect(two.status.state).toBe('done');
    expect(two.relativeError).toBeLessThanOrEqual(1e-4);
    await expect(page.getByTestId('units-done')).toHaveText('3');
    await expect(page.getByTestId('gflops')).toHaveAttribute('data-backend', 'cpu');

    // Every result of the switching page, on WebGPU and then on the CPU, agreed with the other replica.
    const id = (await page.getByTestId('volunteer-id').textContent())!.trim();
    const { volunteers } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
    expect(volunteers.find((v) => v.id === id)?.results).toEqual({ valid: 3, invalid: 0, pending: 0 });
  } finally {
    await grid.stop();
  }
});
