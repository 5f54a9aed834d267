// The CPU attention backend: onnxruntime-web's wasm EP running the attention graph built in code
// (Transpose, MatMul, scale, mask, Softmax, MatMul). Wire it to the attention job kind's CPU path.
import { attentionMask, attentionModel } from '../../coordinator/protocol/onnx-builder';
import { createSession, runSession, type Session } from '../onnx/runtime';

let session: Promise<Session> | null = null;

export interface AttentionBlock {
  /** Query rows in q, and the index of the first one in the sequence. */
  rows: number;
  q0: number;
  /** Key/value rows. */
  seq: number;
  d: number;
  causal: boolean;
}

/** The attention session: loads ORT's plain wasm build on first use. Awaiting it runs nothing. */
export function prepareCpuAttention(): Promise<Session> {
  session ??= createSession(attentionModel(), 'wasm');
  session.catch(() => (session = null));
  return session;
}

/** softmax(q·kᵀ/√d)·v for a block of query rows (rows×d) against one head's k, v (seq×d). */
export async function cpuAttention(q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionBlock): Promise<Float32Array> {
  if (q.length !== p.rows * p.d || k.length !== p.seq * p.d || v.length !== p.seq * p.d) {
    throw new Error(`attention inputs do not match rows ${p.rows}, seq ${p.seq}, d ${p.d}`);
  }
  const [out] = await runSession(
    await prepareCpuAttention(),
    [
      { name: 'q', shape: [p.rows, p.d], data: q },
      { name: 'k', shape: [p.seq, p.d], data: k },
      { name: 'v', shape: [p.seq, p.d], data: v },
      { name: 'scale', shape: [], data: Float32Array.of(1 / Math.sqrt(p.d)) },
      { name: 'mask', shape: [p.rows, p.seq], data: attentionMask(p.rows, p.seq, p.q0, p.causal) },
    ],
    ['out'],
  );
  return out;
}
