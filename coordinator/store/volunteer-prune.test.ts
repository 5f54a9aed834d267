// Forgetting identities that never did anything, on both stores (SQLite and PostgreSQL): a sweep
// deletes exactly the idle rows with no result, ledger entry, credit or active lease that are not
// connected, oldest first and at most `limit` at a time; a suspension outlives the row; the
// volunteer list is bounded and the counts follow; a forgotten room member leaves its room.
import { describe, expect, test } from 'vitest';
import { useBothStores } from '../testing/fixtures.js';
import { PgStore } from './pg/store.js';
import { pgViews } from './pg/views.js';
import { SqliteRoomStore } from './sqlite/rooms.js';
import { SqliteStore } from './sqlite/store.js';
import type { Store } from './store.js';
import type { RoomStore } from './views.js';

/** The store's rooms, on the same database. */
async function roomsOf(store: Store): Promise<RoomStore> {
  if (store instanceof SqliteStore) return new SqliteRoomStore(store.connection());
  if (store instanceof PgStore) return (await pgViews(store.pool)).rooms;
  throw new Error('unknown store');
}

const both = useBothStores();
const HOUR = 3_600_000;
const NOW = 10 * HOUR;

const vid = (name: string) => `v_${name.padEnd(12, '0')}`;
const V = {
  idleOld: vid('idleold'),
  idle: vid('idle'),
  suspended: vid('suspended'),
  fresh: vid('fresh'),
  connected: vid('connected'),
  leased: vid('leased'),
  pending: vid('pending'),
  invalid: vid('invalid'),
  credited: vid('credited'),
};

/** Each kind of identity, all but `fresh` last seen hours before NOW; returns the unit ids used. */
async function populate(store: Store) {
  const seen: Record<string, number> = { [V.idleOld]: 1, [V.fresh]: NOW - 60_000 };
  for (const [i, v] of Object.values(V).entries()) await store.upsertVolunteer({ id: v, publicKey: `key-${i}`, name: `n${i}`, now: seen[v] ?? 2 * HOUR });
  const unit = { params: { m: 1, k: 1, n: 1 }, inputs: {}, outputBytes: 4, flops: 1000, tolerance: { atol: 0, rtol: 0 }, meta: {} };
  await store.createJob(
    { id: 'j_prune', kind: 'matmul', name: null, state: 'queued', replication: 1, meta: {}, createdAt: 1, finishedAt: null, error: null, resultSha: null, resultShape: [1, 1] },
    [0, 1, 2].map((idx) => ({ ...unit, id: `j_prune.${idx}`, jobId: 'j_prune', idx, kind: 'matmul', target: 4 })),
  );
  const lease = async (v: string) => (await store.leaseUnits({ volunteerId: v, now: 2 * HOUR, deadline: 1e15 }))[0];
  await lease(V.leased); // still out: an active lease
  for (const [v, state] of [[V.pending, 'pending'], [V.invalid, 'invalid'], [V.credited, 'pending']] as const) {
    const l = await lease(v);
    await store.addResult({ id: `r_${v}`, wuId: l.wu.id, leaseId: l.lease.id, volunteerId: v, sha256: '0'.repeat(64), state, receivedAt: 2 * HOUR, reason: null, data: new Uint8Array(4) });
  }
  await store.settle({ wuId: 'j_prune.0', canonicalResultId: `r_${V.credited}`, valid: [`r_${V.credited}`], invalid: [], credits: [{ volunteerId: V.credited, amount: 1000 }], now: 2 * HOUR });
  await store.putTrust({ volunteerId: V.suspended, validStreak: 0, strikes: 3, suspendedUntil: NOW + HOUR, verifiedAt: 0 });
}

async function story(store: Store) {
  await populate(store);
  const rooms = await roomsOf(store);
  await rooms.createRoom({ code: 'ROOM01', name: 'class', teacherKeyHash: '0'.repeat(64), paused: false, createdAt: 1, createdBy: null, lastActive: 1 });
  const cap = { maxMembers: 10, online: [] };
  await rooms.join('ROOM01', V.idle, 2 * HOUR, cap);
  await rooms.join('ROOM01', V.fresh, 2 * HOUR + 1, cap);
  const before = await store.countVolunteers();
  const prune = (limit: number) => store.pruneVolunteers({ now: NOW, idleMs: HOUR, connected: [V.connected], limit });
  const first = await prune(1); // the longest unseen first
  const afterFirst = (await store.listVolunteers()).map((v) => v.id);
  const rest = await prune(100);
  const again = await prune(100);
  const left = (await store.listVolunteers()).map((v) => v.id).sort();
  const membersBefore = (await rooms.members('ROOM01')).map((m) => [m.volunteerId, m.name]);
  const membershipsRemoved = await rooms.removeForgotten();
  const top = (await store.listVolunteers(2)).map((v) => [v.id, v.credit]);
  return {
    before,
    first,
    idleOldGoneFirst: !afterFirst.includes(V.idleOld) && afterFirst.includes(V.idle),
    rest,
    again,
    left,
    top,
    after: await store.countVolunteers(),
    connectedSeen: (await store.getVolunteer(V.connected))?.lastSeen,
    suspended: await store.getTrust(V.suspended),
    membersBefore,
    membershipsRemoved,
    members: (await rooms.members('ROOM01')).map((m) => [m.volunteerId, m.name]),
  };
}

describe.each(Object.entries(both.open))('%s store', (_name, open) => {
  test('a sweep deletes exactly the idle identities that never did anything, keeps the rest and every trust record', async () => {
    const store = await open();
    try {
      const r = await story(store);
      expect(r.before).toEqual({ total: 9, unproven: 8 });
      expect(r.first).toBe(1);
      expect(r.idleOldGoneFirst).toBe(true);
      expect(r.rest).toBe(2); // idle and suspended
      expect(r.again).toBe(0);
      expect(r.left).toEqual([V.fresh, V.connected, V.leased, V.pending, V.invalid, V.credited].sort());
      expect(r.top).toHaveLength(2); // the limit, best credited first
      expect(r.top[0]).toEqual([V.credited, 1000]);
      expect(r.top[1][1]).toBe(0);
      expect(r.after).toEqual({ total: 6, unproven: 5 });
      // The connected identity was marked seen by the sweep (another coordinator's sweep now finds it recent).
      expect(r.connectedSeen).toBe(NOW);
      // A room member forgotten this way is listed without its name until its rooms let go of it.
      expect(r.membersBefore).toEqual([[V.idle, null], [V.fresh, 'n3']]);
      expect(r.membershipsRemoved).toBe(1);
      expect(r.members).toEqual([[V.fresh, 'n3']]);
      expect(r.suspended).toMatchObject({ strikes: 3, suspendedUntil: NOW + HOUR });
      // Coming back makes a fresh row; the suspension is still on record.
      await store.upsertVolunteer({ id: V.suspended, publicKey: 'key-2', name: null, now: NOW });
      expect((await store.getTrust(V.suspended)).suspendedUntil).toBe(NOW + HOUR);
    } finally {
      await store.close();
    }
  });
});
