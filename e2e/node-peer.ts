// A swarm peer in Node (for tests): a SimWorker session that takes no work, plus web/p2p's own
// Swarm running on node-datachannel's WebRTC polyfill, serving whatever bytes `serve` returns —
// e.g. corrupted ones.
import WebSocket from 'ws';
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

export async function startNodePeer(opts: {
  grid: TestCoordinator;
  /** Shards this peer tells the tracker it holds. */
  holds: string[];
  serve: (sha256: string) => Promise<Uint8Array | null>;
}): Promise<NodePeer> {
  await installWebRtc();
  const { Swarm } = await import('../web/p2p/swarm');
  const { UploadBudget } = await import('../web/p2p/upload-budget');
  const worker = new SimWorker({ url: opts.grid.base, name: 'node-peer', slots: 0 });
  await worker.connect();
  const welcome = await waitFor(() => worker.messages.find((m) => m.type === 'welcome'), 5_000, 'welcome');
  if (welcome.type !== 'welcome' || !welcome.p2p) throw new Error('the coordinator sent no p2p config');
  const requests: string[] = [];
  const swarm = await Swarm.open({
    peerId: welcome.p2p.peerId,
    host: '127.0.0.1',
    port: opts.grid.c.port,
    secure: false,
    path: welcome.p2p.path,
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
    peerId: welcome.p2p.peerId,
    swarm,
    requests,
    async close() {
      swarm.close();
      worker.close();
    },
  };
}
