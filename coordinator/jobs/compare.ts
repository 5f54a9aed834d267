// Replica comparison. Different GPUs (and CPUs) sum in different orders, fuse multiply-adds or not
// and may flush subnormals, so two honest results are close, not identical: bitwise equality
// would reject honest volunteers. Two results agree when every element satisfies
//   |x - y| <= atol + rtol * max(|x|, |y|)
// (symmetric, so which replica arrived first does not matter). NaN agrees only with NaN.
import type { Tolerance } from '../protocol/index.js';

/** Defaults: rtol 1e-4 is ~800 float32 ulps, far above reordering noise and far below a real error. */
export const DEFAULT_TOLERANCE: Tolerance = { atol: 1e-6, rtol: 1e-4 };

export type Agreement = { ok: true } | { ok: false; index: number; x: number; y: number };

export function compareWithin(x: Float32Array, y: Float32Array, tol: Tolerance): Agreement {
  if (x.length !== y.length) return { ok: false, index: -1, x: x.length, y: y.length };
  for (let i = 0; i < x.length; i++) {
    const a = x[i];
    const b = y[i];
    if (a === b) continue; // also equal infinities
    // An infinity agrees only with the same infinity (caught above): with rtol > 0 the bound below
    // would itself be infinite and let Inf match any value.
    if (a === Infinity || a === -Infinity || b === Infinity || b === -Infinity) return { ok: false, index: i, x: a, y: b };
    const diff = Math.abs(a - b);
    // NaN fails this comparison, so a NaN never agrees with a number.
    if (!(diff <= tol.atol + tol.rtol * Math.max(Math.abs(a), Math.abs(b)))) {
      if (Number.isNaN(a) && Number.isNaN(b)) continue;
      return { ok: false, index: i, x: a, y: b };
    }
  }
  return { ok: true };
}

export interface Replica {
  id: string;
  values: Float32Array;
}

/**
 * The first group (in arrival order of its anchor) of at least `quorum` replicas that all agree
 * with the anchor, or null. Returns the ids of the group. `tol` is a tolerance, or a job kind's own
 * agreement test (ONNX compares each output its own way).
 */
export function findQuorum(
  replicas: Replica[],
  quorum: number,
  tol: Tolerance | ((x: Float32Array, y: Float32Array) => boolean),
): string[] | null {
  const agree = typeof tol === 'function' ? tol : (x: Float32Array, y: Float32Array) => compareWithin(x, y, tol).ok;
  for (const anchor of replicas) {
    const group = replicas.filter((r) => r === anchor || agree(anchor.values, r.values));
    if (group.length >= quorum) return group.map((r) => r.id);
  }
  return null;
}
