// C = A·B for row-major f32 matrices of any shape (m×k · k×n), one 16×16 output tile per
// workgroup. Tiles of A and B are staged in workgroup memory; out-of-range elements load as zero
// and out-of-range outputs are not written, so no padding is needed.

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

const TILE: u32 = 16u;

var<workgroup> tileA: array<f32, 256>;
var<workgroup> tileB: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let row = wid.y * TILE + lid.y;
  let col = wid.x * TILE + lid.x;
  var acc = 0.0;
  let tiles = (dims.k + TILE - 1u) / TILE;
  for (var t = 0u; t < tiles; t++) {
    let ak = t * TILE + lid.x;
    var av = 0.0;
    if (row < dims.m && ak < dims.k) {
      av = a[row * dims.k + ak];
    }
    tileA[lid.y * TILE + lid.x] = av;
    let bk = t * TILE + lid.y;
    var bv = 0.0;
    if (bk < dims.k && col < dims.n) {
      bv = b[bk * dims.n + col];
    }
    tileB[lid.y * TILE + lid.x] = bv;
    workgroupBarrier();
    for (var i = 0u; i < TILE; i++) {
      acc += tileA[lid.y * TILE + i] * tileB[i * TILE + lid.x];
    }
    workgroupBarrier();
  }
  if (row < dims.m && col < dims.n) {
    c[row * dims.n + col] = acc;
  }
}
