// The coordinator's one port: the built web app, the HTTP API, shard downloads and the worker
// WebSocket. Every API error is `{ error: { code, message } }` with a documented code.
import fastifyCors from '@fastify/cors';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { existsSync } from 'node:fs';
import { registerDashboardRoutes } from './dashboard-routes.js';
import { jobKind } from '../jobs/index.js';
import { readModel } from '../jobs/onnx.js';
import { JobInputError } from '../jobs/types.js';
import type { Connections } from '../socket/connections.js';
import type { CoordinatorKeys } from '../access/keys.js';
import { exportLedger } from '../ledger/export.js';
import { NpyError, parseNpy } from '../protocol/npy.js';
import { openApiDocument } from './openapi.js';
import {
  formatIssues,
  JobSubmit,
  LIMITS,
  PROTOCOL_VERSION,
  Sha256Hex,
  TokenCreate,
  type ErrorCode,
  type TokenScope,
  type JobStatus,
  type VolunteerSummary,
} from '../protocol/index.js';
import type { ResultIntake } from '../work/intake.js';
import { registerRoomRoutes } from './room-routes.js';
import type { Rooms } from '../socket/rooms.js';
import type { Scheduler } from '../work/scheduler.js';
import { originAllowed, securityHeaders, type SecurityOptions } from '../access/security.js';
import type { ShardStore } from '../store/shards.js';
import type { StatsStore } from '../store/sqlite/stats.js';
import type { JobRecord, Store } from '../store/store.js';
import { scopeAllows, type TokenRegistry } from './tokens.js';
import { handleWorkerSocket } from '../socket/worker-socket.js';
import { mountPeerServer } from '../swarm/peer-server.js';
import type { Tracker } from '../swarm/tracker.js';
import type { IceServer, ShardTraffic } from '../protocol/index.js';

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

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string) {
  return reply.code(status).type('application/json').send({ error: { code, message } });
}

export function jobStatus(job: JobRecord, shardTraffic?: ShardTraffic): JobStatus {
  return {
    id: job.id,
    kind: job.kind,
    name: job.name,
    state: job.state,
    progress: { done: job.done, total: job.total },
    replication: job.replication,
    createdAt: job.createdAt,
    finishedAt: job.finishedAt,
    error: job.error,
    result: job.resultSha && job.resultShape ? { sha256: job.resultSha, shape: job.resultShape } : null,
    ...(shardTraffic ? { shardTraffic } : {}),
  };
}

/** Plans a validated job into work units, stores it and wakes the scheduler. */
export async function submitJob(ctx: ServerContext, submit: JobSubmit): Promise<{ id: string; workUnits: number }> {
  const { store, shards, scheduler } = ctx;
  const kind = jobKind(submit.kind);
  if (!kind) throw new ApiFailure(400, 'bad_request', `unknown job kind ${submit.kind}`);
  let plan;
  try {
    plan = await kind.plan(submit, shards);
  } catch (err) {
    if (err instanceof JobInputError) throw new ApiFailure(400, 'bad_request', err.message);
    throw err;
  }
  const id = `j_${crypto.randomUUID().replace(/-/g, '').slice(0, 20)}`;
  // Adaptive replication only where the kind's check can catch a wrong output on its own.
  const adaptive = kind.checksOutputs === true && !('adaptive' in submit && submit.adaptive === false);
  await store.createJob(
    {
      id,
      kind: submit.kind,
      name: submit.name ?? null,
      state: 'queued',
      replication: submit.replication,
      meta: plan.meta,
      createdAt: ctx.now(),
      finishedAt: null,
      error: null,
      resultSha: null,
      resultShape: plan.resultShape,
    },
    // Adaptive replication starts each unit at one result and replicates as trust requires.
    plan.workUnits.map((u, idx) => ({ ...u, id: `${id}.${idx}`, jobId: id, idx, kind: submit.kind, target: adaptive ? 1 : submit.replication })),
  );
  ctx.log(`job ${id}: ${submit.kind}, ${plan.workUnits.length} work units × ${submit.replication} replicas`);
  void scheduler.dispatch();
  return { id, workUnits: plan.workUnits.length };
}

