// C = A·B for row-major f32 matrices of any shape (m×k · k×n), no padding needed.
// Each workgroup computes one BM×BN tile of C with WG_X×WG_Y invocations; each invocation keeps a
// TM×TN block of accumulators in registers (rows ty + i·WG_Y, columns tx + j·WG_X, so neighbouring
// invocations touch neighbouring columns: coalesced global stores, conflict-free shared reads).
// K is walked in BK-deep slices staged in workgroup memory; out-of-range loads read as zero and
// out-of-range outputs are not written.
//
// The launcher (web/gpu/pipelines.ts) prepends the configuration as constants:
//   WG_X, WG_Y (invocations), TM, TN (outputs per invocation), BK (slice depth).

const BM: u32 = WG_Y * TM;
const BN: u32 = WG_X * TN;
const THREADS: u32 = WG_X * WG_Y;

// A slice stored k-major (As[kk·BM + r]) so the inner loop reads a column of A contiguously.
var<workgroup> As: array<f32, BK * BM>;
var<workgroup> Bs: array<f32, BK * BN>;

@compute @workgroup_size(WG_X, WG_Y)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
  @builtin(workgroup_id) wid: vec3u,
) {
  let m = dims.m;
  let k = dims.k;
  let n = dims.n;
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  var acc: array<f32, TM * TN>;
  var ar: array<f32, TM>;
  var br: array<f32, TN>;
  for (var t = 0u; t < k; t += BK) {
    for (var i = li; i < BM * BK; i += THREADS) {
      let r = i / BK;
      let kk = i % BK;
      var v = 0.0;
      if (row0 + r < m && t + kk < k) {
        v = a[(row0 + r) * k + t + kk];
      }
      As[kk * BM + r] = v;
    }
    for (var i = li; i < BK * BN; i += THREADS) {
      let kk = i / BN;
      let cc = i % BN;
      var v = 0.0;
      if (t + kk < k && col0 + cc < n) {
        v = b[(t + kk) * n + col0 + cc];
      }
      Bs[i] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      for (var i = 0u; i < TM; i++) {
        ar[i] = As[kk * BM + lid.y + i * WG_Y];
      }
      for (var j = 0u; j < TN; j++) {
        br[j] = Bs[kk * BN + lid.x + j * WG_X];
      }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) {
          acc[i * TN + j] = fma(ar[i], br[j], acc[i * TN + j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let row = row0 + lid.y + i * WG_Y;
    if (row < m) {
      for (var j = 0u; j < TN; j++) {
        let col = col0 + lid.x + j * WG_X;
        if (col < n) {
          c[row * n + col] = acc[i * TN + j];
        }
      }
    }
  }
}
