// Speed of a matmul backend on a short problem: one warm-up run (pipeline or session creation),
// then repeated runs for at least `minMs`, so coarse timers still give a usable figure.
export type MatmulFn = (a: Float32Array, b: Float32Array, m: number, k: number, n: number) => Promise<Float32Array>;

export async function measureGflops(run: MatmulFn, size = 256, minMs = 150): Promise<number> {
  const a = Float32Array.from({ length: size * size }, (_, i) => ((i * 7919) % 997) / 997 - 0.5);
  const b = Float32Array.from({ length: size * size }, (_, i) => ((i * 104729) % 991) / 991 - 0.5);
  await run(a, b, size, size, size);
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
