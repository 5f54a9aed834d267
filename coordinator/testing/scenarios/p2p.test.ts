// The coordinator as the swarm's tracker, over its real HTTP and WebSocket endpoints.
import { describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import { toNpy } from '../../protocol/npy.js';
import { parseIceServers } from '../../swarm/peer-server.js';
import type { ServerMessage } from '../../protocol/index.js';
import { MAX_LOCALITY_SKIPS } from '../../work/scheduler.js';
import { sha256Hex } from '../../store/shards.js';
import { honestCompute, SimWorker, type Compute } from '../sim-worker.js';
import { randomMatrix, waitFor, type TestCoordinator } from '../helpers.js';
import { useGridPerTest } from '../fixtures.js';

const { grid, workers, start } = useGridPerTest();

async function worker(g: TestCoordinator, slots: number, name = 'w', compute?: Compute): Promise<SimWorker> {
  const w = new SimWorker({ url: g.base, slots, name, compute });
  workers.push(w);
  await w.connect();
  return w;
}

function welcomeOf(w: SimWorker) {
  const msg = w.messages.find((m) => m.type === 'welcome');
  if (msg?.type !== 'welcome' || !msg.p2p) throw new Error('no p2p welcome');
  return msg.p2p;
}

const assignsOf = (w: SimWorker) => w.messages.filter((m): m is Extract<ServerMessage, { type: 'assign' }> => m.type === 'assign');
const errorsOf = (w: SimWorker) => w.messages.filter((m) => m.type === 'error');

/**
 * Uploads A (m×k) and B (k×n); returns their shas and the shas of A's row blocks of `rows` (also
 * uploaded: the tracker keeps claims only of shards that exist, and these exist once a job is planned).
 */
async function matrices(g: TestCoordinator, m: number, k: number, n: number, rows: number) {
  const A = randomMatrix(m, k, 1);
  const B = randomMatrix(k, n, 2);
  const a = await g.uploadShard(toNpy([m, k], A));
  const b = await g.uploadShard(toNpy([k, n], B));
  const aBlocks: string[] = [];
  for (let r0 = 0; r0 < m; r0 += rows) {
    const r1 = Math.min(m, r0 + rows);
    aBlocks.push(await g.uploadShard(toNpy([r1 - r0, k], A.slice(r0 * k, r1 * k))));
  }
  return { a, b, bBlock: sha256Hex(toNpy([k, n], B)), aBlocks };
}

/**
 * The tracker recommends a page's own claims only once proven: here another volunteer reports
 * having got each of `shas` from `holder` intact (`peer-served`), once the claims are recorded.
 */
async function vouch(g: TestCoordinator, holder: SimWorker, shas: string[]) {
  const peerId = welcomeOf(holder).peerId;
  for (let i = 0; i < 100; i++) {
    const peers = ((await (await g.api('/api/p2p')).json()) as { peers: { peerId: string; shards: number }[] }).peers;
    if ((peers.find((p) => p.peerId === peerId)?.shards ?? 0) >= shas.length) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const voucher = await worker(g, 0, 'voucher');
  for (const sha256 of shas) voucher.send(JSON.stringify({ type: 'peer-served', peerId, sha256 }));
  // Messages are handled in order: the answer to this one means the reports were taken.
  voucher.send(JSON.stringify({ type: 'failure', leaseId: 'l_sync', reason: 'sync' }));
  await waitFor(() => errorsOf(voucher).length > 0, 5000, 'the voucher’s reports');
}

describe('tracker over the protocol', () => {
  test('welcome hands out a peer id and the configured ICE servers', async () => {
    await start({ iceServers: [{ urls: 'stun:stun.example.org:3478' }] });
    const [w1, w2] = [await worker(grid, 0), await worker(grid, 0)];
    const [p1, p2] = [welcomeOf(w1), welcomeOf(w2)];
    expect(p1.peerId).not.toBe(p2.peerId);
    expect(p1.path).toBe('/peerjs');
    expect(p1.iceServers).toEqual([{ urls: 'stun:stun.example.org:3478' }]);
  });

  test('each assignment names the ready peers holding its shards, and they are preferred for the work', async () => {
    await start();
    const { a, b, bBlock, aBlocks } = await matrices(grid, 16, 8, 8, 8);
    const holder = await worker(grid, 0, 'holder');
    holder.send(JSON.stringify({ type: 'peer-ready' }));
    holder.send(JSON.stringify({ type: 'holdings', add: [bBlock, aBlocks[1]] }));
    await vouch(grid, holder, [bBlock, aBlocks[1]]);
    // The newcomer finishes its unit only once the holder has been given work, so it cannot take both.
    let holderAssigned!: () => void;
    const holderHasWork = new Promise<void>((resolve) => (holderAssigned = resolve));
    const newcomer = await worker(grid, 1, 'newcomer', async (wu, inputs) => {
      await holderHasWork;
      return honestCompute(wu, inputs);
    });
    await waitFor(() => grid.logs.some((l) => l.includes('connected')) && true, 2000);
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 8, cols: 8 } });
    const [first] = await waitFor(() => assignsOf(newcomer).length > 0 && assignsOf(newcomer), 5000, 'assign');
    // The newcomer got unit 0 (A block 0, which nobody holds, and B, which the holder has).
    expect(first.peers).toEqual({ [bBlock]: [welcomeOf(holder).peerId] });
    // The holder asks for work: of the two units it takes the one whose A block it holds.
    holder.send(JSON.stringify({ type: 'ready', slots: 1 }));
    await waitFor(() => assignsOf(holder).length > 0, 5000, 'holder assign');
    holderAssigned();
    expect((await grid.waitForJob(jobId)).state).toBe('done');
    const held = assignsOf(holder);
    expect(held).toHaveLength(1);
    expect(held[0].wu.inputs.a).toBe(aBlocks[1]);
    expect(first.wu.inputs.a).toBe(aBlocks[0]);
    // The holder never gets itself recommended.
    expect(held[0].peers?.[bBlock] ?? []).not.toContain(welcomeOf(holder).peerId);
  });

  test('locality never starves the head of the queue', async () => {
    await start();
    const units = 12;
    const { a, b, aBlocks } = await matrices(grid, units * 2, 4, 4, 2);
    const w = await worker(grid, 0);
    // It holds every A block except the first unit's: locality alone would leave unit 0 for last.
    w.send(JSON.stringify({ type: 'peer-ready' }));
    w.send(JSON.stringify({ type: 'holdings', add: aBlocks.slice(1) }));
    await vouch(grid, w, aBlocks.slice(1));
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 2, cols: 4 } });
    w.send(JSON.stringify({ type: 'ready', slots: 4 }));
    expect((await grid.waitForJob(jobId)).state).toBe('done');
    const order = assignsOf(w).map((m) => Number(m.wu.id.split('.').pop()));
    expect(order).toHaveLength(units);
    expect(order[0]).not.toBe(0); // locality did prefer others…
    expect(order.indexOf(0)).toBeLessThanOrEqual(MAX_LOCALITY_SKIPS); // …but only for a bounded time
  });

  test('a reported peer is no longer recommended', async () => {
    await start();
    const { a, b, bBlock } = await matrices(grid, 8, 8, 8, 8);
    const [liar, honest, reporter] = [await worker(grid, 0, 'liar'), await worker(grid, 0, 'honest'), await worker(grid, 0, 'reporter')];
    for (const w of [liar, honest]) {
      w.send(JSON.stringify({ type: 'peer-ready' }));
      w.send(JSON.stringify({ type: 'holdings', add: [bBlock] }));
    }
    await vouch(grid, honest, [bBlock]);
    reporter.send(JSON.stringify({ type: 'bad-peer', peerId: welcomeOf(liar).peerId, sha256: bBlock, reason: 'sha-256 mismatch' }));
    await waitFor(() => grid.logs.some((l) => l.includes('no longer recommended')), 2000, 'report logged');
    reporter.send(JSON.stringify({ type: 'ready', slots: 1 }));
    await grid.waitForJob(await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1 }));
    expect(assignsOf(reporter)[0].peers?.[bBlock]).toEqual([welcomeOf(honest).peerId]);
    const p2p = await (await grid.api('/api/p2p')).json();
    expect(p2p.badVolunteers).toEqual([liar.volunteerId]);
  });

  test('shard traffic is counted per job, once per lease, never more than the inputs', async () => {
    await start();
    const { a, b } = await matrices(grid, 8, 8, 8, 8);
    // The worker holds its result back until it has reported its traffic.
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const w = await worker(grid, 0, 'w', async (wu, inputs) => {
      await gate;
      return honestCompute(wu, inputs);
    });
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1 });
    w.send(JSON.stringify({ type: 'ready', slots: 1 }));
    const [assign] = await waitFor(() => assignsOf(w).length > 0 && assignsOf(w), 5000, 'assign');
    const inputBytes = (8 * 8 * 4 + 128) * 2; // two .npy blocks of 8×8 float32 (128-byte headers)
    w.send(JSON.stringify({ type: 'shard-traffic', leaseId: assign.lease.id, fromPeers: 10 ** 12, fromCoordinator: 10 ** 12 }));
    w.send(JSON.stringify({ type: 'shard-traffic', leaseId: assign.lease.id, fromPeers: 5, fromCoordinator: 5 }));
    release(); // messages on one socket are handled in order: the reports count before the result
    expect((await grid.waitForJob(jobId)).state).toBe('done');
    const status = await (await grid.api(`/api/jobs/${jobId}`)).json();
    expect(status.shardTraffic).toEqual({ fromPeers: inputBytes, fromCoordinator: 0 });
    // The coordinator's own count of what it served over HTTP (the sim-worker fetched both inputs).
    expect((await (await grid.api('/api/p2p')).json()).coordinatorShardBytes).toBe(inputBytes);
  });

  test.each([
    ['holdings with a bad sha', { type: 'holdings', add: ['nope'] }, 'bad_message'],
    ['too many holdings', { type: 'holdings', add: Array(1025).fill('a'.repeat(64)) }, 'bad_message'],
    ['bad-peer with a bad peer id', { type: 'bad-peer', peerId: 'a b', sha256: 'a'.repeat(64), reason: 'x' }, 'bad_message'],
    ['traffic for a lease it does not hold', { type: 'shard-traffic', leaseId: 'l_x', fromPeers: 1, fromCoordinator: 1 }, 'bad_lease'],
    ['negative traffic', { type: 'shard-traffic', leaseId: 'l_x', fromPeers: -1, fromCoordinator: 1 }, 'bad_message'],
    ['an unknown field', { type: 'peer-ready', extra: 1 }, 'bad_message'],
  ])('%s is refused without harm', async (_name, msg, code) => {
    await start();
    const w = await worker(grid, 0);
    w.send(JSON.stringify(msg));
    const err = await waitFor(() => errorsOf(w)[0], 2000, 'error');
    expect(err).toMatchObject({ type: 'error', code });
    expect((await grid.api('/api/health')).status).toBe(200);
  });

  test('the swarm endpoint needs the API token', async () => {
    await start();
    const res = await grid.api('/api/p2p', { token: null });
    expect(res.status).toBe(401);
    expect((await res.json()).error.code).toBe('unauthorized');
  });

  test('the PeerServer only admits peer ids the coordinator issued', async () => {
    await start();
    const w = await worker(grid, 0);
    const signIn = (id: string, token = welcomeOf(w).token) =>
      new Promise<{ code?: number; first?: string }>((resolve) => {
        const ws = new WebSocket(`${grid.base.replace('http', 'ws')}/peerjs/peerjs?key=peerjs&id=${id}&token=${token}`);
        ws.on('message', (data) => {
          resolve({ first: JSON.parse(String(data)).type });
          ws.close();
        });
        ws.on('close', (code) => resolve({ code }));
      });
    expect(await signIn('tg-not-issued')).toEqual({ code: 1008 });
    expect(await signIn(welcomeOf(w).peerId)).toEqual({ first: 'OPEN' });
  });
});

describe('parseIceServers', () => {
  test.each([
    [undefined, []],
    ['', []],
    ['stun:a.example:3478', [{ urls: 'stun:a.example:3478' }]],
    ['stun:a.example:3478, stun:b.example:3478', [{ urls: 'stun:a.example:3478' }, { urls: 'stun:b.example:3478' }]],
    ['[{"urls":"turn:t.example:3478","username":"u","credential":"p"}]', [{ urls: 'turn:t.example:3478', username: 'u', credential: 'p' }]],
  ])('%j', (text, servers) => {
    expect(parseIceServers(text)).toEqual(servers);
  });

  test.each(['[{"url":"stun:x"}]', '[not json', '[{"urls":"stun:x","password":"p"}]'])('rejects %j', (text) => {
    expect(() => parseIceServers(text)).toThrow(/TABGRID_ICE_SERVERS/);
  });
});
