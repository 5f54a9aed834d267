import { expect, test } from 'vitest';
import { randomBytes, randomFraction, randomUint32 } from './random.js';

test('pooled randomness: fresh copies, every size, no repeats, roughly uniform', () => {
  const a = randomBytes(32);
  const b = randomBytes(32);
  expect(a).not.toEqual(b);
  a.fill(0);
  expect(b.some((x) => x !== 0)).toBe(true); // a copy: clearing one leaves the other
  expect(randomBytes(100_000)).toHaveLength(100_000); // larger than the pool
  let ones = 0;
  const bytes = randomBytes(8192);
  for (const x of bytes) ones += (x & 1);
  expect(ones / bytes.length).toBeGreaterThan(0.45);
  expect(ones / bytes.length).toBeLessThan(0.55);
  const draws = Array.from({ length: 4000 }, randomFraction);
  expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
  expect(Math.max(...draws)).toBeLessThan(1);
  expect(draws.reduce((s, x) => s + x, 0) / draws.length).toBeCloseTo(0.5, 1);
  expect(new Set(Array.from({ length: 1000 }, randomUint32)).size).toBeGreaterThan(995);
});
