// A second round from outside (no token), on what the first (outside-attacker.test.ts) left open:
// the PeerJS signalling socket a stranger gets with any fresh identity. Each test fails on the
// code before its fix.
import { describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import { P2P_LIMITS } from '../../protocol/index.js';
import { SimWorker } from '../sim-worker.js';
import { waitFor } from '../helpers.js';
import { useGridPerTest } from '../fixtures.js';

const { grid, workers, start } = useGridPerTest();

/** A signed-in PeerJS socket: what it received and how it closed. */
interface Signal {
  ws: WebSocket;
  received: { type: string; src?: string; dst?: string; payload?: unknown }[];
  closed: { code: number } | null;
}

/** A fresh identity's session (any stranger may make one) and the peer id it was issued. */
async function session(): Promise<{ w: SimWorker; peerId: string }> {
  const w = new SimWorker({ url: grid.base, slots: 0 });
  workers.push(w);
  await w.connect();
  const welcome = w.received('welcome')[0];
  if (!welcome.p2p) throw new Error('no p2p in welcome');
  return { w, peerId: welcome.p2p.peerId };
}

/** Signs `peerId` in at /peerjs as the page's PeerJS client does; resolves once the server says OPEN. */
function signIn(peerId: string, token = 'tok1'): Promise<Signal> {
  const ws = new WebSocket(`${grid.base.replace(/^http/, 'ws')}/peerjs/peerjs?key=peerjs&id=${peerId}&token=${token}`);
  const s: Signal = { ws, received: [], closed: null };
  ws.on('close', (code) => (s.closed = { code }));
  ws.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as Signal['received'][number];
      s.received.push(msg);
      if (msg.type === 'OPEN') resolve(s);
    });
    ws.on('close', (code) => reject(new Error(`closed before OPEN: ${code}`)));
  });
}

const MAX_SIGNAL_BYTES = P2P_LIMITS.maxSignalBytes;
const offer = (dst: string, payload: unknown = { sdp: 'v=0', type: 'offer', connectionId: 'dc_1' }) => JSON.stringify({ type: 'OFFER', dst, payload });

describe('PeerJS signalling from a stranger', () => {
  test('signalling still works: an offer reaches a signed-in peer, stamped with its sender', async () => {
    await start();
    const a = await signIn((await session()).peerId);
    const bId = (await session()).peerId;
    const b = await signIn(bId);
    a.ws.send(offer(bId));
    const got = await waitFor(() => b.received.find((m) => m.type === 'OFFER'), 5000, 'the offer');
    expect(got).toMatchObject({ type: 'OFFER', dst: bId, payload: { sdp: 'v=0' } });
    expect(got.src).toMatch(/^tg-/);
    expect(got.src).not.toBe(bId);
  });

  test('text that is not JSON, or a frame that is not valid UTF-8, closes at most that socket: the coordinator stays up', async () => {
    await start();
    // Before the fix either one, from any fresh identity, was an uncaught exception: the process exited.
    const a = await signIn((await session()).peerId);
    a.ws.send('not json');
    const b = await signIn((await session()).peerId);
    b.ws.send(Buffer.from([0xff, 0xfe, 0xfd]), { binary: false });
    await waitFor(() => b.closed, 5000, 'the close of the socket that sent bad UTF-8');
    expect(b.closed).toEqual({ code: 1007 });
    expect((await grid.api('/api/health')).status).toBe(200);
    expect(a.closed).toBeNull();
    // A relay through the PeerServer still works afterwards.
    const cId = (await session()).peerId;
    const c = await signIn(cId);
    a.ws.send(offer(cId));
    await waitFor(() => c.received.find((m) => m.type === 'OFFER'), 5000, 'the offer');
  });

  test('an offer to a peer that is not signed in is not held: the sender hears EXPIRE at once', async () => {
    await start();
    const a = await signIn((await session()).peerId);
    // Before the fix the PeerServer queued each such message (any size, any made-up id) for ~5 s.
    a.ws.send(offer('tg-nobody'));
    const expired = await waitFor(() => a.received.find((m) => m.type === 'EXPIRE'), 1500, 'EXPIRE');
    expect(expired).toMatchObject({ src: 'tg-nobody' });
  });

  test(`a signalling message over ${MAX_SIGNAL_BYTES / 1024} KiB closes the socket unread (1009)`, async () => {
    await start();
    const a = await signIn((await session()).peerId);
    a.ws.send(offer('tg-nobody', { sdp: 'x'.repeat(MAX_SIGNAL_BYTES) }));
    await waitFor(() => a.closed, 5000, 'the close');
    expect(a.closed).toEqual({ code: 1009 });
  });

  test('a flood of signalling messages is cut off (the worker socket’s message rate applies)', async () => {
    await start({ security: { wsMessagesPerSecond: 20, wsMessageBurst: 40 } });
    const a = await signIn((await session()).peerId);
    for (let i = 0; i < 500; i++) a.ws.send(JSON.stringify({ type: 'HEARTBEAT' }));
    await waitFor(() => a.closed, 5000, 'the close');
    expect(a.closed).toEqual({ code: 1008 });
  });

  test('a peer socket lives no longer than its session, and one id holds one socket', async () => {
    await start();
    const { w, peerId } = await session();
    const first = await signIn(peerId);
    // The same id and token again (what a reconnect sends): the new socket replaces the old one,
    // which is closed, instead of both staying open under one id.
    const second = await signIn(peerId);
    await waitFor(() => first.closed, 5000, 'the replaced socket to close');
    expect(second.closed).toBeNull();
    // Another token for a taken id is refused, and the holder stays.
    await expect(signIn(peerId, 'tok2')).rejects.toThrow(/closed before OPEN/);
    expect(second.closed).toBeNull();
    // The session that was issued the id ends: its signalling socket goes too.
    w.close();
    await waitFor(() => second.closed, 5000, 'the peer socket to close with its session');
  });
});
