// What the e2e tests share: a coordinator serving the built page, volunteer pages, job helpers.
import { expect, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy, toNpy } from '../coordinator/protocol/npy';
import { decodeResultFrame } from '../coordinator/protocol/frames';
import type { JobStatus, LedgerEntry } from '../coordinator/protocol';
import { randomMatrix, startTestCoordinator, type TestCoordinator } from '../coordinator/testing/helpers';
import { maxRelativeError } from '../coordinator/testing/relative-error';
import { traceNote, tracePending } from './fixtures';

export const ROOT = resolve(import.meta.dirname, '..');

/** The volunteer pages' browser contexts of each grid, closed when it stops. */
const volunteerContexts = new WeakMap<TestCoordinator, BrowserContext[]>();

/**
 * A coordinator serving the built page. Its stop() also closes the volunteer pages opened on it:
 * the browser lives as long as the Playwright worker, and pages left open would go on reconnecting
 * (and holding GPU devices) through every later test.
 */
export async function startGrid(opts: { allowedOrigins?: string[] } = {}): Promise<TestCoordinator> {
  // A unit whose worker goes quiet is reissued within a test's time (the default is 10 minutes).
  // `allowedOrigins`: other sites that may embed the widget (TABGRID_ALLOWED_ORIGINS).
  let name = 'coordinator';
  const grid = await startTestCoordinator({
    staticDir: resolve(ROOT, 'dist'),
    leaseMs: 60_000,
    security: { allowedOrigins: opts.allowedOrigins ?? [] },
    onLog: (msg) => traceNote(name, msg),
  });
  name = `coordinator :${grid.c.port}`;
  // Calls the test awaits are listed in a failure report while they are unanswered.
  const api = grid.api.bind(grid);
  grid.api = async (path, init) => {
    const done = tracePending(name, `${init?.method ?? 'GET'} ${path}`);
    try {
      return await api(path, init);
    } finally {
      done();
    }
  };
  const stop = grid.stop.bind(grid);
  grid.stop = async (opts) => {
    const done = tracePending(name, 'stopping');
    try {
      for (const context of volunteerContexts.get(grid) ?? []) await context.close().catch(() => undefined);
      volunteerContexts.delete(grid);
      await stop(opts);
    } finally {
      done();
    }
  };
  return grid;
}

export type Backend = 'webgpu' | 'cpu';

/** A page's coordinator WebSocket traffic, parsed: what it sent (result frames as their header) and received. */
export interface Wire {
  sent: { type: string; [key: string]: unknown }[];
  received: { type: string; [key: string]: unknown }[];
}

const wires = new WeakMap<Page, Wire>();

/** Records the page's /ws traffic from now on (before it connects, to see all of it). */
export function recordWire(page: Page): Wire {
  const wire: Wire = { sent: [], received: [] };
  wires.set(page, wire);
  page.on('websocket', (ws) => {
    if (!new URL(ws.url()).pathname.endsWith('/ws')) return;
    ws.on('framesent', ({ payload }) => {
      // A binary frame is a signed result: its header names the lease, the unit and the sha-256.
      wire.sent.push(typeof payload === 'string' ? (JSON.parse(payload) as Wire['sent'][number]) : { ...decodeResultFrame(new Uint8Array(payload)).header });
    });
    ws.on('framereceived', ({ payload }) => {
      if (typeof payload !== 'string') return;
      const msg = JSON.parse(payload) as Wire['received'][number] & { messages?: Wire['received'] };
      wire.received.push(...(msg.type === 'batch' ? msg.messages! : [msg]));
    });
  });
  return wire;
}

/** The traffic recorded for a page opened by openVolunteer. */
export function wireOf(page: Page): Wire {
  const wire = wires.get(page);
  if (!wire) throw new Error('no WebSocket recorded for this page');
  return wire;
}

/**
 * Opens a volunteer page in its own browser context (its own IndexedDB, so its own identity).
 * `backend` forces the page's backend (`?backend=`, which it then shows); absent, the page picks
 * the faster one — the CPU on a machine whose WebGPU is SwiftShader. `query` is any other query.
 * Pages skip the WebGPU autotuner (`tune=off`: seconds per fresh page on SwiftShader) unless
 * `tune` is set; e2e/attention.spec.ts and the kernel tests run the real tuning.
 */
