// The dashboard's and receipts' read-only views (StatsStore) on SQLite.
import type Database from 'better-sqlite3';
import type { StatsStore } from '../views.js';
import { toLedgerEntry } from '../rows.js';

type Row = Record<string, unknown>;

export class SqliteStatsStore implements StatsStore {
  private readonly s;

  constructor(db: Database.Database) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      results: p(`SELECT
        sum(state = 'valid') AS agreed,
        sum(state = 'invalid' AND reason = 'disagreed with the quorum') AS disagreed,
        sum(state = 'invalid' AND (reason IS NULL OR reason != 'disagreed with the quorum')) AS invalid,
        sum(state = 'pending') AS pending FROM results`),
      jobs: p(`SELECT state, count(*) AS n FROM jobs GROUP BY state`),
      throughput: p(`SELECT CAST((ts - @since) / @bucket AS INTEGER) AS b, SUM(amount) AS flops FROM ledger
        WHERE ts >= @since AND ts < @until GROUP BY b`),
      // Newest first in the order of the index by (volunteer, ts), whose last column is seq: no sort.
      receipts: p('SELECT * FROM ledger WHERE volunteer_id = ? ORDER BY ts DESC, seq DESC LIMIT ?'),
    };
  }

  async counts() {
    const r = this.s.results.get() as Row;
    const jobs = { queued: 0, running: 0, done: 0, failed: 0 };
    for (const row of this.s.jobs.all() as Row[]) jobs[row.state as keyof typeof jobs] = Number(row.n);
    const n = (v: unknown) => Number(v ?? 0);
    return { results: { agreed: n(r.agreed), disagreed: n(r.disagreed), invalid: n(r.invalid), pending: n(r.pending) }, jobs };
  }

  async throughput(since: number, until: number, bucketMs: number) {
    const buckets = Math.max(1, Math.ceil((until - since) / bucketMs));
    const points = Array.from({ length: buckets }, (_, i) => ({ t: since + i * bucketMs, flops: 0 }));
    for (const row of this.s.throughput.all({ since, until, bucket: bucketMs }) as Row[]) {
      const i = Math.floor(Number(row.b));
      if (points[i]) points[i].flops += Number(row.flops);
    }
    return points;
  }

  async receipts(volunteerId: string, limit: number) {
    return (this.s.receipts.all(volunteerId, limit) as Row[]).map(toLedgerEntry);
  }
}
