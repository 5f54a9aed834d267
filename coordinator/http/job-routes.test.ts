// A job's downloads (GET /api/jobs/<id>/result, /outputs/<name>, /model.onnx): before the job is
// done each is a 409 naming its state and progress; once done each is an attachment named after the
// job, holding what an independent reference computes; a kind without the download is a 404.
import { describe, expect, test } from 'vitest';
import { centralReference } from '../jobs/train.js';
import { ApiError, TrainJobSubmit } from '../protocol/index.js';
import { parseNpy, toNpy } from '../protocol/npy.js';
import { useTestGrid } from '../testing/fixtures.js';
import { matmulF64 } from '../testing/float64-references.js';
import { randomMatrix } from '../testing/helpers.js';
import { maxRelativeError } from '../testing/relative-error.js';
import { SimWorker } from '../testing/sim-worker.js';
import { blobsTask, relativeL2 } from '../testing/train-task.js';

const { grid, workers } = useTestGrid();

const [M, K, N] = [6, 5, 4];
const A = randomMatrix(M, K, 71);
const B = randomMatrix(K, N, 72);

async function submitMatmul(): Promise<string> {
  const inputs = { a: await grid.uploadShard(toNpy([M, K], A)), b: await grid.uploadShard(toNpy([K, N], B)) };
  return grid.submitJob({ kind: 'matmul', inputs, replication: 1 });
}

async function startWorker(kinds?: string[]) {
  const w = new SimWorker({ url: grid.base, ...(kinds ? { kinds } : {}) });
  workers.push(w);
  await w.connect();
}

async function refusal(path: string) {
  const res = await grid.api(path);
  return { status: res.status, ...ApiError.parse(await res.json()).error };
}

/** The download's name, and its bytes as an .npy. */
async function download(path: string) {
  const res = await grid.api(path);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/octet-stream');
  return { disposition: res.headers.get('content-disposition'), bytes: new Uint8Array(await res.arrayBuffer()) };
}

describe('job downloads', () => {
  test('before the job is done: 409 not_ready with its state and progress; a kind without a model is 404', async () => {
    const id = await submitMatmul();
    const notReady = { status: 409, code: 'not_ready', message: 'job is queued (0/1 work units done)' };
    expect(await refusal(`/api/jobs/${id}/result`)).toEqual(notReady);
    expect(await refusal(`/api/jobs/${id}/outputs/params`)).toEqual(notReady);
    expect(await refusal(`/api/jobs/${id}/model.onnx`)).toEqual({ status: 404, code: 'not_found', message: 'matmul jobs have no model' });
  });

  test("a done matmul job's result is an attachment <id>.npy holding A·B; it has no named outputs", async () => {
    await startWorker();
    const id = await submitMatmul();
    expect((await grid.waitForJob(id)).state).toBe('done');
    const result = await download(`/api/jobs/${id}/result`);
    expect(result.disposition).toBe(`attachment; filename="${id}.npy"`);
    const C = parseNpy(result.bytes);
    expect(C.shape).toEqual([M, N]);
    expect(maxRelativeError(C.data, Float32Array.from(matmulF64(A, B, M, K, N)))).toBeLessThan(1e-6);
    expect(await refusal(`/api/jobs/${id}/outputs/params`)).toMatchObject({ status: 404, message: `matmul jobs have one result: use /api/jobs/${id}/result` });
  });

  test("a done train job's parameters are an attachment <id>-params.npy matching the central reference, its model <id>.onnx", async () => {
    const task = blobsTask(64, 8, 4, 3);
    await startWorker(['train']);
    const body = {
      kind: 'train',
      model: { type: 'mlp', layers: [8, 6, 4] },
      data: { x: await grid.uploadShard(toNpy([task.n, task.f], task.x)), y: await grid.uploadShard(toNpy([task.n], task.y)) },
      rounds: 1,
      localSteps: 2,
      batchSize: 16,
      innerOptimizer: { type: 'sgd', lr: 0.1 },
      unitsPerRound: 1,
      replication: 1,
    };
    const id = await grid.submitJob(body);
    expect((await grid.waitForJob(id)).state).toBe('done');
    const params = await download(`/api/jobs/${id}/outputs/params`);
    expect(params.disposition).toBe(`attachment; filename="${id}-params.npy"`);
    expect(relativeL2(parseNpy(params.bytes).data, centralReference(TrainJobSubmit.parse(body), task).params)).toBeLessThan(1e-4);
    const model = await download(`/api/jobs/${id}/model.onnx`);
    expect(model.disposition).toBe(`attachment; filename="${id}.onnx"`);
    expect(model.bytes.length).toBeGreaterThan(0);
  });
});
