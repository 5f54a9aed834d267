// The MLP's forward pass, one layer for the batch (web/gpu/train-mlp.ts): Z[r, o] = b[o] +
// Σ_k A[r, k]·W[k, o], then ReLU on hidden layers. One invocation per output; k is summed in order
// starting from the bias, as protocol/train-mlp.ts does (here in f32), so every device adds in
// the same order. With GATHER, row r of A is row idx[r] of the data slice: layer 0 reads the
// step's batch straight from the slice. W is [din, dout] row-major inside the flat θ.
// (Layer and Step: train-mlp-prelude.wgsl, joined in front at load.) Constants: WG_X, WG_Y, GATHER.

@group(0) @binding(0) var<uniform> dims: Layer;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> theta: array<f32>;
@group(0) @binding(4) var<storage, read_write> z: array<f32>;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let o = g.x;
  let r = g.y;
  if (o >= dims.dout || r >= dims.rows) {
    return;
  }
  var row = r;
  if (GATHER == 1u) {
    row = idx[r];
  }
  let a0 = row * dims.din;
  var acc = theta[dims.b + o];
  for (var k = 0u; k < dims.din; k++) {
    acc += a[a0 + k] * theta[dims.w + k * dims.dout + o];
  }
  if (dims.relu == 1u) {
    acc = max(acc, 0.0);
  }
  z[r * dims.dout + o] = acc;
}
