// The swarm's tracker: which connected worker holds (or is fetching) which shard, which peers were
// reported for serving bad bytes, and how many shard bytes each job's workers got from peers vs
// the coordinator. In memory: it describes live connections, so one coordinator's restart
// rightly forgets it.
//
// A page's word is not taken for much. Claims are kept only for shards that exist here, at most
// maxClaimsPerPeer per peer and maxClaimsTotal in all, so no message sequence grows memory without
// bound; looking shards up costs at most maxLookupsPerPeer per connection. A claim is *proven* when
// this coordinator gave the peer that shard's unit (so it fetched and checked it) or another
// volunteer reported getting it from the peer intact (`peer-served`). Proven holders and peers
// fetching a shard for us are recommended first; an unproven claim only fills what is left, and only
// with a probability that grows with how many shards the volunteer has served correctly.
import { randomBytes } from 'node:crypto';
import { P2P_LIMITS, type ShardPeers, type ShardTraffic } from '../protocol/index.js';
import { secretsEqual } from '../util/secrets-equal.js';

interface PeerEntry {
  peerId: string;
  /** The secret that signs `peerId` in at /peerjs: the id alone is no proof, pages learn others' ids from their leases. */
  token: string;
  volunteerId: string;
  /** The page's PeerJS peer is open (it said `peer-ready`). */
  ready: boolean;
  /** Shards in its cache: true when the claim is proven (see above). */
  held: Map<string, boolean>;
  /** Shards it was assigned and is fetching now: it can serve them once they arrive. */
  expected: Set<string>;
  /** Shard lookups its claims have cost so far. */
  lookups: number;
}

export interface PeerSnapshot {
  peerId: string;
  volunteerId: string;
  ready: boolean;
  shards: number;
  bad: boolean;
}

/** A peer id and the signalling token that goes with it (sent in `welcome`, to that session only). */
export interface IssuedPeer {
  peerId: string;
  token: string;
}

/** Whether a /peerjs sign-in may proceed: the id must be issued to a live session, and the token its own. */
export type SignInCheck = 'ok' | 'unknown_peer' | 'wrong_token';

export interface TrackerOptions {
  /** Which of these shards exist (the shard store); absent: every one does (unit tests). */
  exists?: (shas: string[]) => Promise<Set<string>>;
  maxClaimsPerPeer?: number;
  maxClaimsTotal?: number;
  maxLookupsPerPeer?: number;
}

/** What became of one `holdings` message's additions. */
export interface ClaimOutcome {
  accepted: number;
  /** Looked up and not found: no such shard here. */
  unknown: number;
  /** Not recorded: over a cap, or over the peer's lookup budget. */
  dropped: number;
}

type RoundTraffic = NonNullable<ShardTraffic['byRound']>[number];

/** Volunteers remembered (bad ones, served counts) and shards known to exist, at most. */
const MAX_REMEMBERED = 100_000;
const MAX_KNOWN_SHARDS = 65_536;

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

/** A Map that forgets its oldest entries beyond `max`. */
function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number) {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}

export class Tracker {
  private readonly peers = new Map<string, PeerEntry>();
  /** Who holds and who is fetching each shard: recommending costs O(holders), not O(swarm). */
  private readonly holders = new ShardIndex();
  private readonly fetchers = new ShardIndex();
  /** Volunteers reported for bad bytes: never recommended again (by identity, so reconnecting does not help). */
  private readonly bad = new Map<string, { reporter: string; sha256: string; reason: string }>();
  /** Shards each volunteer served that the receiver reported intact: its record. */
  private readonly servedOk = new Map<string, number>();
  /** Shards known to exist (assigned in units, or looked up), so claims of them cost no lookup. */
  private readonly known = new Map<string, true>();
  private readonly traffic = new Map<string, { fromPeers: number; fromCoordinator: number; byRound: Map<number, RoundTraffic> }>();
  /** Claims held in all (held + expected, over every peer). */
  private claims = 0;
  private readonly maxPerPeer: number;
  private readonly maxTotal: number;
  private readonly maxLookups: number;
  /** Shard bytes the coordinator itself sent (GET /shards/<sha256>), counted by the server. */
  coordinatorBytes = 0;
  /** Told of each peer id whose session ended (the PeerServer closes its signalling socket). */
  private readonly leaveListeners: ((peerId: string) => void)[] = [];

  constructor(private readonly opts: TrackerOptions = {}) {
    this.maxPerPeer = opts.maxClaimsPerPeer ?? P2P_LIMITS.maxClaimsPerPeer;
    this.maxTotal = opts.maxClaimsTotal ?? P2P_LIMITS.maxClaimsTotal;
    this.maxLookups = opts.maxLookupsPerPeer ?? P2P_LIMITS.maxLookupsPerPeer;
  }

