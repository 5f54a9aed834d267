// A synthetic classification task for training tests: `classes` Gaussian-ish blobs in `features`
// dimensions, well separated, rows in class order 0, 1, …, 0, 1, … (deterministic from the seed).
import { toNpy } from '../protocol/npy.js';
import { rng } from '../protocol/train-model.js';

export interface TrainTask {
  x: Float32Array;
  y: Float32Array;
  n: number;
  f: number;
  classes: number;
}

export function blobsTask(n: number, features: number, classes: number, seed: number, spread = 1): TrainTask {
  const next = rng(seed);
  const u = () => next() / 4294967296;
  const centers = Array.from({ length: classes }, () => Array.from({ length: features }, () => (u() * 2 - 1) * 2));
  const x = new Float32Array(n * features);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % classes;
    y[i] = k;
    // A sum of three uniforms: bell-shaped noise around the class's centre.
    for (let j = 0; j < features; j++) x[i * features + j] = centers[k][j] + spread * (u() + u() + u() - 1.5);
  }
  return { x, y, n, f: features, classes };
}

/** A 1-D int32 .npy (labels or token ids as int32): the float32 layout with the '<i4' descr. */
export function int32Npy(values: ArrayLike<number>): Uint8Array {
  const npy = toNpy([values.length], new Float32Array(values.length));
  const at = new TextDecoder('latin1').decode(npy.subarray(0, 64)).indexOf("'<f4'");
  npy[at + 2] = 'i'.charCodeAt(0);
  new Int32Array(npy.buffer, npy.length - values.length * 4).set(Array.from(values));
  return npy;
}

/** Relative L2 distance of `a` from `b` (over the first `n` values): how far a trained vector is from its reference. */
export function relativeL2(a: ArrayLike<number>, b: ArrayLike<number>, n = b.length): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < n; i++) {
    d += (a[i] - b[i]) ** 2;
    s += b[i] ** 2;
  }
  return Math.sqrt(d / s);
}
