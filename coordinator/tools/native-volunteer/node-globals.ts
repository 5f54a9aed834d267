// The browser globals web/client needs, for Node: WebSocket (from `ws`, tracked so that a stopping
// volunteer can wait for its connection's closing handshake) and, where node-datachannel is
// installed, WebRTC (its polyfill), so the page's peer-to-peer swarm (peerjs) works here too.
// Install them before importing web/client: peerjs looks for WebRTC when it is first imported.
import WebSocket from 'ws';

const sockets = new Set<WebSocket>();

class TrackedWebSocket extends WebSocket {
  constructor(address: string | URL, protocols?: string | string[]) {
    super(address, protocols);
    sockets.add(this);
    this.once('close', () => sockets.delete(this));
    // A browser's WebSocket reports a failed connection as an event and then closes; an EventEmitter
    // throws an 'error' nobody listens to. The client reconnects on the close that follows.
    this.on('error', () => {});
  }
}

export function installWebSocket() {
  Object.defineProperty(globalThis, 'WebSocket', { value: TrackedWebSocket, configurable: true, writable: true });
}

/** Resolves once every socket that is closing has closed (or after `timeoutMs`). */
export async function socketsClosed(timeoutMs = 2_000): Promise<void> {
  const closing = [...sockets].filter((s) => s.readyState === WebSocket.CLOSING);
  const closed = closing.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())));
  await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
}

/** Installs node-datachannel's WebRTC globals; the reason when it is not installed. */
export async function installWebRtc(): Promise<string | null> {
  if ((globalThis as { RTCPeerConnection?: unknown }).RTCPeerConnection) return null;
  try {
    const rtc = await import('node-datachannel/polyfill');
    Object.assign(globalThis, {
      RTCPeerConnection: rtc.RTCPeerConnection,
      RTCSessionDescription: rtc.RTCSessionDescription,
      RTCIceCandidate: rtc.RTCIceCandidate,
      RTCDataChannel: rtc.RTCDataChannel,
    });
    return null;
  } catch (err) {
    return `node-datachannel is not installed (${(err as Error).message.split('\n')[0]})`;
  }
}
