// The page's session with the coordinator: proves the identity, asks for work, gets input shards
// (cache, then peers, then the coordinator; see web/p2p/), has the compute worker run each unit,
// and uploads signed results. Reconnects on its own with backoff.
import { parseNpy } from '../../coordinator/npy';
import {
  encodeResultFrame,
  helloSigningMessage,
  onDemandInputs,
  P2P_LIMITS,
  PROTOCOL_VERSION,
  resultSigningMessage,
  ServerMessage,
  type ClientMessage,
  type DeviceInfo,
  type P2pConfig,
  type ShardPeers,
  type WorkUnitSpec,
} from '../../coordinator/protocol';
import { ShardSource, type TrafficStats } from '../p2p/shard-source';
import { Swarm } from '../p2p/swarm';
import type { UploadBudget } from '../p2p/upload-budget';
import type { Identity } from '../store/identity';
import { sha256Hex } from '../store/sha256';
import type { HoldingsChange, ShardCache } from '../store/shard-cache';

export type Phase = 'connecting' | 'waiting' | 'fetching' | 'computing' | 'uploading' | 'disconnected' | 'stopped';

export interface CurrentUnit {
  wuId: string;
  jobId: string;
  kind: string;
  shape: string;
  flops: number;
  phase: 'fetching' | 'computing' | 'uploading';
}

export interface ClientState {
  phase: Phase;
  volunteerId: string | null;
  credit: number;
  /** Results the coordinator accepted for validation. */
  unitsDone: number;
  unitsRejected: number;
  current: CurrentUnit | null;
  /** Speed of the last unit's compute, GFLOP/s. */
  lastGflops: number | null;
  lastError: string | null;
  /** Shard bytes from peers vs the coordinator, and served to peers. */
  traffic: TrafficStats;
  /** Whether this page has joined the peer-to-peer swarm. */
  p2p: 'off' | 'joining' | 'on';
}

/** Runs one unit. `shard` fetches an on-demand input (an ONNX model) as sha-256-checked raw bytes. */
export type Compute = (wu: WorkUnitSpec, inputs: Record<string, Float32Array>, shard: (sha: string) => Promise<Uint8Array>) => Promise<Float32Array>;

export interface ClientOptions {
  /** Coordinator base URL (http or https). */
  url: string;
  identity: Identity;
  device: DeviceInfo;
  name?: string;
  compute: Compute;
  onChange: (state: ClientState) => void;
  /** The IndexedDB shard cache; its onChange must call client.holdingsChanged. */
  cache: ShardCache;
  uploadBudget: UploadBudget;
}

export class CoordinatorClient {
  state: ClientState = {
    phase: 'connecting',
    volunteerId: null,
    credit: 0,
    unitsDone: 0,
    unitsRejected: 0,
    current: null,
    lastGflops: null,
    lastError: null,
    traffic: { fromPeers: 0, fromCoordinator: 0, servedToPeers: 0, peerFailures: 0, peerTransferMs: 0 },
    p2p: 'off',
  };
  private ws: WebSocket | null = null;
  private stopped = false;
  private retryMs = 1000;
  private readonly queue: { leaseId: string; wu: WorkUnitSpec; peers: ShardPeers }[] = [];
  private readonly cancelled = new Set<string>();
  private working = false;
  private readonly shards: ShardSource;

  constructor(private readonly opts: ClientOptions) {
    this.shards = new ShardSource({
      cache: opts.cache,
      url: opts.url,
      reportBadPeer: (peerId, sha256, reason) => this.send({ type: 'bad-peer', peerId, sha256, reason }),
      onStats: (traffic) => this.update({ traffic }),
    });
  }

  /** The shard cache gained or lost shards: the coordinator's tracker is told. */
  holdingsChanged(change: HoldingsChange) {
    if (this.state.p2p === 'on') this.send({ type: 'holdings', ...change });
  }

  private update(patch: Partial<ClientState>) {
    this.state = { ...this.state, ...patch };
    this.opts.onChange(this.state);
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.queue.length = 0;
    this.leaveSwarm();
    this.ws?.close(1000, 'volunteer stopped');
    this.update({ phase: 'stopped', current: null });
  }

  private send(msg: ClientMessage | Uint8Array) {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.ws.send(msg instanceof Uint8Array ? (msg as Uint8Array<ArrayBuffer>) : JSON.stringify(msg));
  }

