// The swarm's bounds, with real WebRTC between Node peers (node-datachannel) signalling through a
// real coordinator's PeerServer on loopback: every attempt to fetch from a peer ends, and a failed
// attempt does not take this peer out of the swarm.
import { afterEach, describe, expect, test } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../../coordinator/testing/helpers';
import type { DataConnection } from 'peerjs';
import { startBarePeer, startNodePeer, type BarePeer, type NodePeer } from '../../e2e/node-peer';

const SHA = 'ab'.repeat(32);
const BYTES = new Uint8Array(300 * 1024).map((_, i) => i % 251);

let grid: TestCoordinator | null = null;
const peers: (NodePeer | BarePeer)[] = [];

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

async function barePeer(g: TestCoordinator, onConnection: (conn: DataConnection, index: number) => void): Promise<BarePeer> {
  const p = await startBarePeer({ grid: g, onConnection });
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

/** Bytes on the wire as a Swarm answers a request: the header, then the bytes in 64 KiB frames. */
function answer(conn: DataConnection, sha256: string, bytes: Uint8Array) {
  conn.send(JSON.stringify({ t: 'ok', sha256, bytes: bytes.length }));
  for (let at = 0; at < bytes.length; at += 64 * 1024) conn.send(bytes.slice(at, at + 64 * 1024));
}

type SetRemote = (this: RTCPeerConnection, d: RTCSessionDescriptionInit) => Promise<void>;

/**
 * Until the returned function is called, the first `count` RTCPeerConnections of this process that
 * receive an answer (the asking side's) close right after it, before their channel opens, saying so
 * only by their connection state — as node-datachannel's do when a DTLS handshake fails (it fails
 * now and then when several run at once): peerjs, which watches the ICE state, hears nothing of it.
 * `answers` counts the connections that got an answer, closed or not.
 */
function closeAskersBeforeOpen(count: number): { answers: () => number; restore: () => void } {
  const proto = (globalThis as unknown as { RTCPeerConnection: { prototype: { setRemoteDescription: SetRemote } } }).RTCPeerConnection.prototype;
  const setRemote = proto.setRemoteDescription;
  let answers = 0;
  proto.setRemoteDescription = async function (d) {
    if (d.type !== 'answer') return setRemote.call(this, d); // the holder's side, given the offer
    await setRemote.call(this, d);
    if (++answers > count) return;
    this.close();
    this.dispatchEvent(new Event('connectionstatechange'));
  };
  return { answers: () => answers, restore: () => void (proto.setRemoteDescription = setRemote) };
}

test("a remote candidate for a connection closed meanwhile rejects nothing (peerjs's own handler would)", async () => {
  grid = await startTestCoordinator();
  const a = await barePeer(grid, () => {});
  const b = await barePeer(grid, () => {});
  const { guardPeerMessages } = await import('./swarm'); // peerjs loads once node-peer has installed WebRTC
  const conn = a.peer.connect(b.peerId, { serialization: 'raw', reliable: true }); // peerjs's own, unguarded
  conn.close();
  const candidate = { type: 'CANDIDATE', payload: { candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 } } };
  const handle = (c: DataConnection) => (c as unknown as { handleMessage(m: unknown): Promise<void> }).handleMessage(candidate);
  // The library's own handler rejects (the test can fail: the guard is what differs).
  await expect(handle(conn)).rejects.toThrow(/Cannot read properties of null/);
  await expect(handle(guardPeerMessages(conn))).resolves.toBeUndefined();
});

