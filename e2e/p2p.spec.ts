// Volunteers get shards from each other over WebRTC: the coordinator's uplink stops being the
// bottleneck, bad bytes are caught and their sender reported, and a peer that vanishes
// mid-transfer costs only a fallback to the coordinator.
// Not about the backend: the volunteer pages compute on the CPU (forced with ?backend=cpu; the
// faster one on this machine, where WebGPU is SwiftShader).
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy } from '../coordinator/protocol/npy';
import type { JobStatus } from '../coordinator/protocol';
import { randomMatrix, type TestCoordinator } from '../coordinator/testing/helpers';
import { SimWorker } from '../coordinator/testing/sim-worker';
import { computedOn, maxRelativeError, openVolunteer, startGrid, uploadMatrix } from './grid';
import { startNodePeer } from './node-peer';

const MiB = 1024 * 1024;

interface P2pSnapshot {
  coordinatorShardBytes: number;
  peers: { peerId: string; volunteerId: string; ready: boolean; shards: number; bad: boolean }[];
  badVolunteers: string[];
}

async function p2pState(grid: TestCoordinator): Promise<P2pSnapshot> {
  return (await (await grid.api('/api/p2p')).json()) as P2pSnapshot;
}

async function jobStatus(grid: TestCoordinator, id: string): Promise<JobStatus> {
  return (await (await grid.api(`/api/jobs/${id}`)).json()) as JobStatus;
}

/** Waits until every page has joined the swarm (so the tracker can recommend it). */
async function waitForSwarm(pages: Page[]) {
  for (const p of pages) await expect(p.getByTestId('p2p-state')).toHaveText('Peer-to-peer: on', { timeout: 30_000 });
}

/**
 * The tracker points pages at a peer's own claim only once it is proven: an accomplice (another
 * identity) reports having got `sha` from `peer` intact. Returns the accomplice, to close.
 */
async function vouchFor(grid: TestCoordinator, peer: { peerId: string }, sha: string): Promise<SimWorker> {
  await expect.poll(async () => (await p2pState(grid)).peers.find((p) => p.peerId === peer.peerId)?.shards).toBe(1);
  const accomplice = new SimWorker({ url: grid.base, name: 'accomplice', slots: 0 });
  await accomplice.connect();
  accomplice.send(JSON.stringify({ type: 'peer-served', peerId: peer.peerId, sha256: sha }));
  accomplice.send(JSON.stringify({ type: 'failure', leaseId: 'l_sync', reason: 'sync' })); // answered once the report is taken
  await expect.poll(() => accomplice.messages.some((msg) => msg.type === 'error')).toBe(true);
  return accomplice;
}

