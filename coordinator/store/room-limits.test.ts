// What issue 20 added to the stores, on both dialects alike: jobs listed and counted by owner, and
// rooms counted by maker, marked used, removed when idle, and their members' recent credit; and a
// room's cap, which only members online or credited hold places under.
import pg from 'pg';
import { expect, test } from 'vitest';
import { useBothStores } from '../testing/fixtures.js';
import { pgViews } from './pg/views.js';
import { PgStore } from './pg/store.js';
import { SqliteRoomStore } from './sqlite/rooms.js';
import { SqliteStore } from './sqlite/store.js';
import type { Store } from './store.js';
import type { RoomStore } from './views.js';

const both = useBothStores();

const job = (id: string, owner: string | null, createdAt: number) => ({
  id,
  kind: 'matmul',
  name: null,
  state: 'queued' as const,
  replication: 1,
  meta: {},
  createdAt,
  finishedAt: null,
  error: null,
  resultSha: null,
  resultShape: [1, 1],
  owner,
});
const unit = (jobId: string) => ({ params: { m: 1, k: 1, n: 1 }, inputs: {}, outputBytes: 4, flops: 2, tolerance: { atol: 0, rtol: 0 }, meta: {}, id: `${jobId}.0`, jobId, idx: 0, kind: 'matmul' });

async function story(store: Store, rooms: RoomStore) {
  await store.createJob(job('j_a', 'tk_alice', 1), [unit('j_a')]);
  await store.createJob(job('j_b', 'tk_bob', 2), [unit('j_b')]);
  await store.createJob(job('j_r1', 'room:AAAAAA', 3), [unit('j_r1')]);
  await store.createJob(job('j_r2', 'room:BBBBBB', 4), [unit('j_r2')]);
  await store.createJob(job('j_old', null, 0), [unit('j_old')]);
  await store.failJob('j_r2', 'cancelled', 5);
  const out: Record<string, unknown> = {
    all: (await store.listJobs()).map((j) => `${j.id}:${j.owner}`),
    alice: (await store.listJobs('tk_alice')).map((j) => j.id),
    latestOfRoom: (await store.listJobs('room:AAAAAA', 1)).map((j) => j.id),
    activeDemos: await store.countActiveJobs('room:'),
  };
  const room = (code: string, createdBy: string | null, t: number) => rooms.createRoom({ code, name: code, teacherKeyHash: 'h', paused: false, createdAt: t, createdBy, lastActive: t });
  await room('AAAAAA', '10.0.0.1', 100);
  await room('BBBBBB', '10.0.0.1', 100);
  await room('CCCCCC', null, 100);
  out.counts = [await rooms.countRooms(), await rooms.countRooms('10.0.0.1'), await rooms.countRooms('10.0.0.2')];
  await store.upsertVolunteer({ id: 'v_a', publicKey: 'k_a', name: 'Ada', now: 1 });
  await rooms.join('AAAAAA', 'v_a', 200, { maxMembers: 500, online: [] });
  await rooms.touch(['BBBBBB'], 150);
  out.memberCount = await rooms.memberCount('AAAAAA');
  out.members = (await rooms.members('AAAAAA', 0)).map((m) => ({ ...m }));
  out.removed = await rooms.removeIdle(160); // CCCCCC (last used at 100) and BBBBBB (150) go; AAAAAA (joined at 200) stays
  out.left = (await rooms.listRooms()).map((r) => `${r.code}:${r.lastActive}`).sort();
  return out;
}

test('jobs by owner and rooms by maker and use: the same on SQLite and PostgreSQL', async () => {
  const lite = new SqliteStore(both.sqliteFile('rooms.sqlite'), { sealer: both.sealer });
  const liteRooms = new SqliteRoomStore(lite.connection());
  const post = await PgStore.connect(both.pgUrl, 2, both.sealer);
  const pool = new pg.Pool({ connectionString: both.pgUrl, max: 2 });
  try {
    const a = await story(lite, liteRooms);
    const b = await story(post, (await pgViews(pool)).rooms);
    expect(a).toEqual(b);
    expect(a).toMatchObject({
      alice: ['j_a'],
      latestOfRoom: ['j_r1'],
      activeDemos: 1,
      counts: [3, 2, 0],
      memberCount: 1,
      removed: 2,
      left: ['AAAAAA:200'],
    });
    expect(a.all).toEqual(['j_r2:room:BBBBBB', 'j_r1:room:AAAAAA', 'j_b:tk_bob', 'j_a:tk_alice', 'j_old:null']);
  } finally {
    await lite.close();
    await post.close();
    await pool.end();
  }
}, 60_000);

