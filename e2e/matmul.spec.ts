// The foundation's promise: a matmul job computed by real browsers on WebGPU, verified and credited.
// WebGPU is forced (?backend=webgpu): on this machine it is SwiftShader, ~100× slower than the CPU
// backend the pages would otherwise choose; the test checks that WebGPU computed every unit.
import { expect, test } from './fixtures';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy } from '../coordinator/protocol/npy';
import type { LedgerEntry, VolunteerSummary } from '../coordinator/protocol';
import { randomMatrix } from '../coordinator/testing/helpers';
import { SimWorker } from '../coordinator/testing/sim-worker';
import { computedOn, expectComputedOn, ledgerVerify, maxRelativeError, openVolunteer, startGrid, uploadMatrix } from './grid';

const [M, K, N] = [300, 200, 170];
const TILE = 128;

test('three browser volunteers on WebGPU compute a 300×200 · 200×170 matmul that matches the CPU reference', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const pages = [];
    for (let i = 0; i < 3; i++) pages.push(await openVolunteer(browser, grid, { backend: 'webgpu' }));
    const ids = await Promise.all(pages.map((p) => p.getByTestId('volunteer-id').textContent()));
    expect(new Set(ids).size).toBe(3); // three contexts, three identities

    const A = randomMatrix(M, K, 1);
    const B = randomMatrix(K, N, 2);
    const a = await uploadMatrix(grid, M, K, A);
    const b = await uploadMatrix(grid, K, N, B);
    // Fixed replication (no adaptive replication), so every unit's credit goes to exactly two volunteers.
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 2, adaptive: false, tile: { rows: TILE, cols: TILE } });
    const status = await grid.waitForJob(jobId, 150_000);
    expect(status.state).toBe('done');
    expect(status.progress).toEqual({ done: 6, total: 6 });

    const res = await grid.api(`/api/jobs/${jobId}/result`);
    expect(res.status).toBe(200);
    const C = parseNpy(new Uint8Array(await res.arrayBuffer()));
    expect(C.shape).toEqual([M, N]);
    expect(maxRelativeError(C.data, matmulReference(A, B, M, K, N))).toBeLessThanOrEqual(1e-4);

    // Credit: each volunteer's balance is the FLOPs of the units it helped validate.
    const { entries } = (await (await grid.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] };
    expect(entries).toHaveLength(6 * 2);
    const flopsOf = (wuId: string) => {
      const idx = Number(wuId.split('.').pop());
      const rows = Math.min(TILE, M - Math.floor(idx / 2) * TILE);
      const cols = Math.min(TILE, N - (idx % 2) * TILE);
      return 2 * rows * cols * K;
    };
    const expected = new Map<string, number>();
    for (const e of entries) {
      expect(e.amount).toBe(flopsOf(e.wuId));
      expected.set(e.volunteerId, (expected.get(e.volunteerId) ?? 0) + e.amount);
    }
    const { volunteers } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
    expect(volunteers).toHaveLength(3);
    for (const v of volunteers) {
      expect(v.credit).toBe(expected.get(v.id) ?? 0);
      expect(v.results.invalid).toBe(0);
    }
    expect([...expected.values()].reduce((s, x) => s + x, 0)).toBe(2 * 2 * M * N * K);
    // Each page shows the credit the coordinator granted it.
    for (const [i, page] of pages.entries()) {
      const v = volunteers.find((x) => x.id === ids[i])!;
      await expect(page.getByTestId('credit')).toHaveAttribute('data-credit', String(v.credit), { timeout: 10_000 });
    }

    const verify = ledgerVerify(grid.dir);
    expect(verify.output).toContain('ledger OK: 12 entries');
    expect(verify.status).toBe(0);

    // WebGPU computed every one of the 12 results, on every page; the CPU backend none.
    const counts = await Promise.all(pages.map((p) => computedOn(p)));
    for (const [i, c] of counts.entries()) expect(c, `page ${i}`).toMatchObject({ cpu: 0 });
    for (const [i, c] of counts.entries()) expect(c.webgpu, `page ${i}`).toBeGreaterThanOrEqual(1);
    expect(counts.reduce((s, c) => s + c.webgpu, 0)).toBeGreaterThanOrEqual(12);
  } finally {
    await grid.stop();
  }
});

// Not about the backend: the pages compute on the CPU (forced, the fast one here).
test('a cheating worker earns nothing and the job is still correct', async ({ browser }) => {
  const grid = await startGrid();
  const cheater = new SimWorker({
    url: grid.base,
    name: 'cheater',
    // Valid identity, valid signatures, wrong numbers.
    compute: (wu) => Float32Array.from({ length: wu.outputBytes / 4 }, (_, i) => (i % 7) - 3),
  });
  try {
    await cheater.connect();
    const pages = [await openVolunteer(browser, grid, { backend: 'cpu' }), await openVolunteer(browser, grid, { backend: 'cpu' })];
    const [m, k, n] = [96, 64, 80];
    const A = randomMatrix(m, k, 3);
    const B = randomMatrix(k, n, 4);
    const jobId = await grid.submitJob({
      kind: 'matmul',
      inputs: { a: await uploadMatrix(grid, m, k, A), b: await uploadMatrix(grid, k, n, B) },
      replication: 2,
      adaptive: false,
      tile: { rows: 32, cols: 32 },
    });
    const status = await grid.waitForJob(jobId, 150_000);
    expect(status.state).toBe('done');
    const C = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${jobId}/result`)).arrayBuffer()));
    expect(maxRelativeError(C.data, matmulReference(A, B, m, k, n))).toBeLessThanOrEqual(1e-4);

    const { volunteers } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
    const cheat = volunteers.find((v) => v.id === cheater.volunteerId)!;
    expect(cheat.credit).toBe(0);
    expect(cheat.results.valid).toBe(0);
    expect(cheat.results.invalid).toBeGreaterThan(0);
    const honest = volunteers.filter((v) => v.id !== cheater.volunteerId);
    expect(honest.reduce((s, v) => s + v.credit, 0)).toBe(2 * 2 * m * n * k);
    await expect(pages[0].getByTestId('units-done')).not.toHaveText('0');
    await expectComputedOn(pages[0], 'cpu');
    expect(ledgerVerify(grid.dir).status).toBe(0);
  } finally {
    cheater.close();
    await grid.stop();
  }
});
