// The swarm's tracker: which connected worker holds (or is fetching) which shard, which peers were
// reported for serving bad bytes, and how many shard bytes each job's workers got from peers vs
// the coordinator. In memory: it describes live connections, so one coordinator's restart
// rightly forgets it.
import { randomBytes } from 'node:crypto';
import { P2P_LIMITS, type ShardPeers, type ShardTraffic } from '../protocol/index.js';

interface PeerEntry {
  peerId: string;
  volunteerId: string;
  /** The page's PeerJS peer is open (it said `peer-ready`). */
  ready: boolean;
  /** Shards in its cache. */
  held: Set<string>;
  /** Shards it was assigned and is fetching now: it can serve them once they arrive. */
  expected: Set<string>;
}

export interface PeerSnapshot {
  peerId: string;
  volunteerId: string;
  ready: boolean;
  shards: number;
  bad: boolean;
}

/**
 * Up to `room` of `items` that pass `ok`, appended to `out` in random order — reservoir sampling:
 * one pass, no copy of the set, so a shard the whole swarm holds costs no allocation per unit.
 */
function sampleInto<T>(items: Iterable<T>, room: number, ok: (item: T) => boolean, out: T[]) {
  if (room <= 0) return;
  const start = out.length;
  let seen = 0;
  for (const item of items) {
    if (!ok(item)) continue;
    seen++;
    if (out.length - start < room) {
      // Insert at a random place among those taken so far: the sample's order is random too.
      const at = start + Math.floor(Math.random() * (out.length - start + 1));
      out.splice(at, 0, item);
    } else {
      const j = Math.floor(Math.random() * seen);
      if (j < room) out[start + j] = item;
    }
  }
}

/** sha-256 -> the peers in one role for it (holding, or fetching); empty sets are dropped. */
class ShardIndex {
  private readonly map = new Map<string, Set<PeerEntry>>();
  add(sha: string, p: PeerEntry) {
    let set = this.map.get(sha);
    if (!set) this.map.set(sha, (set = new Set()));
    set.add(p);
  }
  delete(sha: string, p: PeerEntry) {
    const set = this.map.get(sha);
    if (set?.delete(p) && set.size === 0) this.map.delete(sha);
  }
  get(sha: string): Iterable<PeerEntry> {
    return this.map.get(sha) ?? [];
  }
  has(sha: string): boolean {
    return this.map.has(sha);
  }
}

export class Tracker {
  private readonly peers = new Map<string, PeerEntry>();
  /** Who holds and who is fetching each shard: recommending costs O(holders), not O(swarm). */
  private readonly holders = new ShardIndex();
  private readonly fetchers = new ShardIndex();
  /** Volunteers reported for bad bytes: never recommended again (by identity, so reconnecting does not help). */
  private readonly bad = new Map<string, { reporter: string; sha256: string; reason: string }>();
  private readonly traffic = new Map<string, ShardTraffic>();
  /** Shard bytes the coordinator itself sent (GET /shards/<sha256>), counted by the server. */
  coordinatorBytes = 0;

  /** A worker connected: it gets a fresh peer id for the PeerServer. */
  join(volunteerId: string): string {
    const peerId = `tg-${randomBytes(12).toString('hex')}`;
    this.peers.set(peerId, { peerId, volunteerId, ready: false, held: new Set(), expected: new Set() });
    return peerId;
  }

  leave(peerId: string) {
    const p = this.peers.get(peerId);
    if (!p) return;
    for (const sha of p.held) this.holders.delete(sha, p);
    for (const sha of p.expected) this.fetchers.delete(sha, p);
    this.peers.delete(peerId);
  }

  isIssued(peerId: string): boolean {
    return this.peers.has(peerId);
  }

  setReady(peerId: string) {
    const p = this.peers.get(peerId);
    if (p) p.ready = true;
  }

  updateHoldings(peerId: string, add: string[], remove: string[]) {
    const p = this.peers.get(peerId);
    if (!p) return;
    for (const sha of add) {
      p.held.add(sha);
      this.holders.add(sha, p);
      this.stopExpecting(p, sha);
    }
    for (const sha of remove) {
      p.held.delete(sha);
      this.holders.delete(sha, p);
      this.stopExpecting(p, sha);
    }
  }

