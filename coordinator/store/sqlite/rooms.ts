// Rooms on SQLite (the coordinator's file): each room, its members and when they joined.
import type Database from 'better-sqlite3';
import { toRoom, type Row } from '../rows.js';
import type { RoomRecord, RoomStore } from '../views.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS rooms (
  code TEXT PRIMARY KEY, name TEXT NOT NULL, teacher_key_hash TEXT NOT NULL,
  paused INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS room_members (
  room TEXT NOT NULL REFERENCES rooms(code), volunteer_id TEXT NOT NULL, joined_at INTEGER NOT NULL,
  PRIMARY KEY (room, volunteer_id));
`;

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
