// Closing an iterative job's round (Store.advanceRound) on both dialects: the round's stragglers are
// dropped (leases ended, pending results invalid, out of the job's total), the next round's units
// are added after the last, the meta replaced; a second close of the same round changes nothing;
// the last round's close finishes the job; a closed round's result taken back re-opens nothing.
// SQLite and PostgreSQL end in the same state.
import { expect, test } from 'vitest';
import { useBothStores } from '../testing/fixtures.js';
import type { NewWorkUnit, Store } from './store.js';

const stores = useBothStores();

const unit = (idx: number, round: number): NewWorkUnit => ({
  id: `j_iter.${idx}`,
  jobId: 'j_iter',
  idx,
  kind: 'train',
  params: { round },
  inputs: {},
  outputBytes: 4,
  flops: 10,
  tolerance: { atol: 0, rtol: 0 },
  meta: { round },
});

async function story(store: Store) {
  const vs = ['v_aaaaaaaaaaaa', 'v_bbbbbbbbbbbb', 'v_cccccccccccc'];
  for (const [i, v] of vs.entries()) await store.upsertVolunteer({ id: v, publicKey: `key-${i}`, name: null, now: 1 });
  await store.createJob(
    { id: 'j_iter', kind: 'train', name: null, state: 'queued', replication: 1, meta: { round: 0 }, createdAt: 1, finishedAt: null, error: null, resultSha: null, resultShape: [1] },
    [0, 1, 2].map((i) => unit(i, 0)),
  );
  // Unit 0 settles; unit 1 has a pending result; unit 2 is leased and never returns.
  const leased = [await store.leaseUnits({ volunteerId: vs[0], now: 2, deadline: 1e15 }), await store.leaseUnits({ volunteerId: vs[1], now: 3, deadline: 1e15 }), await store.leaseUnits({ volunteerId: vs[2], now: 4, deadline: 1e15 })].map((l) => l[0]);
  const data = new Uint8Array(4);
  for (const i of [0, 1]) {
    await store.addResult({ id: `r_${i}`, wuId: leased[i].wu.id, leaseId: leased[i].lease.id, volunteerId: vs[i], sha256: '0'.repeat(64), state: 'pending', receivedAt: 5, reason: null, data });
  }
  await store.settle({ wuId: leased[0].wu.id, canonicalResultId: 'r_0', valid: ['r_0'], invalid: [], credits: [{ volunteerId: vs[0], amount: 10 }], now: 6 });
  const range = (await store.unitRange('j_iter', 0, 3, true)).map((u) => [u.wu.id, u.wu.state, u.data ? u.data.length : null, u.results]);
  const open = [leased[1].wu.id, leased[2].wu.id];
  const first = await store.advanceRound({ jobId: 'j_iter', round: 0, meta: { round: 1 }, drop: open, units: [3, 4].map((i) => unit(i, 1)), result: null, now: 7 });
  const again = await store.advanceRound({ jobId: 'j_iter', round: 0, meta: { round: 1 }, drop: open, units: [3, 4].map((i) => unit(i, 1)), result: null, now: 8 });
  const afterFirst = await snapshot(store, leased.map((l) => l.lease.id));
  // The dropped unit's lease holder cannot lease it again; the new round's units are leasable.
  const next = (await store.leaseUnits({ volunteerId: vs[2], now: 9, deadline: 1e15, count: 5 })).map((l) => l.wu.id);
  const last = await store.advanceRound({ jobId: 'j_iter', round: 1, meta: { round: 2 }, drop: ['j_iter.3', 'j_iter.4'], units: [], result: { sha256: 'a'.repeat(64) }, now: 10 });
  const job = await store.getJob('j_iter');
  // A result of a closed round taken back: the credit is reversed, the unit (and the job) stay settled.
  const revoked = await store.revokeResults({ resultIds: ['r_0'], reason: 'its host later failed a check', now: 11 });
  const afterRevoke = { unit: (await store.getWorkUnit('j_iter.0'))?.state, job: (await store.getJob('j_iter'))?.state, credits: revoked.entries.map((r) => [r.entry.volunteerId, r.entry.amount]) };
  return { range, first, again, afterFirst, next, last, job: { state: job?.state, resultSha: job?.resultSha, finishedAt: job?.finishedAt, meta: job?.meta, total: job?.total, done: job?.done }, afterRevoke };
}

