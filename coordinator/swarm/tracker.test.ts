import { describe, expect, test } from 'vitest';
import { P2P_LIMITS } from '../protocol/index.js';
import { Tracker } from './tracker.js';

const sha = (c: string) => c.repeat(64);
const [S1, S2] = [sha('a'), sha('b')];

function swarm(n: number) {
  const t = new Tracker();
  const ids = Array.from({ length: n }, (_, i) => t.join(`v${i}`));
  for (const id of ids) t.setReady(id);
  return { t, ids };
}

describe('Tracker', () => {
  test('issues distinct peer ids and forgets them on leave', () => {
    const t = new Tracker();
    const a = t.join('v1');
    const b = t.join('v1');
    expect(a).not.toBe(b);
    expect(t.isIssued(a)).toBe(true);
    t.leave(a);
    expect(t.isIssued(a)).toBe(false);
    expect(t.isIssued('tg-made-up')).toBe(false);
  });

  test('recommends holders, then peers still fetching, never the asker', () => {
    const { t, ids } = swarm(4);
    t.updateHoldings(ids[1], [S1], []);
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
    const a = t.join('v1');
    const b = t.join('v2');
    t.updateHoldings(b, [S1], []);
    expect(t.recommend([S1], a)).toEqual({});
    t.setReady(b);
    expect(t.recommend([S1], a)).toEqual({ [S1]: [b] });
  });

  test('at most maxPeersPerShard per shard, spread over the holders', () => {
    const { t, ids } = swarm(12);
    for (const id of ids.slice(1)) t.updateHoldings(id, [S1], []);
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
    t.updateHoldings(ids[1], [S1, S2], []);
    t.updateHoldings(ids[1], [], [S1]);
    expect(t.recommend([S1, S2], ids[0])).toEqual({ [S2]: [ids[1]] });
  });

  test('a reported peer is never recommended again, even under a new peer id', () => {
    const { t, ids } = swarm(3);
    t.updateHoldings(ids[1], [S1], []);
    t.updateHoldings(ids[2], [S1], []);
    expect(t.report(ids[0], ids[1], S1, 'bad bytes')).toBe('v1');
    expect(t.report(ids[2], ids[1], S1, 'bad bytes')).toBeNull(); // already bad
    expect(t.recommend([S1], ids[0])).toEqual({ [S1]: [ids[2]] });
    t.leave(ids[1]);
    const again = t.join('v1');
    t.setReady(again);
    t.updateHoldings(again, [S1], []);
    expect(t.recommend([S1], ids[0])).toEqual({ [S1]: [ids[2]] });
    expect(t.badVolunteers()).toEqual(['v1']);
  });

  test('reports about oneself or unknown peers change nothing', () => {
    const { t, ids } = swarm(2);
    const sameVolunteer = t.join('v0');
    expect(t.report(ids[0], sameVolunteer, S1, 'x')).toBeNull();
    expect(t.report(ids[0], 'tg-unknown', S1, 'x')).toBeNull();
    expect(t.report('tg-unknown', ids[1], S1, 'x')).toBeNull();
    expect(t.badVolunteers()).toEqual([]);
  });

  test('locality counts shards held or being fetched', () => {
    const { t, ids } = swarm(1);
    t.updateHoldings(ids[0], [S1], []);
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
  test('a worker outside the swarm is not tracked as fetching (its sets do not grow per unit)', () => {
    const t = new Tracker();
    const node = t.join('v1');
    const page = t.join('v2');
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
