// Joined before both attention kernels by web/gpu/attention.ts: the parameters and the bindings.
// q and out are [heads, rows, D] and k, v [heads, seq, D], as vec4s (D, the head dimension, is a
// multiple of 4 that the launcher prepends).

struct Params {
  rows: u32,
  seq: u32,
  q0: u32,
  causal: u32,
  scale: f32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4f>;
@group(0) @binding(1) var<storage, read> k: array<vec4f>;
@group(0) @binding(2) var<storage, read> v: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4f>;
@group(0) @binding(4) var<uniform> params: Params;

const D4: u32 = D / 4u;
