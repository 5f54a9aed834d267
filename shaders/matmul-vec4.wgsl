// C = A·B like matmul.wgsl, for shapes where k and n are multiples of 4: A, B and C are read and
// written as vec4<f32>. Each invocation accumulates TM rows × TN4 vec4 columns (TN = 4·TN4
// scalars). Per step of 4 k values it loads 4·TN4 vec4s of B and TM vec4s of A from workgroup
// memory for 4·TM·TN4 vec4 multiply-adds; invocations with the same row read the same A vec4
// (a broadcast). m is arbitrary (rows past m load as zero and are not stored); a vec4 column
// group is wholly in or out of range because n % 4 == 0, and a k-slice of BK (a multiple of 4)
// likewise.
//
// The launcher prepends WG_X, WG_Y, TM, TN (a multiple of 4) and BK (a multiple of 4).

const TN4: u32 = TN / 4u;
const BM: u32 = WG_Y * TM;
const BN4: u32 = WG_X * TN4;
const BK4: u32 = BK / 4u;
const THREADS: u32 = WG_X * WG_Y;

// As[r·BK4 + kk4]: row r of the A slice as vec4s along k. Bs[kk·BN4 + c4]: row kk of the B slice.
var<workgroup> As: array<vec4f, BM * BK4>;
var<workgroup> Bs: array<vec4f, BK * BN4>;

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
  for (var t4 = 0u; t4 < k4; t4 += BK4) {
    for (var i = li; i < BM * BK4; i += THREADS) {
      let r = i / BK4;
      let kk4 = i % BK4;
      var v = vec4f(0.0);
      if (row0 + r < m && t4 + kk4 < k4) {
        v = a[(row0 + r) * k4 + t4 + kk4];
      }
      As[i] = v;
    }
    for (var i = li; i < BK * BN4; i += THREADS) {
      let kk = i / BN4;
      let cc = i % BN4;
      var v = vec4f(0.0);
      if (t4 * 4u + kk < k && col40 + cc < n4) {
        v = b[(t4 * 4u + kk) * n4 + col40 + cc];
      }
      Bs[i] = v;
    }
    workgroupBarrier();
    for (var kk4 = 0u; kk4 < BK4; kk4++) {
      let base = kk4 * 4u * BN4 + lid.x;
      for (var j = 0u; j < TN4; j++) {
        b0[j] = Bs[base + j * WG_X];
        b1[j] = Bs[base + BN4 + j * WG_X];
        b2[j] = Bs[base + 2u * BN4 + j * WG_X];
        b3[j] = Bs[base + 3u * BN4 + j * WG_X];
      }
      for (var i = 0u; i < TM; i++) {
        let av = As[(lid.y + i * WG_Y) * BK4 + kk4];
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
    workgroupBarrier();
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
