// Cryptographic randomness drawn in bulk: one randomFillSync per 16 KiB instead of one call per
// draw (the checks draw on every result). Just as unpredictable to workers.
import { randomFillSync } from 'node:crypto';

const pool = new Uint8Array(16 * 1024);
let used = pool.length;

/** n random bytes, a copy of their own. */
export function randomBytes(n: number): Uint8Array {
  if (n > pool.length) return randomFillSync(new Uint8Array(n));
  if (used + n > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const out = pool.slice(used, used + n);
  used += n;
  return out;
}

/** A uniformly random integer in [0, 2^32). */
export function randomUint32(): number {
  const b = randomBytes(4);
  return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
}

/** Uniform in [0, 1), 32 bits of it. */
export function randomFraction(): number {
  return randomUint32() / 2 ** 32;
}
