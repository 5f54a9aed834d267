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

type GridOptions = Parameters<typeof startTestCoordinator>[0];

/**
 * The coordinators a fixture started and the workers its tests pushed on `workers`; `grid` stands
 * for the latest coordinator (its fields and methods are that one's), `stopAll` closes the workers
 * and stops every coordinator, the latest first (an earlier one stopped with `keepDir` may share
 * its folder).
 */
function gridSlot(outside: string) {
  const started: TestCoordinator[] = [];
  const workers: SimWorker[] = [];
  const grid = new Proxy({} as TestCoordinator, {
    get(_target, prop) {
      const current = started.at(-1);
      if (!current) throw new Error(outside);
      const value = Reflect.get(current, prop) as unknown;
      return typeof value === 'function' ? value.bind(current) : value;
    },
  });
  return {
    grid,
    workers,
    async start(opts?: GridOptions): Promise<TestCoordinator> {
      const t = await startTestCoordinator(opts);
      started.push(t);
      return t;
    },
    async stopAll() {
      for (const w of workers.splice(0)) w.close();
      for (const t of started.splice(0).reverse()) await t.stop();
    },
  };
}

/**
 * A fresh coordinator for each test (or, with `scope: 'all'`, one for all the tests of the enclosing
 * describe block — for tests that only read answers), stopped after it with the workers the test
 * pushed on `workers`. `grid` stands for the current coordinator.
 */
export function useTestGrid(opts?: GridOptions, scope: 'each' | 'all' = 'each'): { grid: TestCoordinator; workers: SimWorker[] } {
  const slot = gridSlot('the test grid runs only inside a test');
  (scope === 'each' ? beforeEach : beforeAll)(async () => {
    await slot.start(opts);
  });
  (scope === 'each' ? afterEach : afterAll)(slot.stopAll);
  return { grid: slot.grid, workers: slot.workers };
}

/**
 * For files whose tests each start a coordinator with options of their own: `start(opts)` starts one
 * and makes it `grid`; after each test the workers pushed on `workers` are closed and every
 * coordinator the test started is stopped (its folder removed), even when the test failed.
 */
export function useGridPerTest(): {
  grid: TestCoordinator;
  workers: SimWorker[];
  start(opts?: GridOptions): Promise<TestCoordinator>;
} {
  const slot = gridSlot('no grid yet: start() one in the test first');
  afterEach(slot.stopAll);
  return { grid: slot.grid, workers: slot.workers, start: slot.start };
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
    /** The ledger key pair: `sealer` seals with the private key (tests that sign entries themselves use it too). */
    privateKey,
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
