// Crash safety: the coordinator process is killed with SIGKILL in the middle of a job and started
// again on the same data directory and port. Durability is checked result by result: every result
// the coordinator acknowledged before the kill (as its volunteer saw the ack, with the sha-256 the
// volunteer signed) is in the database after the restart with the same hash — valid and credited
// if its credit had reached the volunteer, pending or valid otherwise — and once the job is done,
// each is valid and credited exactly once. The browser volunteers reconnect on their own, the job
// completes correctly and the ledger verifies. Prints the recovery times. (Not about the backend:
// the pages compute on the CPU, forced.)
import type { Browser, Page } from '@playwright/test';
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { expect, test } from './fixtures';
import { newApiToken } from '../coordinator/access/keys';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy, toNpy } from '../coordinator/protocol/npy';
import type { JobStatus, LedgerEntry, VolunteerSummary } from '../coordinator/protocol';
import { makeTempDir, randomMatrix, removeDir, sleep } from '../coordinator/testing/helpers';
import { expectComputedOn, expectHonestLedger, maxRelativeError, recordWire, ROOT, type Wire } from './grid';

// A coordinator refuses to start with a weak token: this one carries 192 random bits.
const TOKEN = newApiToken();
const [M, K, N] = [192, 256, 128];
const TILE = 32;

/** Starts `tabgrid start`; resolves with the process and the port it listens on (`port` 0: any free one). */
function startProcess(port: number, dataDir: string): Promise<{ proc: ChildProcess; port: number }> {
  // `node --import tsx`, not tsx's CLI: that one runs the script in a child process, which a
  // SIGKILL to the CLI would leave running.
  const proc = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'coordinator/cli.ts'), 'start', '--port', String(port), '--host', '127.0.0.1', '--data', dataDir], {
    cwd: ROOT,
    env: { ...process.env, TABGRID_API_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The coordinator listens first and says where: the port is read back, never picked beforehand.
  return new Promise((done, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`the coordinator did not start:\n${out}`)), 60_000);
    proc.stdout!.on('data', (chunk: Buffer) => {
      out += String(chunk);
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        done({ proc, port: Number(m[1]) });
      }
    });
    proc.stderr!.on('data', (chunk: Buffer) => (out += String(chunk)));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`the coordinator exited (${code}) before listening:\n${out}`));
    });
  });
}

/** A volunteer page of its own (its own identity) on the CPU backend, its WebSocket traffic recorded. */
async function openPage(browser: Browser, base: string): Promise<{ page: Page; wire: Wire }> {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (err) => console.error('page error:', err.message));
  const wire = recordWire(page);
  await page.goto(`${base}/?backend=cpu&tune=off`);
  await page.getByRole('button', { name: 'Start computing' }).click();
  await expect(page.getByTestId('volunteer-id')).toHaveText(/^v_[0-9a-f]{24}$/, { timeout: 60_000 });
  return { page, wire };
}

/** A result the coordinator acknowledged as accepted, as its volunteer recorded it. */
interface Acknowledged {
  volunteerId: string;
  wuId: string;
  sha256: string;
  /** The volunteer had received the credit for this unit. */
  credited: boolean;
}

function acknowledged(volunteerId: string, wire: Wire): Acknowledged[] {
  const signed = new Map(wire.sent.filter((m) => m.type === 'result').map((m) => [m.leaseId as string, m.sha256 as string]));
  const credited = new Set(wire.received.filter((m) => m.type === 'credit' && (m.amount as number) > 0).map((m) => m.wuId as string));
  return wire.received
    .filter((m) => m.type === 'result-ack' && m.accepted)
    .map((m) => ({ volunteerId, wuId: m.wuId as string, sha256: signed.get(m.leaseId as string)!, credited: credited.has(m.wuId as string) }));
}

