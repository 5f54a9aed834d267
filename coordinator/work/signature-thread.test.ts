import { generateKeyPairSync, sign } from 'node:crypto';
import { expect, test } from 'vitest';
import { terminateSignatureThread, verifyOffThread } from './signature-thread.js';

const { privateKey } = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519').privateKey;
const raw = String(privateKey.export({ format: 'jwk' }).x);
const message = new TextEncoder().encode('tabgrid-result\nj_1.0\n' + 'ab'.repeat(32));
const good = sign(null, message, privateKey).toString('base64url');

test.each([
  ['a valid signature', raw, message, good, true],
  ['another message', raw, new TextEncoder().encode('tabgrid-result\nj_1.1\n' + 'ab'.repeat(32)), good, false],
  ["another key's signature", raw, message, sign(null, message, other).toString('base64url'), false],
  ['a truncated signature', raw, message, good.slice(0, 40), false],
  ['a key that is not a key', 'AAAA', message, good, false],
])('%s verifies as %s', async (_name, key, msg, sig, expected) => {
  expect(await verifyOffThread(key, msg, sig)).toBe(expected);
});

test('many requests in one turn are answered each for itself', async () => {
  const sigs = Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? sign(null, message, other) : sign(null, message, privateKey)).toString('base64url'));
  const got = await Promise.all(sigs.map((s) => verifyOffThread(raw, message, s)));
  expect(got).toEqual(sigs.map((_, i) => i % 3 !== 0));
});

test('a thread that dies with requests in flight: they are checked on the main thread, not failed', async () => {
  const sigs = Array.from({ length: 300 }, (_, i) => (i % 4 === 0 ? sign(null, message, other) : sign(null, message, privateKey)).toString('base64url'));
  const first = sigs.slice(0, 150).map((s) => verifyOffThread(raw, message, s));
  await new Promise((r) => setImmediate(r)); // the first half is sent to the thread
  const second = sigs.slice(150).map((s) => verifyOffThread(raw, message, s)); // queued on it
  await terminateSignatureThread();
  expect(await Promise.all([...first, ...second])).toEqual(sigs.map((_, i) => i % 4 !== 0));
  // A fresh thread takes the next requests.
  expect(await verifyOffThread(raw, message, good)).toBe(true);
});
