// The uniforms the MLP training kernels share (web/gpu/train-mlp.ts joins this file in front of each).
// Layer: one layer's shapes and where its W and b sit in the flat θ (forward, backward).
struct Layer {
  rows: u32,
  din: u32,
  dout: u32,
  w: u32,
  b: u32,
  relu: u32,
  _pad0: u32,
  _pad1: u32,
}

// Step: the slot of the step's loss and its AdamW bias corrections (loss, update).
struct Step {
  slot: u32,
  c1: f32,
  c2: f32,
  _pad: u32,
}
