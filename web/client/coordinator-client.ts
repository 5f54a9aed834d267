// The page's session with the coordinator: proves the identity, asks for work, fetches and checks
// input shards, has the compute worker run each unit, and uploads signed results. Reconnects on
// its own with backoff.
import { parseNpy } from '../../coordinator/npy';
import {
  encodeResultFrame,
  helloSigningMessage,
  PROTOCOL_VERSION,
  resultSigningMessage,
  ServerMessage,
  type ClientMessage,
  type DeviceInfo,
  type WorkUnitSpec,
} from '../../coordinator/protocol';
import type { Identity } from '../store/identity';

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
}

export type Compute = (wu: WorkUnitSpec, inputs: Record<string, Float32Array>) => Promise<Float32Array>;

export interface ClientOptions {
  /** Coordinator base URL (http or https). */
  url: string;
  identity: Identity;
  device: DeviceInfo;
  name?: string;
  compute: Compute;
  onChange: (state: ClientState) => void;
}

const SHARD_CACHE_BYTES = 256 * 1024 * 1024;

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A unit's problem size in words, e.g. `300×200 · 200×170` or `128 queries × 1024 keys, d 64`. */
export function describeShape(wu: WorkUnitSpec): string {
  if (wu.kind === 'matmul') {
    const { m, k, n } = wu.params;
    return `${m}×${k} · ${k}×${n}`;
  }
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
  };
  private ws: WebSocket | null = null;
  private stopped = false;
  private retryMs = 1000;
  private readonly queue: { leaseId: string; wu: WorkUnitSpec }[] = [];
  private readonly cancelled = new Set<string>();
  private working = false;
  private readonly shards = new Map<string, Float32Array>();
  private shardBytes = 0;

  constructor(private readonly opts: ClientOptions) {}

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
        break;
      case 'assign':
        this.queue.push({ leaseId: msg.lease.id, wu: msg.wu });
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
          await this.run(next.leaseId, next.wu);
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
    this.update({
      phase,
      current: { wuId: wu.id, jobId: wu.jobId, kind: wu.kind, shape: describeShape(wu), flops: wu.flops, phase },
    });
  }

  private async run(leaseId: string, wu: WorkUnitSpec) {
    this.setUnit(wu, 'fetching');
    const inputs: Record<string, Float32Array> = {};
    for (const [name, sha] of Object.entries(wu.inputs)) inputs[name] = (await this.shard(sha)).slice(); // the copy is transferred
    if (this.cancelled.delete(leaseId)) return;
    this.setUnit(wu, 'computing');
    const t0 = performance.now();
    const out = await this.opts.compute(wu, inputs);
    const seconds = (performance.now() - t0) / 1000;
    this.update({ lastGflops: wu.flops / 1e9 / Math.max(seconds, 1e-6) });
    if (this.cancelled.delete(leaseId)) return;
    this.setUnit(wu, 'uploading');
    const payload = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    const sha = await sha256Hex(payload);
    const signature = await this.opts.identity.sign(resultSigningMessage(wu.id, sha));
    this.send(encodeResultFrame({ type: 'result', leaseId, wuId: wu.id, sha256: sha, signature }, payload));
  }

  /** Fetches a shard once, checks its sha-256, and keeps it for the next units that need it. */
  private async shard(sha: string): Promise<Float32Array> {
    const hit = this.shards.get(sha);
    if (hit) return hit;
    const res = await fetch(`${this.opts.url}/shards/${sha}`);
    if (!res.ok) throw new Error(`could not fetch input ${sha.slice(0, 12)}…: HTTP ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if ((await sha256Hex(bytes)) !== sha) throw new Error(`input ${sha.slice(0, 12)}… failed its sha-256 check`);
    const data = parseNpy(bytes).data;
    this.shards.set(sha, data);
    this.shardBytes += data.byteLength;
    for (const [key, value] of this.shards) {
      if (this.shardBytes <= SHARD_CACHE_BYTES) break;
      this.shards.delete(key);
      this.shardBytes -= value.byteLength;
    }
    return data;
  }
}
