// The shared ledger export over a real SQLite store: callers at once share one build (one read of
// the ledger, counted at the store), an unchanged ledger is not read again, a moved one is, and the
// kept copy goes after its keep time. Every document verifies offline with the coordinator's key.
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { loadOrCreateCoordinatorKeys, type CoordinatorKeys } from '../access/keys.js';
import { makeSealer } from './chain.js';
import { verifyExport } from './export.js';
import { SharedLedgerExport, type ExportSource } from './shared-export.js';
import { SqliteStore } from '../store/sqlite/store.js';
import { makeTempDir, removeDir, sleep } from '../testing/helpers.js';

let dir = '';
let keys: CoordinatorKeys;
let store: SqliteStore;
let units = 0;

beforeEach(() => {
  dir = makeTempDir();
  keys = loadOrCreateCoordinatorKeys(dir);
  store = new SqliteStore(`${dir}/ledger.sqlite`, { sealer: makeSealer(keys.privateKey) });
});
afterEach(async () => {
  await store.close();
  removeDir(dir);
});

/** One unit computed by its own volunteer and settled: one ledger entry of `amount`. */
async function credit(amount: number) {
  const i = ++units;
  const jobId = `j_${i}`;
  const v = `v_${i}`;
  await store.createJob(
    { id: jobId, kind: 'matmul', name: null, state: 'queued', replication: 1, meta: {}, createdAt: 1, finishedAt: null, error: null, resultSha: null, resultShape: [1, 1] },
    [{ params: { m: 1, k: 1, n: 1 }, inputs: {}, outputBytes: 4, flops: 2, tolerance: { atol: 0, rtol: 0 }, meta: {}, id: `${jobId}.0`, jobId, idx: 0, kind: 'matmul' }],
  );
  await store.upsertVolunteer({ id: v, publicKey: `k_${v}`, name: null, now: 1 });
  const { lease, wu } = (await store.leaseUnits({ volunteerId: v, now: 10, deadline: 1e15 }))[0];
  await store.addResult({ id: `r_${i}`, wuId: wu.id, leaseId: lease.id, volunteerId: v, sha256: '0'.repeat(64), state: 'pending', receivedAt: 20, reason: null, data: new Uint8Array(4) });
  await store.settle({ wuId: wu.id, canonicalResultId: `r_${i}`, valid: [`r_${i}`], invalid: [], credits: [{ volunteerId: v, amount }], now: 30 });
}

/** The store, counting whole passes over the ledger (each build reads the entries from the start). */
function counted(): { source: ExportSource; passes: () => number } {
  let passes = 0;
  const source: ExportSource = {
    ledgerEntries: (after, limit) => {
      if (after === 0) passes++;
      return store.ledgerEntries(after, limit);
    },
    ledgerSeals: (after, limit) => store.ledgerSeals(after, limit),
    listVolunteers: () => store.listVolunteers(),
    ledgerHead: () => store.ledgerHead(),
  };
  return { source, passes: () => passes };
}

const parsed = (body: Buffer) => JSON.parse(body.toString('utf8')) as { entries: { seq: number; amount: number }[] };

describe('SharedLedgerExport', () => {
  test('eight callers at once share one build, which verifies; an unchanged ledger is served again without reading it', async () => {
    for (const amount of [5, 7, 11]) await credit(amount);
    const { source, passes } = counted();
    const shared = new SharedLedgerExport({ source, coordinatorPublicKey: keys.publicKeyRaw, now: () => 1234 });
    const got = await Promise.all(Array.from({ length: 8 }, () => shared.get()));
    expect(passes()).toBe(1);
    expect(shared.builds).toBe(1);
    for (const g of got) expect(g.body).toBe(got[0].body); // the same bytes, not equal copies
    const doc = JSON.parse(got[0].body.toString('utf8')) as unknown;
    expect(verifyExport(doc, keys.publicKeyRaw)).toMatchObject({ ok: true, message: expect.stringContaining('3 entries') });
    expect(parsed(got[0].body).entries.map((e) => e.amount)).toEqual([5, 7, 11]);
    expect(doc).toMatchObject({ format: 'tabgrid-ledger-2', exportedAt: 1234 });

    expect((await shared.get()).body).toBe(got[0].body);
    expect(passes()).toBe(1);
  });

  test('when the ledger moves the next caller gets a new build with the new entries; callers during it share it', async () => {
    await credit(5);
    const { source, passes } = counted();
    const shared = new SharedLedgerExport({ source, coordinatorPublicKey: keys.publicKeyRaw, now: () => 1 });
    const first = await shared.get();
    await credit(7);
    const [a, b] = await Promise.all([shared.get(), shared.get()]);
    expect(passes()).toBe(2);
    expect(a.body).toBe(b.body);
    expect(a.body).not.toBe(first.body);
    expect(parsed(a.body).entries.map((e) => e.amount)).toEqual([5, 7]);
    expect(verifyExport(parsed(a.body), keys.publicKeyRaw).ok).toBe(true);
  });

  test('a kept copy nobody asks for is dropped after its keep time (the next caller builds again)', async () => {
    await credit(5);
    const { source, passes } = counted();
    const shared = new SharedLedgerExport({ source, coordinatorPublicKey: keys.publicKeyRaw, now: () => 1, keepMs: 30 });
    await shared.get();
    await sleep(150);
    await shared.get();
    expect(passes()).toBe(2);
    shared.clear();
  });
});
