// The shard cache: content-addressed input shards in IndexedDB, capped in bytes, least recently
// used evicted first. Every read re-checks the sha-256, so a corrupted entry is dropped (and
// fetched again) instead of computed with or served to peers.
import { openStore } from './db';
import { lruEvictions } from './lru';
import { sha256Hex } from '../../coordinator/protocol/sha256';

/** Shards that entered or left the cache (the coordinator's tracker is told). */
export type HoldingsChange = { add: string[]; remove: string[] };

export class ShardCache {
  private clock = 0;

  constructor(
    private capBytes: number,
    private readonly onChange: (change: HoldingsChange) => void = () => {},
  ) {}

  get cap(): number {
    return this.capBytes;
  }

  /** Monotonic "now": two uses in the same millisecond still order. */
  private tick(): number {
    this.clock = Math.max(Date.now(), this.clock + 1);
    return this.clock;
  }

  async keys(): Promise<string[]> {
    return (await openStore()).getAllKeys('shard-meta');
  }

  async usage(): Promise<{ bytes: number; count: number }> {
    const all = await (await openStore()).getAll('shard-meta');
    return { bytes: all.reduce((s, m) => s + m.size, 0), count: all.length };
  }

  /** Metadata only: no sha-256 check (serving a peer re-reads with get()). */
  async has(sha: string): Promise<boolean> {
    return (await (await openStore()).getKey('shard-meta', sha)) !== undefined;
  }

  /** The shard's bytes if cached and intact; a corrupted entry is dropped and reads as a miss. */
  async get(sha: string): Promise<Uint8Array | null> {
    const db = await openStore();
    const buffer = await db.get('shard-bytes', sha);
    if (!buffer) return null;
    const bytes = new Uint8Array(buffer);
    if ((await sha256Hex(bytes)) !== sha) {
      await this.remove([sha]);
      return null;
    }
    const tx = db.transaction('shard-meta', 'readwrite');
    const meta = await tx.store.get(sha);
    if (meta) await tx.store.put({ ...meta, lastUsed: this.tick() });
    await tx.done;
    return bytes;
  }

  /**
   * Stores bytes the caller has already checked against `sha`, evicting least recently used
   * shards to make room. A shard larger than the whole cap is not kept. Returns whether it was.
   */
  async put(sha: string, bytes: Uint8Array): Promise<boolean> {
    if (bytes.length > this.capBytes) return false;
    const db = await openStore();
    const tx = db.transaction(['shard-meta', 'shard-bytes'], 'readwrite');
    const metas = tx.objectStore('shard-meta');
    const blobs = tx.objectStore('shard-bytes');
    const others = (await metas.getAll()).filter((m) => m.sha256 !== sha);
    const existed = (await metas.getKey(sha)) !== undefined;
    const evict = lruEvictions(
      others.map((m) => ({ key: m.sha256, size: m.size, lastUsed: m.lastUsed })),
      this.capBytes,
      bytes.length,
    );
    for (const key of evict) {
      void metas.delete(key);
      void blobs.delete(key);
    }
    void metas.put({ sha256: sha, size: bytes.length, lastUsed: this.tick() });
    void blobs.put(bytes.slice().buffer, sha);
    await tx.done;
    if (!existed || evict.length) this.onChange({ add: existed ? [] : [sha], remove: evict });
    return true;
  }

  /** Changes the cap, evicting least recently used shards until the cache fits. */
  async setCap(capBytes: number): Promise<void> {
    this.capBytes = capBytes;
    const db = await openStore();
    const all = await db.getAll('shard-meta');
    const evict = lruEvictions(all.map((m) => ({ key: m.sha256, size: m.size, lastUsed: m.lastUsed })), capBytes);
    if (evict.length) await this.remove(evict);
  }

  private async remove(keys: string[]): Promise<void> {
    const db = await openStore();
    const tx = db.transaction(['shard-meta', 'shard-bytes'], 'readwrite');
    for (const key of keys) {
      void tx.objectStore('shard-meta').delete(key);
      void tx.objectStore('shard-bytes').delete(key);
    }
    await tx.done;
    this.onChange({ add: [], remove: keys });
  }
}
