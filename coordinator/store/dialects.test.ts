// SQLite and PostgreSQL keep one schema and one settlement in two SQL dialects: this fails when they
// drift — the same tables with the same columns, and the same outcome (states, counts, credit and
// the very same ledger chain) for the same sequence of results on both.
import Database from 'better-sqlite3';
import pg from 'pg';
import { expect, test } from 'vitest';
import { verifyChain } from '../ledger/chain.js';
import { readLedger } from '../ledger/export.js';
import { useBothStores } from '../testing/fixtures.js';
import { pgViews } from './pg/views.js';
import { SqliteRoomStore } from './sqlite/rooms.js';
import { SqliteStatsStore } from './sqlite/stats.js';
import { SqliteStore } from './sqlite/store.js';
import type { Store } from './store.js';

const both = useBothStores();

/** Each table's columns, sorted: `table: col, col, …`. */
type Columns = Record<string, string[]>;

async function sqliteColumns(file: string): Promise<Columns> {
  const db = new Database(file);
  try {
    new SqliteRoomStore(db);
    new SqliteStatsStore(db);
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as { name: string }[];
    return Object.fromEntries(tables.map(({ name }) => [name, (db.prepare(`PRAGMA table_info(${name})`).all() as { name: string }[]).map((c) => c.name).sort()]));
  } finally {
    db.close();
  }
}

async function pgColumns(url: string): Promise<Columns> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    await pgViews(pool);
    const { rows } = await pool.query<{ table_name: string; column_name: string }>(
      `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`,
    );
    const out: Columns = {};
    for (const r of rows) (out[r.table_name] ??= []).push(r.column_name);
    for (const t of Object.keys(out)) out[t].sort();
    return out;
  } finally {
    await pool.end();
  }
}

/**
 * The deliberate differences, each with its reason: anything else one dialect has and the other
 * lacks is drift. `table` alone is a whole table; `table.column` one column.
 */
const ONLY_IN = {
  postgres: {
    shards: 'coordinators share shards through the database; SQLite keeps them as files beside it',
    'leases.owner': 'the coordinator holding the lease, for taking over a dead one; SQLite has one coordinator',
  },
  sqlite: {
    'volunteers.valid_results': "result counts kept on the volunteer's row by triggers; PostgreSQL counts by query",
    'volunteers.invalid_results': 'as valid_results',
    'volunteers.pending_results': 'as valid_results',
  },
};

/** Whether `cols` has the table or `table.column` named. */
function has(cols: Columns, name: string): boolean {
  const [table, column] = name.split('.');
  return column === undefined ? table in cols : (cols[table] ?? []).includes(column);
}

/** `cols` less the tables and columns named in `only`. */
function without(cols: Columns, only: Record<string, string>): Columns {
  const out: Columns = {};
  for (const [table, names] of Object.entries(cols)) {
    if (table in only) continue;
    out[table] = names.filter((c) => !(`${table}.${c}` in only));
  }
  return out;
}

test('both dialects create the same tables with the same columns, but for the differences named with their reasons', async () => {
  const file = both.sqliteFile('schema.sqlite');
  await new SqliteStore(file, { sealer: both.sealer }).close();
  await (await both.open.PostgreSQL()).close();
  const [lite, post] = [await sqliteColumns(file), await pgColumns(both.pgUrl)];
  expect(Object.keys(lite).length).toBeGreaterThan(8);
  // Every named difference is real (a stale entry would hide nothing and mislead).
  expect(Object.keys(ONLY_IN.postgres).filter((name) => !has(post, name))).toEqual([]);
  expect(Object.keys(ONLY_IN.sqlite).filter((name) => !has(lite, name))).toEqual([]);
  expect(without(post, ONLY_IN.postgres)).toEqual(without(lite, ONLY_IN.sqlite));
});

