// Shared by matmul-vec4-regs.wgsl and matmul-vec4-subgroups.wgsl (web/gpu/matmul.ts prepends it, after
// matmul-prelude.wgsl): one invocation's 4-row × 8-column block of C kept as 8 named vec4 accumulators
// (no arrays, so software adapters keep them in registers).

/** Rows 0–3 of the block, each two vec4 columns. */
struct Block {
  r00: vec4f, r01: vec4f,
  r10: vec4f, r11: vec4f,
  r20: vec4f, r21: vec4f,
  r30: vec4f, r31: vec4f,
}

/** acc + a.x·b0 + a.y·b1 + a.z·b2 + a.w·b3: one row of A's 4 k-values against 4 rows of B. */
fn step(acc: vec4f, av: vec4f, b0: vec4f, b1: vec4f, b2: vec4f, b3: vec4f) -> vec4f {
  return fma(vec4f(av.w), b3, fma(vec4f(av.z), b2, fma(vec4f(av.y), b1, fma(vec4f(av.x), b0, acc))));
}

/** One k-step of 4: rows a0–a3 of A (vec4 at k-step p4) against B's rows 4·p4… at columns c0, c1. */
fn accumulate(acc: ptr<function, Block>, a0: vec4f, a1: vec4f, a2: vec4f, a3: vec4f, p4: u32, n4: u32, c0: u32, c1: u32) {
  let kb = p4 * 4u * n4;
  let b00 = b[kb + c0];
  let b01 = b[kb + c1];
  let b10 = b[kb + n4 + c0];
  let b11 = b[kb + n4 + c1];
  let b20 = b[kb + 2u * n4 + c0];
  let b21 = b[kb + 2u * n4 + c1];
  let b30 = b[kb + 3u * n4 + c0];
  let b31 = b[kb + 3u * n4 + c1];
  (*acc).r00 = step((*acc).r00, a0, b00, b10, b20, b30);
  (*acc).r01 = step((*acc).r01, a0, b01, b11, b21, b31);
  (*acc).r10 = step((*acc).r10, a1, b00, b10, b20, b30);
  (*acc).r11 = step((*acc).r11, a1, b01, b11, b21, b31);
  (*acc).r20 = step((*acc).r20, a2, b00, b10, b20, b30);
  (*acc).r21 = step((*acc).r21, a2, b01, b11, b21, b31);
  (*acc).r30 = step((*acc).r30, a3, b00, b10, b20, b30);
  (*acc).r31 = step((*acc).r31, a3, b01, b11, b21, b31);
}

/** Writes the block at row r0, vec4 column c0 (and c0 + 1 when `second`), skipping rows past m. */
fn store(acc: Block, r0: u32, m: u32, n4: u32, c0: u32, second: bool) {
  c[r0 * n4 + c0] = acc.r00;
  if (second) { c[r0 * n4 + c0 + 1u] = acc.r01; }
  if (r0 + 1u < m) {
    c[(r0 + 1u) * n4 + c0] = acc.r10;
    if (second) { c[(r0 + 1u) * n4 + c0 + 1u] = acc.r11; }
  }
  if (r0 + 2u < m) {
    c[(r0 + 2u) * n4 + c0] = acc.r20;
    if (second) { c[(r0 + 2u) * n4 + c0 + 1u] = acc.r21; }
  }
  if (r0 + 3u < m) {
    c[(r0 + 3u) * n4 + c0] = acc.r30;
    if (second) { c[(r0 + 3u) * n4 + c0 + 1u] = acc.r31; }
  }
}
