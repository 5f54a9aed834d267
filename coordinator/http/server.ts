// The coordinator's one port: the built web app, the HTTP API (route plugins: job-, ledger-,
// token-, room- and dashboard-routes), shard downloads, the worker WebSocket and PeerJS signalling.
import fastifyCors from '@fastify/cors';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { addressKey } from '../access/address-key.js';
import { connectionsPerAddress, listeningOrigins, OriginPolicy, securityHeaders } from '../access/security.js';
import { CoordinatorInfo, Health, LIMITS, PROTOCOL_VERSION } from '../protocol/index.js';
import { handleWorkerSocket } from '../socket/worker-socket.js';
import { mountPeerServer } from '../swarm/peer-server.js';
import { limitConnectionsPerAddress } from './connection-limits.js';
import { principalOf, type ServerContext } from './context.js';
import { dashboardRoutes } from './dashboard-routes.js';
import { ApiFailure, errorHandler, sendError } from './errors.js';
import { jobRoutes } from './job-routes.js';
import { ledgerRoutes } from './ledger-routes.js';
import { apiRoutesOf, type ApiDoc } from './openapi.js';
import { roomRoutes } from './room-routes.js';
import { tokenRoutes } from './token-routes.js';

export type { ServerContext } from './context.js';

/** The pages of the web app and the file each is built to (see vite.config.ts). */
export const PAGES: Record<string, string> = {
  '/room': 'room.html',
  '/room/:code': 'room.html',
  '/board/:code': 'board.html',
  '/teacher': 'teacher.html',
  '/dashboard': 'dashboard.html',
  '/api/docs': 'api-docs.html',
  '/embed': 'embed.html',
};

/** Vite's content-hashed output (`assets/name-HASH8.ext`): a new build gives changed content a new name. */
const HASHED_ASSET = /[\\/]assets[\\/][^\\/]+-[A-Za-z0-9_-]{8}\.[a-z0-9]+(\.(br|gz))?$/;

/**
 * Content-hashed assets are cached for a year and never revalidated; everything else (the pages,
 * the fixed-name compute worker and widget.js the widget loads, favicon) is revalidated on each
 * use (ETag / Last-Modified), so a repeat visit costs only 304s.
 */
export function cacheControlFor(path: string): string {
  return HASHED_ASSET.test(path) ? 'public, max-age=31536000, immutable' : 'no-cache';
}

/** The declarations of the routes this file adds (the OpenAPI document is made from them). */
const API = {
  health: { tag: 'grid', auth: 'none', summary: 'Whether the coordinator is up, and its protocol version', answers: { 200: Health } },
  info: { tag: 'grid', auth: 'none', summary: 'Protocol version, size limits, the coordinator public key', answers: { 200: CoordinatorInfo } },
  openapi: {
    tag: 'grid',
    auth: 'none',
    summary: 'This document (OpenAPI 3.1), generated from the routes; browse it at /api/docs',
    answers: { 200: z.looseObject({ openapi: z.literal('3.1.0'), paths: z.record(z.string(), z.unknown()) }) },
  },
} satisfies Record<string, ApiDoc>;

