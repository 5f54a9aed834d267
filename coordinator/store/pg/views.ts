// Classroom rooms and the dashboard's read-only views on PostgreSQL: the same interfaces as
// sqlite/rooms.ts and sqlite/stats.ts on SQLite (interfaces in views.ts), over the database the coordinators share, so a room
// or the dashboard looks the same whichever coordinator answers.
import type pg from 'pg';
import type { LedgerEntry } from '../../protocol/index.js';
import { toLedgerEntry, toRoom, toRoomMember, type Row } from '../rows.js';
import type { RoomCap, RoomRecord, RoomStore, StatsStore } from '../views.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS rooms (
  code TEXT PRIMARY KEY, name TEXT NOT NULL, teacher_key_hash TEXT NOT NULL,
  paused INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL);
-- Who made a room (an address) and its last use: rooms from before them start their idle time now.
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS created_by TEXT;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'rooms' AND column_name = 'last_active') THEN
    ALTER TABLE rooms ADD COLUMN last_active BIGINT NOT NULL DEFAULT 0;
    UPDATE rooms SET last_active = (extract(epoch FROM now()) * 1000)::bigint;
  END IF;
END $$;
CREATE INDEX IF NOT EXISTS rooms_created_by ON rooms(created_by);
CREATE INDEX IF NOT EXISTS rooms_last_active ON rooms(last_active);
CREATE TABLE IF NOT EXISTS room_members (
  room TEXT NOT NULL REFERENCES rooms(code), volunteer_id TEXT NOT NULL, joined_at BIGINT NOT NULL,
  PRIMARY KEY (room, volunteer_id));
