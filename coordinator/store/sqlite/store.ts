// SQLite implementation of Store (better-sqlite3, WAL). Every method is atomic. Reads run on this
// store's own connection; writes go to the file's one writer (sqlite-writer.ts), which group commits
// them and answers each once it is on disk — on a thread of its own for the coordinator
// (`writerThread`), in this process otherwise. Being the file's only writer, the store keeps caches
// of committed state (active leases, recent units, trust), updated from what each committed batch
// reports, so the hot path's reads need not go to the database.
import type { KeyObject } from 'node:crypto';
import type { EventLoopUtilization } from 'node:perf_hooks';
import type Database from 'better-sqlite3';
import type { Sealer } from '../../ledger/chain.js';
import { openDatabase } from './schema.js';
import { toJob, toLease, toLedgerEntry, toLedgerSeal, toResult, toVolunteer, toWu, type Row } from '../rows.js';
import {
  GroupCommit,
  leaseQuery,
  leaseQueryParams,
  SqliteWriter,
  WriterThread,
  type BatchAnswer,
  type PlainLeaseRequest,
  type QueuedWrite,
  type WriteName,
  type WriteOps,
  type WriterOptions,
} from './writer.js';
import { WalCheckpointer } from './wal-checkpointer.js';
import { freshTrust, type TrustRecord } from '../store.js';
import type {
  NewJob,
  Leased,
  LeaseRecord,
  LeaseState,
  LeaseRequest,
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
  WorkUnitRecord,
} from '../store.js';
import { leaseQueryLimit, pickUnits } from '../store.js';

/** Units kept in memory (each ~1 KB): more than a busy coordinator has in flight. */
const UNIT_CACHE_SIZE = 50_000;

interface Waiting {
  resolve: (value: never) => void;
  reject: (err: unknown) => void;
}

export interface SqliteStoreOptions {
  /** Signs the ledger's seals; without it the store can read the ledger but not append to it. */
  sealer?: Sealer;
  /** The coordinator's private key, for a writer thread (which cannot be handed a function). */
  sealKey?: KeyObject;
  /** Writes (SQL, seals, fsyncs) on a thread of their own; needs `sealKey` to append to the ledger. */
  writerThread?: boolean;
  /** Checkpoint the log on a thread of its own instead of inside commits (the coordinator's store). */
  checkpointThread?: boolean;
}

export class SqliteStore implements Store {
  /** This store's reading connection (the dashboard's views read through it too). */
  readonly db: Database.Database;
  readonly shared = false;
  workVersion = 0;
  private readonly s;
  private readonly leaseQueries = new Map<number, Database.Statement>();

  private readonly writerOpts: WriterOptions;
  private readonly writerThread: boolean;
  private thread: WriterThread | null = null;
  private commits: GroupCommit | null = null;
  private nextId = 0;
  /** Writes sent and not answered yet, by id. */
  private readonly waiting = new Map<number, Waiting>();
  /** Writes asked for in this turn, sent together at its end. */
  private outbox: QueuedWrite[] = [];

  /** Active leases and recently read units, as committed. */
  private readonly leases = new Map<string, LeaseRecord>();
  private readonly units = new Map<string, WorkUnitRecord>();
  /**
   * Trust records, as this store wrote them: one coordinator writes a file, so its copy is current
   * (a store that only reads, like a test's observer, always reads the file).
   */
  private readonly trust = new Map<string, TrustRecord>();
  /** Trust records changed in this turn, written once each by one write. */
  private readonly trustToWrite = new Map<string, TrustRecord>();
  /** That write, and its argument (filled as the outbox leaves). */
  private trustWrite: { done: Promise<void>; records: TrustRecord[] } | null = null;

  private readonly extra: Database.Database[] = [];
  private readonly checkpointer: WalCheckpointer | undefined;

