// Content-addressed shard storage: immutable byte blobs named by their sha-256, one file each under
// <data>/shards/ab/<sha256>. Written to a temp file, fsynced and renamed, so a crash never leaves a
// half-written shard under a real name.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, existsSync, statSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class ShardStore {
  private readonly cache = new Map<string, Uint8Array>();
  private cacheBytes = 0;

  constructor(
    readonly dir: string,
    /** Recently read shards stay in memory up to this many bytes (cheap checks re-read inputs). */
    private readonly cacheLimit = 256 * 1024 * 1024,
  ) {
    mkdirSync(join(dir, 'tmp'), { recursive: true });
  }

  pathOf(sha: string): string {
    return join(this.dir, sha.slice(0, 2), sha);
  }

  has(sha: string): boolean {
    return existsSync(this.pathOf(sha));
  }

  size(sha: string): number | null {
    try {
      return statSync(this.pathOf(sha)).size;
    } catch {
      return null;
    }
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
    return sha;
  }

  async get(sha: string): Promise<Uint8Array | null> {
    const hit = this.cache.get(sha);
    if (hit) {
      this.cache.delete(sha);
      this.cache.set(sha, hit); // most recently used last
      return hit;
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(this.pathOf(sha)));
    } catch {
      return null;
    }
    this.remember(sha, bytes);
    return bytes;
  }

  private remember(sha: string, bytes: Uint8Array) {
    if (bytes.length > this.cacheLimit / 4) return;
    this.cache.set(sha, bytes);
    this.cacheBytes += bytes.length;
    for (const [key, value] of this.cache) {
      if (this.cacheBytes <= this.cacheLimit) break;
      this.cache.delete(key);
      this.cacheBytes -= value.length;
    }
  }
}