/**
 * A room of cap 3 filled by a credited member, an online one and throwaways (identities that joined
 * and left without computing, one of them since forgotten): who gets in, and whom each join displaces.
 */
async function capStory(store: Store, rooms: RoomStore) {
  await rooms.createRoom({ code: 'CAPCAP', name: 'class', teacherKeyHash: 'h', paused: false, createdAt: 1, createdBy: null, lastActive: 1 });
  for (const id of ['c_credited', 'c_online', 'c_throw1', 'c_student', 'c_student2', 'c_late']) {
    await store.upsertVolunteer({ id, publicKey: `key_${id}`, name: id, now: 1 });
  }
  // c_credited earns credit for one unit (as the validator settles it).
  await store.createJob(job('j_cap', null, 1), [unit('j_cap')]);
  const [lease] = await store.leaseUnits({ volunteerId: 'c_credited', now: 1, deadline: 1e15 });
  await store.addResult({ id: 'r_cap', wuId: lease.wu.id, leaseId: lease.lease.id, volunteerId: 'c_credited', sha256: '0'.repeat(64), state: 'pending', receivedAt: 2, reason: null, data: new Uint8Array(4) });
  await store.settle({ wuId: lease.wu.id, canonicalResultId: 'r_cap', valid: ['r_cap'], invalid: [], credits: [{ volunteerId: 'c_credited', amount: 100 }], now: 2 });

  const members = async () => (await rooms.members('CAPCAP')).map((m) => m.volunteerId);
  const join = (id: string, t: number, online: string[]) => rooms.join('CAPCAP', id, t, { maxMembers: 3, online });
  const out: Record<string, unknown> = {};
  await join('c_credited', 10, []);
  await join('c_online', 11, []);
  await join('c_throw1', 12, ['c_online']);
  out.full = await members();
  // A real student: the throwaway (offline, no credit) makes room.
  out.student = await join('c_student', 20, ['c_online']);
  out.afterStudent = await members();
  // A member already in comes back into a full room without displacing anyone.
  out.rejoin = await join('c_online', 21, ['c_online', 'c_student']);
  // Every place held (credited, online, online): the next identity is refused.
  out.refused = await join('c_late', 22, ['c_online', 'c_student']);
  // The student went offline without credit: the newest member holding no place makes room.
  out.second = await join('c_student2', 23, ['c_online']);
  out.afterSecond = await members();
  // A member whose identity the store no longer holds (forgotten by the sweep) holds no place either.
  out.ghost = await rooms.join('CAPCAP', 'c_ghost', 24, { maxMembers: 4, online: [] });
  out.ghostFills = await rooms.join('CAPCAP', 'c_late', 25, { maxMembers: 4, online: ['c_online', 'c_student2'] });
  out.afterGhost = await members();
  out.count = await rooms.memberCount('CAPCAP');
  return out;
}

test('a full room admits a newcomer in place of a member that is neither online nor credited, on SQLite and PostgreSQL alike', async () => {
  const lite = new SqliteStore(both.sqliteFile('cap.sqlite'), { sealer: both.sealer });
  const post = await PgStore.connect(both.pgUrl, 2, both.sealer);
  const pool = new pg.Pool({ connectionString: both.pgUrl, max: 2 });
  try {
    const a = await capStory(lite, new SqliteRoomStore(lite.connection()));
    const b = await capStory(post, (await pgViews(pool)).rooms);
    expect(a).toEqual(b);
    expect(a).toEqual({
      full: ['c_credited', 'c_online', 'c_throw1'],
      student: 'joined',
      afterStudent: ['c_credited', 'c_online', 'c_student'],
      rejoin: 'joined',
      refused: 'full',
      second: 'joined',
      afterSecond: ['c_credited', 'c_online', 'c_student2'],
      ghost: 'joined',
      ghostFills: 'joined',
      afterGhost: ['c_credited', 'c_online', 'c_student2', 'c_late'],
      count: 4,
    });
  } finally {
    await lite.close();
    await post.close();
    await pool.end();
  }
}, 60_000);