export async function buildServer(ctx: ServerContext): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: LIMITS.maxJsonBodyBytes,
    // A connection silent both ways this long is closed (WebSockets switch it off for themselves).
    connectionTimeout: ctx.security.connectionIdleMs,
    // A URL that cannot be decoded is answered like every other error.
    frameworkErrors: (err, _req, reply) => sendError(reply, 400, 'bad_request', err.message),
  });
  limitConnectionsPerAddress(app.server, connectionsPerAddress(ctx.security));
  // Every route is listed as it is registered; the API's own declare their OpenAPI entries.
  const apiRoutes = apiRoutesOf(app);
  // Any origin may call the API and load the widget: auth is a bearer token, never a cookie, so a
  // foreign page gains nothing it could not get with curl.
  await app.register(fastifyCors, { origin: '*', methods: ['GET', 'POST'], allowedHeaders: ['authorization', 'content-type'] });

  app.setErrorHandler(errorHandler(ctx.log));
  // Cross-origin isolation on every response (the worker scripts included), so the CPU backend's
  // WebAssembly can use threads (SharedArrayBuffer). See README "Embedding and isolation".
  // CORP cross-origin: other sites may load widget.js and frame /embed even when they are
  // isolated themselves (their COEP then requires it of every cross-origin resource).
  app.addHook('onSend', async (_req, reply) => {
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('cross-origin-embedder-policy', 'require-corp');
    reply.header('cross-origin-resource-policy', 'cross-origin');
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`));

  const headers = securityHeaders(ctx.security);
  app.addHook('onSend', async (_req, reply) => {
    reply.headers(headers);
  });

  // Per API token when a valid one is sent, else per address (so made-up tokens do not buy fresh
  // buckets, and each counts as a failed authentication; IPv6 by its /64, as every per-address
  // limit). One hook for every request — pages, API, /peerjs — that runs before any route's own
  // token check.
  await app.register(fastifyRateLimit, {
    global: false,
    max: ctx.security.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: async (req) => {
      const who = await principalOf(ctx, req);
      return who ? `token:${who.id}` : `ip:${addressKey(req.ip)}`;
    },
    errorResponseBuilder: (_req, info) => new ApiFailure(429, 'rate_limited', `rate limit of ${info.max} requests per minute reached; retry in ${Math.ceil(info.ttl / 1000)} s`),
  });
  app.addHook('onRequest', app.rateLimit());

  // Shard uploads are raw bytes, whatever content type the client names.
  app.addContentTypeParser(['application/octet-stream', 'application/x-npy'], { parseAs: 'buffer', bodyLimit: LIMITS.maxShardBytes }, (_req, body, done) =>
    done(null, body),
  );

  app.get('/api/health', { config: { api: API.health } }, async () => ({ ok: true, protocol: PROTOCOL_VERSION }));
  app.get('/api/info', { config: { api: API.info } }, async () => ({ protocol: PROTOCOL_VERSION, coordinatorPublicKey: ctx.keys.publicKeyRaw, limits: LIMITS }));

  let openApi: string | null = null; // made once, when first asked for (every route is registered by then)
  app.get('/api/openapi.json', { config: { api: API.openapi } }, async (_req, reply) => reply.type('application/json').send((openApi ??= JSON.stringify(apiRoutes.document()))));
  for (const routes of [jobRoutes, ledgerRoutes, tokenRoutes, roomRoutes, dashboardRoutes]) await app.register(routes, { ctx });

  // WebSockets open only from our own origins (TABGRID_PUBLIC_URL, else the listening address)
  // and the allowed ones, scheme included, and only when the Host header names us: a page that
  // rebinds its own name to this address is refused.
  let policy: OriginPolicy | null = null;
  const checkOrigin = async (req: FastifyRequest) => {
    if (!policy) {
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      policy = new OriginPolicy(ctx.security, listeningOrigins(ctx.listenHost, port));
    }
    const why = policy.check(req.headers.origin, req.headers.host);
    if (why) throw new ApiFailure(403, 'forbidden', why);
  };

  await app.register(fastifyWebsocket, { options: { maxPayload: LIMITS.maxWsMessageBytes } });
  await mountPeerServer(app, {
    checkSignIn: (id, token) => ctx.tracker.checkSignIn(id, token),
    onPeerLeft: (listener) => ctx.tracker.onLeave(listener),
    messageBudget: () => ctx.connections.messageBudget(),
    maxDropped: ctx.connections.limits.wsMessageBurst,
    log: ctx.log,
    checkUpgrade: checkOrigin,
  });
  app.get('/ws', { websocket: true, preValidation: checkOrigin }, (socket, req) => handleWorkerSocket(socket, { ...ctx, address: req.ip }));

  if (existsSync(ctx.staticDir)) {
    // The build's .br and .gz copies (precompress.ts) are sent where Accept-Encoding allows.
    await app.register(fastifyStatic, {
      root: ctx.staticDir,
      prefix: '/',
      index: ['index.html'], // an array: with preCompressed, @fastify/static finds no index given as a string
      preCompressed: true,
      setHeaders: (reply, path) => void reply.header('cache-control', cacheControlFor(path)),
    });
    for (const [route, file] of Object.entries(PAGES)) app.get(route, (_req, reply) => reply.sendFile(file));
  } else {
    app.get('/', async (_req, reply) => reply.type('text/plain').send('tabgrid: the web app is not built (run `npm run build`).'));
  }
  return app;
}