  constructor(
    private readonly file: string,
    opts: SqliteStoreOptions = {},
  ) {
    this.db = openDatabase(file, 'FULL'); // creates or migrates the schema before the writer opens it
    this.writerThread = opts.writerThread ?? false;
    this.writerOpts = { file, sealer: opts.sealer, sealKey: opts.sealKey, manualCheckpoints: opts.checkpointThread };
    if (this.writerThread) delete this.writerOpts.sealer; // a function does not cross to a thread
    if (opts.checkpointThread) this.checkpointer = new WalCheckpointer(file);
    if (this.writerThread) this.startThread(); // it loads while the coordinator starts
    const p = (sql: string) => this.db.prepare(sql);
    this.s = {
      getMeta: p('SELECT value FROM meta WHERE key = ?'),
      getVolunteer: p('SELECT * FROM volunteers WHERE id = ?'),
      listVolunteers: p(`SELECT v.*, v.valid_results AS valid, v.invalid_results AS invalid, v.pending_results AS pending
        FROM volunteers v ORDER BY v.credit DESC, v.created_at LIMIT ?`),
      countVolunteers: p('SELECT count(*) AS n FROM volunteers'),
      countUnproven: p('SELECT count(*) AS n FROM volunteers WHERE credit = 0'),
      getJob: p('SELECT * FROM jobs WHERE id = ?'),
      listJobs: p('SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?'),
      activeJobsOfKinds: p(`SELECT * FROM jobs WHERE state IN ('queued', 'running') AND kind IN (SELECT value FROM json_each(?)) ORDER BY created_at`),
      listOwnJobs: p('SELECT * FROM jobs WHERE owner = ? ORDER BY created_at DESC LIMIT ?'),
      countActiveJobs: p(`SELECT count(*) AS n FROM jobs WHERE substr(owner, 1, length(@prefix)) = @prefix AND state IN ('queued', 'running')`),
      getWu: p('SELECT * FROM work_units WHERE id = ?'),
      getLease: p('SELECT * FROM leases WHERE id = ?'),
      countActive: p(`SELECT count(*) AS n FROM leases WHERE wu_id = ? AND state = 'active'`),
      liveResults: p(`SELECT * FROM results WHERE wu_id = ? AND state != 'invalid' ORDER BY received_at, id`),
      ledgerHead: p('SELECT * FROM ledger ORDER BY seq DESC LIMIT 1'),
      ledgerFrom: p('SELECT * FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?'),
      sealsFrom: p('SELECT * FROM ledger_seals WHERE last_seq > ? ORDER BY last_seq LIMIT ?'),
      getTrust: p('SELECT * FROM trust WHERE volunteer_id = ?'),
      // A valid result was always credited, so the volunteer's ledger entries (indexed by volunteer)
      // name every unit it may have one for; results has no index by volunteer.
      unreplicated: p(`SELECT r.id, r.wu_id FROM (SELECT DISTINCT wu_id FROM ledger WHERE volunteer_id = @v) l
        JOIN results r ON r.wu_id = l.wu_id AND r.volunteer_id = @v JOIN work_units wu ON wu.id = r.wu_id
        WHERE r.state = 'valid' AND r.received_at > @since AND wu.state = 'done'
          AND (SELECT count(*) FROM results r2 WHERE r2.wu_id = r.wu_id AND r2.state = 'valid') = 1
        ORDER BY r.received_at, r.id`),
      quorumsAmong: p(`SELECT r.id, r.wu_id FROM (SELECT DISTINCT wu_id FROM ledger WHERE volunteer_id IN (SELECT value FROM json_each(@ids))) l
        JOIN results r ON r.wu_id = l.wu_id AND r.volunteer_id IN (SELECT value FROM json_each(@ids))
        WHERE r.state = 'valid' AND NOT EXISTS (SELECT 1 FROM results o WHERE o.wu_id = r.wu_id AND o.state = 'valid'
          AND o.volunteer_id NOT IN (SELECT value FROM json_each(@ids)))
        ORDER BY r.received_at, r.id`),
      unsettledUnits: p(`SELECT DISTINCT r.wu_id FROM results r JOIN work_units wu ON wu.id = r.wu_id
        WHERE r.state = 'pending' AND wu.state = 'open'`),
      unassembledJobs: p(`SELECT id FROM jobs WHERE state = 'running' AND done = total`),
      canonical: p(`SELECT wu.*, r.data AS result_data FROM work_units wu JOIN results r ON r.id = wu.canonical_result_id
        WHERE wu.job_id = ? ORDER BY wu.idx`),
      unitRangeData: p(`SELECT wu.*, r.data AS result_data,
          (SELECT count(*) FROM results r2 WHERE r2.wu_id = wu.id AND r2.state = 'valid') AS valid_results
        FROM work_units wu LEFT JOIN results r ON r.id = wu.canonical_result_id
        WHERE wu.job_id = ? AND wu.idx >= ? AND wu.idx < ? ORDER BY wu.idx`),
      unitRange: p(`SELECT wu.*, (SELECT count(*) FROM results r2 WHERE r2.wu_id = wu.id AND r2.state = 'valid') AS valid_results
        FROM work_units wu WHERE wu.job_id = ? AND wu.idx >= ? AND wu.idx < ? ORDER BY wu.idx`),
    };
  }

  // --- The writer -------------------------------------------------------------------------------

