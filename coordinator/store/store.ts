// The narrow storage interface the coordinator runs on. SQLite (sqlite-store.ts) is the embedded
// default; the methods are coarse, each one atomic, and async so a networked database (PostgreSQL)
// can take its place without touching the scheduler or the server.
import { nextEntry, type Sealer } from '../ledger/chain.js';
import type { JobState, LedgerEntry, LedgerReceipt, LedgerSeal, Tolerance } from '../protocol/index.js';

/** How far the coordinator trusts one identity (the policy that reads and changes it: work/trust.ts). */
export interface TrustRecord {
  volunteerId: string;
  /** Results in a row that were accepted (verified by a replica or accepted after the check). */
  validStreak: number;
  /** Results that failed the independent check or were forged, over the identity's life. */
  strikes: number;
  /** No work (and no connection) before this time, ms since the epoch. */
  suspendedUntil: number;
  /** When a replica last agreed with this identity's result: its unreplicated results after this are unconfirmed. */
  verifiedAt: number;
}

export function freshTrust(volunteerId: string): TrustRecord {
  return { volunteerId, validStreak: 0, strikes: 0, suspendedUntil: 0, verifiedAt: 0 };
}

export interface JobRecord {
  id: string;
  kind: string;
  name: string | null;
  state: JobState;
  replication: number;
  /** Kind-specific facts the job kind needs to assimilate (shapes, tiling). */
  meta: Record<string, unknown>;
  createdAt: number;
  finishedAt: number | null;
  error: string | null;
  resultSha: string | null;
  resultShape: number[] | null;
  total: number;
  done: number;
  /**
   * Who submitted it: an API token's id ('bootstrap' for TABGRID_API_TOKEN), `room:<code>` for a
   * room's demo job, null for jobs from before jobs had owners. A submit token sees only its own.
   */
  owner: string | null;
}

/** A job as createJob takes it: no counts yet, and no owner for jobs made outside the API (tests, tools). */
export type NewJob = Omit<JobRecord, 'total' | 'done' | 'owner'> & { owner?: string | null };

/** 'dropped': a straggler of an iterative job's round that closed without it (its late results earn nothing). */
export type WorkUnitState = 'open' | 'done' | 'error' | 'dropped';

export interface WorkUnitRecord {
  id: string;
  jobId: string;
  idx: number;
  kind: string;
  /** The kind's parameters (WorkUnitSpec['params'] on the wire). */
  params: Record<string, number | boolean>;
  inputs: Record<string, string>;
  outputBytes: number;
  flops: number;
  tolerance: Tolerance;
  /** Where this unit's output goes in the job's result (kind-specific). */
  meta: Record<string, number>;
  /** How many results are wanted now; starts at the job's replication, raised on disagreement. */
  target: number;
  state: WorkUnitState;
  canonicalResultId: string | null;
}

export type LeaseState = 'active' | 'returned' | 'expired' | 'abandoned';

export interface LeaseRecord {
  id: string;
  wuId: string;
  volunteerId: string;
  issuedAt: number;
  /** Hard limit: past it the replica is reissued whatever the worker says. */
  deadline: number;
  state: LeaseState;
}

/** What a fresh coordinator finds half-done after a crash (see Store.unfinishedWork). */
export interface UnfinishedWork {
  /** Open units holding live results that were stored but never compared (crash before settling). */
  unitsToValidate: string[];
  /** Running jobs whose every unit is done but whose result was never assembled. */
  jobsToAssemble: string[];
}

export type ResultState = 'pending' | 'valid' | 'invalid';

export interface ResultRecord {
  id: string;
  wuId: string;
  leaseId: string;
  volunteerId: string;
  sha256: string;
  state: ResultState;
  receivedAt: number;
  reason: string | null;
  data: Uint8Array;
}

export interface VolunteerRecord {
  id: string;
  publicKey: string;
  name: string | null;
  credit: number;
  createdAt: number;
  lastSeen: number;
}

export interface VolunteerCounts {
  total: number;
  /** Identities with no credit: what a stranger can mint (see work/identities.ts). */
  unproven: number;
}

export interface VolunteerPrune {
  now: number;
  idleMs: number;
  /** Identities connected to this coordinator now: never pruned. */
  connected: readonly string[];
  limit: number;
}