  /** A worker connected: it gets a fresh peer id for the PeerServer, and the token that signs it in. */
  join(volunteerId: string): IssuedPeer {
    const peerId = `tg-${randomBytes(12).toString('hex')}`;
    const token = randomBytes(24).toString('base64url');
    this.peers.set(peerId, { peerId, token, volunteerId, ready: false, held: new Map(), expected: new Set(), lookups: 0 });
    return { peerId, token };
  }

  leave(peerId: string) {
    const p = this.peers.get(peerId);
    if (!p) return;
    for (const sha of p.held.keys()) this.holders.delete(sha, p);
    for (const sha of p.expected) this.fetchers.delete(sha, p);
    this.claims -= p.held.size + p.expected.size;
    this.peers.delete(peerId);
    for (const listener of this.leaveListeners) listener(peerId);
  }

  onLeave(listener: (peerId: string) => void) {
    this.leaveListeners.push(listener);
  }

  /** May `peerId` sign in at /peerjs with `token`? (Compared in constant time.) */
  checkSignIn(peerId: string, token: string): SignInCheck {
    const p = this.peers.get(peerId);
    if (!p) return 'unknown_peer';
    return secretsEqual(p.token, token) ? 'ok' : 'wrong_token';
  }

  setReady(peerId: string) {
    const p = this.peers.get(peerId);
    if (p) p.ready = true;
  }

  /** Claims held now, in all (for tests and the attack suite). */
  get claimCount(): number {
    return this.claims;
  }

  private roomFor(p: PeerEntry): boolean {
    return p.held.size + p.expected.size < this.maxPerPeer && this.claims < this.maxTotal;
  }

  private know(sha: string) {
    if (!this.known.has(sha)) remember(this.known, sha, true, MAX_KNOWN_SHARDS);
  }

  /**
   * The page's cache changed. Shards it is fetching for us become proven holdings; others are kept
   * only if they exist here (looked up within the peer's budget) and there is room under the caps.
   */
  async claim(peerId: string, add: string[], remove: string[]): Promise<ClaimOutcome> {
    const outcome: ClaimOutcome = { accepted: 0, unknown: 0, dropped: 0 };
    const p = this.peers.get(peerId);
    if (!p) return outcome;
    this.updateHoldings(peerId, [], remove);
    const toCheck: string[] = [];
    for (const sha of new Set(add)) {
      if (p.held.has(sha)) continue;
      if (p.expected.has(sha) || this.known.has(sha) || !this.opts.exists) {
        if (this.hold(p, sha)) outcome.accepted++;
        else outcome.dropped++;
      } else if (p.lookups < this.maxLookups && p.held.size + p.expected.size + toCheck.length < this.maxPerPeer) {
        p.lookups++;
        toCheck.push(sha);
      } else outcome.dropped++;
    }
    if (toCheck.length === 0) return outcome;
    const found = await this.opts.exists!(toCheck);
    if (this.peers.get(peerId) !== p) return outcome; // it left while we looked
    for (const sha of toCheck) {
      if (!found.has(sha)) outcome.unknown++;
      else {
        this.know(sha);
        if (this.hold(p, sha)) outcome.accepted++;
        else outcome.dropped++;
      }
    }
    return outcome;
  }

  /** Records a claim (false when over a cap); proven when we gave the peer this shard's unit. */
  private hold(p: PeerEntry, sha: string): boolean {
    if (p.held.has(sha)) return true;
    const proven = p.expected.delete(sha);
    if (proven) this.fetchers.delete(sha, p);
    else if (!this.roomFor(p)) return false;
    else this.claims++;
    p.held.set(sha, proven);
    this.holders.add(sha, p);
    return true;
  }

  /**
   * Records holdings as they are, without looking anything up or applying caps to shards we assigned:
   * what `claim` does once it has checked, and what tests use directly.
   */
  updateHoldings(peerId: string, add: string[], remove: string[]) {
    const p = this.peers.get(peerId);
    if (!p) return;
    for (const sha of add) this.hold(p, sha);
    for (const sha of remove) {
      if (p.held.delete(sha)) {
        this.holders.delete(sha, p);
        this.claims--;
      }
      if (p.expected.delete(sha)) {
        this.fetchers.delete(sha, p);
        this.claims--;
      }
    }
  }

  /**
   * The worker was just given these shards to fetch; others may ask it for them. Only a worker in
   * the swarm can serve them: one without a peer (a Node worker) is not tracked, so its sets do
   * not grow with every unit it is given.
   */
  expect(peerId: string, shas: string[]) {
    for (const sha of shas) this.know(sha);
    const p = this.peers.get(peerId);
    if (!p?.ready) return;
    for (const sha of shas) {
      if (p.expected.has(sha)) continue;
      if (p.held.has(sha)) {
        p.held.set(sha, true); // we gave it this shard's unit: it holds the real bytes, or is refetching them
        continue;
      }
      if (!this.roomFor(p)) continue;
      p.expected.add(sha);
      this.fetchers.add(sha, p);
      this.claims++;
    }
  }

