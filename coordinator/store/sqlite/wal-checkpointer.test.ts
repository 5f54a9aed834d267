import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { openDatabase } from './schema.js';
import { waitFor } from '../../testing/helpers.js';
import { WalCheckpointer } from './wal-checkpointer.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tabgrid-wal-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function writer(file: string) {
  const db = openDatabase(file, 'NORMAL');
  db.pragma('wal_autocheckpoint = 0'); // only the thread copies the log back
  db.exec('CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO blobs(data) VALUES (?)');
  const commit = (rows: number, bytes: number) => db.transaction(() => {
    for (let i = 0; i < rows; i++) insert.run(Buffer.alloc(bytes, i));
  })();
  return { db, commit };
}

test('the thread copies committed pages into the database file while the writer goes on', async () => {
  const file = join(dir, 'a.sqlite');
  const { db, commit } = writer(file);
  const cp = new WalCheckpointer(file, { intervalMs: 10 });
  try {
    for (let i = 0; i < 20; i++) commit(100, 100);
    const after = cp.passes;
    await waitFor(() => cp.passes >= after + 2, 5_000, 'two passes after the last commit');
    // The database file alone, without its log, already holds every committed row.
    copyFileSync(file, join(dir, 'copy.sqlite'));
    const copy = new Database(join(dir, 'copy.sqlite'), { readonly: true });
    expect((copy.prepare('SELECT count(*) AS n FROM blobs').get() as { n: number }).n).toBe(2000);
    copy.close();
  } finally {
    await cp.stop();
    db.close();
  }
});

test('the log starts over once copied back, so it stops growing', async () => {
  const file = join(dir, 'b.sqlite');
  const { db, commit } = writer(file);
  const cp = new WalCheckpointer(file, { intervalMs: 10, restartBytes: 256 * 1024 });
  try {
    // 100 commits of ~100 KB: 10 MB through the log.
    for (let i = 0; i < 100; i++) {
      commit(25, 4000);
      const seen = cp.passes;
      await waitFor(() => cp.passes > seen, 5_000, 'a pass');
    }
    expect(statSync(`${file}-wal`).size).toBeLessThan(2 * 2 ** 20);
    expect((db.prepare('SELECT count(*) AS n FROM blobs').get() as { n: number }).n).toBe(2500);
  } finally {
    await cp.stop();
    db.close();
  }
});

test('stop() returns when the thread has already died (its database could not be opened)', async () => {
  const cp = new WalCheckpointer(join(dir, 'no-such-dir', 'a.sqlite'), { intervalMs: 10 });
  await waitFor(() => !cp.running, 10_000, 'the thread to fail on the file and exit');
  // Nothing is left to answer: stop() must settle by itself (a hang fails the test by its timeout).
  await cp.stop();
  expect(cp.running).toBe(false);
  expect(cp.passes).toBe(0);
});
