// The IndexedDB shard cache (web/store/shard-cache.ts) in a real browser: the module is bundled
// on the fly and loaded into a page on the coordinator's origin, then driven through its API.
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';
import { resolve } from 'node:path';
import { build } from 'vite';
import type { TestCoordinator } from '../coordinator/testing/helpers';
import type { HoldingsChange, ShardCache } from '../web/store/shard-cache';
import { ROOT, startGrid } from './grid';

declare global {
  interface Window {
    ShardCacheModule: { ShardCache: typeof ShardCache };
    /** Makes a shard of `size` random bytes; returns its sha-256. */
    makeShard(size: number): Promise<string>;
    shards: Map<string, Uint8Array>;
    changes: HoldingsChange[];
  }
}

let bundle = '';
let grid: TestCoordinator;

test.beforeAll(async () => {
  const out = await build({
    configFile: false,
    logLevel: 'silent',
    build: { write: false, minify: false, lib: { entry: resolve(ROOT, 'web/store/shard-cache.ts'), formats: ['iife'], name: 'ShardCacheModule' } },
  });
  bundle = (Array.isArray(out) ? out[0] : (out as { output: { code: string }[] })).output[0].code;
  grid = await startGrid();
});

test.afterAll(async () => {
  await grid?.stop();
});

// The test injects its bundle as an inline script, which the coordinator's CSP rightly forbids.
test.use({ bypassCSP: true });

async function load(page: Page) {
  await page.goto(grid.base + '/'); // a real origin: IndexedDB is per origin, per context
  await page.addScriptTag({ content: bundle });
  await page.evaluate(() => {
    window.shards = new Map();
    window.changes = [];
    window.makeShard = async (size) => {
      const bytes = new Uint8Array(size);
      for (let off = 0; off < size; off += 65536) crypto.getRandomValues(bytes.subarray(off, off + 65536));
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
      const sha = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
      window.shards.set(sha, bytes);
      return sha;
    };
  });
}

const KiB = 1024;

test('the cache never holds more than its cap: least recently used shards go first', async ({ page }) => {
  await load(page);
  const r = await page.evaluate(async (KiB) => {
    const cache = new window.ShardCacheModule.ShardCache(100 * KiB, (c) => window.changes.push(c));
    const [s1, s2, s3, s4] = [await window.makeShard(40 * KiB), await window.makeShard(40 * KiB), await window.makeShard(40 * KiB), await window.makeShard(30 * KiB)];
    await cache.put(s1, window.shards.get(s1)!);
    await cache.put(s2, window.shards.get(s2)!);
    const touched = await cache.get(s1); // s1 is now more recent than s2
    await cache.put(s3, window.shards.get(s3)!); // 120 KiB > cap: evicts s2, the least recently used
    const afterS3 = (await cache.keys()).sort();
    const usageAfterS3 = await cache.usage();
    await cache.put(s4, window.shards.get(s4)!); // 110 KiB: evicts s1 (older than s3)
    return {
      s1, s2, s3, s4, touched: touched?.length, afterS3, usageAfterS3,
      afterS4: (await cache.keys()).sort(),
      usageAfterS4: await cache.usage(),
      changes: window.changes,
      bigKept: await cache.put(await window.makeShard(101 * KiB), new Uint8Array(101 * KiB)),
    };
  }, KiB);
  expect(r.touched).toBe(40 * KiB);
  expect(r.afterS3).toEqual([r.s1, r.s3].sort());
  expect(r.usageAfterS3).toEqual({ bytes: 80 * KiB, count: 2 });
  expect(r.afterS4).toEqual([r.s3, r.s4].sort());
  expect(r.usageAfterS4.bytes).toBeLessThanOrEqual(100 * KiB);
  // The tracker hears of every shard that came and went.
  expect(r.changes).toEqual([
    { add: [r.s1], remove: [] },
    { add: [r.s2], remove: [] },
    { add: [r.s3], remove: [r.s2] },
    { add: [r.s4], remove: [r.s1] },
  ]);
  expect(r.bigKept).toBe(false); // larger than the whole cap: not kept
});

test('lowering the cap evicts least recently used shards until the cache fits', async ({ page }) => {
  await load(page);
  const r = await page.evaluate(async (KiB) => {
    const cache = new window.ShardCacheModule.ShardCache(1024 * KiB);
    const shas: string[] = [];
    for (let i = 0; i < 5; i++) {
      const sha = await window.makeShard(10 * KiB);
      await cache.put(sha, window.shards.get(sha)!);
      shas.push(sha);
    }
    await cache.get(shas[0]); // the oldest becomes the most recent
    await cache.setCap(25 * KiB);
    return { shas, kept: (await cache.keys()).sort(), usage: await cache.usage() };
  }, KiB);
  expect(r.kept).toEqual([r.shas[0], r.shas[4]].sort());
  expect(r.usage).toEqual({ bytes: 20 * KiB, count: 2 });
});

test('a corrupted cache entry is detected on read and dropped', async ({ page }) => {
  await load(page);
  const r = await page.evaluate(async (KiB) => {
    const cache = new window.ShardCacheModule.ShardCache(1024 * KiB, (c) => window.changes.push(c));
    const good = await window.makeShard(20 * KiB);
    const bad = await window.makeShard(20 * KiB);
    await cache.put(good, window.shards.get(good)!);
    await cache.put(bad, window.shards.get(bad)!);
    // Flip one byte of `bad` behind the cache's back, with the raw IndexedDB API.
    await new Promise<void>((res, rej) => {
      const open = indexedDB.open('tabgrid');
      open.onerror = () => rej(open.error);
      open.onsuccess = () => {
        const tx = open.result.transaction('shard-bytes', 'readwrite');
        const store = tx.objectStore('shard-bytes');
        const get = store.get(bad);
        get.onsuccess = () => {
          const bytes = new Uint8Array(get.result as ArrayBuffer);
          bytes[100] ^= 1;
          store.put(bytes.buffer, bad);
        };
        tx.oncomplete = () => {
          open.result.close();
          res();
        };
        tx.onerror = () => rej(tx.error);
      };
    });
    const readBad = await cache.get(bad);
    const readGood = await cache.get(good);
    return {
      good, bad,
      readBad,
      goodIntact: readGood !== null && readGood.every((b, i) => b === window.shards.get(good)![i]),
      hasBad: await cache.has(bad),
      keys: await cache.keys(),
      lastChange: window.changes.at(-1),
    };
  }, KiB);
  expect(r.readBad).toBeNull();
  expect(r.goodIntact).toBe(true);
  expect(r.hasBad).toBe(false);
  expect(r.keys).toEqual([r.good]);
  expect(r.lastChange).toEqual({ add: [], remove: [r.bad] });
});