async function snapshot(store: Store, leaseIds: string[]) {
  const job = await store.getJob('j_iter');
  return {
    job: { meta: job?.meta, total: job?.total, done: job?.done },
    units: await Promise.all([0, 1, 2, 3, 4].map(async (i) => (await store.getWorkUnit(`j_iter.${i}`))?.state ?? null)),
    leases: await Promise.all(leaseIds.map(async (id) => (await store.getLease(id))?.state)),
    live: [(await store.liveResults('j_iter.1')).length],
  };
}

test('a round closes once, on SQLite and PostgreSQL alike', async () => {
  const lite = await stores.open.SQLite();
  const post = await stores.open.PostgreSQL();
  try {
    const [a, b] = [await story(lite), await story(post)];
    expect(a.range).toEqual([
      ['j_iter.0', 'done', 4, 1],
      ['j_iter.1', 'open', null, 0],
      ['j_iter.2', 'open', null, 0],
    ]);
    expect([a.first, a.again, a.last]).toEqual([true, false, true]);
    expect(a.afterFirst).toEqual({
      job: { meta: { round: 1 }, total: 3, done: 1 }, // 3 planned − 2 dropped + 2 new
      units: ['done', 'dropped', 'dropped', 'open', 'open'],
      leases: ['returned', 'returned', 'abandoned'],
      live: [0], // the dropped unit's pending result is invalid
    });
    expect(a.next).toEqual(['j_iter.3', 'j_iter.4']);
    expect(a.job).toEqual({ state: 'done', resultSha: 'a'.repeat(64), finishedAt: 10, meta: { round: 2 }, total: 1, done: 1 });
    expect(a.afterRevoke).toEqual({ unit: 'done', job: 'done', credits: [['v_aaaaaaaaaaaa', -10]] });
    expect(b).toEqual(a);
  } finally {
    await lite.close();
    await post.close();
  }
}, 60_000);

/** Start-up recovery finds every unfinished iterative job, however many newer jobs there are. */
async function activeStory(store: Store) {
  const job = (id: string, kind: string, createdAt: number) => ({ id, kind, name: null, state: 'queued' as const, replication: 1, meta: {}, createdAt, finishedAt: null, error: null, resultSha: null, resultShape: [1] });
  const u = (jobId: string, kind: string): NewWorkUnit => ({ ...unit(0, 0), id: `${jobId}.0`, jobId, kind });
  await store.createJob(job('j_old_train', 'train', 1), [u('j_old_train', 'train')]);
  await store.createJob(job('j_done_train', 'train', 2), [u('j_done_train', 'train')]);
  await store.failJob('j_done_train', 'cancelled', 3);
  // Newer finished-or-not jobs of other kinds in between (the old start-up scan read only the newest 500 of all).
  for (let i = 0; i < 40; i++) await store.createJob(job(`j_mm${i}`, 'matmul', 10 + i), [u(`j_mm${i}`, 'matmul')]);
  await store.createJob(job('j_new_train', 'train', 1000), [u('j_new_train', 'train')]);
  return { train: (await store.activeJobsOfKinds(['train'])).map((j) => j.id), none: (await store.activeJobsOfKinds([])).length };
}

test('every queued or running job of the iterative kinds is found at start-up, oldest first, on both dialects', async () => {
  const lite = await stores.open.SQLite();
  const post = await stores.open.PostgreSQL();
  try {
    const [a, b] = [await activeStory(lite), await activeStory(post)];
    expect(a).toEqual({ train: ['j_old_train', 'j_new_train'], none: 0 });
    expect(b).toEqual(a);
  } finally {
    await lite.close();
    await post.close();
  }
}, 60_000);
