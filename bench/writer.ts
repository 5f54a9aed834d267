// SQLite writer bench: the coordinator's write path alone, in one process, on a real file — the
// writes the load bench's replication-1 units cause (each worker's results stored, settled and
// credited alone, its trust updated, its slots leased again), run through SqliteWriter in the
// batches a busy coordinator commits, without sockets, threads or fsyncs. It prints JSON: CPU per
// unit and each statement's share of it. Unlike WU/s on a shared machine, these figures barely
// move from run to run, so a change to the schema or the writer can be measured on its own.
//   npm run bench:writer -- [--workers 1000] [--slots 4] [--per-commit 125] [--rounds 24] [--warmup 4]
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type Database from 'better-sqlite3';
import { timeOrderedId } from '../coordinator/util/ids.js';
import { makeSealer } from '../coordinator/ledger/chain.js';
import { openDatabase } from '../coordinator/store/sqlite/schema.js';
import { SqliteWriter, type WriteName } from '../coordinator/store/sqlite/writer.js';
import type { Leased } from '../coordinator/store/store.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '1000' },
    slots: { type: 'string', default: '4' },
    // Workers whose frames one commit holds (the load bench commits ~100–500 units at a time).
    'per-commit': { type: 'string', default: '125' },
    rounds: { type: 'string', default: '24' },
    warmup: { type: 'string', default: '4' },
  },
});
const WORKERS = Number(values.workers);
const SLOTS = Number(values.slots);
const PER_COMMIT = Number(values['per-commit']);
const ROUNDS = Number(values.rounds);
const WARMUP = Number(values.warmup);

/** Time spent in each prepared statement, by SQL text (wraps the driver's Statement methods). */
function timeStatements(db: Database.Database) {
  const spent = new Map<string, { ns: bigint; calls: number }>();
  // Each statement's text, normalized once: a regex per call would be CPU the bench counts as the writer's.
  const texts = new WeakMap<Database.Statement, string>();
  const textOf = (stmt: Database.Statement) => {
    let text = texts.get(stmt);
    if (text === undefined) texts.set(stmt, (text = stmt.source.replace(/\s+/g, ' ').trim()));
    return text;
  };
  const proto = Object.getPrototypeOf(db.prepare('SELECT 1')) as Record<string, (...a: unknown[]) => unknown>;
  for (const method of ['run', 'get', 'all']) {
    const inner = proto[method];
    proto[method] = function (this: Database.Statement, ...args: unknown[]) {
      const t0 = process.hrtime.bigint();
      try {
        return inner.apply(this, args);
      } finally {
        const sql = textOf(this);
        const s = spent.get(sql) ?? { ns: 0n, calls: 0 };
        s.ns += process.hrtime.bigint() - t0;
        s.calls++;
        spent.set(sql, s);
      }
    };
  }
  return spent;
}

