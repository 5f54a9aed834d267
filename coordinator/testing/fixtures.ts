// Per-test fixtures for vitest files: a coordinator with its simulated workers, a shard store in a
// temporary folder, both storage backends — each made before and removed after.
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { makeSealer } from '../ledger/chain.js';
import { PgStore } from '../store/pg/store.js';
import { FileShardStore, type ShardStore } from '../store/shards.js';
import { SqliteStore } from '../store/sqlite/store.js';
import type { Store } from '../store/store.js';
import { makeTempDir, removeDir, startTestCoordinator, type TestCoordinator } from './helpers.js';
import { startPgCluster, type PgCluster } from './pg-cluster.js';
import type { SimWorker } from './sim-worker.js';

/**
 * A fresh coordinator for each test (or, with `scope: 'all'`, one for all the tests of the enclosing
 * describe block — for tests that only read answers), stopped after it with the workers the test
 * pushed on `workers`. `grid` stands for the current coordinator (its fields and methods are the
 * current one's).
 */
export function useTestGrid(opts?: Parameters<typeof startTestCoordinator>[0], scope: 'each' | 'all' = 'each'): { grid: TestCoordinator; workers: SimWorker[] } {
  let current: TestCoordinator | null = null;
  const workers: SimWorker[] = [];
  (scope === 'each' ? beforeEach : beforeAll)(async () => {
    current = await startTestCoordinator(opts);
  });
  (scope === 'each' ? afterEach : afterAll)(async () => {
    for (const w of workers.splice(0)) w.close();
    await current?.stop();
    current = null;
  });
  const grid = new Proxy({} as TestCoordinator, {
    get(_target, prop) {
      if (!current) throw new Error('the test grid runs only inside a test');
      const value = Reflect.get(current, prop) as unknown;
      return typeof value === 'function' ? value.bind(current) : value;
    },
  });
  return { grid, workers };
}

/** A shard store in a temporary folder for the whole file. */
export function useTempShards(): { readonly shards: ShardStore } {
  let dir = '';
  const fixture = { shards: null as unknown as ShardStore };
  beforeAll(() => {
    dir = makeTempDir();
    fixture.shards = new FileShardStore(join(dir, 'shards'));
  });
  afterAll(() => removeDir(dir));
  return fixture;
}

/**
 * Both storage backends for one file: a throwaway PostgreSQL cluster and a temporary folder for
 * SQLite files, with one ledger signing key. `open` makes a fresh store of either kind.
 */
export function useBothStores() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const sealer = makeSealer(privateKey);
  let cluster: PgCluster | null = null;
  let dir = '';
  let files = 0;
  beforeAll(async () => {
    cluster = await startPgCluster();
    dir = makeTempDir();
  }, 60_000);
  afterAll(() => {
    cluster?.stop();
    removeDir(dir);
  });
  return {
    publicKey,
    sealer,
    /** The cluster's URL and the folder's path (only inside tests). */
    get pgUrl() {
      return cluster!.url;
    },
    sqliteFile: (name = `store-${++files}.sqlite`) => join(dir, name),
    open: {
      SQLite: async (): Promise<Store> => new SqliteStore(join(dir, `store-${++files}.sqlite`), { sealer }),
      PostgreSQL: async (): Promise<Store> => PgStore.connect(cluster!.url, 2, sealer),
    },
  };
}
