// The SQLite store's writer thread: its writes are answered once on disk, a thread that dies
// answers what it was asked with an error (nothing hangs), and the next write starts a fresh one.
// A real file, a real worker thread.
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SqliteStore } from './store.js';
import { makeTempDir, removeDir } from '../../testing/helpers.js';

const { privateKey } = generateKeyPairSync('ed25519');
let dir: string;
beforeAll(() => {
  dir = makeTempDir();
});
afterAll(() => removeDir(dir));

/** The store's writer thread (private: a test reaches in to kill it). */
function writerOf(store: SqliteStore): Worker {
  return (store as unknown as { thread: { worker: Worker } }).thread.worker;
}

test('a writer thread that dies fails its unanswered writes, and the next write starts a fresh one', async () => {
  const file = join(dir, 'dies.sqlite');
  const store = new SqliteStore(file, { sealKey: privateKey, writerThread: true });
  try {
    await store.setMeta('before', '1');
    expect(store.writerUtilization()).not.toBeNull();
    const first = writerOf(store);
    // Asked in this turn, sent at its end: by then the thread is being terminated, so it can never
    // answer. The write must fail (not hang, and not be reported as written).
    const inFlight = store.setMeta('during', '2');
    const killed = first.terminate();
    await expect(inFlight).rejects.toThrow(/writer thread exited/);
    await killed;

    await store.setMeta('after', '3');
    expect(writerOf(store)).not.toBe(first);
    expect(await store.getMeta('before')).toBe('1');
    expect(await store.getMeta('after')).toBe('3');
  } finally {
    await store.close();
  }
  // Everything acknowledged is in the file for the next opener.
  const again = new SqliteStore(file);
  try {
    expect(await again.getMeta('after')).toBe('3');
  } finally {
    await again.close();
  }
});
