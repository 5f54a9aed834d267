// The TypeScript client against a real coordinator and real workers (sim workers speaking the real
// protocol; ONNX units on onnxruntime-node): every job kind round-trips and matches a reference
// computed here, shards go up once, every error class comes from a real bad request.
import { describe, expect, test } from 'vitest';
import { centralReference } from '../../coordinator/jobs/train.js';
import { TrainJobSubmit } from '../../coordinator/protocol/index.js';
import { toNpy } from '../../coordinator/protocol/npy.js';
import { useTestGrid } from '../../coordinator/testing/fixtures.js';
import { attentionF64, matmulF64, maxAbsDiff } from '../../coordinator/testing/float64-references.js';
import { closedPort, randomMatrix, startTestCoordinator, TOKEN } from '../../coordinator/testing/helpers.js';
import { SimWorker } from '../../coordinator/testing/sim-worker.js';
import { mlpModel } from '../../coordinator/testing/test-models.js';
import { markovTask, markovTokens } from '../../coordinator/testing/lm-task.js';
import { blobsTask } from '../../coordinator/testing/train-task.js';
import { transformerParamCount } from '../../coordinator/protocol/train-transformer.js';
import {
  ApiError,
  BadRequest,
  Conflict,
  Grid,
  GridConnectionError,
  InputError,
  JobFailed,
  NotFound,
  NotReady,
  RateLimited,
  Unauthorized,
  WaitTimeout,
  type JobStatus,
  type Tensor,
} from './index.js';

const { grid: coordinator, workers } = useTestGrid();

const KINDS = ['matmul', 'attention', 'onnx', 'train'];
async function startWorkers(count = 2) {
  for (let i = 0; i < count; i++) {
    const w = new SimWorker({ url: coordinator.base, name: `ts-client-${i}`, kinds: KINDS });
    workers.push(w);
    await w.connect();
  }
}

/** A client that counts its requests by "METHOD path". */
function countingGrid(token: string | null = TOKEN) {
  const calls: string[] = [];
  const grid = new Grid(coordinator.base, token, {
    pollInterval: 50,
    fetch: (url, init) => {
      calls.push(`${init?.method ?? 'GET'} ${String(url).slice(coordinator.base.length)}`);
      return fetch(url, init);
    },
  });
  return { grid, calls };
}

describe('every job kind round-trips and matches a reference', () => {
  test('matmul: tensors in, C = A·B out, with progress while waiting', async () => {
    await startWorkers();
    const { grid } = countingGrid();
    const [m, k, n] = [70, 50, 60];
    const a = randomMatrix(m, k, 1);
    const b = randomMatrix(k, n, 2);
    const job = await grid.matmul({ shape: [m, k], data: a }, { shape: [k, n], data: b }, { replication: 2, tile: [32, 32], name: 'ts client' });
    expect(job.kind).toBe('matmul');
    expect(job.id).toMatch(/^j_/);
    const seen: JobStatus[] = [];
    const final = await job.wait({ onProgress: (s) => seen.push(s), timeout: 20_000 });
    expect(final.state).toBe('done');
    expect(final.name).toBe('ts client');
    expect(final.progress).toEqual({ done: 6, total: 6 }); // 70×60 in 32×32 tiles: 3 × 2
    expect(seen.at(-1)).toEqual(final);
    const c = (await job.result()) as Tensor;
    expect(c.shape).toEqual([m, n]);
    expect(c.data).toBeInstanceOf(Float32Array);
    expect(maxAbsDiff(c.data, matmulF64(a, b, m, k, n))).toBeLessThan(1e-4);
  });

  test('attention: .npy bytes in (Uint8Array and Blob), causal', async () => {
    await startWorkers();
    const { grid } = countingGrid();
    const [heads, seq, d] = [2, 40, 64];
    const [q, k, v] = [3, 4, 5].map((seed) => randomMatrix(heads * seq, d, seed));
    const job = await grid.attention(toNpy([heads, seq, d], q), new Blob([toNpy([heads, seq, d], k) as Uint8Array<ArrayBuffer>]), { shape: [heads, seq, d], data: v }, { causal: true, replication: 2 });
    const out = await job.result({ timeout: 20_000 });
    expect(out.shape).toEqual([heads, seq, d]);
    expect(maxAbsDiff(out.data, attentionF64(q, k, v, heads, seq, d, true))).toBeLessThan(1e-4);
    // not causal: a different answer
    const full = await (await grid.attention(toNpy([heads, seq, d], q), toNpy([heads, seq, d], k), toNpy([heads, seq, d], v))).result({ timeout: 20_000 });
    expect(maxAbsDiff(full.data, attentionF64(q, k, v, heads, seq, d, false))).toBeLessThan(1e-4);
  });

  test('onnx: a model and its inputs by name; the result by output name, matching onnxruntime; re-attached by id', async () => {
    await startWorkers();
    const { grid } = countingGrid();
    const model = mlpModel();
    const batch = 300;
    const x = randomMatrix(batch, 16, 9);
    const job = await grid.onnx(model, { x: { shape: [batch, 16], data: x } }, { itemsPerUnit: 100, argmax: 'logits' });
    expect(job.outputs).toEqual(['logits']);
    const out = await job.result({ timeout: 30_000 });
    expect(Object.keys(out)).toEqual(['logits']);
    expect(out.logits.shape).toEqual([batch, 10]);
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(model);
    const expected = (await session.run({ x: new ort.Tensor('float32', x, [batch, 16]) })).logits.data as Float32Array;
    expect(maxAbsDiff(out.logits.data, expected)).toBeLessThan(1e-4);

    // Another client knows the job only by its id: the status names the outputs.
    const again = await new Grid(coordinator.base, TOKEN).job(job.id);
    expect(again.kind).toBe('onnx');
    expect(again.outputs).toEqual(['logits']);
    expect((again.lastStatus as JobStatus).outputs).toEqual(['logits']);
    const reread = (await again.result()) as Record<string, Tensor>;
    expect(reread.logits.data).toEqual(out.logits.data);
    expect((await again.output('logits')).shape).toEqual([batch, 10]);
    // a one-input model takes its one array without a name
    const single = await grid.onnx(model, { shape: [20, 16], data: x.subarray(0, 320) }, { replication: 1 });
    expect((await single.result({ timeout: 30_000 })).logits.shape).toEqual([20, 10]);
  });
});

