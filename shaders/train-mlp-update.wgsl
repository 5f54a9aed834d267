// The inner optimizer's step over every parameter (web/gpu/train-mlp.ts), with weight decay as
// protocol/train-mlp.ts applies it: SGD θ ← θ − lr·(g + wd·θ); AdamW m ← β1·m + (1−β1)·g,
// v ← β2·v + (1−β2)·g·g, θ ← θ − lr·(m/c1 / (√(v/c2) + ε) + wd·θ) with the step's bias
// corrections c1 = 1 − β1^t, c2 = 1 − β2^t. A grid-stride loop: any parameter count in a capped
// dispatch. (Step: train-mlp-prelude.wgsl, joined in front at load.) Constants: WG.

struct Opt {
  lr: f32,
  wd: f32,
  b1: f32,
  ob1: f32,
  b2: f32,
  ob2: f32,
  eps: f32,
  count: u32,
}

@group(0) @binding(0) var<uniform> opt: Opt;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read_write> theta: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn sgd(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  for (var i = g.x; i < opt.count; i += nwg.x * WG) {
    let th = theta[i];
    theta[i] = th - opt.lr * (grad[i] + opt.wd * th);
  }
}

@compute @workgroup_size(WG)
fn adamw(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  for (var i = g.x; i < opt.count; i += nwg.x * WG) {
    let gi = grad[i];
    let mi = opt.b1 * m[i] + opt.ob1 * gi;
    let vi = opt.b2 * v[i] + opt.ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    let th = theta[i];
    theta[i] = th - opt.lr * (mi / step.c1 / (sqrt(vi / step.c2) + opt.eps) + opt.wd * th);
  }
}
