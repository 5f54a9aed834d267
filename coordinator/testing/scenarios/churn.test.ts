// Churn: workers that vanish, freeze or answer late. Real coordinator, real WebSockets, Node
// workers speaking the real protocol; the CPU reference is the ground truth.
import type { KeyObject } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { matmulReference } from '../../jobs/matmul.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import type { LedgerEntry, ServerMessage, VolunteerSummary } from '../../protocol/index.js';
import { honestCompute, SimWorker, type Compute } from '../sim-worker.js';
import { randomMatrix, waitFor, type TestCoordinator } from '../helpers.js';
import { useGridPerTest } from '../fixtures.js';

const [M, K, N] = [8, 6, 5];
const A = randomMatrix(M, K, 11);
const B = randomMatrix(K, N, 12);

const { grid, workers, start } = useGridPerTest();

async function submit(g: TestCoordinator, replication: number): Promise<string> {
  const a = await g.uploadShard(toNpy([M, K], A));
  const b = await g.uploadShard(toNpy([K, N], B));
  return g.submitJob({ kind: 'matmul', inputs: { a, b }, replication, tile: { rows: M, cols: N } }); // one unit
}

function worker(g: TestCoordinator, name: string, extra: { compute?: Compute; autoPong?: boolean; identity?: KeyObject } = {}) {
  const w = new SimWorker({ url: g.base, name, ...extra });
  workers.push(w);
  return w;
}

/** A compute that waits until `open()` is called: a worker that is slow, or late. */
function gated() {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const compute: Compute = async (wu, inputs) => {
    await gate;
    return honestCompute(wu, inputs);
  };
  return { compute, open };
}

async function ledger(g: TestCoordinator): Promise<LedgerEntry[]> {
  return ((await (await g.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] }).entries;
}

async function credits(g: TestCoordinator): Promise<Map<string, number>> {
  const { volunteers } = (await (await g.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
  return new Map(volunteers.map((v) => [v.id, v.credit]));
}

async function expectCorrectResult(g: TestCoordinator, jobId: string) {
  const C = parseNpy(new Uint8Array(await (await g.api(`/api/jobs/${jobId}/result`)).arrayBuffer())).data;
  const ref = matmulReference(A, B, M, K, N);
  for (let i = 0; i < ref.length; i++) expect(C[i]).toBeCloseTo(ref[i], 5);
}

const acks = (w: SimWorker) => w.messages.filter((m): m is Extract<ServerMessage, { type: 'result-ack' }> => m.type === 'result-ack');

describe('churn', () => {
  test('a worker that stops answering pings loses its lease to another worker', async () => {
    // The deadline is far off: only the heartbeat can free the unit.
    await start({ leaseMs: 600_000, heartbeatMs: 1000 });
    const frozen = worker(grid, 'frozen', { compute: () => new Promise(() => {}), autoPong: false });
    await frozen.connect();
    const jobId = await submit(grid, 1);
    await waitFor(() => frozen.messages.some((m) => m.type === 'assign'), 20_000, 'the frozen worker to get the unit');
    const honest = worker(grid, 'honest');
    await honest.connect();
    const status = await grid.waitForJob(jobId, 20_000);
    expect(status.state).toBe('done');
    await expectCorrectResult(grid, jobId);
    expect((await credits(grid)).get(frozen.volunteerId)).toBe(0);
    expect((await credits(grid)).get(honest.volunteerId)).toBe(2 * M * N * K);
  });

  test('a late result from a timed-out lease is still validated and credited once', async () => {
    await start({ leaseMs: 300, heartbeatMs: 1000 });
    const late = gated();
    const slow = worker(grid, 'slow', { compute: late.compute });
    const quick = worker(grid, 'quick');
    await slow.connect();
    await quick.connect();
    const jobId = await submit(grid, 2);
    // The slow worker's lease passes its deadline; nobody else can take that replica (quick
    // already answered), so the unit waits — and the slow worker is offered it again.
    await waitFor(() => slow.messages.some((m) => m.type === 'lease-cancelled'), 20_000, 'the slow lease to expire');
    // The worker is told that its result, late, still counts (the page then finishes the unit).
    expect(slow.messages.find((m) => m.type === 'lease-cancelled')).toMatchObject({ reason: 'deadline passed', stillAccepted: true });
    await waitFor(() => slow.messages.filter((m) => m.type === 'assign').length >= 2, 20_000, 'the unit to be re-leased');
    late.open(); // both computations finish: the late result and the re-leased one
    const status = await grid.waitForJob(jobId, 20_000);
    expect(status.state).toBe('done');
    await expectCorrectResult(grid, jobId);
    await waitFor(() => acks(slow).length >= 2, 20_000, 'both results to be answered');
    expect(acks(slow).filter((a) => a.accepted)).toHaveLength(1);
    expect(acks(slow).find((a) => !a.accepted)?.reason).toMatch(/already returned|no longer wanted|already settled/);

    const entries = await ledger(grid);
    expect(entries.map((e) => e.volunteerId).sort()).toEqual([quick.volunteerId, slow.volunteerId].sort());
    const c = await credits(grid);
    expect(c.get(slow.volunteerId)).toBe(2 * M * N * K);
    expect(c.get(quick.volunteerId)).toBe(2 * M * N * K);
  });

  test('a worker killed mid-unit hands its replica to the next worker, and its late reconnect earns nothing twice', async () => {
    await start({ leaseMs: 600_000, heartbeatMs: 1000 });
    const doomed = worker(grid, 'doomed', { compute: () => new Promise(() => {}) });
    await doomed.connect();
    const jobId = await submit(grid, 1);
    await waitFor(() => doomed.messages.some((m) => m.type === 'assign'), 20_000, 'the doomed worker to get the unit');
    const assigned = doomed.received('assign')[0];
    doomed.kill();
    const next = worker(grid, 'next');
    await next.connect();
    expect((await grid.waitForJob(jobId, 20_000)).state).toBe('done');
    await expectCorrectResult(grid, jobId);
    expect((await ledger(grid)).map((e) => e.volunteerId)).toEqual([next.volunteerId]);

    // The killed machine comes back under the same identity and delivers what it computed for its
    // old lease — twice, as a page that lost its acks might. The unit is settled: both are refused.
    const back = worker(grid, 'doomed again', { identity: doomed.privateKey });
    await back.connect();
    expect(back.volunteerId).toBe(doomed.volunteerId);
    const output = matmulReference(A, B, M, K, N);
    const payload = new Uint8Array(output.buffer);
    back.sendResult(assigned.lease.id, assigned.wu.id, payload);
    await waitFor(() => acks(back).length >= 1, 10_000, 'the late result to be answered');
    back.sendResult(assigned.lease.id, assigned.wu.id, payload);
    await waitFor(() => acks(back).length >= 2, 10_000, 'the repeated late result to be answered');
    expect(acks(back).map((a) => a.accepted)).toEqual([false, false]);
    expect(acks(back)[0].reason).toMatch(/already settled/);
    expect(acks(back)[1].reason).toMatch(/already settled|no longer wanted/);
    expect((await ledger(grid)).map((e) => e.volunteerId)).toEqual([next.volunteerId]);
    const c = await credits(grid);
    expect(c.get(doomed.volunteerId)).toBe(0);
    expect(c.get(next.volunteerId)).toBe(2 * M * N * K);
  });
});
