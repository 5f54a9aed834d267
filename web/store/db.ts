// The browser's IndexedDB, typed: a wrong store name or value shape fails to compile.
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { AttentionVariant } from '../gpu/attention';
import type { MatmulConfig } from '../gpu/matmul';

/** The backend a device computes on, its measured speeds and its choice (worker/backend-choice.ts). */
export type Backend = 'webgpu' | 'cpu';

export interface Speeds {
  /** GFLOP/s on the start-up problem; null where the backend is not available. */
  webgpu: number | null;
  cpu: number | null;
}

export interface BackendRecord extends Speeds {
  fingerprint: string;
  choice: Backend;
  measuredAt: number;
}

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

/** What the shard cache knows about one shard; its bytes live in `shard-bytes` under the same key. */
export interface ShardMeta {
  sha256: string;
  size: number;
  /** Larger is more recent (a monotonic clock, so two uses never tie). */
  lastUsed: number;
}

/** The volunteer's choices, kept across visits; each is stored under its own name. */
export interface Settings {
  /** Most bytes the shard cache may hold. */
  shardCacheBytes: number;
  /** Upload speed limit for serving peers, bytes per second; 0 = do not serve peers. */
  uploadBytesPerSecond: number;
  /** Share of time spent computing, 0.05–1. */
  throttle: number;
  pauseWhenHidden: boolean;
  pauseOnBattery: boolean;
  /** Display name shown on rooms' boards and the volunteers list. */
  name: string | null;
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
  'shard-meta': { key: string; value: ShardMeta; indexes: { 'by-last-used': number } };
  'shard-bytes': { key: string; value: ArrayBuffer };
  settings: { key: keyof Settings; value: Settings[keyof Settings] };
  /** This browser's AES-GCM key that seals the identity for export; non-extractable. */
  deviceKeys: { key: string; value: CryptoKey };
  tuning: { key: string; value: StoredTuning };
  /** The measured backend choice for this device (key 'current'). */
  backend: { key: string; value: BackendRecord };
}

let db: Promise<IDBPDatabase<TabgridDB>> | null = null;

export function openStore(): Promise<IDBPDatabase<TabgridDB>> {
  db ??= openDB<TabgridDB>('tabgrid', 5, {
    upgrade(database, oldVersion) {
      if (oldVersion < 1) database.createObjectStore('identity');
      if (oldVersion < 2) {
        database.createObjectStore('shard-meta', { keyPath: 'sha256' }).createIndex('by-last-used', 'lastUsed');
        database.createObjectStore('shard-bytes');
        database.createObjectStore('settings');
      }
      // Versions 3 and 4 were made in parallel: v3 with `deviceKeys` (identity export) or with
      // `backend` (backend choice), v4 with `tuning` (kernel autotuner) or with both v3 stores.
      // Version 5 has all three, so a database of any of those flavours gets the stores it lacks.
      if (oldVersion < 5) {
        for (const name of ['deviceKeys', 'backend', 'tuning'] as const) {
          if (!database.objectStoreNames.contains(name)) database.createObjectStore(name);
        }
      }
    },
  });
  return db;
}
