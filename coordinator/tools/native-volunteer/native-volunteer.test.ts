// Issue 22: the native volunteer (Dawn + onnxruntime-node, no browser) against a real coordinator on
// loopback, on SwiftShader's Vulkan driver. Its matmul, attention and onnx replicas must agree with
// another worker's (a SimWorker computing the CPU references, and onnxruntime-node for onnx); it keeps
// its identity across starts, and carries on through a coordinator restart on the same data.
// Problems are small: SwiftShader is slow. (e2e/native-volunteer.spec.ts pairs it with a browser page.)
import { statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startCoordinator } from '../../app';
import { attentionReference, attentionReferenceHeads } from '../../jobs/attention';
import { matmulReference } from '../../jobs/matmul';
import { parseNpy, toNpy } from '../../protocol/npy';
import { convNetModel } from '../../testing/test-models';
import type { JobStatus, TrainParams, VolunteerSummary, WorkUnitSpec } from '../../protocol';
import { initMlp } from '../../protocol/train-mlp';
import { initTransformer } from '../../protocol/train-transformer';
import { markovTask, markovTokens } from '../../testing/lm-task';
import { decodeUnitOutput, trainOutputsAgree, trainTolerance, trainUnitReference } from '../../jobs/train';
import { blobsTask } from '../../testing/train-task';
import { gpuTrainStats } from '../../../web/gpu/train-mlp';
import { maxRelativeError } from '../../testing/relative-error';
import { SimWorker } from '../../testing/sim-worker';
import { makeTempDir, randomMatrix, removeDir, startTestCoordinator, TOKEN, waitFor, type TestCoordinator } from '../../testing/helpers';
import { NativeCompute } from './compute';
import { installWebSocket } from './node-globals';
import { swiftShaderAvailable, useSwiftShader } from './webgpu';

const skip = !swiftShaderAvailable();
let compute: NativeCompute;
let volunteerModule: typeof import('./volunteer');
const state = makeTempDir('tabgrid-native-');
const log: string[] = [];

beforeAll(async () => {
  if (skip) return;
  useSwiftShader();
  installWebSocket();
  volunteerModule = await import('./volunteer');
  compute = await NativeCompute.start({ backend: 'webgpu', tune: false, log: (m) => log.push(m) });
}, 60_000);

afterAll(() => {
  compute?.close();
  removeDir(state);
});

/** Another worker: the CPU references for matmul and attention, onnxruntime-node for onnx units. */
function replicaWorker(base: string) {
  return new SimWorker({ url: base, name: 'replica', kinds: ['matmul', 'attention', 'onnx'] });
}

async function download(grid: { api: TestCoordinator['api'] }, jobId: string, output?: string) {
  const res = await grid.api(output ? `/api/jobs/${jobId}/outputs/${output}` : `/api/jobs/${jobId}/result`);
  expect(res.status).toBe(200);
  return parseNpy(new Uint8Array(await res.arrayBuffer())).data;
}

async function volunteers(grid: { api: TestCoordinator['api'] }): Promise<VolunteerSummary[]> {
  return ((await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] }).volunteers;
}

async function submitMatmul(grid: Pick<TestCoordinator, 'uploadShard' | 'submitJob'>, m: number, k: number, n: number, seed: number, replication = 2) {
  const a = randomMatrix(m, k, seed);
  const b = randomMatrix(k, n, seed + 1);
  const id = await grid.submitJob({
    kind: 'matmul',
    inputs: { a: await grid.uploadShard(toNpy([m, k], a)), b: await grid.uploadShard(toNpy([k, n], b)) },
    tile: { rows: 32, cols: 64 },
    replication,
    adaptive: false,
  });
  return { id, expected: matmulReference(a, b, m, k, n) };
}

