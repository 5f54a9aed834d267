// Batched result frames against a real coordinator on loopback: several results under one
// signature are checked and credited exactly like single results, and every malformed or
// malicious batch is refused without touching state or earning credit.
import { generateKeyPairSync, sign } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { verifyExport } from '../../ledger/export.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import {
  encodeResultBatchFrame,
  encodeResultFrame,
  resultBatchSigningMessage,
  resultSigningMessage,
  type LedgerExport,
  type ResultBatchItem,
  type VolunteerSummary,
  type WorkUnitSpec,
} from '../../protocol/index.js';
import { sha256Hex } from '../../store/shards.js';
import { honestCompute, SimWorker, type Compute, type SimWorkerOptions } from '../sim-worker.js';
import { productBoundShare } from '../device-math.js';
import { flopsOfValidResults, randomMatrix, startTestCoordinator, waitFor, type TestCoordinator } from '../helpers.js';
import { DEFAULT_TRUST_POLICY } from '../../work/trust.js';

const assigns = (w: SimWorker) => w.received('assign');
const acks = (w: SimWorker) => w.received('result-ack');
const errors = (w: SimWorker) => w.received('error');

/** A worker on the test's coordinator, closed when the test ends. */
async function connected(tc: TestCoordinator, opts: Omit<SimWorkerOptions, 'url'>): Promise<SimWorker> {
  const w = new SimWorker({ url: tc.base, ...opts });
  onTestFinished(() => w.close());
  await w.connect();
  return w;
}

/** A coordinator holding an M×N = (A: M×K)·(B: K×N) job split into 8×8 tiles. */
async function matmulJob(M: number, K: number, N: number, seed: number, opts: { strikesSuspend?: boolean } = {}) {
  // Without suspension one identity can be struck and still be watched afterwards.
  const tc = await startTestCoordinator({ trustPolicy: opts.strikesSuspend === false ? { ...DEFAULT_TRUST_POLICY, suspendBaseMs: 0 } : undefined });
  onTestFinished(() => tc.stop());
  const A = randomMatrix(M, K, seed);
  const B = randomMatrix(K, N, seed + 1);
  const a = await tc.uploadShard(toNpy([M, K], A));
  const b = await tc.uploadShard(toNpy([K, N], B));
  const submit = () => tc.submitJob({ kind: 'matmul', inputs: { a, b }, tile: { rows: 8, cols: 8 }, adaptive: false });
  return { tc, A, B, submit };
}

