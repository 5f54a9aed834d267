// Benchmark baseline: attention in three passes through global memory, as written from the
// formula. scores: S = Q·Kᵀ·scale (one invocation per score); softmax: one invocation per row;
// weighted: O = S·V (one invocation per output). Layout [heads, seq, D], S is [heads, seq, seq].

struct Params {
  heads: u32,
  seq: u32,
  d: u32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> s: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(16, 16)
fn scores(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  let i = gid.y;
  let h = gid.z;
  if (i >= p.seq || j >= p.seq) {
    return;
  }
  var acc = 0.0;
  for (var c = 0u; c < p.d; c++) {
    acc += q[(h * p.seq + i) * p.d + c] * k[(h * p.seq + j) * p.d + c];
  }
  s[(h * p.seq + i) * p.seq + j] = acc * p.scale;
}

@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x;
  if (row >= p.heads * p.seq) {
    return;
  }
  let base = row * p.seq;
  var mx = s[base];
  for (var j = 1u; j < p.seq; j++) {
    mx = max(mx, s[base + j]);
  }
  var sum = 0.0;
  for (var j = 0u; j < p.seq; j++) {
    let e = exp(s[base + j] - mx);
    s[base + j] = e;
    sum += e;
  }
  for (var j = 0u; j < p.seq; j++) {
    s[base + j] /= sum;
  }
}

@compute @workgroup_size(16, 16)
fn weighted(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  let i = gid.y;
  let h = gid.z;
  if (i >= p.seq || c >= p.d) {
    return;
  }
  var acc = 0.0;
  for (var j = 0u; j < p.seq; j++) {
    acc += s[(h * p.seq + i) * p.seq + j] * v[(h * p.seq + j) * p.d + c];
  }
  out[(h * p.seq + i) * p.d + c] = acc;
}
