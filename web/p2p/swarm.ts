// This page in the swarm: a PeerJS peer (signalling through the coordinator's PeerServer) that
// asks other peers for shards and serves its own within an upload budget. The only importer of
// peerjs. Runs on the page's main thread: RTCPeerConnection does not exist inside workers.
//
// Wire: on a reliable, ordered data channel with raw serialization, the asker sends
// {t:'get', sha256}; the server answers {t:'no', reason} or {t:'ok', bytes} followed by the bytes
// as binary frames of CHUNK_BYTES, pausing whenever the channel's send buffer is full. Either end
// of a connection may ask (a `get` goes to serving, everything else to the asking side): a peer
// that dialled us with metadata {duplex: true} is asked over its own connection, not dialled back,
// so two peers that fetch from each other hold one connection, not two, and set up one.
//
// A connection that ends before it is any use (closed before it opens, or before the peer answers)
// is tried again, fresh, twice at most, within the same first-byte bound: node-datachannel now and then fails
// a DTLS handshake when several run at once in one process ("certificate verify failed"; 1 in
// 80–190 connections set up two at a time on loopback), and a pooled connection may be closed by
// its remote (evicted, or leaving) just as a request goes out.
import * as peerjs from 'peerjs';
import type { DataConnection, Peer } from 'peerjs';
import { P2P_LIMITS, PeerWireMessage } from '../../coordinator/protocol';
import type { UploadBudget } from './upload-budget';

// Node (test peers) loads peerjs's CommonJS build, whose exports sit under `default`.
const PeerClass: typeof Peer = peerjs.Peer ?? (peerjs as unknown as { default: typeof peerjs }).default.Peer;

/** What our connections tell the peer they reach: it may ask us over them too (a page before this said nothing, and would not answer). */
const DUPLEX_METADATA = { duplex: true } as const;
const isDuplex = (conn: DataConnection) => (conn.metadata as { duplex?: unknown } | undefined)?.duplex === true;

/**
 * peerjs (1.5.5) handles a signalling message for a connection in an async method that the Peer
 * does not await, and that throws a TypeError when the connection was closed before or during it
 * (its negotiator or provider set to null): a candidate arriving late is an unhandled rejection,
 * which ends a Node process (a native volunteer) and is noise in a page. What such a failure
 * means, the connection's end, is watched anyway (connect, attach): drop it here.
 */
export function guardPeerMessages(conn: DataConnection): DataConnection {
  const c = conn as unknown as { handleMessage(message: unknown): Promise<void> };
  const handle = c.handleMessage.bind(c);
  c.handleMessage = (message) => handle(message).catch(() => undefined);
  return conn;
}

export const CHUNK_BYTES = 128 * 1024;
/** Pause sending while more than this is queued on the channel; resume below the low mark. */
const BUFFER_HIGH = 2 * 1024 * 1024;
const BUFFER_LOW = 512 * 1024;
/** Outgoing connections kept open for reuse (a page tops out near 500 RTCPeerConnections). */
const MAX_OUTGOING = 32;
const MAX_INCOMING = 64;
/** The pauses before each retry of a connection that closed early (jittered ±50%): two retries, three connections at most. */
const RETRY_PAUSES_MS = [100, 300];
/** No retry with less than this left of the first-byte bound: it could not connect in time. */
const RETRY_MIN_LEFT_MS = 500;

export type PeerFetchFailure = 'unavailable' | 'refused' | 'timeout' | 'closed' | 'protocol';

export class PeerFetchError extends Error {
  override name = 'PeerFetchError';
  constructor(
    readonly kind: PeerFetchFailure,
    message: string,
  ) {
    super(message);
  }
}

/** A connection that ended before it was any use: worth a fresh try (a peer that is gone is not: 'peer-unavailable'). */
class EarlyClose extends PeerFetchError {}

