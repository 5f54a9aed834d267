import { randomBytes } from 'node:crypto';
import { expect, test } from 'vitest';
import { assertStrongApiToken, MIN_TOKEN_BITS, newApiToken, tokenStrengthBits } from './keys.js';

// The estimate reads the alphabet a token's characters happen to use, so a token of just 128-136
// random bits that happens to hold no capital letter estimates under 128 (1.5e-5 of 17-byte
// base64url ones: this test failed about one run in 30). With 160 bits, no alphabet a random token
// can plausibly fall into brings the estimate under 128.
test('random tokens of 160 bits pass, whatever their encoding (and the coordinator\'s own, 192)', () => {
  for (let i = 0; i < 2000; i++) {
    for (const t of [newApiToken(), randomBytes(20).toString('hex'), randomBytes(32).toString('base64'), randomBytes(20).toString('base64url')]) {
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