async function volunteers(tc: TestCoordinator): Promise<Map<string, VolunteerSummary>> {
  const body = (await (await tc.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
  return new Map(body.volunteers.map((v) => [v.id, v]));
}

const computed = (v: VolunteerSummary | undefined) => (v ? v.results.valid + v.results.invalid + v.results.pending : 0);

/** Strikes the coordinator logged against an identity. */
const strikes = (tc: TestCoordinator, volunteerId: string) => tc.logs.filter((l) => l.startsWith(`volunteer ${volunteerId} `) && l.includes('(strike ')).length;

/**
 * The job's result is A·B within float32 rounding (honest workers sum in different orders, so it is
 * theirs, not the reference's), every volunteer's credit is exactly the FLOPs of its valid results,
 * and the ledger verifies.
 */
async function expectSettledExactly(tc: TestCoordinator, jobId: string, A: Float32Array, B: Float32Array, M: number, K: number, N: number) {
  expect((await tc.waitForJob(jobId, 30_000)).state).toBe('done');
  const result = parseNpy(new Uint8Array(await (await tc.api(`/api/jobs/${jobId}/result`)).arrayBuffer()));
  expect(result.shape).toEqual([M, N]);
  expect(productBoundShare(result.data, A, B, M, K, N)).toBeLessThanOrEqual(1);
  const ledger = (await (await tc.api('/api/ledger/export')).json()) as LedgerExport;
  expect(verifyExport(ledger).ok).toBe(true);
  const vs = await volunteers(tc);
  await tc.stop({ keepDir: true });
  const flops = await flopsOfValidResults(join(tc.dir, 'tabgrid.sqlite'));
  for (const [id, v] of vs) expect(v.credit).toBe(flops.get(id) ?? 0);
  const ledgerSum = new Map<string, number>();
  for (const e of ledger.entries) ledgerSum.set(e.volunteerId, (ledgerSum.get(e.volunteerId) ?? 0) + e.amount);
  for (const [id, v] of vs) expect(ledgerSum.get(id) ?? 0).toBe(v.credit);
}

describe('batched results from honest workers', () => {
  test.each([
    { slots: 1, batched: false },
    { slots: 3, batched: true },
    { slots: 8, batched: true },
  ])('slots $slots: the job is correct and credited FLOP for FLOP as with single results', async ({ slots, batched }) => {
    const [M, K, N] = [24, 13, 24]; // 9 tiles
    const { tc, A, B, submit } = await matmulJob(M, K, N, slots);
    const ws = [await connected(tc, { name: 'honest-0', slots, batchLingerMs: 100 }), await connected(tc, { name: 'honest-1', slots, batchLingerMs: 100 })];
    const id = await submit();
    await tc.waitForJob(id, 30_000);
    for (const w of ws) {
      await waitFor(() => acks(w).length >= 9, 10_000, 'acks');
      expect(w.resultsSent).toBe(9); // replication 2 over two workers: each computes every unit
      expect(acks(w).map((a) => a.accepted)).toEqual(Array(9).fill(true));
      if (batched) expect(w.framesSent).toBeLessThan(w.resultsSent);
      else expect(w.framesSent).toBe(w.resultsSent);
    }
    const vs = await volunteers(tc);
    for (const w of ws) expect(vs.get(w.volunteerId)).toMatchObject({ credit: 2 * M * N * K, results: { valid: 9, invalid: 0, pending: 0 } });
    await expectSettledExactly(tc, id, A, B, M, K, N);
  });
});

/** The correct output of a unit, computed from its input shards. */
async function correctOutput(tc: TestCoordinator, wu: WorkUnitSpec): Promise<Uint8Array> {
  const inputs: Record<string, Float32Array> = {};
  for (const [name, sha] of Object.entries(wu.inputs)) inputs[name] = parseNpy(new Uint8Array(await (await fetch(`${tc.base}/shards/${sha}`)).arrayBuffer())).data;
  const out = await honestCompute(wu, inputs);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

interface Held {
  leaseId: string;
  wu: WorkUnitSpec;
  good: Uint8Array;
}

/** A batch item as an attacker writes it: any lease, unit, claimed sha-256 and claimed size. */
interface Crafted {
  leaseId: string;
  wuId: string;
  payload: Uint8Array;
  sha256?: string;
  bytes?: number;
}

function craftBatch(items: Crafted[], key: Parameters<typeof sign>[2], message = resultBatchSigningMessage): Uint8Array {
  const header: ResultBatchItem[] = items.map((i) => ({ leaseId: i.leaseId, wuId: i.wuId, sha256: i.sha256 ?? sha256Hex(i.payload), bytes: i.bytes ?? i.payload.length }));
  const signature = sign(null, message(header), key).toString('base64url');
  return encodeResultBatchFrame({ type: 'results', items: header, signature }, items.map((i) => i.payload));
}

const asItem = (h: Held, payload = h.good): Crafted => ({ leaseId: h.leaseId, wuId: h.wu.id, payload });
const wrongValues = (bytes: Uint8Array) => new Uint8Array(new Float32Array(bytes.slice().buffer).map((x) => x + 0.5).buffer);

interface Attack {
  what: string;
  /** The frame the attacker (a) sends, holding leases `mine`; `theirs` are the other worker's. */
  frame: (a: SimWorker, mine: Held[], theirs: Held[]) => Uint8Array;
  /** Acks expected, in item order (a RegExp for a refusal's reason), or the bad_frame error expected instead. */
  expect: { acks: (true | RegExp)[] } | { frameError: RegExp };
  strikes: number;
  /** Results the coordinator stored for the attacker (valid, invalid or pending). */
  stored: number;
}

const BAD_SIGNATURE = /batch signature does not verify/;

const attacks: Attack[] = [
  {
    what: 'signed by another key',
    frame: (_a, mine) => craftBatch(mine.map((h) => asItem(h)), generateKeyPairSync('ed25519').privateKey),
    expect: { acks: [BAD_SIGNATURE, BAD_SIGNATURE, BAD_SIGNATURE] },
    strikes: 1,
    stored: 0,
  },
  {
    what: 'signed over the single-result message of its one item (domain separation)',
    frame: (a, mine) => craftBatch([asItem(mine[0])], a.privateKey, ([i]) => resultSigningMessage(i.wuId, i.sha256)),
    expect: { acks: [BAD_SIGNATURE] },
    strikes: 1,
    stored: 0,
  },
  {
    what: "sizes that don't add up to the payload",
    frame: (a, mine) => craftBatch(mine.map((h, i) => ({ ...asItem(h), bytes: h.good.length + (i === 0 ? 4 : 0) })), a.privateKey),
    expect: { frameError: /add up to \d+ bytes but \d+ payload bytes/ },
    strikes: 0,
    stored: 0,
  },
  {
    what: 'one item on the other worker’s lease among good ones',
    frame: (a, mine, theirs) => craftBatch([asItem(mine[0]), asItem(theirs[1]), asItem(mine[2])], a.privateKey),
    expect: { acks: [true, /no such lease/, true] },
    strikes: 1,
    stored: 2,
  },
  {
    what: 'one item naming a unit that is not its lease’s among good ones',
    frame: (a, mine) => craftBatch([asItem(mine[0]), { ...asItem(mine[1]), wuId: mine[2].wu.id }], a.privateKey),
    expect: { acks: [true, /no such lease/] },
    strikes: 1,
    stored: 1,
  },
  {
    what: 'one item whose sha-256 is not its bytes’ among good ones',
    frame: (a, mine) => craftBatch([asItem(mine[0]), { ...asItem(mine[1]), sha256: sha256Hex(new Uint8Array(8)) }, asItem(mine[2])], a.privateKey),
    expect: { acks: [true, /sha256 does not match/, true] },
    strikes: 1,
    stored: 2,
  },
  {
    what: 'one item of the wrong length among good ones (the sizes add up)',
    frame: (a, mine) => craftBatch([asItem(mine[0], mine[0].good.subarray(4)), asItem(mine[1])], a.privateKey),
    expect: { acks: [/252 bytes.*256 bytes/, true] },
    strikes: 1,
    stored: 1,
  },
  {
    what: 'one wrong result among good ones: still checked, refused and struck',
    frame: (a, mine) => craftBatch([asItem(mine[0]), asItem(mine[1], wrongValues(mine[1].good)), asItem(mine[2])], a.privateKey),
    expect: { acks: [true, /failed verification/, true] },
    strikes: 1,
    stored: 3,
  },
  {
    what: 'the same lease twice',
    frame: (a, mine) => craftBatch([asItem(mine[0]), asItem(mine[0])], a.privateKey),
    expect: { frameError: /each lease may appear once/ },
    strikes: 0,
    stored: 0,
  },
];

describe('malicious batches', () => {
  test.each(attacks)('a batch with $what is refused; state intact; no credit for it', async (attack) => {
    const [M, K, N] = [24, 16, 8]; // 3 tiles of 8×8: 256 bytes each
    const { tc, A, B, submit } = await matmulJob(M, K, N, 11, { strikesSuspend: false });
    const stall: Compute = () => new Promise<Float32Array>(() => {});
    const a = await connected(tc, { name: 'attacker', slots: 3, compute: stall });
    const b = await connected(tc, { name: 'other', slots: 3, compute: stall });
    const id = await submit();
    const held = async (w: SimWorker) => {
      const got = await waitFor(() => assigns(w).length === 3 && assigns(w), 10_000, 'three leases');
      return Promise.all(got.map(async (x) => ({ leaseId: x.lease.id, wu: x.wu, good: await correctOutput(tc, x.wu) })));
    };
    const mine = await held(a);
    const theirs = await held(b);
    const byWu = new Map(theirs.map((h) => [h.wu.id, h]));
    theirs.splice(0, 3, ...mine.map((h) => byWu.get(h.wu.id)!)); // theirs[i] is the same unit as mine[i]

    a.send(attack.frame(a, mine, theirs));
    if ('frameError' in attack.expect) {
      const err = await waitFor(() => errors(a)[0], 10_000, 'an error');
      expect(err.code).toBe('bad_frame');
      expect(err.message).toMatch(attack.expect.frameError);
    } else {
      const want = attack.expect.acks;
      const got = await waitFor(() => acks(a).length >= want.length && acks(a), 10_000, 'acks');
      expect(got).toHaveLength(want.length);
      got.forEach((ack, i) => {
        if (want[i] === true) expect(ack).toMatchObject({ accepted: true });
        else expect(ack.reason).toMatch(want[i] as RegExp);
      });
    }
    // Ask for something that is answered after the frame was handled: the socket queue is in order.
    a.send('{"type":"failure","leaseId":"l_none","reason":"barrier"}');
    await waitFor(() => errors(a).some((e) => e.code === 'bad_lease'), 10_000, 'the barrier');
    expect(strikes(tc, a.volunteerId)).toBe(attack.strikes);
    expect(computed((await volunteers(tc)).get(a.volunteerId))).toBe(attack.stored);
    // The other worker's leases were not disturbed: its batch of good results is taken whole.
    b.sendResults(theirs.map((h) => ({ leaseId: h.leaseId, wuId: h.wu.id, payload: h.good })));
    await waitFor(() => acks(b).length >= 3, 10_000, "b's acks");
    expect(acks(b).map((x) => x.accepted)).toEqual([true, true, true]);
    expect(errors(b)).toEqual([]);
    expect(b.framesSent).toBe(1);

    // Honest workers finish the job; credit is exact for everyone (the attacker earns only for
    // correct results of its own that a replica confirmed).
    a.close();
    await connected(tc, { name: 'honest', slots: 3, batchLingerMs: 50 });
    await expectSettledExactly(tc, id, A, B, M, K, N);
  });

  test('a single result frame signed with the batch message of its one item is refused', async () => {
    const { tc, submit } = await matmulJob(8, 8, 8, 5, { strikesSuspend: false });
    const stall: Compute = () => new Promise<Float32Array>(() => {});
    const a = await connected(tc, { name: 'attacker', compute: stall });
    await submit();
    const lease = await waitFor(() => assigns(a)[0], 10_000, 'a lease');
    const good = await correctOutput(tc, lease.wu);
    const sha = sha256Hex(good);
    const signature = sign(null, resultBatchSigningMessage([{ wuId: lease.wu.id, sha256: sha }]), a.privateKey).toString('base64url');
    a.send(encodeResultFrame({ type: 'result', leaseId: lease.lease.id, wuId: lease.wu.id, sha256: sha, signature }, good));
    const ack = await waitFor(() => acks(a)[0], 10_000, 'an ack');
    expect(ack).toMatchObject({ accepted: false, reason: expect.stringMatching(/signature does not verify/) });
    expect(strikes(tc, a.volunteerId)).toBe(1);
  });
});
