import { describe, expect, test } from 'vitest';
import { P2P_LIMITS, PeerToken } from '../protocol/index.js';
import { Tracker } from './tracker.js';

const sha = (c: string) => c.repeat(64);
const [S1, S2] = [sha('a'), sha('b')];

/** Holdings the tracker takes as proven: shards we gave the peer to fetch, which it now holds. */
function prove(t: Tracker, peerId: string, shas: string[]) {
  t.expect(peerId, shas);
  t.updateHoldings(peerId, shas, []);
}

function swarm(n: number) {
  const t = new Tracker();
  const ids = Array.from({ length: n }, (_, i) => t.join(`v${i}`).peerId);
  for (const id of ids) t.setReady(id);
  return { t, ids };
}

describe('Tracker', () => {
  test('issues distinct peer ids, each signed in only with its own token, and forgets them on leave', () => {
    const t = new Tracker();
    const a = t.join('v1');
    const b = t.join('v1');
    expect(a.peerId).not.toBe(b.peerId);
    expect(a.token).not.toBe(b.token);
    expect(PeerToken.safeParse(a.token).success).toBe(true);
    expect(t.checkSignIn(a.peerId, a.token)).toBe('ok');
    // Another session's token, a made-up one, none, or the token with one character changed.
    for (const wrong of [b.token, 'x'.repeat(32), '', a.token.slice(0, -1) + (a.token.endsWith('A') ? 'B' : 'A')]) {
      expect(t.checkSignIn(a.peerId, wrong)).toBe('wrong_token');
    }
    t.leave(a.peerId);
    expect(t.checkSignIn(a.peerId, a.token)).toBe('unknown_peer');
    expect(t.checkSignIn('tg-made-up', a.token)).toBe('unknown_peer');
  });

  test('recommends holders, then peers still fetching, never the asker', () => {
    const { t, ids } = swarm(4);
    prove(t, ids[1], [S1]);
    t.expect(ids[2], [S1]);
    t.updateHoldings(ids[0], [S1], []);
    for (let i = 0; i < 20; i++) {
      const r = t.recommend([S1, S2], ids[0]);
      expect(r[S1]).toEqual([ids[1], ids[2]]);
      expect(r[S2]).toBeUndefined();
    }
  });

  test('a peer that has not joined the swarm yet is not recommended', () => {
    const t = new Tracker();
    const a = t.join('v1').peerId;
    const b = t.join('v2').peerId;
    t.updateHoldings(b, [S1], []);
    expect(t.recommend([S1], a)).toEqual({});
    t.setReady(b);
    expect(t.served(a, b, S1)).toBe(true); // a got S1 from b intact: b's claim is proven
    expect(t.recommend([S1], a)).toEqual({ [S1]: [b] });
  });

  test('at most maxPeersPerShard per shard, spread over the holders', () => {
    const { t, ids } = swarm(12);
    for (const id of ids.slice(1)) prove(t, id, [S1]);
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const r = t.recommend([S1], ids[0])[S1];
      expect(r).toHaveLength(P2P_LIMITS.maxPeersPerShard);
      r.forEach((id) => seen.add(id));
    }
    expect(seen.size).toBeGreaterThan(P2P_LIMITS.maxPeersPerShard);
  });

  test('evicted shards are no longer recommended', () => {
    const { t, ids } = swarm(2);
    prove(t, ids[1], [S1, S2]);
    t.updateHoldings(ids[1], [], [S1]);
    expect(t.recommend([S1, S2], ids[0])).toEqual({ [S2]: [ids[1]] });
  });

  test('a reported peer is never recommended again, even under a new peer id', () => {
    const { t, ids } = swarm(3);
    prove(t, ids[1], [S1]);
    prove(t, ids[2], [S1]);
    expect(t.report(ids[0], ids[1], S1, 'bad bytes')).toBe('v1');
    expect(t.report(ids[2], ids[1], S1, 'bad bytes')).toBeNull(); // already bad
    expect(t.recommend([S1], ids[0])).toEqual({ [S1]: [ids[2]] });
    t.leave(ids[1]);
    const again = t.join('v1').peerId;
    t.setReady(again);
    prove(t, again, [S1]);
    expect(t.recommend([S1], ids[0])).toEqual({ [S1]: [ids[2]] });
    expect(t.badVolunteers()).toEqual(['v1']);
  });

  test('reports about oneself or unknown peers change nothing', () => {
    const { t, ids } = swarm(2);
    const sameVolunteer = t.join('v0').peerId;
    expect(t.report(ids[0], sameVolunteer, S1, 'x')).toBeNull();
    expect(t.report(ids[0], 'tg-unknown', S1, 'x')).toBeNull();
    expect(t.report('tg-unknown', ids[1], S1, 'x')).toBeNull();
    expect(t.badVolunteers()).toEqual([]);
  });

  test('locality counts shards held or being fetched', () => {
    const { t, ids } = swarm(1);
    prove(t, ids[0], [S1]);
    expect(t.locality(ids[0], [S1, S2])).toBe(1);
    t.expect(ids[0], [S2]);
    expect(t.locality(ids[0], [S1, S2])).toBe(2);
    expect(t.locality('tg-unknown', [S1])).toBe(0);
  });

  test('adds up traffic per job', () => {
    const t = new Tracker();
    t.addTraffic('j1', 10, 5);
    t.addTraffic('j1', 1, 2);
    expect(t.jobTraffic('j1')).toEqual({ fromPeers: 11, fromCoordinator: 7 });
    expect(t.jobTraffic('j2')).toEqual({ fromPeers: 0, fromCoordinator: 0 });
  });
  test('adds up an iterative job’s traffic per round too, in round order', () => {
    const t = new Tracker();
    t.addTraffic('j1', 10, 5, 1);
    t.addTraffic('j1', 0, 7, 0);
    t.addTraffic('j1', 3, 0, 1);
    expect(t.jobTraffic('j1')).toEqual({
      fromPeers: 13,
      fromCoordinator: 12,
      byRound: [
        { round: 0, fromPeers: 0, fromCoordinator: 7 },
        { round: 1, fromPeers: 13, fromCoordinator: 5 },
      ],
    });
  });
  test('a worker outside the swarm is not tracked as fetching (its sets do not grow per unit)', () => {
    const t = new Tracker();
    const node = t.join('v1').peerId;
    const page = t.join('v2').peerId;
    t.setReady(page);
    t.expect(node, [S1, S2]);
    expect(t.hasShards(node)).toBe(false);
    expect(t.recommend([S1], page)).toEqual({});
    t.expect(page, [S1]);
    expect(t.hasShards(page)).toBe(true);
    expect(t.recommend([S1], node)).toEqual({ [S1]: [page] });
    t.leave(page);
    expect(t.recommend([S1], node)).toEqual({});
  });
});

