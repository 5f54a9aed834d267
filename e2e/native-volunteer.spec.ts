// Issue 22: a native volunteer (`npm run volunteers -- --native`: Dawn + onnxruntime-node, no
// browser) and a browser volunteer (WebGPU in headless Chromium) compute replicas of the same
// matmul, attention and onnx units, and every pair agrees. Both run web/gpu's WGSL kernels on
// SwiftShader here — one through Chromium's Dawn, one through dawn.node; the onnx units run on
// onnxruntime-web's WebGPU EP in the page and onnxruntime-node's CPU EP natively.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { expect, test } from './fixtures';
import { attentionReferenceHeads } from '../coordinator/jobs/attention';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy, toNpy } from '../coordinator/protocol/npy';
import { convNetModel } from '../coordinator/testing/test-models';
import type { VolunteerSummary } from '../coordinator/protocol';
import { makeTempDir, randomMatrix, removeDir, waitFor } from '../coordinator/testing/helpers';
import { maxRelativeError, openVolunteer, ROOT, startGrid } from './grid';
import { traceNote } from './fixtures';

test('a native and a browser volunteer compute replicas of matmul, attention and onnx units that agree', async ({ browser }) => {
  test.setTimeout(90_000);
  const grid = await startGrid();
  const state = makeTempDir('tabgrid-native-e2e-');
  const native = spawn(
    process.execPath,
    ['--import', 'tsx', resolve(ROOT, 'coordinator/tools/headless-volunteers.ts'), '--native', '--coordinator', grid.base, '--state', state, '--swiftshader', '--backend', 'webgpu', '--no-tune', '--no-p2p', '--interval', '0'],
    { cwd: ROOT, env: { ...process.env, VK_ICD_FILENAMES: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const collect = (d: Buffer) => {
    out += String(d);
    for (const line of String(d).trim().split('\n')) traceNote('native', line);
  };
  native.stdout.on('data', collect);
  native.stderr.on('data', collect);
  const exited = new Promise<number | null>((r) => native.on('exit', (code) => r(code)));
  try {
    const page = await openVolunteer(browser, grid, { query: '?backend=webgpu' });
    await waitFor(() => /volunteer v_[0-9a-f]+/.test(out), 30_000, 'the native volunteer');
    const nativeId = /volunteer (v_[0-9a-f]+)/.exec(out)![1];

    const [m, k, n] = [128, 96, 128];
    const A = randomMatrix(m, k, 1);
    const B = randomMatrix(k, n, 2);
    const matmul = await grid.submitJob({
      kind: 'matmul',
      inputs: { a: await grid.uploadShard(toNpy([m, k], A)), b: await grid.uploadShard(toNpy([k, n], B)) },
      tile: { rows: 64, cols: 64 },
      adaptive: false,
    });
    const [heads, seq, d] = [1, 128, 64];
    const [Q, K, V] = [11, 12, 13].map((seed) => randomMatrix(heads * seq, d, seed));
    const [q, kk, v] = await Promise.all([Q, K, V].map((t) => grid.uploadShard(toNpy([heads, seq, d], t))));
    const attention = await grid.submitJob({ kind: 'attention', inputs: { q, k: kk, v }, causal: true, blockRows: 64 });
    const model = convNetModel();
    const up = await grid.api('/api/models', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: model as Uint8Array<ArrayBuffer> });
    const images = randomMatrix(32, 64, 31);
    const onnx = await grid.submitJob({
      kind: 'onnx',
      model: ((await up.json()) as { sha256: string }).sha256,
      inputs: { image: await grid.uploadShard(toNpy([32, 1, 8, 8], images)) },
      itemsPerUnit: 16,
    });
    for (const job of [matmul, attention, onnx]) expect((await grid.waitForJob(job, 60_000)).state).toBe('done');

    const result = async (job: string) => parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${job}/result`)).arrayBuffer())).data;
    expect(maxRelativeError(await result(matmul), matmulReference(A, B, m, k, n))).toBeLessThan(1e-5);
    expect(maxRelativeError(await result(attention), attentionReferenceHeads(Q, K, V, heads, seq, d, true))).toBeLessThan(1e-5);
    const session = await ort.InferenceSession.create(model);
    const expected = await session.run({ image: new ort.Tensor('float32', images, [32, 1, 8, 8]) });
    expect(maxRelativeError(await result(onnx), expected.logits.data as Float32Array)).toBeLessThan(1e-4);

    // Replication 2 with two volunteers: each computed all 4 + 2 + 2 units, and every pair agreed.
    const { volunteers } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
    expect(volunteers).toHaveLength(2);
    for (const x of volunteers) expect(x.results, x.id).toMatchObject({ valid: 8, invalid: 0 });
    expect(volunteers.map((x) => x.id)).toContain(nativeId);
    await expect(page.getByTestId('units-done')).toHaveText('8');
    await expect(page.getByTestId('onnx-ep')).toHaveAttribute('data-ep', 'webgpu');
    expect(out).toMatch(/computed .*FLOP\/s on onnxruntime-node \(cpu EP\)/);

    native.kill('SIGINT');
    expect(await exited).toBe(0);
  } finally {
    native.kill('SIGKILL');
    await grid.stop();
    removeDir(state);
  }
});
