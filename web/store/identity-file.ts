// The identity backup file: the Ed25519 private key (PKCS#8) encrypted with a key derived from the
// volunteer's passphrase (PBKDF2-SHA-256, 600,000 iterations, AES-256-GCM). Plain WebCrypto, so it
// runs in the page and in Node's tests alike.
import { z } from 'zod';
import { fromBase64Url, toBase64Url } from '../../coordinator/protocol';

export const PBKDF2_ITERATIONS = 600_000;
export const MIN_PASSPHRASE = 8;

const B64 = z.string().max(4096).regex(/^[A-Za-z0-9_-]*$/);
export const IdentityFile = z
  .object({
    format: z.literal('tabgrid-identity'),
    version: z.literal(1),
    publicKey: B64,
    kdf: z.object({ name: z.literal('PBKDF2'), hash: z.literal('SHA-256'), iterations: z.number().int().min(100_000).max(10_000_000), salt: B64 }).strict(),
    cipher: z.object({ name: z.literal('AES-GCM'), iv: B64 }).strict(),
    data: B64,
  })
  .strict();
export type IdentityFile = z.infer<typeof IdentityFile>;

export class IdentityFileError extends Error {
  override name = 'IdentityFileError';
}

async function passphraseKey(passphrase: string, salt: Uint8Array, iterations: number): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(passphrase), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt: salt as BufferSource, iterations },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

export async function sealIdentityFile(pkcs8: ArrayBuffer, publicKey: string, passphrase: string, iterations = PBKDF2_ITERATIONS): Promise<IdentityFile> {
  if (passphrase.length < MIN_PASSPHRASE) throw new IdentityFileError(`the passphrase needs at least ${MIN_PASSPHRASE} characters`);
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await passphraseKey(passphrase, salt, iterations);
  // The public key is authenticated data: a file whose public key was swapped fails to open.
  const data = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(publicKey) }, key, pkcs8);
  return {
    format: 'tabgrid-identity',
    version: 1,
    publicKey,
    kdf: { name: 'PBKDF2', hash: 'SHA-256', iterations, salt: toBase64Url(salt) },
    cipher: { name: 'AES-GCM', iv: toBase64Url(iv) },
    data: toBase64Url(new Uint8Array(data)),
  };
}

/** Decrypts a backup file; returns the private key as PKCS#8 and the public key it claims. */
export async function openIdentityFile(text: string, passphrase: string): Promise<{ pkcs8: ArrayBuffer; publicKey: string }> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new IdentityFileError('this is not a tabgrid identity file (not JSON)');
  }
  const parsed = IdentityFile.safeParse(raw);
  if (!parsed.success) throw new IdentityFileError('this is not a tabgrid identity file');
  const f = parsed.data;
  const key = await passphraseKey(passphrase, fromBase64Url(f.kdf.salt), f.kdf.iterations);
  try {
    const pkcs8 = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: fromBase64Url(f.cipher.iv) as BufferSource, additionalData: new TextEncoder().encode(f.publicKey) },
      key,
      fromBase64Url(f.data) as BufferSource,
    );
    return { pkcs8, publicKey: f.publicKey };
  } catch {
    throw new IdentityFileError('wrong passphrase, or the file was altered');
  }
}
