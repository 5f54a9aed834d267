// The browser's IndexedDB, typed: a wrong store name or value shape fails to compile.
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { BackendRecord } from '../compute/backend-choice';

export interface StoredIdentity {
  /** Non-extractable Ed25519 private key: it can sign, and never leaves this browser. */
  privateKey: CryptoKey;
  publicKeyRaw: string;
  createdAt: number;
}

/** What the shard cache knows about one shard; its bytes live in `shard-bytes` under the same key. */
export interface ShardMeta {
  sha256: string;
  size: number;
  /** Larger is more recent (a monotonic clock, so two uses never tie). */
  lastUsed: number;
}

/** Volunteer settings, by name. */
export interface Settings {
  /** Most bytes the shard cache may hold. */
  shardCacheBytes: number;
  /** Upload speed limit for serving peers, bytes per second; 0 = do not serve peers. */
  uploadBytesPerSecond: number;
}

export interface TabgridDB extends DBSchema {
  identity: { key: string; value: StoredIdentity };
  'shard-meta': { key: string; value: ShardMeta; indexes: { 'by-last-used': number } };
  'shard-bytes': { key: string; value: ArrayBuffer };
  settings: { key: keyof Settings; value: number };
  /** The measured backend choice for this device (key 'current'). Since version 3. */
  backend: { key: string; value: BackendRecord };
}

let db: Promise<IDBPDatabase<TabgridDB>> | null = null;

export function openStore(): Promise<IDBPDatabase<TabgridDB>> {
  db ??= openDB<TabgridDB>('tabgrid', 3, {
    upgrade(database, oldVersion) {
      if (oldVersion < 1) database.createObjectStore('identity');
      if (oldVersion < 2) {
        database.createObjectStore('shard-meta', { keyPath: 'sha256' }).createIndex('by-last-used', 'lastUsed');
        database.createObjectStore('shard-bytes');
        database.createObjectStore('settings');
      }
      if (oldVersion < 3) database.createObjectStore('backend');
    },
  });
  return db;
}
