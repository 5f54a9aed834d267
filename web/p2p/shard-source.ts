// Where a work unit's input shards come from: the local cache, else the peers the coordinator
// recommended (one after another), else the coordinator's GET /shards/<sha256>. Every byte is
// checked against its sha-256; a peer whose bytes fail is reported and skipped.
import type { ShardCache } from '../store/shard-cache';
import { sha256Hex } from '../../coordinator/protocol/sha256';
import { PeerFetchError, type FetchOptions, type Swarm } from './swarm';

export type ShardOrigin = 'cache' | 'peer' | 'coordinator';

export interface TrafficStats {
  /** Shard bytes received from peers. */
  fromPeers: number;
  /** Shard bytes received from the coordinator. */
  fromCoordinator: number;
  /** Shard bytes this page served to peers. */
  servedToPeers: number;
  /** Peer attempts that failed (unavailable, refused, timed out, closed, bad bytes). */
  peerFailures: number;
  /** Time spent receiving peers' transfers (answer to last byte), for throughput. */
  peerTransferMs: number;
}

export interface ShardSourceOptions {
  cache: ShardCache;
  /** Coordinator base URL. */
  url: string;
  /** A peer served bytes that did not match their sha-256. */
  reportBadPeer: (peerId: string, sha256: string, reason: string) => void;
  /** A peer served bytes that matched their sha-256 (the coordinator may then recommend it for them). */
  reportServed?: (peerId: string, sha256: string) => void;
  onStats?: (stats: TrafficStats) => void;
  fetchOptions?: FetchOptions;
  /** How long a peer's request for a shard we neither hold nor fetch waits for our fetch to start. */
  serveGraceMs?: number;
  /** Longest wait for the coordinator's response or its next chunk of bytes before giving up. */
  coordinatorStallMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ShardSource {
  readonly stats: TrafficStats = { fromPeers: 0, fromCoordinator: 0, servedToPeers: 0, peerFailures: 0, peerTransferMs: 0 };
  /** Null until this page has joined the swarm (or when WebRTC is unavailable). */
  swarm: Swarm | null = null;
  private readonly inflight = new Map<string, Promise<{ bytes: Uint8Array; origin: ShardOrigin }>>();

  constructor(private readonly opts: ShardSourceOptions) {}

  private changed() {
    this.opts.onStats?.({ ...this.stats });
  }

  countServed(bytes: number) {
    this.stats.servedToPeers += bytes;
    this.changed();
  }

  countTransferTime(ms: number) {
    this.stats.peerTransferMs += ms;
  }

  /** A shard's verified bytes and where they came from; concurrent calls for one shard share a fetch. */
  get(sha256: string, peers: readonly string[] = []): Promise<{ bytes: Uint8Array; origin: ShardOrigin }> {
    const running = this.inflight.get(sha256);
    if (running) return running;
    const task: Promise<{ bytes: Uint8Array; origin: ShardOrigin }> = this.load(sha256, peers).finally(() => {
      if (this.inflight.get(sha256) === task) this.inflight.delete(sha256);
    });
    this.inflight.set(sha256, task);
    return task;
  }

  /** The unit that wanted this shard gave up on it: the next get() starts afresh instead of joining a stuck fetch. */
  abandon(sha256: string) {
    this.inflight.delete(sha256);
  }

  /** What a peer asking us for a shard gets: our cached copy, or our own fetch once it lands. */
  async forPeer(sha256: string): Promise<Uint8Array | null> {
    const cached = await this.opts.cache.get(sha256);
    if (cached) return cached;
    // The coordinator may have named us as a holder a moment before our own fetch starts.
    const until = Date.now() + (this.opts.serveGraceMs ?? 1500);
    for (;;) {
      const running = this.inflight.get(sha256);
      if (running) return running.then((r) => r.bytes).catch(() => null);
      if (Date.now() >= until) return null;
      await sleep(50);
    }
  }

  private async load(sha256: string, peers: readonly string[]): Promise<{ bytes: Uint8Array; origin: ShardOrigin }> {
    const cached = await this.opts.cache.get(sha256);
    if (cached) return { bytes: cached, origin: 'cache' };
    const fromPeer = await this.fromPeers(sha256, peers);
    if (fromPeer) {
      this.stats.fromPeers += fromPeer.length;
      await this.keep(sha256, fromPeer);
      this.changed();
      return { bytes: fromPeer, origin: 'peer' };
    }
    const bytes = await this.fromCoordinator(sha256);
    if ((await sha256Hex(bytes)) !== sha256) throw new Error(`input ${sha256.slice(0, 12)}… from the coordinator failed its sha-256 check`);
    this.stats.fromCoordinator += bytes.length;
    await this.keep(sha256, bytes);
    this.changed();
    return { bytes, origin: 'coordinator' };
  }

  /**
   * GET /shards/<sha256>, given up (so the unit fails and the coordinator reissues it) when the
   * response or its next chunk takes longer than coordinatorStallMs.
   */
  private async fromCoordinator(sha256: string): Promise<Uint8Array> {
    const stallMs = this.opts.coordinatorStallMs ?? 30_000;
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const rearm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => abort.abort(new Error(`the coordinator sent nothing for ${stallMs / 1000} s`)), stallMs);
    };
    rearm();
    try {
      const res = await fetch(`${this.opts.url}/shards/${sha256}`, { signal: abort.signal });
      if (!res.ok || !res.body) throw new Error(`could not fetch input ${sha256.slice(0, 12)}…: HTTP ${res.status}`);
      const chunks: Uint8Array[] = [];
      let length = 0;
      const reader = res.body.getReader();
      for (;;) {
        rearm();
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        length += value.length;
      }
      const bytes = new Uint8Array(length);
      let at = 0;
      for (const c of chunks) {
        bytes.set(c, at);
        at += c.length;
      }
      return bytes;
    } catch (err) {
      throw abort.signal.aborted ? (abort.signal.reason as Error) : err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Caches verified bytes; a full or failing IndexedDB costs only the cache, not the unit. */
  private async keep(sha256: string, bytes: Uint8Array) {
    try {
      await this.opts.cache.put(sha256, bytes);
    } catch (err) {
      console.warn(`tabgrid: could not cache ${sha256.slice(0, 12)}…: ${(err as Error).message}`);
    }
  }

  private async fromPeers(sha256: string, peers: readonly string[]): Promise<Uint8Array | null> {
    const swarm = this.swarm;
    if (!swarm) return null;
    for (const peerId of peers) {
      if (peerId === swarm.id) continue;
      try {
        const bytes = await swarm.fetch(peerId, sha256, this.opts.fetchOptions);
        if ((await sha256Hex(bytes)) === sha256) {
          this.opts.reportServed?.(peerId, sha256);
          return bytes;
        }
        this.opts.reportBadPeer(peerId, sha256, `sent ${bytes.length} bytes that fail the sha-256 check`);
      } catch (err) {
        if (!(err instanceof PeerFetchError)) console.warn(`tabgrid p2p: ${peerId}: ${(err as Error).message}`);
      }
      this.stats.peerFailures++;
      this.changed();
    }
    return null;
  }
}
