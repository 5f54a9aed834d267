// How the stores seal the ledger: SQLite seals each group commit once (every settlement of one
// event-loop turn under one signature), never sealing the entries of a write that rolled back,
// whether its writer runs in the store's process or on its own thread (and counts a batch's
// settled units and credits with one update per job and per volunteer);
// PostgreSQL seals each settling transaction. Old data directories (one signature per entry, no
// seals) open, still verify, and go on with sealed entries. Real SQLite files, a real PostgreSQL.
import Database from 'better-sqlite3';
import { sign } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { auditLedger } from './audit.js';
import { verifySignature } from '../access/keys.js';
import { makeEntry, sha256, verifyChain } from './chain.js';
import { readLedger, storedReceipts } from './export.js';
import { PgStore } from '../store/pg/store.js';
import { receiptProblem } from '../protocol/receipt-check.js';
import { SqliteStore, type SqliteStoreOptions } from '../store/sqlite/store.js';
import type { Settlement, Store, WorkUnitRecord } from '../store/store.js';
import { useBothStores } from '../testing/fixtures.js';

const both = useBothStores();
const { privateKey, publicKey, sealer } = both;
const receiptCrypto = { sha256, verify: (m: Uint8Array, s: string) => verifySignature(publicKey, m, s) };

let n = 0;
/** A replication-1 job of `units` one-element units; returns its id. */
async function createJob(store: Store, units: number): Promise<string> {
  const jobId = `j_${++n}_${Date.now()}`;
  const unit = { params: { m: 1, k: 1, n: 1 }, inputs: {}, outputBytes: 4, flops: 2, tolerance: { atol: 0, rtol: 0 }, meta: {} };
  await store.createJob(
    { id: jobId, kind: 'matmul', name: null, state: 'queued', replication: 1, meta: {}, createdAt: 1, finishedAt: null, error: null, resultSha: null, resultShape: [1, units] },
    Array.from({ length: units }, (_, i) => ({ ...unit, id: `${jobId}.${i}`, jobId, idx: i, kind: 'matmul' })),
  );
  return jobId;
}

/** A job of `units` units, each leased to and answered by its own volunteer: settlements ready to commit. */
async function readySettlements(store: Store, units: number): Promise<Settlement[]> {
  const jobId = await createJob(store, units);
  const out: Settlement[] = [];
  for (let i = 0; i < units; i++) {
    const v = `v_${jobId}_${i}`;
    await store.upsertVolunteer({ id: v, publicKey: `k_${v}`, name: null, now: 1 });
    const { lease, wu } = (await store.leaseUnits({ volunteerId: v, now: 10, deadline: 1e15 }))[0];
    const id = `r_${v}`;
    await store.addResult({ id, wuId: wu.id, leaseId: lease.id, volunteerId: v, sha256: '0'.repeat(64), state: 'pending', receivedAt: 20, reason: null, data: new Uint8Array(4) });
    // Two credits per unit, so one settlement appends several entries.
    out.push({ wuId: wu.id, canonicalResultId: id, valid: [id], invalid: [], credits: [{ volunteerId: v, amount: 2 }, { volunteerId: v, amount: 3 }], now: 30 });
  }
  return out;
}

async function expectVerifies(store: Store, entries: number) {
  const report = verifyChain(await readLedger(store), publicKey);
  expect(report.firstBad).toBeUndefined();
  expect(report.checked).toBe(entries);
}

// The same batches whether the writer runs in the store's process or on a thread of its own (the coordinator's).
const writers: [string, SqliteStoreOptions, SqliteStoreOptions][] = [
  ['in process', { sealer }, {}],
  ['on its writer thread', { sealKey: privateKey, writerThread: true }, { writerThread: true }],
];

