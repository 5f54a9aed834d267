// A volunteer identity shaped as the page holds one (web/store/identity.ts `Identity`), kept in
// memory: for the page client's tests in Node, where IndexedDB, and so the stored identity, does not exist.
import { toBase64Url } from '../protocol/index.js';

/** A fresh Ed25519 key pair made with WebCrypto, as the page makes it; never exportable. */
export async function memoryIdentity(): Promise<{ publicKeyRaw: string; exportable: boolean; sign(message: Uint8Array): Promise<string> }> {
  const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  return {
    publicKeyRaw: toBase64Url(raw),
    exportable: false,
    sign: async (m) => toBase64Url(new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, pair.privateKey, m as BufferSource))),
  };
}
