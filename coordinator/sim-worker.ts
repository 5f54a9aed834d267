// A worker in Node that speaks the real protocol with its own Ed25519 identity. It computes with the
// CPU reference, or with whatever `compute` it is given: tests use it for cheaters, the load bench
// for many fast workers.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import WebSocket from 'ws';
import { attentionReference } from './jobs/attention.js';
import { matmulReference } from './jobs/matmul.js';
import { parseNpy } from './npy.js';
import {
  encodeResultFrame,
  helloSigningMessage,
  PROTOCOL_VERSION,
  resultSigningMessage,
  ServerMessage,
  type WorkUnitSpec,
} from './protocol.js';
import { sha256Hex } from './shards.js';

export type Compute = (wu: WorkUnitSpec, inputs: Record<string, Float32Array>) => Float32Array | Promise<Float32Array>;

/** A matmul unit's [m, k, n] (tests that compute matmuls themselves); throws for other kinds. */
export function matmulDims(wu: WorkUnitSpec): [number, number, number] {
  if (wu.kind !== 'matmul') throw new Error(`expected a matmul unit, got ${wu.kind}`);
  return [wu.params.m, wu.params.k, wu.params.n];
}

/** The CPU reference of the unit's kind: what an honest worker returns. */
export const honestCompute: Compute = (wu, inputs) =>
  wu.kind === 'matmul'
    ? matmulReference(inputs.a, inputs.b, wu.params.m, wu.params.k, wu.params.n)
    : attentionReference(inputs.q, inputs.k, inputs.v, wu.params);

export interface SimWorkerOptions {
  /** Coordinator base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  name?: string;
  compute?: Compute;
  slots?: number;
  identity?: KeyObject;
}

export class SimWorker {
  readonly privateKey: KeyObject;
  readonly publicKeyRaw: string;
  volunteerId = '';
  credit = 0;
  readonly messages: ServerMessage[] = [];
  private ws: WebSocket | null = null;
  private readonly shardCache = new Map<string, Float32Array>();

  constructor(private readonly opts: SimWorkerOptions) {
    this.privateKey = opts.identity ?? generateKeyPairSync('ed25519').privateKey;
    const jwk = this.privateKey.export({ format: 'jwk' });
    this.publicKeyRaw = String(jwk.x);
  }

  /** Connects, proves its identity and declares itself ready; resolves on welcome. */
  connect(): Promise<void> {
    const ws = new WebSocket(this.opts.url.replace(/^http/, 'ws') + '/ws');
    this.ws = ws;
    return new Promise((resolve, reject) => {
      ws.on('error', reject);
      ws.on('message', (data) => {
        const msg = ServerMessage.parse(JSON.parse(String(data)));
        this.messages.push(msg);
        if (msg.type === 'challenge') {
          ws.send(
            JSON.stringify({
              type: 'hello',
              protocol: PROTOCOL_VERSION,
              publicKey: this.publicKeyRaw,
              signature: sign(null, helloSigningMessage(msg.nonce), this.privateKey).toString('base64url'),
              name: this.opts.name,
              device: { backend: 'cpu', adapter: 'node sim-worker', features: [] },
            }),
          );
        } else if (msg.type === 'welcome') {
          this.volunteerId = msg.volunteerId;
          this.credit = msg.credit;
          ws.send(JSON.stringify({ type: 'ready', slots: this.opts.slots ?? 1 }));
          resolve();
        } else if (msg.type === 'assign') {
          void this.work(msg.lease.id, msg.wu).catch((err) => console.error('sim-worker:', err));
        } else if (msg.type === 'credit') {
          this.credit = msg.total;
        }
      });
    });
  }

  private async fetchInput(sha: string): Promise<Float32Array> {
    const hit = this.shardCache.get(sha);
    if (hit) return hit;
    const res = await fetch(`${this.opts.url}/shards/${sha}`);
    if (!res.ok) throw new Error(`shard ${sha}: HTTP ${res.status}`);
    const data = parseNpy(new Uint8Array(await res.arrayBuffer())).data;
    this.shardCache.set(sha, data);
    return data;
  }

  private async work(leaseId: string, wu: WorkUnitSpec) {
    const inputs: Record<string, Float32Array> = {};
    for (const [name, sha] of Object.entries(wu.inputs)) inputs[name] = await this.fetchInput(sha);
    const out = await (this.opts.compute ?? honestCompute)(wu, inputs);
    this.sendResult(leaseId, wu.id, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
  }

  /** Signs and sends a result frame (public so tests can send crafted ones). */
  sendResult(leaseId: string, wuId: string, payload: Uint8Array, signWith: KeyObject = this.privateKey) {
    const sha = sha256Hex(payload);
    const signature = sign(null, resultSigningMessage(wuId, sha), signWith).toString('base64url');
    this.ws?.send(encodeResultFrame({ type: 'result', leaseId, wuId, sha256: sha, signature }, payload));
  }

  send(raw: string | Uint8Array) {
    this.ws?.send(raw);
  }

  close() {
    this.ws?.close();
  }
}