describe.each(writers)('SQLite group commit, writer %s', (mode, keyed, keyless) => {
  const file = (name: string) => both.sqliteFile(`${name}-${mode.replace(/\W/g, '')}.sqlite`);

  test('settlements of one event-loop turn share one seal, and each gets a receipt that verifies', async () => {
    const store = new SqliteStore(file('turn'), keyed);
    try {
      const ready = await readySettlements(store, 6);
      const outcomes = await Promise.all(ready.map((s) => store.settle(s))); // all asked for in one turn
      const seals = await store.ledgerSeals(0, 100);
      expect(seals).toEqual([expect.objectContaining({ firstSeq: 1, lastSeq: 12 })]);
      const receipts = outcomes.flatMap((o) => o.entries);
      expect(receipts.map((r) => r.entry.seq).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      for (const r of receipts) {
        expect(r.seal).toEqual(seals[0]);
        expect(await receiptProblem(r, receiptCrypto)).toBeNull();
      }
      // Rebuilt later from the database, the receipts are the same.
      expect(await storedReceipts(store, receipts.map((r) => r.entry))).toEqual(receipts);
      await expectVerifies(store, 12);

      // The next turn's settlements get the next seal.
      const more = await readySettlements(store, 2);
      await Promise.all(more.map((s) => store.settle(s)));
      expect(await store.ledgerSeals(0, 100)).toEqual([seals[0], expect.objectContaining({ firstSeq: 13, lastSeq: 16 })]);
      await expectVerifies(store, 16);
    } finally {
      await store.close();
    }
  });

  test('a write that fails after appending entries rolls them back, unsealed, while the others in its batch commit', async () => {
    const store = new SqliteStore(file('failing'), keyed);
    try {
      const [a, bad, c] = await readySettlements(store, 3);
      // Its second credit names no volunteer: the ledger refuses the row after the first one went in.
      const broken = { ...bad, credits: [bad.credits[0], { volunteerId: null as unknown as string, amount: 1 }] };
      const results = await Promise.allSettled([store.settle(a), store.settle(broken), store.settle(c)]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      const { entries, seals } = await readLedger(store);
      expect(entries.map((e) => [e.seq, e.wuId])).toEqual([
        [1, a.wuId],
        [2, a.wuId],
        [3, c.wuId],
        [4, c.wuId],
      ]);
      expect(seals).toEqual([expect.objectContaining({ firstSeq: 1, lastSeq: 4 })]);
      expect((await store.getWorkUnit(bad.wuId))!.state).toBe('open'); // the failed settlement left nothing behind
      await expectVerifies(store, 4);
      expect((await auditLedger(store, publicKey)).ok).toBe(true);
    } finally {
      await store.close();
    }
  });

  test('a store opened without the coordinator key refuses to append, and its other writes still commit', async () => {
    const path = file('keyless');
    const withKey = new SqliteStore(path, keyed);
    const [s] = await readySettlements(withKey, 1);
    await withKey.close();
    const store = new SqliteStore(path, keyless);
    try {
      const [settled, meta] = await Promise.allSettled([store.settle(s), store.setMeta('x', 'y')]);
      expect(settled).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: expect.stringMatching(/without the coordinator key/) }) });
      expect(meta.status).toBe('fulfilled');
      expect(await store.getMeta('x')).toBe('y');
      expect(await store.ledgerHead()).toBeNull();
    } finally {
      await store.close();
    }
  });

  test('units of one job settled in one turn: the job counts them all, only the last completes it, credits carry the balance after the commit', async () => {
    const store = new SqliteStore(file('counts'), keyed);
    try {
      const jobId = await createJob(store, 3);
      const v = `v_${jobId}`;
      await store.upsertVolunteer({ id: v, publicKey: `k_${v}`, name: null, now: 1 });
      const leased = await store.leaseUnits({ volunteerId: v, now: 10, deadline: 1e15, count: 3 });
      expect(leased.map((l) => l.wu.idx)).toEqual([0, 1, 2]);
      const sole = (l: (typeof leased)[number], amount: number) =>
        store.addSoleResult({ id: `r_${l.wu.id}`, wuId: l.wu.id, leaseId: l.lease.id, volunteerId: v, sha256: '0'.repeat(64), state: 'pending', receivedAt: 20, reason: null, data: new Uint8Array(4) }, { amount, now: 30 });
      const added = await Promise.all(leased.map((l, i) => sole(l, i + 1))); // one turn: one batch
      expect(added.map((a) => a?.outcome?.jobComplete)).toEqual([false, false, true]);
      expect(added.map((a) => a?.outcome?.balances)).toEqual([{ [v]: 6 }, { [v]: 6 }, { [v]: 6 }]);
      expect(added.map((a) => a?.outcome?.entries.map((r) => r.entry.amount))).toEqual([[1], [2], [3]]);
      expect(await store.getJob(jobId)).toMatchObject({ done: 3, total: 3, state: 'running' });
      expect((await store.getVolunteer(v))!.credit).toBe(6);
      expect(await store.getLease(leased[0].lease.id)).toMatchObject({ state: 'returned' });
      await expectVerifies(store, 3);
      // The same result again is refused and credits nothing.
      expect(await sole(leased[0], 5)).toBeNull();
      expect((await store.getVolunteer(v))!.credit).toBe(6);
    } finally {
      await store.close();
    }
  });

  test('a chosen unit another worker leased first is replaced by the next one in the queue', async () => {
    const store = new SqliteStore(file('chosen'), keyed);
    try {
      await createJob(store, 4);
      const last = (candidates: WorkUnitRecord[]) => candidates[candidates.length - 1];
      // Both pick the last unit among the same committed candidates, in the same turn.
      const [a, b] = await Promise.all(['v_a', 'v_b'].map((volunteerId) => store.leaseUnits({ volunteerId, now: 10, deadline: 1e15, choose: last })));
      expect(a.map((l) => l.wu.idx)).toEqual([3]);
      expect(b.map((l) => l.wu.idx)).toEqual([0]);
      expect(await store.getLease(b[0].lease.id)).toMatchObject({ volunteerId: 'v_b', state: 'active' });
    } finally {
      await store.close();
    }
  });

  test('a data directory from before seals opens, verifies its signed entries, and goes on sealed', async () => {
    const file = both.sqliteFile(`legacy-${mode.replace(/\W/g, '')}.sqlite`);
    // The ledger as older coordinators wrote it: every entry signed, `signature NOT NULL`, no seals table.
    const old = new Database(file);
    old.exec(`CREATE TABLE leases (id TEXT PRIMARY KEY, wu_id TEXT NOT NULL, volunteer_id TEXT NOT NULL, issued_at INTEGER NOT NULL,
        deadline INTEGER NOT NULL, state TEXT NOT NULL, alive_until INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE volunteers (id TEXT PRIMARY KEY, public_key TEXT NOT NULL UNIQUE, name TEXT,
        credit INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, last_seen INTEGER NOT NULL);
      CREATE TABLE ledger (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, volunteer_id TEXT NOT NULL, job_id TEXT NOT NULL,
        wu_id TEXT NOT NULL, amount INTEGER NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, signature TEXT NOT NULL);
      CREATE TRIGGER ledger_append_only_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;`);
    old.prepare(`INSERT INTO volunteers(id, public_key, credit, created_at, last_seen) VALUES ('v_old', 'k_old', 12, 1, 1)`).run();
    let prevHash = '0'.repeat(64);
    for (let seq = 1; seq <= 3; seq++) {
      const e = makeEntry({ seq, ts: seq, volunteerId: 'v_old', jobId: 'j_old', wuId: `j_old.${seq}`, amount: 4, prevHash });
      const signature = sign(null, Buffer.from(e.hash, 'hex'), privateKey).toString('base64url');
      old.prepare('INSERT INTO ledger VALUES (@seq, @ts, @volunteerId, @jobId, @wuId, @amount, @prevHash, @hash, @signature)').run({ ...e, signature });
      prevHash = e.hash;
    }
    old.close();

    const store = new SqliteStore(file, keyed);
    try {
      expect(await auditLedger(store, publicKey)).toEqual({ ok: true, entries: 3, seals: 0, problems: [] });
      const [legacyReceipt] = await storedReceipts(store, [(await store.ledgerEntries(0, 1))[0]]);
      expect(legacyReceipt.seal).toBeUndefined();
      expect(await receiptProblem(legacyReceipt, receiptCrypto)).toBeNull();

      await Promise.all((await readySettlements(store, 2)).map((s) => store.settle(s)));
      const { entries, seals } = await readLedger(store);
      expect(entries.map((e) => e.signature === undefined)).toEqual([false, false, false, true, true, true, true]);
      expect(seals).toEqual([expect.objectContaining({ firstSeq: 4, lastSeq: 7 })]);
      expect(await auditLedger(store, publicKey)).toEqual({ ok: true, entries: 7, seals: 1, problems: [] });
      expect(() => store.db.prepare('UPDATE ledger SET amount = 5 WHERE seq = 1').run()).toThrow(/append-only/);
    } finally {
      await store.close();
    }
  });
});