async function expectProduct(grid: TestCoordinator, jobId: string, A: Float32Array, B: Float32Array, m: number, k: number, n: number) {
  const C = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${jobId}/result`)).arrayBuffer()));
  expect(C.shape).toEqual([m, n]);
  expect(maxRelativeError(C.data, matmulReference(A, B, m, k, n))).toBeLessThanOrEqual(1e-4);
}

test('six pages share a 4 MiB input: the coordinator serves at most 25% of the shard bytes', async ({ browser }) => {
  // Every unit needs the whole of B (one column block), 4 MiB; each unit's A block is 32 KiB and its
  // compute small (8 rows), so the test measures shard traffic, not SwiftShader.
  const [m, k, n] = [96, 1024, 1024];
  const grid = await startGrid();
  try {
    const pages: Page[] = [];
    for (let i = 0; i < 6; i++) pages.push(await openVolunteer(browser, grid, { backend: 'cpu' }));
    await waitForSwarm(pages);
    const A = randomMatrix(m, k, 11);
    const B = randomMatrix(k, n, 12);
    const a = await uploadMatrix(grid, m, k, A);
    const b = await uploadMatrix(grid, k, n, B);
    const before = (await p2pState(grid)).coordinatorShardBytes;
    const t0 = Date.now();
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 2, tile: { rows: 8, cols: n } });
    const status = await grid.waitForJob(jobId, 150_000);
    const seconds = (Date.now() - t0) / 1000;
    expect(status.state).toBe('done');
    await expectProduct(grid, jobId, A, B, m, k, n);

    const served = (await p2pState(grid)).coordinatorShardBytes - before;
    const traffic = (await jobStatus(grid, jobId)).shardTraffic!;
    const received = traffic.fromPeers + traffic.fromCoordinator;
    // Every page needed B at least once; the job's figures agree with what the coordinator counted.
    expect(received).toBeGreaterThanOrEqual(6 * 4 * MiB);
    expect(traffic.fromCoordinator).toBeLessThanOrEqual(served);
    const share = served / received;
    const servedByPages = await Promise.all(pages.map(async (p) => Number(await p.getByTestId('served').getAttribute('data-bytes'))));
    // Per receiving page: bytes from peers over the time spent receiving them.
    const rates = await Promise.all(
      pages.map(async (p) => {
        const el = p.getByTestId('from-peers');
        const [bytes, ms] = [Number(await el.getAttribute('data-bytes')), Number(await el.getAttribute('data-transfer-ms'))];
        return ms > 0 ? bytes / 1e6 / (ms / 1000) : null;
      }),
    );
    const receiverRates = rates.filter((r): r is number => r !== null);
    console.log(
      JSON.stringify({
        figure: 'p2p-six-pages',
        coordinatorShare: Number(share.toFixed(3)),
        coordinatorMB: Number((served / 1e6).toFixed(2)),
        peersMB: Number((traffic.fromPeers / 1e6).toFixed(2)),
        jobSeconds: seconds,
        p2pMBpsOverJob: Number((traffic.fromPeers / 1e6 / seconds).toFixed(2)),
        p2pMBpsPerReceiver: receiverRates.map((r) => Number(r.toFixed(1))),
        servedByPagesMB: servedByPages.map((x) => Number((x / 1e6).toFixed(2))),
      }),
    );
    expect(share).toBeLessThanOrEqual(0.25);
    for (const p of pages) expect((await computedOn(p)).webgpu).toBe(0);
    // The pages' own counters agree: they served at least what their peers received and kept.
    expect(servedByPages.reduce((s, x) => s + x, 0)).toBeGreaterThanOrEqual(traffic.fromPeers);
  } finally {
    await grid.stop();
  }
});

test('a peer serving corrupted bytes is detected, reported and no longer recommended', async ({ browser }) => {
  const [m, k, n] = [32, 512, 512]; // B is 1 MiB, 4 units of 8 rows
  const grid = await startGrid();
  let liar: Awaited<ReturnType<typeof startNodePeer>> | null = null;
  const observer = new SimWorker({ url: grid.base, name: 'observer' });
  let voucher: SimWorker | null = null;
  try {
    const A = randomMatrix(m, k, 21);
    const B = randomMatrix(k, n, 22);
    const a = await uploadMatrix(grid, m, k, A);
    const b = await uploadMatrix(grid, k, n, B);
    const bBytes = new Uint8Array(await (await fetch(`${grid.base}/shards/${b}`)).arrayBuffer());
    // A Node peer claims to hold B and serves it with one byte flipped: right length, wrong hash.
    liar = await startNodePeer({
      grid,
      holds: [b],
      serve: async (sha) => {
        if (sha !== b) return null;
        const bad = bBytes.slice();
        bad[bad.length >> 1] ^= 0xff;
        return bad;
      },
    });
    // An accomplice vouches for the liar, so the pages are sent to it.
    voucher = await vouchFor(grid, liar, b);
    const pages: Page[] = [];
    for (let i = 0; i < 3; i++) pages.push(await openVolunteer(browser, grid, { backend: 'cpu' }));
    await waitForSwarm(pages);
    const job1 = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 2, tile: { rows: 8, cols: n } });
    expect((await grid.waitForJob(job1, 120_000)).state).toBe('done');
    await expectProduct(grid, job1, A, B, m, k, n);

    // The first page that asked the liar caught it; the tracker now marks it bad.
    expect(liar.requests.length).toBeGreaterThan(0);
    const state = await p2pState(grid);
    expect(state.badVolunteers).toEqual([liar.worker.volunteerId]);
    expect(state.peers.find((p) => p.peerId === liar!.peerId)?.bad).toBe(true);

    // A newcomer that must take every unit (replication 4 over 4 volunteers) is pointed at the
    // honest pages for B, never at the liar.
    await observer.connect();
    const asked = liar.requests.length;
    const job2 = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 4, tile: { rows: 16, cols: n } });
    expect((await grid.waitForJob(job2, 120_000)).state).toBe('done');
    await expectProduct(grid, job2, A, B, m, k, n);
    const assigns = observer.messages.filter((msg) => msg.type === 'assign');
    expect(assigns.length).toBe(2);
    for (const msg of assigns) {
      if (msg.type !== 'assign') continue;
      const recommended = msg.peers?.[b] ?? [];
      expect(recommended.length).toBeGreaterThan(0);
      expect(recommended).not.toContain(liar.peerId);
    }
    expect(liar.requests.length).toBe(asked);
  } finally {
    observer.close();
    voucher?.close();
    await liar?.close();
    await grid.stop();
  }
});

test('a peer that closes its page mid-transfer: the receiver falls back and the unit completes', async ({ browser }) => {
  const [m, k, n] = [8, 1024, 1024]; // B is 4 MiB; one unit
  const grid = await startGrid();
  try {
    const A = randomMatrix(m, k, 31);
    const B = randomMatrix(k, n, 32);
    const a = await uploadMatrix(grid, m, k, A);
    const b = await uploadMatrix(grid, k, n, B);
    const job = { kind: 'matmul', inputs: { a, b }, tile: { rows: 8, cols: n } };

    // The first page computes alone, so it holds A and B; it uploads slowly (0.5 MB/s).
    const holder = await openVolunteer(browser, grid, { backend: 'cpu' });
    await holder.getByTestId('upload-mbps').fill('0.5');
    await holder.getByTestId('upload-mbps').dispatchEvent('change');
    const job1 = await grid.submitJob({ ...job, replication: 1 });
    expect((await grid.waitForJob(job1, 60_000)).state).toBe('done');

    const others = [await openVolunteer(browser, grid, { backend: 'cpu' }), await openVolunteer(browser, grid, { backend: 'cpu' })];
    await waitForSwarm([holder, ...others]);
    // Same unit again with two replicas: the holder takes one (locality), a newcomer the other and
    // fetches B from the holder — which closes its page a moment into the transfer.
    const job2 = await grid.submitJob({ ...job, replication: 2 });
    const fetching = await Promise.race(
      others.map(async (p) => {
        await expect(p.getByTestId('phase')).toHaveText('Fetching inputs', { timeout: 30_000 });
        return p;
      }),
    );
    // The holder is sending B (its served bytes grow chunk by chunk; at 0.5 MB/s the 4 MiB take
    // ~8 s): it closes mid-transfer, not before the transfer started or after it ended. (A's block,
    // 32 KiB, goes first: past 64 KiB, B's chunks are flowing.)
    const served = async () => Number(await holder.getByTestId('served').getAttribute('data-bytes'));
    await expect.poll(served, { timeout: 30_000 }).toBeGreaterThan(64 * 1024);
    expect(await served()).toBeLessThan(4 * MiB);
    await holder.close();

    const status = await grid.waitForJob(job2, 120_000);
    expect(status.state).toBe('done');
    await expectProduct(grid, job2, A, B, m, k, n);
    // The receiver's transfer from the holder failed, it got B from the coordinator, and its unit counted.
    expect(Number(await fetching.getByTestId('from-peers').getAttribute('data-peer-failures'))).toBeGreaterThanOrEqual(1);
    expect(Number(await fetching.getByTestId('from-coordinator').getAttribute('data-bytes'))).toBeGreaterThanOrEqual(4 * MiB);
    await expect(fetching.getByTestId('units-done')).toHaveText('1', { timeout: 10_000 });
  } finally {
    await grid.stop();
  }
});

test('a peer that accepts the connection but never sends: the receiver falls back to the coordinator', async ({ browser }) => {
  const [m, k, n] = [8, 256, 256]; // one unit; B is 256 KiB
  const grid = await startGrid();
  let silent: Awaited<ReturnType<typeof startNodePeer>> | null = null;
  let accomplice: SimWorker | null = null;
  try {
    const A = randomMatrix(m, k, 41);
    const B = randomMatrix(k, n, 42);
    const a = await uploadMatrix(grid, m, k, A);
    const b = await uploadMatrix(grid, k, n, B);
    // Claims B, takes the connection and the request, and never answers.
    silent = await startNodePeer({ grid, holds: [b], serve: () => new Promise<never>(() => {}) });
    accomplice = await vouchFor(grid, silent, b); // so the page is sent to it
    const page = await openVolunteer(browser, grid, { backend: 'cpu' });
    await waitForSwarm([page]);
    const job = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 8, cols: n } });
    expect((await grid.waitForJob(job, 90_000)).state).toBe('done');
    await expectProduct(grid, job, A, B, m, k, n);
    expect(silent.requests).toEqual([b]);
    expect(Number(await page.getByTestId('from-peers').getAttribute('data-peer-failures'))).toBe(1);
    expect(Number(await page.getByTestId('from-coordinator').getAttribute('data-bytes'))).toBeGreaterThanOrEqual(k * n * 4);
  } finally {
    accomplice?.close();
    await silent?.close();
    await grid.stop();
  }
});
