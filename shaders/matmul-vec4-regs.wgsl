// C = A·B for k and n multiples of 4, without workgroup memory or barriers: each invocation
// computes a 4-row × 8-column block (8 vec4 accumulators in named registers, no arrays) straight
// from global memory, which caches serve. Fastest where barriers and workgroup memory are
// expensive (CPU adapters such as SwiftShader); the autotuner decides per device.
// Rows past m and vec4 columns past n read a clamped (valid) address and are not stored.
//
// The launcher prepends WG_X and WG_Y (invocations) and matmul-vec4-block.wgsl; TM and TN are fixed
// at 4 and 8.

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let m = dims.m;
  let k4 = dims.k / 4u;
  let n4 = dims.n / 4u;
  let r0 = gid.y * 4u;
  let c0 = gid.x * 2u;
  if (r0 >= m || c0 >= n4) {
    return;
  }
  let r1 = min(r0 + 1u, m - 1u);
  let r2 = min(r0 + 2u, m - 1u);
  let r3 = min(r0 + 3u, m - 1u);
  let c1 = min(c0 + 1u, n4 - 1u);
  var acc: Block;
  for (var p4 = 0u; p4 < k4; p4++) {
    accumulate(&acc, a[r0 * k4 + p4], a[r1 * k4 + p4], a[r2 * k4 + p4], a[r3 * k4 + p4], p4, n4, c0, c1);
  }
  store(acc, r0, m, n4, c0, c0 + 1u < n4);
}
