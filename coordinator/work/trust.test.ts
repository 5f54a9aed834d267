import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { subtlyWrong } from '../tools/adversaries/workers.js';
import { auditLedger } from '../ledger/audit.js';
import { matmulReference } from '../jobs/matmul.js';
import { loadCoordinatorPublicKey } from '../access/keys.js';
import { parseNpy, toNpy } from '../protocol/npy.js';
import type { LedgerExport, VolunteerSummary } from '../protocol/index.js';
import { honestCompute, SimWorker } from '../testing/sim-worker.js';
import { SqliteStore } from '../store/sqlite/store.js';
import { randomMatrix, startTestCoordinator, waitFor, type TestCoordinator } from '../testing/helpers.js';
import { afterStrike, auditProbability, DEFAULT_TRUST_POLICY, freshTrust, replicateProbability, shouldReplicate } from './trust.js';

describe('trust policy', () => {
  test.each([
    [0, 1],
    [3, 1],
    [4, 1],
    [8, 0.25],
    [40, 0.03],
    [1000, 0.03],
  ])('a host with a streak of %i is replicated with probability %f', (streak, p) => {
    expect(replicateProbability(streak)).toBeCloseTo(p);
  });

  test('new identities are always replicated', () => {
    for (let i = 0; i < 100; i++) expect(shouldReplicate(freshTrust('v'))).toBe(true);
  });

  test('each strike doubles the suspension, up to the cap, and resets the streak', () => {
    let t = { ...freshTrust('v'), validStreak: 50 };
    const lengths: number[] = [];
    for (let i = 0; i < 12; i++) {
      t = afterStrike(t, 0);
      lengths.push(t.suspendedUntil);
      expect(t.validStreak).toBe(0);
    }
    expect(lengths[1]).toBe(2 * lengths[0]);
    expect(lengths[0]).toBe(DEFAULT_TRUST_POLICY.suspendBaseMs);
    expect(lengths.at(-1)).toBe(DEFAULT_TRUST_POLICY.suspendMaxMs);
  });
});

