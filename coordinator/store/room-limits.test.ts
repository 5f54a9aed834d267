// What issue 20 added to the stores, on both dialects alike: jobs listed and counted by owner, and
// rooms counted by maker, marked used, removed when idle, and their members' recent credit.
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
  await rooms.join('AAAAAA', 'v_a', 200);
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