function main() {
  const dir = mkdtempSync(join(tmpdir(), 'tabgrid-writer-bench-'));
  const file = join(dir, 'grid.db');
  try {
    openDatabase(file).close();
    const writer = new SqliteWriter({ file, sealer: makeSealer(generateKeyPairSync('ed25519').privateKey) });
    const run = (writes: [WriteName, unknown[]][]) => writer.run(writes).outcomes;

    // One replication-1 job with units enough for every round, shaped like the load bench's 4×4 tiles.
    const units = WORKERS * SLOTS * (WARMUP + ROUNDS + 1);
    const jobId = 'j_writer_bench';
    const unit = { kind: 'matmul', params: { m: 4, k: 4, n: 4 }, inputs: { a: 'a'.repeat(64), b: 'b'.repeat(64) }, outputBytes: 64, flops: 128, tolerance: { atol: 1e-4, rtol: 1e-4 } };
    const job = { id: jobId, kind: 'matmul', name: null, state: 'queued', replication: 1, meta: {}, createdAt: 1, finishedAt: null, error: null, resultSha: null, resultShape: [1, units] };
    run([['createJob', [job, Array.from({ length: units }, (_, i) => ({ ...unit, id: `${jobId}.${i}`, jobId, idx: i, meta: { row: 0, col: 4 * i } }))]]]);
    const volunteers = Array.from({ length: WORKERS }, (_, i) => `v_${i.toString(16).padStart(24, '0')}`);
    run(volunteers.map((id) => ['upsertVolunteer', [{ id, publicKey: `key-${id}`, name: null, now: 1 }]]));

    const now = Date.now();
    const lease = (volunteerId: string): [WriteName, unknown[]] => [
      'leaseUnits',
      [{ volunteerId, count: SLOTS, now, deadline: now + 600_000, aliveUntil: now + 60_000, kinds: ['matmul', 'attention'] }],
    ];
    const held = new Map<string, Leased[]>();
    run(volunteers.map(lease)).forEach((o, i) => held.set(volunteers[i], o.value as Leased[]));

    const data = new Uint8Array(64);
    const spent = timeStatements(writer.db);
    let measured = 0;
    let commits = 0;
    let cpu = process.cpuUsage();
    let t0 = performance.now();
    for (let round = 0; round < WARMUP + ROUNDS; round++) {
      if (round === WARMUP) {
        spent.clear();
        measured = commits = 0;
        cpu = process.cpuUsage();
        t0 = performance.now();
      }
      for (let at = 0; at < WORKERS; at += PER_COMMIT) {
        const group = volunteers.slice(at, at + PER_COMMIT);
        const writes: [WriteName, unknown[]][] = [];
        for (const v of group) {
          for (const { lease: l, wu } of held.get(v)!) {
            const result = { id: timeOrderedId('r_'), wuId: wu.id, leaseId: l.id, volunteerId: v, sha256: 'c'.repeat(64), state: 'pending', receivedAt: now, reason: null, data };
            writes.push(['addSoleResult', [result, { amount: wu.flops, now }]]);
            measured++;
          }
        }
        writes.push(['putTrust', [group.map((volunteerId) => ({ volunteerId, validStreak: round, strikes: 0, suspendedUntil: 0, verifiedAt: now }))]]);
        const leasedAt = writes.length;
        for (const v of group) writes.push(lease(v));
        const outcomes = run(writes);
        const failed = outcomes.find((o) => !o.ok);
        if (failed) throw failed.value;
        group.forEach((v, i) => held.set(v, outcomes[leasedAt + i].value as Leased[]));
        if (group.some((v) => held.get(v)!.length !== SLOTS)) throw new Error('the job ran out of units: the bench planned too few');
        commits++;
      }
    }
    const used = process.cpuUsage(cpu);
    const wallMs = performance.now() - t0;
    const perUnit = (ns: bigint) => +(Number(ns) / 1000 / measured).toFixed(1);
    const statements = [...spent]
      .sort((a, b) => Number(b[1].ns - a[1].ns))
      .map(([sql, s]) => ({ usPerUnit: perUnit(s.ns), usPerCall: +(Number(s.ns) / 1000 / s.calls).toFixed(1), calls: s.calls, sql: sql.slice(0, 100) }));
    console.log(
      JSON.stringify(
        {
          bench: 'sqlite-writer',
          workers: WORKERS,
          slots: SLOTS,
          unitsPerCommit: +(measured / commits).toFixed(0),
          units: measured,
          commits,
          // All of the writer's CPU per unit (SQLite, the JavaScript around it, seals, GC).
          cpuUsPerUnit: +((used.user + used.system) / measured).toFixed(1),
          wallUsPerUnit: +((wallMs * 1000) / measured).toFixed(1),
          inStatementsUsPerUnit: perUnit([...spent.values()].reduce((t, s) => t + s.ns, 0n)),
          statements,
          node: process.version,
        },
        null,
        2,
      ),
    );
    writer.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