describe.skipIf(skip)('native volunteer on SwiftShader', () => {
  test('the CPU backend (onnxruntime-node) computes matmul and attention units, train units (MLP and transformer) with the step graph; auto takes the faster', async () => {
    const cpu = await NativeCompute.start({ backend: 'cpu', tune: false });
    try {
      expect(cpu.backend).toBe('cpu');
      expect(cpu.deviceInfo()).toMatchObject({ backend: 'cpu', kinds: ['matmul', 'attention', 'onnx', 'train'] });
      expect(cpu.measured.cpu).toBeGreaterThan(0);
      const [m, k, n] = [33, 20, 17];
      const a = randomMatrix(m, k, 1);
      const b = randomMatrix(k, n, 2);
      const unit = (kind: string, params: object) => ({ id: 'w', jobId: 'j', kind, params, inputs: {}, flops: 1 }) as unknown as WorkUnitSpec;
      const noShard = async () => new Uint8Array();
      expect(maxRelativeError(await cpu.compute(unit('matmul', { m, k, n }), { a, b }, noShard), matmulReference(a, b, m, k, n))).toBeLessThan(1e-5);
      const p = { rows: 16, q0: 16, seq: 40, d: 64 as const, causal: true };
      const [q, kk, v] = [randomMatrix(16, 64, 3), randomMatrix(40, 64, 4), randomMatrix(40, 64, 5)];
      expect(maxRelativeError(await cpu.compute(unit('attention', p), { q, k: kk, v }, noShard), attentionReference(q, kk, v, p))).toBeLessThan(1e-5);
      // A train unit: the CPU backend runs the step graph on onnxruntime-node (float32 sums, so not
      // the TS loop's float64-accumulated bits), the WebGPU one the WGSL loop (counted); all agree.
      const layers = [6, 10, 3];
      const task = blobsTask(48, 6, 3, 5);
      const tp: TrainParams = { round: 0, rounds: 1, slice: 0, rows: 48, layers, steps: 6, batchSize: 16, seed: 3, optimizer: 'adamw', lr: 0.01, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, compress: 'none' };
      const trainInputs = { params: initMlp(layers, 1), x: task.x, y: task.y };
      const onGpu = gpuTrainStats.units;
      const fromCpu = await cpu.compute(unit('train', tp), trainInputs, noShard);
      expect(gpuTrainStats.units).toBe(onGpu);
      const fromGpu = await compute.compute(unit('train', tp), trainInputs, noShard);
      expect(gpuTrainStats.units).toBe(onGpu + 1);
      expect(trainOutputsAgree(decodeUnitOutput(tp, fromGpu), decodeUnitOutput(tp, fromCpu), trainTolerance(6))).toBe(true);
      const reference = trainUnitReference(tp, trainInputs.params, task.x, task.y);
      expect(trainOutputsAgree(decodeUnitOutput(tp, fromCpu), decodeUnitOutput(tp, reference), trainTolerance(6))).toBe(true);
      expect(fromCpu).not.toEqual(reference);
      // A transformer unit: the CPU backend runs its step graph too (web/onnx/transformer-step.ts).
      const { layers: _, ...common } = tp;
      const lm: TrainParams = { ...common, rows: 128, steps: 4, batchSize: 4, model: { type: 'transformer', vocab: 8, context: 8, layers: 1, dModel: 16, heads: 2 } };
      const lmInputs = { params: initTransformer(lm.model, 1), x: markovTokens(markovTask(8), 128, 2) };
      const lmFromCpu = await cpu.compute(unit('train', lm), lmInputs, noShard);
      const lmReference = trainUnitReference(lm, lmInputs.params, lmInputs.x, null);
      expect(trainOutputsAgree(decodeUnitOutput(lm, lmFromCpu), decodeUnitOutput(lm, lmReference), trainTolerance(4))).toBe(true);
      expect(lmFromCpu).not.toEqual(lmReference);
      // The WebGPU backend trains the transformer on that graph as well (not the TS loop's bits, nor the GPU's).
      const lmFromWebgpuBackend = await compute.compute(unit('train', lm), lmInputs, noShard);
      expect(gpuTrainStats.units).toBe(onGpu + 1);
      expect(trainOutputsAgree(decodeUnitOutput(lm, lmFromWebgpuBackend), decodeUnitOutput(lm, lmReference), trainTolerance(4))).toBe(true);
      expect(lmFromWebgpuBackend).not.toEqual(lmReference);
    } finally {
      cpu.close();
    }
    // On SwiftShader the CPU is the faster, as the page finds.
    expect(compute.measured.webgpu).toBeGreaterThan(0);
    const auto = await NativeCompute.start({ tune: false });
    try {
      expect(auto.measured.webgpu).toBeGreaterThan(0);
      expect(auto.backend).toBe(auto.measured.cpu! > auto.measured.webgpu! ? 'cpu' : 'webgpu');
      expect(auto.describe()).toContain(`computing on ${auto.backend === 'cpu' ? 'the CPU' : 'WebGPU'}`);
    } finally {
      auto.close();
    }
  }, 60_000);

  test('matmul, attention and onnx replicas agree with another worker; the identity persists', async () => {
    const grid = await startTestCoordinator({ leaseMs: 60_000 });
    const replica = replicaWorker(grid.base);
    const identityFile = join(state, 'replicas.key');
    let native = volunteerModule.startNativeVolunteer({ url: grid.base, identityFile, compute, log: (m) => log.push(m) });
    try {
      await replica.connect();
      const id = await waitFor(() => native.state().volunteerId, 10_000, 'welcome');
      expect(statSync(identityFile).mode & 0o777).toBe(0o600);

      const matmul = await submitMatmul(grid, 96, 128, 128, 1);
      const [heads, seq, d] = [2, 128, 64];
      const [q, k, v] = [11, 12, 13].map((seed) => randomMatrix(heads * seq, d, seed));
      const upload = (x: Float32Array) => grid.uploadShard(toNpy([heads, seq, d], x));
      const attention = await grid.submitJob({ kind: 'attention', inputs: { q: await upload(q), k: await upload(k), v: await upload(v) }, causal: true, blockRows: 64 });
      const model = convNetModel();
      const up = await grid.api('/api/models', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: model as Uint8Array<ArrayBuffer> });
      expect(up.status).toBe(201);
      const images = randomMatrix(32, 64, 31);
      const onnx = await grid.submitJob({
        kind: 'onnx',
        model: ((await up.json()) as { sha256: string }).sha256,
        inputs: { image: await grid.uploadShard(toNpy([32, 1, 8, 8], images)) },
        itemsPerUnit: 16,
      });

      for (const job of [matmul.id, attention, onnx]) expect((await grid.waitForJob(job, 60_000)).state).toBe('done');
      expect(maxRelativeError(await download(grid, matmul.id), matmul.expected)).toBeLessThan(1e-5);
      expect(maxRelativeError(await download(grid, attention), attentionReferenceHeads(q, k, v, heads, seq, d, true))).toBeLessThan(1e-5);
      const session = await ort.InferenceSession.create(model);
      const expected = await session.run({ image: new ort.Tensor('float32', images, [32, 1, 8, 8]) });
      expect(maxRelativeError(await download(grid, onnx), expected.logits.data as Float32Array)).toBeLessThan(1e-5);

      // Every unit was computed by both, and every replica agreed: matmul 3×2 tiles, attention 2 heads × 2 blocks, onnx 2 slices.
      const byId = new Map((await volunteers(grid)).map((s) => [s.id, s]));
      for (const who of [id, replica.volunteerId]) expect(byId.get(who)?.results).toMatchObject({ valid: 6 + 4 + 2, invalid: 0 });
      expect(native.state().credit).toBeGreaterThan(0);
      expect(log.join('\n')).toMatch(/computed .*FLOP\/s on onnxruntime-node \(cpu EP\)/);

      // The same key file is the same volunteer.
      await native.stop();
      native = volunteerModule.startNativeVolunteer({ url: grid.base, identityFile, compute });
      expect(await waitFor(() => native.state().volunteerId, 10_000, 'welcome again')).toBe(id);
      expect(native.state().credit).toBeGreaterThan(0);
    } finally {
      await native.stop();
      replica.close();
      await grid.stop();
    }
  }, 90_000);

  test('carries on through a coordinator restart on the same data and port', async () => {
    const first = await startTestCoordinator({ leaseMs: 60_000 });
    const { dir, base } = first;
    const port = first.c.port;
    const native = volunteerModule.startNativeVolunteer({ url: base, identityFile: join(state, 'restart.key'), compute, label: 'restart', log: (m) => log.push(m) });
    let second: Awaited<ReturnType<typeof startCoordinator>> | null = null;
    try {
      const id = await waitFor(() => native.state().volunteerId, 10_000, 'welcome');
      const before = await submitMatmul(first, 64, 64, 64, 5, 1);
      // One replica each: the native volunteer computes the job on its own (Freivalds' check vets it).
      expect((await first.waitForJob(before.id, 30_000)).state).toBe('done');
      await first.stop({ keepDir: true });
      await waitFor(() => native.state().phase === 'disconnected', 5_000, 'the volunteer to notice');

      second = await startCoordinator({ dataDir: dir, port, host: '127.0.0.1', apiToken: TOKEN, leaseMs: 60_000, staticDir: join(dir, 'no-static'), log: () => {} });
      const api = (path: string, init: RequestInit = {}) => fetch(base + path, { ...init, headers: { ...init.headers, authorization: `Bearer ${TOKEN}` } });
      const grid = {
        api,
        uploadShard: async (bytes: Uint8Array) => ((await (await api('/api/shards', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes as Uint8Array<ArrayBuffer> })).json()) as { sha256: string }).sha256,
        submitJob: async (body: unknown) => ((await (await api('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as { id: string }).id,
      };
      await waitFor(() => native.state().phase === 'waiting', 20_000, 'the volunteer to reconnect');
      const after = await submitMatmul(grid, 64, 64, 64, 7, 1);
      let done: JobStatus | null = null;
      for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
        done = (await (await api(`/api/jobs/${after.id}`)).json()) as JobStatus;
        if (done.state === 'done' || done.state === 'failed') break;
      }
      expect(done?.state).toBe('done');
      expect(maxRelativeError(await download(grid, after.id), after.expected)).toBeLessThan(1e-5);
      const me = (await volunteers(grid)).find((s) => s.id === id);
      expect(me?.results).toMatchObject({ valid: 4, invalid: 0 });
      // The outage is logged once, however many attempts reconnecting took.
      expect(log.filter((l) => l === 'restart disconnected from the coordinator; reconnecting')).toHaveLength(1);
      expect(log.filter((l) => l === 'restart connected again')).toHaveLength(1);
    } finally {
      await native.stop();
      await second?.close();
      removeDir(dir);
    }
  }, 90_000);
});
