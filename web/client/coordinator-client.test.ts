// The page's client against a real coordinator (Node's WebSocket from `ws`, WebCrypto keys): a
// paused client is given no work, and units whose inputs or compute hang, or that outlast their
// lease, still end. (The throttle and the reconnect backoff are timed on a fake clock:
// coordinator-client.clock.test.ts.)
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { WebSocket as NodeWebSocket } from 'ws';
import { matmulReference } from '../../coordinator/jobs/matmul';
import { toNpy } from '../../coordinator/protocol/npy';
import { matmulParams, SimWorker } from '../../coordinator/testing/sim-worker';
import { serverMessages, type ServerMessage, type WorkUnitSpec } from '../../coordinator/protocol';
import { useGridPerTest } from '../../coordinator/testing/fixtures';
import { randomMatrix, sleep, waitFor } from '../../coordinator/testing/helpers';
import { memoryIdentity } from '../../coordinator/testing/page-identity';
import { UploadBudget } from '../p2p/upload-budget';
import type { ShardCache } from '../store/shard-cache';
import { CoordinatorClient, type ClientState } from './coordinator-client';

/** What the client sent and received over its WebSockets, parsed (binary result frames as 'result'). */
const wire: { sent: { type: string; slots?: number }[]; received: ServerMessage[] } = { sent: [], received: [] };

/** Node's WebSocket (from `ws`), recording the client's traffic in `wire`. */
class RecordingWebSocket extends NodeWebSocket {
  constructor(url: string) {
    super(url);
    this.addEventListener('message', (ev) => {
      if (typeof ev.data === 'string') wire.received.push(...serverMessages(JSON.parse(ev.data)));
    });
  }
  override send(data: string | Uint8Array) {
    wire.sent.push(typeof data === 'string' ? (JSON.parse(data) as { type: string }) : { type: 'result' });
    super.send(data);
  }
}

beforeAll(() => {
  (globalThis as { WebSocket?: unknown }).WebSocket = RecordingWebSocket;
});
afterAll(() => {
  delete (globalThis as { WebSocket?: unknown }).WebSocket;
});
beforeEach(() => {
  wire.sent.length = 0;
  wire.received.length = 0;
});

const { grid, start } = useGridPerTest();
let client: CoordinatorClient | null = null;
// Registered after the grid's fixture, so it runs first (vitest runs afterEach hooks in reverse): the client stops, then its coordinator.
afterEach(() => {
  client?.stop();
});

/** IndexedDB does not exist in Node: a cache that never holds anything (every input comes from the coordinator). */
const noCache = { get: async () => null, put: async () => false, keys: async () => [] } as unknown as ShardCache;

/**
 * A client whose compute takes at least `ms` and records when each unit ran. `hangFirst`: the first
 * unit's compute never returns until the compute worker is restarted (a kernel that hangs).
 */
async function startClient(opts: {
  throttle?: number;
  ms: number;
  cache?: ShardCache;
  hangFirst?: boolean;
  abandonAfterMs?: number;
  noRestart?: boolean;
  /** Paused by the volunteer before it connects. */
  paused?: boolean;
  /** Compute waits for this before it returns (after `ms`). */
  gate?: () => Promise<void>;
}) {
  const runs: { start: number; end: number }[] = [];
  const restarts: number[] = [];
  let hang = opts.hangFirst ?? false;
  let state: ClientState | null = null;
  /** Every problem the client showed, in order (a later one replaces it on the page). */
  const errors: string[] = [];
  client = new CoordinatorClient({
    url: grid.base,
    identity: await memoryIdentity(),
    device: { backend: 'cpu', adapter: 'vitest', features: [] },
    throttle: opts.throttle,
    cache: opts.cache ?? noCache,
    uploadBudget: new UploadBudget({ bytesPerSecond: 0 }),
    compute: async (wu: WorkUnitSpec, inputs) => {
      if (hang) return new Promise<never>(() => {});
      const start = performance.now();
      await sleep(opts.ms);
      await opts.gate?.();
      const { m, k, n } = matmulParams(wu);
      const out = matmulReference(inputs.a, inputs.b, m, k, n);
      runs.push({ start, end: performance.now() });
      return out;
    },
    onChange: (s) => {
      state = s;
      if (s.lastError && s.lastError !== errors.at(-1)) errors.push(s.lastError);
    },
    restartCompute: opts.noRestart
      ? undefined
      : async () => {
          restarts.push(performance.now());
          hang = false;
        },
    abandonAfterMs: opts.abandonAfterMs ?? 300,
  });
  if (opts.paused) client.setPause('user', true);
  client.start();
  await waitFor(() => state?.phase === (opts.paused ? 'paused' : 'waiting'), 10_000, 'welcome');
  return { runs, restarts, errors, state: () => state! };
}

