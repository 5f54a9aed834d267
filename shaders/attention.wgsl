// Fused flash attention, f32: out = softmax(Q·Kᵀ·scale)·V for every head, in one pass over K and V
// with an online softmax (a running max m and sum l per query; the accumulator is rescaled by
// exp(m_old − m_new) whenever the max grows), so the seq×seq score matrix never exists.
//
// Layout, all row-major vec4s: q and out are [heads, rows, D] (a block of `rows` queries whose
// first is query q0 of the sequence), k and v are [heads, seq, D]. Workgroup (x, y) handles queries
// x·BQ … x·BQ+BQ−1 of head y, one query per invocation (its q row and accumulator live in
// registers); the workgroup stages BKV keys and values at a time in workgroup memory, where every
// invocation reads the same address (a broadcast). With `causal`, query i sees keys j <= q0 + i,
// and a workgroup stops at the last key its last query can see.
//
// The launcher prepends D (head dim, a multiple of 4), BQ (queries per workgroup) and BKV.

/** Stands in for −∞: exp(NEG_BIG − finite) is 0 and NEG_BIG − NEG_BIG is 0, never NaN. */
const NEG_BIG: f32 = -3.0e38;

var<workgroup> Ks: array<vec4f, BKV * D4>;
var<workgroup> Vs: array<vec4f, BKV * D4>;

@compute @workgroup_size(BQ)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let rows = params.rows;
  let seq = params.seq;
  let head = wid.y;
  let r = wid.x * BQ + lid.x;
  let valid = r < rows;
  let causal = params.causal != 0u;
  // Keys this query sees, and (uniform across the workgroup) keys its last query sees.
  let myKeys = select(seq, min(seq, params.q0 + r + 1u), causal);
  let lastRow = min(rows, wid.x * BQ + BQ);
  let groupKeys = select(seq, min(seq, params.q0 + lastRow), causal);

  var qr: array<vec4f, D4>;
  var acc: array<vec4f, D4>;
  if (valid) {
    let qBase = (head * rows + r) * D4;
    for (var c = 0u; c < D4; c++) {
      qr[c] = q[qBase + c] * params.scale;
    }
  }
  var m = NEG_BIG;
  var l = 0.0;
  var s: array<f32, BKV>;
  let kvHead = head * seq * D4;

  for (var t = 0u; t < groupKeys; t += BKV) {
    for (var i = lid.x; i < BKV * D4; i += BQ) {
      let j = t + i / D4;
      var kv = vec4f(0.0);
      var vv = vec4f(0.0);
      if (j < seq) {
        kv = k[kvHead + t * D4 + i];
        vv = v[kvHead + t * D4 + i];
      }
      Ks[i] = kv;
      Vs[i] = vv;
    }
    workgroupBarrier();
    if (valid && t < myKeys) {
      var mNew = m;
      for (var jj = 0u; jj < BKV; jj++) {
        var dotv = vec4f(0.0);
        for (var c = 0u; c < D4; c++) {
          dotv = fma(qr[c], Ks[jj * D4 + c], dotv);
        }
        let score = dotv.x + dotv.y + dotv.z + dotv.w;
        s[jj] = score;
        if (t + jj < myKeys) {
          mNew = max(mNew, score);
        }
      }
      let corr = exp(m - mNew);
      l *= corr;
      for (var c = 0u; c < D4; c++) {
        acc[c] *= corr;
      }
      for (var jj = 0u; jj < BKV; jj++) {
        let p = select(0.0, exp(s[jj] - mNew), t + jj < myKeys);
        l += p;
        for (var c = 0u; c < D4; c++) {
          acc[c] = fma(vec4f(p), Vs[jj * D4 + c], acc[c]);
        }
      }
      m = mNew;
    }
    workgroupBarrier();
  }
  if (valid) {
    let oBase = (head * rows + r) * D4;
    let inv = 1.0 / l;
    for (var c = 0u; c < D4; c++) {
      out[oBase + c] = acc[c] * inv;
    }
  }
}
