// The write side of the SQLite store. Every write the store is asked for is a named operation on
// plain data (WriteOps), so that writes can run on a thread of their own (sqlite-writer-thread.ts)
// as well as in the store's process. Writes are group committed: those that arrive in one
// event-loop turn run in one transaction (one failing write does not undo the others: see
// SqliteWriter.run), and they are answered only once the commit is on disk — thousands of
// acknowledged writes a second for one fsync each turn. The fsync of the WAL runs on libuv's thread
// pool (WalSync), not inside COMMIT: the same guarantee as synchronous=FULL (nothing is acknowledged
// before its WAL frames are synced), without stalling every other connection for the disk.
import type { KeyObject } from 'node:crypto';
import { closeSync, fsync, openSync } from 'node:fs';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { timeOrderedId } from '../../util/ids.js';
import { makeSealer, nextEntry, type Sealer } from '../../ledger/chain.js';
import type { LedgerEntry, LedgerReceipt } from '../../protocol/index.js';
import { connect } from './schema.js';
import { json, toJob, toLease, toLedgerEntry, toResult, toVolunteer, toWu, type Row } from '../rows.js';
import type {
  NewJob,
  Leased,
  LeaseRecord,
  LeaseRequest,
  NewWorkUnit,
  ResultRecord,
  Revocation,
  RoundAdvance,
  Settlement,
  SettlementOutcome,
  SoleSettlement,
  VolunteerPrune,
  VolunteerRecord,
} from '../store.js';
import { closedRound, requireSealer, settlementEntries } from '../store.js';
import type { TrustRecord } from '../store.js';

/** A lease request as data (the store applies any `choose` itself, before it asks: see leaseChosen). */
export type PlainLeaseRequest = Omit<LeaseRequest, 'choose'>;

/** What the store's caches learn from a committed batch, in the order its writes did it. */
export type CacheEffect =
  /** The units and leases the write at this index of the batch leased (its value). */
  | { leased: number }
  /** This lease ended. */
  | { ended: string }
  /** This unit changed. */
  | { unit: string }
  /** Many units and leases changed (a failed job). */
  | { clear: true };

export interface BatchOutcome {
  /** Each write's value, or the error that rolled back its savepoint. */
  outcomes: { ok: boolean; value: unknown }[];
  effects: CacheEffect[];
  /** How many times the batch made a unit leasable again (see Store.workVersion). */
  moreWork: number;
}

export interface WriterOptions {
  file: string;
  /** Signs the seals (in-process writers); a thread is given `sealKey` instead (a function does not cross). */
  sealer?: Sealer;
  sealKey?: KeyObject;
  /** The log is checkpointed by a thread of its own (wal-checkpointer.ts), not inside commits. */
  manualCheckpoints?: boolean;
}

/** Rows one multi-row statement takes at most. */
const MAX_ROWS_PER_STATEMENT = 16;

/** Least time between two commits (each is an fsync). */
const COMMIT_GAP_MS = 2;

/**
 * A unit volunteer @v may be leased: open, wanting a replica (`live` counts active leases plus
 * pending/valid results, so that is one comparison), and neither leased to nor answered by @v.
 */
const LEASABLE = `wu.state = 'open' AND wu.live < wu.target
  AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.wu_id = wu.id AND l.volunteer_id = @v AND l.state = 'active')
  AND NOT EXISTS (SELECT 1 FROM results r WHERE r.wu_id = wu.id AND r.volunteer_id = @v)`;

/** The lease query for `kinds` job kinds (bound as @k0…), or for every kind; one prepared statement per shape. */
export function leaseQuery(db: Database.Database, kinds: number | undefined, cache: Map<number, Database.Statement>): Database.Statement {
  const key = kinds ?? -1;
  let stmt = cache.get(key);
  if (!stmt) {
    const kindList = kinds === undefined ? '' : `AND wu.kind IN (${Array.from({ length: kinds }, (_, i) => `@k${i}`).join(', ') || 'NULL'})`;
    stmt = db.prepare(`SELECT wu.* FROM work_units wu INDEXED BY wu_wanting WHERE ${LEASABLE} ${kindList}
      ORDER BY wu.job_seq, wu.idx LIMIT @limit`);
    cache.set(key, stmt);
  }
  return stmt;
}

/** The lease query's parameters for a request. */
export function leaseQueryParams(req: PlainLeaseRequest, limit: number): Record<string, unknown> {
  const params: Record<string, unknown> = { v: req.volunteerId, limit };
  req.kinds?.forEach((k, i) => (params[`k${i}`] = k));
  return params;
}

/** A write failed in a batch run without savepoints: the batch is rolled back, to run again with them. */
class WriteFailed extends Error {}

type WriteFn = (...args: never[]) => unknown;
type WriteTable = Record<string, WriteFn>;