/** One unit, three replicas: two agree and one dissents; the quorum is settled, then its canonical result revoked. */
async function settlementStory(store: Store) {
  const vs = ['v_aaaaaaaaaaaa', 'v_bbbbbbbbbbbb', 'v_cccccccccccc'];
  for (const [i, v] of vs.entries()) await store.upsertVolunteer({ id: v, publicKey: `key-${i}`, name: null, now: 1 });
  const unit = { params: { m: 1, k: 1, n: 1 }, inputs: {}, outputBytes: 4, flops: 1000, tolerance: { atol: 0, rtol: 0 }, meta: {} };
  await store.createJob(
    { id: 'j_story', kind: 'matmul', name: null, state: 'queued', replication: 2, meta: {}, createdAt: 1, finishedAt: null, error: null, resultSha: null, resultShape: [1, 1] },
    [{ ...unit, id: 'j_story.0', jobId: 'j_story', idx: 0, kind: 'matmul', target: 3 }],
  );
  const results: string[] = [];
  for (const [i, v] of vs.entries()) {
    const [leased] = await store.leaseUnits({ volunteerId: v, now: 10 + i, deadline: 1e15 });
    const id = `r_${i}`;
    await store.addResult({ id, wuId: leased.wu.id, leaseId: leased.lease.id, volunteerId: v, sha256: String(i % 2).repeat(64), state: 'pending', receivedAt: 20 + i, reason: null, data: new Uint8Array(4) });
    results.push(id);
  }
  const settled = await store.settle({
    wuId: 'j_story.0',
    canonicalResultId: 'r_0',
    valid: ['r_0', 'r_2'],
    invalid: ['r_1'],
    credits: [{ volunteerId: vs[0], amount: 1000 }, { volunteerId: vs[2], amount: 1000 }],
    now: 30,
  });
  await store.setJobResult('j_story', 'f'.repeat(64), 31);
  const afterSettle = await snapshot(store, vs);
  const revoked = await store.revokeResults({ resultIds: ['r_0'], reason: 'its host later failed a check', now: 40 });
  const ledger = await readLedger(store);
  return {
    settled: { jobComplete: settled.jobComplete, jobId: settled.jobId, credits: settled.entries.map((r) => r.entry), balances: settled.balances },
    afterSettle,
    revoked: { credits: revoked.entries.map((r) => r.entry), balances: revoked.balances },
    afterRevoke: await snapshot(store, vs),
    ledger: ledger.entries,
    chainOk: verifyChain(ledger, both.publicKey).ok,
  };
}

async function snapshot(store: Store, vs: string[]) {
  const unit = await store.getWorkUnit('j_story.0');
  const job = await store.getJob('j_story');
  const volunteers = (await store.listVolunteers()).filter((v) => vs.includes(v.id)).sort((a, b) => a.id.localeCompare(b.id));
  return {
    unit: { state: unit?.state, canonical: unit?.canonicalResultId, target: unit?.target },
    job: { state: job?.state, done: job?.done, resultSha: job?.resultSha },
    live: (await store.liveResults('j_story.0')).map((r) => [r.id, r.state]).sort(),
    volunteers: volunteers.map((v) => [v.id, v.credit, v.valid, v.invalid, v.pending]),
  };
}

test('both dialects settle and revoke the same sequence of results identically, down to the ledger chain', async () => {
  const lite = await both.open.SQLite();
  const post = await both.open.PostgreSQL();
  try {
    const [a, b] = [await settlementStory(lite), await settlementStory(post)];
    expect(a.chainOk).toBe(true);
    expect(a.afterSettle.unit).toEqual({ state: 'done', canonical: 'r_0', target: 3 });
    expect(a.afterSettle.volunteers).toEqual([
      ['v_aaaaaaaaaaaa', 1000, 1, 0, 0],
      ['v_bbbbbbbbbbbb', 0, 0, 1, 0],
      ['v_cccccccccccc', 1000, 1, 0, 0],
    ]);
    expect(a.revoked.credits.map((e) => [e.volunteerId, e.amount])).toEqual([['v_aaaaaaaaaaaa', -1000]]);
    expect(b).toEqual(a);
  } finally {
    await lite.close();
    await post.close();
  }
});
