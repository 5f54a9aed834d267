// Arithmetic as devices do it, for tests: float32 with every operation rounded, in the different
// orders different GPUs sum in. Honest results made this way differ from each other and from the
// float64 reference in the last bits — what the replica comparison and the independent checks must
// admit — unlike the reference itself, which a test would only compare with itself.
import { attentionReference } from '../jobs/attention.js';
import { dotErrorFactor } from '../jobs/matmul-check.js';
import type { AttentionParams, WorkUnitSpec } from '../protocol/index.js';

/**
 * How a device sums a dot product: `forward`, `reverse`, `pairwise` (a tree, as a reduction
 * across a workgroup does), `strided4` (four running sums added at the end, as a vec4 kernel
 * does), or `float64` (the reference: exact products summed in float64, rounded once).
 */
export type SumOrder = 'forward' | 'reverse' | 'pairwise' | 'strided4' | 'float64';
export const SUM_ORDERS: readonly SumOrder[] = ['forward', 'reverse', 'pairwise', 'strided4', 'float64'];

/** One float32 dot product of `n` terms term(0..n-1), each term and each add rounded by `round`. */
function dot(n: number, term: (p: number) => number, order: SumOrder, round: (x: number) => number): number {
  switch (order) {
    case 'float64': {
      let s = 0;
      for (let p = 0; p < n; p++) s += term(p);
      return Math.fround(s);
    }
    case 'forward':
    case 'reverse': {
      let s = 0;
      for (let q = 0; q < n; q++) s = round(s + round(term(order === 'reverse' ? n - 1 - q : q)));
      return s;
    }
    case 'strided4': {
      const part = [0, 0, 0, 0];
      for (let p = 0; p < n; p++) part[p % 4] = round(part[p % 4] + round(term(p)));
      return round(round(part[0] + part[1]) + round(part[2] + part[3]));
    }
    case 'pairwise': {
      let level = Array.from({ length: n }, (_, p) => round(term(p)));
      if (level.length === 0) return 0;
      while (level.length > 1) {
        const next: number[] = [];
        for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? round(level[i] + level[i + 1]) : level[i]);
        level = next;
      }
      return level[0];
    }
  }
}

/**
 * C = A·B as a float32 device computes it: every multiply and add rounded by `round`
 * (Math.fround = round-to-nearest), summing in `order` (forward unless `reverse`).
 */
export function float32Matmul(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  opts: { round?: (x: number) => number; reverse?: boolean; order?: SumOrder } = {},
): Float32Array {
  const round = opts.round ?? Math.fround;
  const order = opts.order ?? (opts.reverse ? 'reverse' : 'forward');
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) c[i * n + j] = dot(k, (p) => a[i * k + p] * b[p * n + j], order, round);
  }
  return c;
}

/**
 * Attention as a float32 device computes it: one pass over the keys in tiles of 16 with an online
 * softmax (running max and sum, the accumulator rescaled when the max grows), like the WGSL
 * kernel; the keys visited forwards or backwards. `float64` is the reference.
 */
export function float32Attention(q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionParams, order: SumOrder = 'forward'): Float32Array {
  if (order === 'float64') return attentionReference(q, k, v, p);
  const f = Math.fround;
  const { rows, seq, d, q0, causal } = p;
  const scale = f(1 / Math.sqrt(d));
  const out = new Float32Array(rows * d);
  for (let i = 0; i < rows; i++) {
    const keys = causal ? Math.min(seq, q0 + i + 1) : seq;
    const keyAt = (t: number) => (order === 'reverse' ? keys - 1 - t : t);
    let m = -3.4e38;
    let l = 0;
    const acc = new Float32Array(d);
    for (let t = 0; t < keys; t += 16) {
      const end = Math.min(keys, t + 16);
      const s: number[] = [];
      for (let tt = t; tt < end; tt++) {
        const j = keyAt(tt);
        s.push(dot(d, (c) => f(q[i * d + c] * scale) * k[j * d + c], order === 'reverse' ? 'forward' : order, f));
      }
      const mNew = Math.max(m, ...s);
      const corr = f(Math.exp(f(m - mNew)));
      l = f(l * corr);
      for (let c = 0; c < d; c++) acc[c] = f(acc[c] * corr);
      for (let tt = t; tt < end; tt++) {
        const j = keyAt(tt);
        const w = f(Math.exp(f(s[tt - t] - mNew)));
        l = f(l + w);
        for (let c = 0; c < d; c++) acc[c] = f(acc[c] + f(w * v[j * d + c]));
      }
      m = mNew;
    }
    for (let c = 0; c < d; c++) out[i * d + c] = f(acc[c] / l);
  }
  return out;
}

/** A unit computed as a device summing in `order` would (matmul and attention units). */
export function deviceCompute(order: SumOrder): (wu: WorkUnitSpec, inputs: Record<string, Float32Array>) => Float32Array {
  return (wu, inputs) => {
    if (wu.kind === 'matmul') return float32Matmul(inputs.a, inputs.b, wu.params.m, wu.params.k, wu.params.n, { order });
    if (wu.kind === 'attention') return float32Attention(inputs.q, inputs.k, inputs.v, wu.params, order);
    throw new Error(`no device arithmetic for ${wu.kind} units`);
  };
}

/** Element (i, j) of A·B in float64, and Σ|a·b| over its terms (the scale of its rounding bound). */
function exactDot(a: Float32Array, b: Float32Array, k: number, n: number, i: number, j: number): { exact: number; magnitude: number } {
  let exact = 0;
  let magnitude = 0;
  for (let p = 0; p < k; p++) {
    const prod = a[i * k + p] * b[p * n + j];
    exact += prod;
    magnitude += Math.abs(prod);
  }
  return { exact, magnitude };
}

/**
 * A matmul result every element of which is off by `share` of the rigorous float32 bound the
 * independent check allows it (γ·(|A|·|B|)_ij, matmul-check.ts): it passes the check — a device
 * could have produced it — yet it disagrees with honest replicas wherever that bound is wider than
 * the replica tolerance (long dot products, elements near zero). Flaky hardware, not a cheat.
 */
export function offWithinCheck(a: Float32Array, b: Float32Array, m: number, k: number, n: number, share = 0.4): Float32Array {
  const gamma = dotErrorFactor(k);
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const { exact, magnitude } = exactDot(a, b, k, n, i, j);
      c[i * n + j] = exact + share * gamma * magnitude;
    }
  }
  return c;
}

/**
 * How far C is from A·B, as the largest share of the rigorous float32 bound γ_k·(|A|·|B|)_ij any
 * element uses (computed here in float64, independently of the coordinator's check): ≤ 1 for any
 * honest float32 device whatever its summation order, 0 for the exact product rounded once; NaN
 * or Infinity for a result that is not a product at all.
 */
export function productBoundShare(c: Float32Array, a: Float32Array, b: Float32Array, m: number, k: number, n: number): number {
  if (c.length !== m * n) return Infinity;
  const gamma = 2.02 * (k + 2) * 2 ** -24;
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const { exact, magnitude } = exactDot(a, b, k, n, i, j);
      const err = Math.abs(c[i * n + j] - exact);
      const share = err === 0 ? 0 : err / (gamma * magnitude);
      if (!(share <= worst)) worst = share; // NaN sticks
    }
  }
  return worst;
}
