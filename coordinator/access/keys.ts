// Keys and secrets kept in the data directory: the coordinator's Ed25519 signing key (ledger) and
// the researcher API token. Volunteer public keys arrive raw (32 bytes) and are checked here.
import { createPublicKey, generateKeyPairSync, randomBytes, timingSafeEqual, createHash, verify, createPrivateKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromBase64Url } from '../protocol/canonical.js';

export interface CoordinatorKeys {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Raw public key, base64url: what verifiers need. */
  publicKeyRaw: string;
}

const KEY_FILE = 'coordinator-key.pem';
const TOKEN_FILE = 'api-token';

export function loadOrCreateCoordinatorKeys(dataDir: string): CoordinatorKeys {
  const file = join(dataDir, KEY_FILE);
  let privateKey: KeyObject;
  if (existsSync(file)) {
    privateKey = createPrivateKey(readFileSync(file));
  } else {
    privateKey = generateKeyPairSync('ed25519').privateKey;
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  }
  const publicKey = createPublicKey(privateKey);
  const jwk = publicKey.export({ format: 'jwk' });
  return { privateKey, publicKey, publicKeyRaw: String(jwk.x) };
}

/** Loads the coordinator's existing keys (for `ledger export`), without creating anything. */
export function loadCoordinatorKeys(dataDir: string): CoordinatorKeys {
  if (!existsSync(join(dataDir, KEY_FILE))) throw new Error(`no coordinator key in ${dataDir}: is this a tabgrid data directory?`);
  return loadOrCreateCoordinatorKeys(dataDir);
}

/** Loads the coordinator's public key only (for `ledger verify`), without creating anything. */
export function loadCoordinatorPublicKey(dataDir: string): KeyObject {
  const file = join(dataDir, KEY_FILE);
  if (!existsSync(file)) throw new Error(`no coordinator key at ${file}: is this a tabgrid data directory?`);
  return createPublicKey(createPrivateKey(readFileSync(file)));
}

/** The API token: TABGRID_API_TOKEN if set, else the one stored in the data dir (created on first start). */
export function loadOrCreateApiToken(dataDir: string, fromEnv: string | undefined): string {
  if (fromEnv && fromEnv.length > 0) return fromEnv;
  const file = join(dataDir, TOKEN_FILE);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const token = `tg_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return token;
}

export function tokenMatches(expected: string, given: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

const P = 2n ** 255n - 19n;
/** y of an Ed25519 point of order 8 (libsodium's blocklist); its negation -y is the other one. */
const Y8 = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n;
const SMALL_ORDER_Y = new Set([0n, 1n, P - 1n, Y8, P - Y8]);

/**
 * Is this 32-byte encoding a point of small order (or a non-canonical encoding)? With such a key,
 * a matching small-order signature "verifies" for every message — the fuzzer found that
 * an all-zero key and signature pass OpenSSL's check — so no identity may use one.
 */
export function isWeakEd25519Key(bytes: Uint8Array): boolean {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? bytes[i] & 0x7f : bytes[i]);
  return y >= P || SMALL_ORDER_Y.has(y);
}

/** Imports a raw Ed25519 public key (base64url, 32 bytes); null when it is not one, or a weak one. */
export function volunteerPublicKey(raw: string): KeyObject | null {
  try {
    const bytes = fromBase64Url(raw);
    if (bytes.length !== 32 || isWeakEd25519Key(bytes)) return null;
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' });
  } catch {
    return null;
  }
}

/** A volunteer's id is derived from its public key, so nobody can pick someone else's. */
export function volunteerId(rawPublicKey: string): string {
  return `v_${createHash('sha256').update(fromBase64Url(rawPublicKey)).digest('hex').slice(0, 24)}`;
}

export function verifySignature(key: KeyObject, message: Uint8Array, signatureB64Url: string): boolean {
  try {
    const sig = fromBase64Url(signatureB64Url);
    if (sig.length !== 64) return false;
    return verify(null, message, key, sig);
  } catch {
    return false;
  }
}