describe('Tracker under false claims', () => {
  const made = (i: number) => i.toString(16).padStart(64, '0');
  /** A shard store holding only these. */
  const storeOf = (real: string[]) => {
    const have = new Set(real);
    let looked = 0;
    return {
      exists: async (shas: string[]) => {
        looked += shas.length;
        return new Set(shas.filter((x) => have.has(x)));
      },
      looked: () => looked,
    };
  };

  test('claims of shards that do not exist are refused, and cost at most the lookup budget', async () => {
    const store = storeOf([S1]);
    const t = new Tracker({ exists: store.exists, maxLookupsPerPeer: 100 });
    const liar = t.join('v1').peerId;
    t.setReady(liar);
    const out = await t.claim(liar, [S1, ...Array.from({ length: 1023 }, (_, i) => made(i))], []);
    expect(out.accepted).toBe(1);
    expect(out.unknown).toBe(99);
    expect(out.dropped).toBe(924); // over its lookup budget: not even looked up
    expect(store.looked()).toBe(100);
    expect(t.claimCount).toBe(1);
    // The budget is spent: more made-up claims cost nothing.
    await t.claim(liar, Array.from({ length: 1024 }, (_, i) => made(5000 + i)), []);
    expect(store.looked()).toBe(100);
  });

  test('a peer keeps at most maxClaimsPerPeer, and all peers together at most maxClaimsTotal', async () => {
    const real = Array.from({ length: 300 }, (_, i) => made(i));
    const t = new Tracker({ exists: storeOf(real).exists, maxClaimsPerPeer: 100, maxClaimsTotal: 250 });
    const peers = Array.from({ length: 4 }, (_, i) => t.join(`v${i}`).peerId);
    for (const p of peers) for (let i = 0; i < 3; i++) await t.claim(p, real.slice(i * 100, i * 100 + 100), []);
    expect(t.snapshot().map((p) => p.shards)).toEqual([100, 100, 50, 0]);
    expect(t.claimCount).toBe(250);
    // Leaving frees its claims for others.
    t.leave(peers[0]);
    expect(t.claimCount).toBe(150);
    await t.claim(peers[3], real.slice(0, 100), []);
    expect(t.claimCount).toBe(250);
  });

  test('memory stays bounded under a flood of claims from many identities', async () => {
    const real = Array.from({ length: 5000 }, (_, i) => made(i));
    const t = new Tracker({ exists: storeOf(real).exists, maxClaimsPerPeer: 2048, maxClaimsTotal: 20_000 });
    for (let v = 0; v < 50; v++) {
      const p = t.join(`v${v}`).peerId;
      for (let i = 0; i < 5; i++) await t.claim(p, real.slice(i * 1000, i * 1000 + 1000), []);
    }
    expect(t.claimCount).toBe(20_000);
    expect(Math.max(...t.snapshot().map((p) => p.shards))).toBeLessThanOrEqual(2048);
  });

  test('an unproven claim is recommended only after proven holders and fetchers, and only sometimes', async () => {
    const t = new Tracker({ exists: storeOf([S1]).exists });
    const [asker, liar, honest] = ['v0', 'v1', 'v2'].map((v) => t.join(v).peerId);
    for (const p of [asker, liar, honest]) t.setReady(p);
    await t.claim(liar, [S1], []);
    let named = 0;
    for (let i = 0; i < 400; i++) if (t.recommend([S1], asker)[S1]?.includes(liar)) named++;
    // 1 in 8 with no record of serving anything: far from always.
    expect(named).toBeGreaterThan(10);
    expect(named).toBeLessThan(120);
    // A proven holder fills the first place; the liar only ever comes after it.
    prove(t, honest, [S1]);
    for (let i = 0; i < 50; i++) expect(t.recommend([S1], asker)[S1][0]).toBe(honest);
    // The liar vouching for itself under another peer of the same identity counts for nothing.
    const liarAgain = t.join('v1').peerId;
    expect(t.served(liarAgain, liar, S1)).toBe(false);
    // Another volunteer that got S1 from it intact proves the claim.
    expect(t.served(asker, liar, S1)).toBe(true);
    for (let i = 0; i < 50; i++) expect(t.recommend([S1], asker)[S1].sort()).toEqual([honest, liar].sort());
  });
});
