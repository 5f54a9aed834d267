// The native volunteer's identity: an Ed25519 key pair kept in a PEM file (PKCS#8) readable by its
// owner alone (0600), made on first start. The same file is the same volunteer with the same credit
// on every later start, as IndexedDB is for a browser. It signs what the page signs (the hello, each
// result), behind the page's own Identity interface, so web/client's CoordinatorClient uses it as is.
import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, openSync, readFileSync, statSync, writeSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Identity } from '../../../web/store/identity';

export interface FileIdentity extends Identity {
  /** Where the key lives. */
  file: string;
  /** True when this start made the key (a new volunteer). */
  created: boolean;
  privateKey: KeyObject;
}

function wrap(file: string, privateKey: KeyObject, created: boolean): FileIdentity {
  const publicKeyRaw = String(privateKey.export({ format: 'jwk' }).x);
  return {
    file,
    created,
    privateKey,
    publicKeyRaw,
    exportable: true,
    sign: async (message) => sign(null, message, privateKey).toString('base64url'),
  };
}

/**
 * Loads the key in `file`, or makes one there (the folder too, 0700). A key file that others can
 * read is tightened to 0600 and a warning logged, as ssh would want; one that is not an Ed25519
 * private key is an error (never overwritten: it may be someone's identity).
 */
export function loadFileIdentity(file: string, log: (msg: string) => void = () => {}): FileIdentity {
  let pem: string | null = null;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (pem !== null) {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) {
      log(`${file} was readable by others (mode ${mode.toString(8)}): now 0600`);
      chmodSync(file, 0o600);
    }
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${file} holds a ${key.asymmetricKeyType} key, not an Ed25519 identity`);
    return wrap(file, key, false);
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  // 'wx': never replace a key another process made a moment ago; 0600 from the start.
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadFileIdentity(file, log);
    throw err;
  }
  try {
    writeSync(fd, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
  } finally {
    closeSync(fd);
  }
  chmodSync(file, 0o600); // whatever the umask
  return wrap(file, privateKey, true);
}
