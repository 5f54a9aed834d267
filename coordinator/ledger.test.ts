import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, verify } from 'node:crypto';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditLedger } from './audit.js';
import { matmulReference } from './jobs/matmul.js';
import { loadCoordinatorPublicKey } from './keys.js';
import { entryHash, GENESIS_HASH, makeEntry, verifyChain } from './ledger.js';
import { parseNpy, toNpy } from './npy.js';
import type { LedgerEntry } from './protocol.js';
import { SimWorker } from './sim-worker.js';
import { SqliteStore } from './sqlite-store.js';
import { randomMatrix, removeDir, startTestCoordinator, type TestCoordinator } from './test-helpers.js';

const coordinatorKey = generateKeyPairSync('ed25519');
const otherKey = generateKeyPairSync('ed25519');

function buildChain(n: number): LedgerEntry[] {
  const out: LedgerEntry[] = [];
  let prevHash = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const e = makeEntry(
      { seq, ts: 1_700_000_000_000 + seq, volunteerId: `v_${seq % 2}`, jobId: 'j_1', wuId: `j_1.${seq}`, amount: 1000 * seq, prevHash },
      coordinatorKey.privateKey,
    );
    out.push(e);
    prevHash = e.hash;
  }
  return out;
}

describe('verifyChain', () => {
  test('a well-formed chain of 5 verifies, and credit sums per volunteer', () => {
    const chain = buildChain(5);
    const report = verifyChain(chain, coordinatorKey.publicKey);
    expect(report.ok).toBe(true);
    expect(report.checked).toBe(5);
    expect(report.firstBad).toBeUndefined();
    expect(Object.fromEntries(report.credit)).toEqual({ v_1: 1000 + 3000 + 5000, v_0: 2000 + 4000 });
  });

  test('entries are hashed and signed independently of this module', () => {
    const [e] = buildChain(1);
    const canonical = JSON.stringify([e.seq, e.ts, e.volunteerId, e.jobId, e.wuId, e.amount, e.prevHash]);
    expect(e.hash).toBe(createHash('sha256').update(canonical).digest('hex'));
    expect(e.prevHash).toBe('0'.repeat(64));
    expect(verify(null, Buffer.from(e.hash, 'hex'), coordinatorKey.publicKey, Buffer.from(e.signature, 'base64url'))).toBe(true);
  });

  test('an empty chain is valid', () => {
    expect(verifyChain([], coordinatorKey.publicKey)).toMatchObject({ ok: true, checked: 0 });
  });

  type Tamper = (chain: LedgerEntry[]) => LedgerEntry[];
  test.each<{ what: string; tamper: Tamper; seq: number; reason: RegExp; checked: number }>([
    {
      what: 'an amount changed',
      tamper: (c) => c.map((e) => (e.seq === 3 ? { ...e, amount: e.amount + 1 } : e)),
      seq: 3,
      reason: /entry altered/,
      checked: 2,
    },
    {
      what: 'a volunteer changed',
      tamper: (c) => c.map((e) => (e.seq === 4 ? { ...e, volunteerId: 'v_thief' } : e)),
      seq: 4,
      reason: /entry altered/,
      checked: 3,
    },
    {
      what: 'an amount changed and re-hashed (but not re-signable)',
      tamper: (c) => c.map((e) => (e.seq === 2 ? { ...e, amount: 1e9, hash: entryHash({ ...e, amount: 1e9 }) } : e)),
      seq: 2,
      reason: /previous-hash|signature/,
      checked: 1,
    },
    {
      what: 'a prevHash changed',
      tamper: (c) => c.map((e) => (e.seq === 3 ? { ...e, prevHash: 'f'.repeat(64) } : e)),
      seq: 3,
      reason: /previous-hash link/,
      checked: 2,
    },
    {
      what: 'an entry removed (sequence gap)',
      tamper: (c) => c.filter((e) => e.seq !== 3),
      seq: 4,
      reason: /sequence number 4 where 3 was expected/,
      checked: 2,
    },
    {
      what: 'the last entry removed and the first duplicated at the end',
      tamper: (c) => [...c.slice(0, 4), c[0]],
      seq: 1,
      reason: /sequence number 1 where 5 was expected/,
      checked: 4,
    },
    {
      what: 'two entries swapped',
      tamper: (c) => [c[0], c[2], c[1], c[3], c[4]],
      seq: 3,
      reason: /sequence number 3 where 2 was expected/,
      checked: 1,
    },
    {
      what: 'a signature from another key',
      tamper: (c) => c.map((e) => (e.seq === 3 ? makeEntry({ ...e }, otherKey.privateKey) : e)),
      seq: 3,
      reason: /signature does not verify/,
      checked: 2,
    },
    {
      what: 'a signature that is not base64url at all',
      tamper: (c) => c.map((e) => (e.seq === 5 ? { ...e, signature: '!!' } : e)),
      seq: 5,
      reason: /signature does not verify/,
      checked: 4,
    },
  ])('tamper: $what → fails at entry $seq', ({ tamper, seq, reason, checked }) => {
    const chain = buildChain(5);
    const report = verifyChain(tamper(chain), coordinatorKey.publicKey);
    expect(report.ok).toBe(false);
    expect(report.firstBad?.seq).toBe(seq);
    expect(report.firstBad?.reason).toMatch(reason);
    expect(report.checked).toBe(checked);
  });

  test('a chain signed entirely by another key fails at entry 1', () => {
    const report = verifyChain(buildChain(3), otherKey.publicKey);
    expect(report).toMatchObject({ ok: false, checked: 0, firstBad: { seq: 1 } });
  });

  test('re-signing a forged chain with another key does not fool a verifier with the real key', () => {
    // An attacker rewrites every entry from 2 on, with a consistent chain, signed by their own key.
    const chain = buildChain(5);
    const forged: LedgerEntry[] = [chain[0]];
    for (const e of chain.slice(1)) {
      forged.push(makeEntry({ ...e, amount: e.amount * 10, prevHash: forged[forged.length - 1].hash }, otherKey.privateKey));
    }
    expect(verifyChain(forged, coordinatorKey.publicKey).firstBad?.seq).toBe(2);
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
    expect(Array.from(result.data)).toEqual(Array.from(matmulReference(A, B, M, K, N)));
    for (const w of workers) w.close();
    await t.stop({ keepDir: true });
  });

  afterAll(async () => {
    for (const w of workers) w.close();
    await t?.stop();
    if (dir) removeDir(dir);
  });

  const tsxCli = resolve(import.meta.dirname, '..', 'node_modules', 'tsx', 'dist', 'cli.mjs');
  const root = resolve(import.meta.dirname, '..');
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
      expect(report).toEqual({ ok: true, entries: 3 * 2 * 2, problems: [] }); // 3×2 tiles × 2 replicas
      const volunteers = await store.listVolunteers();
      expect(volunteers).toHaveLength(2);
      // Replication 2 with two workers: each did every unit, so each earned 2·M·N·K.
      for (const v of volunteers) expect(v.credit).toBe(2 * M * N * K);
    } finally {
      await store.close();
    }
  });

  test('the ledger table is append-only: UPDATE and DELETE are refused by triggers', async () => {
    const store = new SqliteStore(dbFile);
    try {
      expect(() => store.db.prepare('UPDATE ledger SET amount = amount + 1 WHERE seq = 3').run()).toThrow(/append-only/);
      expect(() => store.db.prepare('DELETE FROM ledger WHERE seq = 12').run()).toThrow(/append-only/);
      expect((await store.ledgerEntries(0, 100)).length).toBe(12);
    } finally {
      await store.close();
    }
  });

  test('CLI `ledger verify` exits 0 on the untouched ledger', () => {
    const r = verifyCli();
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/ledger OK: 12 entries/);
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

  test('a balance edited without touching the ledger is caught too', async () => {
    const db = new Database(dbFile);
    try {
      // Undo the amount edit so only the balance is wrong (opening the store re-created the trigger).
      db.exec('DROP TRIGGER ledger_append_only_update');
      db.prepare('UPDATE ledger SET amount = amount - 1 WHERE seq = 3').run();
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
