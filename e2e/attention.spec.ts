// An attention job end to end: one browser volunteer computes flash attention on WebGPU (with real
// autotuning), the other on the CPU backend (onnxruntime-web wasm); the coordinator validates the
// replicas against each other and spot-checks rows, and the result matches the CPU reference.
import { expect, test } from './fixtures';
import { attentionReferenceHeads } from '../coordinator/jobs/attention';
import { parseNpy, toNpy } from '../coordinator/protocol/npy';
import type { VolunteerSummary } from '../coordinator/protocol';
import { randomMatrix } from '../coordinator/testing/helpers';
import { expectComputedOn, maxRelativeError, openVolunteer, startGrid } from './grid';

test('a WebGPU and a CPU volunteer compute a causal 2-head attention job that matches the CPU reference', async ({ browser }) => {
  const [heads, seq, d] = [2, 40, 64];
  const grid = await startGrid();
  try {
    const pages = [await openVolunteer(browser, grid, { query: '?backend=webgpu', tune: true }), await openVolunteer(browser, grid, { query: '?backend=cpu' })];
    // The kernels are tuned in the background, once the page has waited a moment for work.
    await expect(pages[0].getByTestId('tuning')).toContainText('GFLOP/s', { timeout: 60_000 });
    await expect(pages[0].getByTestId('backend')).toHaveAttribute('data-backend', 'webgpu');
    await expect(pages[1].getByTestId('backend')).toHaveAttribute('data-backend', 'cpu');
    const [Q, K, V] = [41, 42, 43].map((seed) => randomMatrix(heads * seq, d, seed));
    const [q, k, v] = await Promise.all([Q, K, V].map((t) => grid.uploadShard(toNpy([heads, seq, d], t))));
    const jobId = await grid.submitJob({ kind: 'attention', inputs: { q, k, v }, causal: true, blockRows: 16, replication: 2 });
    const status = await grid.waitForJob(jobId, 150_000);
    expect(status.state).toBe('done');
    expect(status.progress).toEqual({ done: 6, total: 6 }); // 2 heads × ⌈40/16⌉ blocks

    const res = await grid.api(`/api/jobs/${jobId}/result`);
    const out = parseNpy(new Uint8Array(await res.arrayBuffer()));
    expect(out.shape).toEqual([heads, seq, d]);
    expect(maxRelativeError(out.data, attentionReferenceHeads(Q, K, V, heads, seq, d, true))).toBeLessThan(1e-5);

    const { volunteers } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
    const pairs = (seq * (seq + 1)) / 2;
    expect(volunteers.reduce((s, x) => s + x.credit, 0)).toBe(2 * heads * 4 * d * pairs); // every FLOP, twice
    for (const x of volunteers) expect(x.results.invalid).toBe(0);
    // Replication 2 with two volunteers: each computed every unit, and its page says so.
    for (const page of pages) await expect(page.getByTestId('units-done')).toHaveText('6');
    // …and each computed them on its backend: the flash-attention kernel on WebGPU, the wasm graph on the CPU.
    await expectComputedOn(pages[0], 'webgpu', 6);
    await expectComputedOn(pages[1], 'cpu', 6);
  } finally {
    await grid.stop();
  }
});
