// Issue 4: ONNX model jobs computed by browser volunteers with onnxruntime-web, checked against
// onnxruntime-node on the CPU; a model the WebGPU EP cannot run completes on the wasm fallback.
import { expect, test } from './fixtures';
import * as ort from 'onnxruntime-node';
import { parseNpy, toNpy } from '../coordinator/protocol/npy';
import { convNetModel, cumsumModel } from '../coordinator/testing/test-models';
import { randomMatrix, type TestCoordinator } from '../coordinator/testing/helpers';
import { computedOn, expectComputedOn, openVolunteer, startGrid } from './grid';

async function uploadModel(grid: TestCoordinator, bytes: Uint8Array): Promise<Response> {
  return grid.api('/api/models', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes as Uint8Array<ArrayBuffer> });
}

async function reference(model: Uint8Array, name: string, shape: number[], data: Float32Array): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(model);
  const out = await session.run({ [name]: new ort.Tensor('float32', data, shape) });
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
}

async function download(grid: TestCoordinator, path: string) {
  const res = await grid.api(path);
  expect(res.status).toBe(200);
  return parseNpy(new Uint8Array(await res.arrayBuffer()));
}

function expectClose(actual: Float32Array, expected: Float32Array, atol = 1e-4, rtol = 1e-3) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= atol + rtol * Math.abs(expected[i]))) {
      throw new Error(`element ${i}: ${actual[i]} vs onnxruntime-node ${expected[i]}`);
    }
  }
}

test('ONNX jobs: bad submissions are refused; a conv net over 64 inputs and a WebGPU-EP failure both complete', async ({ browser }) => {
  const grid = await startGrid();
  try {
    // --- Refused at submission with a clear 400.
    const corrupt = await uploadModel(grid, new TextEncoder().encode('this is not an onnx model at all'));
    expect(corrupt.status).toBe(400);
    expect(((await corrupt.json()) as { error: { message: string } }).error.message).toMatch(/not a valid ONNX model/);

    const model = convNetModel();
    const up = await uploadModel(grid, model);
    expect(up.status).toBe(201);
    const info = (await up.json()) as { sha256: string; inputs: { name: string; shape: (number | string)[] }[]; outputs: { name: string }[] };
    expect(info.inputs).toEqual([{ name: 'image', shape: ['?', 1, 8, 8] }]);
    expect(info.outputs.map((o) => o.name)).toEqual(['logits', 'features']);

    const images = randomMatrix(64, 64, 31);
    const imagesSha = await grid.uploadShard(toNpy([64, 1, 8, 8], images));
    const wrongShape = await grid.uploadShard(toNpy([64, 1, 8, 7], randomMatrix(64, 56, 32)));
    const submit = (body: object) => grid.api('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const misnamed = await submit({ kind: 'onnx', model: info.sha256, inputs: { x: imagesSha } });
    expect(misnamed.status).toBe(400);
    expect(await misnamed.text()).toContain("inputs do not match the model: it takes 'image'; missing 'image'; it has no input 'x'");
    const misshaped = await submit({ kind: 'onnx', model: info.sha256, inputs: { image: wrongShape } });
    expect(misshaped.status).toBe(400);
    expect(await misshaped.text()).toContain("does not match the model's input 'image' [?, 1, 8, 8] at axis 3");

    // --- Two volunteers: one on the WebGPU EP, one on the wasm EP; their replicas must agree.
    const gpuPage = await openVolunteer(browser, grid, { query: '?backend=webgpu' });
    const cpuPage = await openVolunteer(browser, grid, { query: '?backend=cpu' });
    const jobId = await grid.submitJob({ kind: 'onnx', model: info.sha256, inputs: { image: imagesSha }, itemsPerUnit: 16, argmax: ['logits'] });
    const status = await grid.waitForJob(jobId, 150_000);
    expect(status.state).toBe('done');
    expect(status.progress).toEqual({ done: 4, total: 4 });
    expect(status.result?.shape).toEqual([64, 10]);
    await expect(gpuPage.getByTestId('onnx-ep')).toHaveAttribute('data-ep', 'webgpu');
    await expect(cpuPage.getByTestId('onnx-ep')).toHaveAttribute('data-ep', 'wasm');
    // Every unit of either page ran on that page's EP (replication 2 over two pages: all four each).
    await expectComputedOn(gpuPage, 'webgpu', 4);
    await expectComputedOn(cpuPage, 'cpu', 4);

    const expected = await reference(model, 'image', [64, 1, 8, 8], images);
    const logits = await download(grid, `/api/jobs/${jobId}/result`);
    expect(logits.shape).toEqual([64, 10]);
    expectClose(logits.data, expected.logits);
    const features = await download(grid, `/api/jobs/${jobId}/outputs/features`);
    expect(features.shape).toEqual([64, 4, 4, 4]);
    expectClose(features.data, expected.features);
    expect((await grid.api(`/api/jobs/${jobId}/outputs/nope`)).status).toBe(404);

    // --- A model whose CumSum the WebGPU EP cannot compile: the WebGPU volunteer falls back to wasm.
    const fallbackModel = cumsumModel();
    const fm = (await (await uploadModel(grid, fallbackModel)).json()) as { sha256: string };
    const xs = randomMatrix(32, 8, 33);
    const job2 = await grid.submitJob({ kind: 'onnx', model: fm.sha256, inputs: { x: await grid.uploadShard(toNpy([32, 8], xs)) }, itemsPerUnit: 16 });
    expect((await grid.waitForJob(job2, 120_000)).state).toBe('done');
    await expect(gpuPage.getByTestId('onnx-ep')).toHaveAttribute('data-ep', 'wasm');
    await expect(gpuPage.getByTestId('onnx-ep')).toContainText('fallback');
    expect((await computedOn(gpuPage)).cpu).toBeGreaterThanOrEqual(1); // the fallback units really ran on wasm
    expectClose((await download(grid, `/api/jobs/${job2}/result`)).data, (await reference(fallbackModel, 'x', [32, 8], xs)).y);

    const volunteers = ((await (await grid.api('/api/volunteers')).json()) as { volunteers: { results: { invalid: number; valid: number } }[] }).volunteers;
    for (const v of volunteers) expect(v.results).toMatchObject({ valid: 6, invalid: 0 });
  } finally {
    await grid.stop();
  }
});
