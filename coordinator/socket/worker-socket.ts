// One worker's WebSocket: challenge -> hello (proves the identity key) -> ready -> assignments and
// results. Every frame is validated; a bad frame gets an error message, never a crash. Connections
// are counted per address and identity, messages are rate-limited per connection, and a suspended
// identity is refused (connections.ts, trust.ts), and so is an unknown one while the store holds
// as many unproven identities as it may (work/identities.ts). What one connection can make the coordinator
// hold is bounded: frames before hello are capped at 16 KiB (64 MiB only once an identity is
// proven), reading stops while more than 4 MiB of its messages wait to be handled, and its swarm
// claims are capped by the tracker.
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { Connections } from './connections.js';
import type { AuthGuard } from '../access/auth-guard.js';
import { verifySignature, volunteerId, volunteerPublicKey } from '../access/keys.js';
import { roomLockoutMessage } from '../access/security.js';
import {
  LIMITS,
  ClientMessage,
  decodeWorkerFrame,
  encodeServerFrame,
  MAX_BATCH_MESSAGES,
  FrameError,
  formatIssues,
  helloSigningMessage,
  PROTOCOL_VERSION,
  type ServerMessage,
} from '../protocol/index.js';
import type { Identities } from '../work/identities.js';
import type { ResultIntake } from '../work/intake.js';
import { RoomLimitError, type Rooms } from './rooms.js';
import type { LeaseInfo, Scheduler, WorkerSession } from '../work/scheduler.js';
import type { ShardStore } from '../store/shards.js';
import type { Store } from '../store/store.js';
import type { Tracker } from '../swarm/tracker.js';
import { PEERJS_PATH } from '../swarm/peer-server.js';
import { setMaxPayload } from '../util/ws-max-payload.js';
import type { IceServer } from '../protocol/index.js';

export interface SocketContext {
  store: Store;
  scheduler: Scheduler;
  intake: ResultIntake;
  now: () => number;
  log: (msg: string) => void;
  /**
   * Interval of WebSocket pings; a worker that misses one is disconnected and its leases go back to
   * the queue, so a vanished worker (laptop lid closed, network gone) holds work at most ~2× this.
   */
  heartbeatMs: number;
  connections: Connections;
  /** Refuses unknown identities while the store holds as many unproven ones as it may. */
  identities: Identities;
  /** Room codes that named no room, per address (a join code is the room's secret). */
  roomGuard: AuthGuard;
  /** The peer's address, for per-address limits. */
  address: string;
  /** Classroom rooms: joins, speed reports, room-wide pause. */
  rooms?: Rooms;
  shards: ShardStore;
  tracker: Tracker;
  iceServers: IceServer[];
}

const HELLO_TIMEOUT_MS = 30_000;
/** Text messages are JSON; the largest, a full `holdings` message (2 × 1,024 sha-256s), is ~140 KB. */
export const MAX_TEXT_BYTES = 256 * 1024;
/** The largest frame read before hello (a hello with a full device description is under 8 KiB). */
export const MAX_BYTES_BEFORE_HELLO = 16 * 1024;
/** Reading from a connection pauses while this much of what it sent waits to be handled. */
const MAX_PENDING_BYTES = 4 * 1024 * 1024;

class SocketSession implements WorkerSession {
  slots = 0;
  readonly leases = new Map<string, LeaseInfo>();
  /** Leases whose shard traffic was already counted. */
  readonly trafficReported = new Set<string>();
  constructor(
    readonly volunteerId: string,
    readonly peerId: string,
    readonly send: (msg: ServerMessage) => void,
    readonly kinds?: readonly string[],
  ) {}
}

