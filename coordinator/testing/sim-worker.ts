// A worker in Node that speaks the real protocol with its own Ed25519 identity. It computes matmul
// and attention units in float32 like a device, each worker summing in its own order
// (device-math.ts), so honest replicas differ in their last bits as different GPUs' do; train units
// with the CPU reference and ONNX units on onnxruntime-node; or with whatever `compute` it is
// given: tests use it for cheaters, the load bench for many fast workers (with the reference).
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import WebSocket from 'ws';
import { attentionReference } from '../jobs/attention.js';
import { matmulReference } from '../jobs/matmul.js';
import { trainUnitReference } from '../jobs/train.js';
import { parseNpy } from '../protocol/npy.js';
import {
  encodeResultBatchFrame,
  encodeResultFrame,
  helloSigningMessage,
  onDemandInputs,
  PROTOCOL_VERSION,
  RESULT_BATCH_LIMITS,
  resultBatchSigningMessage,
  resultSigningMessage,
  serverMessages,
  type ServerBatch,
  type ServerMessage,
  type MatmulParams,
  type WorkUnitSpec,
} from '../protocol/index.js';
import { sha256Hex } from '../store/shards.js';
import { deviceCompute, SUM_ORDERS, type SumOrder } from './device-math.js';

export type Compute = (wu: WorkUnitSpec, inputs: Record<string, Float32Array>) => Float32Array | Promise<Float32Array>;

/** A matmul unit's parameters (tests that compute matmuls themselves); throws for other kinds. */
export function matmulParams(wu: WorkUnitSpec): MatmulParams {
  if (wu.kind !== 'matmul') throw new Error(`expected a matmul unit, got ${wu.kind}`);
  return wu.params;
}

/**
 * The CPU reference of the unit's kind (float64 sums rounded once; ONNX: see `onnxRuntimeCompute`):
 * the ground truth, and what a worker that must match it bit for bit returns.
 */
export const honestCompute: Compute = (wu, inputs) => {
  if (wu.kind === 'matmul') return matmulReference(inputs.a, inputs.b, wu.params.m, wu.params.k, wu.params.n);
  if (wu.kind === 'attention') return attentionReference(inputs.q, inputs.k, inputs.v, wu.params);
  if (wu.kind === 'train') return trainUnitReference(wu.params, inputs.params, inputs.x, inputs.y);
  throw new Error(`sim-worker does not compute ${wu.kind} units`);
};

type InferenceSession = import('onnxruntime-node').InferenceSession;

/**
 * `honestCompute`, plus ONNX units on onnxruntime-node's CPU EP (loaded on the first
 * ONNX unit), with one session per model kept for the next unit of that model. A sim worker without
 * its own `compute` uses it; it gets ONNX units only when its `kinds` include 'onnx'.
 */
export function onnxRuntimeCompute(url: string): Compute {
  const sessions = new Map<string, Promise<InferenceSession>>();
  return async (wu, inputs) => {
    if (wu.kind !== 'onnx') return honestCompute(wu, inputs);
    const ort = await import('onnxruntime-node');
    const sha = wu.params.model;
    let session = sessions.get(sha);
    if (!session) {
      session = (async () => {
        const res = await fetch(`${url}/shards/${sha}`);
        if (!res.ok) throw new Error(`model ${sha}: HTTP ${res.status}`);
        return ort.InferenceSession.create(new Uint8Array(await res.arrayBuffer()));
      })();
      sessions.set(sha, session);
      session.catch(() => sessions.delete(sha));
    }
    const feeds = Object.fromEntries(wu.params.inputs.map((t) => [t.name, new ort.Tensor('float32', inputs[t.name], t.shape)]));
    const out = await (await session).run(feeds);
    // The unit's output: every model output's values, flattened and concatenated in params order.
    const flat = new Float32Array(wu.outputBytes / 4);
    let at = 0;
    for (const o of wu.params.outputs) {
      const data = out[o.name].data as Float32Array;
      flat.set(data, at);
      at += data.length;
    }
    return flat;
  };
}

/** Matmul and attention as a device summing in `order` would compute them; other kinds by `rest`. */
export function deviceLikeCompute(order: SumOrder, rest: Compute): Compute {
  const device = deviceCompute(order);
  return (wu, inputs) => (wu.kind === 'matmul' || wu.kind === 'attention' ? device(wu, inputs) : rest(wu, inputs));
}

/**
 * What a worker does with a computed output. The default signs and sends it for its own lease;
 * adversaries (adversary-workers.ts) replay, misaddress, forge or flood instead.
 */
/** One finished unit on its way to the coordinator. */
export interface OutgoingResult {
  leaseId: string;
  wuId: string;
  payload: Uint8Array;
}