export interface VolunteerStats extends VolunteerRecord {
  valid: number;
  invalid: number;
  pending: number;
}

export type NewWorkUnit = Omit<WorkUnitRecord, 'target' | 'state' | 'canonicalResultId'> & {
  /** Results wanted at first; defaults to the job's replication (adaptive replication starts at 1). */
  target?: number;
};

export interface Settlement {
  wuId: string;
  canonicalResultId: string;
  valid: string[];
  invalid: string[];
  credits: { volunteerId: string; amount: number }[];
  now: number;
}

/** Ledger entries a write appended, and what they did to balances. */
export interface Credited {
  /** The credits appended, each sealed in the write's commit: the volunteers' receipts. */
  entries: LedgerReceipt[];
  /** Each credited (or debited) volunteer's balance once these entries committed (with any others of the same commit). */
  balances: Record<string, number>;
}

/** What a result that settles its unit alone earns (see Store.addSoleResult). */
export interface SoleSettlement {
  amount: number;
  now: number;
}

export interface SettlementOutcome extends Credited {
  /** True when this settlement completed the last open work unit of the job. */
  jobComplete: boolean;
  jobId: string;
}

/** How many eligible units, in queue order, leaseUnits offers to a `choose` callback. */
export const LEASE_CANDIDATES = 32;

export interface LeaseRequest {
  volunteerId: string;
  now: number;
  deadline: number;
  /** How many units at most (a worker's free slots); default 1. */
  count?: number;
  choose?: ChooseWorkUnit;
  aliveUntil?: number;
  kinds?: readonly string[];
}

export interface Leased {
  lease: LeaseRecord;
  wu: WorkUnitRecord;
}

/** How many rows a lease query asks for: the units wanted, plus room for `choose` to pick among. */
export function leaseQueryLimit(req: LeaseRequest): number {
  const count = req.count ?? 1;
  return req.choose ? LEASE_CANDIDATES + count - 1 : count;
}

/** Takes `count` units out of the candidates, each picked by `choose` (or in queue order). */
export function pickUnits(candidates: WorkUnitRecord[], req: LeaseRequest): WorkUnitRecord[] {
  const count = req.count ?? 1;
  if (!req.choose) return candidates.slice(0, count);
  const left = [...candidates];
  const picked: WorkUnitRecord[] = [];
  while (picked.length < count && left.length) {
    const wu = req.choose(left);
    left.splice(left.indexOf(wu), 1);
    picked.push(wu);
  }
  return picked;
}

/** Picks one of the eligible units (given in queue order, at most LEASE_CANDIDATES); called inside the lease transaction. */
export type ChooseWorkUnit = (candidates: WorkUnitRecord[]) => WorkUnitRecord;

export interface Store {
  close(): Promise<void>;
  /**
   * True when several coordinator processes share this store (PostgreSQL): a coordinator that
   * starts must then not expire other coordinators' leases, which lapse through `aliveUntil`.
   */
  readonly shared: boolean;
  /**
   * Grows whenever this process commits a write that may make a unit leasable (a new job, a lease
   * ended without a result, an invalid result, a raised target). The scheduler re-offers work to
   * workers that found none only after it changes, so idle workers cost nothing per result.
   */
  readonly workVersion: number;

  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;

  upsertVolunteer(v: { id: string; publicKey: string; name: string | null; now: number }): Promise<VolunteerRecord>;
  getVolunteer(id: string): Promise<VolunteerRecord | null>;
  /** Volunteers best credited first (then oldest first): at most `limit`, every one without (the ledger audit). */
  listVolunteers(limit?: number): Promise<VolunteerStats[]>;
  /** How many identities are stored, and how many of them have no credit (never proven, or every proof revoked). */
  countVolunteers(): Promise<VolunteerCounts>;
  /**
   * Forgets identities that never did anything: no result of any state, no ledger entry, no credit,
   * no active lease, not in `p.connected`, and last seen over `p.idleMs` before `p.now` — at most
   * `p.limit` of them, longest unseen first; returns how many. The `connected` identities last seen
   * over half `idleMs` ago are first marked seen at `now`, so that a coordinator sharing the store,
   * which does not know who is connected here, never finds them idle. Their trust records stay: a
   * suspended identity that comes back is still suspended.
   */
  pruneVolunteers(p: VolunteerPrune): Promise<number>;

