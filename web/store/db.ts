// The browser's IndexedDB, typed: a wrong store name or value shape fails to compile.
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { AttentionVariant } from '../gpu/attention';
import type { MatmulConfig } from '../gpu/matmul';

export interface StoredIdentity {
  /** Non-extractable Ed25519 private key: it can sign, and never leaves this browser. */
  privateKey: CryptoKey;
  publicKeyRaw: string;
  createdAt: number;
}

/** The autotuner's choices for one device, keyed by adapter info and limits (see gpu/autotune.ts). */
export interface StoredTuning {
  config: MatmulConfig;
  /** Throughput of the chosen config on the tuning problem, GFLOP/s. */
  gflops: number;
  /** The tuning problem, e.g. `256×256×256`. */
  problem: string;
  /** The faster flash-attention kernel on this device. */
  attention: AttentionVariant;
  tunedAt: number;
}

export interface TabgridDB extends DBSchema {
  identity: { key: string; value: StoredIdentity };
  tuning: { key: string; value: StoredTuning };
}

let db: Promise<IDBPDatabase<TabgridDB>> | null = null;

export function openStore(): Promise<IDBPDatabase<TabgridDB>> {
  db ??= openDB<TabgridDB>('tabgrid', 2, {
    upgrade(database, oldVersion) {
      if (oldVersion < 1) database.createObjectStore('identity');
      if (oldVersion < 2) database.createObjectStore('tuning');
    },
  });
  return db;
}
