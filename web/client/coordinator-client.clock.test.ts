// The page's client on a fake clock and a fake WebSocket: the timing decisions it makes are checked
// to the millisecond, with no race against a real coordinator or a busy machine — the throttle's
// rest after each unit, and the reconnect backoff (0.5 s doubling to 15 s, ±25% jitter, reset once
// welcomed again).
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { toNpy } from '../../coordinator/protocol/npy';
import { decodeResultFrame, type ServerMessage, type WorkUnitSpec } from '../../coordinator/protocol';
import { memoryIdentity } from '../../coordinator/testing/page-identity';
import { UploadBudget } from '../p2p/upload-budget';
import type { ShardCache } from '../store/shard-cache';
import { CoordinatorClient, type ClientState } from './coordinator-client';

/** A WebSocket the test plays the coordinator on: it records what the client sends. */
class FakeSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static made: FakeSocket[] = [];
  readyState = FakeSocket.OPEN;
  binaryType = 'blob';
  readonly sent: (string | Uint8Array)[] = [];
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }
  send(data: string | Uint8Array) {
    this.sent.push(data);
  }
  close() {
    this.drop();
  }
  /** The coordinator says something. */
  deliver(msg: ServerMessage) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  /** The connection is gone (the coordinator restarted, the network dropped). */
  drop() {
    if (this.readyState === FakeSocket.CLOSED) return;
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.({ code: 1006 });
  }
  /** The `ready` messages sent, in order. */
  readies(): number[] {
    return this.sent.filter((m): m is string => typeof m === 'string').map((m) => JSON.parse(m) as { type: string; slots?: number }).filter((m) => m.type === 'ready').map((m) => m.slots!);
  }
  results(): Uint8Array[] {
    return this.sent.filter((m): m is Uint8Array => m instanceof Uint8Array);
  }
}

/** Lets real asynchronous work (WebCrypto hashing and signing) finish; the fake clock does not move. */
async function until(cond: () => boolean, what: string) {
  const start = process.hrtime.bigint();
  while (!cond()) {
    if (process.hrtime.bigint() - start > 10_000_000_000n) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const A = toNpy([2, 2], Float32Array.from([1, 2, 3, 4]));
/** Every input comes from the cache (IndexedDB does not exist in Node). */
const cache = { get: async () => A, put: async () => false, keys: async () => [] } as unknown as ShardCache;

function unit(i: number): Extract<ServerMessage, { type: 'assign' }> {
  const wu: WorkUnitSpec = {
    id: `j_test.${i}`,
    jobId: 'j_test',
    kind: 'matmul',
    params: { m: 2, k: 2, n: 2 },
    inputs: { a: 'a'.repeat(64), b: 'b'.repeat(64) },
    outputBytes: 16,
    flops: 16,
  };
  return { type: 'assign', lease: { id: `l_${i}`, deadline: 1e15 }, wu };
}

const welcome: ServerMessage = { type: 'welcome', volunteerId: 'v_' + '0'.repeat(24), name: null, credit: 0 };

let client: CoordinatorClient | null = null;
beforeEach(() => {
  FakeSocket.made = [];
  vi.stubGlobal('WebSocket', FakeSocket);
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
});
afterEach(() => {
  client?.stop();
  client = null;
  vi.useRealTimers();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

async function startClient(opts: { throttle?: number; computeMs?: number } = {}) {
  let state: ClientState | null = null;
  client = new CoordinatorClient({
    url: 'http://127.0.0.1:1',
    identity: await memoryIdentity(),
    device: { backend: 'cpu', adapter: 'vitest', features: [] },
    throttle: opts.throttle,
    cache,
    uploadBudget: new UploadBudget({ bytesPerSecond: 0 }),
    compute: async () => {
      vi.advanceTimersByTime(opts.computeMs ?? 0); // the unit takes exactly this long on the fake clock
      return new Float32Array(4);
    },
    onChange: (s) => (state = s),
  });
  client.start();
  return { state: () => state! };
}

describe('throttle', () => {
  test.each([
    [0.25, 120, 360],
    [0.5, 200, 200],
    [0.75, 300, 100],
  ])('at %f, a unit that took %i ms is followed by %i ms without asking for work', async (share, computeMs, restMs) => {
    const { state } = await startClient({ throttle: share, computeMs });
    const ws = FakeSocket.made[0];
    ws.deliver(welcome);
    expect(ws.readies()).toEqual([1]);
    for (let i = 0; i < 2; i++) {
      ws.deliver(unit(i));
      await until(() => ws.results().length === i + 1, `result ${i} uploaded`);
      expect(decodeResultFrame(ws.results()[i]).header.wuId).toBe(`j_test.${i}`);
      // Resting: the coordinator was told to send nothing before the result went out.
      expect(ws.readies().at(-1)).toBe(0);
      expect(state().paused).toEqual(['throttle']);
      vi.advanceTimersByTime(restMs - 1);
      expect(ws.readies().at(-1)).toBe(0);
      vi.advanceTimersByTime(1);
      expect(ws.readies().at(-1)).toBe(1);
      expect(state().paused).toEqual([]);
    }
    expect(ws.readies()).toEqual([1, 0, 1, 0, 1]);
  });

  test('at 100% there is no rest: it asks for the next unit with no timer in between', async () => {
    await startClient({ throttle: 1, computeMs: 500 });
    const ws = FakeSocket.made[0];
    ws.deliver(welcome);
    ws.deliver(unit(0));
    await until(() => ws.results().length === 1, 'result uploaded');
    expect(ws.readies()).toEqual([1]);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('reconnect backoff', () => {
  /** How long after a drop the client opens its next socket, on the fake clock. */
  function nextDelay(): number {
    const before = FakeSocket.made.length;
    FakeSocket.made.at(-1)!.drop();
    let waited = 0;
    while (FakeSocket.made.length === before) {
      if (waited > 60_000) throw new Error('no reconnect within a minute');
      vi.advanceTimersByTime(1);
      waited++;
    }
    return waited;
  }

  test('doubles from 0.5 s to a 15 s cap, and starts over at 0.5 s once welcomed again', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5); // no jitter: the nominal delays
    await startClient();
    expect(FakeSocket.made).toHaveLength(1);
    const delays = Array.from({ length: 8 }, nextDelay);
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    FakeSocket.made.at(-1)!.deliver(welcome);
    expect(nextDelay()).toBe(500);
    expect(nextDelay()).toBe(1000);
  });

  test('each delay is jittered by ±25%, so a crowd does not reconnect in one burst', async () => {
    const random = vi.spyOn(Math, 'random');
    await startClient();
    random.mockReturnValue(0);
    expect(nextDelay()).toBe(375); // 500 · 0.75
    random.mockReturnValue(0.999999);
    expect(nextDelay()).toBe(1250); // 1000 · 1.25
    random.mockReturnValue(0);
    expect(nextDelay()).toBe(1500); // 2000 · 0.75
    for (let i = 0; i < 3; i++) nextDelay();
    random.mockReturnValue(0.999999);
    expect(nextDelay()).toBe(18_750); // the 15 s cap · 1.25
  });

  test('a stopped client does not reconnect', async () => {
    await startClient();
    client!.stop();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.made).toHaveLength(1);
    expect(FakeSocket.made[0].readyState).toBe(FakeSocket.CLOSED);
  });
});