CREATE INDEX IF NOT EXISTS ledger_volunteer_ts ON ledger(volunteer_id, ts);
`;
/** Same advisory lock as pg-store's schema set-up: coordinators starting together. */
const SCHEMA_LOCK = 0x7461_6267;

class PgRoomStore implements RoomStore {
  constructor(private readonly pool: pg.Pool) {}

  async createRoom(room: RoomRecord) {
    await this.pool.query(
      'INSERT INTO rooms(code, name, teacher_key_hash, paused, created_at, created_by, last_active) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [room.code, room.name, room.teacherKeyHash, room.paused ? 1 : 0, room.createdAt, room.createdBy, room.lastActive],
    );
  }

  async getRoom(code: string) {
    const row = (await this.pool.query('SELECT * FROM rooms WHERE code = $1', [code])).rows[0] as Row | undefined;
    return row ? toRoom(row) : null;
  }

  async listRooms() {
    const rows = (
      await this.pool.query(`SELECT r.*,
        (SELECT count(*) FROM room_members m WHERE m.room = r.code) AS members,
        (SELECT COALESCE(SUM(l.amount), 0) FROM room_members m JOIN ledger l
           ON l.volunteer_id = m.volunteer_id AND l.ts >= m.joined_at WHERE m.room = r.code) AS credit
        FROM rooms r ORDER BY credit DESC, r.created_at DESC LIMIT 200`)
    ).rows as Row[];
    return rows.map((r) => ({ ...toRoom(r), credit: Number(r.credit), members: Number(r.members) }));
  }

  async setPaused(code: string, paused: boolean) {
    await this.pool.query('UPDATE rooms SET paused = $1 WHERE code = $2', [paused ? 1 : 0, code]);
  }

  join(code: string, volunteerId: string, now: number, cap: RoomCap) {
    return inTransaction(this.pool, async (c): Promise<'joined' | 'full'> => {
      // The room's row locked: joins to one room, from any coordinator, count and insert one at a time.
      await c.query('SELECT 1 FROM rooms WHERE code = $1 FOR UPDATE', [code]);
      const { rows } = await c.query(
        'SELECT EXISTS (SELECT 1 FROM room_members WHERE room = $1 AND volunteer_id = $2) AS member, (SELECT count(*) FROM room_members WHERE room = $1) AS n',
        [code, volunteerId],
      );
      const { member, n } = rows[0] as Row;
      if (!member && Number(n) >= cap.maxMembers) {
        // The newest member holding no place (as on SQLite, sqlite/rooms.ts).
        const displaced = await c.query(
          `DELETE FROM room_members WHERE room = $1 AND volunteer_id = (
             SELECT m.volunteer_id FROM room_members m LEFT JOIN volunteers v ON v.id = m.volunteer_id
             WHERE m.room = $1 AND COALESCE(v.credit, 0) <= 0 AND NOT (m.volunteer_id = ANY($2::text[]))
             ORDER BY m.joined_at DESC LIMIT 1)`,
          [code, [...cap.online]],
        );
        if (!displaced.rowCount) return 'full';
      }
      await c.query('INSERT INTO room_members(room, volunteer_id, joined_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [code, volunteerId, now]);
      await c.query('UPDATE rooms SET last_active = GREATEST(last_active, $2) WHERE code = $1', [code, now]);
      return 'joined';
    });
  }

  async members(code: string, since = Number.MAX_SAFE_INTEGER) {
    const rows = (
      await this.pool.query(
        `SELECT m.volunteer_id, m.joined_at, v.name, COALESCE(SUM(l.amount), 0) AS credit, count(l.seq) AS units,
           COALESCE(SUM(CASE WHEN l.ts >= $2 THEN l.amount ELSE 0 END), 0) AS recent
         FROM room_members m LEFT JOIN volunteers v ON v.id = m.volunteer_id
         LEFT JOIN ledger l ON l.volunteer_id = m.volunteer_id AND l.ts >= m.joined_at
         WHERE m.room = $1 GROUP BY m.volunteer_id, m.joined_at, v.name ORDER BY m.joined_at`,
        [code, since],
      )
    ).rows as Row[];
    return rows.map(toRoomMember);
  }

  async memberCount(code: string) {
    return Number(((await this.pool.query('SELECT count(*) AS n FROM room_members WHERE room = $1', [code])).rows[0] as Row).n);
  }

  async countRooms(createdBy?: string) {
    const { rows } =
      createdBy === undefined
        ? await this.pool.query('SELECT count(*) AS n FROM rooms')
        : await this.pool.query('SELECT count(*) AS n FROM rooms WHERE created_by = $1', [createdBy]);
    return Number((rows[0] as Row).n);
  }

  async touch(codes: string[], now: number) {
    if (codes.length) await this.pool.query('UPDATE rooms SET last_active = GREATEST(last_active, $1) WHERE code = ANY($2::text[])', [now, codes]);
  }

  async removeIdle(before: number) {
    const { rows } = await this.pool.query(
      `WITH gone AS (SELECT code FROM rooms WHERE last_active < $1),
         m AS (DELETE FROM room_members WHERE room IN (SELECT code FROM gone))
       DELETE FROM rooms WHERE code IN (SELECT code FROM gone) RETURNING code`,
      [before],
    );
    return rows.length;
  }

  async removeForgotten() {
    return (await this.pool.query('DELETE FROM room_members m WHERE NOT EXISTS (SELECT 1 FROM volunteers v WHERE v.id = m.volunteer_id)')).rowCount ?? 0;
  }
}

class PgStatsStore implements StatsStore {
  constructor(private readonly pool: pg.Pool) {}

  async counts() {
    const r = (
      await this.pool.query(`SELECT
        count(*) FILTER (WHERE state = 'valid') AS agreed,
        count(*) FILTER (WHERE state = 'invalid' AND reason = 'disagreed with the quorum') AS disagreed,
        count(*) FILTER (WHERE state = 'invalid' AND (reason IS NULL OR reason != 'disagreed with the quorum')) AS invalid,
        count(*) FILTER (WHERE state = 'pending') AS pending FROM results`)
    ).rows[0] as Row;
    const jobs = { queued: 0, running: 0, done: 0, failed: 0 };
    for (const row of (await this.pool.query('SELECT state, count(*) AS n FROM jobs GROUP BY state')).rows as Row[]) {
      jobs[row.state as keyof typeof jobs] = Number(row.n);
    }
    return { results: { agreed: Number(r.agreed), disagreed: Number(r.disagreed), invalid: Number(r.invalid), pending: Number(r.pending) }, jobs };
  }

  async throughput(since: number, until: number, bucketMs: number) {
    const buckets = Math.max(1, Math.ceil((until - since) / bucketMs));
    const points = Array.from({ length: buckets }, (_, i) => ({ t: since + i * bucketMs, flops: 0 }));
    const rows = (
      await this.pool.query('SELECT floor((ts - $1) / $3) AS b, SUM(amount) AS flops FROM ledger WHERE ts >= $1 AND ts < $2 GROUP BY b', [since, until, bucketMs])
    ).rows as Row[];
    for (const row of rows) {
      const i = Math.floor(Number(row.b));
      if (points[i]) points[i].flops += Number(row.flops);
    }
    return points;
  }

  async receipts(volunteerId: string, limit: number): Promise<LedgerEntry[]> {
    const rows = (await this.pool.query('SELECT * FROM ledger WHERE volunteer_id = $1 ORDER BY seq DESC LIMIT $2', [volunteerId, limit])).rows as Row[];
    return rows.map(toLedgerEntry);
  }
}

/** Runs `fn` in one transaction on one connection: committed when it returns, rolled back when it throws. */
async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

export async function pgViews(pool: pg.Pool): Promise<{ rooms: RoomStore; stats: StatsStore }> {
  await inTransaction(pool, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
    await c.query(SCHEMA);
  });
  return { rooms: new PgRoomStore(pool), stats: new PgStatsStore(pool) };
}
