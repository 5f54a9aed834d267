// Runs the fuzzer against a fresh coordinator on loopback holding real state (a finished job with
// ledger entries, a queued job), and checks afterwards that it is up and that nothing changed:
// SQLite's integrity check, the ledger's chain and signatures, job states, shards on disk.
import Database from 'better-sqlite3';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { runFuzz, type FuzzReport } from './fuzz.js';
import { verifyExport } from '../../ledger/export.js';
import { toNpy } from '../../protocol/npy.js';
import { LIMITS, type JobStatus, type LedgerExport } from '../../protocol/index.js';
import { SimWorker } from '../../testing/sim-worker.js';
import { randomMatrix, startTestCoordinator, type TestCoordinator } from '../../testing/helpers.js';

export interface FuzzRunReport extends FuzzReport {
  /** Close code for one binary frame a byte over the WebSocket cap (1009: message too big). */
  oversizedFrameClose: number | null;
  coordinatorUp: boolean;
  integrityCheck: string;
  ledgerVerified: boolean;
  stateUnchanged: boolean;
  seconds: number;
}

async function snapshot(grid: TestCoordinator) {
  const jobs = ((await (await grid.api('/api/jobs')).json()) as { jobs: JobStatus[] }).jobs.map((j) => `${j.id}:${j.state}:${j.progress.done}/${j.progress.total}:${j.result?.sha256 ?? ''}`);
  const ledger = (await (await grid.api('/api/ledger/export')).json()) as LedgerExport;
  const shards = readdirSync(join(grid.dir, 'shards'), { recursive: true }).length;
  return { key: JSON.stringify({ jobs: jobs.sort(), head: ledger.entries.at(-1)?.hash ?? null, n: ledger.entries.length, shards }), ledger };
}

/** Sends one frame a byte over the cap; the coordinator must close the connection (1009), not buffer on. */
function oversizedFrame(base: string): Promise<number | null> {
  return new Promise((done) => {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws');
    const timer = setTimeout(() => done(null), 30_000);
    ws.on('open', () => ws.send(new Uint8Array(LIMITS.maxWsMessageBytes + 1)));
    ws.on('close', (code) => {
      clearTimeout(timer);
      done(code);
    });
    ws.on('error', () => undefined);
  });
}

export async function fuzzCoordinator(opts: { count: number; seed?: number }): Promise<FuzzRunReport> {
  const started = Date.now();
  const grid = await startTestCoordinator({ security: { rateLimitPerMinute: 1_000_000, wsMaxPerAddress: 1000 } });
  try {
    const a = await grid.uploadShard(toNpy([8, 4], randomMatrix(8, 4, 1)));
    const b = await grid.uploadShard(toNpy([4, 8], randomMatrix(4, 8, 2)));
    const done = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, tile: { rows: 4, cols: 4 }, replication: 2, adaptive: false });
    const workers = [new SimWorker({ url: grid.base }), new SimWorker({ url: grid.base })];
    for (const w of workers) await w.connect();
    await grid.waitForJob(done);
    for (const w of workers) w.close();
    await new Promise((r) => setTimeout(r, 100)); // let the coordinator see them go
    const queued = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 2 });
    const before = await snapshot(grid);

    const report = await runFuzz({ base: grid.base, token: grid.c.apiToken, jobId: queued, wuId: `${queued}.0`, shardSha: a }, opts);
    const oversizedFrameClose = await oversizedFrame(grid.base);

    const health = await grid.api('/api/health').catch(() => null);
    const after = await snapshot(grid);
    const db = new Database(join(grid.dir, 'tabgrid.sqlite'), { readonly: true });
    const integrity = String((db.pragma('integrity_check', { simple: true }) as string) ?? '');
    db.close();
    return {
      ...report,
      oversizedFrameClose,
      coordinatorUp: health?.status === 200,
      integrityCheck: integrity,
      ledgerVerified: verifyExport(after.ledger).ok,
      stateUnchanged: before.key === after.key,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await grid.stop();
  }
}
