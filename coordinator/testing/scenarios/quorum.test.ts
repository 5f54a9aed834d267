// The validator's quorum paths that no cheater reaches, against a real coordinator: results that
// each pass the independent check (a device could have produced them) but do not agree. With no
// quorum, one more replica is asked for at a time up to 2·replication + 1, then the job fails; a
// result that disagrees with an agreeing quorum costs its host its streak and its unconfirmed
// credit, but no suspension (honest but flaky hardware does that).
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { auditLedger } from '../../ledger/audit.js';
import { loadCoordinatorPublicKey } from '../../access/keys.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import type { GridStats, LedgerEntry, VolunteerSummary } from '../../protocol/index.js';
import { SqliteStore } from '../../store/sqlite/store.js';
import { DEFAULT_TRUST_POLICY } from '../../work/trust.js';
import { offWithinCheck, productBoundShare } from '../device-math.js';
import { randomMatrix, waitFor } from '../helpers.js';
import { useGridPerTest } from '../fixtures.js';
import { matmulParams, SimWorker, type Compute } from '../sim-worker.js';

// Long dot products: the rounding the check must allow (γ·(|A|·|B|)_ij, ~3e-2 here) is far wider
// than the replica tolerance (atol ≈ 1.2e-4, rtol 1e-4), so results can pass one and fail the other.
const K = 1024;

const { grid, workers, start } = useGridPerTest();

function worker(name: string, opts: { compute?: Compute } = {}): SimWorker {
  const w = new SimWorker({ url: grid.base, name, ...opts });
  workers.push(w);
  return w;
}

/** Off by `share` of the check's bound on every element: passes the check, agrees only with the same share. */
const offBy =
  (share: number): Compute =>
  (wu, { a, b }) => {
    const { m, k, n } = matmulParams(wu);
    return offWithinCheck(a, b, m, k, n, share);
  };

async function upload(m: number, n: number, seed: number) {
  const A = randomMatrix(m, K, seed);
  const B = randomMatrix(K, n, seed + 1);
  return { A, B, a: await grid.uploadShard(toNpy([m, K], A)), b: await grid.uploadShard(toNpy([K, n], B)) };
}

const api = async <T>(path: string) => (await (await grid.api(path)).json()) as T;
const volunteers = async () => new Map((await api<{ volunteers: VolunteerSummary[] }>('/api/volunteers')).volunteers.map((v) => [v.id, v]));
const ledger = async () => (await api<{ entries: LedgerEntry[] }>('/api/ledger?limit=1000')).entries;
const strikes = () => grid.logs.filter((l) => /\(strike \d+\)/.test(l));

