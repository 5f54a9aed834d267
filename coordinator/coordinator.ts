// Assembles a coordinator from its parts on one data directory and one port.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadOrCreateApiToken, loadOrCreateCoordinatorKeys } from './keys.js';
import { ResultIntake } from './results.js';
import { SqliteRoomStore } from './room-store.js';
import { Rooms } from './rooms.js';
import { Scheduler } from './scheduler.js';
import { buildServer } from './server.js';
import { ShardStore } from './shards.js';
import { SqliteStore } from './sqlite-store.js';
import { SqliteStatsStore } from './stats-store.js';
import { Tracker } from './tracker.js';
import type { IceServer } from './protocol.js';

export interface CoordinatorOptions {
  dataDir: string;
  port: number;
  host?: string;
  /** Overrides the token stored in the data directory (TABGRID_API_TOKEN). */
  apiToken?: string;
  /** How long a worker has to return a result before its replica is reissued. */
  leaseMs?: number;
  heartbeatMs?: number;
  staticDir?: string;
  log?: (msg: string) => void;
  /** STUN/TURN servers for the pages' WebRTC connections; none by default (loopback, LAN). */
  iceServers?: IceServer[];
}

export interface Coordinator {
  url: string;
  port: number;
  apiToken: string;
  dataDir: string;
  close(): Promise<void>;
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const log = opts.log ?? ((msg: string) => console.log(`[tabgrid] ${msg}`));
  const now = Date.now;
  const keys = loadOrCreateCoordinatorKeys(dataDir);
  const apiToken = loadOrCreateApiToken(dataDir, opts.apiToken);
  const store = new SqliteStore(join(dataDir, 'tabgrid.sqlite'));
  const shards = new ShardStore(join(dataDir, 'shards'));
  const tracker = new Tracker();
  const scheduler = new Scheduler(store, { leaseMs: opts.leaseMs ?? 10 * 60_000, now, tracker });
  const intake = new ResultIntake({ store, shards, scheduler, signingKey: keys.privateKey, now, log });
  const app = await buildServer({
    store,
    shards,
    scheduler,
    intake,
    keys,
    apiToken,
    staticDir: opts.staticDir ?? resolve(import.meta.dirname, '..', 'dist'),
    heartbeatMs: opts.heartbeatMs ?? 20_000,
    now,
    log,
    rooms: new Rooms(new SqliteRoomStore(store.db), now),
    stats: new SqliteStatsStore(store.db),
    tracker,
    iceServers: opts.iceServers ?? [],
  });
  // Leases left active by a previous run belong to connections that no longer exist.
  await store.expireLeases(Number.MAX_SAFE_INTEGER);
  const ticker = setInterval(() => void scheduler.tick().catch((err) => log(`tick failed: ${err}`)), 2_000);
  await app.listen({ port: opts.port, host: opts.host ?? '0.0.0.0' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return {
    url: `http://localhost:${port}`,
    port,
    apiToken,
    dataDir,
    async close() {
      clearInterval(ticker);
      await app.close();
      await store.close();
    },
  };
}
