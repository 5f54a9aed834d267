// PeerJS signalling (npm `peer`) on the coordinator's own port, under /peerjs. Only
// @fastify/websocket handles upgrades: the `/peerjs/peerjs` route hands each socket to peer's
// WebSocketServer, which runs with noServer (letting peer attach its own upgrade handler to the
// same port breaks both). Only peer ids the coordinator issued may sign in, each only with the
// token issued with it (other pages learn the id from their leases; PeerJS would let whoever signs
// in first with any token keep it), one socket per id, for as long as the session it was issued to
// lasts; what the PeerServer sees of each socket passed a gate
// (signal-socket.ts): small frames, the worker socket's message rate, relays only to peers signed in.
import fastifyExpress from '@fastify/express';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ExpressPeerServer } from 'peer';
import { WebSocketServer } from 'ws';
import { z } from 'zod';
import { formatIssues, IceServer } from '../protocol/index.js';
import { SignalSocket, type MessageBudget } from './signal-socket.js';
import type { SignInCheck } from './tracker.js';

export const PEERJS_PATH = '/peerjs';

/**
 * ICE servers from TABGRID_ICE_SERVERS: either a JSON array of RTCIceServer objects
 * (`[{"urls":"turn:turn.example.org:3478","username":"u","credential":"p"}]`) or a comma-separated
 * list of URLs (`stun:stun.example.org:3478,stun:stun2.example.org:3478`). Empty: none (loopback, LAN).
 */
export function parseIceServers(text: string | undefined): IceServer[] {
  const value = text?.trim() ?? '';
  if (!value) return [];
  if (!value.startsWith('[')) return value.split(',').map((urls) => ({ urls: urls.trim() })).filter((s) => s.urls);
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw new Error('TABGRID_ICE_SERVERS is neither a JSON array nor a comma-separated list of URLs');
  }
  const parsed = z.array(IceServer).max(16).safeParse(json);
  if (!parsed.success) throw new Error(`TABGRID_ICE_SERVERS: ${formatIssues(parsed.error)}`);
  return parsed.data;
}

export interface PeerServerOptions {
  /** Whether `id` was handed out to a live session, and `token` is the one issued with it (constant time). */
  checkSignIn: (id: string, token: string) => SignInCheck;
  /** Calls `listener` with each peer id whose session ended (its signalling socket is closed then). */
  onPeerLeft: (listener: (peerId: string) => void) => void;
  /** A fresh message budget for one socket, and the over-budget messages in a row that close it. */
  messageBudget: () => MessageBudget;
  maxDropped: number;
  /** Where a signalling socket's errors are told. */
  log?: (msg: string) => void;
  /** Refuses (throws) a WebSocket upgrade from a page or host that may not connect. */
  checkUpgrade?: (req: FastifyRequest) => Promise<void>;
}

/**
 * peer 1.0.2 re-arms two setTimeout loops (broken-connection checks, message expiry) that it
 * never stops, which would keep the process alive after close(). Runs `fn` with every timer it
 * (or any callback of those timers) creates tracked, unref'd and cancellable.
 */
function trackTimers(fn: () => void): () => void {
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  const realSetTimeout = globalThis.setTimeout;
  const tracked = ((cb: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const t: NodeJS.Timeout = realSetTimeout(() => {
      timers.delete(t);
      if (!stopped) withTracking(() => cb(...args));
    }, ms);
    t.unref();
    timers.add(t);
    return t;
  }) as typeof setTimeout;
  function withTracking(body: () => void) {
    const previous = globalThis.setTimeout;
    globalThis.setTimeout = tracked;
    try {
      body();
    } finally {
      globalThis.setTimeout = previous;
    }
  }
  withTracking(fn);
  return () => {
    stopped = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
  };
}

export async function mountPeerServer(app: FastifyInstance, opts: PeerServerOptions): Promise<void> {
  await app.register(fastifyExpress);
  const peerWss = new WebSocketServer({ noServer: true });
  const peerApp = ExpressPeerServer(app.server, {
    path: '/',
    allow_discovery: false,
    createWebSocketServer: () => peerWss,
  });
  // peer re-emits every socket error and every message it cannot parse as the app's 'error' event:
  // with no listener that is an uncaught exception, and one bad frame would end the process. ws
  // closes the socket itself after a protocol error (1007, 1009 …), so there is nothing else to do.
  peerApp.on('error', (err: Error) => opts.log?.(`signalling socket: ${err.message}`));
  // Mounting starts peer's timers (express fires 'mount' synchronously inside use()).
  const stopTimers = trackTimers(() => app.use(PEERJS_PATH, peerApp));

  /** The socket each peer id is signed in with. */
  const signedIn = new Map<string, SignalSocket>();
  opts.onPeerLeft((id) => signedIn.get(id)?.close(1000, 'the session this peer id was issued to ended'));

  app.get(`${PEERJS_PATH}/peerjs`, { websocket: true, preValidation: opts.checkUpgrade }, async (ws, req) => {
    const query = new URL(req.url, 'http://x').searchParams;
    const id = query.get('id') ?? '';
    const check = opts.checkSignIn(id, query.get('token') ?? '');
    if (check === 'unknown_peer') {
      ws.close(1008, 'unknown peer id: connect to the coordinator first');
      return;
    }
    if (check === 'wrong_token') {
      // What PeerJS clients understand as "this id is not yours" (their error 'unavailable-id').
      ws.send(JSON.stringify({ type: 'ID-TAKEN', payload: { msg: 'ID is taken: sign in with the token issued with it in welcome' } }));
      ws.close(1008, 'wrong token for this peer id');
      return;
    }
    const held = signedIn.get(id);
    const socket = new SignalSocket(ws, { peerId: id, budget: opts.messageBudget(), maxDropped: opts.maxDropped, isSignedIn: (peer) => signedIn.has(peer) });
    signedIn.set(id, socket);
    socket.on('close', () => {
      if (signedIn.get(id) === socket) signedIn.delete(id);
    });
    if (held) {
      // The page that holds the token again (a reconnect): the old socket goes first, so the
      // PeerServer forgets it and signs the new one in afresh (it answers OPEN) rather than keeping
      // both under one id.
      const gone = new Promise((resolve) => held.once('close', resolve));
      held.ws.terminate();
      await gone;
      if (ws.readyState !== ws.OPEN) return;
    }
    peerWss.emit('connection', socket, req.raw);
  });

  app.addHook('onClose', async () => {
    stopTimers();
    for (const socket of signedIn.values()) socket.ws.terminate();
    peerWss.close();
  });
}