  createJob(job: NewJob, units: NewWorkUnit[]): Promise<void>;
  getJob(id: string): Promise<JobRecord | null>;
  /** The newest jobs first (at most `limit`, default 500): all of them, or one owner's. */
  listJobs(owner?: string, limit?: number): Promise<JobRecord[]>;
  /** Every queued or running job of one of `kinds`, oldest first (start-up recovery of iterative jobs). */
  activeJobsOfKinds(kinds: readonly string[]): Promise<JobRecord[]>;
  /** Queued or running jobs whose owner starts with `ownerPrefix`. */
  countActiveJobs(ownerPrefix: string): Promise<number>;
  setJobResult(jobId: string, sha256: string, now: number): Promise<void>;
  failJob(jobId: string, error: string, now: number): Promise<void>;

  getWorkUnit(id: string): Promise<WorkUnitRecord | null>;
  /**
   * Leases up to `count` open work units that still need a replica and that this volunteer has
   * neither an active lease on nor a result for, among the job kinds it can run (all when absent),
   * in one transaction. Oldest job first, unless `choose` picks others among the first candidates.
   * Empty when there is nothing for them. Each lease lapses at `aliveUntil` (default: the deadline)
   * unless renewLeases extends it.
   */
  leaseUnits(req: LeaseRequest): Promise<Leased[]>;
  getLease(id: string): Promise<LeaseRecord | null>;
  /**
   * Ends active leases; returns how many changed. 'expired' = the worker vanished (its late result
   * is still welcome), 'abandoned' = given up or no longer wanted, 'returned' = result in.
   */
  endLeases(leaseIds: string[], state: 'abandoned' | 'returned' | 'expired'): Promise<number>;
  /**
   * Heartbeat: every active lease this coordinator issued stays alive until `aliveUntil`. A lease
   * whose coordinator stops renewing it (crashed) lapses then, even if its deadline is far off.
   */
  renewLeases(aliveUntil: number): Promise<number>;
  /** Marks active leases past their deadline or their heartbeat expired; returns how many. */
  expireLeases(now: number): Promise<number>;
  /**
   * Those of `leaseIds` that are no longer active: ended by another coordinator sharing the store
   * (the job cancelled or failed, the unit settled there), whose workers this one must tell.
   */
  endedLeases(leaseIds: string[]): Promise<{ id: string; state: LeaseState }[]>;
  countActiveLeases(wuId: string): Promise<number>;

  /**
   * Stores a result and ends its lease. False (and nothing changes) when this volunteer already
   * has a result for the unit: one volunteer is counted, and credited, once per unit.
   */
  addResult(result: ResultRecord): Promise<boolean>;
  /**
   * Stores a checked result that may settle its unit alone (a replication-1 job): when nothing else
   * of the unit is live and it is still open, the same write makes the result valid and canonical,
   * counts the unit done and credits the volunteer. Null when this volunteer already has a result
   * for the unit (nothing changes); `outcome` null when the result was stored to be compared instead.
   */
  addSoleResult(r: ResultRecord, sole: SoleSettlement): Promise<{ outcome: SettlementOutcome | null } | null>;
  /** Results for a unit that are not invalid, oldest first. */
  liveResults(wuId: string): Promise<ResultRecord[]>;
  raiseTarget(wuId: string, target: number): Promise<void>;
  settle(s: Settlement): Promise<SettlementOutcome>;
  /**
   * Marks these pending results of an open unit invalid with `reason`, leaving the unit open (so
   * it wants replicas again): a quorum the coordinator's audit proved wrong (work/audit.ts).
   * Results that are not pending, or not of this unit, are left alone. Returns how many changed.
   */
  rejectResults(wuId: string, resultIds: string[], reason: string): Promise<number>;
  /** Marks the unit errored, its pending results invalid, and fails the job. */
  failWorkUnit(wuId: string, reason: string, now: number): Promise<void>;
  /** Half-done work a crash may have left behind, to finish at start-up. */
  unfinishedWork(): Promise<UnfinishedWork>;
  canonicalOutputs(jobId: string): Promise<{ wu: WorkUnitRecord; data: Uint8Array }[]>;
  /**
   * The job's units with idx in [fromIdx, toIdx), in idx order, each with how many valid results it
   * has and, with `withData`, its canonical output (null unless settled; always null without).
   * An iterative job's round.
   */
  unitRange(jobId: string, fromIdx: number, toIdx: number, withData?: boolean): Promise<{ wu: WorkUnitRecord; data: Uint8Array | null; results: number }[]>;
  /**
   * Closes an iterative job's round in one transaction, only if the job is still running (or
   * queued) and its meta's `round` is `a.round` — so a round closed twice (a timer and a result, a
   * crash and a restart) is closed once. The round's still-open units `drop` become 'dropped' (their
   * active leases abandoned, pending results invalid, not counted in the job's total), the next
   * round's units are added, the meta replaced, and with `result` the job is done. False when the
   * round had already closed (nothing changes).
   */
  advanceRound(a: RoundAdvance): Promise<boolean>;

