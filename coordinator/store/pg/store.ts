// PostgreSQL implementation of Store (TABGRID_DB=postgres://…), for several coordinator processes
// sharing one database. Every method is one transaction. Coordinators claim work with
// `FOR UPDATE SKIP LOCKED`, so two of them never lease the same replica and never wait on each
// other's claims; ledger appends take one advisory lock, so the hash chain stays a single line
// whichever coordinator settles a unit. Leases carry their coordinator's id and a heartbeat
// (`alive_until`): when a coordinator dies, the others expire its leases once the heartbeat lapses.
// Shards live here too (PgShardStore), so any coordinator can serve any shard.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { timeOrderedId } from '../../util/ids.js';
import { nextEntry, type Sealer } from '../../ledger/chain.js';
import type { LedgerEntry, LedgerReceipt } from '../../protocol/index.js';
import { ShardMemoryCache, sha256Hex, type ShardStore } from '../shards.js';
import { toJob, toLease, toLedgerEntry, toLedgerSeal, toResult, toVolunteer, toWu, type Row } from '../rows.js';
import type {
  NewJob,
  LeaseRecord,
  LeaseState,
  NewWorkUnit,
  ResultRecord,
  Revocation,
  RoundAdvance,
  Settlement,
  SettlementOutcome,
  SoleSettlement,
  Store,
  VolunteerCounts,
  VolunteerPrune,
  VolunteerStats,
} from '../store.js';
import { KeyedQueue } from '../../util/keyed-queue.js';
import { freshTrust, type TrustRecord } from '../store.js';
import { closedRound, leaseQueryLimit, pickUnits, requireSealer, settlementEntries, type LeaseRequest } from '../store.js';

/** Volunteers with their result counts, best credited first (the SQLite store keeps the counts on the volunteer's row). */
const LIST_VOLUNTEERS_SQL = `SELECT v.*,
  (SELECT count(*) FROM results r WHERE r.volunteer_id = v.id AND r.state = 'valid') AS valid,
  (SELECT count(*) FROM results r WHERE r.volunteer_id = v.id AND r.state = 'invalid') AS invalid,
  (SELECT count(*) FROM results r WHERE r.volunteer_id = v.id AND r.state = 'pending') AS pending
  FROM volunteers v ORDER BY v.credit DESC, v.created_at LIMIT $1`;

/**
 * Deletes up to $3 idle identities that never did anything, last seen before $1 and not among the
 * connected $2 (see Store.pruneVolunteers). A CTE, run once (a `DELETE … IN (SELECT … LIMIT)` may
 * run its subquery again and delete more); its rows locked, so a hello updating one meanwhile is
 * seen (its new last_seen fails the check).
 */
const PRUNE_VOLUNTEERS_SQL = `WITH idle AS (
  SELECT v.id FROM volunteers v WHERE v.credit = 0 AND v.last_seen < $1 AND NOT (v.id = ANY($2::text[]))
    AND NOT EXISTS (SELECT 1 FROM results r WHERE r.volunteer_id = v.id)
    AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.volunteer_id = v.id)
    AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.volunteer_id = v.id AND l.state = 'active')
  ORDER BY v.last_seen LIMIT $3 FOR UPDATE SKIP LOCKED)
DELETE FROM volunteers v USING idle WHERE v.id = idle.id`;

// Timestamps and counters are BIGINT (pg returns them as strings; the row mappers convert).
const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS volunteers (
  id TEXT PRIMARY KEY, public_key TEXT NOT NULL UNIQUE, name TEXT,
  credit BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, last_seen BIGINT NOT NULL);
-- The public volunteer list reads its first rows only; the sweep of idle identities and the count
-- of unproven ones read only those with no credit.
CREATE INDEX IF NOT EXISTS volunteers_credit ON volunteers(credit DESC, created_at);
CREATE INDEX IF NOT EXISTS volunteers_idle ON volunteers(last_seen) WHERE credit = 0;
CREATE SEQUENCE IF NOT EXISTS job_seq;
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, state TEXT NOT NULL, replication INTEGER NOT NULL,
  meta TEXT NOT NULL, created_at BIGINT NOT NULL, finished_at BIGINT, error TEXT,
  result_sha TEXT, result_shape TEXT, total INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0,
  owner TEXT);
