import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditLedger } from './audit.js';
import { productBoundShare } from '../testing/device-math.js';
import { loadCoordinatorPublicKey, verifySignature } from '../access/keys.js';
import { entryHash, GENESIS_HASH, makeEntry, makeSealer, receiptsFor, sha256, verifyChain } from './chain.js';
import { parseNpy, toNpy } from '../protocol/npy.js';
import type { LedgerEntry, LedgerSeal } from '../protocol/index.js';
import { receiptProblem } from '../protocol/receipt-check.js';
import { SimWorker } from '../testing/sim-worker.js';
import { SqliteStore } from '../store/sqlite/store.js';
import { randomMatrix, removeDir, startTestCoordinator, type TestCoordinator } from '../testing/helpers.js';

const coordinatorKey = generateKeyPairSync('ed25519');
const otherKey = generateKeyPairSync('ed25519');
const seal = makeSealer(coordinatorKey.privateKey);
const crypto = (key = coordinatorKey.publicKey) => ({ sha256, verify: (m: Uint8Array, s: string) => verifySignature(key, m, s) });

interface Ledger {
  entries: LedgerEntry[];
  seals: LedgerSeal[];
}

function buildEntries(n: number, from = 1, prev = GENESIS_HASH): LedgerEntry[] {
  const out: LedgerEntry[] = [];
  let prevHash = prev;
  for (let seq = from; seq < from + n; seq++) {
    const e = makeEntry({ seq, ts: 1_700_000_000_000 + seq, volunteerId: `v_${seq % 2}`, jobId: 'j_1', wuId: `j_1.${seq}`, amount: 1000 * seq, prevHash });
    out.push(e);
    prevHash = e.hash;
  }
  return out;
}

/** Entries 1..sum(sizes), one seal per commit of the given sizes. */
function buildLedger(sizes: number[], sealer = seal): Ledger {
  const entries = buildEntries(sizes.reduce((a, b) => a + b, 0));
  const seals: LedgerSeal[] = [];
  for (let at = 0, i = 0; i < sizes.length; at += sizes[i++]) seals.push(sealer(entries.slice(at, at + sizes[i])).seal);
  return { entries, seals };
}

