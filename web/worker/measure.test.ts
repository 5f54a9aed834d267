// The start-up measurement checks the product it times: a backend that computes something else
// (zeros, a transposed or shifted product) has no speed, so the page never chooses it.
import { describe, expect, test } from 'vitest';
import { float32Matmul } from '../../coordinator/testing/device-math';
import { checkSquareProduct, measureGflops, type MatmulFn } from './measure';

const honest: MatmulFn = async (a, b, m, k, n) => float32Matmul(a, b, m, k, n, { order: 'pairwise' });

describe('measureGflops', () => {
  test('times an honest float32 product, in any summation order', async () => {
    for (const order of ['forward', 'reverse', 'pairwise', 'strided4'] as const) {
      const gflops = await measureGflops(async (a, b, m, k, n) => float32Matmul(a, b, m, k, n, { order }), 32, 1);
      expect(gflops).toBeGreaterThan(0);
    }
  });

  test.each([
    ['all zeros', async (_a: Float32Array, _b: Float32Array, m: number, _k: number, n: number) => new Float32Array(m * n)],
    ['the transposed product', async (a: Float32Array, b: Float32Array, m: number, k: number, n: number) => {
      const c = await honest(a, b, m, k, n);
      return c.map((_, e) => c[(e % n) * n + Math.floor(e / n)]);
    }],
    ['one row off by 1%', async (a: Float32Array, b: Float32Array, m: number, k: number, n: number) => {
      const c = await honest(a, b, m, k, n);
      for (let j = 0; j < n; j++) c[j] *= 1.01;
      return c;
    }],
    ['too few elements', async (a: Float32Array, b: Float32Array, m: number, k: number, n: number) => (await honest(a, b, m, k, n)).subarray(1)],
  ])('refuses a backend whose output is %s', async (_what, wrong) => {
    await expect(measureGflops(wrong as MatmulFn, 32, 1)).rejects.toThrow(/wrong product|elements/);
  });

  test('checkSquareProduct passes the exact product', () => {
    const a = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i));
    expect(() => checkSquareProduct(a, b, float32Matmul(a, b, 8, 8, 8, { order: 'float64' }), 8)).not.toThrow();
  });
});
