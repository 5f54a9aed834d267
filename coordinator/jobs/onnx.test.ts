// The onnx job kind against onnxruntime-node: model inspection, the 400s a researcher sees at
// submission, batch slicing, per-output agreement, and a whole job run by Node workers.
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProto_DataType } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { parseNpy, toNpy } from '../protocol/npy.js';
import { buildModel, type ModelSpec } from '../protocol/onnx-builder.js';
import { inspectModel } from './onnx-model.js';
import { convNetModel, mlpModel } from '../testing/test-models.js';
import { ONNX_LIMITS, type OnnxParams, type VolunteerSummary, type WorkUnitSpec } from '../protocol/index.js';
import { SimWorker, type Compute } from '../testing/sim-worker.js';
import type { WorkUnitRecord } from '../store/store.js';
import { randomMatrix } from '../testing/helpers.js';
import { useTempShards, useTestGrid } from '../testing/fixtures.js';
import { argmaxAgree, onnx, readModel } from './onnx.js';
import { JobInputError } from './types.js';

const addModel = (over: Partial<ModelSpec> = {}): Uint8Array =>
  buildModel({
    inputs: [
      { name: 'a', dims: ['batch', 3] },
      { name: 'b', dims: ['batch', 3] },
    ],
    outputs: [{ name: 'sum', dims: ['batch', 3] }],
    nodes: [{ op: 'Add', inputs: ['a', 'b'], outputs: ['sum'] }],
    ...over,
  });

async function runReference(model: Uint8Array, feeds: Record<string, { shape: number[]; data: Float32Array }>) {
  const session = await ort.InferenceSession.create(model);
  const input = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.shape)]));
  const out = await session.run(input);
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
}

describe('inspectModel', () => {
  test('reads names and shapes, with the batch axis dynamic', () => {
    const info = inspectModel(convNetModel());
    expect(info.inputs).toEqual([{ name: 'image', dims: [null, 1, 8, 8] }]);
    expect(info.outputs).toEqual([
      { name: 'logits', dims: [null, 10] },
      { name: 'features', dims: [null, 4, 4, 4] },
    ]);
    expect(info.parameters).toBe(4 * 9 + 4 + 64 * 10 + 10);
    expect(info.ops).toEqual(['AveragePool', 'Conv', 'Flatten', 'Gemm', 'Relu']);
  });

  const good = mlpModel();
  test.each([
    ['empty', new Uint8Array(0)],
    ['text', new TextEncoder().encode('hello, I am not a model')],
    ['truncated', good.slice(0, good.length >> 1)],
    ['an .npy file', toNpy([2, 2], new Float32Array(4))],
    ['random bytes', Uint8Array.from(randomMatrix(1, 300, 5), (v) => Math.floor((v + 1) * 127))],
  ])('refuses %s', (_what, bytes) => {
    expect(() => readModel(bytes)).toThrow(JobInputError);
    expect(() => readModel(bytes)).toThrow(/not a valid ONNX model/);
  });

  test('refuses a model over the size limit before parsing it', () => {
    expect(() => readModel(new Uint8Array(ONNX_LIMITS.maxModelBytes + 1))).toThrow(/the model is 64\.0 MiB; the limit is 64\.0 MiB/);
  });

  test('refuses a model whose input is not float32', () => {
    const model = fromBinary(ModelProtoSchema, mlpModel());
    const t = model.graph!.input[0].type!.value;
    if (t.case !== 'tensorType') throw new Error('unexpected');
    t.value.elemType = TensorProto_DataType.INT64;
    expect(() => readModel(toBinary(ModelProtoSchema, model))).toThrow("input 'x' is int64; only float32 inputs and outputs are supported");
  });
});

