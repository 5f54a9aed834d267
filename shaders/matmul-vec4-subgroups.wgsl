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
// The launcher prepends WG_X (invocations) and matmul-vec4-block.wgsl; WG_Y is 1, TM and TN are
// fixed at 4 and 8.
enable subgroups;
// The shuffle path is taken per subgroup (full or not), which the uniformity analysis cannot see.
diagnostic(off, subgroup_uniformity);

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
  var acc: Block;
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
      accumulate(&acc, a0, a1, a2, a3, base + j, n4, c0, c1);
    }
  }
  if (gid.x * 2u >= n4) {
    return;
  }
  store(acc, r0, m, n4, c0, gid.x * 2u + 1u < n4);
}