export type Submit = (worker: SimWorker, lease: { leaseId: string; wu: WorkUnitSpec }, output: Uint8Array) => void;

export interface SimWorkerOptions {
  /** Coordinator base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  name?: string;
  compute?: Compute;
  slots?: number;
  identity?: KeyObject;
  submit?: Submit;
  /** False: never answer the coordinator's pings (a frozen or vanished machine). */
  autoPong?: boolean;
  /**
   * How the default compute sums (device-math.ts); absent: each new worker takes the next order in
   * SUM_ORDERS, so any two workers made one after the other sum differently.
   */
  sumOrder?: SumOrder;
  /** Parsed input shards, shareable between many workers in one process (the load bench). */
  shardCache?: Map<string, Float32Array | Promise<Float32Array>>;
  /** False: do not keep every message in `messages` (long runs). */
  keepMessages?: boolean;
  onMessage?: (msg: ServerMessage) => void;
  /** False: trust the coordinator's messages without schema checks (saves the load bench CPU). */
  validateMessages?: boolean;
  /** Job kinds it reports it can run (DeviceInfo.kinds); absent: every kind that is not opt-in. */
  kinds?: string[];
  /**
   * How long a finished result may wait for the worker's other slots to finish so they share one
   * frame and one signature (default 0: only results finished in the same turn share one).
   */
  batchLingerMs?: number;
}

export class SimWorker {
  private static made = 0;
  readonly privateKey: KeyObject;
  /** How its default compute sums (ignored when it was given a `compute`). */
  readonly sumOrder: SumOrder;
  private readonly compute: Compute;
  readonly publicKeyRaw: string;
  volunteerId = '';
  credit = 0;
  readonly messages: ServerMessage[] = [];
  /** The receipts (entry, seal, audit path) the coordinator sent with each credit message. */
  readonly receipts: NonNullable<Extract<ServerMessage, { type: 'credit' }>['receipt']>[] = [];
  /** Set once the coordinator closed this worker's connection. */
  closed: { code: number; reason: string } | null = null;
  /** Result frames sent, and results in them (the load bench's results per frame). */
  framesSent = 0;
  resultsSent = 0;
  private ws: WebSocket | null = null;
  private readonly ready: OutgoingResult[] = [];
  private cancelFlush: (() => void) | null = null;
  private readonly shardCache: Map<string, Float32Array | Promise<Float32Array>>;

  constructor(private readonly opts: SimWorkerOptions) {
    this.shardCache = opts.shardCache ?? new Map();
    this.sumOrder = opts.sumOrder ?? SUM_ORDERS[SimWorker.made++ % SUM_ORDERS.length];
    this.compute = opts.compute ?? deviceLikeCompute(this.sumOrder, onnxRuntimeCompute(opts.url));
    this.privateKey = opts.identity ?? generateKeyPairSync('ed25519').privateKey;
    const jwk = this.privateKey.export({ format: 'jwk' });
    this.publicKeyRaw = String(jwk.x);
  }

  /** The messages of one type received so far (with `keepMessages`, the default). */
  received<T extends ServerMessage['type']>(type: T): Extract<ServerMessage, { type: T }>[] {
    return this.messages.filter((m): m is Extract<ServerMessage, { type: T }> => m.type === type);
  }

  /** Connects, proves its identity and declares itself ready; resolves on welcome. */
  connect(): Promise<void> {
    const ws = new WebSocket(this.opts.url.replace(/^http/, 'ws') + '/ws', { autoPong: this.opts.autoPong ?? true });
    this.ws = ws;
    return new Promise((resolve, reject) => {
      ws.on('error', reject);
      ws.on('close', (code, reason) => {
        this.closed = { code, reason: String(reason) };
        reject(new Error(`closed before welcome: ${code} ${String(reason)}`));
      });
      ws.on('message', (data) => {
        const raw = JSON.parse(String(data)) as ServerMessage | ServerBatch;
        const trusted = raw.type === 'batch' ? raw.messages : [raw];
        for (const msg of this.opts.validateMessages === false ? trusted : serverMessages(raw)) this.handle(ws, msg, resolve);
      });
    });
  }

