// Assembles a coordinator from its parts on one data directory and one port.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Connections } from './socket/connections.js';
import { loadOrCreateApiToken, loadOrCreateCoordinatorKeys } from './access/keys.js';
import type { KeyObject } from 'node:crypto';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { makeSealer } from './ledger/chain.js';
import { Identities } from './work/identities.js';
import { ResultIntake } from './work/intake.js';
import type { AuditStats } from './work/audit.js';
import { SqliteRoomStore } from './store/sqlite/rooms.js';
import type { RoomStore, StatsStore } from './store/views.js';
import { Rooms } from './socket/rooms.js';
import { Scheduler } from './work/scheduler.js';
import { buildServer } from './http/server.js';
import { apiRoutesOf, type RegisteredRoute } from './http/openapi.js';
import { PgShardStore, PgStore } from './store/pg/store.js';
import { pgViews } from './store/pg/views.js';
import { FileShardStore, type ShardStore } from './store/shards.js';
import { AuthGuard } from './access/auth-guard.js';
import { DEFAULT_SECURITY, OriginPolicy, ROOM_CODE_MISSES_PER_MINUTE, type SecurityOptions } from './access/security.js';
import { SqliteStore } from './store/sqlite/store.js';
import type { Store } from './store/store.js';
import { SqliteStatsStore } from './store/sqlite/stats.js';
import { TokenRegistry } from './http/tokens.js';
import type { TrustPolicy } from './work/trust.js';
import { Tracker } from './swarm/tracker.js';
import type { IceServer } from './protocol/index.js';

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
  /**
   * A postgres:// URL (TABGRID_DB): state and shards live in PostgreSQL, shared with any other
   * coordinator given the same URL. Absent: SQLite and shard files in the data directory.
   */
  database?: string;
  log?: (msg: string) => void;
  /** Origin allow-list, rate and connection limits (defaults: DEFAULT_SECURITY). */
  security?: Partial<SecurityOptions>;
  /** Adaptive replication and suspension settings (defaults: DEFAULT_TRUST_POLICY). */
  trustPolicy?: TrustPolicy;
  /** STUN/TURN servers for the pages' WebRTC connections; none by default (loopback, LAN). */
  iceServers?: IceServer[];
}

export interface Storage {
  store: Store;
  shards: ShardStore;
  /** Classroom rooms and the dashboard's read-only views, on the same database. */
  views: { rooms: RoomStore; stats: StatsStore };
}

/**
 * What a coordinator runs on: SQLite + shard files in the data directory, or PostgreSQL for all.
 * `sealKey` (the coordinator's private key) signs the ledger's seals; without it the store can read
 * the ledger but not append. SQLite writes on a thread of its own (see SqliteStore).
 */
export async function openStorage(dataDir: string, database?: string, sealKey?: KeyObject): Promise<Storage> {
  if (database) {
    if (!/^postgres(ql)?:\/\//.test(database)) throw new Error('TABGRID_DB must be a postgres:// URL');
    const store = await PgStore.connect(database, undefined, sealKey && makeSealer(sealKey));
    return { store, shards: new PgShardStore(store.pool), views: await pgViews(store.pool) };
  }
  const store = new SqliteStore(join(dataDir, 'tabgrid.sqlite'), { sealKey, writerThread: Boolean(sealKey), checkpointThread: Boolean(sealKey) });
  // Rooms write outside the store's group commit: on a connection that syncs every commit itself.
  const views = { rooms: new SqliteRoomStore(store.connection()), stats: new SqliteStatsStore(store.db) };
  return { store, shards: new FileShardStore(join(dataDir, 'shards')), views };
}

export interface Coordinator {
  url: string;
  port: number;
  apiToken: string;
  dataDir: string;
  /** How busy the SQLite writer thread has been (since `before`, when given); null on PostgreSQL. */
  writerUtilization(before?: EventLoopUtilization): EventLoopUtilization | null;
  /** Quorums the audit recomputed, found forged, or had to settle without a verdict (work/audit.ts). */
  auditStats(): AuditStats;
  /** Every HTTP route the server registered, with its OpenAPI declaration if it has one. */
  routes(): readonly RegisteredRoute[];
  close(): Promise<void>;
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const log = opts.log ?? ((msg: string) => console.log(`[tabgrid] ${msg}`));
  const now = Date.now;
  const keys = loadOrCreateCoordinatorKeys(dataDir);
  const apiToken = loadOrCreateApiToken(dataDir, opts.apiToken);
  const { store, shards, views } = await openStorage(dataDir, opts.database, keys.privateKey);
  const heartbeatMs = opts.heartbeatMs ?? 20_000;
  const tracker = new Tracker({ exists: (shas) => shards.existing(shas) });
  // A lease outlives three missed heartbeats of its coordinator, never more.
  const scheduler = new Scheduler(store, { leaseMs: opts.leaseMs ?? 10 * 60_000, livenessMs: 3 * heartbeatMs, now, tracker, log });
  const security = { ...DEFAULT_SECURITY, ...opts.security };
  new OriginPolicy(security, []); // a malformed public URL or allowed origin stops the start, not the first page
  const connections = new Connections(security);
  const rooms = new Rooms(views.rooms, now, security);
  // A forgotten identity leaves its rooms: a throwaway member does not outlive its identity.
  const identities = new Identities(store, security, () => connections.identities(), now, log, () => rooms.removeForgotten());
  await identities.start();
  const intake = new ResultIntake({
    store,
    shards,
    scheduler,
    now,
    log,
    trustPolicy: opts.trustPolicy,
    disconnect: (id, reason) => connections.disconnect(id, reason),
  });
  const app = await buildServer({
    store,
    shards,
    scheduler,
    intake,
    keys,
    tokens: new TokenRegistry(store, apiToken),
    security,
    connections,
    identities,
    staticDir: opts.staticDir ?? resolve(import.meta.dirname, '..', 'dist'),
    heartbeatMs,
    now,
    log,
    rooms,
    stats: views.stats,
    tracker,
    iceServers: opts.iceServers ?? [],
    authGuard: new AuthGuard({ failuresPerMinute: security.authFailuresPerMinute, lockoutMs: security.authLockoutMs }, now),
    roomGuard: new AuthGuard({ failuresPerMinute: ROOM_CODE_MISSES_PER_MINUTE, lockoutMs: security.authLockoutMs }, now),
    listenHost: opts.host ?? '0.0.0.0',
  });
  // Leases left active by a previous run belong to connections that no longer exist (with a shared
  // store they may be another coordinator's: those lapse when their heartbeat stops).
  if (!store.shared) await store.expireLeases(Number.MAX_SAFE_INTEGER);
  const recovered = await intake.recover();
  if (recovered.validated || recovered.assembled) {
    log(`recovered after a crash: ${recovered.validated} units re-validated, ${recovered.assembled} results assembled`);
  }
  const tickMs = Math.min(2_000, heartbeatMs);
  const ticker = setInterval(() => void scheduler.tick().catch((err) => log(`tick failed: ${err}`)), tickMs);
  await app.listen({ port: opts.port, host: opts.host ?? '0.0.0.0' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return {
    url: `http://localhost:${port}`,
    port,
    apiToken,
    dataDir,
    auditStats: () => ({ ...intake.auditStats }),
    writerUtilization: (before) => (store instanceof SqliteStore ? store.writerUtilization(before) : null),
    routes: () => apiRoutesOf(app).routes,
    async close() {
      clearInterval(ticker);
      identities.stop();
      intake.stop();
      await app.close();
      await store.close();
    },
  };
}
