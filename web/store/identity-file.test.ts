// The identity backup format round-trips a real Ed25519 key and refuses wrong passphrases, altered
// files and things that are not backups.
import { describe, expect, test } from 'vitest';
import { IdentityFileError, MIN_PASSPHRASE, openIdentityFile, sealIdentityFile } from './identity-file';

const FAST = 100_000; // the format's minimum; the page uses 600,000

async function keyPair() {
  const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', pair.privateKey);
  const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
  return { pair, pkcs8, publicKey: String(jwk.x) };
}

describe('identity backup file', () => {
  test('round-trips: the reopened key signs what the original public key verifies', async () => {
    const { pair, pkcs8, publicKey } = await keyPair();
    const file = await sealIdentityFile(pkcs8, publicKey, 'correct horse battery', FAST);
    expect(JSON.stringify(file)).not.toContain(Buffer.from(pkcs8).toString('base64url'));
    const opened = await openIdentityFile(JSON.stringify(file), 'correct horse battery');
    expect(opened.publicKey).toBe(publicKey);
    const key = await crypto.subtle.importKey('pkcs8', opened.pkcs8, { name: 'Ed25519' }, false, ['sign']);
    const msg = new TextEncoder().encode('tabgrid');
    const sig = await crypto.subtle.sign({ name: 'Ed25519' }, key, msg);
    expect(await crypto.subtle.verify({ name: 'Ed25519' }, pair.publicKey, sig, msg)).toBe(true);
  });

  test('a wrong passphrase, a swapped public key or flipped ciphertext fail', async () => {
    const { pkcs8, publicKey } = await keyPair();
    const other = await keyPair();
    const file = await sealIdentityFile(pkcs8, publicKey, 'correct horse battery', FAST);
    await expect(openIdentityFile(JSON.stringify(file), 'wrong passphrase')).rejects.toThrow('wrong passphrase');
    await expect(openIdentityFile(JSON.stringify({ ...file, publicKey: other.publicKey }), 'correct horse battery')).rejects.toThrow(IdentityFileError);
    const flipped = file.data.slice(0, 10) + (file.data[10] === 'A' ? 'B' : 'A') + file.data.slice(11);
    await expect(openIdentityFile(JSON.stringify({ ...file, data: flipped }), 'correct horse battery')).rejects.toThrow(IdentityFileError);
  });

  test.each([
    ['not json', 'not JSON'],
    ['{}', 'not a tabgrid identity file'],
    [JSON.stringify({ format: 'tabgrid-identity', version: 2 }), 'not a tabgrid identity file'],
  ])('refuses %s', async (text, message) => {
    await expect(openIdentityFile(text, 'whatever1')).rejects.toThrow(message);
  });

  test('refuses a short passphrase', async () => {
    const { pkcs8, publicKey } = await keyPair();
    await expect(sealIdentityFile(pkcs8, publicKey, 'x'.repeat(MIN_PASSPHRASE - 1), FAST)).rejects.toThrow('at least');
  });
});