describe('PostgreSQL', () => {
  test('each settling transaction writes its own seal; concurrent settlements from two pools make one verifiable ledger', async () => {
    const one = await PgStore.connect(both.pgUrl, 4, sealer);
    const two = await PgStore.connect(both.pgUrl, 4, sealer);
    try {
      const ready = await readySettlements(one, 6);
      const outcomes = await Promise.all(ready.map((s, i) => (i % 2 ? one : two).settle(s)));
      const seals = await one.ledgerSeals(0, 100);
      expect(seals).toHaveLength(6);
      for (const o of outcomes) {
        expect(o.entries).toHaveLength(2);
        expect(o.entries[0].seal).toEqual(o.entries[1].seal);
        expect(o.entries[0].seal).toMatchObject({ firstSeq: o.entries[0].entry.seq, lastSeq: o.entries[1].entry.seq });
        for (const r of o.entries) expect(await receiptProblem(r, receiptCrypto)).toBeNull();
      }
      expect(await storedReceipts(one, outcomes.flatMap((o) => o.entries.map((r) => r.entry)))).toEqual(outcomes.flatMap((o) => o.entries));
      await expectVerifies(one, 12);
      await expect(one.pool.query('DELETE FROM ledger_seals')).rejects.toThrow(/append-only/);
    } finally {
      await one.close();
      await two.close();
    }
  });
});
