// How far a computed result is from its reference, as the kernel tests, the e2e specs and the GPU
// kit's bench all judge it. No imports: the GPU kit bundles this file.

/** max |c − r| / max |r|: the normwise relative error of c against the reference r. */
export function maxRelativeError(c: Float32Array, r: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < r.length; i++) {
    diff = Math.max(diff, Math.abs(c[i] - r[i]));
    scale = Math.max(scale, Math.abs(r[i]));
  }
  return diff / scale;
}
