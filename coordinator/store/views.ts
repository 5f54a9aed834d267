// The stores beside Store: classroom rooms (each room, its members and when they joined, so a
// room's credit is what its members earned after joining) and the read-only views of the dashboard
// and the volunteers' receipts. SQLite (sqlite/rooms.ts, sqlite/stats.ts) and PostgreSQL
// (pg/views.ts) implement them.
import type { GridStats, LedgerEntry } from '../protocol/index.js';

export interface RoomRecord {
  code: string;
  name: string;
  /** sha-256 (hex) of the teacher key: the key itself is never stored. */
  teacherKeyHash: string;
  paused: boolean;
  createdAt: number;
}

export interface RoomMemberRecord {
  volunteerId: string;
  name: string | null;
  joinedAt: number;
  /** Ledger credit since joining, and how many credited units that was. */
  credit: number;
  units: number;
}

export interface RoomStore {
  createRoom(room: RoomRecord): Promise<void>;
  getRoom(code: string): Promise<RoomRecord | null>;
  listRooms(): Promise<(RoomRecord & { credit: number; members: number })[]>;
  setPaused(code: string, paused: boolean): Promise<void>;
  /** Adds the volunteer to the room (keeps the first join time if they come back). */
  join(code: string, volunteerId: string, now: number): Promise<void>;
  members(code: string): Promise<RoomMemberRecord[]>;
}

/** Validation outcomes, credited throughput over time and one volunteer's own ledger entries. */
export interface StatsStore {
  /** Results by outcome (see GridStats.results) and jobs by state. */
  counts(): Promise<{ results: GridStats['results']; jobs: GridStats['jobs'] }>;
  /** Credited FLOPs per bucket since `since`, oldest first; empty buckets included. */
  throughput(since: number, until: number, bucketMs: number): Promise<{ t: number; flops: number }[]>;
  /** The volunteer's newest ledger entries, newest first. */
  receipts(volunteerId: string, limit: number): Promise<LedgerEntry[]>;
}
