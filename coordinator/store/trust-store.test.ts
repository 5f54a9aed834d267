// The trust methods of both stores (SQLite and PostgreSQL): trust records round-trip, an
// unreplicated valid result is found, and revoking it re-opens its unit, puts its finished job
// back to running and reverses its credit with a sealed negative ledger entry; the volunteer list
// counts the result as pending, valid, then invalid.
import { describe, expect, test } from 'vitest';
import { verifyChain } from '../ledger/chain.js';
import { readLedger } from '../ledger/export.js';
import { useBothStores } from '../testing/fixtures.js';

const both = useBothStores();
const stores = Object.entries(both.open);

describe.each(stores)('%s store', (_name, open) => {
  test('trust round-trips; revoking an unreplicated result re-opens its unit and reverses its credit', async () => {
    const store = await open();
    try {
      const v = `v_${Math.random().toString(16).slice(2, 14).padEnd(12, '0')}`;
      expect(await store.getTrust(v)).toEqual({ volunteerId: v, validStreak: 0, strikes: 0, suspendedUntil: 0, verifiedAt: 0 });
      await store.putTrust({ volunteerId: v, validStreak: 7, strikes: 1, suspendedUntil: 5, verifiedAt: 3 });
      expect(await store.getTrust(v)).toEqual({ volunteerId: v, validStreak: 7, strikes: 1, suspendedUntil: 5, verifiedAt: 3 });

      await store.upsertVolunteer({ id: v, publicKey: `k${v}`, name: null, now: 1 });
      const jobId = `j_${v}`;
      const unit = { params: { m: 1, k: 1, n: 1 }, inputs: {}, outputBytes: 4, flops: 2, tolerance: { atol: 0, rtol: 0 }, meta: {} };
      await store.createJob(
        { id: jobId, kind: 'matmul', name: null, state: 'queued', replication: 2, meta: {}, createdAt: 1, finishedAt: null, error: null, resultSha: null, resultShape: [1, 1] },
        [{ ...unit, id: `${jobId}.0`, jobId, idx: 0, kind: 'matmul', target: 1 }],
      );
      const leased = (await store.leaseUnits({ volunteerId: v, now: 10, deadline: 1e15 }))[0];
      expect(leased.wu.target).toBe(1);
      const resultId = `r_${v}`;
      const counts = async () => {
        const row = (await store.listVolunteers()).find((x) => x.id === v)!;
        return { valid: row.valid, invalid: row.invalid, pending: row.pending };
      };
      expect(await counts()).toEqual({ valid: 0, invalid: 0, pending: 0 });
      await store.addResult({ id: resultId, wuId: leased.wu.id, leaseId: leased.lease.id, volunteerId: v, sha256: '0'.repeat(64), state: 'pending', receivedAt: 20, reason: null, data: new Uint8Array(4) });
      expect(await counts()).toEqual({ valid: 0, invalid: 0, pending: 1 });
      const outcome = await store.settle({ wuId: leased.wu.id, canonicalResultId: resultId, valid: [resultId], invalid: [], credits: [{ volunteerId: v, amount: 2 }], now: 21 });
      expect(outcome.jobComplete).toBe(true);
      await store.setJobResult(jobId, '1'.repeat(64), 22);
      expect(await counts()).toEqual({ valid: 1, invalid: 0, pending: 0 });

      expect(await store.unreplicatedResults(v, 20)).toEqual([]); // received at 20, not after
      expect(await store.unreplicatedResults(v, 19)).toEqual([{ id: resultId, wuId: leased.wu.id }]);
      const { entries } = await store.revokeResults({ resultIds: [resultId], reason: 'test', now: 30 });
      expect(entries.map(({ entry: e }) => [e.volunteerId, e.amount])).toEqual([[v, -2]]);
      expect(await counts()).toEqual({ valid: 0, invalid: 1, pending: 0 });
      expect(entries[0].seal).toMatchObject({ firstSeq: entries[0].entry.seq, lastSeq: entries[0].entry.seq });
      expect((await store.getVolunteer(v))!.credit).toBe(0);
      expect(await store.getWorkUnit(leased.wu.id)).toMatchObject({ state: 'open', canonicalResultId: null, target: 2 });
      expect(await store.getJob(jobId)).toMatchObject({ state: 'running', done: 0, resultSha: null });
      expect(await store.liveResults(leased.wu.id)).toEqual([]);
      // Revoking again changes nothing.
      expect((await store.revokeResults({ resultIds: [resultId], reason: 'test', now: 31 })).entries).toEqual([]);
      const chain = verifyChain(await readLedger(store), both.publicKey);
      expect(chain.ok).toBe(true);
      expect(chain.credit.get(v)).toBe(0);
    } finally {
      await store.close();
    }
  });

  test('rejecting a quorum the audit proved wrong: its pending results become invalid, the unit stays open and wants replicas again', async () => {
    const store = await open();
    try {
      const tag = Math.random().toString(16).slice(2, 14).padEnd(12, '0');
      const [a, b] = [`v_a${tag}`, `v_b${tag}`];
      for (const v of [a, b]) await store.upsertVolunteer({ id: v, publicKey: `k${v}`, name: null, now: 1 });
      const jobId = `j_${tag}`;
      const unit = { params: { m: 1, k: 1, n: 1 }, inputs: {}, outputBytes: 4, flops: 2, tolerance: { atol: 0, rtol: 0 }, meta: {} };
      await store.createJob(
        { id: jobId, kind: 'matmul', name: null, state: 'queued', replication: 2, meta: {}, createdAt: 1, finishedAt: null, error: null, resultSha: null, resultShape: [1, 1] },
        [{ ...unit, id: `${jobId}.0`, jobId, idx: 0, kind: 'matmul', target: 2 }],
      );
      // The store may hold other tests' units: only this job's count.
      const leasable = async (v: string, now: number) => (await store.leaseUnits({ volunteerId: v, now, deadline: 1e15, count: 10 })).filter((l) => l.wu.jobId === jobId);
      const ids: string[] = [];
      for (const v of [a, b]) {
        const [leased] = await leasable(v, 10);
        const id = `r_${v}`;
        ids.push(id);
        await store.addResult({ id, wuId: leased.wu.id, leaseId: leased.lease.id, volunteerId: v, sha256: '0'.repeat(64), state: 'pending', receivedAt: 20, reason: null, data: new Uint8Array(4) });
      }
      // Both replicas are in: nobody else may lease the unit.
      expect(await leasable(`v_c${tag}`, 30)).toEqual([]);
      const version = store.workVersion;
      expect(await store.rejectResults(`${jobId}.0`, [...ids, 'r_nope'], 'audit')).toBe(2);
      expect(store.workVersion).toBeGreaterThan(version);
      expect(await store.liveResults(`${jobId}.0`)).toEqual([]);
      expect(await store.getWorkUnit(`${jobId}.0`)).toMatchObject({ state: 'open', canonicalResultId: null });
      const counts = (await store.listVolunteers()).filter((x) => x.id === a || x.id === b).map((x) => [x.pending, x.invalid]);
      expect(counts).toEqual([
        [0, 1],
        [0, 1],
      ]);
      // Two fresh identities may now compute it; rejecting again changes nothing.
      expect(await leasable(`v_d${tag}`, 31)).toHaveLength(1);
      expect(await leasable(`v_e${tag}`, 31)).toHaveLength(1);
      expect(await leasable(`v_f${tag}`, 31)).toEqual([]);
      expect(await store.rejectResults(`${jobId}.0`, ids, 'audit')).toBe(0);
      expect((await store.getVolunteer(a))!.credit).toBe(0);
    } finally {
      await store.close();
    }
  });

  test('quorums among colluders: found, and revoked whole — canonical and co-backer, credit reversed, the unit re-opened', async () => {
    const store = await open();
    try {
      const tag = Math.random().toString(16).slice(2, 14).padEnd(12, '0');
      const [a, b, c] = ['a', 'b', 'c'].map((x) => `v_${x}${tag}`);
      for (const v of [a, b, c]) await store.upsertVolunteer({ id: v, publicKey: `k${v}`, name: null, now: 1 });
      const jobId = `j_${tag}`;
      const unit = { params: { m: 1, k: 1, n: 1 }, inputs: {}, outputBytes: 4, flops: 2, tolerance: { atol: 0, rtol: 0 }, meta: {} };
      await store.createJob(
        { id: jobId, kind: 'matmul', name: null, state: 'queued', replication: 2, meta: {}, createdAt: 1, finishedAt: null, error: null, resultSha: null, resultShape: [1, 2] },
        [0, 1].map((idx) => ({ ...unit, id: `${jobId}.${idx}`, jobId, idx, kind: 'matmul', target: 2 })),
      );
      // Unit 0 settled by a and b alone; unit 1 by a and c.
      const leases = new Map<string, string>();
      for (const [v, idx] of [[a, 0], [a, 1], [b, 0], [c, 1]] as const) {
        const wuId = `${jobId}.${idx}`;
        const [l] = await store.leaseUnits({ volunteerId: v, now: 10, deadline: 1e15, choose: (cands) => cands.find((u) => u.id === wuId) ?? cands[0] });
        expect(l.wu.id).toBe(wuId);
        leases.set(`${v} ${wuId}`, l.lease.id);
      }
      const settle = async (idx: number, vs: string[]) => {
        const wuId = `${jobId}.${idx}`;
        const ids = vs.map((v) => `r_${idx}${v}`);
        for (const [i, v] of vs.entries()) {
          await store.addResult({ id: ids[i], wuId, leaseId: leases.get(`${v} ${wuId}`)!, volunteerId: v, sha256: '0'.repeat(64), state: 'pending', receivedAt: 20, reason: null, data: new Uint8Array(4) });
        }
        await store.settle({ wuId, canonicalResultId: ids[0], valid: ids, invalid: [], credits: vs.map((volunteerId) => ({ volunteerId, amount: 2 })), now: 21 });
        return ids;
      };
      const ab = await settle(0, [a, b]);
      await settle(1, [a, c]);
      const found = await store.quorumsAmong([a, b]);
      expect(found.map((r) => r.id).sort()).toEqual([...ab].sort());
      const { entries } = await store.revokeResults({ resultIds: found.map((r) => r.id), reason: 'colluded', now: 30 });
      expect(entries.map(({ entry: e }) => [e.volunteerId, e.amount]).sort()).toEqual([
        [a, -2],
        [b, -2],
      ]);
      expect((await store.getVolunteer(a))!.credit).toBe(2); // unit 1, confirmed by c, stands
      expect((await store.getVolunteer(b))!.credit).toBe(0);
      expect(await store.getWorkUnit(`${jobId}.0`)).toMatchObject({ state: 'open', canonicalResultId: null });
      expect(await store.getWorkUnit(`${jobId}.1`)).toMatchObject({ state: 'done' });
      expect(await store.quorumsAmong([a, b])).toEqual([]);
      const chain = verifyChain(await readLedger(store), both.publicKey);
      expect(chain.ok).toBe(true);
    } finally {
      await store.close();
    }
  });
});