/** Class ids as an int32 .npy (the float32 layout with the '<i4' dtype). */
function int32Npy(values: ArrayLike<number>): Uint8Array {
  const npy = toNpy([values.length], new Float32Array(values.length));
  const at = new TextDecoder('latin1').decode(npy.subarray(0, 64)).indexOf("'<f4'");
  npy[at + 2] = 'i'.charCodeAt(0);
  new Int32Array(npy.buffer, npy.length - values.length * 4).set(Array.from(values));
  return npy;
}

describe('training', () => {
  test('train: x and int32 labels in; the losses fall, the parameters match the central reference, the model runs as an onnx job', async () => {
    await startWorkers();
    const { grid } = countingGrid();
    const task = blobsTask(256, 8, 4, 11);
    const options = {
      model: { type: 'mlp' as const, layers: [8, 16, 4] },
      rounds: 3,
      localSteps: 8,
      batchSize: 32,
      innerOptimizer: { type: 'adamw' as const, lr: 0.01 },
      unitsPerRound: 4,
      name: 'blobs',
    };
    const job = await grid.train({ shape: [task.n, task.f], data: task.x }, int32Npy(task.y), options);
    expect(job.kind).toBe('train');
    const params = await job.result({ timeout: 60_000 });
    const ref = centralReference(TrainJobSubmit.parse({ kind: 'train', data: { x: 'a'.repeat(64), y: 'b'.repeat(64) }, ...options }), task);
    expect(params.data.length).toBe(ref.params.length);
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < params.data.length; i++) {
      diff += (params.data[i] - ref.params[i]) ** 2;
      norm += ref.params[i] ** 2;
    }
    expect(Math.sqrt(diff / norm)).toBeLessThan(1e-4);
    const losses = await job.losses();
    expect(losses).toHaveLength(3);
    for (let r = 0; r < 3; r++) expect(losses[r]).toBeLessThan(r === 0 ? ref.losses[0] : losses[r - 1]);
    expect((await job.rounds()).map((r) => r.round)).toEqual([0, 1, 2]);
    expect((await job.output('w0')).shape).toHaveLength(2);
    // The trained model, run on the same grid.
    const logits = await (await grid.onnx(await job.model(), { shape: [16, 8], data: task.x.subarray(0, 128) }, { replication: 1 })).result({ timeout: 30_000 });
    expect(logits.logits.shape).toEqual([16, 4]);
  }, 90_000);
});

