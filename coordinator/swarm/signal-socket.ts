// What the PeerServer (npm `peer`) sees of a page's signalling socket: only messages that passed a
// gate. Left to itself the PeerServer relays any JSON of any size (up to the port's 64 MiB frames)
// at any rate, and holds every message for a peer that is not signed in — an id the sender makes
// up — for ~5 s in memory. Here a frame over P2P_LIMITS.maxSignalBytes closes the socket unread,
// messages are rate-limited like the worker socket's, each must be a PeerSignal, and a message
// for a peer not signed in here is dropped (an OFFER is answered EXPIRE at once, which the page's
// PeerJS client reports as peer-unavailable), so the PeerServer never queues anything.
import { EventEmitter } from 'node:events';
import type { RawData, WebSocket } from 'ws';
import { LIMITS, P2P_LIMITS, PeerSignal } from '../protocol/index.js';
import { setMaxPayload } from '../util/ws-max-payload.js';

/** A per-connection message budget (the worker socket's token bucket). */
export interface MessageBudget {
  take(): boolean;
}

export interface SignalGateOptions {
  /** The peer id this socket signed in as (the PeerServer stamps it as `src`). */
  peerId: string;
  budget: MessageBudget;
  /** Over-budget messages in a row after which the socket is closed. */
  maxDropped: number;
  /** Whether a peer is signed in to the PeerServer now. */
  isSignedIn: (peerId: string) => boolean;
}

/**
 * The socket handed to the PeerServer in place of the real one: it forwards what passes the gate
 * as 'message', and 'close' and 'error' as they come; `send` and `close` reach the real socket.
 */
export class SignalSocket extends EventEmitter {
  private dropped = 0;
  private bad = 0;

  constructor(
    readonly ws: WebSocket,
    private readonly opts: SignalGateOptions,
  ) {
    super();
    setMaxPayload(ws, P2P_LIMITS.maxSignalBytes);
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('close', (code, reason) => this.emit('close', code, reason));
    ws.on('error', (err) => this.emit('error', err));
  }

  /** The PeerServer's relay: a socket that is not open throws, and the PeerServer then treats its peer as gone. */
  send(data: string) {
    if (this.ws.readyState !== this.ws.OPEN) throw new Error('signalling socket is closed');
    this.ws.send(data);
  }

  close(code?: number, reason?: string) {
    this.ws.close(code, reason);
  }

  private onMessage(data: RawData, isBinary: boolean) {
    if (!this.opts.budget.take()) {
      if (++this.dropped > this.opts.maxDropped) this.close(1008, 'rate limit');
      return;
    }
    this.dropped = 0;
    const text = isBinary ? null : String(data);
    let parsed: ReturnType<typeof PeerSignal.safeParse> | null = null;
    try {
      parsed = text === null ? null : PeerSignal.safeParse(JSON.parse(text));
    } catch {
      parsed = null;
    }
    if (!parsed?.success) {
      if (++this.bad >= LIMITS.maxBadMessages) this.close(1008, 'too many bad messages');
      return;
    }
    const { type, dst } = parsed.data;
    if (dst !== undefined && !this.opts.isSignedIn(dst)) {
      if (type === 'OFFER') this.ws.send(JSON.stringify({ type: 'EXPIRE', src: dst, dst: this.opts.peerId }));
      return;
    }
    this.emit('message', text);
  }
}
