import { expect, test } from 'vitest';
import { AuthGuard } from './auth-guard.js';

test('a lockout after N failures in a minute, doubling each time, forgotten after a quiet day', () => {
  let now = 0;
  const g = new AuthGuard({ failuresPerMinute: 3, lockoutMs: 1000 }, () => now);
  expect([g.failed('a'), g.failed('a')]).toEqual([0, 0]);
  expect(g.failed('a')).toBe(1000);
  expect(g.lockedFor('a')).toBe(1000);
  expect(g.lockedFor('b')).toBe(0);
  now = 1000;
  expect(g.lockedFor('a')).toBe(0);
  g.failed('a');
  g.failed('a');
  expect(g.failed('a')).toBe(2000); // the second lockout in a row lasts twice as long
  // Failures spread over more than a minute do not add up.
  now = 10_000;
  g.failed('c');
  g.failed('c');
  now = 80_000;
  expect(g.failed('c')).toBe(0);
  // A day without failures forgets the doubling.
  now = 3_000 + 25 * 3600_000;
  g.failed('a');
  g.failed('a');
  expect(g.failed('a')).toBe(1000);
});

test('the table of addresses stays bounded', () => {
  const g = new AuthGuard({ failuresPerMinute: 2, lockoutMs: 1000, maxAddresses: 100 });
  for (let i = 0; i < 10_000; i++) g.failed(`10.0.${i >> 8}.${i & 255}`);
  expect(g.size).toBeLessThanOrEqual(100);
});
