// The SQLite file's schema, its migrations, its connections, and the mapping of its rows to the
// store's records: shared by the store's reading side (sqlite-store.ts), its writer
// (sqlite-writer.ts) and the PostgreSQL store, whose tables have the same columns.
import Database from 'better-sqlite3';
import type { Row } from '../rows.js';

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS volunteers (
  id TEXT PRIMARY KEY, public_key TEXT NOT NULL UNIQUE, name TEXT,
  credit INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, last_seen INTEGER NOT NULL,
  valid_results INTEGER NOT NULL DEFAULT 0, invalid_results INTEGER NOT NULL DEFAULT 0, pending_results INTEGER NOT NULL DEFAULT 0);
-- The public volunteer list, best credited first, reads its first rows only; the sweep of idle
-- identities (work/identities.ts) and the count of unproven ones read only those with no credit.
CREATE INDEX IF NOT EXISTS volunteers_credit ON volunteers(credit DESC, created_at);
CREATE INDEX IF NOT EXISTS volunteers_idle ON volunteers(last_seen) WHERE credit = 0;
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, state TEXT NOT NULL, replication INTEGER NOT NULL,
  meta TEXT NOT NULL, created_at INTEGER NOT NULL, finished_at INTEGER, error TEXT,
  result_sha TEXT, result_shape TEXT, total INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0,
  owner TEXT);
-- A submit token lists its own jobs; a room's demo jobs are counted by their owner.
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, created_at);
CREATE TABLE IF NOT EXISTS work_units (
  id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(id), idx INTEGER NOT NULL, kind TEXT NOT NULL,
  params TEXT NOT NULL, inputs TEXT NOT NULL, output_bytes INTEGER NOT NULL, flops INTEGER NOT NULL,
  tolerance TEXT NOT NULL, meta TEXT NOT NULL, target INTEGER NOT NULL, state TEXT NOT NULL,
  canonical_result_id TEXT, live INTEGER NOT NULL DEFAULT 0, job_seq INTEGER NOT NULL);
