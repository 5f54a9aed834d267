// C = A·B like matmul-vec4.wgsl (same tiling, same vec4 layout, same shapes: k and n multiples of 4,
// m arbitrary), with the k-slices double-buffered for GPUs: two stages of workgroup memory, and the
// next slice's global loads issued into registers before the current slice is computed, so their
// latency hides behind the multiply-adds; one barrier per slice instead of two. Aimed at real GPUs
// (large tiles, many resident warps); on a CPU adapter the register-only kernels win.
//
// The launcher prepends WG_X, WG_Y, TM, TN (a multiple of 4) and BK (a multiple of 4); two stages
// of both tiles must fit the workgroup memory limit (16 KiB by default).

const TN4: u32 = TN / 4u;
const BM: u32 = WG_Y * TM;
const BN4: u32 = WG_X * TN4;
const BK4: u32 = BK / 4u;
const THREADS: u32 = WG_X * WG_Y;
const A_TILE: u32 = BM * BK4;
const B_TILE: u32 = BK * BN4;
/** vec4s of each tile one invocation moves per slice. */
const A_PER: u32 = (A_TILE + THREADS - 1u) / THREADS;
const B_PER: u32 = (B_TILE + THREADS - 1u) / THREADS;

// Stage s: As[s·A_TILE + r·BK4 + kk4] (row r of the A slice as vec4s along k) and
// Bs[s·B_TILE + kk·BN4 + c4] (row kk of the B slice).
var<workgroup> As: array<vec4f, 2u * A_TILE>;
var<workgroup> Bs: array<vec4f, 2u * B_TILE>;

/** Element i of the A slice starting at vec4 column t4 (zero outside A). */
fn loadA(row0: u32, t4: u32, i: u32, m: u32, k4: u32) -> vec4f {
  let r = i / BK4;
  let kk4 = i % BK4;
  if (i < A_TILE && row0 + r < m && t4 + kk4 < k4) {
    return a[(row0 + r) * k4 + t4 + kk4];
  }
  return vec4f(0.0);
}

/** Element i of the B slice starting at row 4·t4 (zero outside B). */
fn loadB(col40: u32, t4: u32, i: u32, k: u32, n4: u32) -> vec4f {
  let kk = i / BN4;
  let cc = i % BN4;
  if (i < B_TILE && t4 * 4u + kk < k && col40 + cc < n4) {
    return b[(t4 * 4u + kk) * n4 + col40 + cc];
  }
  return vec4f(0.0);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
  @builtin(workgroup_id) wid: vec3u,
) {
  let m = dims.m;
  let k = dims.k;
  let k4 = k / 4u;
  let n4 = dims.n / 4u;
  let row0 = wid.y * BM;
  let col40 = wid.x * BN4;
  var acc: array<vec4f, TM * TN4>;
  var b0: array<vec4f, TN4>;
  var b1: array<vec4f, TN4>;
  var b2: array<vec4f, TN4>;
  var b3: array<vec4f, TN4>;
  var ra: array<vec4f, A_PER>;
  var rb: array<vec4f, B_PER>;

  // Stage 0 holds the first slice.
  for (var p = 0u; p < A_PER; p++) {
    let i = li + p * THREADS;
    if (i < A_TILE) {
      As[i] = loadA(row0, 0u, i, m, k4);
    }
  }
  for (var p = 0u; p < B_PER; p++) {
    let i = li + p * THREADS;
    if (i < B_TILE) {
      Bs[i] = loadB(col40, 0u, i, k, n4);
    }
  }
  workgroupBarrier();

  var stage = 0u;
  for (var t4 = 0u; t4 < k4; t4 += BK4) {
    let next = t4 + BK4;
    let more = next < k4;
    // The next slice's loads start now; they land in registers while this slice is computed.
    if (more) {
      for (var p = 0u; p < A_PER; p++) {
        ra[p] = loadA(row0, next, li + p * THREADS, m, k4);
      }
      for (var p = 0u; p < B_PER; p++) {
        rb[p] = loadB(col40, next, li + p * THREADS, k, n4);
      }
    }
    let aBase = stage * A_TILE;
    let bBase = stage * B_TILE;
    for (var kk4 = 0u; kk4 < BK4; kk4++) {
      let base = bBase + kk4 * 4u * BN4 + lid.x;
      for (var j = 0u; j < TN4; j++) {
        b0[j] = Bs[base + j * WG_X];
        b1[j] = Bs[base + BN4 + j * WG_X];
        b2[j] = Bs[base + 2u * BN4 + j * WG_X];
        b3[j] = Bs[base + 3u * BN4 + j * WG_X];
      }
      for (var i = 0u; i < TM; i++) {
        let av = As[aBase + (lid.y + i * WG_Y) * BK4 + kk4];
        for (var j = 0u; j < TN4; j++) {
          var s = acc[i * TN4 + j];
          s = fma(b0[j], vec4f(av.x), s);
          s = fma(b1[j], vec4f(av.y), s);
          s = fma(b2[j], vec4f(av.z), s);
          s = fma(b3[j], vec4f(av.w), s);
          acc[i * TN4 + j] = s;
        }
      }
    }
    // The other stage was last read before the previous barrier: it can take the next slice now.
    if (more) {
      let other = 1u - stage;
      for (var p = 0u; p < A_PER; p++) {
        let i = li + p * THREADS;
        if (i < A_TILE) {
          As[other * A_TILE + i] = ra[p];
        }
      }
      for (var p = 0u; p < B_PER; p++) {
        let i = li + p * THREADS;
        if (i < B_TILE) {
          Bs[other * B_TILE + i] = rb[p];
        }
      }
    }
    workgroupBarrier();
    stage = 1u - stage;
  }

  for (var i = 0u; i < TM; i++) {
    let row = row0 + lid.y + i * WG_Y;
    if (row < m) {
      for (var j = 0u; j < TN4; j++) {
        let col4 = col40 + lid.x + j * WG_X;
        if (col4 < n4) {
          c[row * n4 + col4] = acc[i * TN4 + j];
        }
      }
    }
  }
}