export interface SwarmOptions {
  /** The id the coordinator issued in `welcome`. */
  peerId: string;
  /** The signalling token issued with it: the PeerServer admits the id only with this. */
  token: string;
  host: string;
  port: number;
  secure: boolean;
  /** PeerServer mount path, e.g. /peerjs */
  path: string;
  iceServers: RTCIceServer[];
  /** More RTCConfiguration fields (Node test peers bind to 127.0.0.1). */
  rtcConfig?: Record<string, unknown>;
  /** The bytes of a shard this page can serve (waiting for its own fetch if one is under way), or null. */
  serve: (sha256: string) => Promise<Uint8Array | null>;
  budget: UploadBudget;
  /** Bytes sent to a peer, chunk by chunk as they go (also of a transfer the peer then abandons). */
  onServed?: (bytes: number) => void;
  /** A transfer from a peer finished: its size and the time from the peer's answer to the last byte. */
  onReceived?: (bytes: number, ms: number) => void;
}

export interface FetchOptions {
  /** Connecting plus waiting for the answer to the request. */
  firstByteMs?: number;
  /** Longest silence between two chunks. */
  stallMs?: number;
}

type Handler = (data: unknown) => void;

interface Link {
  conn: DataConnection;
  lastUsed: number;
  /** Requests on one connection run one after another. */
  queue: Promise<unknown>;
  onData: Handler | null;
  onClose: (() => void) | null;
}

function asBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