describe('onnx.plan', () => {
  const temp = useTempShards();

  const put = (shape: number[], seed = 1) => temp.shards.put(toNpy(shape, randomMatrix(1, shape.reduce((a, b) => a * b, 1), seed)));

  test.each([
    ['a missing input', async (m: string) => ({ model: m, inputs: { a: await put([4, 3]) } }), "missing 'b'"],
    ['an unknown input', async (m: string) => ({ model: m, inputs: { a: await put([4, 3]), b: await put([4, 3]), c: await put([4, 3]) } }), "it has no input 'c'"],
    ['a wrong rank', async (m: string) => ({ model: m, inputs: { a: await put([4, 3, 1]), b: await put([4, 3]) } }), 'has 3 axes'],
    ['a wrong inner size', async (m: string) => ({ model: m, inputs: { a: await put([4, 2]), b: await put([4, 3]) } }), 'at axis 1'],
    ['different batch sizes', async (m: string) => ({ model: m, inputs: { a: await put([4, 3]), b: await put([5, 3]) } }), 'disagree on the batch size'],
    ['an unknown shard', async (m: string) => ({ model: m, inputs: { a: 'f'.repeat(64), b: await put([4, 3]) } }), 'no shard'],
    ['an unknown model', async () => ({ model: 'e'.repeat(64), inputs: {} }), 'no model'],
    ['argmax on a missing output', async (m: string) => ({ model: m, inputs: { a: await put([4, 3]), b: await put([4, 3]) }, argmax: ['probs'] }), "no output 'probs'"],
    ['a tolerance for a missing output', async (m: string) => ({ model: m, inputs: { a: await put([4, 3]), b: await put([4, 3]) }, tolerance: { probs: { atol: 1, rtol: 0 } } }), "no output 'probs'"],
  ])('refuses %s', async (_what, body, message) => {
    const model = await temp.shards.put(addModel());
    const submit = { kind: 'onnx' as const, replication: 2, ...(await body(model)) };
    await expect(onnx.plan(submit, temp.shards)).rejects.toThrow(JobInputError);
    await expect(onnx.plan(submit, temp.shards)).rejects.toThrow(message);
  });

  test.each([
    ['a fixed batch axis', addModel({ inputs: [{ name: 'a', dims: [4, 3] }, { name: 'b', dims: [4, 3] }] }), 'fixed first axis of 4'],
    ['a dynamic output axis besides the batch', addModel({ outputs: [{ name: 'sum', dims: ['batch', 'n'] }] }), 'dynamic axis besides the batch'],
  ])('refuses a model with %s', async (_what, bytes, message) => {
    const submit = { kind: 'onnx' as const, replication: 2, model: await temp.shards.put(bytes), inputs: { a: await put([4, 3]), b: await put([4, 3]) } };
    await expect(onnx.plan(submit, temp.shards)).rejects.toThrow(message);
  });

  test.each([
    [10, 4, [4, 4, 2]],
    [10, 10, [10]],
    [10, 100, [10]],
    [1, 1, [1]],
    [7, 1, [1, 1, 1, 1, 1, 1, 1]],
  ])('batch %i in units of %i -> slices %o', async (batch, perUnit, sizes) => {
    const a = randomMatrix(batch, 3, 2);
    const submit = {
      kind: 'onnx' as const,
      replication: 2,
      model: await temp.shards.put(addModel()),
      inputs: { a: await temp.shards.put(toNpy([batch, 3], a)), b: await put([batch, 3]) },
      itemsPerUnit: perUnit,
      flopsPerItem: 6,
    };
    const plan = await onnx.plan(submit, temp.shards);
    expect(plan.workUnits.map((u) => (u.params as unknown as OnnxParams).items)).toEqual(sizes);
    expect(plan.resultShape).toEqual([batch, 3]);
    let offset = 0;
    for (const u of plan.workUnits) {
      const items = (u.params as unknown as OnnxParams).items;
      expect(u.outputBytes).toBe(items * 3 * 4);
      expect(u.flops).toBe(items * 6);
      const slice = parseNpy((await temp.shards.get(u.inputs.a))!);
      expect(slice.shape).toEqual([items, 3]);
      expect(Array.from(slice.data)).toEqual(Array.from(a.subarray(offset * 3, (offset + items) * 3)));
      offset += items;
    }
  });
});

