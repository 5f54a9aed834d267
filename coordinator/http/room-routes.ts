// HTTP routes for classroom rooms: create (anyone, unless TABGRID_ROOMS_REQUIRE_TOKEN: a teacher
// needs no API token, so rooms are capped per address and in all, and removed when idle), the
// public ranking (names and credit, never the join codes), one room, the live board feed
// (Server-Sent Events), and the teacher's controls, which need the room's teacher key (or an admin
// token; a wrong key counts as a failed authentication). A join code is a room's secret: an address
// that names too many rooms that do not exist is refused every room for a while. Demo jobs share one set of inputs per size,
// run one at a time per room and at most TABGRID_DEMO_MAX_ACTIVE at once in all.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AddressCounts, addressKey } from '../access/address-key.js';
import { roomLockoutMessage } from '../access/security.js';
import { DEMO_SIZES, DemoInputs } from '../jobs/demo.js';
import { JobCreated, RoomCode, RoomControl, RoomCreate, RoomCreated, RoomDemo, RoomInfo, RoomList, RoomSnapshot } from '../protocol/index.js';
import { RoomLimitError } from '../socket/rooms.js';
import type { RoomRecord } from '../store/views.js';
import { submitJob } from '../work/submit.js';
import { bearerSecret, principalOf, refuseLockedOut, requireScope, type RouteOptions } from './context.js';
import { ApiFailure, parseOr400 } from './errors.js';
import type { ApiDoc } from './openapi.js';

const RoomParams = z.object({ code: RoomCode.describe("the room's 6-character join code") });
const NO_ROOM = { 400: 'not a room code', 404: 'no such room', 429: 'this address named too many rooms that do not exist (30 a minute): locked out for a while' };

/** The declarations of the routes below (the OpenAPI document is made from them). */
const API = {
  create: {
    tag: 'rooms',
    auth: 'none',
    summary: 'Create a classroom room; the answer holds the teacher key, shown only here (an API token too with TABGRID_ROOMS_REQUIRE_TOKEN)',
    body: RoomCreate,
    answers: { 201: RoomCreated },
    errors: { 400: 'a bad name', 429: 'this address (or the coordinator) has as many live rooms as it may' },
  },
  list: { tag: 'rooms', auth: 'none', summary: 'Rooms by credit, so classes can compare (names and credit, never the join codes)', answers: { 200: RoomList } },
  room: { tag: 'rooms', auth: 'none', summary: "A room's name, state and credit", params: RoomParams, answers: { 200: RoomInfo }, errors: NO_ROOM },
  snapshot: { tag: 'rooms', auth: 'none', summary: 'Every laptop in the room, once', params: RoomParams, answers: { 200: RoomSnapshot }, errors: NO_ROOM },
  events: {
    tag: 'rooms',
    auth: 'none',
    summary: 'Server-Sent Events: a room snapshot every second (the board)',
    params: RoomParams,
    answers: { 200: { events: RoomSnapshot } },
    errors: { ...NO_ROOM, 429: `this address has 16 board streams open (1,000 in all); or ${NO_ROOM[429]}` },
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
    summary: 'Start a demo matmul job (fixed inputs per size, one replica per unit; one at a time per room, TABGRID_DEMO_MAX_ACTIVE in all)',
    params: RoomParams,
    body: RoomDemo,
    answers: { 201: JobCreated },
    errors: { ...NO_ROOM, 409: "the room's previous demo job is still running", 429: `TABGRID_DEMO_MAX_ACTIVE demo jobs are running; or ${NO_ROOM[429]}` },
  },
} satisfies Record<string, ApiDoc>;

/** How often the board gets a fresh snapshot. */
export const BOARD_INTERVAL_MS = 1000;
/** Open board streams (each costs a snapshot a second) per address, and in all. */
export const MAX_BOARD_STREAMS_PER_ADDRESS = 16;
export const MAX_BOARD_STREAMS = 1000;

/** The owner of a room's demo jobs (jobs belong to whoever submitted them). */
export const demoOwner = (code: string) => `room:${code}`;