export function handleWorkerSocket(socket: WebSocket, ctx: SocketContext) {
  const nonce = randomBytes(24).toString('base64url');
  setMaxPayload(socket, MAX_BYTES_BEFORE_HELLO);
  let session: SocketSession | null = null;
  let boundId: string | null = null;
  let bad = 0;
  let alive = true;
  // Messages are handled one at a time, in arrival order.
  let queue: Promise<void> = Promise.resolve();

  // What is sent in one event-loop turn (a result's ack and its credit, a pass's assignments)
  // leaves as one frame at the end of the turn (a `batch` when there are several).
  let outbox: ServerMessage[] = [];
  const flushOutbox = () => {
    const messages = outbox;
    outbox = [];
    if (socket.readyState !== socket.OPEN) return;
    for (let i = 0; i < messages.length; i += MAX_BATCH_MESSAGES) socket.send(encodeServerFrame(messages.slice(i, i + MAX_BATCH_MESSAGES)));
  };
  const send = (msg: ServerMessage) => {
    if (socket.readyState !== socket.OPEN) return;
    if (outbox.push(msg) === 1) setImmediate(flushOutbox);
  };
  /** Closes after what is waiting in the outbox (an error's explanation) has gone out. */
  const close = (code: number, reason: string) => {
    flushOutbox();
    socket.close(code, reason);
  };
  const fail = (code: string, message: string) => {
    send({ type: 'error', code, message });
    if (++bad >= LIMITS.maxBadMessages) close(1008, 'too many bad messages');
  };

  if (!ctx.connections.admit(ctx.address)) {
    send({ type: 'error', code: 'rate_limited', message: 'too many connections from this address' });
    close(1008, 'too many connections');
    return;
  }
  const budget = ctx.connections.messageBudget();
  let dropped = 0;
  /** Bytes received and not yet handled. */
  let pending = 0;
  // Queued behind the message being handled, so the worker still gets that message's answer.
  const closeForSuspension = (reason: string) => {
    queue = queue.then(() => {
      send({ type: 'error', code: 'suspended', message: reason });
      close(1008, 'suspended');
    });
  };

  const helloTimer = setTimeout(() => {
    if (!session) close(1008, 'no hello');
  }, HELLO_TIMEOUT_MS);
  const heartbeat = setInterval(() => {
    if (!alive) {
      socket.terminate();
      return;
    }
    alive = false;
    socket.ping();
  }, ctx.heartbeatMs);
  socket.on('pong', () => {
    alive = true;
  });

  async function onText(text: string) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return fail('bad_message', 'message is not valid JSON');
    }
    const parsed = ClientMessage.safeParse(raw);
    if (!parsed.success) return fail('bad_message', formatIssues(parsed.error));
    const msg = parsed.data;
    if (msg.type === 'hello') {
      if (session) return fail('bad_state', 'hello was already accepted');
      const key = volunteerPublicKey(msg.publicKey);
      if (!key) return fail('bad_identity', 'publicKey is not a raw Ed25519 public key');
      if (!verifySignature(key, helloSigningMessage(nonce), msg.signature)) {
        return fail('bad_identity', 'hello signature does not verify: sign the challenge nonce with the identity key');
      }
      const id = volunteerId(msg.publicKey);
      const trust = await ctx.store.getTrust(id);
      if (socket.readyState !== socket.OPEN) return; // left while we looked
      if (trust.suspendedUntil > ctx.now()) {
        send({ type: 'error', code: 'suspended', message: `this identity is suspended until ${new Date(trust.suspendedUntil).toISOString()} after a result failed verification` });
        close(1008, 'suspended');
        return;
      }
      const admission = await ctx.identities.admit(id);
      if (socket.readyState !== socket.OPEN) return;
      if (admission === 'refused') {
        send({ type: 'error', code: 'busy', message: 'the grid is not admitting new identities right now; retry later (a known identity is always admitted)' });
        close(1013, 'busy');
        return;
      }
      if (!ctx.connections.bind(id, closeForSuspension)) {
        send({ type: 'error', code: 'rate_limited', message: 'too many connections for this identity' });
        close(1008, 'too many connections');
        return;
      }
      boundId = id;
      const record = await ctx.store.upsertVolunteer({ id, publicKey: msg.publicKey, name: msg.name ?? null, now: ctx.now() });
      if (socket.readyState !== socket.OPEN) return;
      clearTimeout(helloTimer);
      setMaxPayload(socket, LIMITS.maxWsMessageBytes);
      const peer = ctx.tracker.join(id);
      session = new SocketSession(id, peer.peerId, send, msg.device.kinds);
      ctx.scheduler.add(session);
      ctx.rooms?.connected(session, msg.device);
      send({
        type: 'welcome',
        volunteerId: id,
        name: record.name,
        credit: record.credit,
        // The token goes to this session only: it is what signs the peer id in at /peerjs.
        p2p: { peerId: peer.peerId, token: peer.token, path: PEERJS_PATH, iceServers: ctx.iceServers },
      });
      ctx.log(`worker ${id} (${msg.device.backend}: ${msg.device.adapter}) connected`);
      return;
    }
    if (!session) return fail('bad_state', 'send hello first');
    if (msg.type === 'ready') {
      session.slots = ctx.rooms ? ctx.rooms.allowedSlots(session, msg.slots) : msg.slots;
      ctx.scheduler.refresh(session);
      await ctx.scheduler.dispatch();
    } else if (msg.type === 'failure') {
      if (!session.leases.has(msg.leaseId)) return fail('bad_lease', 'no such active lease');
      ctx.scheduler.release(session, msg.leaseId);
      await ctx.store.endLeases([msg.leaseId], 'abandoned');
      ctx.log(`worker ${session.volunteerId} gave up lease ${msg.leaseId}: ${msg.reason}`);
      await ctx.scheduler.dispatch();
    } else if (msg.type === 'peer-ready') {
      ctx.tracker.setReady(session.peerId);
    } else if (msg.type === 'holdings') {
      const claimed = await ctx.tracker.claim(session.peerId, msg.add, msg.remove);
      if (claimed.unknown) return fail('unknown_shard', `${claimed.unknown} of these shards do not exist on this coordinator: not recorded`);
      if (claimed.dropped) {
        send({ type: 'error', code: 'holdings_limit', message: `${claimed.dropped} shards not recorded: a peer's holdings are capped (see P2P_LIMITS)` });
      }
    } else if (msg.type === 'peer-served') {
      ctx.tracker.served(session.peerId, msg.peerId, msg.sha256);
    } else if (msg.type === 'bad-peer') {
      const bad = ctx.tracker.report(session.peerId, msg.peerId, msg.sha256, msg.reason);
      if (bad) ctx.log(`peer ${msg.peerId} (volunteer ${bad}) served bad bytes for ${msg.sha256.slice(0, 12)}…: no longer recommended`);
    } else if (msg.type === 'shard-traffic') {
      await countTraffic(session, msg.leaseId, msg.fromPeers, msg.fromCoordinator);
    } else if (msg.type === 'join-room') {
      const wait = ctx.roomGuard.lockedFor(ctx.address);
      if (wait > 0) return fail('rate_limited', roomLockoutMessage(wait));
      try {
        if (!ctx.rooms || !(await ctx.rooms.join(session, msg.code))) {
          ctx.roomGuard.failed(ctx.address);
          return fail('no_room', `no room ${msg.code}`);
        }
      } catch (err) {
        if (err instanceof RoomLimitError) return fail('room_full', err.message);
        throw err;
      }
    } else if (msg.type === 'status') {
      ctx.rooms?.report(session, msg.gflops, msg.paused);
    } else if (msg.type === 'device') {
      ctx.rooms?.deviceChanged(session, msg.device);
      ctx.log(`worker ${session.volunteerId} now computes on ${msg.device.backend}: ${msg.device.adapter}`);
    }
  }

  /** Adds a lease's shard bytes to its job's figures, at most once and at most its inputs' size. */
  async function countTraffic(s: SocketSession, leaseId: string, fromPeers: number, fromCoordinator: number) {
    const info = s.leases.get(leaseId);
    if (!info) return fail('bad_lease', 'no such active lease');
    if (s.trafficReported.has(leaseId)) return;
    s.trafficReported.add(leaseId);
    // Only leases still held are remembered, so the set does not grow over a long session.
    if (s.trafficReported.size > s.leases.size + 64) for (const id of s.trafficReported) if (!s.leases.has(id)) s.trafficReported.delete(id);
    const wu = await ctx.store.getWorkUnit(info.wuId);
    if (!wu) return;
    const sizes = await Promise.all(Object.values(wu.inputs).map((sha) => ctx.shards.size(sha)));
    const inputBytes = sizes.reduce<number>((sum, n) => sum + (n ?? 0), 0);
    const peers = Math.min(fromPeers, inputBytes);
    const round = wu.kind === 'train' && typeof wu.params.round === 'number' ? wu.params.round : undefined;
    ctx.tracker.addTraffic(info.jobId, peers, Math.min(fromCoordinator, inputBytes - peers), round);
  }

  async function onBinary(frame: Uint8Array) {
    if (!session) return fail('bad_state', 'send hello first');
    let decoded;
    try {
      decoded = decodeWorkerFrame(frame);
    } catch (err) {
      return fail('bad_frame', err instanceof FrameError ? err.message : 'unreadable frame');
    }
    if (decoded.type === 'result') {
      const { header, payload } = decoded;
      const verdict = await ctx.intake.submit(session, header, payload);
      send({ type: 'result-ack', leaseId: header.leaseId, wuId: header.wuId, ...verdict });
      return;
    }
    // A batch is answered item by item, exactly as if each had come in its own frame.
    const { items } = decoded.header;
    const verdicts = await ctx.intake.submitBatch(session, decoded.header, decoded.payloads);
    items.forEach((item, i) => send({ type: 'result-ack', leaseId: item.leaseId, wuId: item.wuId, ...verdicts[i] }));
  }

  socket.on('message', (data, isBinary) => {
    if (!budget.take()) {
      // Over the rate: dropped unread. One error per burst; a client that keeps flooding is closed.
      if (dropped++ === 0) send({ type: 'error', code: 'rate_limited', message: 'too many messages: slow down' });
      if (dropped > ctx.connections.limits.wsMessageBurst) close(1008, 'rate limit');
      return;
    }
    dropped = 0;
    // ws hands over a Buffer of its own (binaryType nodebuffer): no copy needed.
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    // Backpressure: stop reading while much of what this connection sent still waits.
    pending += bytes.length;
    if (pending > MAX_PENDING_BYTES) socket.pause();
    const handled = () => {
      pending -= bytes.length;
      if (pending <= MAX_PENDING_BYTES) socket.resume();
    };
    const handle = async () => {
      if (socket.readyState !== socket.OPEN) return; // closing (e.g. suspended): nothing more is taken in
      // A plain Uint8Array view (Buffer.slice would not copy where callers expect it to).
      if (isBinary) return onBinary(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      if (bytes.length > MAX_TEXT_BYTES) return fail('bad_message', `text messages are limited to ${MAX_TEXT_BYTES} bytes`);
      return onText(bytes.toString('utf8'));
    };
    queue = queue
      .then(handle)
      .catch((err: unknown) => {
        ctx.log(`error handling a worker message: ${(err as Error).stack ?? String(err)}`);
        send({ type: 'error', code: 'internal', message: 'the coordinator could not handle that message' });
      })
      .finally(handled);
  });

  socket.on('close', () => {
    clearTimeout(helloTimer);
    clearInterval(heartbeat);
    ctx.connections.release(ctx.address);
    if (boundId) ctx.connections.unbind(boundId, closeForSuspension);
    const s = session;
    if (s) {
      ctx.rooms?.disconnected(s);
      ctx.tracker.leave(s.peerId);
      queue = queue.then(() => ctx.scheduler.remove(s)).catch(() => undefined);
      ctx.log(`worker ${s.volunteerId} disconnected`);
    }
  });
  socket.on('error', () => socket.terminate());

  send({ type: 'challenge', protocol: PROTOCOL_VERSION, nonce });
}
