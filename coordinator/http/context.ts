// What the route plugins share: the coordinator's parts (ServerContext) and the bearer-token guards.
import type { FastifyRequest } from 'fastify';
import type { CoordinatorKeys } from '../access/keys.js';
import type { SecurityOptions } from '../access/security.js';
import type { IceServer, TokenScope } from '../protocol/index.js';
import type { Connections } from '../socket/connections.js';
import type { Rooms } from '../socket/rooms.js';
import type { ShardStore } from '../store/shards.js';
import type { StatsStore } from '../store/views.js';
import type { Store } from '../store/store.js';
import type { Tracker } from '../swarm/tracker.js';
import type { ResultIntake } from '../work/intake.js';
import type { Scheduler } from '../work/scheduler.js';
import { ApiFailure } from './errors.js';
import { scopeAllows, type TokenRegistry } from './tokens.js';

export interface ServerContext {
  store: Store;
  shards: ShardStore;
  scheduler: Scheduler;
  intake: ResultIntake;
  keys: CoordinatorKeys;
  tokens: TokenRegistry;
  security: SecurityOptions;
  connections: Connections;
  staticDir: string;
  heartbeatMs: number;
  now: () => number;
  log: (msg: string) => void;
  rooms: Rooms;
  stats: StatsStore;
  tracker: Tracker;
  /** STUN/TURN servers handed to pages for WebRTC (TABGRID_ICE_SERVERS); none on loopback. */
  iceServers: IceServer[];
}

/** A route plugin's options. */
export interface RouteOptions {
  ctx: ServerContext;
}

/** The secret of an `Authorization: Bearer <secret>` header, or null. */
export function bearerSecret(req: FastifyRequest): string | null {
  return /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null;
}

/** onRequest hook: a valid API token whose scope allows `needed`. */
export function requireScope(ctx: ServerContext, needed: TokenScope) {
  return async (req: FastifyRequest) => {
    const secret = bearerSecret(req);
    const who = secret ? await ctx.tokens.authenticate(secret) : null;
    if (!who) throw new ApiFailure(401, 'unauthorized', 'missing or wrong API token: send Authorization: Bearer <token>');
    if (!scopeAllows(who.scope, needed)) throw new ApiFailure(403, 'forbidden', `this token's scope is ${who.scope}; this needs ${needed}`);
  };
}
