// The coordinator's independent check of a matmul result C ≈ A·B, much cheaper than recomputing it.
//
// Two parts, both with RIGOROUS float32 error bounds, so an honest device (any summation order,
// FMA or not, any rounding direction, flushed subnormals) never fails them — the false-positive
// rate is zero, not merely small:
//
// 1. Freivalds: for random ±1 vectors r, C·r must equal A·(B·r). Catches any gross error (random or
//    constant output, a replayed result of another unit) in O(m·k + k·n + m·n). Its tolerance is a
//    row sum of per-element bounds, so it can miss an error in one element that is smaller than
//    the accumulated rounding of a whole row (e.g. one element off by 1% in a large tile).
// 2. Spot recomputation: S random elements recomputed in float64 and compared with the tight
//    per-element bound |ĉ_ij − c_ij| ≤ γ·(|A|·|B|)_ij. O(S·k). S grows to every element when the
//    tile is small (S·k within SPOT_BUDGET multiply-adds), so small tiles are checked in full.
//
// False negatives: a result whose wrong elements are a fraction f of the tile (each beyond the
// honest bound) passes the spot check with probability ≤ (1 − f)^S (samples are drawn without
// replacement, which only lowers it) — 0 when S covers the tile. E.g. f = 1% (the "subtle"
// cheat) and S = 512 gives ≤ 0.6% per unit, and a cheater must pass on every unit it cheats on:
// ten cheated units escape with probability ≤ 6e-23. The randomness is crypto-strong and drawn
// after the result is in, so a worker cannot aim its errors at unsampled elements.
// An element whose error is within γ·(|A|·|B|)_ij is, by definition, a result some honest device
// could have produced; no check can or should reject it.
import { randomBytes, randomFraction } from '../util/random.js';

/** float32 unit roundoff. */
export const U = 2 ** -24;
/** Multiply-adds the spot check may spend per result (about a millisecond of coordinator CPU). */
export const SPOT_BUDGET = 1 << 18;
const MIN_SPOT_SAMPLES = 64;

/**
 * Rigorous bound factor on |error| / (|A|·|B|)_ij for one float32 dot product of length k:
 * γ_k = k·u/(1 − k·u) ≤ (k + 2)·u for round-to-nearest; doubled (plus 1%) because WGSL lets a
 * device round either way (directed rounding has unit roundoff 2u).
 */
export function dotErrorFactor(k: number): number {
  return 2.02 * (k + 2) * U;
}

/** Per-element slack for flushed subnormals: each of k products may lose up to ~1.2e-38. */
const SUBNORMAL_SLACK = 1e-30;

/** Draws a vector of random ±1 (crypto randomness, so a cheater cannot predict it). */
function randomSigns(n: number): Float64Array {
  const bits = randomBytes(n);
  return Float64Array.from(bits, (b) => ((b & 1) === 1 ? 1 : -1));
}

/** A uniformly random integer in [0, n) from crypto randomness (n ≤ 2^32). */
function randomIndex(n: number): number {
  return Math.floor(randomFraction() * n);
}

/**
 * Freivalds' check: C·r against A·(B·r) for `rounds` random sign vectors, each row allowed
 * γ·(|A|·|B|·|r|)_i. Wrong answers pass a round with probability ≤ 1/2, so two rounds ≤ 1/4 for
 * the worst-placed error; in practice any error above the row bound is caught at once.
 */
export function freivalds(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number, rounds = 2): boolean {
  const absBr = new Float64Array(k);
  for (let p = 0; p < k; p++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.abs(b[p * n + j]);
    absBr[p] = s;
  }
  const gamma = dotErrorFactor(k);
  const bound = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = 0;
    for (let p = 0; p < k; p++) s += Math.abs(a[i * k + p]) * absBr[p];
    bound[i] = gamma * s + SUBNORMAL_SLACK * n;
  }
  for (let round = 0; round < rounds; round++) {
    const r = randomSigns(n);
    const br = new Float64Array(k);
    for (let p = 0; p < k; p++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += b[p * n + j] * r[j];
      br[p] = s;
    }
    for (let i = 0; i < m; i++) {
      let abr = 0;
      for (let p = 0; p < k; p++) abr += a[i * k + p] * br[p];
      let cr = 0;
      for (let j = 0; j < n; j++) cr += c[i * n + j] * r[j];
      if (!(Math.abs(cr - abr) <= bound[i])) return false; // also catches NaN
    }
  }
  return true;
}

/** Is element (i, j) of C within the rigorous bound of the float64 dot product? */
export function elementWithinBound(a: Float32Array, b: Float32Array, c: Float32Array, k: number, n: number, i: number, j: number): boolean {
  let exact = 0;
  let magnitude = 0;
  for (let p = 0; p < k; p++) {
    const prod = a[i * k + p] * b[p * n + j];
    exact += prod;
    magnitude += Math.abs(prod);
  }
  const got = c[i * n + j];
  if (got === exact) return true;
  return Math.abs(got - exact) <= dotErrorFactor(k) * magnitude + SUBNORMAL_SLACK * k; // NaN fails
}

/** How many elements the spot check samples for an m×n tile with inner dimension k. */
export function spotSamples(m: number, k: number, n: number): number {
  return Math.min(m * n, Math.max(MIN_SPOT_SAMPLES, Math.floor(SPOT_BUDGET / k)));
}

/** Recomputes `samples` distinct random elements (all of them when samples ≥ m·n). */
export function spotCheck(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number, samples = spotSamples(m, k, n)): boolean {
  const total = m * n;
  if (samples >= total) {
    for (let e = 0; e < total; e++) if (!elementWithinBound(a, b, c, k, n, Math.floor(e / n), e % n)) return false;
    return true;
  }
  // Partial Fisher–Yates over a sparse map: `samples` distinct indices without an O(m·n) array.
  const swapped = new Map<number, number>();
  for (let s = 0; s < samples; s++) {
    const pick = s + randomIndex(total - s);
    const e = swapped.get(pick) ?? pick;
    swapped.set(pick, swapped.get(s) ?? s);
    if (!elementWithinBound(a, b, c, k, n, Math.floor(e / n), e % n)) return false;
  }
  return true;
}

/** The full independent check: Freivalds for gross errors, then the per-element spot check. */
export function checkMatmul(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number): boolean {
  if (a.length !== m * k || b.length !== k * n || c.length !== m * n) return false;
  return freivalds(a, b, c, m, k, n) && spotCheck(a, b, c, m, k, n);
}