async function submit(units: number) {
  const [m, k, n] = [8 * units, 8, 8];
  const a = await grid.uploadShard(toNpy([m, k], randomMatrix(m, k, 1)));
  const b = await grid.uploadShard(toNpy([k, n], randomMatrix(k, n, 2)));
  return grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 8, cols: 8 } });
}

describe('coordinator client controls', () => {
  test('paused, it is given no work while others are; resumed, it computes the job', async () => {
    await start();
    const { runs, state } = await startClient({ ms: 1, paused: true });
    expect(state().phase).toBe('paused');
    // It told the coordinator it wants nothing, and never that it wants something.
    expect(wire.sent.filter((m) => m.type === 'ready').map((m) => m.slots)).toEqual([0]);
    const job = await submit(3);
    // A worker that connects after the job takes all three units (and holds them): the work was
    // there to be handed out, and the paused client got none of it.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const other = new SimWorker({ url: grid.base, slots: 3, compute: async () => held.then(() => new Float32Array(64)) });
    try {
      await other.connect();
      await waitFor(() => other.received('assign').length === 3, 10_000, 'the other worker to take all three units');
      expect(wire.received.filter((m) => m.type === 'assign')).toHaveLength(0);
      expect(runs).toHaveLength(0);
      // Resumed, and the other worker gone: its units come back and the client computes them.
      client!.setPause('user', false);
      other.kill();
      expect((await grid.waitForJob(job, 10_000)).state).toBe('done');
      expect(runs).toHaveLength(3);
      expect(wire.received.filter((m) => m.type === 'assign')).toHaveLength(3);
    } finally {
      release();
      other.close();
    }
  });
});

describe('a unit whose inputs never arrive', () => {
  test('its lease deadline passes, the coordinator reissues it, and the client gives up the stuck fetch and computes it', async () => {
    await start({ leaseMs: 1500 });
    // The first read of any shard never returns (a fetch stuck for good); later reads miss as usual.
    let stuck = 0;
    const stuckOnce = {
      get: () => (stuck++ === 0 ? new Promise<never>(() => {}) : Promise.resolve(null)),
      put: async () => false,
      keys: async () => [],
    } as unknown as ShardCache;
    const { runs } = await startClient({ ms: 1, cache: stuckOnce });
    const job = await submit(1);
    expect((await grid.waitForJob(job, 20_000)).state).toBe('done');
    expect(stuck).toBeGreaterThan(1);
    expect(runs).toHaveLength(1);
  });

  test('a unit whose compute hangs: once its lease is cancelled, the worker restarts and the next units compute', async () => {
    await start({ leaseMs: 1500 });
    const { runs, restarts, errors, state } = await startClient({ ms: 1, hangFirst: true });
    const job = await submit(2);
    expect((await grid.waitForJob(job, 20_000)).state).toBe('done');
    expect(restarts).toHaveLength(1);
    // The hung unit again (reissued) and the other one, after the restart — and perhaps the hung
    // unit once more: reissued while the client still waited out the hung compute's grace, a copy
    // can expire in its queue and come back, to be computed and refused as settled.
    expect(runs.length).toBeGreaterThanOrEqual(2);
    expect(errors.some((e) => /lease was cancelled and it was still computing [\d.]+ s later; the compute worker restarted/.test(e))).toBe(true);
    expect(state().unitsDone).toBe(2);
  });

  test.each([false, true])('a unit slower than its lease: its result is still uploaded and counts, no restart (no restartCompute: %s)', async (noRestart) => {
    await start({ leaseMs: 1500 });
    // The unit computes until its lease has been cancelled for passing its deadline (the
    // coordinator's tick does that, saying a late result still counts): then it finishes at once,
    // well inside the grace (as long again as it has run).
    const cancelled = () => wire.received.find((m) => m.type === 'lease-cancelled');
    const { runs, restarts, errors, state } = await startClient({
      ms: 1,
      noRestart,
      gate: () => waitFor(cancelled, 20_000, 'the lease to be cancelled mid-compute').then(() => undefined),
    });
    const job = await submit(1);
    expect((await grid.waitForJob(job, 20_000)).state).toBe('done');
    const late = cancelled()!;
    expect(late).toMatchObject({ reason: 'deadline passed', stillAccepted: true });
    expect(restarts).toHaveLength(0);
    // The late result was uploaded and accepted (the unit, reissued meanwhile, may have come back
    // to this client too: that replica is then refused as settled).
    await waitFor(() => wire.received.find((m) => m.type === 'result-ack' && m.leaseId === (late as { leaseId: string }).leaseId), 5_000, 'the late result answered');
    expect(wire.received.find((m) => m.type === 'result-ack' && m.leaseId === (late as { leaseId: string }).leaseId)).toMatchObject({ accepted: true });
    expect(runs.length).toBeGreaterThanOrEqual(1);
    await waitFor(() => state().unitsDone >= 1, 5_000, 'the late result acknowledged');
    expect(errors.filter((e) => /gave up/.test(e))).toEqual([]);
  });
});
