// What an outside attacker tried in ten minutes against `npm start` (issue 20), each as a test:
// tokenless storage and queueing through rooms and demo jobs, guessing tokens, weak tokens, false
// shard claims, foreign and rebinding Origins, other callers' jobs, the public room list and board,
// big frames before hello, 403 codes, /peerjs without a rate limit, .npy headers NumPy reads
// differently, identities minted without end. Each fails on the code before the fix.
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import { startCoordinator } from '../../app.js';
import { DEMO_STORAGE_BYTES } from '../../jobs/demo.js';
import { MAX_BOARD_STREAMS_PER_ADDRESS } from '../../http/room-routes.js';
import { ApiError, VolunteerList, type JobStatus, type RoomCreated, type RoomSnapshot } from '../../protocol/index.js';
import { toNpy } from '../../protocol/npy.js';
import { securityFromEnv } from '../../access/security.js';
import { postJson, request, type Answer } from '../loopback-http.js';
import { SqliteStore } from '../../store/sqlite/store.js';
import { honestCompute, SimWorker } from '../sim-worker.js';
import { makeTempDir, randomMatrix, removeDir, runCli, startTestCoordinator, TOKEN, until, waitFor, wsHandshakeStatus } from '../helpers.js';
import { useGridPerTest } from '../fixtures.js';

const { grid, workers, start } = useGridPerTest();

const json = (body: unknown, token?: string) => postJson(body, token);
/** The same JSON POST for grid.api (fetch). */
const fetchJson = (body: unknown, token?: string): RequestInit & { token?: string } => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
  ...(token ? { token } : {}),
});
const codeOf = (a: Answer) => ApiError.parse(JSON.parse(a.body)).error.code;

function dirBytes(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const st = statSync(join(dir, name));
    if (st.isFile()) n += st.size;
  }
  return n;
}