DROP INDEX IF EXISTS wu_open;
-- Only units that still want a replica: leasing skips the ones fully leased without scanning them.
CREATE INDEX IF NOT EXISTS wu_wanting ON work_units(job_seq, idx) WHERE state = 'open' AND live < target;
CREATE INDEX IF NOT EXISTS wu_job ON work_units(job_id, idx);
CREATE TABLE IF NOT EXISTS leases (
  id TEXT PRIMARY KEY, wu_id TEXT NOT NULL REFERENCES work_units(id), volunteer_id TEXT NOT NULL,
  issued_at INTEGER NOT NULL, deadline INTEGER NOT NULL, state TEXT NOT NULL,
  alive_until INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS lease_wu ON leases(wu_id, volunteer_id);
-- Only active leases, and only by deadline: an entry per lease while it is out, none after.
DROP INDEX IF EXISTS lease_active;
DROP INDEX IF EXISTS lease_alive;
CREATE INDEX IF NOT EXISTS lease_deadline ON leases(deadline) WHERE state = 'active';
CREATE TABLE IF NOT EXISTS results (
  id TEXT PRIMARY KEY, wu_id TEXT NOT NULL REFERENCES work_units(id), lease_id TEXT NOT NULL,
  volunteer_id TEXT NOT NULL, sha256 TEXT NOT NULL, state TEXT NOT NULL, received_at INTEGER NOT NULL,
  reason TEXT, data BLOB NOT NULL, UNIQUE (wu_id, volunteer_id));
-- Each volunteer's results by state are counted on its row (the volunteer list), not found through an
-- index by volunteer: such an index takes a random page per result, ~15 µs of a unit's write.
DROP INDEX IF EXISTS result_volunteer;
CREATE TRIGGER IF NOT EXISTS results_counted AFTER INSERT ON results BEGIN
  UPDATE volunteers SET valid_results = valid_results + (NEW.state = 'valid'), invalid_results = invalid_results + (NEW.state = 'invalid'),
    pending_results = pending_results + (NEW.state = 'pending') WHERE id = NEW.volunteer_id; END;
CREATE TRIGGER IF NOT EXISTS results_recounted AFTER UPDATE OF state ON results WHEN OLD.state != NEW.state BEGIN
  UPDATE volunteers SET valid_results = valid_results + (NEW.state = 'valid') - (OLD.state = 'valid'),
    invalid_results = invalid_results + (NEW.state = 'invalid') - (OLD.state = 'invalid'),
    pending_results = pending_results + (NEW.state = 'pending') - (OLD.state = 'pending') WHERE id = NEW.volunteer_id; END;
CREATE TABLE IF NOT EXISTS ledger (
  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, volunteer_id TEXT NOT NULL, job_id TEXT NOT NULL,
  wu_id TEXT NOT NULL, amount INTEGER NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
  signature TEXT);
CREATE TRIGGER IF NOT EXISTS ledger_append_only_update BEFORE UPDATE ON ledger
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_append_only_delete BEFORE DELETE ON ledger
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
-- One signed seal per commit that appended entries: entries first_seq..last_seq (see ledger.ts).
CREATE TABLE IF NOT EXISTS ledger_seals (
  last_seq INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL, head_hash TEXT NOT NULL, root TEXT NOT NULL,
  signature TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS ledger_seals_append_only_update BEFORE UPDATE ON ledger_seals
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_seals_append_only_delete BEFORE DELETE ON ledger_seals
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
-- One index by volunteer (receipts newest first, a room's credit since a member joined, revocation's
-- search), one by unit (what a volunteer earned for a unit): each index by volunteer takes a random
-- page per entry, one by unit appends.
DROP INDEX IF EXISTS ledger_volunteer_wu;
CREATE INDEX IF NOT EXISTS ledger_volunteer_ts ON ledger(volunteer_id, ts);
CREATE INDEX IF NOT EXISTS ledger_wu ON ledger(wu_id);
CREATE TABLE IF NOT EXISTS trust (
  volunteer_id TEXT PRIMARY KEY, valid_streak INTEGER NOT NULL, strikes INTEGER NOT NULL,
  suspended_until INTEGER NOT NULL, verified_at INTEGER NOT NULL);
`;

/** Columns added after the first release, for data directories made before them. */
function migrate(db: Database.Database) {
  const columns = (table: string) => new Set((db.prepare(`PRAGMA table_info(${table})`).all() as Row[]).map((r) => String(r.name)));
  if (!columns('leases').has('alive_until')) db.exec('ALTER TABLE leases ADD COLUMN alive_until INTEGER NOT NULL DEFAULT 0');
  // Jobs belong to the token that submitted them; older jobs have no owner (admin tokens see them).
  // A file without a jobs table gets one, owner included, from SCHEMA.
  const jobColumns = columns('jobs');
  if (jobColumns.size > 0 && !jobColumns.has('owner')) db.exec('ALTER TABLE jobs ADD COLUMN owner TEXT');
  // Result counts moved onto the volunteer's row (SCHEMA's triggers keep them): counted once here.
  if (!columns('volunteers').has('valid_results')) {
    db.transaction(() => {
      for (const state of ['valid', 'invalid', 'pending']) db.exec(`ALTER TABLE volunteers ADD COLUMN ${state}_results INTEGER NOT NULL DEFAULT 0`);
      if (columns('results').size > 0) {
        db.exec(`UPDATE volunteers SET
          valid_results = (SELECT count(*) FROM results r WHERE r.volunteer_id = volunteers.id AND r.state = 'valid'),
          invalid_results = (SELECT count(*) FROM results r WHERE r.volunteer_id = volunteers.id AND r.state = 'invalid'),
          pending_results = (SELECT count(*) FROM results r WHERE r.volunteer_id = volunteers.id AND r.state = 'pending')`);
      }
    })();
  }
  // Ledgers from before seals signed every entry (signature NOT NULL): new entries carry none. The
  // table is rebuilt with the column nullable, rows unchanged; SCHEMA then re-creates its triggers.
  const sig = (db.prepare('PRAGMA table_info(ledger)').all() as Row[]).find((r) => r.name === 'signature');
  if (sig && Number(sig.notnull) === 1) {
    db.transaction(() => {
      db.exec(`DROP TRIGGER IF EXISTS ledger_append_only_update; DROP TRIGGER IF EXISTS ledger_append_only_delete;
        DROP INDEX IF EXISTS ledger_volunteer_wu; ALTER TABLE ledger RENAME TO ledger_signed;
        CREATE TABLE ledger (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, volunteer_id TEXT NOT NULL, job_id TEXT NOT NULL,
          wu_id TEXT NOT NULL, amount INTEGER NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, signature TEXT);
        INSERT INTO ledger SELECT seq, ts, volunteer_id, job_id, wu_id, amount, prev_hash, hash, signature FROM ledger_signed;
        DROP TABLE ledger_signed;`);
    })();
  }
}

/**
 * A connection to the file. `synchronous`: NORMAL for the store's writer, whose commits WalSync
 * fsyncs before they are acknowledged; FULL for any other connection that writes, whose commits
 * must be durable by themselves.
 */
export function connect(file: string, synchronous: 'NORMAL' | 'FULL' = 'FULL'): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}

/** A connection to the file, its schema created or brought up to date first. */
export function openDatabase(file: string, synchronous: 'NORMAL' | 'FULL' = 'FULL'): Database.Database {
  const db = connect(file, synchronous);
  const hasLeases = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'leases'`).get();
  if (hasLeases) migrate(db);
  db.exec(SCHEMA);
  return db;
}
