// HTTP routes for classroom rooms: create (anyone: a teacher needs no API token), read, the live
// board feed (Server-Sent Events), and the teacher's controls, which need the room's teacher key
// (or the API token).
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { toNpy } from '../protocol/npy.js';
import { JobCreated, RoomCode, RoomControl, RoomCreate, RoomCreated, RoomDemo, RoomInfo, RoomList, RoomSnapshot } from '../protocol/index.js';
import type { RoomRecord } from '../store/views.js';
import { submitJob } from '../work/submit.js';
import { bearerSecret, type RouteOptions } from './context.js';
import { ApiFailure, parseOr400 } from './errors.js';
import type { ApiDoc } from './openapi.js';

const RoomParams = z.object({ code: RoomCode.describe("the room's 6-character join code") });
const NO_ROOM = { 400: 'not a room code', 404: 'no such room' };

/** The declarations of the routes below (the OpenAPI document is made from them). */
const API = {
  create: {
    tag: 'rooms',
    auth: 'none',
    summary: 'Create a classroom room; the answer holds the teacher key, shown only here',
    body: RoomCreate,
    answers: { 201: RoomCreated },
    errors: { 400: 'a bad name' },
  },
  list: { tag: 'rooms', auth: 'none', summary: 'Rooms by credit, so classes can compare', answers: { 200: RoomList } },
  room: { tag: 'rooms', auth: 'none', summary: "A room's name, state and credit", params: RoomParams, answers: { 200: RoomInfo }, errors: NO_ROOM },
  snapshot: { tag: 'rooms', auth: 'none', summary: 'Every laptop in the room, once', params: RoomParams, answers: { 200: RoomSnapshot }, errors: NO_ROOM },
  events: {
    tag: 'rooms',
    auth: 'none',
    summary: 'Server-Sent Events: a room snapshot every second (the board)',
    params: RoomParams,
    answers: { 200: { events: RoomSnapshot } },
    errors: NO_ROOM,
  },
  control: {
    tag: 'rooms',
    auth: 'teacher',
    summary: 'Pause or resume the whole room',
    params: RoomParams,
    body: RoomControl,
    answers: { 200: RoomInfo },
    errors: NO_ROOM,
  },
  demo: {
    tag: 'rooms',
    auth: 'teacher',
    summary: 'Start a demo matmul job (random inputs, one replica per unit)',
    params: RoomParams,
    body: RoomDemo,
    answers: { 201: JobCreated },
    errors: { ...NO_ROOM, 409: "the room's previous demo job is still running" },
  },
} satisfies Record<string, ApiDoc>;

/** How often the board gets a fresh snapshot. */
export const BOARD_INTERVAL_MS = 1000;

/** Demo job sizes: m = k = n, and the output tile per work unit. */
const DEMO_SIZES = { small: { n: 128, tile: 64 }, medium: { n: 512, tile: 128 }, large: { n: 1024, tile: 256 } } as const;

function randomUniform(count: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.random() * 2 - 1;
  return out;
}

export const roomRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const { rooms } = ctx;
  /** Each room's latest demo job. */
  const demoJobs = new Map<string, string>();
  // Open board streams, ended when the server closes (they would otherwise hold it open).
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of streams) end();
  });

  const roomOr404 = async (raw: string): Promise<RoomRecord> => {
    const code = parseOr400(RoomCode, raw);
    const room = await rooms.get(code);
    if (!room) throw new ApiFailure(404, 'not_found', `no room ${code}`);
    return room;
  };

  const requireTeacher = async (req: FastifyRequest, room: RoomRecord) => {
    const secret = bearerSecret(req);
    if (!secret || !(rooms.keyMatches(room, secret) || (await ctx.tokens.authenticate(secret))?.scope === 'admin')) {
      throw new ApiFailure(401, 'unauthorized', "missing or wrong teacher key: send Authorization: Bearer <the room's teacher key>");
    }
  };

  app.post('/api/rooms', { config: { api: API.create } }, async (req, reply) => {
    const { name } = parseOr400(RoomCreate, req.body);
    const { room, teacherKey } = await rooms.create(name);
    ctx.log(`room ${room.code} "${room.name}" created`);
    const body: RoomCreated = { code: room.code, name: room.name, teacherKey, joinPath: `/room/${room.code}`, boardPath: `/board/${room.code}` };
    return reply.code(201).send(body);
  });

  app.get('/api/rooms', { config: { api: API.list } }, async () => ({ rooms: await rooms.list() }));

  app.get<{ Params: { code: string } }>('/api/rooms/:code', { config: { api: API.room } }, async (req) => rooms.info(await roomOr404(req.params.code)));

  app.get<{ Params: { code: string } }>('/api/rooms/:code/snapshot', { config: { api: API.snapshot } }, async (req) => rooms.snapshot(await roomOr404(req.params.code)));

  app.get<{ Params: { code: string } }>('/api/rooms/:code/events', { config: { api: API.events } }, async (req, reply) => {
    const room = await roomOr404(req.params.code);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'access-control-allow-origin': '*',
    });
    let open = true;
    const push = async () => {
      const fresh = await rooms.get(room.code);
      if (!open || !fresh) return;
      res.write(`data: ${JSON.stringify(await rooms.snapshot(fresh))}\n\n`);
    };
    const timer = setInterval(() => void push().catch(() => undefined), BOARD_INTERVAL_MS);
    const end = () => {
      open = false;
      clearInterval(timer);
      streams.delete(end);
      res.end();
    };
    streams.add(end);
    req.raw.on('close', end);
    await push();
  });

  app.post<{ Params: { code: string } }>('/api/rooms/:code/control', { config: { api: API.control } }, async (req) => {
    const room = await roomOr404(req.params.code);
    await requireTeacher(req, room);
    const { paused } = parseOr400(RoomControl, req.body);
    await rooms.setPaused(room, paused);
    if (!paused) void ctx.scheduler.dispatch();
    ctx.log(`room ${room.code} ${paused ? 'paused' : 'resumed'}`);
    return rooms.info({ ...room, paused });
  });

  app.post<{ Params: { code: string } }>('/api/rooms/:code/demo', { config: { api: API.demo } }, async (req, reply) => {
    const room = await roomOr404(req.params.code);
    await requireTeacher(req, room);
    const { size } = parseOr400(RoomDemo, req.body ?? {});
    // Rooms are free to create, so demo jobs are rationed: one unfinished demo per room.
    const previous = demoJobs.get(room.code);
    const prevJob = previous ? await ctx.store.getJob(previous) : null;
    if (prevJob && (prevJob.state === 'queued' || prevJob.state === 'running')) {
      throw new ApiFailure(409, 'not_ready', `the room's demo job ${prevJob.id} is still running (${prevJob.done}/${prevJob.total} units)`);
    }
    const { n, tile } = DEMO_SIZES[size];
    const a = await ctx.shards.put(toNpy([n, n], randomUniform(n * n)));
    const b = await ctx.shards.put(toNpy([n, n], randomUniform(n * n)));
    // One replica per unit: a room of one laptop can finish it; Freivalds' check still vets each result.
    const created = await submitJob(ctx, {
      kind: 'matmul',
      name: `demo for room ${room.code}`,
      inputs: { a, b },
      replication: 1,
      tile: { rows: tile, cols: tile },
    }, `room:${room.code}`);
    demoJobs.set(room.code, created.id);
    return reply.code(201).send(created);
  });
};
