// SQLite implementation of Store (better-sqlite3, WAL). Every method is atomic. Writes are group
// committed: the writes asked for in one event-loop turn run in one transaction (each inside its own
// savepoint, so one failing write does not undo the others) and their promises settle only after
// the commit is on disk — thousands of acknowledged writes a second for one fsync each turn. The
// fsync of the WAL runs on libuv's thread pool (WalSync), not inside COMMIT on the event loop:
// the same guarantee as synchronous=FULL (nothing is acknowledged before its WAL frames are
// synced), without stalling every other connection for the disk.
import { closeSync, fsync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { timeOrderedId } from './ids.js';
import { WalCheckpointer } from './wal-checkpointer.js';
import { nextEntry, type Sealer } from './ledger.js';
import type { LedgerEntry, LedgerReceipt, LedgerSeal } from './protocol.js';
import { freshTrust, type TrustRecord } from './trust.js';
import type {
  JobRecord,
  LeaseRecord,
  NewWorkUnit,
  ResultRecord,
  Revocation,
  Settlement,
  SettlementOutcome,
  SoleSettlement,
  Store,
  VolunteerRecord,
  VolunteerStats,
  WorkUnitRecord,
} from './store.js';
import { leaseQueryLimit, LIST_VOLUNTEERS_SQL, pickUnits, requireSealer, settlementEntries, type LeaseRequest } from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS volunteers (
  id TEXT PRIMARY KEY, public_key TEXT NOT NULL UNIQUE, name TEXT,
  credit INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, last_seen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, state TEXT NOT NULL, replication INTEGER NOT NULL,
  meta TEXT NOT NULL, created_at INTEGER NOT NULL, finished_at INTEGER, error TEXT,
  result_sha TEXT, result_shape TEXT, total INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0);
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
CREATE INDEX IF NOT EXISTS result_volunteer ON results(volunteer_id, state);
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
CREATE INDEX IF NOT EXISTS ledger_volunteer_wu ON ledger(volunteer_id, wu_id);
CREATE TABLE IF NOT EXISTS trust (
  volunteer_id TEXT PRIMARY KEY, valid_streak INTEGER NOT NULL, strikes INTEGER NOT NULL,
  suspended_until INTEGER NOT NULL, verified_at INTEGER NOT NULL);
`;

export type Row = Record<string, unknown>;

const json = (v: unknown) => JSON.stringify(v);
const parse = <T>(v: unknown): T => JSON.parse(String(v)) as T;

export function toJob(r: Row): JobRecord {
  return {
    id: String(r.id),
    kind: String(r.kind),
    name: (r.name as string | null) ?? null,
    state: r.state as JobRecord['state'],
    replication: Number(r.replication),
    meta: parse(r.meta),
    createdAt: Number(r.created_at),
    finishedAt: r.finished_at == null ? null : Number(r.finished_at),
    error: (r.error as string | null) ?? null,
    resultSha: (r.result_sha as string | null) ?? null,
    resultShape: r.result_shape == null ? null : parse(r.result_shape),
    total: Number(r.total),
    done: Number(r.done),
  };
}

type WuFixed = Pick<WorkUnitRecord, 'params' | 'inputs' | 'tolerance' | 'meta'>;
/** A unit's JSON columns never change: parse them once (the hot path reads each unit 3 times). */
const wuFixed = new Map<string, WuFixed>();

function fixedParts(id: string, r: Row): WuFixed {
  let f = wuFixed.get(id);
  if (!f) {
    f = { params: parse(r.params), inputs: parse(r.inputs), tolerance: parse(r.tolerance), meta: parse(r.meta) };
    if (wuFixed.size >= 50_000) wuFixed.delete(wuFixed.keys().next().value!);
    wuFixed.set(id, f);
  }
  return f;
}

export function toWu(r: Row): WorkUnitRecord {
  const id = String(r.id);
  const f = fixedParts(id, r);
  return {
    id,
    jobId: String(r.job_id),
    idx: Number(r.idx),
    kind: String(r.kind),
    params: f.params,
    inputs: f.inputs,
    outputBytes: Number(r.output_bytes),
    flops: Number(r.flops),
    tolerance: f.tolerance,
    meta: f.meta,
    target: Number(r.target),
    state: r.state as WorkUnitRecord['state'],
    canonicalResultId: (r.canonical_result_id as string | null) ?? null,
  };
}

export function toLease(r: Row): LeaseRecord {
  return {
    id: String(r.id),
    wuId: String(r.wu_id),
    volunteerId: String(r.volunteer_id),
    issuedAt: Number(r.issued_at),
    deadline: Number(r.deadline),
    state: r.state as LeaseRecord['state'],
  };
}

export function toResult(r: Row): ResultRecord {
  return {
    id: String(r.id),
    wuId: String(r.wu_id),
    leaseId: String(r.lease_id),
    volunteerId: String(r.volunteer_id),
    sha256: String(r.sha256),
    state: r.state as ResultRecord['state'],
    receivedAt: Number(r.received_at),
    reason: (r.reason as string | null) ?? null,
    data: new Uint8Array(r.data as Buffer),
  };
}

export function toVolunteer(r: Row): VolunteerRecord {
  return {
    id: String(r.id),
    publicKey: String(r.public_key),
    name: (r.name as string | null) ?? null,
    credit: Number(r.credit),
    createdAt: Number(r.created_at),
    lastSeen: Number(r.last_seen),
  };
}

export function toLedgerEntry(r: Row): LedgerEntry {
  return {
    seq: Number(r.seq),
    ts: Number(r.ts),
    volunteerId: String(r.volunteer_id),
    jobId: String(r.job_id),
    wuId: String(r.wu_id),
    amount: Number(r.amount),
    prevHash: String(r.prev_hash),
    hash: String(r.hash),
    ...(r.signature == null ? {} : { signature: String(r.signature) }),
  };
}

export function toLedgerSeal(r: Row): LedgerSeal {
  return {
    firstSeq: Number(r.first_seq),
    lastSeq: Number(r.last_seq),
    headHash: String(r.head_hash),
    root: String(r.root),
    signature: String(r.signature),
  };
}

/** Columns added after the first release, for data directories made before them. */
function migrate(db: Database.Database) {
  const cols = new Set((db.prepare('PRAGMA table_info(leases)').all() as Row[]).map((r) => String(r.name)));
  if (!cols.has('alive_until')) db.exec('ALTER TABLE leases ADD COLUMN alive_until INTEGER NOT NULL DEFAULT 0');
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
 * `synchronous`: NORMAL for the store's own connection, whose commits WalSync fsyncs before they
 * are acknowledged; FULL for any other connection, whose commits must be durable by themselves.
 */
export function openDatabase(file: string, synchronous: 'NORMAL' | 'FULL' = 'FULL'): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  const hasLeases = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'leases'`).get();
  if (hasLeases) migrate(db);
  db.exec(SCHEMA);
  return db;
}

