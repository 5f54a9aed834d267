// C = A·B for k and n multiples of 4, without workgroup memory or barriers: each invocation
// computes a 4-row × 8-column block (8 vec4 accumulators in named registers, no arrays) straight
// from global memory, which caches serve. Fastest where barriers and workgroup memory are
// expensive (CPU adapters such as SwiftShader); the autotuner decides per device.
// Rows past m and vec4 columns past n read a clamped (valid) address and are not stored.
//
// The launcher prepends WG_X and WG_Y (invocations); TM and TN are fixed at 4 and 8.

struct Dims {
  m: u32,
  k: u32,
  n: u32,
  pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4f>;
@group(0) @binding(1) var<storage, read> b: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4f>;
@group(0) @binding(3) var<uniform> dims: Dims;

/** acc + a.x·b0 + a.y·b1 + a.z·b2 + a.w·b3: one row of A's 4 k-values against 4 rows of B. */
fn step(acc: vec4f, av: vec4f, b0: vec4f, b1: vec4f, b2: vec4f, b3: vec4f) -> vec4f {
  return fma(vec4f(av.w), b3, fma(vec4f(av.z), b2, fma(vec4f(av.y), b1, fma(vec4f(av.x), b0, acc))));
}

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
  var acc00 = vec4f(0.0);
  var acc01 = vec4f(0.0);
  var acc10 = vec4f(0.0);
  var acc11 = vec4f(0.0);
  var acc20 = vec4f(0.0);
  var acc21 = vec4f(0.0);
  var acc30 = vec4f(0.0);
  var acc31 = vec4f(0.0);
  for (var p4 = 0u; p4 < k4; p4++) {
    let a0 = a[r0 * k4 + p4];
    let a1 = a[r1 * k4 + p4];
    let a2 = a[r2 * k4 + p4];
    let a3 = a[r3 * k4 + p4];
    let kb = p4 * 4u * n4;
    let b00 = b[kb + c0];
    let b01 = b[kb + c1];
    let b10 = b[kb + n4 + c0];
    let b11 = b[kb + n4 + c1];
    let b20 = b[kb + 2u * n4 + c0];
    let b21 = b[kb + 2u * n4 + c1];
    let b30 = b[kb + 3u * n4 + c0];
    let b31 = b[kb + 3u * n4 + c1];
    acc00 = step(acc00, a0, b00, b10, b20, b30);
    acc01 = step(acc01, a0, b01, b11, b21, b31);
    acc10 = step(acc10, a1, b00, b10, b20, b30);
    acc11 = step(acc11, a1, b01, b11, b21, b31);
    acc20 = step(acc20, a2, b00, b10, b20, b30);
    acc21 = step(acc21, a2, b01, b11, b21, b31);
    acc30 = step(acc30, a3, b00, b10, b20, b30);
    acc31 = step(acc31, a3, b01, b11, b21, b31);
  }
  let second = c0 + 1u < n4;
  c[r0 * n4 + c0] = acc00;
  if (second) { c[r0 * n4 + c0 + 1u] = acc01; }
  if (r0 + 1u < m) {
    c[r1 * n4 + c0] = acc10;
    if (second) { c[r1 * n4 + c0 + 1u] = acc11; }
  }
  if (r0 + 2u < m) {
    c[r2 * n4 + c0] = acc20;
    if (second) { c[r2 * n4 + c0 + 1u] = acc21; }
  }
  if (r0 + 3u < m) {
    c[r3 * n4 + c0] = acc30;
    if (second) { c[r3 * n4 + c0 + 1u] = acc31; }
  }
}