export async function openVolunteer(
  browser: Browser,
  grid: TestCoordinator,
  opts: { backend?: Backend; query?: string; tune?: boolean; /** Runs before the page loads (e.g. page.addInitScript). */ beforeLoad?: (page: Page) => Promise<unknown> } = {},
): Promise<Page> {
  const context = await browser.newContext();
  volunteerContexts.set(grid, [...(volunteerContexts.get(grid) ?? []), context]);
  const page = await context.newPage();
  await opts.beforeLoad?.(page);
  page.on('pageerror', (err) => console.error('page error:', err.message));
  recordWire(page);
  const query = new URLSearchParams(opts.query ?? '');
  if (opts.backend) query.set('backend', opts.backend);
  if (!opts.tune) query.set('tune', 'off');
  await page.goto(`${grid.base}/?${query}`);
  await page.getByRole('button', { name: 'Start computing' }).click();
  await expect(page.getByTestId('volunteer-id')).toHaveText(/^v_[0-9a-f]{24}$/, { timeout: 60_000 });
  // A forced backend is taken only where the browser has it: WebGPU forced must be WebGPU here.
  if (opts.backend) await expect(page.getByTestId('backend')).toHaveAttribute('data-backend', opts.backend);
  return page;
}

/**
 * A value each of the page's compute workers computes (`read` runs inside the worker; null where it
 * does not answer): the compute worker (a module script, or a blob: URL in the widget), never
 * ORT's own threads, which may be blocked waiting and would not answer.
 */
async function inComputeWorkers<T>(page: Page, read: () => T | null): Promise<T[]> {
  const values: T[] = [];
  for (const worker of page.workers()) {
    if (!/compute\.worker|^blob:/.test(worker.url())) continue;
    const value = await Promise.race([worker.evaluate(read).catch(() => null), new Promise<null>((r) => setTimeout(() => r(null), 5_000))]);
    if (value !== null) values.push(value as T);
  }
  return values;
}

/**
 * Units the page's compute workers have computed, by the backend that computed them (each
 * worker's own count, web/worker/compute.worker.ts): not what a label says, what ran. A worker
 * restarted after a hung unit starts its count afresh.
 */
export async function computedOn(page: Page): Promise<Record<Backend, number>> {
  const total = { webgpu: 0, cpu: 0 };
  for (const counts of await inComputeWorkers(page, () => (globalThis as { tabgridComputed?: Record<Backend, number> }).tabgridComputed ?? null)) {
    total.webgpu += counts.webgpu;
    total.cpu += counts.cpu;
  }
  return total;
}

/** Train units the page's compute workers ran on the WGSL training loop (web/gpu/train-mlp.ts), not the TS one. */
export async function gpuTrainUnits(page: Page): Promise<number> {
  const counts = await inComputeWorkers(page, () => (globalThis as { tabgridGpuTrain?: { units: number } }).tabgridGpuTrain?.units ?? null);
  return counts.reduce((s, n) => s + n, 0);
}

/** Train units the page's compute workers ran on the CPU's ONNX step graph (web/cpu/train.ts), not the TS loop. */
export async function cpuGraphTrainUnits(page: Page): Promise<number> {
  const counts = await inComputeWorkers(page, () => (globalThis as { tabgridCpuTrain?: { graphUnits: number } }).tabgridCpuTrain?.graphUnits ?? null);
  return counts.reduce((s, n) => s + n, 0);
}

/**
 * What the page's compute workers' WebGPU transformer trainer did (web/onnx/webgpu-train.ts): units
 * trained on ORT's webgpu EP, units it left to the CPU's trainer and the last reason, and the step
 * graph's nodes ORT ran on its CPU EP (null when no worker made a session or ORT's log did not say).
 */
export async function webgpuGraphTrain(page: Page): Promise<{ units: number; fallbackUnits: number; fallbackReason: string | null; cpuNodes: string[] | null }> {
  type Stats = { units: number; fallbackUnits: number; fallbackReason: string | null; cpuNodes: string[] | null };
  const all = await inComputeWorkers(page, () => (globalThis as { tabgridWebgpuTrain?: Stats }).tabgridWebgpuTrain ?? null);
  const placed = all.filter((s) => s.cpuNodes !== null);
  return {
    units: all.reduce((n, s) => n + s.units, 0),
    fallbackUnits: all.reduce((n, s) => n + s.fallbackUnits, 0),
    fallbackReason: all.map((s) => s.fallbackReason).find((r) => r !== null) ?? null,
    cpuNodes: placed.length ? placed.flatMap((s) => s.cpuNodes!) : null,
  };
}