  private stopExpecting(p: PeerEntry, sha: string) {
    if (p.expected.delete(sha)) this.fetchers.delete(sha, p);
  }

  /**
   * The worker was just given these shards to fetch; others may ask it for them. Only a worker in
   * the swarm can serve them: one without a peer (a Node worker) is not tracked, so its sets do
   * not grow with every unit it is given.
   */
  expect(peerId: string, shas: string[]) {
    const p = this.peers.get(peerId);
    if (!p?.ready) return;
    for (const sha of shas) {
      if (p.held.has(sha) || p.expected.has(sha)) continue;
      p.expected.add(sha);
      this.fetchers.add(sha, p);
    }
  }

  /** Whether the peer holds or is fetching anything at all (else every locality score is 0). */
  hasShards(peerId: string): boolean {
    const p = this.peers.get(peerId);
    return !!p && (p.held.size > 0 || p.expected.size > 0);
  }

  /** How many of `shas` this peer holds or is fetching (the scheduler's locality score). */
  locality(peerId: string, shas: string[]): number {
    const p = this.peers.get(peerId);
    if (!p) return 0;
    let n = 0;
    for (const sha of shas) if (p.held.has(sha) || p.expected.has(sha)) n++;
    return n;
  }

  /** For each shard: up to maxPeersPerShard ready, trusted peers other than `forPeerId`; holders first. */
  recommend(shas: string[], forPeerId: string | undefined): ShardPeers {
    const out: ShardPeers = {};
    const eligible = (p: PeerEntry) => p.ready && p.peerId !== forPeerId && !this.bad.has(p.volunteerId);
    const limit = P2P_LIMITS.maxPeersPerShard;
    for (let i = 0; i < shas.length; i++) {
      const sha = shas[i];
      if (shas.indexOf(sha) !== i || (!this.holders.has(sha) && !this.fetchers.has(sha))) continue;
      const picked: PeerEntry[] = [];
      sampleInto(this.holders.get(sha), limit, eligible, picked);
      sampleInto(this.fetchers.get(sha), limit - picked.length, eligible, picked);
      if (picked.length) out[sha] = picked.map((p) => p.peerId);
    }
    return out;
  }

  /**
   * `reporterPeerId` got bytes from `badPeerId` that failed the sha-256 check. One report is
   * enough to stop recommending it: a false report only costs that volunteer its uploads.
   * Returns the reported volunteer's id when this report newly marks it bad.
   */
  report(reporterPeerId: string, badPeerId: string, sha256: string, reason: string): string | null {
    const reporter = this.peers.get(reporterPeerId);
    const accused = this.peers.get(badPeerId);
    if (!reporter || !accused || reporter.volunteerId === accused.volunteerId) return null;
    if (this.bad.has(accused.volunteerId)) return null;
    this.bad.set(accused.volunteerId, { reporter: reporter.volunteerId, sha256, reason });
    return accused.volunteerId;
  }

  isBad(volunteerId: string): boolean {
    return this.bad.has(volunteerId);
  }

  addTraffic(jobId: string, fromPeers: number, fromCoordinator: number) {
    const t = this.traffic.get(jobId) ?? { fromPeers: 0, fromCoordinator: 0 };
    t.fromPeers += fromPeers;
    t.fromCoordinator += fromCoordinator;
    this.traffic.set(jobId, t);
  }

  jobTraffic(jobId: string): ShardTraffic {
    return { ...(this.traffic.get(jobId) ?? { fromPeers: 0, fromCoordinator: 0 }) };
  }

  snapshot(): PeerSnapshot[] {
    return [...this.peers.values()].map((p) => ({
      peerId: p.peerId,
      volunteerId: p.volunteerId,
      ready: p.ready,
      shards: p.held.size,
      bad: this.bad.has(p.volunteerId),
    }));
  }

  badVolunteers(): string[] {
    return [...this.bad.keys()];
  }
}
