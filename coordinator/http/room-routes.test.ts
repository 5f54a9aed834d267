// Rooms over real HTTP and a real WebSocket: create, join by code, the snapshot, pause and resume,
// a demo job computed by a room member, and credit summed per room.
import { describe, expect, test } from 'vitest';
import { RoomCode, type RoomCreated, type RoomInfo, type RoomSnapshot } from '../protocol/index.js';
import { SimWorker } from '../testing/sim-worker.js';
import { randomMatrix, TOKEN, waitFor } from '../testing/helpers.js';
import { toNpy } from '../protocol/npy.js';
import { useTestGrid } from '../testing/fixtures.js';

const { grid, workers } = useTestGrid();

const post = (path: string, body: unknown, token: string | null = null) =>
  grid.api(path, { method: 'POST', token, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function createRoom(name = 'Physics 2B'): Promise<RoomCreated> {
  const res = await post('/api/rooms', { name });
  expect(res.status).toBe(201);
  return (await res.json()) as RoomCreated;
}

async function joinedWorker(code: string, name: string): Promise<SimWorker> {
  const w = new SimWorker({ url: grid.base, name });
  workers.push(w);
  await w.connect();
  w.send(JSON.stringify({ type: 'join-room', code: code.toLowerCase() })); // codes are case-insensitive
  await waitFor(() => w.messages.find((m) => m.type === 'room'), 5000, 'room message');
  return w;
}

const snapshot = async (code: string) => (await (await grid.api(`/api/rooms/${code}/snapshot`, { token: null })).json()) as RoomSnapshot;

/** Polls the room's snapshot until `ok` holds. */
async function waitForSnapshot(code: string, ok: (s: RoomSnapshot) => boolean, what: string): Promise<RoomSnapshot> {
  const until = Date.now() + 10_000;
  for (;;) {
    const snap = await snapshot(code);
    if (ok(snap)) return snap;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(snap)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('rooms', () => {
  test('a room gets a short code, join and board paths, and a teacher key', async () => {
    const room = await createRoom();
    expect(RoomCode.safeParse(room.code).success).toBe(true);
    expect(room.code).toMatch(/^[A-HJ-NP-Z2-9]{6}$/);
    expect(room.joinPath).toBe(`/room/${room.code}`);
    expect(room.boardPath).toBe(`/board/${room.code}`);
    expect(room.teacherKey).toMatch(/^tk_/);
    const info = (await (await grid.api(`/api/rooms/${room.code.toLowerCase()}`, { token: null })).json()) as RoomInfo;
    expect(info).toMatchObject({ code: room.code, name: 'Physics 2B', paused: false, credit: 0, members: 0 });
  });

  test.each([
    [{}, 400],
    [{ name: '' }, 400],
    [{ name: 'x'.repeat(65) }, 400],
    [{ name: 'ok', extra: 1 }, 400],
  ])('room creation refuses %j', async (body, status) => {
    const res = await post('/api/rooms', body);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('bad_request');
  });

  test.each(['ABC', 'ABCDE0', 'abcdefg', '../../x'])('a malformed code %s is a 400, an unknown one a 404', async (code) => {
    const res = await grid.api(`/api/rooms/${encodeURIComponent(code)}`, { token: null });
    expect(res.status).toBe(400);
    expect((await grid.api('/api/rooms/ABCDEF', { token: null })).status).toBe(404);
  });

  test('members show on the snapshot with name and device, but not the speed their page claims; unknown rooms are refused', async () => {
    const room = await createRoom();
    const w = await joinedWorker(room.code, 'Ada');
    // A page may say anything about its speed: the board shows validated credit, not this.
    w.send(JSON.stringify({ type: 'status', gflops: 1e9, paused: false }));
    let snap = await snapshot(room.code);
    for (let i = 0; i < 100 && snap.memberList[0]?.online !== true; i++) snap = await snapshot(room.code);
    await new Promise((r) => setTimeout(r, 200));
    snap = await snapshot(room.code);
    expect(snap.members).toBe(1);
    expect(snap.memberList[0]).toMatchObject({ name: 'Ada', device: 'CPU: node sim-worker', online: true, paused: false, units: 0, credit: 0, gflops: 0 });
    expect(snap.gflops).toBe(0);

    const stray = new SimWorker({ url: grid.base });
    workers.push(stray);
    await stray.connect();
    stray.send(JSON.stringify({ type: 'join-room', code: 'ZZZZZZ' }));
    const err = await waitFor(() => stray.messages.find((m) => m.type === 'error'), 5000, 'error');
    expect(err).toMatchObject({ code: 'no_room' });
  });

  test('a member that measured its backends after the hello shows its new device on the board', async () => {
    const room = await createRoom();
    const w = await joinedWorker(room.code, 'Grace');
    expect((await snapshot(room.code)).memberList[0]?.device).toBe('CPU: node sim-worker');
    const device = { backend: 'webgpu', adapter: 'nvidia rtx', isFallbackAdapter: false, features: [], measured: { webgpu: 900, cpu: 30 } };
    w.send(JSON.stringify({ type: 'device', device }));
    let snap = await snapshot(room.code);
    for (let i = 0; i < 100 && snap.memberList[0]?.device !== 'WebGPU: nvidia rtx'; i++) snap = await snapshot(room.code);
    expect(snap.memberList[0]?.device).toBe('WebGPU: nvidia rtx');
    expect(grid.logs.some((l) => l.includes('now computes on webgpu: nvidia rtx'))).toBe(true);
    // A malformed device is refused like any bad message, and changes nothing.
    w.send(JSON.stringify({ type: 'device', device: { backend: 'quantum', adapter: 'x' } }));
    await waitFor(() => w.messages.find((m) => m.type === 'error'), 5000, 'error');
    expect((await snapshot(room.code)).memberList[0]?.device).toBe('WebGPU: nvidia rtx');
  });

  test('pause and resume need the teacher key, reach the members, and stop work while paused', async () => {
    const room = await createRoom();
    const w = await joinedWorker(room.code, 'Ada');
    expect((await post(`/api/rooms/${room.code}/control`, { paused: true })).status).toBe(401);
    expect((await post(`/api/rooms/${room.code}/control`, { paused: true }, 'tk_wrong')).status).toBe(401);
    expect((await post(`/api/rooms/${room.code}/control`, { paused: 'yes' }, room.teacherKey)).status).toBe(400);
    const paused = await post(`/api/rooms/${room.code}/control`, { paused: true }, room.teacherKey);
    expect(paused.status).toBe(200);
    expect(((await paused.json()) as RoomInfo).paused).toBe(true);
    await waitFor(() => w.messages.some((m) => m.type === 'room' && m.paused), 5000, 'pause message');

    // A demo job while paused: nothing is leased to the paused member, even if it says it is ready.
    // (The device message after it shows on the snapshot once the coordinator has handled both.)
    w.send(JSON.stringify({ type: 'ready', slots: 1 }));
    w.send(JSON.stringify({ type: 'device', device: { backend: 'cpu', adapter: 'ready sent', features: [] } }));
    await waitForSnapshot(room.code, (s) => s.memberList[0]?.device === 'CPU: ready sent', 'the ready and device messages handled');
    const demo = await post(`/api/rooms/${room.code}/demo`, { size: 'small' }, room.teacherKey);
    expect(demo.status).toBe(201);
    const { id, workUnits } = (await demo.json()) as { id: string; workUnits: number };
    expect(workUnits).toBe(4);
    // One unfinished demo job per room.
    const again = await post(`/api/rooms/${room.code}/demo`, { size: 'small' }, room.teacherKey);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('not_ready');
    // A volunteer outside the room connects and takes all four units (it holds them): the work was
    // there to be handed out while the member said it was ready, and the member got none of it.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const outsider = new SimWorker({ url: grid.base, name: 'outsider', slots: 4, compute: async (wu) => held.then(() => new Float32Array(wu.outputBytes / 4)) });
    workers.push(outsider);
    await outsider.connect();
    await waitFor(() => outsider.received('assign').length === 4, 10_000, 'the outsider to take all four units');
    expect(w.messages.some((m) => m.type === 'assign')).toBe(false);

    // The API token works as a teacher key too.
    expect((await post(`/api/rooms/${room.code}/control`, { paused: false }, TOKEN)).status).toBe(200);
    await waitFor(() => w.messages.some((m) => m.type === 'room' && !m.paused), 5000, 'resume message');
    w.send(JSON.stringify({ type: 'ready', slots: 1 }));
    outsider.kill(); // its units go back to the queue, and to the member
    release();
    const status = await grid.waitForJob(id, 20_000);
    expect(status.state).toBe('done');

    // Credit is summed per room: 4 units of 2·64·64·128 FLOPs, one replica each.
    const snap = await snapshot(room.code);
    expect(snap.credit).toBe(4 * 2 * 64 * 64 * 128);
    expect(snap.memberList[0]).toMatchObject({ units: 4, credit: snap.credit });
    // The speed is that credit over the last minute.
    expect(snap.gflops).toBeCloseTo(snap.credit / 60 / 1e9, 12);
    // The public ranking shows the room's credit, never its code.
    const { rooms } = (await (await grid.api('/api/rooms', { token: null })).json()) as { rooms: RoomInfo[] };
    expect(rooms.find((r) => r.name === 'Physics 2B')?.credit).toBe(snap.credit);
    expect(JSON.stringify(rooms)).not.toContain(room.code);
  });

  test('a room counts what its members earned after joining, and GET /api/rooms ranks rooms by that credit', async () => {
    /** One unit of 2·m·8·8 FLOPs, replication 1: whoever is ready computes it. */
    const job = async (m: number) => {
      const a = await grid.uploadShard(toNpy([m, 8], randomMatrix(m, 8, m)));
      const b = await grid.uploadShard(toNpy([8, 8], randomMatrix(8, 8, 2)));
      const id = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: m, cols: 8 } });
      expect((await grid.waitForJob(id, 20_000)).state).toBe('done');
      return 2 * m * 8 * 8;
    };
    const small = await createRoom('Small');
    const big = await createRoom('Big');
    await createRoom('Idle'); // no members, no credit: ranked last
    // Ada earns credit before she joins: it is hers, not the room's.
    const ada = new SimWorker({ url: grid.base, name: 'Ada' });
    workers.push(ada);
    await ada.connect();
    const before = await job(8);
    await waitFor(() => ada.credit === before, 5000, 'the credit before joining');
    ada.send(JSON.stringify({ type: 'join-room', code: small.code }));
    await waitFor(() => ada.messages.find((m) => m.type === 'room'), 5000, 'room message');
    const afterJoin = await job(16);
    await waitFor(() => ada.credit === before + afterJoin, 5000, 'the credit after joining');
    // Ada stops taking work (her status shows on her room's snapshot once both are handled); Bob
    // joins the other room and earns more.
    ada.send(JSON.stringify({ type: 'ready', slots: 0 }));
    ada.send(JSON.stringify({ type: 'status', gflops: 1, paused: true }));
    await waitForSnapshot(small.code, (s) => s.memberList[0]?.paused === true, "Ada's pause handled");
    const bob = await joinedWorker(big.code, 'Bob');
    const bobs = await job(40);
    await waitFor(() => bob.credit === bobs, 5000, "Bob's credit");

    const smallSnap = await snapshot(small.code);
    expect(smallSnap.credit).toBe(afterJoin);
    expect(smallSnap.memberList).toMatchObject([{ name: 'Ada', units: 1, credit: afterJoin }]);
    expect((await snapshot(big.code)).credit).toBe(bobs);
    const { rooms } = (await (await grid.api('/api/rooms', { token: null })).json()) as { rooms: RoomInfo[] };
    // (The public ranking names rooms; it does not show their codes.)
    expect(rooms.map((r) => [r.name, r.credit])).toEqual([
      ['Big', bobs],
      ['Small', afterJoin],
      ['Idle', 0],
    ]);
  });

  test('the board stream sends snapshots as Server-Sent Events', async () => {
    const room = await createRoom();
    const ctrl = new AbortController();
    const res = await fetch(`${grid.base}/api/rooms/${room.code}/events`, { signal: ctrl.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    ctrl.abort();
    const text = new TextDecoder().decode(value);
    expect(text.startsWith('data: ')).toBe(true);
    expect((JSON.parse(text.slice(6)) as RoomSnapshot).code).toBe(room.code);
  });
});
