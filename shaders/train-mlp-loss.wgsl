// Softmax cross-entropy of the batch's logits (web/gpu/train-mlp.ts). `main`: one invocation per
// row: its loss, and the gradient at its logits, (softmax − onehot) / rows, as protocol/train-mlp.ts
// computes them. `total`: one workgroup adds the rows' losses in a fixed order (64 strided partial
// sums, then those in order) and stores their mean in the step's slot of `losses`.
// (Layer and Step: train-mlp-prelude.wgsl, joined in front at load.) Constants: WG.

struct Head {
  rows: u32,
  classes: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> head: Head;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
@group(0) @binding(5) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(6) var<uniform> step: Step;
@group(0) @binding(7) var<storage, read_write> losses: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x;
  if (r >= head.rows) {
    return;
  }
  let base = r * head.classes;
  var top = logits[base];
  for (var c = 1u; c < head.classes; c++) {
    top = max(top, logits[base + c]);
  }
  var sum = 0.0;
  for (var c = 0u; c < head.classes; c++) {
    sum += exp(logits[base + c] - top);
  }
  let label = labels[idx[r]];
  rowLoss[r] = log(sum) + top - logits[base + label];
  let n = f32(head.rows);
  for (var c = 0u; c < head.classes; c++) {
    let onehot = select(0.0, 1.0, c == label);
    dz[base + c] = (exp(logits[base + c] - top) / sum - onehot) / n;
  }
}

const PARTS = 64u;
var<workgroup> part: array<f32, PARTS>;

@compute @workgroup_size(PARTS)
fn total(@builtin(local_invocation_index) i: u32) {
  var s = 0.0;
  for (var r = i; r < head.rows; r += PARTS) {
    s += rowLoss[r];
  }
  part[i] = s;
  workgroupBarrier();
  if (i == 0u) {
    var t = 0.0;
    for (var j = 0u; j < PARTS; j++) {
      t += part[j];
    }
    losses[step.slot] = t / f32(head.rows);
  }
}