/** Polls an asynchronous condition until it holds. */
async function waitForAsync(ok: () => Promise<boolean>, what: string, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('adaptive replication against a real coordinator', () => {
  let grid: TestCoordinator;
  const workers: SimWorker[] = [];
  afterEach(async () => {
    for (const w of workers.splice(0)) w.close();
    await grid?.stop();
  });

  async function volunteers(): Promise<Map<string, VolunteerSummary>> {
    const { volunteers: list } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
    return new Map(list.map((v) => [v.id, v]));
  }

  test('without adaptive replication every unit is computed twice; with it, trusted hosts save work', async () => {
    grid = await startTestCoordinator();
    const [m, k, n] = [32, 8, 32];
    const a = await grid.uploadShard(toNpy([m, k], randomMatrix(m, k, 1)));
    const b = await grid.uploadShard(toNpy([k, n], randomMatrix(k, n, 2)));
    for (let i = 0; i < 3; i++) workers.push(new SimWorker({ url: grid.base, slots: 2 }));
    for (const w of workers) await w.connect();
    const computed = async () => [...(await volunteers()).values()].reduce((s, v) => s + v.results.valid + v.results.invalid, 0);

    const fixed = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, tile: { rows: 4, cols: 4 }, adaptive: false });
    expect((await grid.waitForJob(fixed)).state).toBe('done');
    expect(await computed()).toBe(2 * 64);

    const adaptive = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, tile: { rows: 4, cols: 4 } });
    expect((await grid.waitForJob(adaptive)).state).toBe('done');
    // Every host is trusted by now (streaks of ~40), so most of the 64 units need one result.
    expect((await computed()) - 2 * 64).toBeLessThan(100);
  });

  test('a sleeper that turns cheater is suspended, and its unconfirmed results are revoked and recomputed', async () => {
    grid = await startTestCoordinator();
    const [m, k, n] = [32, 8, 32];
    const A = randomMatrix(m, k, 3);
    const B = randomMatrix(k, n, 4);
    const a = await grid.uploadShard(toNpy([m, k], A));
    const b = await grid.uploadShard(toNpy([k, n], B));
    const store = new SqliteStore(join(grid.dir, 'tabgrid.sqlite'));
    try {
      // Honest until the coordinator has accepted one of its results unreplicated since a replica last
      // agreed with it, and nothing of it is still waiting for a replica (so that cannot move its
      // "last confirmed" mark): then it cheats. It holds one lease at a time, but its next lease
      // comes while its last result is still being checked: it waits for every result's answer
      // before it decides (a patient cheater does just that). It watches the database file, where
      // its trust record trails a settlement by a commit: it decides only once that record counts
      // every valid result it has (its streak, with no strike yet), so its mark can no longer move.
      let cheating = false;
      const turn = async (id: string) => {
        await waitFor(() => sleeper.received('result-ack').length >= sleeper.resultsSent, 5_000, "the sleeper's acks");
        const me = (await store.listVolunteers()).find((v) => v.id === id);
        if (!me || me.pending > 0) return false;
        await waitForAsync(async () => (await store.getTrust(id)).validStreak === me.valid, 'its trust record to count every valid result');
        const since = (await store.getTrust(id)).verifiedAt;
        return (await store.unreplicatedResults(id, since)).length > 0;
      };
      const sleeper: SimWorker = new SimWorker({
        url: grid.base,
        name: 'sleeper',
        compute: async (wu, inputs) => {
          cheating ||= await turn(sleeper.volunteerId);
          return cheating ? subtlyWrong(honestCompute(wu, inputs) as Float32Array, 5) : honestCompute(wu, inputs);
        },
      });
      const honest = [new SimWorker({ url: grid.base }), new SimWorker({ url: grid.base })];
      workers.push(sleeper, ...honest);
      await sleeper.connect();
      for (const w of honest) await w.connect();
      const job = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, tile: { rows: 4, cols: 4 } });
      await waitFor(() => sleeper.closed, 20_000, 'the sleeper to be cut off');
      const status = await grid.waitForJob(job, 30_000);
      expect(status.state).toBe('done');

      const result = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${job}/result`)).arrayBuffer())).data;
      const ref = matmulReference(A, B, m, k, n);
      for (let i = 0; i < ref.length; i++) expect(Math.abs(result[i] - ref[i])).toBeLessThan(1e-5);

      const ledger = (await (await grid.api('/api/ledger/export')).json()) as LedgerExport;
      const mine = ledger.entries.filter((e) => e.volunteerId === sleeper.volunteerId);
      expect(mine.some((e) => e.amount < 0)).toBe(true);
      const v = (await volunteers()).get(sleeper.volunteerId)!;
      expect(v.credit).toBe(mine.reduce((s, e) => s + e.amount, 0));
      expect(v.credit).toBe(v.results.valid * 2 * 4 * 4 * k);
      // Nothing it got accepted alone since a replica last agreed with it is left; the receipts of
      // the revocations reached it.
      const trust = await store.getTrust(sleeper.volunteerId);
      expect(await store.unreplicatedResults(sleeper.volunteerId, trust.verifiedAt)).toEqual([]);
      expect(sleeper.receipts.some((r) => r.entry.amount < 0)).toBe(true);
      // (Cheats already in flight when it was caught may add strikes.)
      expect(trust.strikes).toBeGreaterThanOrEqual(1);
      expect((await auditLedger(store, loadCoordinatorPublicKey(grid.dir))).ok).toBe(true);

      // It cannot come back under the same identity while suspended.
      const again = new SimWorker({ url: grid.base, identity: sleeper.privateKey });
      workers.push(again);
      await expect(again.connect()).rejects.toThrow(/closed before welcome/);
      expect(again.messages.some((msg) => msg.type === 'error' && msg.code === 'suspended')).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe('auditProbability', () => {
  const policy = { ...DEFAULT_TRUST_POLICY, auditNewProbability: 1, auditMinProbability: 0.05, trustedAfter: 4 };
  test.each([
    [0, 1],
    [3, 1],
    [4, 1],
    [8, 0.25],
    [16, 0.0625],
    [40, 0.05],
    [10_000, 0.05],
  ])('streak %i: %f', (streak, p) => {
    expect(auditProbability(streak, policy)).toBeCloseTo(p, 10);
  });

  test('never zero by default, and a new identity is audited at auditNewProbability', () => {
    expect(auditProbability(1e9)).toBeGreaterThan(0);
    expect(auditProbability(0, { ...policy, auditNewProbability: 0.5 })).toBe(0.5);
  });
});
