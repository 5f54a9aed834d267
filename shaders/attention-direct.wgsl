// Fused flash attention like attention.wgsl, without workgroup memory or barriers: each
// invocation streams its head's keys and values straight from global memory (the caches share
// them between neighbouring queries) and updates its online softmax one key at a time, so no
// score array is kept either. Fastest where barriers are expensive (CPU adapters); the
// autotuner decides per device. Same bindings, layout and constants (D, BQ; BKV unused).


@compute @workgroup_size(BQ)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let rows = params.rows;
  let seq = params.seq;
  let head = wid.y;
  let r = gid.x;
  if (r >= rows) {
    return;
  }
  let keys = select(seq, min(seq, params.q0 + r + 1u), params.causal != 0u);
  var qr: array<vec4f, D4>;
  var acc: array<vec4f, D4>;
  let qBase = (head * rows + r) * D4;
  for (var c = 0u; c < D4; c++) {
    qr[c] = q[qBase + c] * params.scale;
  }
  // The first key sets the running max, so no −∞ stand-in is needed.
  var m = 0.0;
  var l = 0.0;
  let kvHead = head * seq * D4;
  for (var j = 0u; j < keys; j++) {
    let base = kvHead + j * D4;
    var dotv = vec4f(0.0);
    for (var c = 0u; c < D4; c++) {
      dotv = fma(qr[c], k[base + c], dotv);
    }
    let score = dotv.x + dotv.y + dotv.z + dotv.w;
    if (j == 0u || score > m) {
      let corr = select(exp(m - score), 0.0, j == 0u);
      l *= corr;
      for (var c = 0u; c < D4; c++) {
        acc[c] *= corr;
      }
      m = score;
    }
    let p = exp(score - m);
    l += p;
    for (var c = 0u; c < D4; c++) {
      acc[c] = fma(vec4f(p), v[base + c], acc[c]);
    }
  }
  let inv = 1.0 / l;
  for (var c = 0u; c < D4; c++) {
    out[qBase + c] = acc[c] * inv;
  }
}