-- Jobs belong to the token that submitted them; older jobs have no owner (admin tokens see them).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS owner TEXT;
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, created_at);
CREATE TABLE IF NOT EXISTS work_units (
  id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(id), idx INTEGER NOT NULL, kind TEXT NOT NULL,
  params TEXT NOT NULL, inputs TEXT NOT NULL, output_bytes BIGINT NOT NULL, flops BIGINT NOT NULL,
  tolerance TEXT NOT NULL, meta TEXT NOT NULL, target INTEGER NOT NULL, state TEXT NOT NULL,
  canonical_result_id TEXT, live INTEGER NOT NULL DEFAULT 0, job_seq BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS wu_wanting ON work_units(job_seq, idx) WHERE state = 'open' AND live < target;
CREATE INDEX IF NOT EXISTS wu_job ON work_units(job_id, idx);
CREATE TABLE IF NOT EXISTS leases (
  id TEXT PRIMARY KEY, wu_id TEXT NOT NULL REFERENCES work_units(id), volunteer_id TEXT NOT NULL,
  issued_at BIGINT NOT NULL, deadline BIGINT NOT NULL, state TEXT NOT NULL,
  alive_until BIGINT NOT NULL, owner TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS lease_wu ON leases(wu_id, volunteer_id);
CREATE INDEX IF NOT EXISTS lease_active_owner ON leases(owner) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS lease_active_deadline ON leases(deadline) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS lease_active_alive ON leases(alive_until) WHERE state = 'active';
CREATE TABLE IF NOT EXISTS results (
  id TEXT PRIMARY KEY, wu_id TEXT NOT NULL REFERENCES work_units(id), lease_id TEXT NOT NULL,
  volunteer_id TEXT NOT NULL, sha256 TEXT NOT NULL, state TEXT NOT NULL, received_at BIGINT NOT NULL,
  reason TEXT, data BYTEA NOT NULL, UNIQUE (wu_id, volunteer_id));
CREATE INDEX IF NOT EXISTS result_volunteer ON results(volunteer_id, state);
CREATE INDEX IF NOT EXISTS result_pending ON results(wu_id) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS ledger (
  seq BIGINT PRIMARY KEY, ts BIGINT NOT NULL, volunteer_id TEXT NOT NULL, job_id TEXT NOT NULL,
  wu_id TEXT NOT NULL, amount BIGINT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
  signature TEXT);
-- Only ledgers from before seals signed every entry.
ALTER TABLE ledger ALTER COLUMN signature DROP NOT NULL;
-- One signed seal per transaction that appended entries: entries first_seq..last_seq (see ledger.ts).
CREATE TABLE IF NOT EXISTS ledger_seals (
  last_seq BIGINT PRIMARY KEY, first_seq BIGINT NOT NULL, head_hash TEXT NOT NULL, root TEXT NOT NULL,
  signature TEXT NOT NULL);
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger AS $$
  BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS ledger_append_only ON ledger;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
  FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
DROP TRIGGER IF EXISTS ledger_seals_append_only ON ledger_seals;
CREATE TRIGGER ledger_seals_append_only BEFORE UPDATE OR DELETE ON ledger_seals
  FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TABLE IF NOT EXISTS shards (sha TEXT PRIMARY KEY, bytes BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_volunteer_wu ON ledger(volunteer_id, wu_id);
CREATE TABLE IF NOT EXISTS trust (
  volunteer_id TEXT PRIMARY KEY, valid_streak INTEGER NOT NULL, strikes INTEGER NOT NULL,
  suspended_until BIGINT NOT NULL, verified_at BIGINT NOT NULL);
`;

/** Advisory lock ids: schema set-up, and the ledger's single line of appends. */
const SCHEMA_LOCK = 0x7461_6267;
const LEDGER_LOCK = 0x7461_6268;
/** Deadlock, serialization failure: the transaction is retried. */
const RETRYABLE = new Set(['40P01', '40001']);

type Client = pg.PoolClient;

export class PgStore implements Store {
  readonly shared = true;
  /** Counts this process's writes only; work made by other coordinators is found on each tick. */
  workVersion = 0;
  /** This coordinator process: its leases are the ones it renews. */
  readonly owner = `c_${randomUUID()}`;

  private constructor(
    readonly pool: pg.Pool,
    /** Signs the seals; absent for stores that only read the ledger (CLI audit, tests). */
    private readonly sealer: Sealer | undefined,
  ) {}

  static async connect(url: string, poolSize = 10, sealer?: Sealer): Promise<PgStore> {
    const pool = new pg.Pool({ connectionString: url, max: poolSize });
    pool.on('error', () => {}); // an idle client's lost connection: the next query reconnects
    const store = new PgStore(pool, sealer);
    await store.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]); // coordinators starting together
      await c.query(SCHEMA);
    });
    return store;
  }

  private async tx<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const c = await this.pool.connect();
      try {
        await c.query('BEGIN');
        const out = await fn(c);
        await c.query('COMMIT');
        return out;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        if (attempt < 5 && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
        throw err;
      } finally {
        c.release();
      }
    }
  }

  private async one(sql: string, params: unknown[] = []): Promise<Row | undefined> {
    return (await this.pool.query(sql, params)).rows[0] as Row | undefined;
  }

  private async all(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.pool.query(sql, params)).rows as Row[];
  }

  private closed = false;

  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  async getMeta(key: string) {
    const row = await this.one('SELECT value FROM meta WHERE key = $1', [key]);
    return row ? String(row.value) : null;
  }

  async setMeta(key: string, value: string) {
    await this.pool.query('INSERT INTO meta(key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }

  async upsertVolunteer(v: { id: string; publicKey: string; name: string | null; now: number }) {
    const row = await this.one(
      `INSERT INTO volunteers(id, public_key, name, created_at, last_seen) VALUES ($1, $2, $3, $4, $4)
       ON CONFLICT (id) DO UPDATE SET name = COALESCE(excluded.name, volunteers.name), last_seen = excluded.last_seen
       RETURNING *`,
      [v.id, v.publicKey, v.name, v.now],
    );
    return toVolunteer(row!);
  }

  async getVolunteer(id: string) {
    const row = await this.one('SELECT * FROM volunteers WHERE id = $1', [id]);
    return row ? toVolunteer(row) : null;
  }

  async listVolunteers(limit?: number): Promise<VolunteerStats[]> {
    const rows = await this.all(LIST_VOLUNTEERS_SQL, [limit ?? null]);
    return rows.map((r) => ({ ...toVolunteer(r), valid: Number(r.valid), invalid: Number(r.invalid), pending: Number(r.pending) }));
  }

  async countVolunteers(): Promise<VolunteerCounts> {
    const row = await this.one('SELECT count(*) AS total, count(*) FILTER (WHERE credit = 0) AS unproven FROM volunteers');
    return { total: Number(row!.total), unproven: Number(row!.unproven) };
  }

  async pruneVolunteers(p: VolunteerPrune) {
    return this.tx(async (c) => {
      const connected = [...p.connected];
      await c.query('UPDATE volunteers SET last_seen = $1 WHERE id = ANY($2::text[]) AND last_seen < $3', [p.now, connected, Math.floor(p.now - p.idleMs / 2)]);
      return (await c.query(PRUNE_VOLUNTEERS_SQL, [p.now - p.idleMs, connected, p.limit])).rowCount ?? 0;
    });
  }

  async createJob(job: NewJob, units: NewWorkUnit[]) {
    await this.tx(async (c) => {
      const jobSeq = Number((await c.query(`SELECT nextval('job_seq') AS n`)).rows[0].n);
      await c.query(
        `INSERT INTO jobs(id, kind, name, state, replication, meta, created_at, result_shape, total, owner)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [job.id, job.kind, job.name, job.state, job.replication, JSON.stringify(job.meta), job.createdAt, job.resultShape ? JSON.stringify(job.resultShape) : null, units.length, job.owner ?? null],
      );
      await this.insertUnits(c, job.id, jobSeq, job.replication, units);
    });
    this.workVersion++;
  }

  /** Thousands of units in a few statements: rows travel as one JSON array each. */
  private async insertUnits(c: Client, jobId: string, jobSeq: number, replication: number, units: NewWorkUnit[]) {
    for (let i = 0; i < units.length; i += 5000) {
      const rows = units.slice(i, i + 5000).map((u) => ({
        id: u.id,
        idx: u.idx,
        kind: u.kind,
        params: JSON.stringify(u.params),
        inputs: JSON.stringify(u.inputs),
        output_bytes: u.outputBytes,
        flops: u.flops,
        tolerance: JSON.stringify(u.tolerance),
        meta: JSON.stringify(u.meta),
        target: u.target ?? replication,
      }));
      await c.query(
        `INSERT INTO work_units(id, job_id, idx, kind, params, inputs, output_bytes, flops, tolerance, meta, target, state, job_seq)
         SELECT x.id, $2, x.idx, x.kind, x.params, x.inputs, x.output_bytes, x.flops, x.tolerance, x.meta, x.target, 'open', $3
         FROM jsonb_to_recordset($1::jsonb) AS x(id text, idx int, kind text, params text, inputs text,
           output_bytes bigint, flops bigint, tolerance text, meta text, target int)`,
        [JSON.stringify(rows), jobId, jobSeq],
      );
    }
  }

  async unitRange(jobId: string, fromIdx: number, toIdx: number, withData = false) {
    const rows = await this.all(
      `SELECT wu.*, ${withData ? 'r.data' : 'NULL'} AS result_data,
         (SELECT count(*) FROM results r2 WHERE r2.wu_id = wu.id AND r2.state = 'valid') AS valid_results
       FROM work_units wu LEFT JOIN results r ON r.id = wu.canonical_result_id
       WHERE wu.job_id = $1 AND wu.idx >= $2 AND wu.idx < $3 ORDER BY wu.idx`,
      [jobId, fromIdx, toIdx],
    );
    return rows.map((r) => ({ wu: toWu(r), data: r.result_data == null ? null : new Uint8Array(r.result_data as Buffer), results: Number(r.valid_results) }));
  }

  async advanceRound(a: RoundAdvance): Promise<boolean> {
    const advanced = await this.tx(async (c) => {
      // The job's row lock orders this against any other coordinator closing the same round.
      const row = (await c.query('SELECT * FROM jobs WHERE id = $1 FOR UPDATE', [a.jobId])).rows[0] as Row | undefined;
      if (!row) return false;
      const job = toJob(row);
      if ((job.state !== 'running' && job.state !== 'queued') || (job.meta as { round?: unknown }).round !== a.round) return false;
      const dropped = (await c.query(`UPDATE work_units SET state = 'dropped' WHERE id = ANY($1::text[]) AND job_id = $2 AND state = 'open' RETURNING id`, [a.drop, a.jobId])).rows.map(
        (r: Row) => String(r.id),
      );
      if (dropped.length) {
        const ended = await c.query(`UPDATE leases SET state = 'abandoned' WHERE state = 'active' AND wu_id = ANY($1::text[]) RETURNING wu_id`, [dropped]);
        await this.liveDeltas(c, ended.rows.map((r: Row) => String(r.wu_id)), -1);
        await c.query(`UPDATE results SET state = 'invalid', reason = 'its round closed before a quorum of replicas agreed' WHERE wu_id = ANY($1::text[]) AND state = 'pending'`, [dropped]);
      }
      const jobSeq = Number((await c.query('SELECT job_seq FROM work_units WHERE job_id = $1 LIMIT 1', [a.jobId])).rows[0].job_seq);
      await this.insertUnits(c, a.jobId, jobSeq, job.replication, a.units);
      await c.query(
        `UPDATE jobs SET meta = $2, total = total + $3 - $4,
           state = CASE WHEN $5::text IS NULL THEN state ELSE 'done' END,
           result_sha = COALESCE($5::text, result_sha), finished_at = CASE WHEN $5::text IS NULL THEN finished_at ELSE $6 END
         WHERE id = $1`,
        [a.jobId, JSON.stringify(a.meta), a.units.length, dropped.length, a.result?.sha256 ?? null, a.now],
      );
      return true;
    });
    if (advanced) this.workVersion++;
    return advanced;
  }

  async getJob(id: string) {
    const row = await this.one('SELECT * FROM jobs WHERE id = $1', [id]);
    return row ? toJob(row) : null;
  }

  async listJobs(owner?: string, limit = 500) {
    const rows =
      owner === undefined
        ? await this.all('SELECT * FROM jobs ORDER BY created_at DESC LIMIT $1', [limit])
        : await this.all('SELECT * FROM jobs WHERE owner = $1 ORDER BY created_at DESC LIMIT $2', [owner, limit]);
    return rows.map(toJob);
  }

  async activeJobsOfKinds(kinds: readonly string[]) {
    const rows = await this.all(`SELECT * FROM jobs WHERE state IN ('queued', 'running') AND kind = ANY($1::text[]) ORDER BY created_at`, [[...kinds]]);
    return rows.map(toJob);
  }

  async countActiveJobs(ownerPrefix: string) {
    const row = await this.one(`SELECT count(*) AS n FROM jobs WHERE starts_with(owner, $1) AND state IN ('queued', 'running')`, [ownerPrefix]);
    return Number(row?.n ?? 0);
  }

  async setJobResult(jobId: string, sha256: string, now: number) {
    await this.pool.query(`UPDATE jobs SET state = 'done', result_sha = $1, finished_at = $2 WHERE id = $3`, [sha256, now, jobId]);
  }

  private async failJobTx(c: Client, jobId: string, error: string, now: number) {
    await c.query(`UPDATE jobs SET state = 'failed', error = $1, finished_at = $2 WHERE id = $3 AND state IN ('queued', 'running')`, [error, now, jobId]);
    // A failed job wants no more work: its open units close, so nobody is given them again.
    await c.query(`UPDATE work_units SET state = 'error' WHERE job_id = $1 AND state = 'open'`, [jobId]);
    const ended = await c.query(
      `UPDATE leases SET state = 'abandoned' WHERE state = 'active' AND wu_id IN (SELECT id FROM work_units WHERE job_id = $1) RETURNING wu_id`,
      [jobId],
    );
    await this.liveDeltas(c, ended.rows.map((r: Row) => String(r.wu_id)), -1);
  }

  async failJob(jobId: string, error: string, now: number) {
    await this.tx((c) => this.failJobTx(c, jobId, error, now));
  }

  async getWorkUnit(id: string) {
    const row = await this.one('SELECT * FROM work_units WHERE id = $1', [id]);
    return row ? toWu(row) : null;
  }

  async leaseUnits(req: LeaseRequest) {
    return this.tx(async (c) => {
      // SKIP LOCKED: a unit another coordinator is claiming right now is passed over, not waited on.
      const rows = (
        await c.query(
          `SELECT wu.* FROM work_units wu
           WHERE wu.state = 'open' AND wu.live < wu.target
             AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.wu_id = wu.id AND l.volunteer_id = $1 AND l.state = 'active')
             AND NOT EXISTS (SELECT 1 FROM results r WHERE r.wu_id = wu.id AND r.volunteer_id = $1)
             AND ($3::text[] IS NULL OR wu.kind = ANY($3::text[]))
           ORDER BY wu.job_seq, wu.idx LIMIT $2 FOR UPDATE OF wu SKIP LOCKED`,
          [req.volunteerId, leaseQueryLimit(req), req.kinds ? [...req.kinds] : null],
        )
      ).rows as Row[];
      const units = pickUnits(rows.map(toWu), req);
      if (!units.length) return [];
      const leases: LeaseRecord[] = units.map((wu) => ({ id: timeOrderedId('l_'), wuId: wu.id, volunteerId: req.volunteerId, issuedAt: req.now, deadline: req.deadline, state: 'active' }));
      await c.query(
        `INSERT INTO leases(id, wu_id, volunteer_id, issued_at, deadline, state, alive_until, owner)
         SELECT x.id, x.wu_id, $3, $4, $5, 'active', $6, $7 FROM unnest($1::text[], $2::text[]) AS x(id, wu_id)`,
        [leases.map((l) => l.id), leases.map((l) => l.wuId), req.volunteerId, req.now, req.deadline, req.aliveUntil ?? req.deadline, this.owner],
      );
      await this.liveDeltas(c, leases.map((l) => l.wuId), 1);
      await c.query(`UPDATE jobs SET state = 'running' WHERE id = ANY($1::text[]) AND state = 'queued'`, [[...new Set(units.map((u) => u.jobId))]]);
      return units.map((wu, i) => ({ lease: leases[i], wu }));
    });
  }

  async getLease(id: string) {
    const row = await this.one('SELECT * FROM leases WHERE id = $1', [id]);
    return row ? toLease(row) : null;
  }

  /** live = active leases + live results; adjusts it for each unit named (once per mention). */
  private async liveDeltas(c: Client, wuIds: string[], sign: 1 | -1) {
    if (wuIds.length === 0) return;
    const counts = new Map<string, number>();
    for (const id of wuIds) counts.set(id, (counts.get(id) ?? 0) + 1);
    await c.query(
      `UPDATE work_units w SET live = w.live + $3 * x.n FROM unnest($1::text[], $2::int[]) AS x(id, n) WHERE w.id = x.id`,
      [[...counts.keys()], [...counts.values()], sign],
    );
  }

  async endLeases(leaseIds: string[], state: 'abandoned' | 'returned' | 'expired') {
    if (leaseIds.length === 0) return 0;
    return this.tx(async (c) => {
      const ended = await c.query(`UPDATE leases SET state = $2 WHERE id = ANY($1::text[]) AND state = 'active' RETURNING wu_id`, [leaseIds, state]);
      await this.liveDeltas(c, ended.rows.map((r: Row) => String(r.wu_id)), -1);
      return ended.rowCount ?? 0;
    }).then((n) => {
      if (n && state !== 'returned') this.workVersion++;
      return n;
    });
  }

  async renewLeases(aliveUntil: number) {
    const r = await this.pool.query(`UPDATE leases SET alive_until = $1 WHERE state = 'active' AND owner = $2`, [aliveUntil, this.owner]);
    return r.rowCount ?? 0;
  }

  async endedLeases(leaseIds: string[]) {
    if (leaseIds.length === 0) return [];
    const r = await this.pool.query(`SELECT id, state FROM leases WHERE id = ANY($1) AND state <> 'active'`, [leaseIds]);
    return r.rows.map((row: Row) => ({ id: String(row.id), state: row.state as LeaseState }));
  }

  async expireLeases(now: number) {
    return this.tx(async (c) => {
      const ended = await c.query(
        `UPDATE leases SET state = 'expired' WHERE state = 'active' AND (deadline < $1 OR alive_until < $1) RETURNING wu_id`,
        [now],
      );
      await this.liveDeltas(c, ended.rows.map((r: Row) => String(r.wu_id)), -1);
      return ended.rowCount ?? 0;
    }).then((n) => {
      if (n) this.workVersion++;
      return n;
    });
  }

  async countActiveLeases(wuId: string) {
    return Number((await this.one(`SELECT count(*) AS n FROM leases WHERE wu_id = $1 AND state = 'active'`, [wuId]))!.n);
  }

  async addResult(r: ResultRecord) {
    return this.tx(async (c) => {
      const inserted = await c.query(
        `INSERT INTO results(id, wu_id, lease_id, volunteer_id, sha256, state, received_at, reason, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (wu_id, volunteer_id) DO NOTHING`,
        [r.id, r.wuId, r.leaseId, r.volunteerId, r.sha256, r.state, r.receivedAt, r.reason, Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength)],
      );
      if (inserted.rowCount === 0) return false; // this volunteer already has one
      const ended = await c.query(`UPDATE leases SET state = 'returned' WHERE id = $1 AND state = 'active'`, [r.leaseId]);
      const delta = (r.state !== 'invalid' ? 1 : 0) - (ended.rowCount ?? 0);
      if (delta !== 0) await c.query('UPDATE work_units SET live = live + $1 WHERE id = $2', [delta, r.wuId]);
      return true;
    }).then((stored) => {
      if (stored && r.state === 'invalid') this.workVersion++;
      return stored;
    });
  }

  /** addResult, then settle when the result is its unit's only live one (two transactions, as the intake did). */
  async addSoleResult(r: ResultRecord, sole: SoleSettlement) {
    if (!(await this.addResult(r))) return null;
    const live = await this.liveResults(r.wuId);
    if (live.length !== 1 || live[0].id !== r.id) return { outcome: null };
    const credits = [{ volunteerId: r.volunteerId, amount: sole.amount }];
    return { outcome: await this.settle({ wuId: r.wuId, canonicalResultId: r.id, valid: [r.id], invalid: [], credits, now: sole.now }) };
  }

  async liveResults(wuId: string) {
    return (await this.all(`SELECT * FROM results WHERE wu_id = $1 AND state != 'invalid' ORDER BY received_at, id`, [wuId])).map(toResult);
  }

  async raiseTarget(wuId: string, target: number) {
    await this.pool.query('UPDATE work_units SET target = $1 WHERE id = $2', [target, wuId]);
    this.workVersion++;
  }

  async settle(s: Settlement): Promise<SettlementOutcome> {
    return this.tx(async (c) => {
      // One ledger line across every coordinator: appends are serialized by this lock, taken
      // first so that no two settlements wait on each other's rows in opposite orders.
      await c.query('SELECT pg_advisory_xact_lock($1)', [LEDGER_LOCK]);
      const done = await c.query(`UPDATE work_units SET state = 'done', canonical_result_id = $1 WHERE id = $2 AND state = 'open' RETURNING job_id, id`, [
        s.canonicalResultId,
        s.wuId,
      ]);
      if (done.rowCount === 0) {
        const wu = await c.query('SELECT job_id FROM work_units WHERE id = $1', [s.wuId]);
        return { entries: [], balances: {}, jobComplete: false, jobId: String(wu.rows[0]?.job_id ?? '') }; // settled already
      }
      const jobId = String(done.rows[0].job_id);
      await c.query(`UPDATE results SET state = 'valid' WHERE id = ANY($1::text[])`, [s.valid]);
      if (s.invalid.length) {
        await c.query(`UPDATE results SET state = 'invalid', reason = 'disagreed with the quorum' WHERE id = ANY($1::text[])`, [s.invalid]);
        await c.query('UPDATE work_units SET live = live - $1 WHERE id = $2', [s.invalid.length, s.wuId]);
      }
      const job = toJob((await c.query('UPDATE jobs SET done = done + 1 WHERE id = $1 RETURNING *', [jobId])).rows[0] as Row);
      const head = (await c.query('SELECT * FROM ledger ORDER BY seq DESC LIMIT 1')).rows[0] as Row | undefined;
      const entries = settlementEntries(s, jobId, head ? toLedgerEntry(head) : null);
      const balances: Record<string, number> = {};
      for (const entry of entries) balances[entry.volunteerId] = await this.appendEntry(c, entry);
      return { entries: await this.seal(c, entries), balances, jobComplete: job.done === job.total && job.state === 'running', jobId };
    }).then((outcome) => {
      if (s.invalid.length) this.workVersion++;
      return outcome;
    });
  }

  async rejectResults(wuId: string, resultIds: string[], reason: string) {
    const n = await this.tx(async (c) => {
      const changed = await c.query(`UPDATE results SET state = 'invalid', reason = $1 WHERE id = ANY($2::text[]) AND wu_id = $3 AND state = 'pending'`, [reason, resultIds, wuId]);
      const count = changed.rowCount ?? 0;
      if (count) await c.query('UPDATE work_units SET live = live - $1 WHERE id = $2', [count, wuId]);
      return count;
    });
    if (n) this.workVersion++;
    return n;
  }

  async failWorkUnit(wuId: string, reason: string, now: number) {
    await this.tx(async (c) => {
      const wu = await c.query(`UPDATE work_units SET state = 'error' WHERE id = $1 AND state = 'open' RETURNING job_id`, [wuId]);
      if (wu.rowCount === 0) return;
      await c.query(`UPDATE results SET state = 'invalid', reason = $1 WHERE wu_id = $2 AND state = 'pending'`, [reason, wuId]);
      await this.failJobTx(c, String(wu.rows[0].job_id), `work unit ${wuId} failed: ${reason}`, now);
    });
  }

  async unfinishedWork() {
    const units = await this.all(`SELECT DISTINCT r.wu_id FROM results r JOIN work_units wu ON wu.id = r.wu_id WHERE r.state = 'pending' AND wu.state = 'open'`);
    const jobs = await this.all(`SELECT id FROM jobs WHERE state = 'running' AND done = total`);
    return { unitsToValidate: units.map((r) => String(r.wu_id)), jobsToAssemble: jobs.map((r) => String(r.id)) };
  }

  async canonicalOutputs(jobId: string) {
    const rows = await this.all(
      `SELECT wu.*, r.data AS result_data FROM work_units wu JOIN results r ON r.id = wu.canonical_result_id WHERE wu.job_id = $1 ORDER BY wu.idx`,
      [jobId],
    );
    return rows.map((r) => ({ wu: toWu(r), data: new Uint8Array(r.result_data as Buffer) }));
  }

  async ledgerEntries(afterSeq: number, limit: number) {
    return (await this.all('SELECT * FROM ledger WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, limit])).map(toLedgerEntry);
  }

  async ledgerHead() {
    const row = await this.one('SELECT * FROM ledger ORDER BY seq DESC LIMIT 1');
    return row ? toLedgerEntry(row) : null;
  }

  async ledgerSeals(afterSeq: number, limit: number) {
    return (await this.all('SELECT * FROM ledger_seals WHERE last_seq > $1 ORDER BY last_seq LIMIT $2', [afterSeq, limit])).map(toLedgerSeal);
  }

  /** Inserts an entry and credits it (inside a transaction holding LEDGER_LOCK); returns the new balance. */
  private async appendEntry(c: Client, entry: LedgerEntry): Promise<number> {
    requireSealer(this.sealer);
    await c.query(
      `INSERT INTO ledger(seq, ts, volunteer_id, job_id, wu_id, amount, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [entry.seq, entry.ts, entry.volunteerId, entry.jobId, entry.wuId, entry.amount, entry.prevHash, entry.hash],
    );
    const updated = await c.query('UPDATE volunteers SET credit = credit + $1 WHERE id = $2 RETURNING credit', [entry.amount, entry.volunteerId]);
    return Number(updated.rows[0]?.credit ?? 0);
  }

  /** One seal over the entries this transaction appended, in the same transaction. */
  private async seal(c: Client, entries: LedgerEntry[]): Promise<LedgerReceipt[]> {
    if (entries.length === 0) return [];
    const { seal, receipts } = requireSealer(this.sealer)(entries);
    await c.query('INSERT INTO ledger_seals(first_seq, last_seq, head_hash, root, signature) VALUES ($1, $2, $3, $4, $5)', [
      seal.firstSeq,
      seal.lastSeq,
      seal.headHash,
      seal.root,
      seal.signature,
    ]);
    return receipts;
  }

  // --- Trust ---

  async getTrust(volunteerId: string): Promise<TrustRecord> {
    const r = await this.one('SELECT * FROM trust WHERE volunteer_id = $1', [volunteerId]);
    if (!r) return freshTrust(volunteerId);
    return { volunteerId, validStreak: Number(r.valid_streak), strikes: Number(r.strikes), suspendedUntil: Number(r.suspended_until), verifiedAt: Number(r.verified_at) };
  }

  private readonly trustUpdates = new KeyedQueue();

  updateTrust(volunteerId: string, change: (t: TrustRecord) => TrustRecord) {
    return this.trustUpdates.run(volunteerId, async () => {
      const before = await this.getTrust(volunteerId);
      const after = change(before);
      await this.putTrust(after);
      return { before, after };
    });
  }

  async putTrust(t: TrustRecord) {
    await this.pool.query(
      `INSERT INTO trust(volunteer_id, valid_streak, strikes, suspended_until, verified_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (volunteer_id) DO UPDATE SET valid_streak = excluded.valid_streak, strikes = excluded.strikes,
         suspended_until = excluded.suspended_until, verified_at = excluded.verified_at`,
      [t.volunteerId, t.validStreak, t.strikes, t.suspendedUntil, t.verifiedAt],
    );
  }

  async unreplicatedResults(volunteerId: string, since: number) {
    const rows = await this.all(
      `SELECT r.id, r.wu_id FROM results r JOIN work_units wu ON wu.id = r.wu_id
       WHERE r.volunteer_id = $1 AND r.state = 'valid' AND r.received_at > $2 AND wu.state = 'done'
         AND (SELECT count(*) FROM results r2 WHERE r2.wu_id = r.wu_id AND r2.state = 'valid') = 1`,
      [volunteerId, since],
    );
    return rows.map((r) => ({ id: String(r.id), wuId: String(r.wu_id) }));
  }

  async quorumsAmong(volunteerIds: string[]) {
    const rows = await this.all(
      `SELECT r.id, r.wu_id FROM results r
       WHERE r.volunteer_id = ANY($1::text[]) AND r.state = 'valid'
         AND EXISTS (SELECT 1 FROM ledger l WHERE l.wu_id = r.wu_id AND l.volunteer_id = r.volunteer_id)
         AND NOT EXISTS (SELECT 1 FROM results o WHERE o.wu_id = r.wu_id AND o.state = 'valid' AND NOT (o.volunteer_id = ANY($1::text[])))
       ORDER BY r.received_at, r.id`,
      [volunteerIds],
    );
    return rows.map((r) => ({ id: String(r.id), wuId: String(r.wu_id) }));
  }

  async revokeResults(rev: Revocation) {
    const out = await this.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [LEDGER_LOCK]); // negative entries join the one ledger line
      const entries: LedgerEntry[] = [];
      const balances: Record<string, number> = {};
      for (const id of rev.resultIds) {
        const row = (await c.query(`SELECT * FROM results WHERE id = $1 AND state = 'valid' FOR UPDATE`, [id])).rows[0] as Row | undefined;
        if (!row) continue;
        const result = toResult(row);
        const wu = toWu((await c.query('SELECT * FROM work_units WHERE id = $1 FOR UPDATE', [result.wuId])).rows[0] as Row);
        const canonical = wu.state === 'done' && wu.canonicalResultId === id;
        const job = toJob((await c.query('SELECT * FROM jobs WHERE id = $1', [wu.jobId])).rows[0] as Row);
        await c.query(`UPDATE results SET state = 'invalid', reason = $1 WHERE id = $2`, [rev.reason, id]);
        await c.query('UPDATE work_units SET live = live - 1 WHERE id = $1', [wu.id]);
        if (canonical && job.state !== 'failed' && !closedRound(job, wu)) {
          await c.query(`UPDATE work_units SET state = 'open', canonical_result_id = NULL, target = $1 WHERE id = $2`, [job.replication, wu.id]);
          await c.query(
            `UPDATE jobs SET done = done - 1, state = CASE WHEN state = 'done' THEN 'running' ELSE state END,
               result_sha = CASE WHEN state = 'done' THEN NULL ELSE result_sha END,
               finished_at = CASE WHEN state = 'done' THEN NULL ELSE finished_at END WHERE id = $1`,
            [wu.jobId],
          );
        }
        const earned = Number((await c.query('SELECT COALESCE(sum(amount), 0) AS n FROM ledger WHERE volunteer_id = $1 AND wu_id = $2', [result.volunteerId, wu.id])).rows[0].n);
        if (earned <= 0) continue;
        const head = (await c.query('SELECT * FROM ledger ORDER BY seq DESC LIMIT 1')).rows[0] as Row | undefined;
        const entry = nextEntry(head ? toLedgerEntry(head) : null, { ts: rev.now, volunteerId: result.volunteerId, jobId: wu.jobId, wuId: wu.id, amount: -earned });
        balances[entry.volunteerId] = await this.appendEntry(c, entry);
        entries.push(entry);
      }
      return { entries: await this.seal(c, entries), balances };
    });
    this.workVersion++;
    return out;
  }
}

/** Shards as rows of the shared database: every coordinator serves every shard. */
export class PgShardStore implements ShardStore {
  private readonly cache = new ShardMemoryCache();

  constructor(private readonly pool: pg.Pool) {}

  async put(bytes: Uint8Array): Promise<string> {
    const sha = sha256Hex(bytes);
    await this.pool.query('INSERT INTO shards(sha, bytes) VALUES ($1, $2) ON CONFLICT (sha) DO NOTHING', [
      sha,
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    ]);
    return sha;
  }

  async size(sha: string): Promise<number | null> {
    const hit = this.cache.get(sha);
    if (hit) return hit.length;
    const row = (await this.pool.query('SELECT octet_length(bytes) AS n FROM shards WHERE sha = $1', [sha])).rows[0] as { n: number } | undefined;
    return row ? Number(row.n) : null;
  }

  async existing(shas: string[]): Promise<Set<string>> {
    const { rows } = await this.pool.query('SELECT sha FROM shards WHERE sha = ANY($1::text[])', [shas]);
    return new Set((rows as { sha: string }[]).map((r) => r.sha));
  }

  async get(sha: string): Promise<Uint8Array | null> {
    const hit = this.cache.get(sha);
    if (hit) return hit;
    const row = (await this.pool.query('SELECT bytes FROM shards WHERE sha = $1', [sha])).rows[0] as { bytes: Buffer } | undefined;
    if (!row) return null;
    const bytes = new Uint8Array(row.bytes);
    this.cache.remember(sha, bytes);
    return bytes;
  }
}