  ledgerEntries(afterSeq: number, limit: number): Promise<LedgerEntry[]>;
  ledgerHead(): Promise<LedgerEntry | null>;
  /** Seals in order, those whose last entry comes after `afterSeq` (so the first one covers `afterSeq + 1`). */
  ledgerSeals(afterSeq: number, limit: number): Promise<LedgerSeal[]>;

  // --- Trust: adaptive replication, revocation ---
  /** The identity's trust record (a fresh one when it has none). */
  getTrust(volunteerId: string): Promise<TrustRecord>;
  putTrust(trust: TrustRecord): Promise<void>;
  /**
   * Read-modify-write of one identity's trust, one at a time per identity (units settle
   * concurrently, and a streak bump must never overwrite a strike's suspension); resolves once the
   * new record is durable.
   */
  updateTrust(volunteerId: string, change: (t: TrustRecord) => TrustRecord): Promise<{ before: TrustRecord; after: TrustRecord }>;
  /**
   * Valid results of this volunteer received after `since` that are the only valid result of their
   * (settled) unit — results nobody else confirmed.
   */
  unreplicatedResults(volunteerId: string, since: number): Promise<{ id: string; wuId: string }[]>;
  /**
   * Valid, credited results of these volunteers on units whose every valid result is one of
   * theirs: quorums they formed among themselves. Once an audit proved some of them colluding,
   * none of those counts as confirmed by a replica.
   */
  quorumsAmong(volunteerIds: string[]): Promise<{ id: string; wuId: string }[]>;
  /**
   * Takes back valid results: each becomes invalid and the credit it earned is reversed by a
   * negative ledger entry. The canonical result of a settled unit also re-opens its unit wanting
   * the job's replication (its job goes back to running; a failed job's unit stays settled, and so
   * does a unit of an iterative job's closed round — see `closedRound`). Results that are not
   * valid are left alone.
   */
  revokeResults(r: Revocation): Promise<Credited>;
}

export interface RoundAdvance {
  jobId: string;
  /** The round being closed: the job's meta must still name it. */
  round: number;
  meta: Record<string, unknown>;
  drop: string[];
  units: NewWorkUnit[];
  result: { sha256: string } | null;
  now: number;
}

/**
 * A unit of an iterative job's round that has closed (its meta's `round` before the job's): its
 * round's aggregate is final, so revoking its result takes the credit back but re-opens nothing.
 */
export function closedRound(job: Pick<JobRecord, 'meta'>, wu: Pick<WorkUnitRecord, 'meta'>): boolean {
  const [unitRound, jobRound] = [wu.meta.round, (job.meta as { round?: unknown }).round];
  return typeof unitRound === 'number' && typeof jobRound === 'number' && unitRound < jobRound;
}

export interface Revocation {
  resultIds: string[];
  reason: string;
  now: number;
}

/** The ledger entries a settlement appends after `head` (the chain's last entry, if any); sealed by the store. */
export function settlementEntries(s: Settlement, jobId: string, head: LedgerEntry | null): LedgerEntry[] {
  const entries: LedgerEntry[] = [];
  let prev = head;
  for (const c of s.credits) {
    const entry = nextEntry(prev, { ts: s.now, volunteerId: c.volunteerId, jobId, wuId: s.wuId, amount: c.amount });
    entries.push(entry);
    prev = entry;
  }
  return entries;
}

/** The store's sealer; a store opened without the coordinator key (a CLI reading the ledger) cannot append. */
export function requireSealer(sealer: Sealer | undefined): Sealer {
  if (!sealer) throw new Error('this store was opened without the coordinator key, so it cannot append to the ledger');
  return sealer;
}
