// The volunteer's identity: an Ed25519 key pair made with WebCrypto and kept in IndexedDB, so a
// reload (or a later visit) is the same volunteer and keeps its credit.
//
// Export on request: the signing key is stored non-extractable, so the page cannot read it out.
// Beside it lies a sealed copy — the PKCS#8 encrypted with this browser's own non-extractable
// AES key — which `exportIdentity` unseals and re-encrypts under the volunteer's passphrase
// (identity-file.ts). `importIdentity` does the reverse and replaces this browser's identity.
import { toBase64Url } from '../../coordinator/protocol';
import { openStore, type StoredIdentity } from './db';
import { IdentityFileError, openIdentityFile, sealIdentityFile, type IdentityFile } from './identity-file';

const KEY = 'default';

export interface Identity {
  publicKeyRaw: string;
  /** False for identities made before export existed. */
  exportable: boolean;
  sign(message: Uint8Array): Promise<string>;
}

async function deviceKey(): Promise<CryptoKey> {
  const db = await openStore();
  const existing = await db.get('deviceKeys', 'seal');
  if (existing) return existing;
  const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  try {
    await db.add('deviceKeys', key, 'seal');
    return key;
  } catch {
    return (await db.get('deviceKeys', 'seal')) ?? key; // another tab made one first
  }
}

/** Stores a private key (PKCS#8) as this browser's identity: non-extractable, plus a sealed copy. */
async function fromPkcs8(pkcs8: ArrayBuffer): Promise<StoredIdentity> {
  const extractable = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, true, ['sign']);
  const jwk = await crypto.subtle.exportKey('jwk', extractable);
  const privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const data = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, await deviceKey(), pkcs8);
  return { privateKey, publicKeyRaw: String(jwk.x), createdAt: Date.now(), sealed: { iv, data } };
}

async function create(): Promise<StoredIdentity> {
  const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  return fromPkcs8(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
}

function wrap(stored: StoredIdentity): Identity {
  const { privateKey, publicKeyRaw } = stored;
  return {
    publicKeyRaw,
    exportable: !!stored.sealed,
    async sign(message) {
      const sig = await crypto.subtle.sign({ name: 'Ed25519' }, privateKey, message as BufferSource);
      return toBase64Url(new Uint8Array(sig));
    },
  };
}

export async function loadIdentity(): Promise<Identity> {
  const db = await openStore();
  let stored = await db.get('identity', KEY);
  if (!stored) {
    stored = await create();
    // add() fails if another tab created one first; then use theirs.
    try {
      await db.add('identity', stored, KEY);
    } catch {
      stored = (await db.get('identity', KEY)) ?? stored;
    }
  }
  return wrap(stored);
}

/** The identity as a passphrase-encrypted backup file (JSON). */
export async function exportIdentity(passphrase: string): Promise<IdentityFile> {
  const db = await openStore();
  const stored = await db.get('identity', KEY);
  if (!stored) throw new IdentityFileError('this browser has no identity yet');
  if (!stored.sealed) throw new IdentityFileError('this identity was made before export existed and cannot leave this browser');
  const pkcs8 = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: stored.sealed.iv }, await deviceKey(), stored.sealed.data);
  return sealIdentityFile(pkcs8, stored.publicKeyRaw, passphrase);
}

/** Replaces this browser's identity with the one in a backup file; returns its public key. */
export async function importIdentity(fileText: string, passphrase: string): Promise<string> {
  const { pkcs8, publicKey } = await openIdentityFile(fileText, passphrase);
  let stored: StoredIdentity;
  try {
    stored = await fromPkcs8(pkcs8);
  } catch {
    throw new IdentityFileError('the file does not hold an Ed25519 private key');
  }
  if (stored.publicKeyRaw !== publicKey) throw new IdentityFileError('the private key does not match the public key in the file');
  const db = await openStore();
  await db.put('identity', stored, KEY);
  return stored.publicKeyRaw;
}
