// Content-addressed shard storage: immutable byte blobs named by their sha-256. The default keeps
// one file each under <data>/shards/ab/<sha256>, written to a temp file, fsynced and renamed (and
// the directory fsynced), so a crash never leaves a half-written shard under a real name and an
// acknowledged upload survives a power cut. pg-store.ts keeps them in PostgreSQL instead, so that
// every coordinator sharing the database can serve every shard.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, existsSync, statSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface ShardStore {
  /** Stores the bytes durably (before resolving) and returns their sha-256. */
  put(bytes: Uint8Array): Promise<string>;
  get(sha: string): Promise<Uint8Array | null>;
  /** The shard's size in bytes, null when there is no such shard. */
  size(sha: string): Promise<number | null>;
  /** Which of these shards exist (one query for many: the tracker checks claims with it). */
  existing(shas: string[]): Promise<Set<string>>;
}

/** Recently read shards stay in memory up to a byte budget (cheap checks re-read inputs). */
export class ShardMemoryCache {
  private readonly cache = new Map<string, Uint8Array>();
  private cacheBytes = 0;

  constructor(private readonly cacheLimit = 256 * 1024 * 1024) {}

  get(sha: string): Uint8Array | undefined {
    const hit = this.cache.get(sha);
    if (hit) {
      this.cache.delete(sha);
      this.cache.set(sha, hit); // most recently used last
    }
    return hit;
  }

  remember(sha: string, bytes: Uint8Array) {
    if (bytes.length > this.cacheLimit / 4 || this.cache.has(sha)) return;
    this.cache.set(sha, bytes);
    this.cacheBytes += bytes.length;
    for (const [key, value] of this.cache) {
      if (this.cacheBytes <= this.cacheLimit) break;
      this.cache.delete(key);
      this.cacheBytes -= value.length;
    }
  }
}

export class FileShardStore implements ShardStore {
  private readonly cache: ShardMemoryCache;

  constructor(
    readonly dir: string,
    cacheLimit?: number,
  ) {
    this.cache = new ShardMemoryCache(cacheLimit);
    mkdirSync(join(dir, 'tmp'), { recursive: true });
  }

  pathOf(sha: string): string {
    return join(this.dir, sha.slice(0, 2), sha);
  }

  has(sha: string): boolean {
    return existsSync(this.pathOf(sha));
  }

  async size(sha: string): Promise<number | null> {
    try {
      return statSync(this.pathOf(sha)).size;
    } catch {
      return null;
    }
  }

  async existing(shas: string[]): Promise<Set<string>> {
    return new Set(shas.filter((sha) => /^[0-9a-f]{64}$/.test(sha) && this.has(sha)));
  }

  async put(bytes: Uint8Array): Promise<string> {
    const sha = sha256Hex(bytes);
    if (this.has(sha)) return sha;
    mkdirSync(join(this.dir, sha.slice(0, 2)), { recursive: true });
    const tmp = join(this.dir, 'tmp', randomUUID());
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, this.pathOf(sha));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    // The rename is durable only once its directory is.
    const dirHandle = await open(join(this.dir, sha.slice(0, 2)), 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
    return sha;
  }

  async get(sha: string): Promise<Uint8Array | null> {
    const hit = this.cache.get(sha);
    if (hit) return hit;
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(this.pathOf(sha)));
    } catch {
      return null;
    }
    this.cache.remember(sha, bytes);
    return bytes;
  }
}
