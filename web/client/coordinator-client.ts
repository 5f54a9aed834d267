// The page's session with the coordinator: proves the identity, asks for work, gets input shards
// (cache, then peers, then the coordinator; see web/p2p/), has the compute worker run each unit,
// and uploads signed results. Reconnects on its own with backoff.
import { reportedTrainLoss } from '../../coordinator/protocol/train-loop';
import { parseNpy } from '../../coordinator/protocol/npy';
import {
  encodeResultFrame,
  helloSigningMessage,
  onDemandInputs,
  P2P_LIMITS,
  PROTOCOL_VERSION,
  resultSigningMessage,
  serverMessages,
  type ServerMessage,
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
import type { Compute } from '../worker/api';
import { sha256Hex } from '../../coordinator/protocol/sha256';
import type { HoldingsChange, ShardCache } from '../store/shard-cache';

export type Phase = 'connecting' | 'waiting' | 'paused' | 'fetching' | 'computing' | 'uploading' | 'disconnected' | 'stopped';

/**
 * Why the client is not taking new work: the volunteer pressed Pause, the tab is hidden, the device
 * runs on battery, the teacher paused the room, or the throttle's rest between units. A unit already
 * being computed finishes; no new one is asked for while any reason holds.
 */
export type PauseReason = 'user' | 'hidden' | 'battery' | 'room' | 'throttle';

export interface RoomState {
  code: string;
  name: string;
  paused: boolean;
}

export interface CurrentUnit {
  wuId: string;
  jobId: string;
  kind: string;
  shape: string;
  flops: number;
  phase: 'fetching' | 'computing' | 'uploading';
  /** When the unit arrived (performance.now()), for its progress display. */
  startedAt: number;
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
  /** Active pause reasons (empty while running). */
  paused: PauseReason[];
  room: RoomState | null;
  /** Shard bytes from peers vs the coordinator, and served to peers. */
  traffic: TrafficStats;
  /** Whether this page has joined the peer-to-peer swarm. */
  p2p: 'off' | 'joining' | 'on';
  /** The last training unit this page computed: its job's round (1-based) of all, and its mean training loss. */
  training: { jobId: string; round: number; rounds: number; loss: number } | null;
}


export interface ClientOptions {
  /** Coordinator base URL (http or https). */
  url: string;
  identity: Identity;
  device: DeviceInfo;
  name?: string;
  /** Room code to join once connected (classroom rooms). */
  room?: string;
  /** Share of time spent computing, 0.05–1: after a unit that took t, rest t·(1−share)/share. */
  throttle?: number;
  compute: Compute;
  /**
   * Gets the compute worker ready for this unit (its runtime loaded, pipelines compiled) while its
   * inputs are fetched, so the unit's `computing` phase is the compute itself. Optional; never throws.
   */
  prepare?: (wu: WorkUnitSpec) => Promise<void>;
  onChange: (state: ClientState) => void;
  /** The IndexedDB shard cache; its onChange must call client.holdingsChanged. */
  cache: ShardCache;
  uploadBudget: UploadBudget;
  /** More RTCConfiguration fields for the swarm's connections (a native volunteer binds ICE to loopback). */
  rtcConfig?: Record<string, unknown>;
  /**
   * Restarts the compute worker: the only way to end a kernel that hangs (a GPU that stopped
   * answering, a runtime stuck in a loop). Called when a unit whose lease was cancelled is still
   * computing `abandonAfterMs` later, which frees the page for its next unit. Without it the client
   * waits for every unit however long it takes.
   */
  restartCompute?: () => Promise<void>;
  /** How long a unit whose lease was cancelled may still compute before the worker is restarted. */
  abandonAfterMs?: number;
}

/** Reconnect backoff: doubles from the first delay up to the cap, reset once welcomed again. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 15_000;

/** A cancelled unit still computing this long is abandoned (a replica cancelled late finishes sooner). */
const ABANDON_AFTER_MS = 5_000;

/** ±25% jitter, so thousands of volunteers do not reconnect in one burst after a restart. */
function jittered(ms: number): number {
  return Math.round(ms * (0.75 + Math.random() * 0.5));
}

/** The unit's lease was cancelled (or the client stopped) while its inputs were being fetched. */
class FetchAborted extends Error {
  override name = 'FetchAborted';
  constructor(wuId: string) {
    super(`stopped fetching the inputs of ${wuId}`);
  }
}

function clampThrottle(share: number): number {
  return Number.isFinite(share) ? Math.min(1, Math.max(0.05, share)) : 1;
}

/** A unit's problem size in words, e.g. `300×200 · 200×170` or `128 queries × 1024 keys, d 64`. */
export function describeShape(wu: WorkUnitSpec): string {
  if (wu.kind === 'matmul') {
    const { m, k, n } = wu.params;
    return `${m}×${k} · ${k}×${n}`;
  }
  if (wu.kind === 'onnx') return `${wu.params.items} items`;
  if (wu.kind === 'train') return `training: round ${wu.params.round + 1} of ${wu.params.rounds}, ${wu.params.steps} steps × ${wu.params.batchSize} rows`;
  const { rows, seq, d, causal } = wu.params;
  return `${rows} queries × ${seq} keys, d ${d}${causal ? ', causal' : ''}`;
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
    paused: [],
    room: null,
    traffic: { fromPeers: 0, fromCoordinator: 0, servedToPeers: 0, peerFailures: 0, peerTransferMs: 0 },
    p2p: 'off',
    training: null,
  };
  private readonly pauses = new Set<PauseReason>();
  private throttle: number;
  private device: DeviceInfo;
  private restTimer: ReturnType<typeof setTimeout> | null = null;
  private welcomed = false;
  private name: string | undefined;
  private ws: WebSocket | null = null;
  private stopped = false;
  private retryMs = RETRY_FIRST_MS;
  private readonly queue: { leaseId: string; wu: WorkUnitSpec; peers: ShardPeers }[] = [];
  private readonly cancelled = new Set<string>();
  /** Stops waiting for the inputs of the unit being fetched (its lease was cancelled, or we stopped). */
  private abortFetch: ((leaseId: string | null) => void) | null = null;
  /** The lease whose unit is computing now. */
  private computing: string | null = null;
  /** Starts the grace period of the unit being computed, when its lease is cancelled. */
  private abandonCompute: ((leaseId: string, stillAccepted: boolean) => void) | null = null;
  private working = false;
  private readonly shards: ShardSource;

  constructor(private readonly opts: ClientOptions) {
    this.shards = new ShardSource({
      cache: opts.cache,
      url: opts.url,
      reportBadPeer: (peerId, sha256, reason) => this.send({ type: 'bad-peer', peerId, sha256, reason }),
      reportServed: (peerId, sha256) => this.send({ type: 'peer-served', peerId, sha256 }),
      onStats: (traffic) => this.update({ traffic }),
    });
    this.throttle = clampThrottle(opts.throttle ?? 1);
    this.name = opts.name;
    this.device = opts.device;
  }

  /** The device changed (measured in the background, switched backend): the coordinator and later hellos hear it. */
  updateDevice(device: DeviceInfo) {
    this.device = device;
    if (this.welcomed) this.send({ type: 'device', device });
  }

  /** The shard cache gained or lost shards: the coordinator's tracker is told. */
  holdingsChanged(change: HoldingsChange) {
    if (this.state.p2p === 'on') this.send({ type: 'holdings', ...change });
  }

  /** Turns one pause reason on or off; tells the coordinator how many units it wants now. */
  setPause(reason: PauseReason, on: boolean) {
    if (on === this.pauses.has(reason)) return;
    if (on) this.pauses.add(reason);
    else this.pauses.delete(reason);
    if (reason === 'throttle' && !on && this.restTimer) {
      clearTimeout(this.restTimer);
      this.restTimer = null;
    }
    const idle = !this.working && (this.state.phase === 'waiting' || this.state.phase === 'paused');
    this.update({ paused: [...this.pauses], ...(idle && { phase: this.pauses.size ? 'paused' : 'waiting' }) });
    this.announce();
  }

  /** A new display name: reconnects so the coordinator hears it in the next hello. */
  rename(name: string | null) {
    this.name = name ?? undefined;
    if (!this.stopped) this.ws?.close(1000, 'renamed');
  }

  setThrottle(share: number) {
    this.throttle = clampThrottle(share);
    if (this.throttle >= 1) this.setPause('throttle', false);
  }

  /** Tells the coordinator (and the room's board) whether to send work, and how fast we are. */
  private announce() {
    if (!this.welcomed) return;
    this.send({ type: 'ready', slots: this.pauses.size ? 0 : 1 });
    this.send({ type: 'status', gflops: this.state.lastGflops, paused: this.pauses.size > 0 });
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
    this.setPause('throttle', false);
    this.queue.length = 0;
    this.abortFetch?.(null);
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
      let messages: ServerMessage[];
      try {
        messages = serverMessages(JSON.parse(ev.data));
      } catch {
        return; // a newer coordinator's message we do not know: ignore it
      }
      for (const msg of messages) void this.onMessage(msg).catch((err: Error) => this.update({ lastError: err.message }));
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.welcomed = false;
      this.queue.length = 0;
      this.abortFetch?.(null); // the coordinator has put this session's leases back in the queue
      this.leaveSwarm();
      if (this.stopped) return;
      this.update({ phase: 'disconnected' });
      setTimeout(() => {
        if (!this.stopped) this.connect();
      }, jittered(this.retryMs));
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
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
          name: this.name,
          device: this.device,
        });
        break;
      }
      case 'welcome':
        this.retryMs = RETRY_FIRST_MS;
        this.welcomed = true;
        this.update({ phase: this.pauses.size ? 'paused' : 'waiting', volunteerId: msg.volunteerId, credit: msg.credit });
        if (this.opts.room) this.send({ type: 'join-room', code: this.opts.room });
        this.announce();
        if (msg.p2p) void this.joinSwarm(msg.p2p);
        break;
      case 'room':
        this.update({ room: { code: msg.code, name: msg.name, paused: msg.paused } });
        this.setPause('room', msg.paused);
        break;
      case 'assign':
        this.queue.push({ leaseId: msg.lease.id, wu: msg.wu, peers: msg.peers ?? {} });
        void this.drain();
        break;
      case 'lease-cancelled':
        // A unit computing past its deadline is still uploaded when done (the coordinator checks and
        // credits a late result): otherwise a unit slower than its lease would never finish anywhere.
        if (!(msg.stillAccepted && this.computing === msg.leaseId)) this.cancelled.add(msg.leaseId);
        this.abortFetch?.(msg.leaseId);
        this.abandonCompute?.(msg.leaseId, msg.stillAccepted ?? false);
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
        if (this.cancelled.delete(next.leaseId)) continue; // cancelled while it waited: not even fetched
        if (this.pauses.size && !this.pauses.has('throttle')) {
          // Paused after this unit was sent: hand it straight to someone else.
          this.send({ type: 'failure', leaseId: next.leaseId, reason: 'volunteer paused' });
          continue;
        }
        try {
          await this.run(next.leaseId, next.wu, next.peers);
        } catch (err) {
          if (err instanceof FetchAborted) {
            this.cancelled.delete(next.leaseId); // the coordinator already took the lease back
            continue;
          }
          const reason = (err as Error).message.slice(0, 500);
          this.update({ lastError: reason });
          this.send({ type: 'failure', leaseId: next.leaseId, reason });
        }
      }
    } finally {
      this.working = false;
      const open = this.ws?.readyState === WebSocket.OPEN;
      this.update({ current: null, phase: this.stopped ? 'stopped' : open ? (this.pauses.size ? 'paused' : 'waiting') : this.state.phase });
    }
  }

  private setUnit(wu: WorkUnitSpec, phase: CurrentUnit['phase']) {
    const startedAt = this.state.current?.wuId === wu.id ? this.state.current.startedAt : performance.now();
    this.update({
      phase,
      current: { wuId: wu.id, jobId: wu.jobId, kind: wu.kind, shape: describeShape(wu), flops: wu.flops, phase, startedAt },
    });
  }

  /** Throttle: rest in proportion to the unit just computed, taking no work meanwhile. */
  private rest(seconds: number) {
    if (this.throttle >= 1 || this.stopped) return;
    const ms = (seconds * 1000 * (1 - this.throttle)) / this.throttle;
    this.setPause('throttle', true);
    this.restTimer = setTimeout(() => this.setPause('throttle', false), ms);
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
        token: config.token,
        host: url.hostname,
        port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
        secure: url.protocol === 'https:',
        path: config.path,
        iceServers: config.iceServers,
        rtcConfig: this.opts.rtcConfig,
        serve: (sha) => this.shards.forPeer(sha),
        budget: this.opts.uploadBudget,
        onServed: (bytes) => this.shards.countServed(bytes),
        onReceived: (_bytes, ms) => this.shards.countTransferTime(ms),
      });
      if (this.ws !== ws || this.stopped) return swarm.close();
      this.shards.swarm = swarm;
      this.update({ p2p: 'on' });
      this.send({ type: 'peer-ready' });
      // The tracker keeps at most maxClaimsPerPeer of a peer's holdings: announcing more costs both sides for nothing.
      const held = (await this.opts.cache.keys()).slice(0, P2P_LIMITS.maxClaimsPerPeer);
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

  /**
   * The unit's result; null when its lease was cancelled and it was still computing a grace period
   * later, in which case the compute worker has been restarted (the hung kernel ends with it). The
   * grace is `abandonAfterMs`, or, when a late result still counts, as long again as it has run.
   */
  private async computeUnlessAbandoned(leaseId: string, wu: WorkUnitSpec, inputs: Record<string, Float32Array>, shard: (sha: string) => Promise<Uint8Array>) {
    const computing = this.opts.compute(wu, inputs, shard);
    this.computing = leaseId;
    const restart = this.opts.restartCompute;
    if (!restart) return computing.finally(() => (this.computing = null));
    const started = performance.now();
    let graceMs = this.opts.abandonAfterMs ?? ABANDON_AFTER_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const abandoned = new Promise<null>((resolve) => {
      const start = (stillAccepted: boolean) => {
        if (timer) return;
        if (stillAccepted) graceMs = Math.max(graceMs, performance.now() - started);
        timer = setTimeout(() => resolve(null), graceMs);
      };
      this.abandonCompute = (id, stillAccepted) => id === leaseId && start(stillAccepted);
    });
    try {
      const out = await Promise.race([computing, abandoned]);
      if (out === null) {
        computing.catch(() => undefined); // it ends with the worker, or never
        this.update({ lastError: `gave up ${wu.id}: its lease was cancelled and it was still computing ${(graceMs / 1000).toFixed(1)} s later; the compute worker restarted` });
        await restart();
      }
      return out;
    } finally {
      clearTimeout(timer);
      this.abandonCompute = null;
      this.computing = null;
    }
  }

  private async run(leaseId: string, wu: WorkUnitSpec, peers: ShardPeers) {
    this.setUnit(wu, 'fetching');
    const inputs: Record<string, Float32Array> = {};
    let fromPeers = 0;
    let fromCoordinator = 0;
    // Every peer attempt and the coordinator fallback are bounded, but should a fetch still hang,
    // the lease's deadline ends it: the coordinator reissues the unit and tells us, and we move on.
    const aborted = new Promise<never>((_, reject) => {
      this.abortFetch = (id) => (id === null || id === leaseId) && reject(new FetchAborted(wu.id));
    });
    aborted.catch(() => undefined);
    let fetching: string | null = null;
    const fetchShard = async (sha: string) => {
      fetching = sha;
      const { bytes, origin } = await Promise.race([this.shards.get(sha, peers[sha] ?? []), aborted]);
      if (origin === 'peer') fromPeers += bytes.length;
      if (origin === 'coordinator') fromCoordinator += bytes.length;
      return bytes;
    };
    const onDemand = onDemandInputs(wu);
    const ready = this.opts.prepare?.(wu).catch(() => undefined);
    try {
      for (const [name, sha] of Object.entries(wu.inputs)) {
        if (onDemand.includes(name)) continue; // compute fetches it only if it needs it (an ONNX model it already holds)
        inputs[name] = parseNpy(await fetchShard(sha)).data.slice(); // a copy: it is transferred to the worker, the bytes may be serving peers
      }
      fetching = null;
      await Promise.race([ready, aborted]);
    } catch (err) {
      if (err instanceof FetchAborted && fetching) this.shards.abandon(fetching);
      throw err;
    } finally {
      this.abortFetch = null;
    }
    if (this.cancelled.delete(leaseId)) return;
    this.setUnit(wu, 'computing');
    const t0 = performance.now();
    const out = await this.computeUnlessAbandoned(leaseId, wu, inputs, fetchShard);
    if (out === null) return void this.cancelled.delete(leaseId); // abandoned, and the worker restarted
    this.send({ type: 'shard-traffic', leaseId, fromPeers, fromCoordinator });
    const seconds = (performance.now() - t0) / 1000;
    this.update({ lastGflops: wu.flops / 1e9 / Math.max(seconds, 1e-6) });
    if (wu.kind === 'train') {
      const loss = reportedTrainLoss(wu.params.compress, out);
      this.update({ training: { jobId: wu.jobId, round: wu.params.round + 1, rounds: wu.params.rounds, loss } });
    }
    if (this.welcomed) this.send({ type: 'status', gflops: this.state.lastGflops, paused: this.pauses.size > 0 });
    this.rest(seconds); // before the upload, so the coordinator sends no next unit meanwhile
    if (this.cancelled.delete(leaseId)) return;
    this.setUnit(wu, 'uploading');
    const payload = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    const sha = await sha256Hex(payload);
    const signature = await this.opts.identity.sign(resultSigningMessage(wu.id, sha));
    this.send(encodeResultFrame({ type: 'result', leaseId, wuId: wu.id, sha256: sha, signature }, payload));
  }
}
