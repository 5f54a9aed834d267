// The page's client against a real coordinator (Node's WebSocket from `ws`, WebCrypto keys): a
// paused client is given no work, and the throttle rests in proportion to each unit's compute time.
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { WebSocket as NodeWebSocket } from 'ws';
import { matmulReference } from '../../coordinator/jobs/matmul';
import { toNpy } from '../../coordinator/protocol/npy';
import { matmulParams } from '../../coordinator/testing/sim-worker';
import { toBase64Url, type WorkUnitSpec } from '../../coordinator/protocol';
import { randomMatrix, sleep, startTestCoordinator, waitFor, type TestCoordinator } from '../../coordinator/testing/helpers';
import { UploadBudget } from '../p2p/upload-budget';
import type { Identity } from '../store/identity';
import type { ShardCache } from '../store/shard-cache';
import { CoordinatorClient, type ClientState } from './coordinator-client';

beforeAll(() => {
  (globalThis as { WebSocket?: unknown }).WebSocket ??= NodeWebSocket;
});

async function identity(): Promise<Identity> {
  const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  return {
    publicKeyRaw: toBase64Url(raw),
    exportable: false,
    sign: async (m) => toBase64Url(new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, pair.privateKey, m as BufferSource))),
  };
}

let grid: TestCoordinator;
let client: CoordinatorClient | null = null;
afterEach(async () => {
  client?.stop();
  await grid?.stop();
});

/** IndexedDB does not exist in Node: a cache that never holds anything (every input comes from the coordinator). */
const noCache = { get: async () => null, put: async () => false, keys: async () => [] } as unknown as ShardCache;

/**
 * A client whose compute takes at least `ms` and records when each unit ran. `hangFirst`: the first
 * unit's compute never returns until the compute worker is restarted (a kernel that hangs).
 */
async function startClient(opts: { throttle?: number; ms: number; cache?: ShardCache; hangFirst?: boolean; abandonAfterMs?: number; noRestart?: boolean }) {
  const runs: { start: number; end: number }[] = [];
  const restarts: number[] = [];
  let hang = opts.hangFirst ?? false;
  let state: ClientState | null = null;
  client = new CoordinatorClient({
    url: grid.base,
    identity: await identity(),
    device: { backend: 'cpu', adapter: 'vitest', features: [] },
    throttle: opts.throttle,
    cache: opts.cache ?? noCache,
    uploadBudget: new UploadBudget({ bytesPerSecond: 0 }),
    compute: async (wu: WorkUnitSpec, inputs) => {
      if (hang) return new Promise<never>(() => {});
      const start = performance.now();
      await sleep(opts.ms);
      const { m, k, n } = matmulParams(wu);
      const out = matmulReference(inputs.a, inputs.b, m, k, n);
      runs.push({ start, end: performance.now() });
      return out;
    },
    onChange: (s) => (state = s),
    restartCompute: opts.noRestart
      ? undefined
      : async () => {
          restarts.push(performance.now());
          hang = false;
        },
    abandonAfterMs: opts.abandonAfterMs ?? 300,
  });
  client.start();
  await waitFor(() => state?.phase === 'waiting', 10_000, 'welcome');
  return { runs, restarts, state: () => state! };
}

async function submit(units: number) {
  const [m, k, n] = [8 * units, 8, 8];
  const a = await grid.uploadShard(toNpy([m, k], randomMatrix(m, k, 1)));
  const b = await grid.uploadShard(toNpy([k, n], randomMatrix(k, n, 2)));
  return grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 8, cols: 8 } });
}

describe('coordinator client controls', () => {
  test('paused, it is given no work; resumed, it computes the job', async () => {
    grid = await startTestCoordinator();
    const { runs, state } = await startClient({ ms: 1 });
    client!.setPause('user', true);
    expect(state().phase).toBe('paused');
    const job = await submit(3);
    await sleep(500);
    expect(runs).toHaveLength(0);
    expect((await (await grid.api(`/api/jobs/${job}`)).json()).progress.done).toBe(0);
    client!.setPause('user', false);
    expect((await grid.waitForJob(job, 10_000)).state).toBe('done');
    expect(runs).toHaveLength(3);
  });

  test.each([0.25, 0.5])('throttle %f rests t·(1−share)/share after each unit', async (share) => {
    grid = await startTestCoordinator();
    const { runs } = await startClient({ throttle: share, ms: 120 });
    const job = await submit(3);
    expect((await grid.waitForJob(job, 20_000)).state).toBe('done');
    expect(runs).toHaveLength(3);
    for (let i = 1; i < runs.length; i++) {
      const computed = runs[i - 1].end - runs[i - 1].start;
      // A lower bound only: a slow machine lengthens gaps, never shortens them.
      expect(runs[i].start - runs[i - 1].end).toBeGreaterThanOrEqual((computed * (1 - share)) / share - 5);
    }
  });
});

describe('a unit whose inputs never arrive', () => {
  test('its lease deadline passes, the coordinator reissues it, and the client gives up the stuck fetch and computes it', async () => {
    grid = await startTestCoordinator({ leaseMs: 1500 });
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
    grid = await startTestCoordinator({ leaseMs: 1500 });
    const { runs, restarts, state } = await startClient({ ms: 1, hangFirst: true });
    const job = await submit(2);
    expect((await grid.waitForJob(job, 20_000)).state).toBe('done');
    expect(restarts).toHaveLength(1);
    expect(runs).toHaveLength(2); // the hung unit again (reissued) and the other one, after the restart
    expect(state().lastError).toMatch(/lease was cancelled and it was still computing [\d.]+ s later; the compute worker restarted/);
    expect(state().unitsDone).toBe(2);
  });

  test.each([false, true])('a unit slower than its lease: its result is still uploaded and counts, no restart (no restartCompute: %s)', async (noRestart) => {
    grid = await startTestCoordinator({ leaseMs: 1500 });
    // 2.5 s: the coordinator's tick (every 2 s) cancels the lease mid-compute, saying a late result
    // still counts; the grace is then as long again as the unit has run, so it finishes first.
    const { runs, restarts, state } = await startClient({ ms: 2500, noRestart });
    const job = await submit(1);
    expect((await grid.waitForJob(job, 20_000)).state).toBe('done');
    expect(restarts).toHaveLength(0);
    expect(runs.length).toBeGreaterThanOrEqual(1);
    await waitFor(() => state().unitsDone >= 1, 5_000, 'the late result acknowledged');
    expect(state().lastError ?? '').not.toMatch(/gave up/);
  });
});