export const roomRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const { rooms } = ctx;
  const demoInputs = new DemoInputs(ctx.shards);
  /** Demo submissions one at a time, so the caps are checked against what is really queued. */
  let demoQueue: Promise<unknown> = Promise.resolve();
  // Open board streams, ended when the server closes (they would otherwise hold it open).
  const streams = new Set<() => void>();
  const streamsOf = new AddressCounts();
  app.addHook('preClose', async () => {
    for (const end of streams) end();
  });

  const roomOr404 = async (req: FastifyRequest, raw: string): Promise<RoomRecord> => {
    const code = parseOr400(RoomCode, raw);
    const wait = ctx.roomGuard.lockedFor(req.ip);
    if (wait > 0) throw new ApiFailure(429, 'rate_limited', roomLockoutMessage(wait), { 'retry-after': String(Math.max(1, Math.ceil(wait / 1000))) });
    const room = await rooms.get(code);
    if (!room) {
      ctx.roomGuard.failed(req.ip);
      throw new ApiFailure(404, 'not_found', `no room ${code}`);
    }
    return room;
  };

  const requireTeacher = async (req: FastifyRequest, room: RoomRecord) => {
    refuseLockedOut(ctx, req);
    const secret = bearerSecret(req);
    if (secret && rooms.keyMatches(room, secret)) return;
    if (secret && (await ctx.tokens.authenticate(secret))?.scope === 'admin') return;
    if (secret) ctx.authGuard.failed(req.ip);
    throw new ApiFailure(401, 'unauthorized', "missing or wrong teacher key: send Authorization: Bearer <the room's teacher key>");
  };

  const requireToken = requireScope(ctx, 'submit');
  app.post('/api/rooms', { onRequest: ctx.security.roomsRequireToken ? requireToken : undefined, config: { api: API.create } }, async (req, reply) => {
    const { name } = parseOr400(RoomCreate, req.body);
    // A token holder's rooms are not counted against its address.
    const createdBy = (await principalOf(ctx, req)) ? null : addressKey(req.ip);
    let made;
    try {
      made = await rooms.create(name, createdBy);
    } catch (err) {
      if (err instanceof RoomLimitError) throw new ApiFailure(429, 'rate_limited', err.message);
      throw err;
    }
    const { room, teacherKey } = made;
    ctx.log(`room ${room.code} "${room.name}" created${createdBy ? ` by ${createdBy}` : ''}`);
    const body: RoomCreated = { code: room.code, name: room.name, teacherKey, joinPath: `/room/${room.code}`, boardPath: `/board/${room.code}` };
    return reply.code(201).send(body);
  });

  app.get('/api/rooms', { config: { api: API.list } }, async () => ({ rooms: await rooms.list() }));

  app.get<{ Params: { code: string } }>('/api/rooms/:code', { config: { api: API.room } }, async (req) => rooms.info(await roomOr404(req, req.params.code)));

  app.get<{ Params: { code: string } }>('/api/rooms/:code/snapshot', { config: { api: API.snapshot } }, async (req) => rooms.snapshot(await roomOr404(req, req.params.code)));

  app.get<{ Params: { code: string } }>('/api/rooms/:code/events', { config: { api: API.events } }, async (req, reply) => {
    const room = await roomOr404(req, req.params.code);
    const address = req.ip;
    if (streams.size >= MAX_BOARD_STREAMS || !streamsOf.take(address, MAX_BOARD_STREAMS_PER_ADDRESS)) {
      throw new ApiFailure(429, 'rate_limited', `too many open board streams (${MAX_BOARD_STREAMS_PER_ADDRESS} per address, ${MAX_BOARD_STREAMS} in all)`);
    }
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
      if (!open) return;
      open = false;
      clearInterval(timer);
      streams.delete(end);
      streamsOf.release(address);
      res.end();
    };
    streams.add(end);
    req.raw.on('close', end);
    await push();
  });

  app.post<{ Params: { code: string } }>('/api/rooms/:code/control', { config: { api: API.control } }, async (req) => {
    const room = await roomOr404(req, req.params.code);
    await requireTeacher(req, room);
    const { paused } = parseOr400(RoomControl, req.body);
    await rooms.setPaused(room, paused);
    await rooms.touch(room);
    if (!paused) void ctx.scheduler.dispatch();
    ctx.log(`room ${room.code} ${paused ? 'paused' : 'resumed'}`);
    return rooms.info({ ...room, paused });
  });

  app.post<{ Params: { code: string } }>('/api/rooms/:code/demo', { config: { api: API.demo } }, async (req, reply) => {
    const room = await roomOr404(req, req.params.code);
    await requireTeacher(req, room);
    const { size } = parseOr400(RoomDemo, req.body ?? {});
    const submit = demoQueue.then(async () => {
      // Rooms are free to make, so demo jobs are rationed: one unfinished demo per room, and a few in all.
      const [latest] = await ctx.store.listJobs(demoOwner(room.code), 1);
      if (latest && (latest.state === 'queued' || latest.state === 'running')) {
        throw new ApiFailure(409, 'not_ready', `the room's demo job ${latest.id} is still running (${latest.done}/${latest.total} units)`);
      }
      const active = await ctx.store.countActiveJobs(demoOwner(''));
      if (active >= ctx.security.demoMaxActive) {
        throw new ApiFailure(429, 'rate_limited', `${active} demo jobs are running on this coordinator, its limit (TABGRID_DEMO_MAX_ACTIVE): try again when one finishes`, { 'retry-after': '30' });
      }
      const { tile } = DEMO_SIZES[size];
      // One replica per unit: a room of one laptop can finish it; Freivalds' check still vets each result.
      return submitJob(
        ctx,
        { kind: 'matmul', name: `demo for room ${room.code}`, inputs: await demoInputs.get(size), replication: 1, tile: { rows: tile, cols: tile } },
        demoOwner(room.code),
      );
    });
    demoQueue = submit.catch(() => undefined);
    const created = await submit;
    await rooms.touch(room);
    return reply.code(201).send(created);
  });
};
