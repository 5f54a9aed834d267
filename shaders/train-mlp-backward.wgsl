// The MLP's backward pass, one layer (web/gpu/train-mlp.ts), from dZ, the gradient at the layer's
// outputs. `weights`: dW[k, o] = Σ_r A[r, k]·dZ[r, o] into θ's layout in `grad`, one invocation per
// weight, and one more row of invocations (k = din) for the biases, db[o] = Σ_r dZ[r, o]; rows
// summed in order. `inputs`: dA[r, k] = Σ_o dZ[r, o]·W[k, o] where A[r, k] > 0 (the ReLU that
// made A let the gradient through), else 0. With GATHER, row r of A is row idx[r] of the slice.
// (Layer and Step: train-mlp-prelude.wgsl, joined in front at load.) Constants: WG_X, WG_Y, GATHER.

@group(0) @binding(0) var<uniform> dims: Layer;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@group(0) @binding(5) var<storage, read> theta: array<f32>;
@group(0) @binding(6) var<storage, read_write> da: array<f32>;

@compute @workgroup_size(WG_X, WG_Y)
fn weights(@builtin(global_invocation_id) g: vec3u) {
  let o = g.x;
  let k = g.y;
  if (o >= dims.dout || k > dims.din) {
    return;
  }
  var acc = 0.0;
  if (k == dims.din) {
    for (var r = 0u; r < dims.rows; r++) {
      acc += dz[r * dims.dout + o];
    }
    grad[dims.b + o] = acc;
    return;
  }
  for (var r = 0u; r < dims.rows; r++) {
    var row = r;
    if (GATHER == 1u) {
      row = idx[r];
    }
    acc += a[row * dims.din + k] * dz[r * dims.dout + o];
  }
  grad[dims.w + k * dims.dout + o] = acc;
}

@compute @workgroup_size(WG_X, WG_Y)
fn inputs(@builtin(global_invocation_id) g: vec3u) {
  let k = g.x;
  let r = g.y;
  if (k >= dims.din || r >= dims.rows) {
    return;
  }
  var s = 0.0;
  if (a[r * dims.din + k] > 0.0) {
    let w = dims.w + k * dims.dout;
    for (var o = 0u; o < dims.dout; o++) {
      s += dz[r * dims.dout + o] * theta[w + o];
    }
  }
  da[r * dims.din + k] = s;
}