  /** Queues a write for this turn's batch; resolves once it is committed and on disk. */
  private write<K extends WriteName>(name: K, ...args: Parameters<WriteOps[K]>): Promise<ReturnType<WriteOps[K]>> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.waiting.set(id, { resolve: resolve as (v: never) => void, reject });
      this.outbox.push({ id, name, args });
      if (this.outbox.length === 1) setImmediate(() => this.send());
    });
  }

  private send() {
    if (this.trustWrite) {
      this.trustWrite.records.push(...this.trustToWrite.values());
      this.trustToWrite.clear();
      this.trustWrite = null; // changes from now on go into the next batch
    }
    const writes = this.outbox;
    this.outbox = [];
    if (writes.length === 0) return;
    if (this.writerThread) {
      (this.thread ?? this.startThread()).send(writes);
    } else {
      this.commits ??= new GroupCommit(new SqliteWriter(this.writerOpts), this.file, (a) => this.answered(a));
      this.commits.add(writes);
    }
  }

  private startThread(): WriterThread {
    this.thread = new WriterThread(this.writerOpts, (a) => this.answered(a), (err) => this.writerDied(err));
    return this.thread;
  }

  /** A batch committed (or failed): the caches learn what it did, then its writes are answered. */
  private answered(a: BatchAnswer) {
    if ('error' in a) {
      for (const id of a.ids) this.settleWrite(id, false, a.error);
      return;
    }
    const { outcomes, effects, moreWork } = a.outcome;
    for (const e of effects) {
      if ('leased' in e) {
        for (const { lease, wu } of outcomes[e.leased].value as Leased[]) {
          this.leases.set(lease.id, lease);
          this.cacheUnit(wu);
        }
      } else if ('ended' in e) this.leases.delete(e.ended);
      else if ('unit' in e) this.units.delete(e.unit);
      else {
        this.units.clear();
        this.leases.clear();
      }
    }
    this.workVersion += moreWork;
    a.ids.forEach((id, i) => this.settleWrite(id, outcomes[i].ok, outcomes[i].value));
  }

  private settleWrite(id: number, ok: boolean, value: unknown) {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    if (ok) w?.resolve(value as never);
    else w?.reject(value);
  }

  /** The writer thread stopped: what it was asked is lost (unacknowledged), its effects unknown. */
  private writerDied(err: Error) {
    this.thread = null; // the next write starts a fresh one
    this.units.clear();
    this.leases.clear();
    this.workVersion++;
    for (const id of [...this.waiting.keys()]) this.settleWrite(id, false, err);
  }

  /** How busy the writer thread has been (since `before`, when given); null without one. */
  writerUtilization(before?: EventLoopUtilization): EventLoopUtilization | null {
    return this.thread?.utilization(before) ?? null;
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
    this.send();
    await (this.thread?.close() ?? this.commits?.close()); // the last commits are on disk
    await this.checkpointer?.stop();
    this.db.close();
  }

  // --- Meta, volunteers, jobs -------------------------------------------------------------------

  async getMeta(key: string) {
    const row = this.s.getMeta.get(key) as Row | undefined;
    return row ? String(row.value) : null;
  }

  async setMeta(key: string, value: string) {
    await this.write('setMeta', key, value);
  }

  async upsertVolunteer(v: { id: string; publicKey: string; name: string | null; now: number }) {
    return this.write('upsertVolunteer', v);
  }

  async getVolunteer(id: string) {
    const row = this.s.getVolunteer.get(id) as Row | undefined;
    return row ? toVolunteer(row) : null;
  }

  async listVolunteers(limit?: number): Promise<VolunteerStats[]> {
    return (this.s.listVolunteers.all(limit ?? -1) as Row[]).map((r) => ({
      ...toVolunteer(r),
      valid: Number(r.valid),
      invalid: Number(r.invalid),
      pending: Number(r.pending),
    }));
  }

  async countVolunteers(): Promise<VolunteerCounts> {
    return { total: Number((this.s.countVolunteers.get() as Row).n), unproven: Number((this.s.countUnproven.get() as Row).n) };
  }

  async pruneVolunteers(p: VolunteerPrune) {
    return this.write('pruneVolunteers', { ...p, connected: [...p.connected] });
  }

  async createJob(job: NewJob, units: NewWorkUnit[]) {
    await this.write('createJob', job, units);
  }

  async getJob(id: string) {
    const row = this.s.getJob.get(id) as Row | undefined;
    return row ? toJob(row) : null;
  }

  async listJobs(owner?: string, limit = 500) {
    const rows = owner === undefined ? this.s.listJobs.all(limit) : this.s.listOwnJobs.all(owner, limit);
    return (rows as Row[]).map(toJob);
  }

  async activeJobsOfKinds(kinds: readonly string[]) {
    return (this.s.activeJobsOfKinds.all(JSON.stringify(kinds)) as Row[]).map(toJob);
  }

  async countActiveJobs(ownerPrefix: string) {
    return Number((this.s.countActiveJobs.get({ prefix: ownerPrefix }) as Row).n);
  }

  async setJobResult(jobId: string, sha256: string, now: number) {
    await this.write('setJobResult', jobId, sha256, now);
  }

  async failJob(jobId: string, error: string, now: number) {
    await this.write('failJob', jobId, error, now);
  }

  // --- Units and leases -------------------------------------------------------------------------

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

  /**
   * With `choose`, the pick is made here among committed candidates and the writer leases what is
   * still leasable of it, topped up in queue order (a function does not travel to the writer).
   */
  async leaseUnits(req: LeaseRequest) {
    const { choose, ...plain } = req;
    if (!choose) return this.write('leaseUnits', plain satisfies PlainLeaseRequest);
    const rows = leaseQuery(this.db, req.kinds?.length, this.leaseQueries).all(leaseQueryParams(plain, leaseQueryLimit(req))) as Row[];
    const picked = pickUnits(rows.map(toWu), req);
    return this.write('leaseChosen', plain, picked.map((wu) => wu.id));
  }

  async getLease(id: string) {
    const hit = this.leases.get(id);
    if (hit) return hit;
    const row = this.s.getLease.get(id) as Row | undefined;
    return row ? toLease(row) : null;
  }

  async endLeases(leaseIds: string[], state: 'abandoned' | 'returned' | 'expired') {
    return this.write('endLeases', leaseIds, state);
  }

  /**
   * Nothing to renew: one coordinator per SQLite file, whose leases live exactly as long as it
   * does (it expires all of them when it starts), so their heartbeat is not stored.
   */
  async renewLeases(_aliveUntil: number) {
    return 0;
  }

  async expireLeases(now: number) {
    return this.write('expireLeases', now);
  }

  /** None: this coordinator is the file's only one, and tells its workers of every lease it ends. */
  async endedLeases(_leaseIds: string[]): Promise<{ id: string; state: LeaseState }[]> {
    return [];
  }

  async countActiveLeases(wuId: string) {
    return Number((this.s.countActive.get(wuId) as Row).n);
  }

  // --- Results and settlement -------------------------------------------------------------------

  async addResult(r: ResultRecord) {
    return this.write('addResult', r);
  }

  async addSoleResult(r: ResultRecord, sole: SoleSettlement) {
    return this.write('addSoleResult', r, sole);
  }

  async liveResults(wuId: string) {
    return (this.s.liveResults.all(wuId) as Row[]).map(toResult);
  }

  async raiseTarget(wuId: string, target: number) {
    await this.write('raiseTarget', wuId, target);
  }

  async settle(s: Settlement): Promise<SettlementOutcome> {
    return this.write('settle', s);
  }

  async rejectResults(wuId: string, resultIds: string[], reason: string) {
    return this.write('rejectResults', wuId, resultIds, reason);
  }

  async failWorkUnit(wuId: string, reason: string, now: number) {
    await this.write('failWorkUnit', wuId, reason, now);
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

  async unitRange(jobId: string, fromIdx: number, toIdx: number, withData = false) {
    return ((withData ? this.s.unitRangeData : this.s.unitRange).all(jobId, fromIdx, toIdx) as Row[]).map((r) => ({
      wu: toWu(r),
      data: r.result_data == null ? null : new Uint8Array(r.result_data as Buffer),
      results: Number(r.valid_results),
    }));
  }

  async advanceRound(a: RoundAdvance): Promise<boolean> {
    return this.write('advanceRound', a);
  }

  // --- Ledger -----------------------------------------------------------------------------------

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

  async revokeResults(rev: Revocation) {
    return this.write('revokeResults', rev);
  }

  // --- Trust ------------------------------------------------------------------------------------

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
   * Seen at once by this store's readers (the cache), written in this turn's batch by one write
   * for every record changed in the turn: a record changed several times (a batch of results) is
   * written once, its latest version.
   */
  putTrust(t: TrustRecord): Promise<void> {
    this.cacheTrust(t);
    this.trustToWrite.set(t.volunteerId, { ...t });
    if (!this.trustWrite) {
      const records: TrustRecord[] = [];
      this.trustWrite = { done: this.write('putTrust', records), records };
    }
    return this.trustWrite.done;
  }

  async quorumsAmong(volunteerIds: string[]) {
    return (this.s.quorumsAmong.all({ ids: JSON.stringify(volunteerIds) }) as Row[]).map((r) => ({ id: String(r.id), wuId: String(r.wu_id) }));
  }

  async unreplicatedResults(volunteerId: string, since: number) {
    return (this.s.unreplicated.all({ v: volunteerId, since }) as Row[]).map((r) => ({ id: String(r.id), wuId: String(r.wu_id) }));
  }
}