/** Runs batches of writes on its own connection; the file's one writer. */
export class SqliteWriter {
  readonly db: Database.Database;
  private readonly s;
  private readonly sealer: Sealer | undefined;
  private readonly savepoint: (fn: () => unknown) => unknown;
  private readonly batch: Database.Transaction<(writes: [keyof WriteOps, unknown[]][], isolated: boolean) => { ok: boolean; value: unknown }[]>;
  private readonly leaseQueries = new Map<number, Database.Statement>();
  /** Jobs this writer has marked running (a job never goes back to queued), as committed. */
  private readonly runningJobs = new Set<string>();

  // Per batch, kept only for writes whose savepoint held:
  private effects: CacheEffect[] = [];
  private moreWork = 0;
  /** Index in the batch of the write running now. */
  private current = 0;
  /** Entries appended, for the batch's one seal. */
  private unsealed: LedgerEntry[] = [];
  /** Values whose `entries` become their receipts once the batch is sealed. */
  private toReceipt: { entries: (LedgerEntry | LedgerReceipt)[] }[] = [];
  /** Units settled, by job: each job's count is updated once per batch (see countAndCredit). */
  private settledUnits: { jobId: string; outcome: SettlementOutcome }[] = [];
  /** Credits appended, and the balances that wait for their volunteer's balance after the batch. */
  private credited: { volunteerId: string; amount: number; balances: Record<string, number> }[] = [];
  /** Jobs marked running in this batch, known to be so once it commits. */
  private runningAdded: string[] = [];
  /** The ledger's last entry (undefined: not read yet); this writer is the ledger's only one. */
  private head: LedgerEntry | null | undefined = undefined;

