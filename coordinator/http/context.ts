// What the route plugins share: the coordinator's parts (ServerContext) and the bearer-token guards:
// a request's principal, found once per request, every wrong token counted against its address
// (AuthGuard), and a locked-out address refused before its token is looked at.
import type { FastifyRequest } from 'fastify';
import type { AuthGuard } from '../access/auth-guard.js';
import type { CoordinatorKeys } from '../access/keys.js';
import type { SecurityOptions } from '../access/security.js';
import type { IceServer, TokenScope } from '../protocol/index.js';
import type { Connections } from '../socket/connections.js';
import type { Rooms } from '../socket/rooms.js';
import type { ShardStore } from '../store/shards.js';
import type { StatsStore } from '../store/views.js';
import type { Store } from '../store/store.js';
import type { Tracker } from '../swarm/tracker.js';
import type { Identities } from '../work/identities.js';
import type { ResultIntake } from '../work/intake.js';
import type { Scheduler } from '../work/scheduler.js';
import { ApiFailure } from './errors.js';
import { scopeAllows, type Principal, type TokenRegistry } from './tokens.js';

export interface ServerContext {
  store: Store;
  shards: ShardStore;
  scheduler: Scheduler;
  intake: ResultIntake;
  keys: CoordinatorKeys;
  tokens: TokenRegistry;
  security: SecurityOptions;
  connections: Connections;
  /** Who may hello: the cap on stored unproven identities (and their sweep). */
  identities: Identities;
  staticDir: string;
  heartbeatMs: number;
  now: () => number;
  log: (msg: string) => void;
  rooms: Rooms;
  stats: StatsStore;
  tracker: Tracker;
  /** STUN/TURN servers handed to pages for WebRTC (TABGRID_ICE_SERVERS); none on loopback. */
  iceServers: IceServer[];
  /** Failed authentications per address, and lockouts. */
  authGuard: AuthGuard;
  /** Room codes that named no room, per address, and lockouts from rooms (ROOM_CODE_MISSES_PER_MINUTE). */
  roomGuard: AuthGuard;
  /** The address the server listens on (its default public origins: see OriginPolicy). */
  listenHost: string;
}

/** A route plugin's options. */
export interface RouteOptions {
  ctx: ServerContext;
}

/** The secret of an `Authorization: Bearer <secret>` header, or null. */
export function bearerSecret(req: FastifyRequest): string | null {
  return /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null;
}

interface Authentication {
  /** The API token's principal; null without a token, with a wrong one, or when locked out. */
  who: Principal | null;
  /** The address was locked out when the request came: its token was not looked at. */
  lockedOut: boolean;
}

const authentications = new WeakMap<FastifyRequest, Promise<Authentication>>();

/**
 * Looks up the request's API token once per request (the rate limiter and the route's guard share
 * the answer). A bearer secret that is no API token counts as a failed authentication — except on
 * room routes, where it may be a teacher key: those count their own failures.
 */
function authenticate(ctx: ServerContext, req: FastifyRequest): Promise<Authentication> {
  let found = authentications.get(req);
  if (!found) {
    found = (async () => {
      const secret = bearerSecret(req);
      if (!secret) return { who: null, lockedOut: false };
      if (ctx.authGuard.lockedFor(req.ip) > 0) return { who: null, lockedOut: true };
      const who = await ctx.tokens.authenticate(secret);
      if (!who && !req.url.startsWith('/api/rooms/')) ctx.authGuard.failed(req.ip);
      return { who, lockedOut: false };
    })();
    authentications.set(req, found);
  }
  return found;
}

/** The request's API token principal, or null (no token, a wrong one, or an address locked out). */
export async function principalOf(ctx: ServerContext, req: FastifyRequest): Promise<Principal | null> {
  return (await authenticate(ctx, req)).who;
}

/** A 429 with Retry-After for an address locked out after failed authentications. */
function lockedOut(ctx: ServerContext, req: FastifyRequest): ApiFailure {
  const s = Math.max(1, Math.ceil(ctx.authGuard.lockedFor(req.ip) / 1000));
  return new ApiFailure(429, 'rate_limited', `too many failed authentications from this address: locked out for ${s} s`, { 'retry-after': String(s) });
}

/** Throws the 429 while the request's address is locked out. */
export function refuseLockedOut(ctx: ServerContext, req: FastifyRequest) {
  if (ctx.authGuard.lockedFor(req.ip) > 0) throw lockedOut(ctx, req);
}

/** onRequest hook: a valid API token whose scope allows `needed`. */
export function requireScope(ctx: ServerContext, needed: TokenScope) {
  return async (req: FastifyRequest) => {
    const { who, lockedOut: locked } = await authenticate(ctx, req);
    if (locked || (!bearerSecret(req) && ctx.authGuard.lockedFor(req.ip) > 0)) throw lockedOut(ctx, req);
    if (!who) throw new ApiFailure(401, 'unauthorized', 'missing or wrong API token: send Authorization: Bearer <token>');
    if (!scopeAllows(who.scope, needed)) throw new ApiFailure(403, 'forbidden', `this token's scope is ${who.scope}; this needs ${needed}`);
    req.principal = who;
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The API token's principal, set by requireScope. */
    principal?: Principal;
  }
}
