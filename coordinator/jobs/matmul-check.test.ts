import { describe, expect, test } from 'vitest';
import { subtlyWrong } from '../tools/adversaries/workers.js';
import { toNpy } from '../protocol/npy.js';
import { float32Matmul, randomMatrix, startTestCoordinator } from '../testing/helpers.js';
import { matmulReference } from './matmul.js';
import { checkMatmul, freivalds, spotCheck, spotSamples } from './matmul-check.js';

const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);

/** Rounds x to float32 toward zero: the worst rounding a device may legally use, error up to 2u. */
function roundTowardZero(x: number): number {
  const f = Math.fround(x);
  if (Math.abs(f) <= Math.abs(x) || !Number.isFinite(f)) return f;
  f32[0] = f;
  i32[0] -= 1; // one ulp toward zero (same sign, smaller magnitude)
  return f32[0];
}

const shapes: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 1],
  [3, 1, 5],
  [7, 13, 11],
  [16, 32, 16],
  [17, 64, 15],
  [64, 257, 48],
];

describe('matmul independent check', () => {
  test.each(shapes)('honest float32 results pass for %i×%i×%i in every rounding and order', (m, k, n) => {
    const a = randomMatrix(m, k, m * 1000 + k);
    const b = randomMatrix(k, n, n * 1000 + k);
    for (const round of [Math.fround, roundTowardZero]) {
      for (const reverse of [false, true]) {
        const c = float32Matmul(a, b, m, k, n, { round, reverse });
        expect(checkMatmul(a, b, c, m, k, n)).toBe(true);
      }
    }
  });

  test('all-positive inputs (rounding errors pile up one way) still pass with directed rounding', () => {
    const [m, k, n] = [8, 1024, 8];
    const a = randomMatrix(m, k, 1, 0.5, 1);
    const b = randomMatrix(k, n, 2, 0.5, 1);
    const c = float32Matmul(a, b, m, k, n, { round: roundTowardZero });
    expect(checkMatmul(a, b, c, m, k, n)).toBe(true);
  });

  test.each(shapes.filter(([m, , n]) => m * n >= 4))('the subtle cheat is caught for %i×%i×%i', (m, k, n) => {
    const a = randomMatrix(m, k, 3);
    const b = randomMatrix(k, n, 4);
    const honest = matmulReference(a, b, m, k, n);
    for (let seed = 0; seed < 20; seed++) expect(checkMatmul(a, b, subtlyWrong(honest, seed), m, k, n)).toBe(false);
  });

  test('random, constant, NaN and replayed outputs fail Freivalds alone', () => {
    const [m, k, n] = [16, 32, 16];
    const a = randomMatrix(m, k, 5);
    const b = randomMatrix(k, n, 6);
    const other = matmulReference(randomMatrix(m, k, 7), b, m, k, n);
    const honest = matmulReference(a, b, m, k, n);
    const nan = honest.slice();
    nan[17] = Number.NaN;
    for (const bad of [randomMatrix(m, n, 8), new Float32Array(m * n).fill(1), new Float32Array(m * n), nan, other]) {
      expect(freivalds(a, b, bad, m, k, n)).toBe(false);
    }
  });

  test('a tile too large to check in full samples, and still catches a 1% cheat', () => {
    const [m, k, n] = [256, 2048, 256];
    expect(spotSamples(m, k, n)).toBeLessThan(m * n);
    const a = randomMatrix(m, k, 9);
    const b = randomMatrix(k, n, 10);
    const c = matmulReference(a, b, m, k, n);
    expect(spotCheck(a, b, c, m, k, n)).toBe(true);
    // 10% wrong elements: escaping 128 samples has probability 0.9^128 ≈ 1e-6.
    const bad = c.slice();
    for (let e = 0; e < bad.length; e += 10) bad[e] *= 1.01;
    expect(spotCheck(a, b, bad, m, k, n)).toBe(false);
  });

  test('mismatched lengths fail instead of reading out of bounds', () => {
    expect(checkMatmul(new Float32Array(4), new Float32Array(4), new Float32Array(3), 2, 2, 2)).toBe(false);
  });
});

describe('matmul job inputs the check could not judge', () => {
  test.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a value whose products could overflow', 1e37],
  ])('a job with %s in A is refused', async (_what, bad) => {
    const grid = await startTestCoordinator();
    try {
      const data = randomMatrix(4, 4, 1);
      data[5] = bad;
      const a = await grid.uploadShard(toNpy([4, 4], data));
      const b = await grid.uploadShard(toNpy([4, 4], randomMatrix(4, 4, 2).map((x) => x * 100)));
      const res = await grid.api('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'matmul', inputs: { a, b } }) });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/finite|overflow/);
    } finally {
      await grid.stop();
    }
  });
});
