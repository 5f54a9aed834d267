// The swarm's tracker: which connected worker holds (or is fetching) which shard, which peers were
// reported for serving bad bytes, and how many shard bytes each job's workers got from peers vs
// the coordinator. In memory: it describes live connections, so one coordinator's restart
// rightly forgets it.
import { randomBytes } from 'node:crypto';
import { P2P_LIMITS, type ShardPeers, type ShardTraffic } from './protocol.js';

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

function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export class Tracker {
  private readonly peers = new Map<string, PeerEntry>();
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
      p.expected.delete(sha);
    }
    for (const sha of remove) {
      p.held.delete(sha);
      p.expected.delete(sha);
    }
  }

  /** The worker was just given these shards to fetch; others may ask it for them. */
  expect(peerId: string, shas: string[]) {
    const p = this.peers.get(peerId);
    if (!p) return;
    for (const sha of shas) if (!p.held.has(sha)) p.expected.add(sha);
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
    const candidates = [...this.peers.values()].filter((p) => p.ready && p.peerId !== forPeerId && !this.bad.has(p.volunteerId));
    for (const sha of new Set(shas)) {
      const holders = shuffled(candidates.filter((p) => p.held.has(sha)));
      const fetching = shuffled(candidates.filter((p) => !p.held.has(sha) && p.expected.has(sha)));
      const ids = [...holders, ...fetching].slice(0, P2P_LIMITS.maxPeersPerShard).map((p) => p.peerId);
      if (ids.length) out[sha] = ids;
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
