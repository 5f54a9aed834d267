// The swarm's bounds, with real WebRTC between Node peers (node-datachannel) signalling through a
// real coordinator's PeerServer on loopback: every attempt to fetch from a peer ends, and a failed
// attempt does not take this peer out of the swarm.
import { afterEach, describe, expect, test } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../../coordinator/testing/helpers';
import { startNodePeer, type NodePeer } from '../../e2e/node-peer';

const SHA = 'ab'.repeat(32);
const BYTES = new Uint8Array(300 * 1024).map((_, i) => i % 251);

let grid: TestCoordinator | null = null;
const peers: NodePeer[] = [];

afterEach(async () => {
  for (const p of peers.splice(0)) await p.close();
  await grid?.stop();
  grid = null;
});

async function peer(g: TestCoordinator, serve: (sha: string) => Promise<Uint8Array | null>): Promise<NodePeer> {
  const p = await startNodePeer({ grid: g, holds: [], serve });
  peers.push(p);
  return p;
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

/**
 * A fetch that tries the connection again when node-datachannel closes it before it opens (now and
 * then on loopback; the swarm reports it at once as `unavailable`): for steps whose subject is not
 * connection setup.
 */
async function fetchConnecting(from: NodePeer, peerId: string, sha: string): Promise<Uint8Array> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await from.swarm.fetch(peerId, sha, { firstByteMs: 10_000 });
    } catch (err) {
      if ((err as { kind?: string }).kind !== 'unavailable' || attempt === 3) throw err;
    }
  }
}

describe('Swarm.fetch', () => {
  test('a peer that accepts the connection but never answers: the fetch times out', async () => {
    grid = await startTestCoordinator();
    const OTHER = 'cd'.repeat(32);
    // Refuses OTHER at once, and never answers for SHA.
    const silent = await peer(grid, (sha) => (sha === OTHER ? Promise.resolve(null) : new Promise<never>(() => {})));
    const asker = await peer(grid, async () => null);
    // The connection first (however long WebRTC takes to set it up here): a refusal proves it is
    // open, and it stays open for the next request. Only then is the silent request timed. A
    // connection that node-datachannel closes before it opens (now and then on loopback) fails at
    // once as `unavailable` (the next test): that is not this test's subject, so it connects again.
    let first: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      first = await rejection(asker.swarm.fetch(silent.peerId, OTHER, { firstByteMs: 30_000 }));
      if ((first as { kind?: string }).kind !== 'unavailable') break;
    }
    expect(first).toMatchObject({ name: 'PeerFetchError', kind: 'refused' });
    const err = await rejection(asker.swarm.fetch(silent.peerId, SHA, { firstByteMs: 1500, stallMs: 1000 }));
    // (peerjs is imported only once node-peer has installed WebRTC, so no `instanceof` here)
    expect(err).toMatchObject({ name: 'PeerFetchError', kind: 'timeout', message: expect.stringMatching(/did not answer/) });
    expect(silent.requests).toEqual([OTHER, SHA]); // it was connected and asked, and said nothing
  });

  test('a connection that closes before it opens fails the fetch at once, not at the first-byte bound', async () => {
    grid = await startTestCoordinator();
    const holder = await peer(grid, async () => BYTES);
    const asker = await peer(grid, async () => null);
    // The asker's next RTCPeerConnection closes as soon as it has the answer, before its channel opens,
    // and says so only by its connection state — as node-datachannel's sometimes do when two peers
    // connect to each other at once: peerjs, which watches the ICE state, hears nothing of it.
    type SetRemote = (this: RTCPeerConnection, d: RTCSessionDescriptionInit) => Promise<void>;
    const proto = (globalThis as unknown as { RTCPeerConnection: { prototype: { setRemoteDescription: SetRemote } } }).RTCPeerConnection.prototype;
    const setRemote = proto.setRemoteDescription;
    proto.setRemoteDescription = async function (d) {
      if (d.type !== 'answer') return setRemote.call(this, d); // the holder's side, given the offer
      proto.setRemoteDescription = setRemote;
      await setRemote.call(this, d);
      this.close();
      this.dispatchEvent(new Event('connectionstatechange'));
    };
    try {
      const t0 = Date.now();
      const err = await rejection(asker.swarm.fetch(holder.peerId, SHA, { firstByteMs: 20_000 }));
      expect(err).toMatchObject({ name: 'PeerFetchError', kind: 'unavailable', message: expect.stringMatching(/closed before it opened/) });
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      proto.setRemoteDescription = setRemote;
    }
    // The next attempt connects afresh and gets the bytes.
    expect(await fetchConnecting(asker, holder.peerId, SHA)).toEqual(BYTES);
  });

  test('asking a peer that has left fails within the first-byte bound, and the asker still serves afterwards', async () => {
    grid = await startTestCoordinator();
    const asker = await peer(grid, async (sha) => (sha === SHA ? BYTES : null));
    const gone = await peer(grid, async () => null);
    const goneId = gone.peerId;
    await gone.close();
    peers.splice(peers.indexOf(gone), 1);
    const err = await rejection(asker.swarm.fetch(goneId, SHA, { firstByteMs: 3000 }));
    expect(err).toMatchObject({ name: 'PeerFetchError' });
    // The peer-unavailable error must not have destroyed the asker: a third peer gets its bytes.
    const third = await peer(grid, async () => null);
    expect(await fetchConnecting(third, asker.peerId, SHA)).toEqual(BYTES);
  });
});
