// Runs the fuzzer against a fresh coordinator on loopback holding real state (a finished job with
// ledger entries, a queued job, a classroom room), and checks afterwards that it is up and that
// nothing changed: SQLite's integrity check, the ledger's chain and signatures, job states, rooms,
// shards on disk, the swarm's claims. With `realLimits` the coordinator keeps its real limits (rate
// limits, the failed-login lockout, connection caps), so the fuzzer's wrong tokens lock its address
// out and its floods are cut off: the checks then come from another loopback address.
import Database from 'better-sqlite3';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { runFuzz, type FuzzReport } from './fuzz.js';
import { verifyExport } from '../../ledger/export.js';
import { toNpy } from '../../protocol/npy.js';
import { LIMITS, type JobStatus, type LedgerExport, type RoomCreated } from '../../protocol/index.js';
import { request, postJson } from '../../testing/loopback-http.js';
import { SimWorker } from '../../testing/sim-worker.js';
import { randomMatrix, startTestCoordinator, TOKEN, type TestCoordinator } from '../../testing/helpers.js';

export interface FuzzRunReport extends FuzzReport {
  /** True when the coordinator ran with its real limits (DEFAULT_SECURITY). */
  realLimits: boolean;
  /** Close code for one binary frame a byte over the WebSocket cap (1009: message too big). */
  oversizedFrameClose: number | null;
  coordinatorUp: boolean;
  integrityCheck: string;
  ledgerVerified: boolean;
  stateUnchanged: boolean;
  seconds: number;
}

/** Everything a refused message must leave as it was. Read from an address the fuzzer does not use. */
async function snapshot(grid: TestCoordinator, roomCode: string) {
  const get = async (path: string) => {
    const res = await request(grid.base, path, { headers: { authorization: `Bearer ${TOKEN}` }, from: '127.0.0.2' });
    if (res.status !== 200) throw new Error(`GET ${path} for the state check answered ${res.status}: ${res.body.slice(0, 200)}`);
    return JSON.parse(res.body) as unknown;
  };
  const jobs = ((await get('/api/jobs')) as { jobs: JobStatus[] }).jobs.map((j) => `${j.id}:${j.state}:${j.progress.done}/${j.progress.total}:${j.result?.sha256 ?? ''}`);
  const ledger = (await get('/api/ledger/export')) as LedgerExport;
  const shards = readdirSync(join(grid.dir, 'shards'), { recursive: true }).length;
  const rooms = (await get('/api/rooms')) as { rooms: unknown[] };
  const room = (await get(`/api/rooms/${roomCode}`)) as { paused: boolean; members: number };
  const claims = ((await get('/api/p2p')) as { peers: { shards: number }[] }).peers.reduce((n, p) => n + p.shards, 0);
  const key = JSON.stringify({ jobs: jobs.sort(), head: ledger.entries.at(-1)?.hash ?? null, n: ledger.entries.length, shards, rooms: rooms.rooms.length, room, claims });
  return { key, ledger };
}

/** Sends one frame a byte over the cap; the coordinator must close the connection (1009), not buffer on. */
function oversizedFrame(base: string): Promise<number | null> {
  return new Promise((done) => {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws', { localAddress: '127.0.0.2' });
    const timer = setTimeout(() => done(null), 30_000);
    ws.on('open', () => ws.send(new Uint8Array(LIMITS.maxWsMessageBytes + 1)));
    ws.on('close', (code) => {
      clearTimeout(timer);
      done(code);
    });
    ws.on('error', () => undefined);
  });
}

/** Did the run find nothing wrong? */
export function fuzzOk(r: FuzzRunReport): boolean {
  return r.coordinatorUp && r.oversizedFrameClose === 1009 && r.notRejected === 0 && r.unanswered === 0 && r.stateUnchanged && r.ledgerVerified && r.integrityCheck === 'ok';
}

export async function fuzzCoordinator(opts: { count: number; seed?: number; realLimits?: boolean }): Promise<FuzzRunReport> {
  const started = Date.now();
  // Raised limits let every message reach a parser; the real ones are what an attacker meets.
  const grid = await startTestCoordinator(opts.realLimits ? {} : { security: { rateLimitPerMinute: 1_000_000, wsMaxPerAddress: 1000, authFailuresPerMinute: 1_000_000 } });
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
    const room = JSON.parse((await request(grid.base, '/api/rooms', postJson({ name: 'fuzzed room' }, undefined, '127.0.0.2'))).body) as RoomCreated;
    const before = await snapshot(grid, room.code);

    const report = await runFuzz({ base: grid.base, token: grid.c.apiToken, jobId: queued, wuId: `${queued}.0`, shardSha: a, roomCode: room.code }, opts);
    const oversizedFrameClose = await oversizedFrame(grid.base);

    const health = await request(grid.base, '/api/health', { from: '127.0.0.2' }).catch(() => null);
    const after = await snapshot(grid, room.code);
    const db = new Database(join(grid.dir, 'tabgrid.sqlite'), { readonly: true });
    const integrity = String((db.pragma('integrity_check', { simple: true }) as string) ?? '');
    db.close();
    return {
      ...report,
      realLimits: opts.realLimits === true,
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
