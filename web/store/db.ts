// The browser's IndexedDB, typed: a wrong store name or value shape fails to compile.
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';

export interface StoredIdentity {
  /** Non-extractable Ed25519 private key: it can sign, and never leaves this browser. */
  privateKey: CryptoKey;
  publicKeyRaw: string;
  createdAt: number;
}

export interface TabgridDB extends DBSchema {
  identity: { key: string; value: StoredIdentity };
}

let db: Promise<IDBPDatabase<TabgridDB>> | null = null;

export function openStore(): Promise<IDBPDatabase<TabgridDB>> {
  db ??= openDB<TabgridDB>('tabgrid', 1, {
    upgrade(database) {
      database.createObjectStore('identity');
    },
  });
  return db;
}
