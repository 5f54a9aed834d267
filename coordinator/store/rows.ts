// Rows to records: what both SQL dialects read back (same column names on SQLite and PostgreSQL),
// parsed into the store's records.
import type { LedgerEntry, LedgerSeal } from '../protocol/index.js';
import type { JobRecord, LeaseRecord, ResultRecord, VolunteerRecord, WorkUnitRecord } from './store.js';
import type { RoomMemberRecord, RoomRecord } from './views.js';

export type Row = Record<string, unknown>;

export const json = (v: unknown) => JSON.stringify(v);
export const parse = <T>(v: unknown): T => JSON.parse(String(v)) as T;

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
    owner: (r.owner as string | null) ?? null,
  };
}

type WuFixed = Pick<WorkUnitRecord, 'params' | 'inputs' | 'tolerance' | 'meta'>;
/** A unit's JSON columns never change: parse them once (the hot path reads each unit 3 times). */
const wuFixed = new Map<string, WuFixed>();

/**
 * Parsed JSON by its text, for the columns a job's units mostly share (inputs, tolerance, params):
 * parsed once, and one object for all of them — which also crosses to the event loop once per
 * batch answer instead of once per unit. Never mutated (records are read-only).
 */
const sharedJson = new Map<string, unknown>();

function parseShared<T>(v: unknown): T {
  const text = String(v);
  let hit = sharedJson.get(text);
  if (hit === undefined) {
    hit = JSON.parse(text) as unknown;
    if (sharedJson.size >= 4096) sharedJson.delete(sharedJson.keys().next().value!);
    sharedJson.set(text, hit);
  }
  return hit as T;
}

function fixedParts(id: string, r: Row): WuFixed {
  let f = wuFixed.get(id);
  if (!f) {
    f = { params: parseShared(r.params), inputs: parseShared(r.inputs), tolerance: parseShared(r.tolerance), meta: parse(r.meta) };
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

export const toRoom = (r: Row): RoomRecord => ({
  code: String(r.code),
  name: String(r.name),
  teacherKeyHash: String(r.teacher_key_hash),
  paused: Number(r.paused) === 1,
  createdAt: Number(r.created_at),
  createdBy: (r.created_by as string | null) ?? null,
  lastActive: Number(r.last_active ?? r.created_at),
});

export const toRoomMember = (r: Row): RoomMemberRecord => ({
  volunteerId: String(r.volunteer_id),
  name: (r.name as string | null) ?? null,
  joinedAt: Number(r.joined_at),
  credit: Number(r.credit),
  units: Number(r.units),
  recent: Number(r.recent ?? 0),
});
