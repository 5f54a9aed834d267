// Rooms on disk: each room, its members and when they joined, so a room's credit is the credit its
// members earned after joining. A narrow interface like Store; SQLite shares the coordinator's file.
import type Database from 'better-sqlite3';

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

const SCHEMA = `
CREATE TABLE IF NOT EXISTS rooms (
  code TEXT PRIMARY KEY, name TEXT NOT NULL, teacher_key_hash TEXT NOT NULL,
  paused INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS room_members (
  room TEXT NOT NULL REFERENCES rooms(code), volunteer_id TEXT NOT NULL, joined_at INTEGER NOT NULL,
  PRIMARY KEY (room, volunteer_id));
`;

type Row = Record<string, unknown>;

export const toRoom = (r: Row): RoomRecord => ({
  code: String(r.code),
  name: String(r.name),
  teacherKeyHash: String(r.teacher_key_hash),
  paused: Number(r.paused) === 1,
  createdAt: Number(r.created_at),
});

export class SqliteRoomStore implements RoomStore {
  private readonly s;

  constructor(db: Database.Database) {
    db.exec(SCHEMA);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      insert: p('INSERT INTO rooms(code, name, teacher_key_hash, paused, created_at) VALUES (?, ?, ?, ?, ?)'),
      get: p('SELECT * FROM rooms WHERE code = ?'),
      list: p(`SELECT r.*,
        (SELECT count(*) FROM room_members m WHERE m.room = r.code) AS members,
        (SELECT COALESCE(SUM(l.amount), 0) FROM room_members m JOIN ledger l
           ON l.volunteer_id = m.volunteer_id AND l.ts >= m.joined_at WHERE m.room = r.code) AS credit
        FROM rooms r ORDER BY credit DESC, r.created_at DESC LIMIT 200`),
      setPaused: p('UPDATE rooms SET paused = ? WHERE code = ?'),
      join: p('INSERT INTO room_members(room, volunteer_id, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
      members: p(`SELECT m.volunteer_id, m.joined_at, v.name,
        COALESCE(SUM(l.amount), 0) AS credit, count(l.seq) AS units
        FROM room_members m LEFT JOIN volunteers v ON v.id = m.volunteer_id
        LEFT JOIN ledger l ON l.volunteer_id = m.volunteer_id AND l.ts >= m.joined_at
        WHERE m.room = ? GROUP BY m.volunteer_id ORDER BY m.joined_at`),
    };
  }

  async createRoom(room: RoomRecord) {
    this.s.insert.run(room.code, room.name, room.teacherKeyHash, room.paused ? 1 : 0, room.createdAt);
  }

  async getRoom(code: string) {
    const row = this.s.get.get(code) as Row | undefined;
    return row ? toRoom(row) : null;
  }

  async listRooms() {
    return (this.s.list.all() as Row[]).map((r) => ({ ...toRoom(r), credit: Number(r.credit), members: Number(r.members) }));
  }

  async setPaused(code: string, paused: boolean) {
    this.s.setPaused.run(paused ? 1 : 0, code);
  }

  async join(code: string, volunteerId: string, now: number) {
    this.s.join.run(code, volunteerId, now);
  }

  async members(code: string) {
    return (this.s.members.all(code) as Row[]).map((r) => ({
      volunteerId: String(r.volunteer_id),
      name: (r.name as string | null) ?? null,
      joinedAt: Number(r.joined_at),
      credit: Number(r.credit),
      units: Number(r.units),
    }));
  }
}
