// Human-readable quantities for the pages.
const UNITS = ['', 'k', 'M', 'G', 'T', 'P', 'E'];

/** 20400000 -> "20.4 MFLOP" */
export function formatFlops(flops: number): string {
  let v = flops;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)} ${UNITS[i]}FLOP`;
}

/** 0.0031 -> "3.10 MFLOP/s", 1.5 -> "1.50 GFLOP/s": small speeds stay readable. */
export function formatRate(gflops: number): string {
  return `${formatFlops(gflops * 1e9)}/s`;
}
