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
  /** Who made it without a token (their address, counted against TABGRID_ROOMS_PER_ADDRESS); null with a token. */
  createdBy: string | null;
  /** Last time someone joined, controlled or computed in it: idle rooms are removed. */
  lastActive: number;
}

export interface RoomMemberRecord {
  volunteerId: string;
  name: string | null;
  joinedAt: number;
  /** Ledger credit since joining, and how many credited units that was. */
  credit: number;
  units: number;
  /** Ledger credit since the `since` given to members(): the member's recent, validated speed. */
  recent: number;
}

export interface RoomStore {
  createRoom(room: RoomRecord): Promise<void>;
  getRoom(code: string): Promise<RoomRecord | null>;
  listRooms(): Promise<(RoomRecord & { credit: number; members: number })[]>;
  setPaused(code: string, paused: boolean): Promise<void>;
  /**
   * Adds the volunteer to the room (keeps the first join time if they come back), atomically under
   * the room's cap: a room with `maxMembers` members makes room by removing its most recently joined
   * member that holds no place — not in `online` (connected to the caller now), no credit, or an
   * identity forgotten since — and is 'full' when every member holds one. Identities are free to
   * make, so only what a stranger cannot fake (a connection kept open, validated credit) holds a place.
   */
  join(code: string, volunteerId: string, now: number, cap: RoomCap): Promise<'joined' | 'full'>;
  /** The room's members, each with its credit since joining and since `since`. */
  members(code: string, since?: number): Promise<RoomMemberRecord[]>;
  memberCount(code: string): Promise<number>;
  /** Rooms in all, or made by one address. */
  countRooms(createdBy?: string): Promise<number>;
  /** The room was used now (a join, a teacher's control, a demo, a member online). */
  touch(codes: string[], now: number): Promise<void>;
  /** Removes rooms (and their members) last used before `before`; returns how many. */
  removeIdle(before: number): Promise<number>;
  /** Removes the memberships of identities the store no longer holds (forgotten by the sweep); returns how many. */
  removeForgotten(): Promise<number>;
}

/** What RoomStore.join needs to know to keep a room's cap. */
export interface RoomCap {
  maxMembers: number;
  /** The room's members connected to this coordinator now: they hold their places. */
  online: readonly string[];
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