describe('no quorum', () => {
  test('replicas that pass the check but never agree: one more at a time up to 2·replication + 1 = 5, then the job fails', async () => {
    await start();
    // Six identities, each off by its own share of the bound: no two agree. The sixth is never asked.
    const ws = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6].map((share) => worker(`off-${share}`, { compute: offBy(share) }));
    for (const w of ws) await w.connect();
    const { a, b } = await upload(8, 8, 1);
    const id = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 2, adaptive: false, tile: { rows: 8, cols: 8 } });
    const status = await grid.waitForJob(id, 30_000);
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(/no 2 of 5 results agreed/);

    const assigned = ws.map((w) => w.received('assign').length);
    expect(assigned.reduce((s, x) => s + x, 0)).toBe(5); // 2, then 3, 4, 5: never a sixth
    expect(Math.max(...assigned)).toBe(1); // never twice to one identity
    // Every one of the five passed the independent check: this is disagreement, not cheating.
    // (The last ack may reach its worker after the job shows failed.)
    await waitFor(() => ws.flatMap((w) => w.received('result-ack')).length === 5, 10_000, 'five acks');
    const acks = ws.flatMap((w) => w.received('result-ack'));
    expect(acks.every((x) => x.accepted)).toBe(true);
    expect(await ledger()).toEqual([]);
    expect(strikes()).toEqual([]);
    expect(ws.every((w) => w.closed === null)).toBe(true);
    const vs = await volunteers();
    expect([...vs.values()].reduce((s, v) => s + v.credit, 0)).toBe(0);
    expect((await grid.api(`/api/jobs/${id}/result`)).status).toBe(409);
  });

  test('a third replica that agrees with one of two dissenting ones settles the unit; the odd one out is marked disagreed, not suspended', async () => {
    await start();
    const first = worker('first', { compute: offBy(0.1) });
    const odd = worker('odd', { compute: offBy(0.6) });
    await first.connect();
    await odd.connect();
    const { A, B, a, b } = await upload(8, 8, 3);
    const id = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 2, adaptive: false, tile: { rows: 8, cols: 8 } });
    await waitFor(() => first.received('result-ack').length + odd.received('result-ack').length === 2, 10_000, 'both replicas answered');
    expect((await api<{ state: string }>(`/api/jobs/${id}`)).state).toBe('running'); // no quorum of two yet
    const third = worker('third', { compute: offBy(0.1) });
    await third.connect();
    const status = await grid.waitForJob(id, 20_000);
    expect(status.state).toBe('done');
    const C = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${id}/result`)).arrayBuffer())).data;
    expect(productBoundShare(C, A, B, 8, K, 8)).toBeLessThan(0.2); // the quorum's (0.1 of the bound), not the odd one's
    const entries = await ledger();
    expect(entries.map((e) => e.volunteerId).sort()).toEqual([first.volunteerId, third.volunteerId].sort());
    const stats = await api<GridStats>('/api/stats');
    expect(stats.results).toMatchObject({ agreed: 2, disagreed: 1, invalid: 0, pending: 0 });
    expect(strikes()).toEqual([]);
    expect(odd.closed).toBeNull();
  });
});

describe('a result that passes the check but disagrees with the quorum', () => {
  test('resets its host’s streak and revokes its unconfirmed credit, without a suspension', async () => {
    // Trusted after one agreed result and then never re-checked (probability ≤ 1e-6): which
    // results stand alone is then certain, not drawn.
    await start({ trustPolicy: { ...DEFAULT_TRUST_POLICY, trustedAfter: 1e-3, minReplicateProbability: 0 } });
    const flops = 2 * 8 * 8 * K;
    let flaky = false;
    const honestOrOff: Compute = (wu, { a, b }) => {
      const { m, k, n } = matmulParams(wu);
      return offWithinCheck(a, b, m, k, n, flaky ? 0.5 : 0); // 0: the exact product, rounded once
    };
    const f = worker('flaky', { compute: honestOrOff });
    const h1 = worker('honest-1');
    await f.connect();
    await h1.connect();

    // Job 1 (adaptive): each host's first results are replicated, later ones stand alone.
    const one = await upload(64, 8, 5);
    const job1 = await grid.submitJob({ kind: 'matmul', inputs: { a: one.a, b: one.b }, replication: 2, tile: { rows: 8, cols: 8 } });
    expect((await grid.waitForJob(job1, 30_000)).state).toBe('done');
    const store = new SqliteStore(join(grid.dir, 'tabgrid.sqlite'));
    try {
      // Its trust mark trails the settlement by a commit: wait until it counts every valid result.
      const valid = async () => (await volunteers()).get(f.volunteerId)!.results.valid;
      const fValid = await valid();
      await waitForAsync(async () => (await store.getTrust(f.volunteerId)).validStreak === fValid, "the flaky host's trust to be written");
      const trustBefore = await store.getTrust(f.volunteerId);
      const alone = await store.unreplicatedResults(f.volunteerId, trustBefore.verifiedAt);
      expect(alone.length).toBeGreaterThanOrEqual(1); // the test's premise: credit no replica confirmed
      const creditBefore = (await volunteers()).get(f.volunteerId)!.credit;
      expect(creditBefore).toBe(fValid * flops);

      // Job 2 (every unit replicated): the flaky host and honest-1 take its unit and disagree; a
      // third host breaks the tie with honest-1.
      flaky = true;
      const two = await upload(8, 8, 7);
      const job2 = await grid.submitJob({ kind: 'matmul', inputs: { a: two.a, b: two.b }, replication: 2, adaptive: false, tile: { rows: 8, cols: 8 } });
      const job2Unit = `${job2}.0`;
      await waitFor(() => f.received('assign').some((m) => m.wu.id === job2Unit), 10_000, 'the flaky host to take job 2');
      await waitFor(() => f.received('result-ack').some((m) => m.wuId === job2Unit), 10_000, 'its result answered');
      flaky = false;
      expect(f.received('result-ack').find((m) => m.wuId === job2Unit)).toMatchObject({ accepted: true }); // it passed the check
      const h2 = worker('honest-2');
      await h2.connect();
      expect((await grid.waitForJob(job2, 20_000)).state).toBe('done');

      // Its streak is gone and its unconfirmed credit reversed by negative entries...
      await waitFor(() => grid.logs.find((l) => l.startsWith(`revoked ${alone.length} unconfirmed results of ${f.volunteerId}`)), 10_000, 'the revocation');
      const trust = await store.getTrust(f.volunteerId);
      expect(trust.validStreak).toBe(0);
      const negative = (await ledger()).filter((e) => e.volunteerId === f.volunteerId && e.amount < 0);
      expect(negative.map((e) => e.wuId).sort()).toEqual(alone.map((r) => r.wuId).sort());
      expect(negative.every((e) => e.amount === -flops)).toBe(true);
      const after = (await volunteers()).get(f.volunteerId)!;
      expect(after.credit).toBe(creditBefore - alone.length * flops);
      expect(f.receipts.filter((r) => r.entry.amount < 0)).toHaveLength(alone.length);
      const stats = await api<GridStats>('/api/stats');
      expect(stats.results.disagreed).toBe(1);
      // ...but it is not suspended: no strike, still connected, and given work again.
      expect(trust.strikes).toBe(0);
      expect(trust.suspendedUntil).toBe(0);
      expect(strikes()).toEqual([]);
      expect(f.closed).toBeNull();
      // The revoked units were recomputed by others: job 1 is done again, and still right.
      expect((await grid.waitForJob(job1, 30_000)).state).toBe('done');
      const C = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${job1}/result`)).arrayBuffer())).data;
      expect(productBoundShare(C, one.A, one.B, 64, K, 8)).toBeLessThanOrEqual(1);
      expect((await auditLedger(store, loadCoordinatorPublicKey(grid.dir))).ok).toBe(true);
      h1.close();
      h2.close();
      const three = await upload(8, 8, 9);
      const job3 = await grid.submitJob({ kind: 'matmul', inputs: { a: three.a, b: three.b }, replication: 2, tile: { rows: 8, cols: 8 } });
      await waitFor(() => f.received('assign').some((m) => m.wu.jobId === job3), 10_000, 'the flaky host to be given new work');
    } finally {
      await store.close();
    }
  });
});

/** Polls an asynchronous condition until it holds. */
async function waitForAsync(ok: () => Promise<boolean>, what: string, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
