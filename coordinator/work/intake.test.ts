// Protocol-level cheating against a real coordinator: SimWorkers speak the real WebSocket protocol,
// some honest, some not, and some sending hand-crafted frames.
import { generateKeyPairSync, sign } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { matmulReference } from '../jobs/matmul.js';
import { parseNpy, toNpy } from '../protocol/npy.js';
import { encodeResultFrame, resultSigningMessage, type ServerMessage, type VolunteerSummary, type WorkUnitSpec } from '../protocol/index.js';
import { sha256Hex } from '../store/shards.js';
import { matmulParams, SimWorker, type Compute } from '../testing/sim-worker.js';
import { productBoundShare } from '../testing/device-math.js';
import { SqliteStore } from '../store/sqlite/store.js';
import { flopsOfValidResults, randomMatrix, startTestCoordinator, waitFor, type TestCoordinator } from '../testing/helpers.js';
import { DEFAULT_TRUST_POLICY, type TrustPolicy } from './trust.js';

type Assign = Extract<ServerMessage, { type: 'assign' }>;
type Ack = Extract<ServerMessage, { type: 'result-ack' }>;

const assigns = (w: SimWorker) => w.messages.filter((m): m is Assign => m.type === 'assign');
const acks = (w: SimWorker) => w.messages.filter((m): m is Ack => m.type === 'result-ack');
const credits = (w: SimWorker) => w.messages.filter((m) => m.type === 'credit');

let t: TestCoordinator | undefined;
let workers: SimWorker[] = [];

afterEach(async () => {
  for (const w of workers) w.close();
  workers = [];
  await t?.stop();
  t = undefined;
});

async function setup(M: number, K: number, N: number, seed: number, trustPolicy?: TrustPolicy) {
  t = await startTestCoordinator({ trustPolicy });
  const A = randomMatrix(M, K, seed);
  const B = randomMatrix(K, N, seed + 1);
  const a = await t.uploadShard(toNpy([M, K], A));
  const b = await t.uploadShard(toNpy([K, N], B));
  return { t, A, B, a, b };
}

async function connect(...ws: SimWorker[]) {
  workers.push(...ws);
  await Promise.all(ws.map((w) => w.connect()));
}

