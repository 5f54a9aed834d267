// Benchmark baseline: the textbook kernel, one invocation per output element, no tiling.
struct Dims {
  m: u32,
  k: u32,
  n: u32,
  pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.y;
  let col = gid.x;
  if (row >= dims.m || col >= dims.n) {
    return;
  }
  var acc = 0.0;
  for (var p = 0u; p < dims.k; p++) {
    acc += a[row * dims.k + p] * b[p * dims.n + col];
  }
  c[row * dims.n + col] = acc;
}
