// Crash safety: the coordinator process is killed with SIGKILL in the middle of a job and started
// again on the same data directory and port. The browser volunteers reconnect on their own, the
// job completes correctly, no acknowledged result or credit is lost or doubled, and the ledger
// verifies. Prints the recovery times.
import { expect, test } from './fixtures';
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { launchVolunteers } from '../coordinator/tools/headless-volunteers';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy, toNpy } from '../coordinator/protocol/npy';
import { freePort } from '../coordinator/testing/pg-cluster';
import { newApiToken } from '../coordinator/access/keys';
import type { JobStatus, VolunteerSummary } from '../coordinator/protocol';
import { makeTempDir, randomMatrix, removeDir, sleep } from '../coordinator/testing/helpers';
import { expectHonestLedger, maxRelativeError, ROOT } from './grid';

// A coordinator refuses to start with a weak token: this one carries 192 random bits.
const TOKEN = newApiToken();
const [M, K, N] = [192, 256, 128];
const TILE = 32;

function startProcess(port: number, dataDir: string): ChildProcess {
  // `node --import tsx`, not tsx's CLI: that one runs the script in a child process, which a
  // SIGKILL to the CLI would leave running.
  return spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'coordinator/cli.ts'), 'start', '--port', String(port), '--host', '127.0.0.1', '--data', dataDir], {
    cwd: ROOT,
    env: { ...process.env, TABGRID_API_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function waitHealthy(base: string, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(`${base}/api/health`)).ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > until) throw new Error('coordinator did not come up');
    await sleep(50);
  }
}

test('SIGKILL mid-job: restart on the same data, volunteers reconnect, nothing lost or doubled', async () => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const dir = makeTempDir();
  const api = (path: string, init: RequestInit = {}) =>
    fetch(base + path, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${TOKEN}` } });
  const volunteers = async () => ((await (await api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] }).volunteers;
  let proc = startProcess(port, dir);
  await waitHealthy(base);
  const fleet = await launchVolunteers({ count: 3, url: base, tune: false });
  try {
    const upload = async (rows: number, cols: number, data: Float32Array) =>
      ((await (await api('/api/shards', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: toNpy([rows, cols], data) as Uint8Array<ArrayBuffer> })).json()) as { sha256: string }).sha256;
    const A = randomMatrix(M, K, 41);
    const B = randomMatrix(K, N, 42);
    const body = { kind: 'matmul', inputs: { a: await upload(M, K, A), b: await upload(K, N, B) }, replication: 2, adaptive: false, tile: { rows: TILE, cols: TILE } };
    const submitted = await api('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const { id: jobId } = (await submitted.json()) as { id: string };
    const total = (M / TILE) * (N / TILE);
    const job = async () => (await (await api(`/api/jobs/${jobId}`)).json()) as JobStatus;
    while ((await job()).progress.done < total * 0.3) await sleep(50);

    // What the coordinator has acknowledged before the crash.
    const before = new Map((await volunteers()).map((v) => [v.id, v]));
    const acked = await Promise.all(fleet.volunteers.map((v) => v.status()));
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    const killedAt = performance.now();
    await exited;
    // Nobody answers on the port any more: the crash is real.
    await expect(fetch(`${base}/api/health`)).rejects.toThrow();

    proc = startProcess(port, dir);
    await waitHealthy(base);
    const upAt = performance.now();
    while ((await volunteers()).filter((v) => v.online).length < 3) await sleep(50);
    const reconnectedAt = performance.now();
    console.log(
      `recovery: coordinator answering ${((upAt - killedAt) / 1000).toFixed(2)} s after SIGKILL; ` +
        `all 3 volunteers reconnected after ${((reconnectedAt - killedAt) / 1000).toFixed(2)} s`,
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

    const after = new Map((await volunteers()).map((v) => [v.id, v]));
    for (const s of acked) {
      const was = before.get(s.volunteerId!);
      const now = after.get(s.volunteerId!)!;
      // Credit granted before the crash is still there, and every result the volunteer saw
      // acknowledged was on disk.
      expect(now.credit).toBeGreaterThanOrEqual(was?.credit ?? 0);
      expect(now.results.valid + now.results.invalid + now.results.pending).toBeGreaterThanOrEqual(s.unitsDone);
    }
    await expectHonestLedger({ api }, dir, { units: total, replication: 2 });
  } finally {
    await fleet.close();
    proc.kill('SIGKILL');
    removeDir(dir);
  }
});