describe('tokenless rooms and demo jobs store and queue only a bounded amount', () => {
  test('demo inputs are made once per size and shared by every room', async () => {
    await start({ security: { demoMaxActive: 10 } });
    const shards = join(grid.dir, 'shards');
    const before = dirBytes(shards);
    for (let i = 0; i < 6; i++) {
      const room = JSON.parse((await request(grid.base, '/api/rooms', { ...json({ name: `class ${i}` }), from: `127.0.0.${2 + (i % 3)}` })).body) as RoomCreated;
      const demo = await request(grid.base, `/api/rooms/${room.code}/demo`, json({ size: (['small', 'medium', 'large'] as const)[i % 3] }, room.teacherKey));
      expect(demo.status).toBe(201);
    }
    // Six rooms' demos, two of each size: every size's inputs and tiles stored once, 20.3 MiB in all.
    expect(dirBytes(shards) - before).toBe(DEMO_STORAGE_BYTES);
    expect(DEMO_STORAGE_BYTES).toBeLessThan(20.5 * 1024 * 1024);
  });

  test('rooms per address are capped; a token holder is not counted', async () => {
    await start({ security: { roomsPerAddress: 3 } });
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await request(grid.base, '/api/rooms', { ...json({ name: `r${i}` }), from: '127.0.0.2' }));
    expect(made.map((a) => a.status)).toEqual([201, 201, 201, 429, 429]);
    expect(codeOf(made[3])).toBe('rate_limited');
    expect(JSON.parse(made[3].body).error.message).toMatch(/TABGRID_ROOMS_PER_ADDRESS/);
    // Another address, and a token from this one, may still make rooms.
    expect((await request(grid.base, '/api/rooms', { ...json({ name: 'other' }), from: '127.0.0.3' })).status).toBe(201);
    expect((await request(grid.base, '/api/rooms', { ...json({ name: 'lab' }, TOKEN), from: '127.0.0.2' })).status).toBe(201);
  });

  test('rooms in all are capped, and idle rooms are removed', async () => {
    await start({ security: { roomsMax: 2, roomIdleMs: 300 } });
    const a = JSON.parse((await request(grid.base, '/api/rooms', json({ name: 'a' }))).body) as RoomCreated;
    expect((await request(grid.base, '/api/rooms', { ...json({ name: 'b' }), from: '127.0.0.2' })).status).toBe(201);
    expect((await request(grid.base, '/api/rooms', { ...json({ name: 'c' }), from: '127.0.0.3' })).status).toBe(429);
    await new Promise((r) => setTimeout(r, 400));
    // Both idle past 300 ms: removed when the next room is made.
    expect((await request(grid.base, '/api/rooms', { ...json({ name: 'c' }), from: '127.0.0.3' })).status).toBe(201);
    expect((await request(grid.base, `/api/rooms/${a.code}`)).status).toBe(404);
  });

  test('demo jobs: one at a time per room, and at most TABGRID_DEMO_MAX_ACTIVE in all', async () => {
    await start({ security: { demoMaxActive: 2 } });
    const rooms: RoomCreated[] = [];
    for (let i = 0; i < 3; i++) rooms.push(JSON.parse((await request(grid.base, '/api/rooms', { ...json({ name: `r${i}` }), from: `127.0.0.${2 + i}` })).body) as RoomCreated);
    const demo = (r: RoomCreated) => request(grid.base, `/api/rooms/${r.code}/demo`, json({ size: 'small' }, r.teacherKey));
    expect((await demo(rooms[0])).status).toBe(201);
    expect((await demo(rooms[0])).status).toBe(409);
    expect((await demo(rooms[1])).status).toBe(201);
    const third = await demo(rooms[2]);
    expect(third.status).toBe(429);
    expect(JSON.parse(third.body).error.message).toMatch(/TABGRID_DEMO_MAX_ACTIVE/);
    // The demo jobs belong to their rooms: an admin sees them, nobody else.
    const { jobs } = JSON.parse((await request(grid.base, '/api/jobs', { headers: { authorization: `Bearer ${TOKEN}` } })).body) as { jobs: JobStatus[] };
    expect(jobs.map((j) => j.name).sort()).toEqual([`demo for room ${rooms[0].code}`, `demo for room ${rooms[1].code}`].sort());
  });

  test('TABGRID_ROOMS_REQUIRE_TOKEN: making a room needs an API token', async () => {
    await start({ security: { roomsRequireToken: true } });
    const refused = await request(grid.base, '/api/rooms', json({ name: 'x' }));
    expect(refused.status).toBe(401);
    expect(codeOf(refused)).toBe('unauthorized');
    expect((await request(grid.base, '/api/rooms', json({ name: 'x' }, TOKEN))).status).toBe(201);
  });
});

