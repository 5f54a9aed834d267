// C = A·B for k and n multiples of 4, sharing A through subgroup shuffles instead of workgroup
// memory (no barriers). A workgroup is one row of WG_X invocations covering 4 rows of C and
// WG_X·8 columns; every invocation computes a 4×8 block (8 vec4 accumulators) like
// matmul-vec4-regs.wgsl. Because all invocations of a workgroup share the same 4 rows, every lane
// of a subgroup needs the same A values whatever the lane-to-invocation mapping: for a chunk of
// subgroup_size k-steps each lane loads one vec4 of A per row and the others read it with
// subgroupShuffle, so A is fetched once per subgroup instead of once per lane.
// Robust to any subgroup size: when the subgroup is not full (partial subgroups, or a subgroup
// larger than the workgroup), lanes load A themselves. Columns past n read a clamped address and
// are not stored; k-steps past k read zero.
//
// The launcher prepends WG_X (invocations); WG_Y is 1, TM and TN are fixed at 4 and 8.
enable subgroups;
// The shuffle path is taken per subgroup (full or not), which the uniformity analysis cannot see.
diagnostic(off, subgroup_uniformity);

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

/** A's vec4 at row r, k-step p4, or zero past k. */
fn loadA(r: u32, p4: u32, k4: u32) -> vec4f {
  if (p4 < k4) {
    return a[r * k4 + p4];
  }
  return vec4f(0.0);
}

@compute @workgroup_size(WG_X, 1)
fn main(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) sgSize: u32,
) {
  let m = dims.m;
  let k4 = dims.k / 4u;
  let n4 = dims.n / 4u;
  // The dispatch covers m exactly in steps of 4, so r0 < m; later rows clamp to a valid address.
  let r0 = gid.y * 4u;
  let r1 = min(r0 + 1u, m - 1u);
  let r2 = min(r0 + 2u, m - 1u);
  let r3 = min(r0 + 3u, m - 1u);
  // No early return for lanes past n: they still serve A values to their subgroup.
  let c0 = min(gid.x * 2u, n4 - 1u);
  let c1 = min(gid.x * 2u + 1u, n4 - 1u);
  var acc00 = vec4f(0.0);
  var acc01 = vec4f(0.0);
  var acc10 = vec4f(0.0);
  var acc11 = vec4f(0.0);
  var acc20 = vec4f(0.0);
  var acc21 = vec4f(0.0);
  var acc30 = vec4f(0.0);
  var acc31 = vec4f(0.0);
  let full = subgroupAdd(1u) == sgSize;
  let chunk = select(1u, sgSize, full);
  for (var base = 0u; base < k4; base += chunk) {
    // This lane's share of the chunk (the whole chunk when the subgroup is not full).
    let own = select(base, base + lane, full);
    let la0 = loadA(r0, own, k4);
    let la1 = loadA(r1, own, k4);
    let la2 = loadA(r2, own, k4);
    let la3 = loadA(r3, own, k4);
    let steps = min(chunk, k4 - base);
    for (var j = 0u; j < steps; j++) {
      var a0 = la0;
      var a1 = la1;
      var a2 = la2;
      var a3 = la3;
      if (full) {
        a0 = subgroupShuffle(la0, j);
        a1 = subgroupShuffle(la1, j);
        a2 = subgroupShuffle(la2, j);
        a3 = subgroupShuffle(la3, j);
      }
      let kb = (base + j) * 4u * n4;
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
  }
  if (gid.x * 2u >= n4) {
    return;
  }
  let second = gid.x * 2u + 1u < n4;
  c[r0 * n4 + c0] = acc00;
  if (second) { c[r0 * n4 + c1] = acc01; }
  if (r0 + 1u < m) {
    c[r1 * n4 + c0] = acc10;
    if (second) { c[r1 * n4 + c1] = acc11; }
  }
  if (r0 + 2u < m) {
    c[r2 * n4 + c0] = acc20;
    if (second) { c[r2 * n4 + c1] = acc21; }
  }
  if (r0 + 3u < m) {
    c[r3 * n4 + c0] = acc30;
    if (second) { c[r3 * n4 + c1] = acc31; }
  }
}
