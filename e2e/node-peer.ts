// A swarm peer in Node (for tests): a SimWorker session that takes no work, plus web/p2p's own
// Swarm running on node-datachannel's WebRTC polyfill, serving whatever bytes `serve` returns —
// e.g. corrupted ones. Or a bare PeerJS peer whose connections the test handles itself (one that
// closes them at awkward moments).
import WebSocket from 'ws';
import type { DataConnection, Peer } from 'peerjs';
import type { Swarm } from '../web/p2p/swarm';
import { SimWorker } from '../coordinator/testing/sim-worker';
import type { TestCoordinator } from '../coordinator/testing/helpers';
import { waitFor } from '../coordinator/testing/helpers';

export interface NodePeer {
  worker: SimWorker;
  peerId: string;
  swarm: Swarm;
  /** Shards peers asked this peer for, in order. */
  requests: string[];
  close(): Promise<void>;
}

let polyfilled = false;

async function installWebRtc() {
  if (polyfilled) return;
  // peerjs needs these globals before it is first imported.
  const rtc = await import('node-datachannel/polyfill');
  Object.assign(globalThis, {
    RTCPeerConnection: rtc.RTCPeerConnection,
    RTCSessionDescription: rtc.RTCSessionDescription,
    RTCIceCandidate: rtc.RTCIceCandidate,
    RTCDataChannel: rtc.RTCDataChannel,
    WebSocket,
  });
  polyfilled = true;
}

/** A session with the coordinator and the p2p settings its welcome gave (the PeerServer admits only issued ids). */
async function joinGrid(grid: TestCoordinator) {
  await installWebRtc();
  const worker = new SimWorker({ url: grid.base, name: 'node-peer', slots: 0 });
  await worker.connect();
  const welcome = await waitFor(() => worker.messages.find((m) => m.type === 'welcome'), 5_000, 'welcome');
  if (welcome.type !== 'welcome' || !welcome.p2p) throw new Error('the coordinator sent no p2p config');
  return { worker, p2p: welcome.p2p };
}

export interface BarePeer {
  peerId: string;
  peer: Peer;
  /** Every connection peers opened to this one, in order. */
  connections: DataConnection[];
  /**
   * An open connection to `peerId` (raw, reliable, no metadata). A connection node-datachannel
   * closes before it opens (now and then, as Swarm.fetch also allows for) is dialled again, twice
   * at most: this is the rig's own dial, not the code under test.
   */
  dial(peerId: string): Promise<DataConnection>;
  close(): Promise<void>;
}

/** A plain PeerJS peer in the swarm: `onConnection` decides what each incoming connection does. */
export async function startBarePeer(opts: { grid: TestCoordinator; onConnection: (conn: DataConnection, index: number) => void }): Promise<BarePeer> {
  const { worker, p2p } = await joinGrid(opts.grid);
  const peerjs = await import('peerjs');
  const { guardPeerMessages } = await import('../web/p2p/swarm'); // a late candidate after a close must not reject unhandled
  const PeerClass = peerjs.Peer ?? (peerjs as unknown as { default: typeof peerjs }).default.Peer;
  const peer = new PeerClass(p2p.peerId, {
    token: p2p.token,
    host: '127.0.0.1',
    port: opts.grid.c.port,
    path: p2p.path,
    secure: false,
    debug: 0,
    config: { iceServers: [], bindAddress: '127.0.0.1' } as RTCConfiguration,
  });
  await new Promise<void>((resolve, reject) => {
    peer.once('open', () => resolve());
    peer.once('error', reject);
  });
  const connections: DataConnection[] = [];
  peer.on('connection', (conn) => opts.onConnection(guardPeerMessages(conn), connections.push(conn) - 1));
  const dialOnce = (peerId: string) =>
    new Promise<DataConnection | null>((resolve) => {
      const conn = guardPeerMessages(peer.connect(peerId, { serialization: 'raw', reliable: true }));
      const pc = conn.peerConnection;
      const onState = () => ['failed', 'closed'].includes(pc.connectionState) && resolve(null);
      pc.addEventListener('connectionstatechange', onState);
      conn.once('open', () => {
        pc.removeEventListener('connectionstatechange', onState);
        resolve(conn);
      });
    });
  return {
    peerId: p2p.peerId,
    peer,
    connections,
    async dial(peerId) {
      // node-datachannel's DTLS failures come in runs (three in a row within 0.4 s, seen here): spaced tries.
      for (let attempt = 1; attempt <= 5; attempt++) {
        const conn = await dialOnce(peerId);
        if (conn) return conn;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
      throw new Error(`no connection to ${peerId} in 5 attempts`);
    },
    async close() {
      peer.destroy();
      worker.close();
    },
  };
}

export async function startNodePeer(opts: {
  grid: TestCoordinator;
  /** Shards this peer tells the tracker it holds. */
  holds: string[];
  serve: (sha256: string) => Promise<Uint8Array | null>;
}): Promise<NodePeer> {
  const { worker, p2p } = await joinGrid(opts.grid);
  const { Swarm } = await import('../web/p2p/swarm');
  const { UploadBudget } = await import('../web/p2p/upload-budget');
  const requests: string[] = [];
  const swarm = await Swarm.open({
    peerId: p2p.peerId,
    token: p2p.token,
    host: '127.0.0.1',
    port: opts.grid.c.port,
    secure: false,
    path: p2p.path,
    iceServers: [],
    rtcConfig: { bindAddress: '127.0.0.1' },
    budget: new UploadBudget({ bytesPerSecond: 64 * 1024 * 1024 }),
    serve: (sha) => {
      requests.push(sha);
      return opts.serve(sha);
    },
  });
  worker.send(JSON.stringify({ type: 'peer-ready' }));
  worker.send(JSON.stringify({ type: 'holdings', add: opts.holds, remove: [] }));
  return {
    worker,
    peerId: p2p.peerId,
    swarm,
    requests,
    async close() {
      swarm.close();
      worker.close();
    },
  };
}