describe('verifyChain', () => {
  test('a well-formed ledger of 5 entries under 2 seals verifies, and credit sums per volunteer', () => {
    const report = verifyChain(buildLedger([2, 3]), coordinatorKey.publicKey);
    expect(report.ok).toBe(true);
    expect(report.checked).toBe(5);
    expect(report.firstBad).toBeUndefined();
    expect(Object.fromEntries(report.credit)).toEqual({ v_1: 1000 + 3000 + 5000, v_0: 2000 + 4000 });
  });

  test('entries are hashed, and seals signed, independently of this module', () => {
    const { entries, seals } = buildLedger([1, 2]);
    const e = entries[0];
    const canonical = JSON.stringify([e.seq, e.ts, e.volunteerId, e.jobId, e.wuId, e.amount, e.prevHash]);
    expect(e.hash).toBe(createHash('sha256').update(canonical).digest('hex'));
    expect(e.prevHash).toBe('0'.repeat(64));
    expect(e.signature).toBeUndefined();
    // A one-entry tree's root is H(0x00 ‖ entry hash).
    expect(seals[0].root).toBe(createHash('sha256').update(Buffer.concat([Buffer.from([0]), Buffer.from(e.hash, 'hex')])).digest('hex'));
    for (const s of seals) {
      const signed = `tabgrid-ledger-seal-v1\n${s.firstSeq}\n${s.lastSeq}\n${s.headHash}\n${s.root}`;
      expect(verify(null, Buffer.from(signed), coordinatorKey.publicKey, Buffer.from(s.signature, 'base64url'))).toBe(true);
    }
    expect(seals[1]).toMatchObject({ firstSeq: 2, lastSeq: 3, headHash: entries[2].hash });
  });

  test('an empty ledger is valid', () => {
    expect(verifyChain({ entries: [], seals: [] }, coordinatorKey.publicKey)).toMatchObject({ ok: true, checked: 0 });
  });

  const resign = (s: LedgerSeal, changes: Partial<LedgerSeal>, key = coordinatorKey.privateKey): LedgerSeal => {
    const unsigned = { ...s, ...changes };
    return { ...unsigned, signature: sign(null, Buffer.from(`tabgrid-ledger-seal-v1\n${unsigned.firstSeq}\n${unsigned.lastSeq}\n${unsigned.headHash}\n${unsigned.root}`), key).toString('base64url') };
  };
  const entriesOf = (l: Ledger, f: (e: LedgerEntry) => LedgerEntry) => ({ ...l, entries: l.entries.map(f) });
  const sealsOf = (l: Ledger, f: (s: LedgerSeal, i: number) => LedgerSeal | null) => ({ ...l, seals: l.seals.map(f).filter((s) => s !== null) });

  // Seals over entries 1–2 and 3–5.
  type Tamper = (l: Ledger) => Ledger;
  test.each<{ what: string; tamper: Tamper; where: string; reason: RegExp; checked: number }>([
    { what: 'an amount changed', tamper: (l) => entriesOf(l, (e) => (e.seq === 3 ? { ...e, amount: e.amount + 1 } : e)), where: 'entry #3', reason: /entry altered/, checked: 2 },
    { what: 'a volunteer changed', tamper: (l) => entriesOf(l, (e) => (e.seq === 4 ? { ...e, volunteerId: 'v_thief' } : e)), where: 'entry #4', reason: /entry altered/, checked: 2 },
    {
      what: 'the last entry changed and re-hashed (the seal is not re-signable)',
      tamper: (l) => entriesOf(l, (e) => (e.seq === 5 ? { ...e, amount: 1e9, hash: entryHash({ ...e, amount: 1e9 }) } : e)),
      where: 'seal #3–#5',
      reason: /head hash/,
      checked: 2,
    },
    {
      what: 'a middle entry changed and re-hashed, and the rest of the chain re-linked',
      tamper: (l) => {
        const entries = l.entries.slice(0, 3);
        const forged = { ...l.entries[3], amount: 1e9 };
        entries.push({ ...forged, hash: entryHash(forged) });
        entries.push(makeEntry({ ...l.entries[4], prevHash: entries[3].hash }));
        return { entries, seals: l.seals.map((s, i) => (i === 1 ? { ...s, headHash: entries[4].hash } : s)) };
      },
      where: 'seal #3–#5',
      reason: /Merkle root/,
      checked: 2,
    },
    { what: 'a prevHash changed', tamper: (l) => entriesOf(l, (e) => (e.seq === 3 ? { ...e, prevHash: 'f'.repeat(64) } : e)), where: 'entry #3', reason: /previous-hash link/, checked: 2 },
    { what: 'an entry removed (sequence gap)', tamper: (l) => ({ ...l, entries: l.entries.filter((e) => e.seq !== 3) }), where: 'entry #4', reason: /sequence number 4 where 3 was expected/, checked: 2 },
    { what: 'two entries swapped', tamper: (l) => ({ ...l, entries: [l.entries[0], l.entries[2], l.entries[1], ...l.entries.slice(3)] }), where: 'entry #3', reason: /sequence number 3 where 2 was expected/, checked: 0 },
    { what: "a seal's root changed", tamper: (l) => sealsOf(l, (s, i) => (i === 1 ? { ...s, root: 'a'.repeat(64) } : s)), where: 'seal #3–#5', reason: /Merkle root/, checked: 2 },
    { what: "a seal's root changed and re-signed with another key", tamper: (l) => sealsOf(l, (s, i) => (i === 0 ? resign(s, { root: 'a'.repeat(64) }, otherKey.privateKey) : s)), where: 'seal #1–#2', reason: /Merkle root/, checked: 0 },
    { what: 'a seal signed by another key', tamper: (l) => sealsOf(l, (s, i) => (i === 1 ? resign(s, {}, otherKey.privateKey) : s)), where: 'seal #3–#5', reason: /signature does not verify/, checked: 2 },
    { what: 'a seal signature that is not base64url at all', tamper: (l) => sealsOf(l, (s, i) => (i === 0 ? { ...s, signature: '!!' } : s)), where: 'seal #1–#2', reason: /signature does not verify/, checked: 0 },
    { what: 'the first seal dropped', tamper: (l) => sealsOf(l, (s, i) => (i === 0 ? null : s)), where: 'seal #3–#5', reason: /does not start at entry #1/, checked: 0 },
    { what: 'the last seal dropped (an unsealed tail)', tamper: (l) => sealsOf(l, (s, i) => (i === 1 ? null : s)), where: 'entry #3', reason: /no seal covers this entry/, checked: 2 },
    { what: 'overlapping seals', tamper: (l) => sealsOf(l, (s, i) => (i === 1 ? resign(s, { firstSeq: 2 }) : s)), where: 'seal #2–#5', reason: /does not start at entry #3/, checked: 2 },
    { what: 'a seal reaching past the last entry', tamper: (l) => sealsOf(l, (s, i) => (i === 1 ? resign(s, { lastSeq: 6 }) : s)), where: 'seal #3–#6', reason: /ledger ends at #5/, checked: 2 },
    { what: 'a seal after the last entry', tamper: (l) => ({ ...l, seals: [...l.seals, resign(l.seals[1], { firstSeq: 6, lastSeq: 6 })] }), where: 'seal #6–#6', reason: /after the last one/, checked: 5 },
    { what: 'the last entry dropped but its seal kept', tamper: (l) => ({ ...l, entries: l.entries.slice(0, 4) }), where: 'seal #3–#5', reason: /ledger ends at #4/, checked: 2 },
  ])('tamper: $what → $where named', ({ tamper, where, reason, checked }) => {
    const report = verifyChain(tamper(buildLedger([2, 3])), coordinatorKey.publicKey);
    expect(report.ok).toBe(false);
    expect(report.firstBad?.where).toBe(where);
    expect(report.firstBad?.reason).toMatch(reason);
    expect(report.checked).toBe(checked);
  });

  test('a ledger sealed entirely by another key fails at its first seal', () => {
    const report = verifyChain(buildLedger([3], makeSealer(otherKey.privateKey)), coordinatorKey.publicKey);
    expect(report).toMatchObject({ ok: false, checked: 0, firstBad: { where: 'seal #1–#3' } });
  });

  test('legacy entries signed one by one verify before the first seal, not after it', () => {
    const legacy = buildEntries(3).map((e) => ({ ...e, signature: sign(null, Buffer.from(e.hash, 'hex'), coordinatorKey.privateKey).toString('base64url') }));
    const sealed = buildEntries(2, 4, legacy[2].hash);
    const ledger = { entries: [...legacy, ...sealed], seals: [seal(sealed).seal] };
    expect(verifyChain(ledger, coordinatorKey.publicKey)).toMatchObject({ ok: true, checked: 5 });
    const forged = { ...ledger, entries: ledger.entries.map((e) => (e.seq === 2 ? { ...e, signature: legacy[0].signature } : e)) };
    expect(verifyChain(forged, coordinatorKey.publicKey).firstBad).toMatchObject({ where: 'entry #2', reason: expect.stringMatching(/signature does not verify/) });
    // A signature on an entry after sealing began does not stand in for its seal.
    const unsealed = { entries: ledger.entries.map((e) => (e.seq === 5 ? { ...e, signature: legacy[0].signature } : e)), seals: [] };
    expect(verifyChain(unsealed, coordinatorKey.publicKey).firstBad).toMatchObject({ where: 'entry #4', reason: expect.stringMatching(/no seal/) });
  });
});

describe('receipts from a sealer', () => {
  test.each([1, 2, 3, 5, 8, 13])('all %i receipts of one seal verify; moved to a neighbour, or under another seal, they do not', async (n) => {
    const entries = buildEntries(n + 1);
    const { receipts } = seal(entries.slice(0, n));
    const other = seal(entries.slice(n)).seal;
    for (const [i, r] of receipts.entries()) {
      expect(r.path!.length).toBeLessThanOrEqual(Math.ceil(Math.log2(n)));
      expect(await receiptProblem(r, crypto())).toBeNull();
      expect(await receiptProblem(r, crypto(otherKey.publicKey))).toMatch(/seal signature/);
      expect(await receiptProblem({ ...r, seal: other }, crypto())).not.toBeNull();
      if (n > 1) expect(await receiptProblem({ ...r, entry: receipts[(i + 1) % n].entry }, crypto())).not.toBeNull();
    }
  });

  test('receipts rebuilt from stored entries and seals equal the ones handed out at commit time', async () => {
    const entries = buildEntries(9);
    const batches = [seal(entries.slice(0, 4)), seal(entries.slice(4, 5)), seal(entries.slice(5))];
    const seals = batches.map((b) => b.seal);
    const sealOf = async (seq: number) => {
      const s = seals.find((x) => x.firstSeq <= seq && seq <= x.lastSeq);
      return s ? { seal: s, hashes: entries.slice(s.firstSeq - 1, s.lastSeq).map((e) => e.hash) } : null;
    };
    expect(await receiptsFor([...entries].reverse(), sealOf)).toEqual(batches.flatMap((b) => b.receipts).reverse());
    expect(await receiptsFor(buildEntries(1, 10, entries[8].hash), sealOf)).toEqual([{ entry: expect.objectContaining({ seq: 10 }) }]);
  });
});

// ---------------------------------------------------------------------------------------------
// The same guarantees end to end: a real coordinator credits volunteers into SQLite, and an
// attacker with write access to the database file is caught by the audit and the CLI.

describe('ledger in a real coordinator data directory', () => {
  const M = 40;
  const K = 30;
  const N = 20;
  let t: TestCoordinator;
  let dir: string;
  let dbFile: string;
  let workers: SimWorker[] = [];

  beforeAll(async () => {
    t = await startTestCoordinator();
    dir = t.dir;
    dbFile = join(dir, 'tabgrid.sqlite');
    const A = randomMatrix(M, K, 11);
    const B = randomMatrix(K, N, 12);
    const a = await t.uploadShard(toNpy([M, K], A));
    const b = await t.uploadShard(toNpy([K, N], B));
    const id = await t.submitJob({ kind: 'matmul', inputs: { a, b }, tile: { rows: 16, cols: 16 } });
    workers = [new SimWorker({ url: t.base, name: 'w1' }), new SimWorker({ url: t.base, name: 'w2' })];
    await Promise.all(workers.map((w) => w.connect()));
    const status = await t.waitForJob(id);
    expect(status.state).toBe('done');
    const res = await t.api(`/api/jobs/${id}/result`);
    const result = parseNpy(new Uint8Array(await res.arrayBuffer()));
    // The honest workers sum in different orders: A·B within float32 rounding, not the reference's bits.
    expect(productBoundShare(result.data, A, B, M, K, N)).toBeLessThanOrEqual(1);
    for (const w of workers) w.close();
    await t.stop({ keepDir: true });
  });

  afterAll(async () => {
    for (const w of workers) w.close();
    await t?.stop();
    if (dir) removeDir(dir);
  });

  const tsxCli = resolve(import.meta.dirname, '../..', 'node_modules', 'tsx', 'dist', 'cli.mjs');
  const root = resolve(import.meta.dirname, '../..');
  const verifyCli = () =>
    spawnSync(process.execPath, [tsxCli, 'coordinator/cli.ts', 'ledger', 'verify', '--data', dir], {
      cwd: root,
      encoding: 'utf8',
      timeout: 20_000,
    });

  // These run in order: untouched checks first, then the tampering.
  test('the untouched ledger audits clean: 2 credits per work unit, balances match', async () => {
    const store = new SqliteStore(dbFile);
    try {
      const report = await auditLedger(store, loadCoordinatorPublicKey(dir));
      expect(report).toMatchObject({ ok: true, entries: 3 * 2 * 2, problems: [] }); // 3×2 tiles × 2 replicas
      // Every entry sealed once, in consecutive ranges; several settlements may share a commit's seal.
      const seals = await store.ledgerSeals(0, 100);
      expect(report.seals).toBe(seals.length);
      expect(seals.length).toBeGreaterThanOrEqual(1);
      expect(seals.length).toBeLessThanOrEqual(12);
      expect(seals[0].firstSeq).toBe(1);
      expect(seals.at(-1)!.lastSeq).toBe(12);
      for (let i = 1; i < seals.length; i++) expect(seals[i].firstSeq).toBe(seals[i - 1].lastSeq + 1);
      const volunteers = await store.listVolunteers();
      expect(volunteers).toHaveLength(2);
      // Replication 2 with two workers: each did every unit, so each earned 2·M·N·K.
      for (const v of volunteers) expect(v.credit).toBe(2 * M * N * K);
    } finally {
      await store.close();
    }
  });

  test('the ledger and seal tables are append-only: UPDATE and DELETE are refused by triggers', async () => {
    const store = new SqliteStore(dbFile);
    try {
      expect(() => store.db.prepare('UPDATE ledger SET amount = amount + 1 WHERE seq = 3').run()).toThrow(/append-only/);
      expect(() => store.db.prepare('DELETE FROM ledger WHERE seq = 12').run()).toThrow(/append-only/);
      expect(() => store.db.prepare(`UPDATE ledger_seals SET root = 'x' WHERE last_seq = 12`).run()).toThrow(/append-only/);
      expect(() => store.db.prepare('DELETE FROM ledger_seals WHERE last_seq = 12').run()).toThrow(/append-only/);
      expect((await store.ledgerEntries(0, 100)).length).toBe(12);
    } finally {
      await store.close();
    }
  });

  test('CLI `ledger verify` exits 0 on the untouched ledger', () => {
    const r = verifyCli();
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/ledger OK: 12 entries under \d+ seals/);
    expect(r.status).toBe(0);
  });

  test('after an attacker drops the trigger and edits entry 3, the audit and the CLI name #3', async () => {
    const db = new Database(dbFile);
    try {
      db.exec('DROP TRIGGER ledger_append_only_update');
      expect(db.prepare('UPDATE ledger SET amount = amount + 1 WHERE seq = 3').run().changes).toBe(1);
    } finally {
      db.close();
    }

    const store = new SqliteStore(dbFile);
    try {
      const report = await auditLedger(store, loadCoordinatorPublicKey(dir));
      expect(report.ok).toBe(false);
      expect(report.problems).toHaveLength(1);
      expect(report.problems[0]).toMatch(/^entry #3: .*entry altered/);
    } finally {
      await store.close();
    }

    const r = verifyCli();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ledger FAILED verification/);
    expect(r.stderr).toContain('#3');
  });

  let dropped: Record<string, unknown> = {};
  test('after an attacker also drops the last seal, or forges a seal root, verify names it', async () => {
    const db = new Database(dbFile);
    const last = db.prepare('SELECT * FROM ledger_seals ORDER BY last_seq DESC LIMIT 1').get() as { first_seq: number; last_seq: number };
    dropped = { ...last };
    try {
      // Undo the amount edit first, so the seal is the only problem.
      db.exec('DROP TRIGGER ledger_append_only_update; DROP TRIGGER ledger_seals_append_only_update; DROP TRIGGER ledger_seals_append_only_delete');
      db.prepare('UPDATE ledger SET amount = amount - 1 WHERE seq = 3').run();
      db.prepare(`UPDATE ledger_seals SET root = ? WHERE last_seq = ?`).run('a'.repeat(64), last.last_seq);
    } finally {
      db.close();
    }
    let r = verifyCli();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`seal #${last.first_seq}–#${last.last_seq}: Merkle root does not match`);

    const db2 = new Database(dbFile);
    try {
      db2.exec('DROP TRIGGER ledger_seals_append_only_delete');
      db2.prepare('DELETE FROM ledger_seals WHERE last_seq = ?').run(last.last_seq);
    } finally {
      db2.close();
    }
    r = verifyCli();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`entry #${last.first_seq}: no seal covers this entry (unsealed)`);
  });

  test('a balance edited without touching the ledger is caught too', async () => {
    const db = new Database(dbFile);
    try {
      // Put back the seal the last test dropped, so only the balance is wrong.
      db.prepare('INSERT INTO ledger_seals(first_seq, last_seq, head_hash, root, signature) VALUES (@first_seq, @last_seq, @head_hash, @root, @signature)').run(dropped);
      db.prepare('UPDATE volunteers SET credit = credit + 5 WHERE rowid = 1').run();
    } finally {
      db.close();
    }
    const store = new SqliteStore(dbFile);
    try {
      const report = await auditLedger(store, loadCoordinatorPublicKey(dir));
      expect(report.ok).toBe(false);
      expect(report.problems).toHaveLength(1);
      expect(report.problems[0]).toMatch(/balance .* but the ledger sums to/);
    } finally {
      await store.close();
    }
  });
});
