// Joined before every matmul kernel by web/gpu/matmul.ts: the dimensions and the bindings, over
// elements of type Elem, which the launcher declares (f32 for matmul.wgsl, vec4f for the others).

struct Dims {
  m: u32,
  k: u32,
  n: u32,
  pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<Elem>;
@group(0) @binding(1) var<storage, read> b: array<Elem>;
@group(0) @binding(2) var<storage, read_write> c: array<Elem>;
@group(0) @binding(3) var<uniform> dims: Dims;
