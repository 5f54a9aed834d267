// Least-recently-used eviction as a pure policy, so it is tested apart from IndexedDB.

export interface LruEntry {
  key: string;
  size: number;
  /** Larger is more recent. */
  lastUsed: number;
}

/**
 * The keys to evict, least recently used first, so that the entries left plus `incoming` bytes fit
 * in `capBytes`. Keys in `keep` (e.g. the entry being replaced) are never chosen.
 */
export function lruEvictions(entries: LruEntry[], capBytes: number, incoming = 0, keep: ReadonlySet<string> = new Set()): string[] {
  let total = incoming + entries.reduce((sum, e) => sum + e.size, 0);
  const evict: string[] = [];
  for (const e of [...entries].sort((x, y) => x.lastUsed - y.lastUsed)) {
    if (total <= capBytes) break;
    if (keep.has(e.key)) continue;
    evict.push(e.key);
    total -= e.size;
  }
  return evict;
}
