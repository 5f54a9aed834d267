// Per-test fixtures for vitest files: a coordinator with its simulated workers, and a shard store
// in a temporary folder, each made before and removed after.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { FileShardStore, type ShardStore } from '../store/shards.js';
import { makeTempDir, removeDir, startTestCoordinator, type TestCoordinator } from './helpers.js';
import type { SimWorker } from './sim-worker.js';

/**
 * A fresh coordinator for each test, stopped after it with the workers the test pushed on `workers`.
 * `grid` stands for the current test's coordinator (its fields and methods are the current one's).
 */
export function useTestGrid(opts?: Parameters<typeof startTestCoordinator>[0]): { grid: TestCoordinator; workers: SimWorker[] } {
  let current: TestCoordinator | null = null;
  const workers: SimWorker[] = [];
  beforeEach(async () => {
    current = await startTestCoordinator(opts);
  });
  afterEach(async () => {
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
