// The browser's IndexedDB, typed: a wrong store name or value shape fails to compile.
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { BackendRecord } from '../compute/backend-choice';

export interface StoredIdentity {
  /** Non-extractable Ed25519 private key: it can sign, and never leaves this browser. */
  privateKey: CryptoKey;
  publicKeyRaw: string;
  createdAt: number;
}

export interface TabgridDB extends DBSchema {
  identity: { key: string; value: StoredIdentity };
  /** The measured backend choice for this device (key 'current'). Since version 2. */
  backend: { key: string; value: BackendRecord };
}

let db: Promise<IDBPDatabase<TabgridDB>> | null = null;

export function openStore(): Promise<IDBPDatabase<TabgridDB>> {
  db ??= openDB<TabgridDB>('tabgrid', 2, {
    upgrade(database, oldVersion) {
      if (oldVersion < 1) database.createObjectStore('identity');
      if (oldVersion < 2) database.createObjectStore('backend');
    },
  });
  return db;
}
