// sha-256 as 64 lowercase hex characters (WebCrypto): the name of every shard and result. The
// coordinator hashes with node:crypto (store/shards.ts); browsers and tests use this one.
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}