describe('failed authentication', () => {
  test('counts against the address: after 10 wrong tokens in a minute it is locked out, even with the right one', async () => {
    await start();
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) statuses.push((await request(grid.base, '/api/jobs', { headers: { authorization: `Bearer tg_guess${i}xxxxxxxxxxxxxxxx` }, from: '127.0.0.2' })).status);
    expect(statuses).toEqual([...Array(10).fill(401), ...Array(4).fill(429)]);
    const locked = await request(grid.base, '/api/jobs', { headers: { authorization: `Bearer ${TOKEN}` }, from: '127.0.0.2' });
    expect(locked.status).toBe(429);
    expect(codeOf(locked)).toBe('rate_limited');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(800);
    // Another address is not affected.
    expect((await request(grid.base, '/api/jobs', { headers: { authorization: `Bearer ${TOKEN}` }, from: '127.0.0.3' })).status).toBe(200);
  });

  test('guesses count wherever they are sent (an open route, a teacher key) and are rate-limited before the token check', async () => {
    await start({ security: { authFailuresPerMinute: 5 } });
    const room = JSON.parse((await request(grid.base, '/api/rooms', json({ name: 'x' }))).body) as RoomCreated;
    for (let i = 0; i < 3; i++) await request(grid.base, '/api/health', { headers: { authorization: `Bearer guess${i}` }, from: '127.0.0.2' });
    for (let i = 0; i < 2; i++) expect((await request(grid.base, `/api/rooms/${room.code}/control`, { ...json({ paused: true }, `tk_guess${i}`), from: '127.0.0.2' })).status).toBe(401);
    expect((await request(grid.base, `/api/rooms/${room.code}/control`, { ...json({ paused: true }, room.teacherKey), from: '127.0.0.2' })).status).toBe(429);
    // The per-minute request limit applies to requests with wrong tokens too.
    const limited = await startTestCoordinator({ security: { rateLimitPerMinute: 3, authFailuresPerMinute: 100 } });
    try {
      const s = [];
      for (let i = 0; i < 5; i++) s.push((await request(limited.base, '/api/jobs', { headers: { authorization: `Bearer wrong${i}` } })).status);
      expect(s).toEqual([401, 401, 401, 429, 429]);
    } finally {
      await limited.stop();
    }
  });

  test('the coordinator refuses to start with an API token under 128 bits, saying how to make one', async () => {
    const dir = makeTempDir();
    try {
      for (const weak of ['t', 'hunter2', 'crash-test-token', 'tg_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'abcdefabcdefabcdefabcdefabcdef12']) {
        await expect(startCoordinator({ dataDir: dir, port: 0, host: '127.0.0.1', apiToken: weak, log: () => {} })).rejects.toThrow(/too weak.*128.*randomBytes/);
      }
      // A token file someone wrote by hand is held to the same rule.
      writeFileSync(join(dir, 'api-token'), 'password\n');
      await expect(startCoordinator({ dataDir: dir, port: 0, host: '127.0.0.1', log: () => {} })).rejects.toThrow(/too weak/);
    } finally {
      removeDir(dir);
    }
    // The CLI says so and exits non-zero; with no token set it makes a strong one itself.
    const cliDir = makeTempDir();
    try {
      const refused = runCli(['start', '--no-build', '--port', '0', '--host', '127.0.0.1', '--data', cliDir], { TABGRID_API_TOKEN: 'hunter2' });
      expect(refused.status).not.toBe(0);
      expect(refused.out).toMatch(/TABGRID_API_TOKEN is too weak/);
    } finally {
      removeDir(cliDir);
    }
  });
});

describe('tracker holdings', () => {
  test('claims of shards that do not exist are refused and not recorded', async () => {
    await start();
    const real = await grid.uploadShard(toNpy([2, 2], randomMatrix(2, 2, 1)));
    const w = new SimWorker({ url: grid.base, slots: 0 });
    workers.push(w);
    await w.connect();
    w.send(JSON.stringify({ type: 'peer-ready' }));
    const madeUp = Array.from({ length: 1023 }, (_, i) => i.toString(16).padStart(64, '0'));
    w.send(JSON.stringify({ type: 'holdings', add: [real, ...madeUp] }));
    const err = await waitFor(() => w.messages.find((m) => m.type === 'error'), 5000, 'error');
    expect(err).toMatchObject({ code: 'unknown_shard' });
    const { peers } = (await (await grid.api('/api/p2p')).json()) as { peers: { shards: number }[] };
    expect(peers.map((p) => p.shards)).toEqual([1]);
  });
});

describe('WebSocket Origin and Host', () => {
  test('the scheme counts: an https Origin is refused by an http coordinator', async () => {
    await start();
    const { host } = new URL(grid.base);
    expect(await wsHandshakeStatus(grid.base, { origin: `https://${host}` })).toBe(403);
    expect(await wsHandshakeStatus(grid.base, { origin: `http://${host}` })).toBe(101);
  });

  test('a page that rebinds its own name to our address is refused (Host and Origin both foreign)', async () => {
    await start();
    const { port } = new URL(grid.base);
    expect(await wsHandshakeStatus(grid.base, { origin: `http://evil.example:${port}`, host: `evil.example:${port}` })).toBe(403);
    expect(await wsHandshakeStatus(grid.base, { host: `evil.example:${port}` })).toBe(403); // no Origin (a script) but the wrong Host
  });

  test('TABGRID_PUBLIC_URL names our origin; the allow-list needs a scheme', async () => {
    await start({ security: { publicUrls: ['https://grid.example.org'] } });
    expect(await wsHandshakeStatus(grid.base, { origin: 'https://grid.example.org' })).toBe(101);
    expect(await wsHandshakeStatus(grid.base, { origin: 'http://grid.example.org' })).toBe(403);
    expect(() => securityFromEnv({ TABGRID_ALLOWED_ORIGINS: 'project.example' })).toThrow(/TABGRID_ALLOWED_ORIGINS/);
    expect(() => securityFromEnv({ TABGRID_PUBLIC_URL: 'https://grid.example.org/app' })).toThrow(/TABGRID_PUBLIC_URL/);
    expect(securityFromEnv({ TABGRID_ALLOWED_ORIGINS: 'https://Project.Example:443/' }).allowedOrigins).toEqual(['https://project.example']);
  });
});

