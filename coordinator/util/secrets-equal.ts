// Comparing a presented secret with the expected one in constant time: both are hashed first, so
// the comparison takes as long whatever their lengths and wherever they first differ.
import { createHash, timingSafeEqual } from 'node:crypto';

export function secretsEqual(expected: string, given: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}
