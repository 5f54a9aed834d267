// Malicious workers for the adversary suite: Node workers with their own valid Ed25519 identities
// that speak the real protocol and cheat in one way each. They never send a correct result for
// their own lease, so none of them deserves any credit.
import { generateKeyPairSync, sign } from 'node:crypto';
import { encodeResultBatchFrame, encodeResultFrame, resultBatchSigningMessage, resultSigningMessage, type WorkUnitSpec } from '../../protocol/index.js';
import { sha256Hex } from '../../store/shards.js';
import { honestCompute, type SimWorker, type SimWorkerOptions, type Submit } from '../../testing/sim-worker.js';
import { rng } from '../../testing/helpers.js';

export const STRATEGIES = ['random', 'constant', 'subtle', 'collude', 'replay', 'not-leased', 'forge', 'flood', 'batch-mixed', 'batch-forge'] as const;
export type Strategy = (typeof STRATEGIES)[number];

const f32 = (bytes: Uint8Array) => new Float32Array(bytes.slice().buffer);
const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function seedOf(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** 1% of elements (at least one) off by 1e-2 relative; deterministic per unit, so colluders agree. */
export function subtlyWrong(c: Float32Array, seed: number): Float32Array {
  const out = c.slice();
  const next = rng(seed);
  const count = Math.max(1, Math.round(out.length / 100));
  for (let e = 0; e < count; e++) {
    const i = Math.floor(next() * out.length);
    out[i] = out[i] === 0 ? 1e-3 : out[i] * 1.01;
  }
  return out;
}

const outputLength = (wu: WorkUnitSpec) => wu.outputBytes / 4;

/** The options (compute and/or submit) that make a SimWorker play `strategy`. */
export function adversaryOptions(strategy: Strategy): Pick<SimWorkerOptions, 'compute' | 'submit'> {
  switch (strategy) {
    case 'random':
      return { compute: (wu) => Float32Array.from({ length: outputLength(wu) }, () => Math.random() * 2 - 1) };
    case 'constant':
      return { compute: (wu) => new Float32Array(outputLength(wu)).fill(1) };
    case 'subtle':
      return { compute: (wu, inputs) => subtlyWrong(honestCompute(wu, inputs) as Float32Array, Math.floor(Math.random() * 2 ** 32)) };
    case 'collude':
      // Both members of a pair derive the same wrong answer from the unit id: they agree with each other.
      return { compute: (wu, inputs) => subtlyWrong(honestCompute(wu, inputs) as Float32Array, seedOf(wu.id)) };
    case 'replay':
      return { submit: replaySubmit() };
    case 'not-leased':
      return { submit: notLeasedSubmit };
    case 'forge':
      return { submit: forgeSubmit };
    case 'flood':
      return { submit: floodSubmit };
    case 'batch-mixed':
      return { submit: batched(mixedBatches()) };
    case 'batch-forge':
      return { submit: batched(forgedBatch) };
  }
}

type Finished = { leaseId: string; wu: WorkUnitSpec; output: Uint8Array };

/** Collects finished units and hands them to `send` two at a time (or one, if no second comes soon). */
function batched(send: (w: SimWorker, ready: Finished[]) => void): Submit {
  let ready: Finished[] = [];
  let timer: NodeJS.Timeout | null = null;
  return (w, { leaseId, wu }, output) => {
    ready.push({ leaseId, wu, output: output.slice() });
    const flush = () => {
      if (timer) clearTimeout(timer);
      timer = null;
      const now = ready;
      ready = [];
      send(w, now);
    };
    if (ready.length >= 2) flush();
    else timer ??= setTimeout(flush, 50);
  };
}

/**
 * First a batch whose sizes don't add up (giving its leases up after), then batches of wrong but
 * well-formed and properly signed results with one mis-addressed item among them: every item must
 * still meet the checks.
 */
function mixedBatches() {
  let sent = 0;
  return (w: SimWorker, ready: Finished[]) => {
    if (sent++ === 0) {
      const items = ready.map(({ leaseId, wu, output }, i) => ({ leaseId, wuId: wu.id, sha256: sha256Hex(output), bytes: output.length + (i === 0 ? 4 : 0) }));
      const signature = sign(null, resultBatchSigningMessage(items), w.privateKey).toString('base64url');
      w.send(encodeResultBatchFrame({ type: 'results', items, signature }, ready.map((r) => r.output)));
      for (const { leaseId } of ready) w.send(JSON.stringify({ type: 'failure', leaseId, reason: 'x' }));
      return;
    }
    const wrong = ready.map(({ leaseId, wu, output }) => ({ leaseId, wuId: wu.id, payload: bytesOf(subtlyWrong(f32(output), seedOf(leaseId))) }));
    const misaddressed = { leaseId: `l_${crypto.randomUUID()}`, wuId: ready[0].wu.id, payload: ready[0].output };
    w.sendResults([...wrong, misaddressed]);
  };
}

/** Correct outputs for its own leases, but the batch is signed with a key that is not its own. */
const forgedBatch = (w: SimWorker, ready: Finished[]) => {
  w.sendResults(
    ready.map(({ leaseId, wu, output }) => ({ leaseId, wuId: wu.id, payload: output })),
    generateKeyPairSync('ed25519').privateKey,
  );
};

/**
 * Keeps the first correct output it computes (giving that lease up), then sends it for every later
 * unit of the same size — never for the unit it belongs to, which would be an honest answer.
 */
function replaySubmit(): Submit {
  const kept = new Map<number, { wuId: string; bytes: Uint8Array }>();
  return (w, { leaseId, wu }, output) => {
    const old = kept.get(output.length);
    if (!old) kept.set(output.length, { wuId: wu.id, bytes: output.slice() });
    if (!old || old.wuId === wu.id) {
      w.send(JSON.stringify({ type: 'failure', leaseId, reason: 'keeping this one to replay' }));
      return;
    }
    w.sendResult(leaseId, wu.id, old.bytes);
  };
}

/** Sends a correct output under lease ids and units that were never leased to it. */
const notLeasedSubmit: Submit = (w, { leaseId, wu }, output) => {
  const otherWu = wu.id.replace(/\.(\d+)$/, (_m, i: string) => `.${Number(i) + 1}`);
  w.sendResult(`l_${crypto.randomUUID()}`, wu.id, output);
  w.sendResult(leaseId, otherWu, output);
  w.send(JSON.stringify({ type: 'failure', leaseId, reason: 'x' }));
};

/** Signs a correct output with a key that is not its own (as if it were another volunteer). */
const forgeSubmit: Submit = (w, { leaseId, wu }, output) => {
  const other = generateKeyPairSync('ed25519').privateKey;
  w.sendResult(leaseId, wu.id, output, other);
};

/** Floods: thousands of messages at once instead of a result. */
const floodSubmit: Submit = (w, { leaseId, wu }, output) => {
  const sha = sha256Hex(output);
  const signature = sign(null, resultSigningMessage(wu.id, sha), w.privateKey).toString('base64url');
  const wrong = bytesOf(f32(output).map((x) => x + 1));
  for (let i = 0; i < 3000; i++) {
    if (i % 3 === 0) w.send(JSON.stringify({ type: 'ready', slots: 1 }));
    else if (i % 3 === 1) w.send(encodeResultFrame({ type: 'result', leaseId, wuId: wu.id, sha256: sha, signature }, wrong));
    else w.send('{"type":"ready","slots":');
  }
};
