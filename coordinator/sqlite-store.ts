// SQLite implementation of Store (better-sqlite3, WAL). Every method is one transaction.
import Database from 'better-sqlite3';
import { GENESIS_HASH } from './ledger.js';
import type { LedgerEntry } from './protocol.js';
import { LEASE_CANDIDATES } from './store.js';
import type {
  ChooseWorkUnit,
  JobRecord,
  LeaseRecord,
  NewWorkUnit,
  ResultRecord,
  Settlement,
  SettlementOutcome,
  Store,
  VolunteerRecord,
  VolunteerStats,
  WorkUnitRecord,
} from './store.js';

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
CREATE INDEX IF NOT EXISTS wu_open ON work_units(state, job_seq, idx);
CREATE INDEX IF NOT EXISTS wu_job ON work_units(job_id, idx);
CREATE TABLE IF NOT EXISTS leases (
  id TEXT PRIMARY KEY, wu_id TEXT NOT NULL REFERENCES work_units(id), volunteer_id TEXT NOT NULL,
  issued_at INTEGER NOT NULL, deadline INTEGER NOT NULL, state TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS lease_wu ON leases(wu_id, volunteer_id);
CREATE INDEX IF NOT EXISTS lease_active ON leases(state, deadline);
CREATE TABLE IF NOT EXISTS results (
  id TEXT PRIMARY KEY, wu_id TEXT NOT NULL REFERENCES work_units(id), lease_id TEXT NOT NULL,
  volunteer_id TEXT NOT NULL, sha256 TEXT NOT NULL, state TEXT NOT NULL, received_at INTEGER NOT NULL,
  reason TEXT, data BLOB NOT NULL, UNIQUE (wu_id, volunteer_id));
CREATE INDEX IF NOT EXISTS result_volunteer ON results(volunteer_id, state);
CREATE TABLE IF NOT EXISTS ledger (
  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, volunteer_id TEXT NOT NULL, job_id TEXT NOT NULL,
  wu_id TEXT NOT NULL, amount INTEGER NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
  signature TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS ledger_append_only_update BEFORE UPDATE ON ledger
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_append_only_delete BEFORE DELETE ON ledger
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
`;

type Row = Record<string, unknown>;

const json = (v: unknown) => JSON.stringify(v);
const parse = <T>(v: unknown): T => JSON.parse(String(v)) as T;

function toJob(r: Row): JobRecord {
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

function toWu(r: Row): WorkUnitRecord {
  return {
    id: String(r.id),
    jobId: String(r.job_id),
    idx: Number(r.idx),
    kind: String(r.kind),
    params: parse(r.params),
    inputs: parse(r.inputs),
    outputBytes: Number(r.output_bytes),
    flops: Number(r.flops),
    tolerance: parse(r.tolerance),
    meta: parse(r.meta),
    target: Number(r.target),
    state: r.state as WorkUnitRecord['state'],
    canonicalResultId: (r.canonical_result_id as string | null) ?? null,
  };
}

function toLease(r: Row): LeaseRecord {
  return {
    id: String(r.id),
    wuId: String(r.wu_id),
    volunteerId: String(r.volunteer_id),
    issuedAt: Number(r.issued_at),
    deadline: Number(r.deadline),
    state: r.state as LeaseRecord['state'],
  };
}

function toResult(r: Row): ResultRecord {
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

function toVolunteer(r: Row): VolunteerRecord {
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
    signature: String(r.signature),
  };
}

export function openDatabase(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // FULL: an acknowledged state change survives a power cut, not only a process crash.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);
  return db;
}

export class SqliteStore implements Store {
  readonly db: Database.Database;
  private readonly s;

  constructor(file: string) {
    this.db = openDatabase(file);
    const p = (sql: string) => this.db.prepare(sql);
    this.s = {
      getMeta: p('SELECT value FROM meta WHERE key = ?'),
      setMeta: p('INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      upsertVolunteer: p(`INSERT INTO volunteers(id, public_key, name, created_at, last_seen) VALUES (@id, @publicKey, @name, @now, @now)
        ON CONFLICT(id) DO UPDATE SET name = COALESCE(excluded.name, volunteers.name), last_seen = excluded.last_seen`),
      getVolunteer: p('SELECT * FROM volunteers WHERE id = ?'),
      listVolunteers: p(`SELECT v.*,
        (SELECT count(*) FROM results r WHERE r.volunteer_id = v.id AND r.state = 'valid') AS valid,
        (SELECT count(*) FROM results r WHERE r.volunteer_id = v.id AND r.state = 'invalid') AS invalid,
        (SELECT count(*) FROM results r WHERE r.volunteer_id = v.id AND r.state = 'pending') AS pending
        FROM volunteers v ORDER BY v.credit DESC, v.created_at`),
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
      // `live` counts active leases plus pending/valid results, so "needs a replica" is one comparison.
      nextWu: p(`SELECT wu.* FROM work_units wu
        WHERE wu.state = 'open' AND wu.live < wu.target
          AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.wu_id = wu.id AND l.volunteer_id = @v AND l.state = 'active')
          AND NOT EXISTS (SELECT 1 FROM results r WHERE r.wu_id = wu.id AND r.volunteer_id = @v)
        ORDER BY wu.job_seq, wu.idx LIMIT @limit`),
      insertLease: p(`INSERT INTO leases(id, wu_id, volunteer_id, issued_at, deadline, state) VALUES (?, ?, ?, ?, ?, 'active')`),
      liveDelta: p('UPDATE work_units SET live = live + ? WHERE id = ?'),
      jobRunning: p(`UPDATE jobs SET state = 'running' WHERE id = ? AND state = 'queued'`),
      getLease: p('SELECT * FROM leases WHERE id = ?'),
      endLease: p(`UPDATE leases SET state = ? WHERE id = ? AND state = 'active'`),
      expiredLeases: p(`SELECT * FROM leases WHERE state = 'active' AND deadline < ?`),
      countActive: p(`SELECT count(*) AS n FROM leases WHERE wu_id = ? AND state = 'active'`),
      insertResult: p(`INSERT INTO results(id, wu_id, lease_id, volunteer_id, sha256, state, received_at, reason, data)
        VALUES (@id, @wuId, @leaseId, @volunteerId, @sha256, @state, @receivedAt, @reason, @data)`),
      liveResults: p(`SELECT * FROM results WHERE wu_id = ? AND state != 'invalid' ORDER BY received_at, id`),
      setTarget: p('UPDATE work_units SET target = ? WHERE id = ?'),
      resultState: p('UPDATE results SET state = ?, reason = COALESCE(?, reason) WHERE id = ?'),
      wuDone: p(`UPDATE work_units SET state = 'done', canonical_result_id = ? WHERE id = ? AND state = 'open'`),
      jobDone: p('UPDATE jobs SET done = done + 1 WHERE id = ?'),
      addCredit: p('UPDATE volunteers SET credit = credit + ? WHERE id = ?'),
      ledgerHead: p('SELECT * FROM ledger ORDER BY seq DESC LIMIT 1'),
      insertLedger: p(`INSERT INTO ledger(seq, ts, volunteer_id, job_id, wu_id, amount, prev_hash, hash, signature)
        VALUES (@seq, @ts, @volunteerId, @jobId, @wuId, @amount, @prevHash, @hash, @signature)`),
      ledgerFrom: p('SELECT * FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?'),
      wuError: p(`UPDATE work_units SET state = 'error' WHERE id = ? AND state = 'open'`),
      invalidatePending: p(`UPDATE results SET state = 'invalid', reason = ? WHERE wu_id = ? AND state = 'pending'`),
      abandonJobLeases: p(`UPDATE leases SET state = 'abandoned' WHERE state = 'active'
        AND wu_id IN (SELECT id FROM work_units WHERE job_id = ?)`),
      canonical: p(`SELECT wu.*, r.data AS result_data FROM work_units wu JOIN results r ON r.id = wu.canonical_result_id
        WHERE wu.job_id = ? ORDER BY wu.idx`),
    };
  }

  async close(): Promise<void> {
    this.db.close();
  }

  async getMeta(key: string) {
    const row = this.s.getMeta.get(key) as Row | undefined;
    return row ? String(row.value) : null;
  }

  async setMeta(key: string, value: string) {
    this.s.setMeta.run(key, value);
  }

  async upsertVolunteer(v: { id: string; publicKey: string; name: string | null; now: number }) {
    this.s.upsertVolunteer.run(v);
    return toVolunteer(this.s.getVolunteer.get(v.id) as Row);
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
    this.db.transaction(() => {
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
          target: job.replication,
          jobSeq,
        });
      }
    })();
  }

  async getJob(id: string) {
    const row = this.s.getJob.get(id) as Row | undefined;
    return row ? toJob(row) : null;
  }

  async listJobs() {
    return (this.s.listJobs.all() as Row[]).map(toJob);
  }

  async setJobResult(jobId: string, sha256: string, now: number) {
    this.s.setJobResult.run(sha256, now, jobId);
  }

  async failJob(jobId: string, error: string, now: number) {
    this.db.transaction(() => {
      this.s.failJob.run(error, now, jobId);
      this.s.abandonJobLeases.run(jobId);
    })();
  }

  async getWorkUnit(id: string) {
    const row = this.s.getWu.get(id) as Row | undefined;
    return row ? toWu(row) : null;
  }

  async leaseNext(volunteerId: string, now: number, deadline: number, choose?: ChooseWorkUnit) {
    return this.db.transaction(() => {
      const rows = this.s.nextWu.all({ v: volunteerId, limit: choose ? LEASE_CANDIDATES : 1 }) as Row[];
      if (!rows.length) return null;
      const wu = choose ? choose(rows.map(toWu)) : toWu(rows[0]);
      const lease: LeaseRecord = { id: `l_${crypto.randomUUID()}`, wuId: wu.id, volunteerId, issuedAt: now, deadline, state: 'active' };
      this.s.insertLease.run(lease.id, wu.id, volunteerId, now, deadline);
      this.s.liveDelta.run(1, wu.id);
      this.s.jobRunning.run(wu.jobId);
      return { lease, wu };
    })();
  }

  async getLease(id: string) {
    const row = this.s.getLease.get(id) as Row | undefined;
    return row ? toLease(row) : null;
  }

  private endLeaseTx(lease: LeaseRecord, state: string): number {
    const changed = this.s.endLease.run(state, lease.id).changes;
    if (changed) this.s.liveDelta.run(-1, lease.wuId);
    return changed;
  }

  async endLeases(leaseIds: string[], state: 'abandoned' | 'returned') {
    return this.db.transaction(() => {
      let n = 0;
      for (const id of leaseIds) {
        const row = this.s.getLease.get(id) as Row | undefined;
        if (row) n += this.endLeaseTx(toLease(row), state);
      }
      return n;
    })();
  }

  async expireLeases(now: number) {
    return this.db.transaction(() => {
      let n = 0;
      for (const row of this.s.expiredLeases.all(now) as Row[]) n += this.endLeaseTx(toLease(row), 'expired');
      return n;
    })();
  }

  async countActiveLeases(wuId: string) {
    return Number((this.s.countActive.get(wuId) as Row).n);
  }

  async addResult(r: ResultRecord) {
    this.db.transaction(() => {
      const lease = toLease(this.s.getLease.get(r.leaseId) as Row);
      this.endLeaseTx(lease, 'returned');
      this.s.insertResult.run({ ...r, data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength) });
      if (r.state !== 'invalid') this.s.liveDelta.run(1, r.wuId);
    })();
  }

  async liveResults(wuId: string) {
    return (this.s.liveResults.all(wuId) as Row[]).map(toResult);
  }

  async raiseTarget(wuId: string, target: number) {
    this.s.setTarget.run(target, wuId);
  }

  async settle(s: Settlement): Promise<SettlementOutcome> {
    return this.db.transaction(() => {
      const wu = toWu(this.s.getWu.get(s.wuId) as Row);
      if (this.s.wuDone.run(s.canonicalResultId, s.wuId).changes === 0) {
        return { entries: [], jobComplete: false, jobId: wu.jobId }; // settled already
      }
      for (const id of s.valid) this.s.resultState.run('valid', null, id);
      for (const id of s.invalid) {
        this.s.resultState.run('invalid', 'disagreed with the quorum', id);
        this.s.liveDelta.run(-1, s.wuId);
      }
      this.s.jobDone.run(wu.jobId);
      const head = this.s.ledgerHead.get() as Row | undefined;
      let prev = head ? toLedgerEntry(head) : null;
      const entries: LedgerEntry[] = [];
      for (const c of s.credits) {
        const entry = s.makeEntry({
          seq: (prev?.seq ?? 0) + 1,
          ts: s.now,
          volunteerId: c.volunteerId,
          jobId: wu.jobId,
          wuId: wu.id,
          amount: c.amount,
          prevHash: prev?.hash ?? GENESIS_HASH,
        });
        this.s.insertLedger.run(entry);
        this.s.addCredit.run(c.amount, c.volunteerId);
        entries.push(entry);
        prev = entry;
      }
      const job = toJob(this.s.getJob.get(wu.jobId) as Row);
      return { entries, jobComplete: job.done === job.total && job.state === 'running', jobId: wu.jobId };
    })();
  }

  async failWorkUnit(wuId: string, reason: string, now: number) {
    this.db.transaction(() => {
      const wu = toWu(this.s.getWu.get(wuId) as Row);
      this.s.wuError.run(wuId);
      this.s.invalidatePending.run(reason, wuId);
      this.s.failJob.run(`work unit ${wuId} failed: ${reason}`, now, wu.jobId);
      this.s.abandonJobLeases.run(wu.jobId);
    })();
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
}
