// The SQLite file's schema upgrades: a data directory from before result counts moved onto the
// volunteer's row opens with every volunteer's counts taken from its results, the indexes by
// volunteer that moved replaced, and the counts kept from then on.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { openDatabase } from './schema.js';
import { SqliteRoomStore } from './rooms.js';
import { makeTempDir, removeDir } from '../../testing/helpers.js';

const dir = makeTempDir();
afterAll(() => removeDir(dir));

const indexes = (db: Database.Database) => (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'`).all() as { name: string }[]).map((r) => r.name);
const counts = (db: Database.Database) =>
  db.prepare('SELECT id, valid_results AS valid, invalid_results AS invalid, pending_results AS pending FROM volunteers ORDER BY id').all();

test("an older file gets each volunteer's result counts from its results, and they stay right", () => {
  const file = join(dir, 'old.sqlite');
  // Today's schema with the rows an older coordinator left, then turned back into the older layout.
  const db = openDatabase(file);
  db.exec(`INSERT INTO volunteers(id, public_key, created_at, last_seen) VALUES ('v_a', 'k_a', 1, 1), ('v_b', 'k_b', 1, 1);
    INSERT INTO jobs(id, kind, state, replication, meta, created_at, total) VALUES ('j', 'matmul', 'running', 2, '{}', 1, 3);`);
  for (let i = 0; i < 3; i++) {
    db.prepare(`INSERT INTO work_units(id, job_id, idx, kind, params, inputs, output_bytes, flops, tolerance, meta, target, state, job_seq)
      VALUES (?, 'j', ?, 'matmul', '{}', '{}', 4, 2, '{}', '{}', 2, 'open', 1)`).run(`j.${i}`, i);
  }
  const result = db.prepare(`INSERT INTO results(id, wu_id, lease_id, volunteer_id, sha256, state, received_at, data) VALUES (?, ?, 'l', ?, 'x', ?, 1, x'00')`);
  result.run('r1', 'j.0', 'v_a', 'valid');
  result.run('r2', 'j.1', 'v_a', 'valid');
  result.run('r3', 'j.2', 'v_a', 'invalid');
  result.run('r4', 'j.0', 'v_b', 'pending');
  db.exec(`DROP TRIGGER results_counted; DROP TRIGGER results_recounted; DROP INDEX ledger_volunteer_ts; DROP INDEX ledger_wu;
    ALTER TABLE volunteers DROP COLUMN valid_results; ALTER TABLE volunteers DROP COLUMN invalid_results; ALTER TABLE volunteers DROP COLUMN pending_results;
    CREATE INDEX result_volunteer ON results(volunteer_id, state); CREATE INDEX ledger_volunteer_wu ON ledger(volunteer_id, wu_id);`);
  db.close();

  const upgraded = openDatabase(file);
  try {
    expect(counts(upgraded)).toEqual([
      { id: 'v_a', valid: 2, invalid: 1, pending: 0 },
      { id: 'v_b', valid: 0, invalid: 0, pending: 1 },
    ]);
    expect(indexes(upgraded)).not.toContain('result_volunteer');
    expect(indexes(upgraded)).not.toContain('ledger_volunteer_wu');
    expect(indexes(upgraded)).toEqual(expect.arrayContaining(['ledger_volunteer_ts', 'ledger_wu']));
    // From now on the triggers count: a new result, a state change, a change to the same state.
    upgraded.prepare(`INSERT INTO results(id, wu_id, lease_id, volunteer_id, sha256, state, received_at, data) VALUES ('r5', 'j.1', 'l', 'v_b', 'x', 'pending', 2, x'00')`).run();
    upgraded.prepare(`UPDATE results SET state = 'valid' WHERE id = 'r4'`).run();
    upgraded.prepare(`UPDATE results SET state = 'valid', reason = 'again' WHERE id = 'r4'`).run();
    upgraded.prepare(`UPDATE results SET state = 'invalid' WHERE id = 'r1'`).run();
    expect(counts(upgraded)).toEqual([
      { id: 'v_a', valid: 1, invalid: 2, pending: 0 },
      { id: 'v_b', valid: 1, invalid: 0, pending: 1 },
    ]);
  } finally {
    upgraded.close();
  }
  // Opening it again changes nothing.
  const again = openDatabase(file);
  expect(counts(again)).toEqual([
    { id: 'v_a', valid: 1, invalid: 2, pending: 0 },
    { id: 'v_b', valid: 1, invalid: 0, pending: 1 },
  ]);
  again.close();
});

test('an older file gets jobs without owners (seen by admin tokens only) and rooms whose idle time starts now', () => {
  const file = join(dir, 'owners.sqlite');
  const db = openDatabase(file);
  db.exec(`INSERT INTO jobs(id, kind, state, replication, meta, created_at, total) VALUES ('j_old', 'matmul', 'done', 2, '{}', 1, 1);`);
  db.exec(`DROP INDEX jobs_owner; ALTER TABLE jobs DROP COLUMN owner;
    CREATE TABLE rooms (code TEXT PRIMARY KEY, name TEXT NOT NULL, teacher_key_hash TEXT NOT NULL, paused INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
    INSERT INTO rooms VALUES ('ABCDEF', 'old room', 'h', 0, 1);`);
  db.close();
  const upgraded = openDatabase(file);
  try {
    expect(upgraded.prepare('SELECT id, owner FROM jobs').all()).toEqual([{ id: 'j_old', owner: null }]);
    new SqliteRoomStore(upgraded, 5000);
    expect(upgraded.prepare('SELECT code, created_by, last_active FROM rooms').all()).toEqual([{ code: 'ABCDEF', created_by: null, last_active: 5000 }]);
    upgraded.prepare(`INSERT INTO jobs(id, kind, state, replication, meta, created_at, total, owner) VALUES ('j_new', 'matmul', 'queued', 2, '{}', 2, 1, 'tk_a')`).run();
  } finally {
    upgraded.close();
  }
});