describe('training the transformer language model', () => {
  const chain = markovTask(8);
  const tokens = markovTokens(chain, 4096, 1);
  const validation = markovTokens(chain, 1024, 2);
  const model = { vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2 };
  const settings = { rounds: 3, localSteps: 32, batchSize: 8, innerOptimizer: { type: 'adamw' as const, lr: 0.015 }, unitsPerRound: 2 };
  const submitted = (over: object) => TrainJobSubmit.parse({ kind: 'train', model: { type: 'transformer', ...model }, data: { tokens: 'a'.repeat(64) }, ...settings, ...over });
  const data = { family: 'transformer' as const, tokens, validation, context: model.context };

  test('trainLm: token ids in (numbers and a tensor); the losses fall as the central reference says; init is honoured; model.onnx', async () => {
    await startWorkers();
    const { grid } = countingGrid();
    const job = await grid.trainLm(Int32Array.from(tokens), { model, ...settings, validation: { shape: [validation.length], data: validation }, name: 'markov' });
    expect(job.kind).toBe('train');
    const params = await job.result({ timeout: 60_000 });
    expect(params.shape).toEqual([transformerParamCount({ ...model })]);
    const ref = centralReference(submitted({}), data);
    const losses = await job.losses();
    expect(losses).toHaveLength(3);
    for (let r = 0; r < 3; r++) {
      expect(losses[r]).toBeLessThan(r === 0 ? ref.losses[0] : losses[r - 1]);
      expect(Math.abs(losses[r] - ref.losses[r + 1])).toBeLessThan(1e-3 * ref.losses[r + 1]);
    }
    expect((await job.output('l0.wq')).shape).toEqual([16, 16]);
    const onnx = await grid.uploadModel(await job.model());
    expect(onnx.inputs).toEqual([{ name: 'tokens', shape: ['?', 16] }]);
    expect(onnx.outputs).toEqual([{ name: 'logits', shape: ['?', 16, 8] }]);

    // One more round from the trained parameters (the result tensor as it came): the job's first
    // loss is the reference's from those parameters, not from the seed's.
    const more = await grid.trainLm(tokens, { model, ...settings, rounds: 1, validation, init: params });
    expect((await more.wait({ timeout: 30_000 })).state).toBe('done');
    const [loss] = await more.losses();
    const fromInit = centralReference(submitted({ rounds: 1 }), data, Float64Array, params.data).losses[1];
    const fromSeed = centralReference(submitted({ rounds: 1 }), data).losses[1];
    expect(Math.abs(loss - fromInit)).toBeLessThan(1e-3 * fromInit);
    expect(fromSeed - fromInit).toBeGreaterThan(0.1);
  }, 90_000);

  test.each([
    ['2-D tokens', { shape: [2, 8], data: new Float32Array(16) }, {}, /^tokens: must be a 1-D array, got shape \(2, 8\)$/],
    ['a negative token id', [1, 2, -1], {}, /^tokens: token ids must be whole numbers in \[0, 8\) \(model.vocab\); position 2 has -1$/],
    ['a fractional token id', new Float32Array([0, 2.5]), {}, /position 1 has 2.5$/],
    ['a token id ≥ vocab (int32 .npy)', int32Npy([7, 8]), {}, /position 1 has 8$/],
    ['bad validation ids', [1, 2], { validation: [3, 9] }, /^validation: token ids .* position 1 has 9$/],
    ['2-D init', [1, 2], { init: { shape: [2, 2], data: [0, 0, 0, 0] } }, /^init: must be a 1-D array, got shape \(2, 2\)$/],
    ['init as int32', [1, 2], { init: int32Npy([0, 0]) }, /^init: dtype must be float32/],
  ] as const)('%s is an InputError before anything is sent', async (_what, input, over, message) => {
    const { grid, calls } = countingGrid();
    await expect(grid.trainLm(input as never, { model, ...settings, ...over } as never)).rejects.toThrow(InputError);
    await expect(grid.trainLm(input as never, { model, ...settings, ...over } as never)).rejects.toThrow(message);
    expect(calls).toEqual([]);
  });

  test('what only the coordinator knows is a BadRequest that says what is wrong', async () => {
    const { grid } = countingGrid();
    await expect(grid.trainLm(tokens, { model: { ...model, heads: 3 }, ...settings })).rejects.toThrow(/dModel must be divisible by heads/);
    await expect(grid.trainLm(tokens, { model, ...settings, init: new Float32Array(10) })).rejects.toMatchObject({
      name: 'BadRequest',
      message: expect.stringContaining(`init: has 10 values but the model has ${transformerParamCount(model)} parameters`),
    });
    await expect(grid.trainLm(tokens.subarray(0, 40), { model, ...settings, unitsPerRound: 4 })).rejects.toThrow(/every slice needs at least context \+ 1 = 17 tokens/);
  });
});