describe('jobs belong to the token that submitted them', () => {
  test('a submit token sees and cancels only its own jobs; an admin token sees all', async () => {
    await start();
    const token = async () => ((await (await grid.api('/api/tokens', fetchJson({ scope: 'submit' }))).json()) as { token: string }).token;
    const [alice, mallory] = [await token(), await token()];
    const a = await grid.uploadShard(toNpy([4, 4], randomMatrix(4, 4, 1)));
    const submitted = await grid.api('/api/jobs', fetchJson({ kind: 'matmul', inputs: { a, b: a } }, alice));
    const { id } = (await submitted.json()) as { id: string };
    const list = async (t: string) => ((await (await grid.api('/api/jobs', { token: t })).json()) as { jobs: JobStatus[] }).jobs.map((j) => j.id);
    expect(await list(alice)).toEqual([id]);
    expect(await list(mallory)).toEqual([]);
    expect(await list(TOKEN)).toEqual([id]);
    for (const path of [`/api/jobs/${id}`, `/api/jobs/${id}/result`]) expect((await grid.api(path, { token: mallory })).status).toBe(404);
    const cancel = await grid.api(`/api/jobs/${id}/cancel`, { method: 'POST', token: mallory });
    expect(cancel.status).toBe(404);
    expect(((await (await grid.api(`/api/jobs/${id}`, { token: alice })).json()) as JobStatus).state).toBe('queued');
    expect((await grid.api(`/api/jobs/${id}/cancel`, { method: 'POST', token: alice })).status).toBe(200);
  });
});

describe('rooms in public', () => {
  test('the public list shows names and credit, not the codes that let anyone join', async () => {
    await start();
    const room = JSON.parse((await request(grid.base, '/api/rooms', json({ name: 'Physics 2B' }))).body) as RoomCreated;
    const listed = await request(grid.base, '/api/rooms');
    expect(JSON.parse(listed.body)).toEqual({ rooms: [expect.objectContaining({ name: 'Physics 2B', credit: 0, members: 0 })] });
    expect(listed.body).not.toContain(room.code);
  });

  test('the board shows validated credit, not the speed a page claims', async () => {
    await start();
    const room = JSON.parse((await request(grid.base, '/api/rooms', json({ name: 'x' }))).body) as RoomCreated;
    const w = new SimWorker({ url: grid.base, slots: 0, name: 'NVIDIA H100 x 1000' });
    workers.push(w);
    await w.connect();
    w.send(JSON.stringify({ type: 'join-room', code: room.code }));
    await waitFor(() => w.messages.find((m) => m.type === 'room'), 5000, 'joined');
    w.send(JSON.stringify({ type: 'status', gflops: 1e9, paused: false }));
    await new Promise((r) => setTimeout(r, 200));
    const snap = JSON.parse((await request(grid.base, `/api/rooms/${room.code}/snapshot`)).body) as RoomSnapshot;
    expect(snap.memberList).toHaveLength(1);
    expect(snap.gflops).toBe(0);
    expect(snap.memberList[0].gflops).toBe(0);
  });

  test('board streams are capped per address (each costs a snapshot a second)', async () => {
    await start();
    const room = JSON.parse((await request(grid.base, '/api/rooms', json({ name: 'x' }))).body) as RoomCreated;
    const ctrl = new AbortController();
    const statuses: number[] = [];
    for (let i = 0; i < MAX_BOARD_STREAMS_PER_ADDRESS + 2; i++) {
      statuses.push((await fetch(`${grid.base}/api/rooms/${room.code}/events`, { signal: ctrl.signal })).status);
    }
    ctrl.abort();
    expect(statuses).toEqual([...Array(MAX_BOARD_STREAMS_PER_ADDRESS).fill(200), 429, 429]);
    // Closed streams free their places.
    await new Promise((r) => setTimeout(r, 300));
    const again = new AbortController();
    expect((await fetch(`${grid.base}/api/rooms/${room.code}/events`, { signal: again.signal })).status).toBe(200);
    again.abort();
  });

  test('names are plain text of bounded length: control and bidirectional-override characters are refused', async () => {
    await start();
    for (const name of ['x'.repeat(65), 'evil\u202Eexe.txt', 'line\nbreak', 'zero\u200Bwidth']) {
      const res = await request(grid.base, '/api/rooms', json({ name }));
      expect(res.status).toBe(400);
      expect(codeOf(res)).toBe('bad_request');
    }
    expect((await request(grid.base, '/api/rooms', json({ name: '<script>alert(1)</script> Ünïcode 物理' }))).status).toBe(201);
  });
});

