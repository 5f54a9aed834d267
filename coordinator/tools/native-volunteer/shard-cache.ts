// The native volunteer's shard cache: the page's ShardCache (web/store/shard-cache.ts) kept in
// memory instead of IndexedDB — the same LRU policy and the same holdings reports to the
// coordinator's tracker, so the page's client and its peer-to-peer serving use it unchanged.
import { createHash } from 'node:crypto';
import { lruEvictions } from '../../../web/store/lru';
import { ShardCache, type HoldingsChange } from '../../../web/store/shard-cache';

interface Entry {
  bytes: Uint8Array;
  lastUsed: number;
}

const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export class MemoryShardCache extends ShardCache {
  private readonly entries = new Map<string, Entry>();
  private memoryCap: number;
  private clockMs = 0;

  constructor(
    capBytes: number,
    private readonly report: (change: HoldingsChange) => void = () => {},
  ) {
    super(capBytes, report);
    this.memoryCap = capBytes;
  }

  override get cap(): number {
    return this.memoryCap;
  }

  private now(): number {
    this.clockMs = Math.max(Date.now(), this.clockMs + 1);
    return this.clockMs;
  }

  override async keys(): Promise<string[]> {
    return [...this.entries.keys()];
  }

  override async usage(): Promise<{ bytes: number; count: number }> {
    let bytes = 0;
    for (const e of this.entries.values()) bytes += e.bytes.length;
    return { bytes, count: this.entries.size };
  }

  override async has(sha: string): Promise<boolean> {
    return this.entries.has(sha);
  }

  override async get(sha: string): Promise<Uint8Array | null> {
    const e = this.entries.get(sha);
    if (!e) return null;
    if (sha256Hex(e.bytes) !== sha) {
      this.drop([sha]);
      return null;
    }
    e.lastUsed = this.now();
    return e.bytes;
  }

  override async put(sha: string, bytes: Uint8Array): Promise<boolean> {
    if (bytes.length > this.memoryCap) return false;
    const existed = this.entries.has(sha);
    const others = [...this.entries].filter(([key]) => key !== sha).map(([key, e]) => ({ key, size: e.bytes.length, lastUsed: e.lastUsed }));
    const evict = lruEvictions(others, this.memoryCap, bytes.length);
    for (const key of evict) this.entries.delete(key);
    this.entries.set(sha, { bytes: bytes.slice(), lastUsed: this.now() });
    if (!existed || evict.length) this.report({ add: existed ? [] : [sha], remove: evict });
    return true;
  }

  override async setCap(capBytes: number): Promise<void> {
    this.memoryCap = capBytes;
    const all = [...this.entries].map(([key, e]) => ({ key, size: e.bytes.length, lastUsed: e.lastUsed }));
    const evict = lruEvictions(all, capBytes);
    if (evict.length) this.drop(evict);
  }

  private drop(keys: string[]) {
    for (const key of keys) this.entries.delete(key);
    this.report({ add: [], remove: keys });
  }
}