describe('uploads', () => {
  test('a shard already on the coordinator is not uploaded again (sha-256, then HEAD)', async () => {
    const { grid, calls } = countingGrid();
    const a = { shape: [8, 8], data: randomMatrix(8, 8, 1) };
    const sha = await grid.upload(a);
    expect(await grid.upload(a)).toBe(sha); // known to this client: no request at all
    expect(calls.filter((c) => c.startsWith('POST /api/shards'))).toHaveLength(1);
    const other = countingGrid();
    expect(await other.grid.upload(toNpy([8, 8], a.data))).toBe(sha); // the same bytes from another client
    expect(other.calls).toEqual([`HEAD /shards/${sha}`]);
    await other.grid.matmul(a, a, { replication: 1 });
    expect(other.calls.filter((c) => c.startsWith('POST /api/shards'))).toHaveLength(0);
    // the model, once per client
    await grid.uploadModel(mlpModel());
    await grid.uploadModel(mlpModel());
    expect(calls.filter((c) => c === 'POST /api/models')).toHaveLength(1);
  });

  test('inputs that are not float32 .npy, or tensors that do not fill their shape, are refused before anything is sent', async () => {
    const { grid, calls } = countingGrid();
    const f64 = toNpy([2, 2], new Float32Array(4));
    f64.set(new TextEncoder().encode("'<f8'"), new TextDecoder('latin1').decode(f64).indexOf("'<f4'")); // the dtype, rewritten
    const f64Error = await grid.upload(f64, 'a').catch((e: unknown) => e);
    expect(f64Error).toBeInstanceOf(InputError);
    expect((f64Error as InputError).message).toMatch(/^a: dtype must be float32 \('<f4'\).*, got '<f8'$/);
    await expect(grid.upload(new Uint8Array([1, 2, 3]), 'b')).rejects.toThrow(/^b: not a .npy file/);
    await expect(grid.matmul({ shape: [2, 3], data: [1, 2, 3] }, { shape: [3, 1], data: [1, 2, 3] })).rejects.toThrow(new InputError('a: shape (2, 3) needs 6 values, got 3'));
    expect(calls).toEqual([]);
    // plain numbers are sent as float32
    const sha = await grid.upload({ shape: [3], data: [1.5, 2, 3] });
    expect(new Uint8Array(await (await fetch(`${coordinator.base}/shards/${sha}`)).arrayBuffer())).toEqual(toNpy([3], new Float32Array([1.5, 2, 3])));
  });
});