describe('Swarm.fetch', () => {
  test('a peer that accepts the connection but never answers: the fetch times out', async () => {
    grid = await startTestCoordinator();
    const OTHER = 'cd'.repeat(32);
    // Refuses OTHER at once, and never answers for SHA.
    const silent = await peer(grid, (sha) => (sha === OTHER ? Promise.resolve(null) : new Promise<never>(() => {})));
    const asker = await peer(grid, async () => null);
    // The connection first (however long WebRTC takes to set it up here): a refusal proves it is
    // open, and it stays open for the next request. Only then is the silent request timed.
    const first = await rejection(asker.swarm.fetch(silent.peerId, OTHER, { firstByteMs: 30_000 }));
    expect(first).toMatchObject({ name: 'PeerFetchError', kind: 'refused' });
    const err = await rejection(asker.swarm.fetch(silent.peerId, SHA, { firstByteMs: 1500, stallMs: 1000 }));
    // (peerjs is imported only once node-peer has installed WebRTC, so no `instanceof` here)
    expect(err).toMatchObject({ name: 'PeerFetchError', kind: 'timeout', message: expect.stringMatching(/did not answer/) });
    expect(silent.requests).toEqual([OTHER, SHA]); // it was connected and asked, and said nothing
  });

  test('a connection that closes before it opens is tried again, fresh: the fetch gets the bytes', async () => {
    grid = await startTestCoordinator();
    const holder = await peer(grid, async () => BYTES);
    const asker = await peer(grid, async () => null);
    const closing = closeAskersBeforeOpen(1);
    try {
      expect(await asker.swarm.fetch(holder.peerId, SHA, { firstByteMs: 20_000 })).toEqual(BYTES);
      // The closed connection and the fresh one (and a third where node-datachannel's own DTLS flake hit it).
      expect(closing.answers()).toBeGreaterThanOrEqual(2);
      expect(closing.answers()).toBeLessThanOrEqual(3);
    } finally {
      closing.restore();
    }
  });

  test('a peer whose every connection closes before it opens is reported at once after two retries, not at the first-byte bound', async () => {
    grid = await startTestCoordinator();
    const holder = await peer(grid, async () => BYTES);
    const asker = await peer(grid, async () => null);
    const closing = closeAskersBeforeOpen(Infinity);
    try {
      const t0 = Date.now();
      const err = await rejection(asker.swarm.fetch(holder.peerId, SHA, { firstByteMs: 20_000 }));
      expect(err).toMatchObject({ name: 'PeerFetchError', kind: 'unavailable', message: expect.stringMatching(/closed before it opened/) });
      expect(Date.now() - t0).toBeLessThan(5_000);
      // The retries do not loop: three connections, and no fourth, even later.
      await new Promise((r) => setTimeout(r, 500));
      expect(closing.answers()).toBe(3);
    } finally {
      closing.restore();
    }
    // The next fetch connects afresh and gets the bytes.
    expect(await asker.swarm.fetch(holder.peerId, SHA)).toEqual(BYTES);
  });

  test('a peer that closes the channel before answering: the fetch fails at once, not at the first-byte bound, and one fresh connection gets the bytes', async () => {
    grid = await startTestCoordinator();
    // Its first connection closes on the first request; later ones answer it.
    const flaky = await barePeer(grid, (conn, index) => {
      conn.on('data', () => (index === 0 ? conn.dataChannel.close() : answer(conn, SHA, BYTES)));
    });
    const asker = await peer(grid, async () => null);
    expect(await asker.swarm.fetch(flaky.peerId, SHA, { firstByteMs: 20_000 })).toEqual(BYTES);
    expect(flaky.connections.length).toBeGreaterThanOrEqual(2); // 3 where a DTLS flake hit the second
    expect(flaky.connections.length).toBeLessThanOrEqual(3);

    // One that always closes on a request: reported as closed at once, after two retries, no more.
    const closer = await barePeer(grid, (conn) => conn.on('data', () => conn.dataChannel.close()));
    const t0 = Date.now();
    const err = await rejection(asker.swarm.fetch(closer.peerId, SHA, { firstByteMs: 20_000 }));
    expect(err).toMatchObject({ name: 'PeerFetchError', kind: 'closed', message: expect.stringMatching(/before answering/) });
    expect(Date.now() - t0).toBeLessThan(5_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(closer.connections).toHaveLength(3);
  });

  test('a peer that dialled us is asked over its own connection: no second connection', async () => {
    grid = await startTestCoordinator();
    const OTHER = 'cd'.repeat(32);
    const OTHER_BYTES = BYTES.map((b) => 255 - b);
    const a = await peer(grid, async (sha) => (sha === SHA ? BYTES : null));
    const b = await peer(grid, async (sha) => (sha === OTHER ? OTHER_BYTES : null));
    expect(await b.swarm.fetch(a.peerId, SHA)).toEqual(BYTES); // b dials a
    const dials = closeAskersBeforeOpen(0); // closes none: counts the connections that get an answer
    try {
      expect(await a.swarm.fetch(b.peerId, OTHER)).toEqual(OTHER_BYTES);
      expect(await b.swarm.fetch(a.peerId, SHA)).toEqual(BYTES); // both ways at once on the one connection
      expect(dials.answers()).toBe(0);
    } finally {
      dials.restore();
    }
    expect([a.requests, b.requests]).toEqual([[SHA, SHA], [OTHER]]);
  });

  test('a peer that dialled us without saying it serves on its connection (an older page) is dialled back', async () => {
    grid = await startTestCoordinator();
    const old = await barePeer(grid, (conn) => conn.on('data', () => answer(conn, SHA, BYTES)));
    const asker = await peer(grid, async () => null);
    await old.dial(asker.peerId);
    expect(await asker.swarm.fetch(old.peerId, SHA, { firstByteMs: 20_000 })).toEqual(BYTES);
    // Only the asker's own connections (a retry where a DTLS flake hit one) answer: it dialled back.
    expect(old.connections.length).toBeGreaterThanOrEqual(1);
  });

  test('asking a peer that has left fails within the first-byte bound, and the asker still serves afterwards', async () => {
    grid = await startTestCoordinator();
    const asker = await peer(grid, async (sha) => (sha === SHA ? BYTES : null));
    const gone = await peer(grid, async () => null);
    const goneId = gone.peerId;
    await gone.close();
    peers.splice(peers.indexOf(gone), 1);
    const t0 = Date.now();
    const err = await rejection(asker.swarm.fetch(goneId, SHA, { firstByteMs: 3000 }));
    expect(err).toMatchObject({ name: 'PeerFetchError' });
    expect(Date.now() - t0).toBeLessThan(3000 + 1000);
    // The peer-unavailable error must not have destroyed the asker: a third peer gets its bytes.
    const third = await peer(grid, async () => null);
    expect(await third.swarm.fetch(asker.peerId, SHA)).toEqual(BYTES);
  });
});