  constructor(opts: WriterOptions) {
    this.sealer = opts.sealer ?? (opts.sealKey ? makeSealer(opts.sealKey) : undefined);
    this.db = connect(opts.file, 'NORMAL');
    // A write's savepoint journals the pages it changes; on disk (the default) that journal is a
    // temp file and every page a pwrite, which cost more than the writes themselves (bench:writer:
    // 176 -> 102 µs per unit, when every write had one). In memory it is a copy, dropped when the
    // savepoint is released.
    this.db.pragma('temp_store = MEMORY');
    if (opts.manualCheckpoints) {
      this.db.pragma('wal_autocheckpoint = 0');
      this.db.pragma(`journal_size_limit = ${64 * 2 ** 20}`); // a log that starts over shrinks back to this
    }
    this.savepoint = this.db.transaction((fn: () => unknown) => fn());
    this.batch = this.db.transaction((writes: [keyof WriteOps, unknown[]][], isolated: boolean) => {
      this.effects = [];
      this.moreWork = 0;
      this.unsealed = [];
      this.toReceipt = [];
      this.settledUnits = [];
      this.credited = [];
      this.runningAdded = [];
      const outcomes = writes.map(([name, args], i) => {
        this.current = i;
        const marks = [this.effects.length, this.moreWork, this.unsealed.length, this.toReceipt.length, this.settledUnits.length, this.credited.length, this.runningAdded.length, this.head] as const;
        try {
          const fn = this.ops[name] as (...a: unknown[]) => unknown;
          if (typeof fn !== 'function') throw new Error(`no such write: ${String(name)}`);
          return { ok: true, value: isolated ? this.savepoint(() => fn(...args)) : fn(...args) };
        } catch (err) {
          if (!isolated) throw new WriteFailed(); // the batch runs again, each write in a savepoint
          // Rolled back with its savepoint: not cached, not sealed, not the chain's head.
          [this.effects.length, this.moreWork, this.unsealed.length, this.toReceipt.length, this.settledUnits.length, this.credited.length, this.runningAdded.length, this.head] = marks;
          return { ok: false, value: err };
        }
      });
      this.countAndCredit();
      this.sealBatch();
      return outcomes;
    });
    const p = (sql: string) => this.db.prepare(sql);
    this.s = {
      setMeta: p('INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      upsertVolunteer: p(`INSERT INTO volunteers(id, public_key, name, created_at, last_seen) VALUES (@id, @publicKey, @name, @now, @now)
        ON CONFLICT(id) DO UPDATE SET name = COALESCE(excluded.name, volunteers.name), last_seen = excluded.last_seen`),
      getVolunteer: p('SELECT * FROM volunteers WHERE id = ?'),
      touchVolunteers: p(`UPDATE volunteers SET last_seen = @now WHERE id IN (SELECT value FROM json_each(@connected)) AND last_seen < @touchBefore`),
      // Result counts on the row stand for "no result of any state" (results has no index by volunteer).
      pruneVolunteers: p(`DELETE FROM volunteers WHERE id IN (SELECT v.id FROM volunteers v INDEXED BY volunteers_idle
        WHERE v.credit = 0 AND v.last_seen < @seenBefore AND v.valid_results = 0 AND v.invalid_results = 0 AND v.pending_results = 0
          AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.volunteer_id = v.id)
          AND v.id NOT IN (SELECT volunteer_id FROM leases WHERE state = 'active')
          AND v.id NOT IN (SELECT value FROM json_each(@connected))
        ORDER BY v.last_seen LIMIT @limit)`),
      insertJob: p(`INSERT INTO jobs(id, kind, name, state, replication, meta, created_at, finished_at, error, result_sha, result_shape, total, owner)
        VALUES (@id, @kind, @name, @state, @replication, @meta, @createdAt, NULL, NULL, NULL, @resultShape, @total, @owner)`),
      insertWu: p(`INSERT INTO work_units(id, job_id, idx, kind, params, inputs, output_bytes, flops, tolerance, meta, target, state, job_seq)
        VALUES (@id, @jobId, @idx, @kind, @params, @inputs, @outputBytes, @flops, @tolerance, @meta, @target, 'open', @jobSeq)`),
      jobSeq: p('SELECT count(*) AS n FROM jobs'),
      getJob: p('SELECT * FROM jobs WHERE id = ?'),
      setJobResult: p(`UPDATE jobs SET state = 'done', result_sha = ?, finished_at = ? WHERE id = ?`),
      failJob: p(`UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ? AND state IN ('queued', 'running')`),
      getWu: p('SELECT * FROM work_units WHERE id = ?'),
      jobOfWu: p('SELECT job_id FROM work_units WHERE id = ?'),
      // One chosen unit, if this volunteer may still lease it.
      eligibleWu: p(`SELECT wu.* FROM work_units wu WHERE wu.id = @id AND ${LEASABLE}`),
      liveDelta: p('UPDATE work_units SET live = live + ? WHERE id = ?'),
      jobRunning: p(`UPDATE jobs SET state = 'running' WHERE id = ? AND state = 'queued'`),
      endLease: p(`UPDATE leases SET state = ? WHERE id = ? AND state = 'active' RETURNING wu_id`),
      returnLease: p(`UPDATE leases SET state = 'returned' WHERE id = ? AND state = 'active'`),
      expiredLeases: p(`SELECT * FROM leases WHERE state = 'active' AND deadline < ?`),
      insertResult: p(`INSERT INTO results(id, wu_id, lease_id, volunteer_id, sha256, state, received_at, reason, data)
        VALUES (@id, @wuId, @leaseId, @volunteerId, @sha256, @state, @receivedAt, @reason, @data)
        ON CONFLICT(wu_id, volunteer_id) DO NOTHING`),
      resultsOfUnit: p(`SELECT coalesce(sum(volunteer_id = ?), 0) AS mine, coalesce(sum(state != 'invalid'), 0) AS live FROM results WHERE wu_id = ?`),
      setTarget: p('UPDATE work_units SET target = ? WHERE id = ?'),
      resultState: p('UPDATE results SET state = ?, reason = COALESCE(?, reason) WHERE id = ?'),
      wuDone: p(`UPDATE work_units SET state = 'done', canonical_result_id = ? WHERE id = ? AND state = 'open' RETURNING job_id`),
      jobDone: p('UPDATE jobs SET done = done + ? WHERE id = ? RETURNING done, total, state'),
      addCredit: p('UPDATE volunteers SET credit = credit + ? WHERE id = ? RETURNING credit'),
      ledgerHead: p('SELECT * FROM ledger ORDER BY seq DESC LIMIT 1'),
      insertLedger: p(`INSERT INTO ledger(seq, ts, volunteer_id, job_id, wu_id, amount, prev_hash, hash)
        VALUES (@seq, @ts, @volunteerId, @jobId, @wuId, @amount, @prevHash, @hash)`),
      insertSeal: p(`INSERT INTO ledger_seals(first_seq, last_seq, head_hash, root, signature)
        VALUES (@firstSeq, @lastSeq, @headHash, @root, @signature)`),
      wuError: p(`UPDATE work_units SET state = 'error' WHERE id = ? AND state = 'open'`),
      invalidatePending: p(`UPDATE results SET state = 'invalid', reason = ? WHERE wu_id = ? AND state = 'pending'`),
      closeJobUnits: p(`UPDATE work_units SET state = 'error' WHERE job_id = ? AND state = 'open'`),
      abandonJobLeases: p(`UPDATE leases SET state = 'abandoned' WHERE state = 'active'
        AND wu_id IN (SELECT id FROM work_units WHERE job_id = ?)`),
      putTrust: p(`INSERT INTO trust(volunteer_id, valid_streak, strikes, suspended_until, verified_at)
        VALUES (@volunteerId, @validStreak, @strikes, @suspendedUntil, @verifiedAt)
        ON CONFLICT(volunteer_id) DO UPDATE SET valid_streak = excluded.valid_streak, strikes = excluded.strikes,
          suspended_until = excluded.suspended_until, verified_at = excluded.verified_at`),
      getResult: p('SELECT * FROM results WHERE id = ?'),
      reopenWu: p(`UPDATE work_units SET state = 'open', canonical_result_id = NULL, target = ? WHERE id = ? AND state = 'done'`),
      jobReopen: p(`UPDATE jobs SET done = done - 1,
        state = CASE WHEN state = 'done' THEN 'running' ELSE state END,
        result_sha = CASE WHEN state = 'done' THEN NULL ELSE result_sha END,
        finished_at = CASE WHEN state = 'done' THEN NULL ELSE finished_at END WHERE id = ?`),
      creditFor: p('SELECT COALESCE(sum(amount), 0) AS n FROM ledger WHERE wu_id = @wuId AND volunteer_id = @volunteerId'),
      wuDrop: p(`UPDATE work_units SET state = 'dropped' WHERE id = ? AND job_id = ? AND state = 'open'`),
      activeLeasesOfWu: p(`SELECT id FROM leases WHERE wu_id = ? AND state = 'active'`),
      jobSeqOf: p('SELECT job_seq FROM work_units WHERE job_id = ? LIMIT 1'),
      advanceJob: p(`UPDATE jobs SET meta = @meta, total = total + @added - @dropped,
        state = CASE WHEN @resultSha IS NULL THEN state ELSE 'done' END,
        result_sha = COALESCE(@resultSha, result_sha), finished_at = CASE WHEN @resultSha IS NULL THEN finished_at ELSE @now END
        WHERE id = @id`),
    };
  }

  /**
   * Runs a batch of writes in one transaction (not yet durable: see GroupCommit). Throws when the
   * transaction itself fails, in which case none of them happened.
   */
  run(writes: [keyof WriteOps, unknown[]][]): BatchOutcome {
    try {
      // IMMEDIATE: the write lock is taken (waiting out a checkpoint's RESTART) before anything is
      // read, so the batch's first write never finds its snapshot stale (an instant SQLITE_BUSY).
      let outcomes;
      try {
        // Writes rarely fail: a batch first runs without a savepoint per write (each costs two
        // statements and a copy of every page it touches, ~10% of the batch), and only when one
        // fails is it rolled back and run again with them, so that the failure stays its own.
        outcomes = this.batch.immediate(writes, false);
      } catch (err) {
        if (!(err instanceof WriteFailed)) throw err;
        this.head = undefined; // rolled back: read it again
        outcomes = this.batch.immediate(writes, true);
      }
      for (const jobId of this.runningAdded) this.runningJobs.add(jobId);
      return { outcomes, effects: this.effects, moreWork: this.moreWork };
    } catch (err) {
      this.head = undefined; // rolled back: read it again
      throw err;
    }
  }

  close() {
    this.db.close();
  }

  /** The writes, by name: each runs inside the batch's transaction, on arguments that are plain data. */
  readonly ops = {
    setMeta: (key: string, value: string) => {
      this.s.setMeta.run(key, value);
    },

    upsertVolunteer: (v: { id: string; publicKey: string; name: string | null; now: number }): VolunteerRecord => {
      this.s.upsertVolunteer.run(v);
      return toVolunteer(this.s.getVolunteer.get(v.id) as Row);
    },

    pruneVolunteers: (p: VolunteerPrune): number => {
      const connected = JSON.stringify(p.connected);
      this.s.touchVolunteers.run({ now: p.now, connected, touchBefore: Math.floor(p.now - p.idleMs / 2) });
      return this.s.pruneVolunteers.run({ seenBefore: p.now - p.idleMs, connected, limit: p.limit }).changes;
    },

    createJob: (job: NewJob, units: NewWorkUnit[]) => {
      const jobSeq = Number((this.s.jobSeq.get() as Row).n) + 1;
      this.s.insertJob.run({ ...job, owner: job.owner ?? null, meta: json(job.meta), resultShape: job.resultShape ? json(job.resultShape) : null, total: units.length });
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
      this.moreWork++;
    },

    setJobResult: (jobId: string, sha256: string, now: number) => {
      this.s.setJobResult.run(sha256, now, jobId);
    },

    failJob: (jobId: string, error: string, now: number) => this.failJobTx(jobId, error, now),

    /** Up to `count` units in queue order. */
    leaseUnits: (req: PlainLeaseRequest): Leased[] => {
      const rows = leaseQuery(this.db, req.kinds?.length, this.leaseQueries).all(leaseQueryParams(req, req.count ?? 1)) as Row[];
      return this.leased(this.leaseTx(req, rows));
    },

    /**
     * The units the store's `choose` picked among committed candidates, those of them still
     * leasable (another write may have taken one since), topped up in queue order to `count`.
     */
    leaseChosen: (req: PlainLeaseRequest, wuIds: string[]): Leased[] => {
      const rows = wuIds.map((id) => this.s.eligibleWu.get({ id, v: req.volunteerId }) as Row | undefined).filter((r): r is Row => !!r);
      const chosen = this.leaseTx(req, rows);
      const more = (req.count ?? 1) - chosen.length;
      if (more <= 0) return this.leased(chosen);
      const rest = leaseQuery(this.db, req.kinds?.length, this.leaseQueries).all(leaseQueryParams(req, more)) as Row[];
      return this.leased([...chosen, ...this.leaseTx(req, rest)]);
    },

    endLeases: (leaseIds: string[], state: 'abandoned' | 'returned' | 'expired') => {
      let n = 0;
      for (const id of leaseIds) n += this.endLeaseTx(id, state);
      return n;
    },

    expireLeases: (now: number) => {
      let n = 0;
      for (const row of this.s.expiredLeases.all(now) as Row[]) n += this.endLeaseTx(toLease(row).id, 'expired');
      return n;
    },

    addResult: (r: ResultRecord) => this.addResultTx(r),

    addSoleResult: (r: ResultRecord, sole: SoleSettlement): { outcome: SettlementOutcome | null } | null => {
      const seen = this.s.resultsOfUnit.get(r.volunteerId, r.wuId) as Row;
      if (Number(seen.mine) > 0) return null; // this volunteer already has one
      // Alone only when nothing else is live and the unit is still open; otherwise stored to be compared.
      const done = Number(seen.live) > 0 ? undefined : (this.s.wuDone.get(r.id, r.wuId) as Row | undefined);
      if (!done) return this.addResultTx(r) ? { outcome: null } : null;
      this.effects.push({ unit: r.wuId });
      this.addResultTx({ ...r, state: 'valid' });
      const credits = [{ volunteerId: r.volunteerId, amount: sole.amount }];
      return { outcome: this.creditTx({ wuId: r.wuId, canonicalResultId: r.id, valid: [r.id], invalid: [], credits, now: sole.now }, String(done.job_id)) };
    },

    raiseTarget: (wuId: string, target: number) => {
      this.s.setTarget.run(target, wuId);
      this.effects.push({ unit: wuId });
      this.moreWork++;
    },

    settle: (s: Settlement): SettlementOutcome => {
      const done = this.s.wuDone.get(s.canonicalResultId, s.wuId) as Row | undefined;
      if (!done) {
        const jobId = String((this.s.jobOfWu.get(s.wuId) as Row).job_id);
        return { entries: [], balances: {}, jobComplete: false, jobId }; // settled already
      }
      this.effects.push({ unit: s.wuId });
      for (const id of s.valid) this.s.resultState.run('valid', null, id);
      for (const id of s.invalid) {
        this.s.resultState.run('invalid', 'disagreed with the quorum', id);
        this.s.liveDelta.run(-1, s.wuId);
      }
      if (s.invalid.length) this.moreWork++;
      return this.creditTx(s, String(done.job_id));
    },

    /** See Store.rejectResults. */
    rejectResults: (wuId: string, resultIds: string[], reason: string): number => {
      let n = 0;
      for (const id of resultIds) {
        const row = this.s.getResult.get(id) as Row | undefined;
        if (!row || row.state !== 'pending' || String(row.wu_id) !== wuId) continue;
        this.s.resultState.run('invalid', reason, id);
        this.s.liveDelta.run(-1, wuId);
        n++;
      }
      if (n) {
        this.effects.push({ unit: wuId });
        this.moreWork++;
      }
      return n;
    },

    /** Marks the unit errored, its pending results invalid, and fails the job. */
    failWorkUnit: (wuId: string, reason: string, now: number) => {
      const jobId = String((this.s.jobOfWu.get(wuId) as Row).job_id);
      this.s.wuError.run(wuId);
      this.effects.push({ unit: wuId });
      this.s.invalidatePending.run(reason, wuId);
      this.failJobTx(jobId, `work unit ${wuId} failed: ${reason}`, now);
    },

    /** See Store.advanceRound. */
    advanceRound: (a: RoundAdvance): boolean => {
      const row = this.s.getJob.get(a.jobId) as Row | undefined;
      if (!row) return false;
      const job = toJob(row);
      if ((job.state !== 'running' && job.state !== 'queued') || (job.meta as { round?: unknown }).round !== a.round) return false;
      let dropped = 0;
      for (const id of a.drop) {
        if (this.s.wuDrop.run(id, a.jobId).changes === 0) continue;
        dropped++;
        this.effects.push({ unit: id });
        for (const l of this.s.activeLeasesOfWu.all(id) as Row[]) this.endLeaseTx(String(l.id), 'abandoned');
        this.s.invalidatePending.run('its round closed before a quorum of replicas agreed', id);
      }
      const jobSeq = Number((this.s.jobSeqOf.get(a.jobId) as Row).job_seq);
      for (const u of a.units) {
        this.s.insertWu.run({ ...u, params: json(u.params), inputs: json(u.inputs), tolerance: json(u.tolerance), meta: json(u.meta), target: u.target ?? job.replication, jobSeq });
      }
      this.s.advanceJob.run({ id: a.jobId, meta: json(a.meta), added: a.units.length, dropped, resultSha: a.result?.sha256 ?? null, now: a.now });
      if (a.units.length) this.moreWork++;
      return true;
    },

    putTrust: (records: TrustRecord[]) => {
      for (const record of records) this.s.putTrust.run(record);
    },

    revokeResults: (rev: Revocation) => {
      const entries: LedgerEntry[] = [];
      const balances: Record<string, number> = {};
      for (const id of rev.resultIds) {
        const row = this.s.getResult.get(id) as Row | undefined;
        if (!row || row.state !== 'valid') continue;
        const result = toResult(row);
        const wu = toWu(this.s.getWu.get(result.wuId) as Row);
        const canonical = wu.state === 'done' && wu.canonicalResultId === id;
        this.effects.push({ unit: wu.id });
        const job = toJob(this.s.getJob.get(wu.jobId) as Row);
        this.s.resultState.run('invalid', rev.reason, id);
        this.s.liveDelta.run(-1, wu.id);
        if (canonical && job.state !== 'failed' && !closedRound(job, wu)) {
          // A failed job wants no more work (nor a closed round): its result is taken back, nothing is recomputed.
          this.s.reopenWu.run(job.replication, wu.id);
          this.s.jobReopen.run(wu.jobId);
        }
        const earned = Number((this.s.creditFor.get({ wuId: wu.id, volunteerId: result.volunteerId }) as Row).n);
        if (earned > 0) {
          const entry = nextEntry(this.headTx(), { ts: rev.now, volunteerId: result.volunteerId, jobId: wu.jobId, wuId: wu.id, amount: -earned });
          this.appendEntry(entry, balances);
          entries.push(entry);
        }
      }
      return this.receipted({ entries, balances });
    },
  } satisfies WriteTable;

  private leaseTx(req: PlainLeaseRequest, rows: Row[]): Leased[] {
    // Time-ordered ids: new rows land at the end of the id index, not on a random page each.
    const leased = rows.map((row) => {
      const wu = toWu(row);
      const lease: LeaseRecord = { id: timeOrderedId('l_'), wuId: wu.id, volunteerId: req.volunteerId, issuedAt: req.now, deadline: req.deadline, state: 'active' };
      return { lease, wu };
    });
    // A worker's slots are leased together: one statement for all its leases, one for their units.
    for (let i = 0; i < leased.length; i += MAX_ROWS_PER_STATEMENT) {
      const chunk = leased.slice(i, i + MAX_ROWS_PER_STATEMENT);
      this.insertLeases(chunk.length).run(chunk.flatMap(({ lease }) => [lease.id, lease.wuId, req.volunteerId, req.now, req.deadline, req.aliveUntil ?? req.deadline]));
      this.leaseUnitsLive(chunk.length).run(chunk.map(({ wu }) => wu.id));
    }
    for (const { wu } of leased) {
      // Mark a job running once, not on every lease (and again if that write was rolled back).
      if (!this.runningJobs.has(wu.jobId) && !this.runningAdded.includes(wu.jobId)) {
        this.s.jobRunning.run(wu.jobId);
        this.runningAdded.push(wu.jobId);
      }
    }
    return leased;
  }

  /** A lease write's value: the store caches what it leased once the batch commits. */
  private leased(value: Leased[]): Leased[] {
    if (value.length) this.effects.push({ leased: this.current });
    return value;
  }

  private readonly sized = new Map<string, Database.Statement>();

  /** A statement for `n` rows, prepared once per size. */
  private sizedStatement(name: string, n: number, sql: (n: number) => string): Database.Statement {
    const key = `${name}:${n}`;
    let stmt = this.sized.get(key);
    if (!stmt) this.sized.set(key, (stmt = this.db.prepare(sql(n))));
    return stmt;
  }

  private insertLeases(n: number) {
    return this.sizedStatement('insertLeases', n, (k) =>
      `INSERT INTO leases(id, wu_id, volunteer_id, issued_at, deadline, state, alive_until) VALUES ${Array(k).fill("(?, ?, ?, ?, ?, 'active', ?)").join(', ')}`,
    );
  }

  private leaseUnitsLive(n: number) {
    return this.sizedStatement('leaseUnitsLive', n, (k) => `UPDATE work_units SET live = live + 1 WHERE id IN (${Array(k).fill('?').join(', ')})`);
  }

  /** The job fails; its open units close (nobody is given them again) and their leases end. */
  private failJobTx(jobId: string, error: string, now: number) {
    if (this.s.failJob.run(error, now, jobId).changes === 0) return;
    this.s.closeJobUnits.run(jobId);
    this.s.abandonJobLeases.run(jobId);
    this.effects.push({ clear: true });
  }

  private endLeaseTx(leaseId: string, state: string): number {
    const ended = this.s.endLease.get(state, leaseId) as Row | undefined;
    if (!ended) return 0;
    this.s.liveDelta.run(-1, ended.wu_id);
    this.effects.push({ ended: leaseId });
    if (state !== 'returned') this.moreWork++; // a replica is wanted again
    return 1;
  }

  private addResultTx(r: ResultRecord): boolean {
    const data = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
    if (this.s.insertResult.run({ ...r, data }).changes === 0) return false; // this volunteer already has one
    // The lease stops counting towards `live` and a live result starts: one update for both.
    const ended = this.s.returnLease.run(r.leaseId).changes;
    if (ended) this.effects.push({ ended: r.leaseId });
    const delta = (r.state !== 'invalid' ? 1 : 0) - ended;
    if (delta !== 0) this.s.liveDelta.run(delta, r.wuId);
    if (delta < 0) this.moreWork++; // an invalid result: a replica is wanted again
    return true;
  }

  /**
   * A settled unit counts towards its job, and its quorum is credited (entries sealed, the job's
   * count and the balances updated, at the end of the batch).
   */
  private creditTx(s: Settlement, jobId: string): SettlementOutcome {
    const entries = settlementEntries(s, jobId, this.headTx());
    const balances: Record<string, number> = {};
    for (const entry of entries) this.appendEntry(entry, balances);
    const outcome = this.receipted({ entries, balances, jobComplete: false, jobId });
    this.settledUnits.push({ jobId, outcome });
    return outcome;
  }

  /**
   * The batch's settled units and credits, one update per job and one per volunteer (not one per
   * unit): the last settlement of a job learns whether it completed it, and every credit of a
   * volunteer carries the volunteer's balance after the batch.
   */
  private countAndCredit() {
    const units = new Map<string, { n: number; last: SettlementOutcome }>();
    for (const { jobId, outcome } of this.settledUnits) units.set(jobId, { n: (units.get(jobId)?.n ?? 0) + 1, last: outcome });
    for (const [jobId, { n, last }] of units) {
      const job = this.s.jobDone.get(n, jobId) as Row;
      last.jobComplete = job.done === job.total && job.state === 'running';
    }
    const sums = new Map<string, number>();
    for (const c of this.credited) sums.set(c.volunteerId, (sums.get(c.volunteerId) ?? 0) + c.amount);
    const after = new Map<string, number>();
    for (const [id, amount] of sums) after.set(id, Number((this.s.addCredit.get(amount, id) as Row | undefined)?.credit ?? 0));
    for (const c of this.credited) c.balances[c.volunteerId] = after.get(c.volunteerId)!;
  }

  /** A value whose ledger entries are replaced by their receipts once the batch is sealed. */
  private receipted<T extends { entries: LedgerEntry[] }>(value: T): Omit<T, 'entries'> & { entries: LedgerReceipt[] } {
    if (value.entries.length) this.toReceipt.push(value);
    return value as unknown as Omit<T, 'entries'> & { entries: LedgerReceipt[] };
  }

  /** The ledger's last entry, inside a write. */
  private headTx(): LedgerEntry | null {
    if (this.head === undefined) {
      const row = this.s.ledgerHead.get() as Row | undefined;
      this.head = row ? toLedgerEntry(row) : null;
    }
    return this.head;
  }

  /** Inserts an entry after the head; its credit, and the volunteer's balance in `balances`, follow at the batch's end. */
  private appendEntry(entry: LedgerEntry, balances: Record<string, number>) {
    requireSealer(this.sealer); // without it this write fails here, and the batch's others still commit
    this.s.insertLedger.run(entry);
    this.head = entry;
    this.unsealed.push(entry);
    this.credited.push({ volunteerId: entry.volunteerId, amount: entry.amount, balances });
  }

  /** One seal over every entry the batch appended, in its transaction: one signature per commit. */
  private sealBatch() {
    if (this.unsealed.length === 0) return;
    const { seal, receipts } = requireSealer(this.sealer)(this.unsealed);
    this.s.insertSeal.run(seal);
    const byEntry = new Map(receipts.map((r) => [r.entry, r]));
    for (const value of this.toReceipt) value.entries = value.entries.map((e) => byEntry.get(e as LedgerEntry)!);
    this.unsealed = [];
    this.toReceipt = [];
  }
}

export type WriteOps = SqliteWriter['ops'];
export type WriteName = keyof WriteOps;

/** A write waiting in a batch: `id` names it in the batch's answer. */
export interface QueuedWrite {
  id: number;
  name: WriteName;
  args: unknown[];
}

/** A batch's answer, once it is on disk (or the error that stopped it: then none of it happened or is acknowledged). */
export type BatchAnswer = { ids: number[] } & ({ outcome: BatchOutcome } | { error: unknown });

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


/**
 * Commits the writes queued in an event-loop turn together, no sooner than COMMIT_GAP_MS after the
 * last commit (under load, writes pile up into fewer, larger commits, each costing one fsync), and
 * answers them once the WAL is on disk.
 */
export class GroupCommit {
  private pending: QueuedWrite[] = [];
  private scheduled = false;
  private lastCommit = 0;
  private readonly wal: WalSync;

  constructor(
    private readonly writer: SqliteWriter,
    file: string,
    private readonly answer: (a: BatchAnswer) => void,
  ) {
    this.wal = new WalSync(`${file}-wal`);
  }

  add(writes: QueuedWrite[]) {
    for (const w of writes) this.pending.push(w);
    if (!this.scheduled && this.pending.length) this.schedule();
  }

  private schedule() {
    this.scheduled = true;
    const wait = this.lastCommit + COMMIT_GAP_MS - performance.now();
    if (wait <= 0) setImmediate(() => this.flush());
    else setTimeout(() => this.flush(), wait);
  }

  private flush() {
    this.scheduled = false;
    if (this.pending.length === 0 || !this.writer.db.open) return;
    const writes = this.pending;
    this.pending = [];
    const ids = writes.map((w) => w.id);
    let outcome: BatchOutcome;
    try {
      outcome = this.writer.run(writes.map((w) => [w.name, w.args]));
    } catch (error) {
      return this.answer({ ids, error }); // the commit itself failed: nothing was acknowledged
    } finally {
      this.lastCommit = performance.now();
      if (this.pending.length) this.schedule();
    }
    this.wal.after((error) => this.answer(error ? { ids, error } : { ids, outcome }));
  }

  /** Commits what is queued, waits until every commit is on disk, and closes the connection. */
  async close() {
    this.flush();
    await new Promise((resolve) => this.wal.after(resolve));
    this.writer.close();
    this.wal.close();
  }
}

/** What the store sends its writer thread. */
export type ThreadRequest = { writes: QueuedWrite[] } | { close: true };

/**
 * The writer on a thread of its own (sqlite-writer-thread.ts): SQLite's work for a batch, its seal
 * and its fsync run beside the event loop instead of inside it. Writes sent in one turn travel as
 * one message; the thread groups what arrives while it is busy into its next commit.
 */
export class WriterThread {
  private readonly worker: Worker;
  private closed: Promise<void> | null = null;
  private dead = false;

  constructor(
    opts: WriterOptions,
    answer: (a: BatchAnswer) => void,
    /** The thread stopped by itself (an error): its unanswered writes are lost. */
    died: (err: Error) => void,
  ) {
    const workerData = { ...opts, entry: new URL('./writer-thread.ts', import.meta.url).href, tsx: import.meta.resolve('tsx/esm/api') };
    this.worker = new Worker(THREAD_BOOT, { eval: true, workerData });
    this.worker.on('message', (msg: BatchAnswer | { closed: true }) => {
      if ('ids' in msg) answer(msg);
    });
    const die = (err: Error) => {
      if (this.dead || this.closed) return;
      this.dead = true;
      died(err);
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`the SQLite writer thread exited (code ${code})`)));
  }

  send(writes: QueuedWrite[]) {
    this.worker.postMessage({ writes } satisfies ThreadRequest);
  }

  /** How busy the thread's event loop has been (since `before`, when given). */
  utilization(before?: EventLoopUtilization): EventLoopUtilization {
    return this.worker.performance.eventLoopUtilization(before);
  }

  /** Lets every write sent so far commit and be answered, then stops the thread. */
  close(): Promise<void> {
    if (this.dead) return Promise.resolve();
    this.closed ??= new Promise<void>((resolve) => {
      this.worker.on('message', (msg: { closed?: true }) => {
        if (msg.closed) void this.worker.terminate().then(() => resolve());
      });
      this.worker.once('exit', () => resolve());
      this.worker.postMessage({ close: true } satisfies ThreadRequest);
    });
    return this.closed;
  }
}

// Plain JavaScript, evaluated as the thread's source: loads the thread's TypeScript module through tsx.
const THREAD_BOOT = `
const { workerData } = require('node:worker_threads');
(async () => {
  (await import(workerData.tsx)).register(); // a thread does not inherit the process's loader
  await import(workerData.entry);
})().catch((err) => setImmediate(() => { throw err; }));
`;