/**
 * For pages that pick their own backend (headless volunteers: the faster one, the CPU where WebGPU
 * is SwiftShader): the units the page computed all ran on the backend it shows. Returns it.
 */
export async function expectComputedOnShownBackend(page: Page, atLeast = 1): Promise<Backend> {
  const shown = (await page.getByTestId('backend').getAttribute('data-backend')) as Backend;
  expect(['webgpu', 'cpu']).toContain(shown);
  await expectComputedOn(page, shown, atLeast);
  return shown;
}

/** Every unit the page computed ran on `backend`, and it computed at least `atLeast`. */
export async function expectComputedOn(page: Page, backend: Backend, atLeast = 1) {
  const counts = await computedOn(page);
  const other: Backend = backend === 'webgpu' ? 'cpu' : 'webgpu';
  expect(counts[other], `units computed on ${other} by ${page.url()}`).toBe(0);
  expect(counts[backend], `units computed on ${backend} by ${page.url()}`).toBeGreaterThanOrEqual(atLeast);
}

export async function uploadMatrix(grid: TestCoordinator, rows: number, cols: number, data: Float32Array): Promise<string> {
  return grid.uploadShard(toNpy([rows, cols], data));
}

/** Runs `npm run ledger -- verify` against the grid's data directory. */
export function ledgerVerify(dataDir: string, env?: NodeJS.ProcessEnv): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [resolve(ROOT, 'node_modules/tsx/dist/cli.mjs'), resolve(ROOT, 'coordinator/cli.ts'), 'ledger', 'verify', '--data', dataDir], {
    encoding: 'utf8',
    env: env ?? process.env,
  });
  return { status: r.status, output: r.stdout + r.stderr };
}

/** For the specs: the one measure the kernel tests and the GPU kit use too. */
export { maxRelativeError };

/**
 * The ledger after churn or a crash: it verifies (chain, signatures, balances), every unit is
 * credited to at least `replication` volunteers, and no volunteer twice for one unit.
 */
export async function expectHonestLedger(api: { api(path: string): Promise<Response> }, dataDir: string, opts: { units: number; replication: number; env?: NodeJS.ProcessEnv }) {
  const { entries } = (await (await api.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] };
  const perUnit = new Map<string, string[]>();
  for (const e of entries) perUnit.set(e.wuId, [...(perUnit.get(e.wuId) ?? []), e.volunteerId]);
  expect(perUnit.size).toBe(opts.units);
  for (const [wuId, vs] of perUnit) {
    expect(vs.length, `unit ${wuId}`).toBeGreaterThanOrEqual(opts.replication);
    expect(new Set(vs).size, `unit ${wuId} credited someone twice`).toBe(vs.length);
  }
  const verify = ledgerVerify(dataDir, opts.env);
  expect(verify.output).toContain(`ledger OK: ${entries.length} entries`);
  expect(verify.status).toBe(0);
  return entries;
}

/**
 * Submits C = A·B with seeded random inputs, waits for it, and returns its status with the
 * normwise relative error of the downloaded result against the CPU reference (NaN if not done).
 */
export async function runMatmulJob(
  grid: TestCoordinator,
  job: { m: number; k: number; n: number; seed: number; replication: number; tile: { rows: number; cols: number }; timeoutMs: number },
): Promise<{ status: JobStatus; relativeError: number }> {
  const { m, k, n, seed } = job;
  const A = randomMatrix(m, k, seed);
  const B = randomMatrix(k, n, seed + 1);
  const jobId = await grid.submitJob({
    kind: 'matmul',
    inputs: { a: await uploadMatrix(grid, m, k, A), b: await uploadMatrix(grid, k, n, B) },
    replication: job.replication,
    tile: job.tile,
  });
  const status = await grid.waitForJob(jobId, job.timeoutMs);
  if (status.state !== 'done') return { status, relativeError: Number.NaN };
  const C = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${jobId}/result`)).arrayBuffer()));
  return { status, relativeError: maxRelativeError(C.data, matmulReference(A, B, m, k, n)) };
}
