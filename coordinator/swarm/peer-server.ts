// PeerJS signalling (npm `peer`) on the coordinator's own port, under /peerjs. Only
// @fastify/websocket handles upgrades: the `/peerjs/peerjs` route hands each socket to peer's
// WebSocketServer, which runs with noServer (letting peer attach its own upgrade handler to the
// same port breaks both). Only peer ids the coordinator issued may sign in.
import fastifyExpress from '@fastify/express';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ExpressPeerServer } from 'peer';
import { WebSocketServer } from 'ws';
import { z } from 'zod';
import { formatIssues, IceServer } from '../protocol/index.js';

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
  /** True when a peer id was handed out by the coordinator to a live session. */
  isIssuedPeerId: (id: string) => boolean;
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
  // Mounting starts peer's timers (express fires 'mount' synchronously inside use()).
  const stopTimers = trackTimers(() => app.use(PEERJS_PATH, peerApp));

  app.get(`${PEERJS_PATH}/peerjs`, { websocket: true, preValidation: opts.checkUpgrade }, (socket, req) => {
    const id = new URL(req.url, 'http://x').searchParams.get('id') ?? '';
    if (!opts.isIssuedPeerId(id)) {
      socket.close(1008, 'unknown peer id: connect to the coordinator first');
      return;
    }
    peerWss.emit('connection', socket, req.raw);
  });

  app.addHook('onClose', async () => {
    stopTimers();
    for (const client of peerWss.clients) client.terminate();
    peerWss.close();
  });
}
