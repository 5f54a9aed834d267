// The browser's IndexedDB, typed: a wrong store name or value shape fails to compile.
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';

export interface StoredIdentity {
  /** Non-extractable Ed25519 private key: it can sign, and the page cannot read it out. */
  privateKey: CryptoKey;
  publicKeyRaw: string;
  createdAt: number;
  /**
   * The same private key as PKCS#8, encrypted (AES-GCM) with this browser's non-extractable
   * device key, so the volunteer can export it on request. Absent for identities made before
   * export existed: those cannot be exported.
   */
  sealed?: { iv: Uint8Array<ArrayBuffer>; data: ArrayBuffer };
}

/** The volunteer's choices, kept across visits. */
export interface Settings {
  /** Share of time spent computing, 0.05–1. */
  throttle: number;
  pauseWhenHidden: boolean;
  pauseOnBattery: boolean;
  /** Display name shown on rooms' boards and the volunteers list. */
  name: string | null;
}

export interface TabgridDB extends DBSchema {
  identity: { key: string; value: StoredIdentity };
  settings: { key: string; value: Settings };
  /** This browser's AES-GCM key that seals the identity for export; non-extractable. */
  deviceKeys: { key: string; value: CryptoKey };
}

let db: Promise<IDBPDatabase<TabgridDB>> | null = null;

export function openStore(): Promise<IDBPDatabase<TabgridDB>> {
  db ??= openDB<TabgridDB>('tabgrid', 2, {
    upgrade(database, oldVersion) {
      if (oldVersion < 1) database.createObjectStore('identity');
      if (oldVersion < 2) {
        database.createObjectStore('settings');
        database.createObjectStore('deviceKeys');
      }
    },
  });
  return db;
}