describe('minted identities', () => {
  const volunteerList = async (query = '') => VolunteerList.parse(await (await grid.api(`/api/volunteers${query}`, { token: null })).json());
  const connect = async (opts: { identity?: SimWorker['privateKey']; name?: string } = {}) => {
    const w = new SimWorker({ url: grid.base, compute: honestCompute, ...opts });
    workers.push(w);
    await w.connect();
    return w;
  };

  test('beyond the cap on unproven identities an unknown key is refused (busy), a known one still gets in; the list is bounded', async () => {
    await start({ security: { identitiesMaxUnproven: 2 } });
    const first = await connect({ name: 'first' });
    await connect({ name: 'second' });
    const third = new SimWorker({ url: grid.base, compute: honestCompute });
    workers.push(third);
    await expect(third.connect()).rejects.toThrow(/closed before welcome: 1013 busy/);
    expect(third.received('error').map((m) => m.code)).toEqual(['busy']);
    expect(third.received('error')[0].message).toMatch(/not admitting new identities right now; retry later/);
    // The first identity comes back on a new connection: known, so admitted.
    first.close();
    await connect({ identity: first.privateKey });
    const all = await volunteerList();
    expect(all.total).toBe(2);
    expect(all.volunteers.map((v) => v.name).sort()).toEqual(['first', 'second']);
    const one = await volunteerList('?limit=1');
    expect([one.volunteers.length, one.total]).toEqual([1, 2]);
  });

  test('idle identities that never did anything are forgotten (not the connected ones), freeing room under the cap; a suspension outlives the row', async () => {
    // Both coordinators use `dir`: the fixture removes it when it stops them after the test.
    const dir = makeTempDir();
    await start({ dir });
    const gone = await connect({ name: 'gone' });
    gone.close();
    await grid.stop({ keepDir: true });
    // Struck while away: its trust record says suspended.
    const store = new SqliteStore(join(dir, 'tabgrid.sqlite'));
    await store.putTrust({ volunteerId: gone.volunteerId, validStreak: 0, strikes: 1, suspendedUntil: Date.now() + 3_600_000, verifiedAt: 0 });
    await store.close();

    await start({ dir, security: { identityIdleMs: 400, identitiesMaxUnproven: 2 } });
    const stays = await connect({ name: 'stays' });
    await until(async () => (await volunteerList()).total === 1, 'the idle identity to be forgotten');
    // Connected longer than the idle time, and kept.
    await new Promise((r) => setTimeout(r, 600));
    expect((await volunteerList()).volunteers.map((v) => v.id)).toEqual([stays.volunteerId]);
    expect(grid.logs.some((l) => /forgot 1 idle identities/.test(l))).toBe(true);
    // The forgotten identity comes back: still suspended, and not stored again.
    const back = new SimWorker({ url: grid.base, compute: honestCompute, identity: gone.privateKey });
    workers.push(back);
    await expect(back.connect()).rejects.toThrow(/suspended/);
    expect((await volunteerList()).total).toBe(1);
    // A new identity fits under the cap again (one unproven stored, two allowed).
    await connect({ name: 'newcomer' });
    expect((await volunteerList()).total).toBe(2);
  });
});