describe('errors are ApiErrors with the code, message and status of real bad requests', () => {
  test('BadRequest: shapes that do not multiply, a model that is not one', async () => {
    const { grid } = countingGrid();
    const err = await grid.matmul({ shape: [3, 4], data: new Float32Array(12) }, { shape: [5, 2], data: new Float32Array(10) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequest);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'bad_request', status: 400, message: expect.stringContaining('inner dimensions differ') });
    await expect(grid.uploadModel(new Uint8Array([1, 2, 3, 4]))).rejects.toThrow(BadRequest);
    await expect(grid.onnx(mlpModel(), { input: { shape: [2, 16], data: new Float32Array(32) } })).rejects.toThrow(/missing 'x'/);
  });

  test('Unauthorized: a wrong token', async () => {
    const { grid } = countingGrid('wrong');
    await expect(grid.jobs()).rejects.toMatchObject({ name: 'Unauthorized', code: 'unauthorized', status: 401 });
    await expect(grid.matmul({ shape: [1, 1], data: [1] }, { shape: [1, 1], data: [1] })).rejects.toThrow(Unauthorized);
  });

  test('NotFound, NotReady, WaitTimeout, Conflict and JobFailed around one job nobody computes', async () => {
    const { grid } = countingGrid();
    await expect(grid.job('j_nope')).rejects.toMatchObject({ name: 'NotFound', status: 404 });
    const job = await grid.matmul({ shape: [4, 4], data: randomMatrix(4, 4, 1) }, { shape: [4, 4], data: randomMatrix(4, 4, 2) }, { replication: 1 });
    const notReady = await job.result({ wait: false }).catch((e: unknown) => e);
    expect(notReady).toBeInstanceOf(NotReady);
    expect(notReady).not.toBeInstanceOf(JobFailed);
    expect(notReady).toMatchObject({ code: 'not_ready', status: 409 });
    await expect(job.wait({ timeout: 150 })).rejects.toThrow(WaitTimeout);
    expect((await job.cancel()).error).toBe('cancelled');
    await expect(job.cancel()).rejects.toMatchObject({ name: 'Conflict', code: 'conflict', status: 409 });
    await expect(job.cancel()).rejects.toThrow(Conflict);
    const failed = await job.result().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(JobFailed);
    expect(failed).toBeInstanceOf(NotReady);
    expect(failed).toMatchObject({ jobId: job.id, message: `job ${job.id} failed: cancelled` });
    await expect(job.result({ wait: false })).rejects.toThrow(JobFailed);
    await expect(job.output('nope', { wait: false })).rejects.toThrow(JobFailed);
    expect((await grid.jobs()).map((j) => j.id)).toContain(job.id);
  });

  test('RateLimited from a real coordinator once retries run out; a 429 with Retry-After is waited out and retried', async () => {
    const limited = await startTestCoordinator({ security: { rateLimitPerMinute: 2 } });
    try {
      const grid = new Grid(limited.base, TOKEN, { retries: 0 });
      await grid.jobs();
      await grid.jobs();
      const err = await grid.jobs().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RateLimited);
      expect(err).toMatchObject({ code: 'rate_limited', status: 429 });
      expect((err as RateLimited).retryAfter).toBeGreaterThan(0);
    } finally {
      await limited.stop();
    }
    // The coordinator's window is a minute: the retry itself is checked with one answer put in front of it.
    let refused = 0;
    const grid = new Grid(coordinator.base, TOKEN, {
      fetch: async (url, init) => {
        if (refused < 2) {
          refused++;
          return new Response(JSON.stringify({ error: { code: 'rate_limited', message: 'slow down' } }), { status: 429, headers: { 'retry-after': '0.05' } });
        }
        return fetch(url, init);
      },
    });
    const started = Date.now();
    expect(await grid.jobs()).toEqual([]);
    expect(refused).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
  });

  test('GridConnectionError when nothing listens (after the retries)', async () => {
    const port = await closedPort();
    const grid = new Grid(`http://127.0.0.1:${port}`, TOKEN, { retries: 1 });
    await expect(grid.jobs()).rejects.toThrow(GridConnectionError);
    await expect(grid.jobs()).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('rooms', () => {
  test('create, read, control with the teacher key; a wrong key is Unauthorized', async () => {
    const grid = new Grid(coordinator.base, null);
    const room = await grid.rooms.create('Class 5B');
    expect(room.code).toMatch(/^[A-Z0-9]{6}$/);
    expect((await grid.rooms.get(room.code)).name).toBe('Class 5B');
    expect((await grid.rooms.list()).map((r) => r.name)).toContain('Class 5B'); // the public list holds no codes
    expect((await grid.rooms.control(room.code, true, room.teacherKey)).paused).toBe(true);
    expect((await grid.rooms.snapshot(room.code)).paused).toBe(true);
    await expect(grid.rooms.control(room.code, false, 'wrong')).rejects.toThrow(Unauthorized);
    await expect(grid.rooms.get('ZZZZZZ')).rejects.toThrow(NotFound);
  });
});

describe('volunteers', () => {
  test('the list is bounded by limit, best credited first, and says how many there are', async () => {
    await startWorkers(3);
    const grid = new Grid(coordinator.base, null);
    const all = await grid.volunteerList();
    expect(all.total).toBe(3);
    expect(all.volunteers.map((v) => v.name).sort()).toEqual(['ts-client-0', 'ts-client-1', 'ts-client-2']);
    expect(all.volunteers.every((v) => v.online)).toBe(true);
    const two = await grid.volunteerList({ limit: 2 });
    expect([two.volunteers.length, two.total]).toEqual([2, 3]);
    expect(await grid.volunteers({ limit: 1 })).toHaveLength(1);
  });
});
