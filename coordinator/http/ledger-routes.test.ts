// GET /api/ledger pages through the public ledger: entries in order after a sequence number, at
// most `limit` at a time (100 unless given), each with its hash chained to the previous one, with
// the coordinator's public key; anyone may read it. GET /api/ledger/export: callers at once get the
// same verifiable document from one build, until the ledger moves.
import { describe, expect, test } from 'vitest';
import { toNpy } from '../protocol/npy.js';
import type { LedgerEntry } from '../protocol/index.js';
import { entryHash } from '../ledger/chain.js';
import { verifyExport } from '../ledger/export.js';
import { randomMatrix } from '../testing/helpers.js';
import { useTestGrid } from '../testing/fixtures.js';
import { SimWorker } from '../testing/sim-worker.js';

const { grid, workers } = useTestGrid();

interface LedgerPage {
  coordinatorPublicKey: string;
  entries: LedgerEntry[];
}

const page = async (query: string) => {
  const res = await grid.api(`/api/ledger${query}`, { token: null });
  expect(res.status).toBe(200);
  return (await res.json()) as LedgerPage;
};

describe('GET /api/ledger', () => {
  test('after=<seq> and limit=<n> page through the whole ledger in order, with no gap or repeat', async () => {
    // 52 units of replication 2, no adaptive replication: 104 entries, more than one default page.
    workers.push(new SimWorker({ url: grid.base }), new SimWorker({ url: grid.base }));
    for (const w of workers) await w.connect();
    const [m, k, n] = [208, 8, 32];
    const a = await grid.uploadShard(toNpy([m, k], randomMatrix(m, k, 1)));
    const b = await grid.uploadShard(toNpy([k, n], randomMatrix(k, n, 2)));
    const id = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 2, adaptive: false, tile: { rows: 4, cols: 32 } });
    expect((await grid.waitForJob(id)).state).toBe('done');

    expect((await page('')).entries.map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1)); // the default page
    const all = await page('?limit=1000');
    expect(all.coordinatorPublicKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(all.entries.map((e) => e.seq)).toEqual(Array.from({ length: 104 }, (_, i) => i + 1));
    // The chain: each entry's prevHash is the hash of the one before it.
    for (let i = 1; i < all.entries.length; i++) expect(all.entries[i].prevHash).toBe(entryHash(all.entries[i - 1]));

    // Pages of 7 after the last seq seen give back exactly the same entries.
    const paged: LedgerEntry[] = [];
    for (let after = 0; ; ) {
      const { entries } = await page(`?after=${after}&limit=7`);
      expect(entries.length).toBeLessThanOrEqual(7);
      if (entries.length === 0) break;
      expect(entries[0].seq).toBe(after + 1);
      paged.push(...entries);
      after = entries.at(-1)!.seq;
    }
    expect(paged).toEqual(all.entries);

    expect((await page('?after=100')).entries.map((e) => e.seq)).toEqual([101, 102, 103, 104]);
    expect((await page('?after=104')).entries).toEqual([]);
    expect((await page('?after=1000')).entries).toEqual([]);
    // Nonsense parameters fall back to the defaults rather than failing.
    expect((await page('?after=-5&limit=2')).entries.map((e) => e.seq)).toEqual([1, 2]);
    expect((await page('?after=abc&limit=0')).entries).toHaveLength(100);
  });
});

describe('GET /api/ledger/export', () => {
  /** A small matmul computed by the workers: 4 units of replication 2, 8 ledger entries. */
  const runJob = async (seed: number) => {
    const a = await grid.uploadShard(toNpy([8, 4], randomMatrix(8, 4, seed)));
    const b = await grid.uploadShard(toNpy([4, 8], randomMatrix(4, 8, seed + 1)));
    const id = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 2, adaptive: false, tile: { rows: 2, cols: 8 } });
    expect((await grid.waitForJob(id)).state).toBe('done');
  };
  const builds = () => grid.logs.filter((l) => /ledger export built/.test(l)).length;
  const exportOnce = async () => {
    const res = await grid.api('/api/ledger/export', { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    return res.text();
  };

  test('eight callers at once get the same document, built once, that verifies offline; after the ledger moves, one new build', async () => {
    workers.push(new SimWorker({ url: grid.base }), new SimWorker({ url: grid.base }));
    for (const w of workers) await w.connect();
    await runJob(3);
    const key = ((await (await grid.api('/api/info')).json()) as { coordinatorPublicKey: string }).coordinatorPublicKey;

    const bodies = await Promise.all(Array.from({ length: 8 }, exportOnce));
    expect(new Set(bodies).size).toBe(1);
    const doc = JSON.parse(bodies[0]) as { entries: LedgerEntry[]; exportedAt: number };
    expect(doc.entries).toHaveLength(8);
    expect(verifyExport(doc, key).ok).toBe(true);
    // Before, each request read and serialized the whole ledger: eight builds.
    expect(builds()).toBe(1);
    expect(await exportOnce()).toBe(bodies[0]);
    expect(builds()).toBe(1);

    await runJob(5);
    const [a, b] = await Promise.all([exportOnce(), exportOnce()]);
    expect(a).toBe(b);
    const moved = JSON.parse(a) as { entries: LedgerEntry[] };
    expect(moved.entries).toHaveLength(16);
    expect(moved.entries.slice(0, 8)).toEqual(doc.entries);
    expect(verifyExport(moved, key).ok).toBe(true);
    expect(builds()).toBe(2);
  });
});