test('SIGKILL mid-job: every acknowledged result survives the restart as acknowledged, volunteers reconnect, nothing lost or doubled', async ({ browser }) => {
  const dir = makeTempDir();
  let { proc, port } = await startProcess(0, dir);
  const base = `http://127.0.0.1:${port}`;
  const api = (path: string, init: RequestInit = {}) =>
    fetch(base + path, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${TOKEN}` } });
  const volunteers = async () => ((await (await api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] }).volunteers;
  const ledger = async () => ((await (await api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] }).entries;
  const pages: { page: Page; wire: Wire }[] = [];
  try {
    for (let i = 0; i < 3; i++) pages.push(await openPage(browser, base));
    const upload = async (rows: number, cols: number, data: Float32Array) =>
      ((await (await api('/api/shards', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: toNpy([rows, cols], data) as Uint8Array<ArrayBuffer> })).json()) as { sha256: string }).sha256;
    const A = randomMatrix(M, K, 41);
    const B = randomMatrix(K, N, 42);
    const body = { kind: 'matmul', inputs: { a: await upload(M, K, A), b: await upload(K, N, B) }, replication: 2, adaptive: false, tile: { rows: TILE, cols: TILE } };
    const submitted = await api('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const { id: jobId } = (await submitted.json()) as { id: string };
    const total = (M / TILE) * (N / TILE);
    const job = async () => (await (await api(`/api/jobs/${jobId}`)).json()) as JobStatus;
    // What the coordinator has acknowledged, as the volunteers saw it: about a third of the job's
    // results, some of them credited, some still waiting for their second replica.
    const ids = await Promise.all(pages.map(({ page }) => page.getByTestId('volunteer-id').textContent()));
    const seen = () => pages.flatMap(({ wire }, i) => acknowledged(ids[i]!, wire));
    while (seen().length < total * 0.6 || !seen().some((a) => a.credited)) await sleep(20);
    const acked = seen();
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    const killedAt = performance.now();
    await exited;
    expect(acked.every((a) => /^[0-9a-f]{64}$/.test(a.sha256))).toBe(true);
    // Nobody answers on the port any more: the crash is real.
    await expect(fetch(`${base}/api/health`)).rejects.toThrow();

    ({ proc } = await startProcess(port, dir));
    const upAt = performance.now();

    // Straight after the restart, each acknowledged result is on disk with the hash its volunteer
    // signed: valid if its credit had reached the volunteer, else pending or valid (settled since).
    const db = new Database(join(dir, 'tabgrid.sqlite'), { readonly: true });
    try {
      const row = db.prepare('SELECT sha256, state FROM results WHERE wu_id = ? AND volunteer_id = ?');
      for (const a of acked) {
        const rows = row.all(a.wuId, a.volunteerId) as { sha256: string; state: string }[];
        expect(rows, `${a.volunteerId} on ${a.wuId}`).toHaveLength(1);
        expect(rows[0].sha256).toBe(a.sha256);
        expect(a.credited ? ['valid'] : ['pending', 'valid'], `${a.volunteerId} on ${a.wuId}`).toContain(rows[0].state);
      }
    } finally {
      db.close();
    }
    const creditedBefore = await ledger();
    for (const a of acked.filter((x) => x.credited)) {
      expect(creditedBefore.filter((e) => e.wuId === a.wuId && e.volunteerId === a.volunteerId), `credit for ${a.wuId}`).toHaveLength(1);
    }

    while ((await volunteers()).filter((v) => v.online).length < 3) await sleep(50);
    const reconnectedAt = performance.now();
    console.log(
      `recovery: coordinator answering ${((upAt - killedAt) / 1000).toFixed(2)} s after SIGKILL; ` +
        `all 3 volunteers reconnected after ${((reconnectedAt - killedAt) / 1000).toFixed(2)} s; ${acked.length} acknowledged results checked`,
    );

    let status = await job();
    while (status.state !== 'done' && status.state !== 'failed') {
      await sleep(100);
      status = await job();
    }
    expect(status.state).toBe('done');
    expect(status.progress).toEqual({ done: total, total });
    const C = parseNpy(new Uint8Array(await (await api(`/api/jobs/${jobId}/result`)).arrayBuffer()));
    expect(maxRelativeError(C.data, matmulReference(A, B, M, K, N))).toBeLessThanOrEqual(1e-4);

    // Once done: each acknowledged result is valid and credited exactly once.
    const entries = await expectHonestLedger({ api }, dir, { units: total, replication: 2 });
    const db2 = new Database(join(dir, 'tabgrid.sqlite'), { readonly: true });
    try {
      const state = db2.prepare('SELECT state FROM results WHERE wu_id = ? AND volunteer_id = ?');
      for (const a of acked) {
        expect((state.get(a.wuId, a.volunteerId) as { state: string }).state, `${a.volunteerId} on ${a.wuId}`).toBe('valid');
        expect(entries.filter((e) => e.wuId === a.wuId && e.volunteerId === a.volunteerId), `credit for ${a.wuId}`).toHaveLength(1);
      }
    } finally {
      db2.close();
    }
    for (const { page } of pages) await expectComputedOn(page, 'cpu');
  } finally {
    for (const { page } of pages) await page.context().close();
    proc.kill('SIGKILL');
    removeDir(dir);
  }
});