async function volunteers(tc: TestCoordinator): Promise<Map<string, VolunteerSummary>> {
  const body = (await (await tc.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
  return new Map(body.volunteers.map((v) => [v.id, v]));
}

/**
 * The job's result is A·B as honest float32 devices compute it: every element within the rigorous
 * rounding bound of the float64 product (the honest SimWorkers sum in different orders, so their
 * replicas differ in the last bits and the result is theirs, not the reference's).
 */
async function expectCorrectResult(tc: TestCoordinator, jobId: string, A: Float32Array, B: Float32Array, M: number, K: number, N: number) {
  const res = await tc.api(`/api/jobs/${jobId}/result`);
  expect(res.status).toBe(200);
  const result = parseNpy(new Uint8Array(await res.arrayBuffer()));
  expect(result.shape).toEqual([M, N]);
  expect(productBoundShare(result.data, A, B, M, K, N)).toBeLessThanOrEqual(1);
}

describe('honest volunteers', () => {
  test('replicas from devices that sum in different orders differ in their last bits and still agree', async () => {
    const [M, K, N] = [32, 200, 32];
    const { t: tc, A, B, a, b } = await setup(M, K, N, 7);
    const forward = new SimWorker({ url: tc.base, name: 'forward', sumOrder: 'forward' });
    const pairwise = new SimWorker({ url: tc.base, name: 'pairwise', sumOrder: 'pairwise' });
    await connect(forward, pairwise);
    const id = await tc.submitJob({ kind: 'matmul', inputs: { a, b }, tile: { rows: 16, cols: 16 }, adaptive: false });
    expect((await tc.waitForJob(id)).state).toBe('done');
    await expectCorrectResult(tc, id, A, B, M, K, N);
    const vs = await volunteers(tc);
    for (const w of [forward, pairwise]) expect(vs.get(w.volunteerId)).toMatchObject({ credit: 2 * M * N * K, results: { valid: 4, invalid: 0, pending: 0 } });

    await tc.stop({ keepDir: true });
    const store = new SqliteStore(join(tc.dir, 'tabgrid.sqlite'));
    try {
      const rows = store.db.prepare(`SELECT wu_id, sha256 FROM results WHERE state = 'valid' ORDER BY wu_id`).all() as { wu_id: string; sha256: string }[];
      expect(rows).toHaveLength(8);
      const shas = new Map<string, Set<string>>();
      for (const r of rows) shas.set(r.wu_id, (shas.get(r.wu_id) ?? new Set()).add(r.sha256));
      // Not bit-identical: the agreement is the tolerance's doing, not plumbing.
      expect([...shas.values()].every((set) => set.size === 2)).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe('cheating volunteers', () => {
  test('a worker adding 0.5 everywhere earns nothing; the job completes with the correct result; honest credit = their flops', async () => {
    // Odd tile width (7): Σ r_j over 7 random signs is never 0, so Freivalds catches +0.5 every time.
    const M = 40;
    const K = 30;
    const N = 21;
    const { t: tc, A, B, a, b } = await setup(M, K, N, 1);
    const cheat: Compute = (wu, inputs) => matmulReference(inputs.a, inputs.b, matmulParams(wu).m, matmulParams(wu).k, matmulParams(wu).n).map((v) => v + 0.5);
    const cheater = new SimWorker({ url: tc.base, name: 'cheater', compute: cheat });
    const h1 = new SimWorker({ url: tc.base, name: 'honest-1' });
    const h2 = new SimWorker({ url: tc.base, name: 'honest-2' });
    await connect(cheater, h1, h2);

    // Fixed replication, so both honest workers compute every unit.
    const id = await tc.submitJob({ kind: 'matmul', inputs: { a, b }, tile: { rows: 16, cols: 7 }, adaptive: false });
    const status = await tc.waitForJob(id);
    expect(status).toMatchObject({ state: 'done', progress: { done: 9, total: 9 }, error: null });
    await expectCorrectResult(tc, id, A, B, M, K, N);

    const vs = await volunteers(tc);
    const c = vs.get(cheater.volunteerId)!;
    expect(c.credit).toBe(0);
    expect(c.results.valid).toBe(0);
    expect(c.results.invalid).toBeGreaterThan(0);
    expect(c.results.pending).toBe(0);
    expect(cheater.credit).toBe(0);
    expect(credits(cheater)).toHaveLength(0);
    // Every cheating result the coordinator looked at was refused by the independent check.
    const cheaterAcks = acks(cheater);
    expect(cheaterAcks.filter((x) => x.accepted)).toHaveLength(0);
    expect(cheaterAcks.filter((x) => x.reason === 'result failed verification')).toHaveLength(c.results.invalid);

    // Both honest workers did every unit (the cheater can never be part of a quorum).
    for (const h of [h1, h2]) {
      const v = vs.get(h.volunteerId)!;
      expect(v.results).toEqual({ valid: 9, invalid: 0, pending: 0 });
      expect(v.credit).toBe(2 * M * N * K);
      expect(h.credit).toBe(v.credit);
      expect(credits(h).reduce((s, m) => s + (m.type === 'credit' ? m.amount : 0), 0)).toBe(v.credit);
    }

    // The ledger names only honest volunteers.
    const ledger = (await (await tc.api('/api/ledger?limit=1000')).json()) as { entries: { volunteerId: string }[] };
    expect(ledger.entries).toHaveLength(18);
    expect(ledger.entries.some((e) => e.volunteerId === cheater.volunteerId)).toBe(false);

    // Credit equals the flops of the units each volunteer has valid results for (from the database).
    await tc.stop({ keepDir: true });
    const flops = await flopsOfValidResults(join(tc.dir, 'tabgrid.sqlite'));
    expect(flops.get(h1.volunteerId)).toBe(vs.get(h1.volunteerId)!.credit);
    expect(flops.get(h2.volunteerId)).toBe(vs.get(h2.volunteerId)!.credit);
    expect(flops.has(cheater.volunteerId)).toBe(false);
  });

  test('a subtle cheater that passes Freivalds is caught by spot recomputation and earns nothing', async () => {
    const M = 24;
    const K = 30;
    const N = 14;
    const { t: tc, A, B, a, b } = await setup(M, K, N, 2);
    const U = 2 ** -24;
    // Changes one element of each tile by 90% of Freivalds' honest-rounding bound for its row:
    // the cheap check must accept it, but it is far outside the replica tolerance.
    const subtle: Compute = (wu, inputs) => {
      const { m, k, n } = matmulParams(wu);
      const c = matmulReference(inputs.a, inputs.b, m, k, n);
      let best = { idx: -1, margin: -Infinity, delta: 0 };
      for (let i = 0; i < m; i++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          let bs = 0;
          for (let j = 0; j < n; j++) bs += Math.abs(inputs.b[p * n + j]);
          s += Math.abs(inputs.a[i * k + p]) * bs;
        }
        const delta = 0.9 * 2.02 * (k + 2) * U * s;
        for (let j = 0; j < n; j++) {
          const v = Math.abs(c[i * n + j]);
          // Replica tolerance for this unit: atol ≈ 2·k·u·max|a|·max|b| ≤ 2·k·u, rtol 1e-4.
          const margin = delta - (2 * k * U + 1e-4 * (v + delta));
          if (margin > best.margin) best = { idx: i * n + j, margin, delta };
        }
      }
      if (best.margin <= 0) throw new Error('test setup: no element where the subtle change exceeds the tolerance');
      c[best.idx] += best.delta;
      return c;
    };
    const cheater = new SimWorker({ url: tc.base, name: 'subtle', compute: subtle });
    const h1 = new SimWorker({ url: tc.base, name: 'honest-1' });
    const h2 = new SimWorker({ url: tc.base, name: 'honest-2' });
    await connect(cheater, h1, h2);

    const id = await tc.submitJob({ kind: 'matmul', inputs: { a, b }, tile: { rows: 8, cols: 7 }, adaptive: false });
    expect((await tc.waitForJob(id)).state).toBe('done');
    await expectCorrectResult(tc, id, A, B, M, K, N);

    const vs = await volunteers(tc);
    const c = vs.get(cheater.volunteerId)!;
    // Freivalds' row bound lets it through, but recomputing the tile's elements (a small tile is
    // checked in full) does not: refused at once, never reaching the quorum.
    expect(acks(cheater).some((x) => x.accepted)).toBe(false);
    expect(c).toMatchObject({ credit: 0, results: { valid: 0, pending: 0 } });
    expect(c.results.invalid).toBeGreaterThan(0);
    for (const h of [h1, h2]) expect(vs.get(h.volunteerId)!.credit).toBe(2 * M * N * K);

    await tc.stop({ keepDir: true });
    const store = new SqliteStore(join(tc.dir, 'tabgrid.sqlite'));
    try {
      const reasons = store.db.prepare(`SELECT DISTINCT reason FROM results WHERE volunteer_id = ?`).all(cheater.volunteerId);
      expect(reasons).toEqual([{ reason: 'failed the independent check' }]);
    } finally {
      await store.close();
    }
  });
});

describe('crafted result frames', () => {
  test('wrong length, foreign signature, foreign lease, wrong sha and replays are refused; honest results still settle', async () => {
    const M = 8;
    const K = 8;
    const N = 8;
    // Strikes without suspension, so one worker can try every kind of bad frame in turn.
    const { t: tc, A, B, a, b } = await setup(M, K, N, 3, { ...DEFAULT_TRUST_POLICY, suspendBaseMs: 0 });
    // Workers that take leases and never compute on their own: the test sends their results.
    const stall: Compute = () => new Promise<Float32Array>(() => {});
    const wa = new SimWorker({ url: tc.base, name: 'a', compute: stall });
    const wb = new SimWorker({ url: tc.base, name: 'b', compute: stall });
    await connect(wa, wb);
    const id = await tc.submitJob({ kind: 'matmul', inputs: { a, b }, adaptive: false });

    const nthAssign = (w: SimWorker, n: number) => waitFor(() => assigns(w)[n - 1], 10_000, `assign #${n}`);
    const ackOf = (w: SimWorker, leaseId: string, n = 1) =>
      waitFor(() => acks(w).filter((x) => x.leaseId === leaseId)[n - 1], 10_000, `ack for ${leaseId}`);

    const a1 = await nthAssign(wa, 1);
    const b1 = await nthAssign(wb, 1);
    const wu: WorkUnitSpec = a1.wu;
    expect(b1.wu.id).toBe(wu.id);
    expect(wu.params).toEqual({ m: M, k: K, n: N });
    expect(wu.outputBytes).toBe(M * N * 4);
    const good = matmulReference(A, B, M, K, N);
    const goodBytes = new Uint8Array(good.buffer);

    // 1. Wrong byte length: refused, the lease is given up and the unit re-offered.
    wa.sendResult(a1.lease.id, wu.id, goodBytes.subarray(0, goodBytes.length - 4));
    const ack1 = await ackOf(wa, a1.lease.id);
    expect(ack1).toMatchObject({ accepted: false, wuId: wu.id });
    expect(ack1.reason).toMatch(/252 bytes.*256 bytes/);

    // 2. Signed with a key that is not this volunteer's.
    const a2 = await nthAssign(wa, 2);
    expect(a2.lease.id).not.toBe(a1.lease.id);
    wa.sendResult(a2.lease.id, wu.id, goodBytes, generateKeyPairSync('ed25519').privateKey);
    const ack2 = await ackOf(wa, a2.lease.id);
    expect(ack2.accepted).toBe(false);
    expect(ack2.reason).toMatch(/signature/);

    // 3. A result on somebody else's lease (b's), signed by a: refused, and a's own lease stays.
    const a3 = await nthAssign(wa, 3);
    wa.sendResult(b1.lease.id, wu.id, goodBytes);
    const ack3 = await ackOf(wa, b1.lease.id);
    expect(ack3.accepted).toBe(false);
    expect(ack3.reason).toMatch(/no such lease/);
    // ... and on its own lease but naming another work unit.
    wa.sendResult(a3.lease.id, `${id}.7`, goodBytes);
    const ack3b = await ackOf(wa, a3.lease.id);
    expect(ack3b.accepted).toBe(false);
    expect(ack3b.reason).toMatch(/no such lease/);

    // 4. A header whose sha-256 is not that of the payload (signed consistently with the header).
    const otherSha = sha256Hex(new Uint8Array(goodBytes.length));
    const sig = sign(null, resultSigningMessage(wu.id, otherSha), wa.privateKey).toString('base64url');
    wa.send(encodeResultFrame({ type: 'result', leaseId: a3.lease.id, wuId: wu.id, sha256: otherSha, signature: sig }, goodBytes));
    const ack4 = await ackOf(wa, a3.lease.id, 2);
    expect(ack4.accepted).toBe(false);
    expect(ack4.reason).toMatch(/sha256 does not match/);

    // Garbage frames get protocol errors, not a crash.
    const errorsBefore = wa.messages.filter((m) => m.type === 'error').length;
    wa.send(new Uint8Array([1, 0]));
    wa.send('{"type":"ready","slots":"lots"}');
    wa.send('not json');
    await waitFor(() => wa.messages.filter((m) => m.type === 'error').length >= errorsBefore + 3, 10_000, 'protocol errors');
    const errs = wa.messages.filter((m): m is Extract<ServerMessage, { type: 'error' }> => m.type === 'error').slice(errorsBefore);
    expect(errs.map((e) => e.code)).toEqual(['bad_frame', 'bad_message', 'bad_message']);

    // Nothing so far is stored as a result or earned credit.
    expect((await (await tc.api(`/api/jobs/${id}`)).json()).progress).toEqual({ done: 0, total: 1 });

    // 5. Honest results from both settle the unit and complete the job.
    const a4 = await nthAssign(wa, 4);
    wa.sendResult(a4.lease.id, wu.id, goodBytes);
    expect((await ackOf(wa, a4.lease.id)).accepted).toBe(true);
    wb.sendResult(b1.lease.id, wu.id, goodBytes);
    expect((await ackOf(wb, b1.lease.id)).accepted).toBe(true);
    expect((await tc.waitForJob(id)).state).toBe('done');
    await expectCorrectResult(tc, id, A, B, M, K, N);

    // 6. Replaying an accepted result earns nothing more.
    wa.sendResult(a4.lease.id, wu.id, goodBytes);
    const replay = await ackOf(wa, a4.lease.id, 2);
    expect(replay.accepted).toBe(false);
    expect(replay.reason).toMatch(/lease is returned/);

    const vs = await volunteers(tc);
    for (const w of [wa, wb]) expect(vs.get(w.volunteerId)).toMatchObject({ credit: 2 * M * N * K, results: { valid: 1, invalid: 0, pending: 0 } });
  });
});