describe('smaller holes', () => {
  test('frames before hello are capped small: a 1 MiB text frame is closed with 1009 unread', async () => {
    await start();
    const code = await new Promise<number>((done) => {
      const ws = new WebSocket(grid.base.replace(/^http/, 'ws') + '/ws');
      ws.on('open', () => ws.send('x'.repeat(1024 * 1024)));
      ws.on('close', (c) => done(c));
      ws.on('error', () => undefined);
    });
    expect(code).toBe(1009);
    // After hello a proven identity may send large frames again (results are up to 64 MiB).
    const w = new SimWorker({ url: grid.base, slots: 0 });
    workers.push(w);
    await w.connect();
    w.send(JSON.stringify({ type: 'failure', leaseId: 'l_x', reason: 'x'.repeat(100_000) }));
    const err = await waitFor(() => w.messages.find((m) => m.type === 'error'), 5000, 'error');
    expect(err).toMatchObject({ code: 'bad_message' }); // read and refused for what it says, not for its size
    expect(w.closed).toBeFalsy();
  });

  test('403 answers carry the code forbidden (a static path that climbs out of the web root)', async () => {
    const dir = makeTempDir();
    mkdirSync(join(dir, 'web', 'assets'), { recursive: true });
    writeFileSync(join(dir, 'web', 'index.html'), '<!doctype html><title>t</title>');
    await start({ staticDir: join(dir, 'web') });
    try {
      for (const path of ['/assets/../../package.json', '/%00', '/assets/..%5c..%5cpackage.json']) {
        const res = await request(grid.base, path);
        if (res.status === 403) expect(codeOf(res)).toBe('forbidden');
        else expect(res.status).toBe(404);
      }
      expect((await request(grid.base, '/assets/../../package.json')).status).toBe(403);
      // A URL that cannot be decoded is an ordinary error body too.
      const bad = await request(grid.base, '/%E0%A4%A');
      expect(bad.status).toBe(400);
      expect(codeOf(bad)).toBe('bad_request');
    } finally {
      removeDir(dir);
    }
  });

  test('/peerjs is rate-limited like every other path', async () => {
    await start({ security: { rateLimitPerMinute: 5 } });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await request(grid.base, '/peerjs/peerjs/id')).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses.slice(5)).toEqual([429, 429]);
  });

  test('an .npy header with a duplicate or unknown key is refused (NumPy would read it differently)', async () => {
    await start();
    const npy = (header: string, payload: number) => {
      const text = header + ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
      const out = new Uint8Array(10 + text.length + payload);
      out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
      new DataView(out.buffer).setUint16(8, text.length, true);
      out.set(new TextEncoder().encode(text), 10);
      return out;
    };
    // Read first-key-wins this is float32 4×4; NumPy (last wins) reads float64 2×4. Same 64 bytes.
    const twice = npy("{'descr': '<f4', 'shape': (4, 4), 'fortran_order': False, 'descr': '<f8', 'shape': (2, 4), }", 64);
    const unknown = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), 'extra': 1, }", 64);
    for (const [bytes, why] of [
      [twice, /twice/],
      [unknown, /unknown key/],
    ] as const) {
      const res = await grid.api('/api/shards', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(bytes) });
      expect(res.status).toBe(400);
      expect(ApiError.parse(await res.json()).error.message).toMatch(why);
    }
  });

  test('`npm run fuzz -- --help` prints the usage', () => {
    const r = runCli(['--help'], {}, 'coordinator/tools/fuzz/cli.ts');
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/usage: npm run fuzz/);
  });
});
