import { randomBytes } from 'node:crypto';
import { expect, test } from 'vitest';
import { assertStrongApiToken, MIN_TOKEN_BITS, newApiToken, tokenStrengthBits } from './keys.js';

test('random tokens of 128 bits or more pass, whatever their encoding', () => {
  for (let i = 0; i < 2000; i++) {
    for (const t of [newApiToken(), randomBytes(16).toString('hex'), randomBytes(32).toString('base64'), randomBytes(17).toString('base64url')]) {
      expect(tokenStrengthBits(t)).toBeGreaterThanOrEqual(MIN_TOKEN_BITS);
    }
  }
});

test.each(['t', 'secret', 'hunter2', 'crash-test-token', randomBytes(15).toString('hex'), 'a'.repeat(64), 'abcdefabcdefabcdefabcdefabcdef12', 'passwordpasswordpasswordpassword', '0123456789012345678901234567890123456789'])(
  'a weak token is refused: %s',
  (t) => {
    expect(tokenStrengthBits(t)).toBeLessThan(MIN_TOKEN_BITS);
    expect(() => assertStrongApiToken(t, 'TABGRID_API_TOKEN')).toThrow(/TABGRID_API_TOKEN is too weak .*128.*randomBytes/);
  },
);
