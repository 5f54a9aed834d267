// The volunteer's identity: an Ed25519 key pair made with WebCrypto and kept in IndexedDB, so a
// reload (or a later visit) is the same volunteer and keeps its credit.
import { toBase64Url } from '../../coordinator/protocol';
import { openStore, type StoredIdentity } from './db';

const KEY = 'default';

export interface Identity {
  publicKeyRaw: string;
  sign(message: Uint8Array): Promise<string>;
}

async function create(): Promise<StoredIdentity> {
  const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  return { privateKey: pair.privateKey, publicKeyRaw: toBase64Url(raw), createdAt: Date.now() };
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
  const { privateKey, publicKeyRaw } = stored;
  return {
    publicKeyRaw,
    async sign(message) {
      const sig = await crypto.subtle.sign({ name: 'Ed25519' }, privateKey, message as BufferSource);
      return toBase64Url(new Uint8Array(sig));
    },
  };
}