describe('replica agreement', () => {
  test.each([
    ['same winners', [0.1, 0.9, 0.2, 0.8], [0.2, 0.7, 0.3, 0.6], true],
    ['a different winner', [0.1, 0.9, 0.8, 0.2], [0.9, 0.1, 0.8, 0.2], false],
    ['a near-tie flipped by rounding', [0.5, 0.50001, 0.1, 0.2], [0.50001, 0.5, 0.1, 0.2], true],
    ['NaN scores', [Number.NaN, 1, 0, 1], [0, 1, 0, 1], false],
  ])('argmax: %s', (_what, x, y, agree) => {
    expect(argmaxAgree(Float32Array.from(x), Float32Array.from(y), 2)).toBe(agree);
  });

  const wu = {
    params: {
      outputs: [
        { name: 'logits', shape: [2, 2], agreement: { mode: 'argmax' } },
        { name: 'features', shape: [2, 1], agreement: { mode: 'tolerance', atol: 0.01, rtol: 0 } },
      ],
    },
  } as unknown as WorkUnitRecord;
  test.each([
    ['both outputs agree', [1, 2, 3, 0, 0.5, 0.7], [0, 5, 9, 1, 0.505, 0.7], true],
    ['logits argmax differs', [1, 2, 3, 0, 0.5, 0.7], [2, 1, 9, 1, 0.5, 0.7], false],
    ['features outside tolerance', [1, 2, 3, 0, 0.5, 0.7], [1, 2, 3, 0, 0.52, 0.7], false],
  ])('per output: %s', (_what, x, y, agree) => {
    expect(onnx.agree!(wu, Float32Array.from(x), Float32Array.from(y))).toBe(agree);
  });
});

describe('an onnx job run by Node workers on onnxruntime-node', () => {
  const { grid, workers } = useTestGrid();

  const ortCompute: Compute = async (wu: WorkUnitSpec, inputs) => {
    if (wu.kind !== 'onnx') throw new Error('onnx only');
    const model = new Uint8Array(await (await fetch(`${grid.base}/shards/${wu.params.model}`)).arrayBuffer());
    const feeds = Object.fromEntries(wu.params.inputs.map((s) => [s.name, { shape: s.shape, data: inputs[s.name] }]));
    const out = await runReference(model, feeds);
    const parts = wu.params.outputs.map((o) => out[o.name]);
    const flat = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
    parts.reduce((at, p) => (flat.set(p, at), at + p.length), 0);
    return flat;
  };

  test('matches the reference; a worker that cannot run onnx gets no onnx units; a cheater earns nothing', async () => {
    const matmulOnly = new SimWorker({ url: grid.base, name: 'matmul-only' });
    const cheater = new SimWorker({ url: grid.base, name: 'cheater', kinds: ['onnx'], compute: (wu) => new Float32Array(wu.outputBytes / 4).fill(1) });
    workers.push(matmulOnly, cheater);
    for (const w of workers) await w.connect();
    const model = mlpModel();
    const up = await grid.api('/api/models', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: model as Uint8Array<ArrayBuffer> });
    expect(up.status).toBe(201);
    const { sha256 } = (await up.json()) as { sha256: string };
    const x = randomMatrix(50, 16, 9);
    const jobId = await grid.submitJob({ kind: 'onnx', model: sha256, inputs: { x: await grid.uploadShard(toNpy([50, 16], x)) }, itemsPerUnit: 12 });
    for (const name of ['honest-1', 'honest-2']) {
      const w = new SimWorker({ url: grid.base, name, kinds: ['matmul', 'onnx'], compute: ortCompute });
      workers.push(w);
      await w.connect();
    }
    const status = await grid.waitForJob(jobId, 30_000);
    expect(status.state).toBe('done');
    expect(status.progress.total).toBe(5);
    const result = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${jobId}/result`)).arrayBuffer()));
    expect(result.shape).toEqual([50, 10]);
    const expected = (await runReference(model, { x: { shape: [50, 16], data: x } })).logits;
    expect(Array.from(result.data)).toEqual(Array.from(expected)); // same runtime, same bits

    expect(matmulOnly.messages.some((m) => m.type === 'assign')).toBe(false);
    const { volunteers } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
    const byName = Object.fromEntries(volunteers.map((v) => [v.name, v]));
    expect(byName.cheater.credit).toBe(0);
    expect(byName.cheater.results.valid).toBe(0);
    const perItem = 2 * inspectModel(model).parameters;
    expect(byName['honest-1'].credit + byName['honest-2'].credit).toBe(2 * 50 * perItem);
  });
});
