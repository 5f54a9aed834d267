// GET /api/ledger pages through the public ledger: entries in order after a sequence number, at
// most `limit` at a time (100 unless given), each with its hash chained to the previous one, with
// the coordinator's public key; anyone may read it.
import { describe, expect, test } from 'vitest';
import { toNpy } from '../protocol/npy.js';
import type { LedgerEntry } from '../protocol/index.js';
import { entryHash } from '../ledger/chain.js';
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