  private connect() {
    this.update({ phase: 'connecting' });
    const ws = new WebSocket(this.opts.url.replace(/^http/, 'ws') + '/ws');
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      let msg: ServerMessage;
      try {
        msg = ServerMessage.parse(JSON.parse(ev.data));
      } catch {
        return; // a newer coordinator's message we do not know: ignore it
      }
      void this.onMessage(msg).catch((err: Error) => this.update({ lastError: err.message }));
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.queue.length = 0;
      this.leaveSwarm();
      if (this.stopped) return;
      this.update({ phase: 'disconnected' });
      setTimeout(() => {
        if (!this.stopped) this.connect();
      }, this.retryMs);
      this.retryMs = Math.min(30_000, this.retryMs * 2);
    };
  }

  private async onMessage(msg: ServerMessage) {
    switch (msg.type) {
      case 'challenge': {
        const signature = await this.opts.identity.sign(helloSigningMessage(msg.nonce));
        this.send({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          publicKey: this.opts.identity.publicKeyRaw,
          signature,
          name: this.opts.name,
          device: this.opts.device,
        });
        break;
      }
      case 'welcome':
        this.retryMs = 1000;
        this.update({ phase: 'waiting', volunteerId: msg.volunteerId, credit: msg.credit });
        this.send({ type: 'ready', slots: 1 });
        if (msg.p2p) void this.joinSwarm(msg.p2p);
        break;
      case 'assign':
        this.queue.push({ leaseId: msg.lease.id, wu: msg.wu, peers: msg.peers ?? {} });
        void this.drain();
        break;
      case 'lease-cancelled':
        this.cancelled.add(msg.leaseId);
        break;
      case 'result-ack':
        if (msg.accepted) this.update({ unitsDone: this.state.unitsDone + 1 });
        else this.update({ unitsRejected: this.state.unitsRejected + 1, lastError: `result rejected: ${msg.reason}` });
        break;
      case 'credit':
        this.update({ credit: msg.total });
        break;
      case 'error':
        this.update({ lastError: `${msg.code}: ${msg.message}` });
        break;
    }
  }

  private async drain() {
    if (this.working) return;
    this.working = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        try {
          await this.run(next.leaseId, next.wu, next.peers);
        } catch (err) {
          const reason = (err as Error).message.slice(0, 500);
          this.update({ lastError: reason });
          this.send({ type: 'failure', leaseId: next.leaseId, reason });
        }
      }
    } finally {
      this.working = false;
      this.update({ current: null, phase: this.stopped ? 'stopped' : this.ws?.readyState === WebSocket.OPEN ? 'waiting' : this.state.phase });
    }
  }

  private setUnit(wu: WorkUnitSpec, phase: CurrentUnit['phase']) {
    const shape = wu.kind === 'matmul' ? `${wu.params.m}×${wu.params.k} · ${wu.params.k}×${wu.params.n}` : `${wu.params.items} items`;
    this.update({
      phase,
      current: { wuId: wu.id, jobId: wu.jobId, kind: wu.kind, shape, flops: wu.flops, phase },
    });
  }

  /** Joins the swarm under the peer id this session was given; WebRTC trouble only means no peers. */
  private async joinSwarm(config: P2pConfig) {
    this.leaveSwarm();
    const ws = this.ws;
    this.update({ p2p: 'joining' });
    const url = new URL(this.opts.url);
    try {
      const swarm = await Swarm.open({
        peerId: config.peerId,
        host: url.hostname,
        port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
        secure: url.protocol === 'https:',
        path: config.path,
        iceServers: config.iceServers,
        serve: (sha) => this.shards.forPeer(sha),
        budget: this.opts.uploadBudget,
        onServed: (bytes) => this.shards.countServed(bytes),
        onReceived: (_bytes, ms) => this.shards.countTransferTime(ms),
      });
      if (this.ws !== ws || this.stopped) return swarm.close();
      this.shards.swarm = swarm;
      this.update({ p2p: 'on' });
      this.send({ type: 'peer-ready' });
      const held = await this.opts.cache.keys();
      for (let i = 0; i < held.length; i += P2P_LIMITS.maxHoldingsPerMessage) {
        this.send({ type: 'holdings', add: held.slice(i, i + P2P_LIMITS.maxHoldingsPerMessage), remove: [] });
      }
    } catch (err) {
      this.update({ p2p: 'off', lastError: `peer-to-peer unavailable: ${(err as Error).message}` });
    }
  }

  private leaveSwarm() {
    this.shards.swarm?.close();
    this.shards.swarm = null;
    if (this.state.p2p !== 'off') this.update({ p2p: 'off' });
  }

  private async run(leaseId: string, wu: WorkUnitSpec, peers: ShardPeers) {
    this.setUnit(wu, 'fetching');
    const inputs: Record<string, Float32Array> = {};
    let fromPeers = 0;
    let fromCoordinator = 0;
    const fetchShard = async (sha: string) => {
      const { bytes, origin } = await this.shards.get(sha, peers[sha] ?? []);
      if (origin === 'peer') fromPeers += bytes.length;
      if (origin === 'coordinator') fromCoordinator += bytes.length;
      return bytes;
    };
    const onDemand = onDemandInputs(wu);
    for (const [name, sha] of Object.entries(wu.inputs)) {
      if (onDemand.includes(name)) continue; // compute fetches it only if it needs it (an ONNX model it already holds)
      inputs[name] = parseNpy(await fetchShard(sha)).data.slice(); // a copy: it is transferred to the worker, the bytes may be serving peers
    }
    if (this.cancelled.delete(leaseId)) return;
    this.setUnit(wu, 'computing');
    const t0 = performance.now();
    const out = await this.opts.compute(wu, inputs, fetchShard);
    this.send({ type: 'shard-traffic', leaseId, fromPeers, fromCoordinator });
    const seconds = (performance.now() - t0) / 1000;
    this.update({ lastGflops: wu.flops / 1e9 / Math.max(seconds, 1e-6) });
    if (this.cancelled.delete(leaseId)) return;
    this.setUnit(wu, 'uploading');
    const payload = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    const sha = await sha256Hex(payload);
    const signature = await this.opts.identity.sign(resultSigningMessage(wu.id, sha));
    this.send(encodeResultFrame({ type: 'result', leaseId, wuId: wu.id, sha256: sha, signature }, payload));
  }
}
