// Keys and secrets kept in the data directory: the coordinator's Ed25519 signing key (ledger) and
// the researcher API token. Volunteer public keys arrive raw (32 bytes) and are checked here.
import { createPublicKey, generateKeyPairSync, randomBytes, createHash, verify, createPrivateKey, type KeyObject } from 'node:crypto';
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

/** A fresh API token: 192 random bits, base64url, with the `tg_` prefix. */
export function newApiToken(): string {
  return `tg_${randomBytes(24).toString('base64url')}`;
}

/** The least randomness an API token must carry. */
export const MIN_TOKEN_BITS = 128;

/**
 * An upper bound on the randomness in `token`, in bits: its length (less a `tg_` prefix) times
 * log2 of the smallest usual alphabet that holds all its characters (digits, hex, lower-case
 * letters and digits, letters and digits, base64/base64url, printable ASCII), and nothing for a
 * token of fewer than 8 distinct characters or one that repeats three-character pieces (a
 * pattern, a repeated word). A random token
 * scores its true strength; a made-up one scores at most what it could have been.
 */
export function tokenStrengthBits(token: string): number {
  const body = token.replace(/^tg_/, '');
  if (new Set(body).size < 8) return 0;
  // Random text rarely repeats a three-character piece; a pattern or a word list does.
  const trigrams = new Set<string>();
  for (let i = 0; i + 3 <= body.length; i++) trigrams.add(body.slice(i, i + 3));
  if (trigrams.size < 0.75 * (body.length - 2)) return 0;
  const alphabets: [RegExp, number][] = [
    [/^[0-9]*$/, 10],
    [/^[0-9a-f]*$/, 16],
    [/^[0-9A-F]*$/, 16],
    [/^[0-9a-z]*$/, 36],
    [/^[0-9A-Z]*$/, 36],
    [/^[0-9A-Za-z]*$/, 62],
    [/^[0-9A-Za-z_-]*$/, 64],
    [/^[0-9A-Za-z+/]*={0,2}$/, 64],
    [/^[\x21-\x7e]*$/, 94],
  ];
  const size = alphabets.find(([re]) => re.test(body))?.[1] ?? 0;
  const chars = body.replace(/=+$/, '').length;
  return size ? Math.floor(chars * Math.log2(size)) : 0;
}

/** Throws, saying how to make a good one, when `token` (from `source`) carries under 128 bits. */
export function assertStrongApiToken(token: string, source: string) {
  const bits = tokenStrengthBits(token);
  if (bits >= MIN_TOKEN_BITS) return;
  throw new Error(
    `the API token in ${source} is too weak (${bits ? `at most ${bits}` : 'no'} bits of randomness; at least ${MIN_TOKEN_BITS} are needed). ` +
      `Make one with: node -e "console.log('tg_' + require('crypto').randomBytes(24).toString('base64url'))" ` +
      `(or: openssl rand -hex 32), or leave TABGRID_API_TOKEN unset and the coordinator makes one in data/api-token.`,
  );
}

/**
 * The API token: TABGRID_API_TOKEN if set, else the one stored in the data dir (created on first
 * start). Either is refused when it carries under 128 bits of randomness.
 */
export function loadOrCreateApiToken(dataDir: string, fromEnv: string | undefined): string {
  if (fromEnv && fromEnv.length > 0) {
    assertStrongApiToken(fromEnv, 'TABGRID_API_TOKEN');
    return fromEnv;
  }
  const file = join(dataDir, TOKEN_FILE);
  if (existsSync(file)) {
    const stored = readFileSync(file, 'utf8').trim();
    assertStrongApiToken(stored, file);
    return stored;
  }
  const token = newApiToken();
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return token;
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
