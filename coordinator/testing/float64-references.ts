// Matmul and attention in float64, written apart from the coordinator's references and the workers'
// code: what the clients' tests compare a job's result to, so a shared mistake cannot hide.
import { expect } from 'vitest';

/** A (m×k) · B (k×n), row-major. */
export function matmulF64(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}

/** softmax(Q·Kᵀ/√d)·V for each head of [heads, seq, d] tensors; with `causal`, query i sees keys 0..i. */
export function attentionF64(q: Float32Array, k: Float32Array, v: Float32Array, heads: number, seq: number, d: number, causal: boolean): Float64Array {
  const out = new Float64Array(heads * seq * d);
  for (let h = 0; h < heads; h++) {
    const at = h * seq * d;
    for (let i = 0; i < seq; i++) {
      const keys = causal ? i + 1 : seq;
      const s = new Float64Array(keys);
      for (let j = 0; j < keys; j++) {
        for (let x = 0; x < d; x++) s[j] += q[at + i * d + x] * k[at + j * d + x];
        s[j] /= Math.sqrt(d);
      }
      const max = Math.max(...s);
      let sum = 0;
      for (let j = 0; j < keys; j++) sum += (s[j] = Math.exp(s[j] - max));
      for (let j = 0; j < keys; j++) for (let x = 0; x < d; x++) out[at + i * d + x] += (s[j] / sum) * v[at + j * d + x];
    }
  }
  return out;
}

/** The largest |x[i] − y[i]|; the lengths must match (an expectation of the calling test). */
export function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  expect(x.length).toBe(y.length);
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  return worst;
}