  private handle(ws: WebSocket, msg: ServerMessage, welcomed: () => void) {
    if (this.opts.keepMessages !== false) this.messages.push(msg);
    this.opts.onMessage?.(msg);
    if (msg.type === 'challenge') {
      ws.send(
        JSON.stringify({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          publicKey: this.publicKeyRaw,
          signature: sign(null, helloSigningMessage(msg.nonce), this.privateKey).toString('base64url'),
          name: this.opts.name,
          device: { backend: 'cpu', adapter: 'node sim-worker', features: [], kinds: this.opts.kinds },
        }),
      );
    } else if (msg.type === 'welcome') {
      this.volunteerId = msg.volunteerId;
      this.credit = msg.credit;
      ws.send(JSON.stringify({ type: 'ready', slots: this.opts.slots ?? 1 }));
      welcomed();
    } else if (msg.type === 'assign') {
      void this.work(msg.lease.id, msg.wu).catch((err) => console.error('sim-worker:', err));
    } else if (msg.type === 'credit') {
      this.credit = msg.total;
      if (msg.receipt) this.receipts.push(msg.receipt);
    }
  }

  private fetchInput(sha: string): Promise<Float32Array> {
    const hit = this.shardCache.get(sha);
    if (hit) return Promise.resolve(hit);
    // The promise is cached, so workers sharing a cache fetch each shard once.
    const pending = (async () => {
      const res = await fetch(`${this.opts.url}/shards/${sha}`);
      if (!res.ok) throw new Error(`shard ${sha}: HTTP ${res.status}`);
      const data = parseNpy(new Uint8Array(await res.arrayBuffer())).data;
      this.shardCache.set(sha, data);
      return data;
    })();
    this.shardCache.set(sha, pending);
    pending.catch(() => this.shardCache.delete(sha));
    return pending;
  }

  private async work(leaseId: string, wu: WorkUnitSpec) {
    const inputs: Record<string, Float32Array> = {};
    for (const [name, sha] of Object.entries(wu.inputs)) if (!onDemandInputs(wu).includes(name)) inputs[name] = await this.fetchInput(sha);
    const out = await this.compute(wu, inputs);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    if (this.opts.submit) this.opts.submit(this, { leaseId, wu }, bytes);
    else this.queueResult({ leaseId, wuId: wu.id, payload: bytes });
  }

  /**
   * Finished results wait for each other, like a GPU box with several slots reporting what it has
   * done: they leave once every slot has one or `batchLingerMs` after the first — one as a `result`
   * frame, several as one `results` frame under one signature.
   */
  private queueResult(result: OutgoingResult) {
    this.ready.push(result);
    if (this.ready.length >= (this.opts.slots ?? 1)) this.flush();
    else if (this.ready.length === 1) {
      const linger = this.opts.batchLingerMs ?? 0;
      if (linger > 0) {
        const timer = setTimeout(() => this.flush(), linger);
        this.cancelFlush = () => clearTimeout(timer);
      } else {
        const immediate = setImmediate(() => this.flush());
        this.cancelFlush = () => clearImmediate(immediate);
      }
    }
  }

  private flush() {
    this.cancelFlush?.();
    this.cancelFlush = null;
    const ready = this.ready.splice(0);
    for (let i = 0; i < ready.length; i += RESULT_BATCH_LIMITS.maxItems) {
      const chunk = ready.slice(i, i + RESULT_BATCH_LIMITS.maxItems);
      if (chunk.length === 1) this.sendResult(chunk[0].leaseId, chunk[0].wuId, chunk[0].payload);
      else this.sendResults(chunk);
    }
  }

  /** Signs and sends a result frame (public so tests can send crafted ones). */
  sendResult(leaseId: string, wuId: string, payload: Uint8Array, signWith: KeyObject = this.privateKey) {
    const sha = sha256Hex(payload);
    const signature = sign(null, resultSigningMessage(wuId, sha), signWith).toString('base64url');
    this.sendFrame(encodeResultFrame({ type: 'result', leaseId, wuId, sha256: sha, signature }, payload), 1);
  }

  /** Signs and sends several results as one batched frame (public so tests can send crafted ones). */
  sendResults(results: readonly OutgoingResult[], signWith: KeyObject = this.privateKey) {
    const items = results.map(({ leaseId, wuId, payload }) => ({ leaseId, wuId, sha256: sha256Hex(payload), bytes: payload.length }));
    const signature = sign(null, resultBatchSigningMessage(items), signWith).toString('base64url');
    const frame = encodeResultBatchFrame({ type: 'results', items, signature }, results.map((r) => r.payload));
    this.sendFrame(frame, results.length);
  }

  private sendFrame(frame: Uint8Array, results: number) {
    this.framesSent++;
    this.resultsSent += results;
    this.ws?.send(frame);
  }

  send(raw: string | Uint8Array) {
    this.ws?.send(raw);
  }

  close() {
    this.ws?.close();
  }

  /** Drops the connection without a closing handshake, like a crashed machine. */
  kill() {
    this.ws?.terminate();
  }
}
