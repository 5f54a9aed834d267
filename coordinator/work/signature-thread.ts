// Ed25519 verification of result signatures on a worker thread. At thousands of results a second
// it is the coordinator's largest single CPU cost (~90 µs each); on its own thread it runs beside
// the event loop instead of inside it. Requests made in one event-loop turn travel as one message.
import { Worker } from 'node:worker_threads';
import { verifySignature, volunteerPublicKey } from '../access/keys.js';

// Plain JavaScript, evaluated as the thread's source: no loader or build step involved.
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
const keys = new Map();
function keyOf(raw) {
  let k = keys.get(raw);
  if (!k) {
    k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' });
    if (keys.size > 100000) keys.clear();
    keys.set(raw, k);
  }
  return k;
}
parentPort.on('message', ({ batch, requests }) => {
  const ok = requests.map(([raw, message, signature]) => {
    try {
      return signature.length === 64 && verify(null, message, keyOf(raw), signature);
    } catch {
      return false;
    }
  });
  parentPort.postMessage({ batch, ok });
});
`;

type Request = [publicKeyRaw: string, message: Uint8Array, signature: Uint8Array];

/** The thread's check, here: for requests a thread that died can no longer answer. */
function verifyHere([raw, message, signature]: Request): boolean {
  const key = volunteerPublicKey(raw);
  return key !== null && verifySignature(key, message, Buffer.from(signature).toString('base64url'));
}

class SignatureThread {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { requests: Request[]; resolvers: ((ok: boolean) => void)[] }>();
  private requests: Request[] = [];
  private resolvers: ((ok: boolean) => void)[] = [];
  private nextBatch = 0;
  private dead = false;

  constructor() {
    this.worker = new Worker(THREAD_SOURCE, { eval: true });
    this.worker.unref(); // never keeps a process alive
    this.worker.on('message', ({ batch, ok }: { batch: number; ok: boolean[] }) => {
      const resolvers = this.waiting.get(batch)?.resolvers ?? [];
      this.waiting.delete(batch);
      resolvers.forEach((resolve, i) => resolve(ok[i]));
    });
    this.worker.on('error', () => this.died());
    this.worker.on('exit', () => this.died());
  }

  /**
   * What it was asked is checked here instead: answering `false` would reject honest results as
   * forged (and strike their volunteers), and answering nothing would leave them waiting forever.
   */
  private died() {
    this.dead = true;
    if (thread === this) thread = null; // the next request starts a fresh thread
    for (const { requests, resolvers } of this.waiting.values()) requests.forEach((r, i) => resolvers[i](verifyHere(r)));
    this.waiting.clear();
  }

  verify(request: Request): Promise<boolean> {
    return new Promise((resolve) => {
      this.requests.push(request);
      this.resolvers.push(resolve);
      if (this.requests.length === 1) setImmediate(() => this.send());
    });
  }

  private send() {
    const batch = this.nextBatch++;
    const requests = this.requests;
    this.waiting.set(batch, { requests, resolvers: this.resolvers });
    this.requests = [];
    this.resolvers = [];
    if (this.dead) this.died();
    else this.worker.postMessage({ batch, requests });
  }

  /** Ends the thread (tests: a thread that dies with requests in flight). */
  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

let thread: SignatureThread | null = null;

/**
 * Verifies an Ed25519 signature (base64url) by a raw public key (base64url) over `message`, off
 * the event loop. Malformed keys or signatures verify as false.
 */
export function verifyOffThread(publicKeyRaw: string, message: Uint8Array, signatureB64Url: string): Promise<boolean> {
  const signature = Buffer.from(signatureB64Url, 'base64url');
  thread ??= new SignatureThread();
  return thread.verify([publicKeyRaw, message, new Uint8Array(signature)]);
}

/** Ends the current thread, as if it had crashed (tests); the next request starts a new one. */
export function terminateSignatureThread(): Promise<number> | undefined {
  return thread?.terminate();
}
