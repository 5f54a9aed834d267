// The narrow storage interface the coordinator runs on. SQLite (sqlite-store.ts) is the embedded
// default; the methods are coarse, each one atomic, and async so a networked database (PostgreSQL)
// can take its place without touching the scheduler or the server.
import type { JobState, LedgerEntry, Tolerance } from './protocol.js';

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
}

export type WorkUnitState = 'open' | 'done' | 'error';

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
  deadline: number;
  state: LeaseState;
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

export interface VolunteerStats extends VolunteerRecord {
  valid: number;
  invalid: number;
  pending: number;
}

export type NewWorkUnit = Omit<WorkUnitRecord, 'target' | 'state' | 'canonicalResultId'>;

export interface Settlement {
  wuId: string;
  canonicalResultId: string;
  valid: string[];
  invalid: string[];
  credits: { volunteerId: string; amount: number }[];
  now: number;
  /** Builds the signed ledger entry that follows `prev` (inside the same transaction). */
  makeEntry: (fields: Omit<LedgerEntry, 'hash' | 'signature'>) => LedgerEntry;
}

export interface SettlementOutcome {
  entries: LedgerEntry[];
  /** True when this settlement completed the last open work unit of the job. */
  jobComplete: boolean;
  jobId: string;
}

/** How many eligible units, in queue order, leaseNext offers to a `choose` callback. */
export const LEASE_CANDIDATES = 32;

/** Picks one of the eligible units (given in queue order, at most LEASE_CANDIDATES); called inside the lease transaction. */
export type ChooseWorkUnit = (candidates: WorkUnitRecord[]) => WorkUnitRecord;

export interface Store {
  close(): Promise<void>;

  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;

  upsertVolunteer(v: { id: string; publicKey: string; name: string | null; now: number }): Promise<VolunteerRecord>;
  getVolunteer(id: string): Promise<VolunteerRecord | null>;
  listVolunteers(): Promise<VolunteerStats[]>;

  createJob(job: Omit<JobRecord, 'total' | 'done'>, units: NewWorkUnit[]): Promise<void>;
  getJob(id: string): Promise<JobRecord | null>;
  listJobs(): Promise<JobRecord[]>;
  setJobResult(jobId: string, sha256: string, now: number): Promise<void>;
  failJob(jobId: string, error: string, now: number): Promise<void>;

  getWorkUnit(id: string): Promise<WorkUnitRecord | null>;
  /**
   * Leases the next open work unit that still needs a replica and that this volunteer has neither
   * an active lease on nor a result for. Oldest job first, unless `choose` picks another of the first
   * candidates. Null when there is nothing for them.
   */
  leaseNext(
    volunteerId: string,
    now: number,
    deadline: number,
    choose?: ChooseWorkUnit,
  ): Promise<{ lease: LeaseRecord; wu: WorkUnitRecord } | null>;
  getLease(id: string): Promise<LeaseRecord | null>;
  /** Ends active leases (returned by failure or disconnect); returns how many changed. */
  endLeases(leaseIds: string[], state: 'abandoned' | 'returned'): Promise<number>;
  /** Marks active leases past their deadline expired; returns how many. */
  expireLeases(now: number): Promise<number>;
  countActiveLeases(wuId: string): Promise<number>;

  /** Stores a result and returns its lease; fails if this volunteer already has a result for the unit. */
  addResult(result: ResultRecord): Promise<void>;
  /** Results for a unit that are not invalid, oldest first. */
  liveResults(wuId: string): Promise<ResultRecord[]>;
  raiseTarget(wuId: string, target: number): Promise<void>;
  settle(s: Settlement): Promise<SettlementOutcome>;
  /** Marks the unit errored, its pending results invalid, and fails the job. */
  failWorkUnit(wuId: string, reason: string, now: number): Promise<void>;
  canonicalOutputs(jobId: string): Promise<{ wu: WorkUnitRecord; data: Uint8Array }[]>;

  ledgerEntries(afterSeq: number, limit: number): Promise<LedgerEntry[]>;
  ledgerHead(): Promise<LedgerEntry | null>;
}