export async function buildServer(ctx: ServerContext): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: LIMITS.maxJsonBodyBytes });
  const { store, shards, scheduler } = ctx;
  // Any origin may call the API and load the widget: auth is a bearer token, never a cookie, so a
  // foreign page gains nothing it could not get with curl.
  await app.register(fastifyCors, { origin: '*', methods: ['GET', 'POST'], allowedHeaders: ['authorization', 'content-type'] });

  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, _req, reply) => {
    if (err instanceof ApiFailure) return sendError(reply, err.status, err.code, err.message);
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, 413, 'payload_too_large', 'request body is too large');
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendError(reply, 415, 'unsupported_media_type', err.message);
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return sendError(reply, err.statusCode, 'bad_request', err.message);
    ctx.log(`internal error: ${(err as Error).stack ?? err.message}`);
    return sendError(reply, 500, 'internal', 'internal error');
  });
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

  const bearer = (req: FastifyRequest): string | null => /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null;

  const headers = securityHeaders(ctx.security);
  app.addHook('onSend', async (_req, reply) => {
    reply.headers(headers);
  });

  // Per API token when a valid one is sent, else per address (so made-up tokens do not buy fresh buckets).
  await app.register(fastifyRateLimit, {
    max: ctx.security.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: async (req) => {
      const secret = bearer(req);
      const who = secret ? await ctx.tokens.authenticate(secret) : null;
      return who ? `token:${who.id}` : `ip:${req.ip}`;
    },
    errorResponseBuilder: (_req, info) => new ApiFailure(429, 'rate_limited', `rate limit of ${info.max} requests per minute reached; retry in ${Math.ceil(info.ttl / 1000)} s`),
  });

  // Shard uploads are raw bytes, whatever content type the client names.
  app.addContentTypeParser(['application/octet-stream', 'application/x-npy'], { parseAs: 'buffer', bodyLimit: LIMITS.maxShardBytes }, (_req, body, done) =>
    done(null, body),
  );

  /** onRequest hook: a valid API token whose scope allows `needed`. */
  const requireScope = (needed: TokenScope) => async (req: FastifyRequest) => {
    const secret = bearer(req);
    const who = secret ? await ctx.tokens.authenticate(secret) : null;
    if (!who) throw new ApiFailure(401, 'unauthorized', 'missing or wrong API token: send Authorization: Bearer <token>');
    if (!scopeAllows(who.scope, needed)) throw new ApiFailure(403, 'forbidden', `this token's scope is ${who.scope}; this needs ${needed}`);
  };
  const requireToken = requireScope('submit');

  const jobOr404 = async (id: string) => {
    const job = await store.getJob(id);
    if (!job) throw new ApiFailure(404, 'not_found', `no job ${id}`);
    return job;
  };

  app.get('/api/health', async () => ({ ok: true, protocol: PROTOCOL_VERSION }));
  app.get('/api/info', async () => ({ protocol: PROTOCOL_VERSION, coordinatorPublicKey: ctx.keys.publicKeyRaw, limits: LIMITS }));

  app.post('/api/shards', { onRequest: requireToken, bodyLimit: LIMITS.maxShardBytes }, async (req, reply) => {
    if (!Buffer.isBuffer(req.body)) {
      throw new ApiFailure(415, 'unsupported_media_type', 'send the .npy bytes with Content-Type: application/octet-stream');
    }
    const bytes = new Uint8Array(req.body);
    let shape: number[];
    try {
      shape = parseNpy(bytes).shape;
    } catch (err) {
      throw new ApiFailure(400, 'bad_request', err instanceof NpyError ? err.message : 'unreadable .npy');
    }
    const sha256 = await shards.put(bytes);
    return reply.code(201).send({ sha256, shape, bytes: bytes.length });
  });

  // ONNX models: checked (size, protobuf, float32 inputs/outputs) and stored as a shard.
  app.post('/api/models', { onRequest: requireToken, bodyLimit: LIMITS.maxShardBytes }, async (req, reply) => {
    if (!Buffer.isBuffer(req.body)) {
      throw new ApiFailure(415, 'unsupported_media_type', 'send the .onnx bytes with Content-Type: application/octet-stream');
    }
    const bytes = new Uint8Array(req.body);
    let info;
    try {
      info = readModel(bytes);
    } catch (err) {
      if (err instanceof JobInputError) throw new ApiFailure(400, 'bad_request', err.message);
      throw err;
    }
    const sha256 = await shards.put(bytes);
    const shape = (dims: (number | null)[]) => dims.map((d) => d ?? '?');
    return reply.code(201).send({
      sha256,
      bytes: bytes.length,
      inputs: info.inputs.map((t) => ({ name: t.name, shape: shape(t.dims) })),
      outputs: info.outputs.map((t) => ({ name: t.name, shape: shape(t.dims) })),
      parameters: info.parameters,
      opset: info.opset,
      ops: info.ops,
    });
  });

  app.get<{ Params: { sha: string } }>('/shards/:sha', async (req, reply) => {
    if (!Sha256Hex.safeParse(req.params.sha).success) throw new ApiFailure(400, 'bad_request', 'shard id must be a sha-256 (64 lowercase hex)');
    const bytes = await shards.get(req.params.sha);
    if (!bytes) throw new ApiFailure(404, 'not_found', `no shard ${req.params.sha}`);
    ctx.tracker.coordinatorBytes += bytes.length;
    return reply
      .type('application/octet-stream')
      .header('cache-control', 'public, max-age=31536000, immutable')
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  app.post('/api/jobs', { onRequest: requireToken }, async (req, reply) => {
    const parsed = JobSubmit.safeParse(req.body);
    if (!parsed.success) throw new ApiFailure(400, 'bad_request', formatIssues(parsed.error));
    return reply.code(201).send(await submitJob(ctx, parsed.data));
  });

  app.get('/api/jobs', { onRequest: requireToken }, async () => ({
    jobs: (await store.listJobs()).map((job) => jobStatus(job, ctx.tracker.jobTraffic(job.id))),
  }));

  app.get<{ Params: { id: string } }>('/api/jobs/:id', { onRequest: requireToken }, async (req) =>
    jobStatus(await jobOr404(req.params.id), ctx.tracker.jobTraffic(req.params.id)),
  );

  // A job that is no longer wanted: it fails with "cancelled", its open units close, and the workers
  // computing them are told to stop (their late results earn nothing; units already done keep their credit).
  app.post<{ Params: { id: string } }>('/api/jobs/:id/cancel', { onRequest: requireToken }, async (req) => {
    const job = await jobOr404(req.params.id);
    if (job.state === 'done' || job.state === 'failed') throw new ApiFailure(409, 'conflict', `job is already ${job.state}`);
    await store.failJob(job.id, 'cancelled', ctx.now());
    await ctx.scheduler.cancelLeases((l) => l.jobId === job.id, 'job cancelled');
    ctx.log(`job ${job.id} cancelled (${job.done}/${job.total} work units done)`);
    return jobStatus(await jobOr404(job.id), ctx.tracker.jobTraffic(job.id));
  });

  app.get('/api/p2p', { onRequest: requireToken }, async () => ({
    coordinatorShardBytes: ctx.tracker.coordinatorBytes,
    peers: ctx.tracker.snapshot(),
    badVolunteers: ctx.tracker.badVolunteers(),
  }));

  app.get<{ Params: { id: string } }>('/api/jobs/:id/result', { onRequest: requireToken }, async (req, reply) => {
    const job = await jobOr404(req.params.id);
    if (job.state === 'failed') throw new ApiFailure(409, 'not_ready', `job failed: ${job.error}`);
    if (job.state !== 'done' || !job.resultSha) {
      throw new ApiFailure(409, 'not_ready', `job is ${job.state} (${job.done}/${job.total} work units done)`);
    }
    const bytes = await shards.get(job.resultSha);
    if (!bytes) throw new ApiFailure(500, 'internal', 'result shard is missing from the data directory');
    return reply
      .type('application/octet-stream')
      .header('content-disposition', `attachment; filename="${job.id}.npy"`)
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  // One named output of a multi-output job (ONNX), assembled from the canonical unit outputs.
  app.get<{ Params: { id: string; name: string } }>('/api/jobs/:id/outputs/:name', { onRequest: requireToken }, async (req, reply) => {
    const job = await jobOr404(req.params.id);
    const kind = jobKind(job.kind);
    if (job.state !== 'done') throw new ApiFailure(409, 'not_ready', `job is ${job.state} (${job.done}/${job.total} work units done)`);
    if (!kind?.output) throw new ApiFailure(404, 'not_found', `${job.kind} jobs have one result: use /api/jobs/${job.id}/result`);
    const outputs = (await store.canonicalOutputs(job.id)).map(({ wu, data }) => ({ wu, output: new Float32Array(data.slice().buffer) }));
    const npy = kind.output(job, outputs, req.params.name);
    if (!npy) throw new ApiFailure(404, 'not_found', `job ${job.id} has no output '${req.params.name}'`);
    return reply
      .type('application/octet-stream')
      .header('content-disposition', `attachment; filename="${job.id}-${req.params.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.npy"`)
      .send(Buffer.from(npy.buffer, npy.byteOffset, npy.byteLength));
  });

  app.get('/api/volunteers', async () => {
    const volunteers: VolunteerSummary[] = (await store.listVolunteers()).map((v) => ({
      id: v.id,
      name: v.name,
      credit: v.credit,
      results: { valid: v.valid, invalid: v.invalid, pending: v.pending },
      online: scheduler.isOnline(v.id),
    }));
    return { volunteers };
  });

  app.get<{ Querystring: { after?: string; limit?: string } }>('/api/ledger', async (req) => {
    const after = Math.max(0, Number.parseInt(req.query.after ?? '0', 10) || 0);
    const limit = Math.min(1000, Math.max(1, Number.parseInt(req.query.limit ?? '100', 10) || 100));
    return { coordinatorPublicKey: ctx.keys.publicKeyRaw, entries: await store.ledgerEntries(after, limit) };
  });

  // The whole ledger in one document, for public audit (verify with `npm run ledger -- verify --file`).
  app.get('/api/ledger/export', async () => exportLedger(store, ctx.keys.publicKeyRaw, ctx.now()));

  app.get('/api/tokens', { onRequest: requireScope('admin') }, async () => ({ tokens: await ctx.tokens.list() }));
  app.post('/api/tokens', { onRequest: requireScope('admin') }, async (req, reply) => {
    const parsed = TokenCreate.safeParse(req.body);
    if (!parsed.success) throw new ApiFailure(400, 'bad_request', formatIssues(parsed.error));
    const { token, info } = await ctx.tokens.create(parsed.data.scope, parsed.data.name ?? null, ctx.now());
    return reply.code(201).send({ token, ...info });
  });
  app.delete<{ Params: { id: string } }>('/api/tokens/:id', { onRequest: requireScope('admin') }, async (req, reply) => {
    if (!(await ctx.tokens.revoke(req.params.id))) throw new ApiFailure(404, 'not_found', `no token ${req.params.id}`);
    return reply.code(204).send();
  });

  app.get('/api/openapi.json', async () => openApiDocument());
  registerRoomRoutes(app, ctx);
  registerDashboardRoutes(app, ctx, requireToken);

  await app.register(fastifyWebsocket, { options: { maxPayload: LIMITS.maxWsMessageBytes } });
  await mountPeerServer(app, { isIssuedPeerId: (id) => ctx.tracker.isIssued(id) });
  app.get(
    '/ws',
    {
      websocket: true,
      preValidation: async (req) => {
        if (!originAllowed(req.headers.origin, req.headers.host, ctx.security)) {
          throw new ApiFailure(403, 'forbidden', `origin ${req.headers.origin ?? '(none)'} may not connect (see TABGRID_ALLOWED_ORIGINS)`);
        }
      },
    },
    (socket, req) => handleWorkerSocket(socket, { ...ctx, address: req.ip }),
  );

  if (existsSync(ctx.staticDir)) {
    await app.register(fastifyStatic, { root: ctx.staticDir, prefix: '/', index: 'index.html' });
    for (const [route, file] of Object.entries(PAGES)) app.get(route, (_req, reply) => reply.sendFile(file));
  } else {
    app.get('/', async (_req, reply) => reply.type('text/plain').send('tabgrid: the web app is not built (run `npm run build`).'));
  }
  return app;
}
