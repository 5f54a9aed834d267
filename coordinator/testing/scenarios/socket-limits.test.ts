// The worker WebSocket's limits as the README states them, at their defaults (no overrides): at
// most 4 connections per identity, and a worker that sends 20 malformed messages is disconnected
// (19 are each answered with an error, and the connection stays up).
import WebSocket from 'ws';
import { describe, expect, test } from 'vitest';
import { DEFAULT_SECURITY } from '../../access/security.js';
import type { ServerMessage } from '../../protocol/index.js';
import { waitFor } from '../helpers.js';
import { useTestGrid } from '../fixtures.js';
import { SimWorker } from '../sim-worker.js';

const { grid, workers } = useTestGrid();

function worker(opts: Partial<ConstructorParameters<typeof SimWorker>[0]> = {}) {
  const w = new SimWorker({ url: grid.base, ...opts });
  workers.push(w);
  return w;
}

const errors = (w: SimWorker) => w.messages.filter((m): m is Extract<ServerMessage, { type: 'error' }> => m.type === 'error');

describe('connections per identity', () => {
  test('the default cap is 4: a fifth tab of one identity is refused, and admitted once one of the four leaves', async () => {
    expect(DEFAULT_SECURITY.wsMaxPerIdentity).toBe(4);
    const first = worker();
    await first.connect();
    const tabs = [first, ...[1, 2, 3].map(() => worker({ identity: first.privateKey }))];
    for (const t of tabs.slice(1)) await t.connect();
    expect(new Set(tabs.map((t) => t.volunteerId)).size).toBe(1);
    const fifth = worker({ identity: first.privateKey });
    await expect(fifth.connect()).rejects.toThrow(/closed before welcome/);
    expect(errors(fifth)).toMatchObject([{ code: 'rate_limited', message: 'too many connections for this identity' }]);
    expect(fifth.closed).toMatchObject({ code: 1008 });
    // Another identity is not affected.
    await worker().connect();
    // One of the four leaves: a new tab of that identity gets in.
    tabs[3].close();
    await waitFor(() => tabs[3].closed, 5_000, 'the tab to close');
    const again = worker({ identity: first.privateKey });
    for (let i = 0; ; i++) {
      try {
        await again.connect(); // the coordinator may still be releasing the closed tab's slot
        break;
      } catch (err) {
        if (i >= 50 || !/too many connections|closed before welcome/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    expect(again.volunteerId).toBe(first.volunteerId);
  });
});

describe('malformed messages', () => {
  test('19 malformed messages after hello are each answered and the worker stays; the 20th disconnects it', async () => {
    const w = worker();
    await w.connect();
    const bad = ['not json', '{"type":"ready"}', '{"type":"no-such-message"}', '[]', '{"type":"ready","slots":-1}'];
    for (let i = 0; i < 19; i++) w.send(bad[i % bad.length]);
    await waitFor(() => errors(w).length === 19, 10_000, '19 error answers');
    expect(errors(w).every((e) => e.code === 'bad_message')).toBe(true);
    // Still connected, and still served: a well-formed message works.
    expect(w.closed).toBeNull();
    w.send(JSON.stringify({ type: 'status', gflops: 1, paused: false }));
    w.send(JSON.stringify({ type: 'no-such-message' })); // the 20th
    await waitFor(() => w.closed, 10_000, 'the worker to be disconnected');
    expect(w.closed).toEqual({ code: 1008, reason: 'too many bad messages' });
    expect(errors(w)).toHaveLength(20);
  });

  test('a text message over 256 KiB is refused, and one just under is read', async () => {
    const w = worker();
    await w.connect();
    // A well-formed status message padded with spaces to exactly the limit: read (and answered
    // with nothing); one byte more: refused without being parsed.
    const body = JSON.stringify({ type: 'status', gflops: 1, paused: false });
    w.send(body + ' '.repeat(256 * 1024 - body.length));
    w.send(body + ' '.repeat(256 * 1024 - body.length + 1));
    await waitFor(() => errors(w).length === 1, 10_000, 'the oversized message refused');
    expect(errors(w)[0]).toMatchObject({ code: 'bad_message', message: 'text messages are limited to 262144 bytes' });
    expect(w.closed).toBeNull();
  });

  test('before hello too: 20 malformed messages close the socket', async () => {
    const ws = new WebSocket(grid.base.replace(/^http/, 'ws') + '/ws');
    const received: { type: string; code?: string }[] = [];
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { type: string; messages?: { type: string; code?: string }[] };
      received.push(...(msg.type === 'batch' ? msg.messages! : [msg]));
    });
    await new Promise((r) => ws.once('open', r));
    for (let i = 0; i < 19; i++) ws.send('{"type":"hello"}');
    await waitFor(() => received.filter((m) => m.type === 'error').length === 19, 10_000, '19 error answers');
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.send('{');
    expect(await closed).toEqual({ code: 1008, reason: 'too many bad messages' });
  });
});
