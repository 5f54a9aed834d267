// Rooms on SQLite (the coordinator's file): each room, its members and when they joined, who made
// it (an address, for the per-address cap) and when it was last used (idle rooms are removed).
import type Database from 'better-sqlite3';
import { toRoom, toRoomMember, type Row } from '../rows.js';
import type { RoomCap, RoomRecord, RoomStore } from '../views.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS rooms (
  code TEXT PRIMARY KEY, name TEXT NOT NULL, teacher_key_hash TEXT NOT NULL,
  paused INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
  created_by TEXT, last_active INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS room_members (
  room TEXT NOT NULL REFERENCES rooms(code), volunteer_id TEXT NOT NULL, joined_at INTEGER NOT NULL,
  PRIMARY KEY (room, volunteer_id));
CREATE INDEX IF NOT EXISTS rooms_created_by ON rooms(created_by);
CREATE INDEX IF NOT EXISTS rooms_last_active ON rooms(last_active);
`;

/** Rooms tables from before rooms had a maker and a last use: those start their idle time now. */
function migrate(db: Database.Database, now: number) {
  const columns = new Set((db.prepare('PRAGMA table_info(rooms)').all() as Row[]).map((r) => String(r.name)));
  if (columns.size === 0 || columns.has('last_active')) return;
  db.transaction(() => {
    db.exec('ALTER TABLE rooms ADD COLUMN created_by TEXT');
    db.exec('ALTER TABLE rooms ADD COLUMN last_active INTEGER NOT NULL DEFAULT 0');
    db.prepare('UPDATE rooms SET last_active = ?').run(now);
  })();
}

export class SqliteRoomStore implements RoomStore {
  private readonly s;

  constructor(
    private readonly db: Database.Database,
    now = Date.now(),
  ) {
    migrate(db, now);
    db.exec(SCHEMA);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      insert: p('INSERT INTO rooms(code, name, teacher_key_hash, paused, created_at, created_by, last_active) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      get: p('SELECT * FROM rooms WHERE code = ?'),
      list: p(`SELECT r.*,
        (SELECT count(*) FROM room_members m WHERE m.room = r.code) AS members,
        (SELECT COALESCE(SUM(l.amount), 0) FROM room_members m JOIN ledger l
           ON l.volunteer_id = m.volunteer_id AND l.ts >= m.joined_at WHERE m.room = r.code) AS credit
        FROM rooms r ORDER BY credit DESC, r.created_at DESC LIMIT 200`),
      setPaused: p('UPDATE rooms SET paused = ? WHERE code = ?'),
      join: p('INSERT INTO room_members(room, volunteer_id, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
      isMember: p('SELECT 1 FROM room_members WHERE room = ? AND volunteer_id = ?'),
      // The newest member holding no place (see RoomStore.join): an attacker's stream of joins
      // displaces its own throwaways before the members who came earlier.
      displace: p(`DELETE FROM room_members WHERE room = @code AND volunteer_id = (
        SELECT m.volunteer_id FROM room_members m LEFT JOIN volunteers v ON v.id = m.volunteer_id
        WHERE m.room = @code AND COALESCE(v.credit, 0) <= 0 AND m.volunteer_id NOT IN (SELECT value FROM json_each(@online))
        ORDER BY m.joined_at DESC LIMIT 1)`),
      removeForgotten: p('DELETE FROM room_members WHERE NOT EXISTS (SELECT 1 FROM volunteers v WHERE v.id = room_members.volunteer_id)'),
      members: p(`SELECT m.volunteer_id, m.joined_at, v.name,
        COALESCE(SUM(l.amount), 0) AS credit, count(l.seq) AS units,
        COALESCE(SUM(CASE WHEN l.ts >= ? THEN l.amount ELSE 0 END), 0) AS recent
        FROM room_members m LEFT JOIN volunteers v ON v.id = m.volunteer_id
        LEFT JOIN ledger l ON l.volunteer_id = m.volunteer_id AND l.ts >= m.joined_at
        WHERE m.room = ? GROUP BY m.volunteer_id ORDER BY m.joined_at`),
      memberCount: p('SELECT count(*) AS n FROM room_members WHERE room = ?'),
      countAll: p('SELECT count(*) AS n FROM rooms'),
      countBy: p('SELECT count(*) AS n FROM rooms WHERE created_by = ?'),
      touch: p('UPDATE rooms SET last_active = max(last_active, ?) WHERE code = ?'),
      idle: p('SELECT code FROM rooms WHERE last_active < ?'),
      removeMembers: p('DELETE FROM room_members WHERE room = ?'),
      remove: p('DELETE FROM rooms WHERE code = ?'),
    };
  }

  async createRoom(room: RoomRecord) {
    this.s.insert.run(room.code, room.name, room.teacherKeyHash, room.paused ? 1 : 0, room.createdAt, room.createdBy, room.lastActive);
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

  async join(code: string, volunteerId: string, now: number, cap: RoomCap) {
    // IMMEDIATE: the count and the insert under one write lock, so two joins cannot both take the last place.
    return this.db
      .transaction((): 'joined' | 'full' => {
        if (!this.s.isMember.get(code, volunteerId) && Number((this.s.memberCount.get(code) as Row).n) >= cap.maxMembers) {
          if (this.s.displace.run({ code, online: JSON.stringify(cap.online) }).changes === 0) return 'full';
        }
        this.s.join.run(code, volunteerId, now);
        this.s.touch.run(now, code);
        return 'joined';
      })
      .immediate();
  }

  async members(code: string, since = Number.MAX_SAFE_INTEGER) {
    return (this.s.members.all(since, code) as Row[]).map(toRoomMember);
  }

  async memberCount(code: string) {
    return Number((this.s.memberCount.get(code) as Row).n);
  }

  async countRooms(createdBy?: string) {
    return Number(((createdBy === undefined ? this.s.countAll.get() : this.s.countBy.get(createdBy)) as Row).n);
  }

  async touch(codes: string[], now: number) {
    if (codes.length) this.db.transaction(() => codes.forEach((c) => this.s.touch.run(now, c)))();
  }

  async removeIdle(before: number) {
    const codes = (this.s.idle.all(before) as Row[]).map((r) => String(r.code));
    if (codes.length) {
      this.db.transaction(() => {
        for (const code of codes) {
          this.s.removeMembers.run(code);
          this.s.remove.run(code);
        }
      })();
    }
    return codes.length;
  }

  async removeForgotten() {
    return this.s.removeForgotten.run().changes;
  }
}