function parseWire(data: unknown): PeerWireMessage | null {
  if (typeof data !== 'string' || data.length > P2P_LIMITS.maxPeerControlBytes) return null;
  try {
    const parsed = PeerWireMessage.safeParse(JSON.parse(data));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Swarm {
  private readonly outgoing = new Map<string, Promise<Link>>();
  private readonly incoming = new Set<DataConnection>();
  /** Open duplex connections peers dialled to us, by peer: asked before dialling that peer. */
  private readonly inbound = new Map<string, Link>();
  private readonly unavailable = new Map<string, (err: Error) => void>();
  private closed = false;

  private constructor(
    private readonly peer: Peer,
    private readonly opts: SwarmOptions,
  ) {
    peer.on('connection', (conn) => this.accept(conn));
    peer.on('error', (err) => {
      // 'peer-unavailable' names the peer in its message; fail that connect at once.
      if (err.type !== 'peer-unavailable') return;
      for (const [id, fail] of this.unavailable) if (err.message.includes(id)) fail(new PeerFetchError('unavailable', err.message));
    });
    peer.on('disconnected', () => {
      if (!this.closed) setTimeout(() => !this.closed && !peer.destroyed && peer.reconnect(), 1000);
    });
  }

  /** Joins the swarm; resolves once the PeerServer has accepted this peer id. */
  static open(opts: SwarmOptions, timeoutMs = 15_000): Promise<Swarm> {
    const peer = new PeerClass(opts.peerId, {
      token: opts.token,
      host: opts.host,
      port: opts.port,
      path: opts.path,
      secure: opts.secure,
      debug: 0,
      config: { iceServers: opts.iceServers, ...opts.rtcConfig },
    });
    return new Promise((resolve, reject) => {
      // Both listeners go once the join settles: left in place, the error one would destroy the
      // peer on any later error (a departed peer, a failed negotiation) and end all sharing.
      const settle = () => {
        clearTimeout(timer);
        peer.off('open', onOpen);
        peer.off('error', onError);
      };
      const onOpen = () => {
        settle();
        resolve(new Swarm(peer, opts));
      };
      const onError = (err: Error) => {
        settle();
        peer.destroy();
        reject(err);
      };
      const timer = setTimeout(() => onError(new Error('could not reach the PeerServer')), timeoutMs);
      peer.on('open', onOpen);
      peer.on('error', onError);
    });
  }

  get id(): string {
    return this.peer.id;
  }

  close() {
    this.closed = true;
    this.peer.destroy();
  }

  // -- asking ----------------------------------------------------------------------------------

  /**
   * Fetches a shard's bytes from one peer (unchecked: the caller verifies the sha-256). At most three
   * connections: another only when the last ended early, and only within the first-byte bound.
   */
  async fetch(peerId: string, sha256: string, opts: FetchOptions = {}): Promise<Uint8Array> {
    const deadline = Date.now() + (opts.firstByteMs ?? 10_000);
    const stallMs = opts.stallMs ?? 5_000;
    for (const pause of RETRY_PAUSES_MS) {
      try {
        return await this.ask(peerId, sha256, deadline, stallMs);
      } catch (err) {
        if (!(err instanceof EarlyClose) || deadline - Date.now() < RETRY_MIN_LEFT_MS + pause) throw err;
        // Jittered, so that handshakes that failed together do not meet again.
        await sleep(pause * (0.5 + Math.random()));
      }
    }
    return this.ask(peerId, sha256, deadline, stallMs);
  }

  /** One request on the peer's pooled connection, or a new one. */
  private async ask(peerId: string, sha256: string, deadline: number, stallMs: number): Promise<Uint8Array> {
    const link = await this.link(peerId, deadline - Date.now());
    const run = link.queue.then(() => this.request(link, peerId, sha256, Math.max(1000, deadline - Date.now()), stallMs));
    link.queue = run.catch(() => undefined);
    return run;
  }

  private link(peerId: string, timeoutMs: number): Promise<Link> {
    const existing = this.outgoing.get(peerId);
    if (existing) return existing;
    const theirs = this.inbound.get(peerId);
    if (theirs?.conn.open) return Promise.resolve(theirs);
    this.trimOutgoing();
    const made = this.connect(peerId, timeoutMs);
    this.outgoing.set(peerId, made);
    made.catch(() => this.outgoing.get(peerId) === made && this.outgoing.delete(peerId));
    return made;
  }

  private connect(peerId: string, timeoutMs: number): Promise<Link> {
    if (this.closed) return Promise.reject(new PeerFetchError('closed', 'left the swarm'));
    const conn = guardPeerMessages(this.peer.connect(peerId, { serialization: 'raw', reliable: true, metadata: DUPLEX_METADATA }));
    const pc = conn.peerConnection;
    return new Promise<Link>((resolve, reject) => {
      // A connection that fails or closes before it opens ends the attempt at once, not at the
      // timeout: peerjs hears of it only through the ICE state, which may skip straight to closed
      // without an event (node-datachannel does, seconds into a busy round).
      const onState = () => {
        const state = pc?.connectionState;
        if (state === 'failed' || state === 'closed') fail(new EarlyClose('unavailable', `the connection to ${peerId} ${state} before it opened`));
      };
      const settle = () => {
        clearTimeout(timer);
        this.unavailable.delete(peerId);
        pc?.removeEventListener('connectionstatechange', onState);
      };
      const fail = (err: Error) => {
        settle();
        conn.close();
        reject(err);
      };
      const timer = setTimeout(() => fail(new PeerFetchError('timeout', `no connection to ${peerId}`)), timeoutMs);
      this.unavailable.set(peerId, fail);
      pc?.addEventListener('connectionstatechange', onState);
      conn.once('error', (err) => fail(new EarlyClose('unavailable', err.message)));
      conn.once('open', () => {
        settle();
        resolve(this.attach(conn, (link) => this.drop(peerId, link)));
      });
    });
  }

  /** Both directions of one connection: the peer's requests go to serving, the rest to our request under way. */
  private attach(conn: DataConnection, onClose: (link: Link) => void): Link {
    const link: Link = { conn, lastUsed: Date.now(), queue: Promise.resolve(), onData: null, onClose: null };
    let serving: Promise<void> = Promise.resolve();
    conn.on('data', (data) => {
      const msg = typeof data === 'string' ? parseWire(data) : null;
      if (msg?.t !== 'get') return link.onData?.(data);
      serving = serving.then(() => this.serve(conn, msg.sha256)).catch(() => undefined);
    });
    conn.on('close', () => {
      onClose(link);
      link.onClose?.();
    });
    return link;
  }

  private drop(peerId: string, link: Link) {
    void this.outgoing.get(peerId)?.then((l) => l === link && this.outgoing.delete(peerId));
  }

  /** Closes the least recently used idle outgoing connection when the pool is full. */
  private trimOutgoing() {
    if (this.outgoing.size < MAX_OUTGOING) return;
    void Promise.all(
      [...this.outgoing].map(async ([id, p]) => {
        try {
          return { id, link: await p };
        } catch {
          return null;
        }
      }),
    ).then((links) => {
      const idle = links.filter((l) => l && !l.link.onData).sort((a, b) => a!.link.lastUsed - b!.link.lastUsed)[0];
      if (idle) {
        this.outgoing.delete(idle.id);
        idle.link.conn.close();
      }
    });
  }

  private request(link: Link, peerId: string, sha256: string, firstByteMs: number, stallMs: number): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      if (!link.conn.open) return reject(new EarlyClose('closed', `connection to ${peerId} closed`));
      let buffer: Uint8Array | null = null;
      let received = 0;
      let started = 0;
      let timer = setTimeout(() => finish(new PeerFetchError('timeout', `${peerId} did not answer`)), firstByteMs);
      const rearm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => finish(new PeerFetchError('timeout', `${peerId} stalled after ${received} bytes`)), stallMs);
      };
      const finish = (result: Uint8Array | PeerFetchError) => {
        clearTimeout(timer);
        link.onData = null;
        link.onClose = null;
        link.lastUsed = Date.now();
        if (result instanceof Uint8Array) {
          this.opts.onReceived?.(result.length, performance.now() - started);
          return resolve(result);
        }
        // Leftover frames of an abandoned transfer would confuse the next request.
        if (result.kind !== 'refused') {
          this.drop(peerId, link);
          link.conn.close();
        }
        reject(result);
      };
      // Before the answer, a close fails at once and is worth a fresh connection; after it, the peer is leaving.
      link.onClose = () => finish(buffer ? new PeerFetchError('closed', `${peerId} went away after ${received} bytes`) : new EarlyClose('closed', `${peerId} closed the connection before answering`));
      link.onData = (data) => {
        const chunk = asBytes(data);
        if (chunk) {
          if (!buffer || received + chunk.length > buffer.length) return finish(new PeerFetchError('protocol', `${peerId} sent unexpected bytes`));
          buffer.set(chunk, received);
          received += chunk.length;
          if (received === buffer.length) return finish(buffer);
          return rearm();
        }
        const msg = parseWire(data);
        if (!msg || msg.t === 'get' || msg.sha256 !== sha256 || buffer) return finish(new PeerFetchError('protocol', `${peerId} sent an unexpected message`));
        if (msg.t === 'no') return finish(new PeerFetchError('refused', `${peerId} refused: ${msg.reason}`));
        buffer = new Uint8Array(msg.bytes);
        started = performance.now();
        if (msg.bytes === 0) return finish(buffer);
        rearm();
      };
      link.conn.send(JSON.stringify({ t: 'get', sha256 } satisfies PeerWireMessage));
    });
  }

  // -- serving ---------------------------------------------------------------------------------

  private accept(conn: DataConnection) {
    guardPeerMessages(conn);
    if (this.incoming.size >= MAX_INCOMING) {
      const oldest = this.incoming.values().next().value;
      if (oldest) {
        this.incoming.delete(oldest);
        oldest.close();
      }
    }
    this.incoming.add(conn);
    const link = this.attach(conn, () => {
      this.incoming.delete(conn);
      if (this.inbound.get(conn.peer) === link) this.inbound.delete(conn.peer);
    });
    if (isDuplex(conn)) conn.once('open', () => this.inbound.set(conn.peer, link));
  }

  private async serve(conn: DataConnection, sha256: string) {
    const reply = (msg: PeerWireMessage) => {
      if (conn.open) conn.send(JSON.stringify(msg));
    };
    const { budget } = this.opts;
    if (!budget.tryStart()) return reply({ t: 'no', sha256, reason: 'busy' });
    try {
      const bytes = await this.opts.serve(sha256);
      if (!bytes) return reply({ t: 'no', sha256, reason: 'not-held' });
      reply({ t: 'ok', sha256, bytes: bytes.length });
      for (let off = 0; off < bytes.length; off += CHUNK_BYTES) {
        const chunk = bytes.slice(off, Math.min(bytes.length, off + CHUNK_BYTES));
        const wait = budget.reserve(chunk.length, Date.now());
        if (wait > 0) await sleep(wait);
        await this.drain(conn);
        if (!conn.open) return;
        conn.send(chunk);
        this.opts.onServed?.(chunk.length); // as it goes, so a transfer in progress shows
      }
    } finally {
      budget.finish();
    }
  }

  /** Backpressure: waits while the channel has more than BUFFER_HIGH queued. */
  private async drain(conn: DataConnection) {
    const dc = conn.dataChannel;
    while (conn.open && dc.bufferedAmount > BUFFER_HIGH) {
      dc.bufferedAmountLowThreshold = BUFFER_LOW;
      await Promise.race([new Promise((r) => dc.addEventListener('bufferedamountlow', r, { once: true })), sleep(250)]);
    }
  }
}