  /** Whether the peer holds or is fetching anything at all (else every locality score is 0). */
  hasShards(peerId: string): boolean {
    const p = this.peers.get(peerId);
    return !!p && (p.held.size > 0 || p.expected.size > 0);
  }

  /** How many of `shas` this peer holds (proven) or is fetching (the scheduler's locality score). */
  locality(peerId: string, shas: string[]): number {
    const p = this.peers.get(peerId);
    if (!p) return 0;
    let n = 0;
    for (const sha of shas) if (p.held.get(sha) === true || p.expected.has(sha)) n++;
    return n;
  }

  /** Chance that an unproven claim of this volunteer's is recommended: 1/8, growing with each shard it served correctly. */
  private chance(volunteerId: string): number {
    return Math.min(1, (1 + (this.servedOk.get(volunteerId) ?? 0)) / 8);
  }

  /**
   * For each shard: up to maxPeersPerShard ready peers other than `forPeerId` and never a reported
   * one — proven holders first, then peers fetching it for us, then (to fill what is left) unproven
   * holders, each let through with its chance.
   */
  recommend(shas: string[], forPeerId: string | undefined): ShardPeers {
    const out: ShardPeers = {};
    const eligible = (p: PeerEntry) => p.ready && p.peerId !== forPeerId && !this.bad.has(p.volunteerId);
    const limit = P2P_LIMITS.maxPeersPerShard;
    for (let i = 0; i < shas.length; i++) {
      const sha = shas[i];
      this.know(sha);
      if (shas.indexOf(sha) !== i || (!this.holders.has(sha) && !this.fetchers.has(sha))) continue;
      const picked: PeerEntry[] = [];
      sampleInto(this.holders.get(sha), limit, (p) => eligible(p) && p.held.get(sha) === true, picked);
      sampleInto(this.fetchers.get(sha), limit - picked.length, eligible, picked);
      sampleInto(this.holders.get(sha), limit - picked.length, (p) => eligible(p) && p.held.get(sha) === false && Math.random() < this.chance(p.volunteerId), picked);
      if (picked.length) out[sha] = picked.map((p) => p.peerId);
    }
    return out;
  }

  /**
   * `reporterPeerId` got `sha256` from `servingPeerId` and its bytes matched. Counts only from
   * another volunteer, and only for a shard the serving peer claims: that claim becomes proven, and
   * the serving volunteer's record grows. Returns whether the report counted.
   */
  served(reporterPeerId: string, servingPeerId: string, sha256: string): boolean {
    const reporter = this.peers.get(reporterPeerId);
    const server = this.peers.get(servingPeerId);
    if (!reporter || !server || reporter.volunteerId === server.volunteerId) return false;
    if (server.held.get(sha256) !== false) return false;
    server.held.set(sha256, true);
    remember(this.servedOk, server.volunteerId, (this.servedOk.get(server.volunteerId) ?? 0) + 1, MAX_REMEMBERED);
    return true;
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
    remember(this.bad, accused.volunteerId, { reporter: reporter.volunteerId, sha256, reason }, MAX_REMEMBERED);
    return accused.volunteerId;
  }

  isBad(volunteerId: string): boolean {
    return this.bad.has(volunteerId);
  }

  /** Adds one lease's shard bytes to its job's figures, and to its round's when the unit has one (train). */
  addTraffic(jobId: string, fromPeers: number, fromCoordinator: number, round?: number) {
    let t = this.traffic.get(jobId);
    if (!t) this.traffic.set(jobId, (t = { fromPeers: 0, fromCoordinator: 0, byRound: new Map() }));
    t.fromPeers += fromPeers;
    t.fromCoordinator += fromCoordinator;
    if (round === undefined) return;
    const r = t.byRound.get(round) ?? { round, fromPeers: 0, fromCoordinator: 0 };
    r.fromPeers += fromPeers;
    r.fromCoordinator += fromCoordinator;
    t.byRound.set(round, r);
  }

  jobTraffic(jobId: string): ShardTraffic {
    const t = this.traffic.get(jobId);
    if (!t) return { fromPeers: 0, fromCoordinator: 0 };
    const byRound = [...t.byRound.values()].sort((a, b) => a.round - b.round).map((r) => ({ ...r }));
    return { fromPeers: t.fromPeers, fromCoordinator: t.fromCoordinator, ...(byRound.length && { byRound }) };
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