/** Units kept in memory (each ~1 KB): more than a busy coordinator has in flight. */
const UNIT_CACHE_SIZE = 50_000;

/** Least time between two commits (each is an fsync that blocks the event loop). */
const COMMIT_GAP_MS = 2;

/**
 * fsyncs the WAL file off the event loop. A callback runs once an fsync that began after it was
 * queued has finished, so it covers every commit made before the callback was queued.
 */
class WalSync {
  private fd: number | null = null;
  private running = false;
  private queued: ((err: Error | null) => void)[] = [];

  constructor(private readonly path: string) {}

  after(fn: (err: Error | null) => void) {
    this.queued.push(fn);
    if (!this.running) this.run();
  }

  private run() {
    const batch = this.queued;
    this.queued = [];
    this.running = true;
    const done = (err: Error | null) => {
      this.running = false;
      for (const fn of batch) fn(err);
      if (this.queued.length) this.run();
    };
    try {
      this.fd ??= openSync(this.path, 'r');
    } catch (err) {
      return done(err as Error);
    }
    fsync(this.fd, done);
  }

  close() {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

interface PendingWrite {
  run: () => unknown;
  resolve: (value: never) => void;
  reject: (err: unknown) => void;
}

export class SqliteStore implements Store {
  readonly db: Database.Database;
  readonly shared = false;
  workVersion = 0;
  private readonly s;
  private pending: PendingWrite[] = [];
  private lastCommit = 0;
  private readonly runningJobs = new Set<string>();
  private flushing = false;
  /** Runs a function in a savepoint when called inside the batch's transaction. */
  private readonly savepoint: (fn: () => unknown) => unknown;
  private readonly batch: Database.Transaction<(writes: PendingWrite[]) => { ok: boolean; value: unknown }[]>;

  private readonly wal: WalSync;

  /**
   * What the caches learn from this batch's writes, applied once it commits: the caches below hold
   * committed state only (a write rolled back with its savepoint leaves them as they were).
   */
  private commitHooks: (() => void)[] = [];
  /** The ledger's last entry inside the current batch (undefined: not read yet). */
  private head: LedgerEntry | null | undefined = undefined;
  /**
   * Active leases and recently read units, as committed. One coordinator writes a SQLite file, so
   * the hot path's reads (a result's lease and unit) need not go to the database.
   */
  private readonly leases = new Map<string, LeaseRecord>();
  private readonly units = new Map<string, WorkUnitRecord>();
  /** Trust records changed since the last batch, written once each by the next one. */
  private readonly trustToWrite = new Map<string, TrustRecord>();
  /** The queued write that stores them. */
  private trustWrite: Promise<void> | null = null;

  private readonly extra: Database.Database[] = [];
  private readonly checkpointer: WalCheckpointer | undefined;

  /** Signs the seals; absent for stores that only read the ledger (CLI audit, tests). */
  private readonly sealer: Sealer | undefined;
  /** Entries appended in this batch by writes whose savepoint held, for the batch's one seal. */
  private unsealed: LedgerEntry[] = [];
  /** Each sealed entry's receipt, picked up by the write that appended the entry. */
  private readonly receipts = new WeakMap<LedgerEntry, LedgerReceipt>();

  constructor(
    private readonly file: string,
    opts: {
      sealer?: Sealer;
      /** Checkpoint the log on a thread of its own instead of inside commits (the coordinator's store). */
      checkpointThread?: boolean;
    } = {},
  ) {
    this.sealer = opts.sealer;
    this.db = openDatabase(file, 'NORMAL');
    this.wal = new WalSync(`${file}-wal`);
    if (opts.checkpointThread) {
      this.db.pragma('wal_autocheckpoint = 0');
      this.db.pragma(`journal_size_limit = ${64 * 2 ** 20}`); // a log that starts over shrinks back to this
      this.checkpointer = new WalCheckpointer(file);
    }
    this.savepoint = this.db.transaction((fn: () => unknown) => fn());
    this.batch = this.db.transaction((writes: PendingWrite[]) => {
      this.unsealed = [];
      this.commitHooks = [];
      const outcomes = writes.map((w) => {
        const [mark, hooks, head] = [this.unsealed.length, this.commitHooks.length, this.head];
        try {
          return { ok: true, value: this.savepoint(w.run) };
        } catch (err) {
          // Rolled back with its savepoint: not sealed, not cached, not the chain's head.
          this.unsealed.length = mark;
          this.commitHooks.length = hooks;
          this.head = head;
          return { ok: false, value: err };
        }
      });
      this.sealBatch();
      return outcomes;
    });
    const p = (sql: string) => this.db.prepare(sql);
    this.s = {
      getMeta: p('SELECT value FROM meta WHERE key = ?'),
      setMeta: p('INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      upsertVolunteer: p(`INSERT INTO volunteers(id, public_key, name, created_at, last_seen) VALUES (@id, @publicKey, @name, @now, @now)
        ON CONFLICT(id) DO UPDATE SET name = COALESCE(excluded.name, volunteers.name), last_seen = excluded.last_seen`),
      getVolunteer: p('SELECT * FROM volunteers WHERE id = ?'),
      listVolunteers: p(LIST_VOLUNTEERS_SQL),
      insertJob: p(`INSERT INTO jobs(id, kind, name, state, replication, meta, created_at, finished_at, error, result_sha, result_shape, total)
        VALUES (@id, @kind, @name, @state, @replication, @meta, @createdAt, NULL, NULL, NULL, @resultShape, @total)`),
      insertWu: p(`INSERT INTO work_units(id, job_id, idx, kind, params, inputs, output_bytes, flops, tolerance, meta, target, state, job_seq)
        VALUES (@id, @jobId, @idx, @kind, @params, @inputs, @outputBytes, @flops, @tolerance, @meta, @target, 'open', @jobSeq)`),
      jobSeq: p('SELECT count(*) AS n FROM jobs'),
      getJob: p('SELECT * FROM jobs WHERE id = ?'),
      listJobs: p('SELECT * FROM jobs ORDER BY created_at DESC LIMIT 500'),
      setJobResult: p(`UPDATE jobs SET state = 'done', result_sha = ?, finished_at = ? WHERE id = ?`),
      failJob: p(`UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ? AND state IN ('queued', 'running')`),
      getWu: p('SELECT * FROM work_units WHERE id = ?'),
      insertLease: p(`INSERT INTO leases(id, wu_id, volunteer_id, issued_at, deadline, state, alive_until) VALUES (?, ?, ?, ?, ?, 'active', ?)`),
      liveDelta: p('UPDATE work_units SET live = live + ? WHERE id = ?'),
      jobRunning: p(`UPDATE jobs SET state = 'running' WHERE id = ? AND state = 'queued'`),
      getLease: p('SELECT * FROM leases WHERE id = ?'),
      endLease: p(`UPDATE leases SET state = ? WHERE id = ? AND state = 'active'`),
      expiredLeases: p(`SELECT * FROM leases WHERE state = 'active' AND deadline < ?`),
      countActive: p(`SELECT count(*) AS n FROM leases WHERE wu_id = ? AND state = 'active'`),
      insertResult: p(`INSERT INTO results(id, wu_id, lease_id, volunteer_id, sha256, state, received_at, reason, data)
        VALUES (@id, @wuId, @leaseId, @volunteerId, @sha256, @state, @receivedAt, @reason, @data)
        ON CONFLICT(wu_id, volunteer_id) DO NOTHING`),
      liveResults: p(`SELECT * FROM results WHERE wu_id = ? AND state != 'invalid' ORDER BY received_at, id`),
      resultsOfUnit: p(`SELECT coalesce(sum(volunteer_id = ?), 0) AS mine, coalesce(sum(state != 'invalid'), 0) AS live FROM results WHERE wu_id = ?`),
      setTarget: p('UPDATE work_units SET target = ? WHERE id = ?'),
      resultState: p('UPDATE results SET state = ?, reason = COALESCE(?, reason) WHERE id = ?'),
      wuDone: p(`UPDATE work_units SET state = 'done', canonical_result_id = ? WHERE id = ? AND state = 'open'`),
      jobDone: p('UPDATE jobs SET done = done + 1 WHERE id = ? RETURNING done, total, state'),
      addCredit: p('UPDATE volunteers SET credit = credit + ? WHERE id = ? RETURNING credit'),
      ledgerHead: p('SELECT * FROM ledger ORDER BY seq DESC LIMIT 1'),
      insertLedger: p(`INSERT INTO ledger(seq, ts, volunteer_id, job_id, wu_id, amount, prev_hash, hash)
        VALUES (@seq, @ts, @volunteerId, @jobId, @wuId, @amount, @prevHash, @hash)`),
      ledgerFrom: p('SELECT * FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?'),
      insertSeal: p(`INSERT INTO ledger_seals(first_seq, last_seq, head_hash, root, signature)
        VALUES (@firstSeq, @lastSeq, @headHash, @root, @signature)`),
      sealsFrom: p('SELECT * FROM ledger_seals WHERE last_seq > ? ORDER BY last_seq LIMIT ?'),
      wuError: p(`UPDATE work_units SET state = 'error' WHERE id = ? AND state = 'open'`),
      invalidatePending: p(`UPDATE results SET state = 'invalid', reason = ? WHERE wu_id = ? AND state = 'pending'`),
      closeJobUnits: p(`UPDATE work_units SET state = 'error' WHERE job_id = ? AND state = 'open'`),
      abandonJobLeases: p(`UPDATE leases SET state = 'abandoned' WHERE state = 'active'
        AND wu_id IN (SELECT id FROM work_units WHERE job_id = ?)`),
      getTrust: p('SELECT * FROM trust WHERE volunteer_id = ?'),
      putTrust: p(`INSERT INTO trust(volunteer_id, valid_streak, strikes, suspended_until, verified_at)
        VALUES (@volunteerId, @validStreak, @strikes, @suspendedUntil, @verifiedAt)
        ON CONFLICT(volunteer_id) DO UPDATE SET valid_streak = excluded.valid_streak, strikes = excluded.strikes,
          suspended_until = excluded.suspended_until, verified_at = excluded.verified_at`),
      unreplicated: p(`SELECT r.id, r.wu_id FROM results r JOIN work_units wu ON wu.id = r.wu_id
        WHERE r.volunteer_id = ? AND r.state = 'valid' AND r.received_at > ? AND wu.state = 'done'
          AND (SELECT count(*) FROM results r2 WHERE r2.wu_id = r.wu_id AND r2.state = 'valid') = 1`),
      getResult: p('SELECT * FROM results WHERE id = ?'),
      reopenWu: p(`UPDATE work_units SET state = 'open', canonical_result_id = NULL, target = ? WHERE id = ? AND state = 'done'`),
      jobReopen: p(`UPDATE jobs SET done = done - 1,
        state = CASE WHEN state = 'done' THEN 'running' ELSE state END,
        result_sha = CASE WHEN state = 'done' THEN NULL ELSE result_sha END,
        finished_at = CASE WHEN state = 'done' THEN NULL ELSE finished_at END WHERE id = ?`),
      creditFor: p('SELECT COALESCE(sum(amount), 0) AS n FROM ledger WHERE volunteer_id = ? AND wu_id = ?'),
      unsettledUnits: p(`SELECT DISTINCT r.wu_id FROM results r JOIN work_units wu ON wu.id = r.wu_id
        WHERE r.state = 'pending' AND wu.state = 'open'`),
      unassembledJobs: p(`SELECT id FROM jobs WHERE state = 'running' AND done = total`),
      canonical: p(`SELECT wu.*, r.data AS result_data FROM work_units wu JOIN results r ON r.id = wu.canonical_result_id
        WHERE wu.job_id = ? ORDER BY wu.idx`),
    };
  }

  /** One seal over every entry this batch appended, in the batch's transaction: one signature per commit. */
  private sealBatch() {
    if (this.unsealed.length === 0) return;
    const { seal, receipts } = requireSealer(this.sealer)(this.unsealed);
    this.s.insertSeal.run(seal);
    for (const r of receipts) this.receipts.set(r.entry, r);
    this.unsealed = [];
  }

  /** The receipts of entries a committed write appended. */
  private receiptsOf<T extends { entries: LedgerEntry[] }>(written: T): Omit<T, 'entries'> & { entries: LedgerReceipt[] } {
    const entries = written.entries.map((e) => {
      const r = this.receipts.get(e);
      if (!r) throw new Error(`ledger entry #${e.seq} was committed without a seal`);
      return r;
    });
    return { ...written, entries };
  }

  /** Queues a write for this turn's transaction; resolves once it is committed. */
  private write<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ run, resolve: resolve as (v: never) => void, reject });
      if (this.pending.length === 1 && !this.flushing) this.scheduleFlush();
    });
  }

  /**
   * Commits at the end of this event-loop turn, but no sooner than COMMIT_GAP_MS after the last
   * commit: under load, writes pile up into fewer, larger commits, each costing one fsync.
   */
  private scheduleFlush() {
    const wait = this.lastCommit + COMMIT_GAP_MS - performance.now();
    if (wait <= 0) setImmediate(() => this.flush());
    else setTimeout(() => this.flush(), wait);
  }

  private flush() {
    if (this.pending.length === 0 || !this.db.open) return;
    const writes = this.pending;
    this.pending = [];
    this.flushing = true;
    let outcomes: { ok: boolean; value: unknown }[];
    try {
      // IMMEDIATE: the write lock is taken (waiting out a checkpoint's RESTART) before anything is
      // read, so the batch's first write never finds its snapshot stale (an instant SQLITE_BUSY).
      outcomes = this.batch.immediate(writes);
      for (const hook of this.commitHooks) hook();
    } catch (err) {
      this.head = undefined; // rolled back: read it again
      for (const w of writes) w.reject(err); // the commit itself failed: nothing was acknowledged
      return;
    } finally {
      this.commitHooks = [];
      this.flushing = false;
      this.lastCommit = performance.now();
      if (this.pending.length) this.scheduleFlush();
    }
    // Committed; acknowledged once the WAL is on disk.
    this.wal.after((err) =>
      writes.forEach((w, i) => (err ? w.reject(err) : outcomes[i].ok ? w.resolve(outcomes[i].value as never) : w.reject(outcomes[i].value))),
    );
  }

  /**
   * Another connection to the same file, for modules that write on their own (classroom rooms):
   * synchronous=FULL, so each of its commits is durable before it returns. Closed with the store.
   */
  connection(): Database.Database {
    const db = openDatabase(this.file, 'FULL');
    this.extra.push(db);
    return db;
  }

  async close(): Promise<void> {
    for (const db of this.extra.splice(0)) db.close();
    this.flush();
    await new Promise((resolve) => this.wal.after(resolve)); // the last commits are on disk
    await this.checkpointer?.stop();
    this.db.close();
    this.wal.close();
  }

  async getMeta(key: string) {
    const row = this.s.getMeta.get(key) as Row | undefined;
    return row ? String(row.value) : null;
  }

  async setMeta(key: string, value: string) {
    await this.write(() => this.s.setMeta.run(key, value));
  }

  async upsertVolunteer(v: { id: string; publicKey: string; name: string | null; now: number }) {
    return this.write(() => {
      this.s.upsertVolunteer.run(v);
      return toVolunteer(this.s.getVolunteer.get(v.id) as Row);
    });
  }

  async getVolunteer(id: string) {
    const row = this.s.getVolunteer.get(id) as Row | undefined;
    return row ? toVolunteer(row) : null;
  }

  async listVolunteers(): Promise<VolunteerStats[]> {
    return (this.s.listVolunteers.all() as Row[]).map((r) => ({
      ...toVolunteer(r),
      valid: Number(r.valid),
      invalid: Number(r.invalid),
      pending: Number(r.pending),
    }));
  }

  async createJob(job: Omit<JobRecord, 'total' | 'done'>, units: NewWorkUnit[]) {
    await this.write(() => {
      const jobSeq = Number((this.s.jobSeq.get() as Row).n) + 1;
      this.s.insertJob.run({
        ...job,
        meta: json(job.meta),
        resultShape: job.resultShape ? json(job.resultShape) : null,
        total: units.length,
      });
      for (const u of units) {
        this.s.insertWu.run({
          ...u,
          params: json(u.params),
          inputs: json(u.inputs),
          tolerance: json(u.tolerance),
          meta: json(u.meta),
          target: u.target ?? job.replication,
          jobSeq,
        });
      }
    });
    this.workVersion++;
  }

  async getJob(id: string) {
    const row = this.s.getJob.get(id) as Row | undefined;
    return row ? toJob(row) : null;
  }

  async listJobs() {
    return (this.s.listJobs.all() as Row[]).map(toJob);
  }

  async setJobResult(jobId: string, sha256: string, now: number) {
    await this.write(() => this.s.setJobResult.run(sha256, now, jobId));
  }

  async failJob(jobId: string, error: string, now: number) {
    await this.write(() => {
      this.failJobTx(jobId, error, now);
    });
  }

  /** The job fails; its open units close (nobody is given them again) and their leases end. */
  private failJobTx(jobId: string, error: string, now: number) {
    if (this.s.failJob.run(error, now, jobId).changes === 0) return;
    this.s.closeJobUnits.run(jobId);
    this.s.abandonJobLeases.run(jobId);
    this.manyChanged();
  }

  async getWorkUnit(id: string) {
    const hit = this.units.get(id);
    if (hit) return hit;
    const row = this.s.getWu.get(id) as Row | undefined;
    if (!row) return null;
    const wu = toWu(row);
    this.cacheUnit(wu);
    return wu;
  }

  private cacheUnit(wu: WorkUnitRecord) {
    if (this.units.size >= UNIT_CACHE_SIZE) this.units.delete(this.units.keys().next().value!);
    this.units.set(wu.id, wu);
  }

  /** Inside a write: this unit changes, so its cached copy goes once the write commits. */
  private unitChanged(wuId: string) {
    this.commitHooks.push(() => this.units.delete(wuId));
  }

  /** Inside a write that changes many units and leases at once (a failed job): forget them all. */
  private manyChanged() {
    this.commitHooks.push(() => {
      this.units.clear();
      this.leases.clear();
    });
  }

  /** Inside a write: a unit whose job is wanted (a unit's job never changes, so any copy will do). */
  private unitTx(wuId: string): WorkUnitRecord {
    return this.units.get(wuId) ?? toWu(this.s.getWu.get(wuId) as Row);
  }

  private readonly nextWuByKinds = new Map<number, Database.Statement>();

  /** The lease query for a list of `kinds` job kinds (bound as @k0…), or for every kind. */
  private nextWu(kinds: number | undefined): Database.Statement {
    const key = kinds ?? -1;
    let stmt = this.nextWuByKinds.get(key);
    if (!stmt) {
      const kindList = kinds === undefined ? '' : `AND wu.kind IN (${Array.from({ length: kinds }, (_, i) => `@k${i}`).join(', ') || 'NULL'})`;
      // `live` counts active leases plus pending/valid results, so "needs a replica" is one comparison.
      stmt = this.db.prepare(`SELECT wu.* FROM work_units wu INDEXED BY wu_wanting
        WHERE wu.state = 'open' AND wu.live < wu.target
          AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.wu_id = wu.id AND l.volunteer_id = @v AND l.state = 'active')
          AND NOT EXISTS (SELECT 1 FROM results r WHERE r.wu_id = wu.id AND r.volunteer_id = @v)
          ${kindList}
        ORDER BY wu.job_seq, wu.idx LIMIT @limit`);
      this.nextWuByKinds.set(key, stmt);
    }
    return stmt;
  }

  async leaseUnits(req: LeaseRequest) {
    return this.write(() => {
      const params: Record<string, unknown> = { v: req.volunteerId, limit: leaseQueryLimit(req) };
      req.kinds?.forEach((k, i) => (params[`k${i}`] = k));
      const rows = this.nextWu(req.kinds?.length).all(params) as Row[];
      return pickUnits(rows.map(toWu), req).map((wu) => {
        // Time-ordered ids: new rows land at the end of the id index, not on a random page each.
        const lease: LeaseRecord = { id: timeOrderedId('l_'), wuId: wu.id, volunteerId: req.volunteerId, issuedAt: req.now, deadline: req.deadline, state: 'active' };
        this.s.insertLease.run(lease.id, wu.id, req.volunteerId, req.now, req.deadline, req.aliveUntil ?? req.deadline);
        this.s.liveDelta.run(1, wu.id);
        this.commitHooks.push(() => {
          this.leases.set(lease.id, lease);
          this.cacheUnit(wu);
        });
        // A job never goes back to queued: mark it running once, not on every lease.
        if (!this.runningJobs.has(wu.jobId)) {
          this.s.jobRunning.run(wu.jobId);
          this.runningJobs.add(wu.jobId);
        }
        return { lease, wu };
      });
    });
  }

  async getLease(id: string) {
    return this.leaseOf(id);
  }

  private leaseOf(id: string): LeaseRecord | null {
    const hit = this.leases.get(id);
    if (hit) return hit;
    const row = this.s.getLease.get(id) as Row | undefined;
    return row ? toLease(row) : null;
  }

  private endLeaseTx(lease: LeaseRecord, state: string): number {
    const changed = this.s.endLease.run(state, lease.id).changes;
    if (changed) {
      this.s.liveDelta.run(-1, lease.wuId);
      this.commitHooks.push(() => this.leases.delete(lease.id));
    }
    if (changed && state !== 'returned') this.workVersion++; // a replica is wanted again
    return changed;
  }

  async endLeases(leaseIds: string[], state: 'abandoned' | 'returned' | 'expired') {
    return this.write(() => {
      let n = 0;
      for (const id of leaseIds) {
        const lease = this.leaseOf(id);
        if (lease) n += this.endLeaseTx(lease, state);
      }
      return n;
    });
  }

  /**
   * Nothing to renew: one coordinator per SQLite file, whose leases live exactly as long as it
   * does (it expires all of them when it starts), so their heartbeat is not stored.
   */
  async renewLeases(_aliveUntil: number) {
    return 0;
  }

  async expireLeases(now: number) {
    return this.write(() => {
      let n = 0;
      for (const row of this.s.expiredLeases.all(now) as Row[]) n += this.endLeaseTx(toLease(row), 'expired');
      return n;
    });
  }

  async countActiveLeases(wuId: string) {
    return Number((this.s.countActive.get(wuId) as Row).n);
  }

  async addResult(r: ResultRecord) {
    return this.write(() => this.addResultTx(r));
  }

  private addResultTx(r: ResultRecord): boolean {
    const data = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
    if (this.s.insertResult.run({ ...r, data }).changes === 0) return false; // this volunteer already has one
    // The lease stops counting towards `live` and a live result starts: one update for both.
    const ended = this.s.endLease.run('returned', r.leaseId).changes;
    if (ended) this.commitHooks.push(() => this.leases.delete(r.leaseId));
    const delta = (r.state !== 'invalid' ? 1 : 0) - ended;
    if (delta !== 0) this.s.liveDelta.run(delta, r.wuId);
    if (delta < 0) this.workVersion++; // an invalid result: a replica is wanted again
    return true;
  }

  async addSoleResult(r: ResultRecord, sole: SoleSettlement) {
    const added = await this.write(() => {
      const seen = this.s.resultsOfUnit.get(r.volunteerId, r.wuId) as Row;
      if (Number(seen.mine) > 0) return null; // this volunteer already has one
      // Alone only when nothing else is live and the unit is still open; otherwise stored to be compared.
      if (Number(seen.live) > 0 || this.s.wuDone.run(r.id, r.wuId).changes === 0) return this.addResultTx(r) ? { outcome: null } : null;
      this.unitChanged(r.wuId);
      this.addResultTx({ ...r, state: 'valid' });
      const credits = [{ volunteerId: r.volunteerId, amount: sole.amount }];
      return { outcome: this.creditTx({ wuId: r.wuId, canonicalResultId: r.id, valid: [r.id], invalid: [], credits, now: sole.now }) };
    });
    return added && { outcome: added.outcome && this.receiptsOf(added.outcome) };
  }

  async liveResults(wuId: string) {
    return (this.s.liveResults.all(wuId) as Row[]).map(toResult);
  }

  async raiseTarget(wuId: string, target: number) {
    await this.write(() => {
      this.s.setTarget.run(target, wuId);
      this.unitChanged(wuId);
    });
    this.workVersion++;
  }

  async settle(s: Settlement): Promise<SettlementOutcome> {
    const outcome = await this.write(() => {
      const wu = this.unitTx(s.wuId);
      if (this.s.wuDone.run(s.canonicalResultId, s.wuId).changes === 0) {
        return { entries: [], balances: {}, jobComplete: false, jobId: wu.jobId }; // settled already
      }
      this.unitChanged(s.wuId);
      for (const id of s.valid) this.s.resultState.run('valid', null, id);
      for (const id of s.invalid) {
        this.s.resultState.run('invalid', 'disagreed with the quorum', id);
        this.s.liveDelta.run(-1, s.wuId);
      }
      if (s.invalid.length) this.workVersion++;
      return this.creditTx(s);
    });
    return this.receiptsOf(outcome);
  }

  /** A settled unit counts towards its job, and its quorum is credited (inside a write; entries not yet sealed). */
  private creditTx(s: Settlement) {
    const { jobId } = this.unitTx(s.wuId);
    const job = this.s.jobDone.get(jobId) as Row;
    const entries = settlementEntries(s, jobId, this.headTx());
    const balances: Record<string, number> = {};
    for (const entry of entries) balances[entry.volunteerId] = this.appendEntry(entry);
    return { entries, balances, jobComplete: job.done === job.total && job.state === 'running', jobId };
  }

  async failWorkUnit(wuId: string, reason: string, now: number) {
    await this.write(() => {
      const wu = this.unitTx(wuId);
      this.s.wuError.run(wuId);
      this.unitChanged(wuId);
      this.s.invalidatePending.run(reason, wuId);
      this.failJobTx(wu.jobId, `work unit ${wuId} failed: ${reason}`, now);
    });
  }

  async unfinishedWork() {
    return {
      unitsToValidate: (this.s.unsettledUnits.all() as Row[]).map((r) => String(r.wu_id)),
      jobsToAssemble: (this.s.unassembledJobs.all() as Row[]).map((r) => String(r.id)),
    };
  }

  async canonicalOutputs(jobId: string) {
    return (this.s.canonical.all(jobId) as Row[]).map((r) => ({ wu: toWu(r), data: new Uint8Array(r.result_data as Buffer) }));
  }

  async ledgerEntries(afterSeq: number, limit: number) {
    return (this.s.ledgerFrom.all(afterSeq, limit) as Row[]).map(toLedgerEntry);
  }

  async ledgerHead() {
    const row = this.s.ledgerHead.get() as Row | undefined;
    return row ? toLedgerEntry(row) : null;
  }

  async ledgerSeals(afterSeq: number, limit: number) {
    return (this.s.sealsFrom.all(afterSeq, limit) as Row[]).map(toLedgerSeal);
  }

  /**
   * Trust records this store wrote, by identity: one coordinator writes a file, so its copy is
   * current (a store that only reads, like a test's observer, always reads the file).
   */
  private readonly trust = new Map<string, TrustRecord>();

  async getTrust(volunteerId: string): Promise<TrustRecord> {
    return this.trustOf(volunteerId);
  }

  private trustOf(volunteerId: string): TrustRecord {
    const hit = this.trust.get(volunteerId);
    return hit ? { ...hit } : this.readTrust(volunteerId);
  }

  /** Synchronous on the cache, so no other update of the identity can come in between. */
  async updateTrust(volunteerId: string, change: (t: TrustRecord) => TrustRecord) {
    const before = this.trustOf(volunteerId);
    const after = change(before);
    await this.putTrust(after);
    return { before, after };
  }

  private cacheTrust(t: TrustRecord) {
    if (this.trust.size >= 100_000) this.trust.delete(this.trust.keys().next().value!);
    this.trust.set(t.volunteerId, { ...t });
  }

  private readTrust(volunteerId: string): TrustRecord {
    const r = this.s.getTrust.get(volunteerId) as Row | undefined;
    if (!r) return freshTrust(volunteerId);
    return {
      volunteerId,
      validStreak: Number(r.valid_streak),
      strikes: Number(r.strikes),
      suspendedUntil: Number(r.suspended_until),
      verifiedAt: Number(r.verified_at),
    };
  }

  /**
   * Seen at once by this store's readers (the cache), written in the next group commit by one write
   * for every record changed since the last: a record changed several times (a batch of results)
   * is written once, its latest version.
   */
  putTrust(t: TrustRecord): Promise<void> {
    this.cacheTrust(t);
    this.trustToWrite.set(t.volunteerId, { ...t });
    this.trustWrite ??= this.write(() => {
      this.trustWrite = null; // changes from now on go into the next batch
      for (const record of this.trustToWrite.values()) this.s.putTrust.run(record);
      this.trustToWrite.clear();
    });
    return this.trustWrite;
  }

  async unreplicatedResults(volunteerId: string, since: number) {
    return (this.s.unreplicated.all(volunteerId, since) as Row[]).map((r) => ({ id: String(r.id), wuId: String(r.wu_id) }));
  }

  async revokeResults(rev: Revocation) {
    const revoked = await this.write(() => {
      const entries: LedgerEntry[] = [];
      const balances: Record<string, number> = {};
      for (const id of rev.resultIds) {
        const row = this.s.getResult.get(id) as Row | undefined;
        if (!row || row.state !== 'valid') continue;
        const result = toResult(row);
        const wu = toWu(this.s.getWu.get(result.wuId) as Row);
        if (wu.state !== 'done' || wu.canonicalResultId !== id) continue;
        this.unitChanged(wu.id);
        const job = toJob(this.s.getJob.get(wu.jobId) as Row);
        this.s.resultState.run('invalid', rev.reason, id);
        this.s.liveDelta.run(-1, wu.id);
        if (job.state !== 'failed') {
          // A failed job wants no more work: its result is taken back, nothing is recomputed.
          this.s.reopenWu.run(job.replication, wu.id);
          this.s.jobReopen.run(wu.jobId);
        }
        const earned = Number((this.s.creditFor.get(result.volunteerId, wu.id) as Row).n);
        if (earned > 0) {
          const entry = nextEntry(this.headTx(), { ts: rev.now, volunteerId: result.volunteerId, jobId: wu.jobId, wuId: wu.id, amount: -earned });
          balances[entry.volunteerId] = this.appendEntry(entry);
          entries.push(entry);
        }
      }
      return { entries, balances };
    });
    return this.receiptsOf(revoked);
  }

  /** The ledger's last entry, inside a write (this store is the file's one ledger writer). */
  private headTx(): LedgerEntry | null {
    if (this.head === undefined) {
      const row = this.s.ledgerHead.get() as Row | undefined;
      this.head = row ? toLedgerEntry(row) : null;
    }
    return this.head;
  }

  /**
   * Inserts an entry after the head, credits it and queues it for the batch's seal (inside a
   * write); returns the volunteer's new balance.
   */
  private appendEntry(entry: LedgerEntry): number {
    requireSealer(this.sealer); // without it this write fails here, and the batch's others still commit
    this.s.insertLedger.run(entry);
    const balance = Number((this.s.addCredit.get(entry.amount, entry.volunteerId) as Row | undefined)?.credit ?? 0);
    this.head = entry;
    this.unsealed.push(entry);
    return balance;
  }
}
