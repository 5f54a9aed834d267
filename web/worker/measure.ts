// Speed of a matmul backend on a short problem: one warm-up run (pipeline or session creation),
// whose output is checked, then repeated runs for at least `minMs`, so coarse timers still give a
// usable figure. A backend whose product is wrong has no speed: measuring it throws, and the page
// does not choose it.
export type MatmulFn = (a: Float32Array, b: Float32Array, m: number, k: number, n: number) => Promise<Float32Array>;

/** Elements of the warm-up product checked against float64 (spread over rows and columns). */
const CHECKED = 32;

/**
 * Throws unless `c` = a·b (size × size) within float32 rounding on `CHECKED` elements: each within
 * the rigorous bound 2.02·(k + 2)·2⁻²⁴·Σ|a·b| of its float64 dot product, which no honest device
 * exceeds whatever its summation order (the coordinator's check uses the same bound).
 */
export function checkSquareProduct(a: Float32Array, b: Float32Array, c: Float32Array, size: number): void {
  if (c.length !== size * size) throw new Error(`the product has ${c.length} elements, not ${size * size}`);
  const gamma = 2.02 * (size + 2) * 2 ** -24;
  for (let s = 0; s < CHECKED; s++) {
    const i = (s * 7919) % size;
    const j = (s * 104729 + 13) % size;
    let exact = 0;
    let magnitude = 0;
    for (let p = 0; p < size; p++) {
      const prod = a[i * size + p] * b[p * size + j];
      exact += prod;
      magnitude += Math.abs(prod);
    }
    const got = c[i * size + j];
    if (!(Math.abs(got - exact) <= gamma * magnitude + 1e-30 * size)) {
      throw new Error(`wrong product: element (${i}, ${j}) is ${got}, the float64 product ${exact}`);
    }
  }
}

export async function measureGflops(run: MatmulFn, size = 256, minMs = 150): Promise<number> {
  const a = Float32Array.from({ length: size * size }, (_, i) => ((i * 7919) % 997) / 997 - 0.5);
  const b = Float32Array.from({ length: size * size }, (_, i) => ((i * 104729) % 991) / 991 - 0.5);
  // Inputs are handed over (transferred) by some backends: check against copies.
  const [a0, b0] = [a.slice(), b.slice()];
  checkSquareProduct(a0, b0, await run(a, b, size, size, size), size);
  let runs = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (runs < 2 || elapsed < minMs) {
    await run(a, b, size, size, size);
    runs++;
    elapsed = performance.now() - t0;
  }
  return (2 * size ** 3 * runs) / (Math.max(elapsed, 0.01) / 1000) / 1e9;
}
