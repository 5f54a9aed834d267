// Training across workers (kind "train", DiLoCo): sim workers train the MLP for several rounds over
// the real protocol; the grid's final parameters match a central reference run in Node of the same
// schedule (float64, same slices and seeds); the loss falls every round; wrong Δs are caught by the
// check or replication, or bounded by the robust aggregator; stragglers of a closed round earn
// nothing; bad submissions are 400s that say what is wrong.
import { describe, expect, test } from 'vitest';
import { centralReference } from '../../jobs/train.js';
import { mlpLogits } from '../../jobs/train-onnx.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import { TrainJobSubmit, type JobStatus, type LedgerEntry, type MlpTrainParams, type WorkUnitSpec } from '../../protocol/index.js';
import { checkRows } from '../../protocol/train-loop.js';
import { mlpLossGrad } from '../../protocol/train-mlp.js';
import { useTestGrid } from '../fixtures.js';
import { waitFor } from '../helpers.js';
import { honestCompute, SimWorker, type Compute } from '../sim-worker.js';
import { blobsTask, int32Npy, relativeL2 } from '../train-task.js';

const task = blobsTask(512, 8, 4, 11);
const LAYERS = [8, 16, 4];

const { grid, workers } = useTestGrid();

async function upload() {
  return { x: await grid.uploadShard(toNpy([task.n, task.f], task.x)), y: await grid.uploadShard(toNpy([task.n], task.y)) };
}

function jobBody(data: { x: string; y: string }, over: Record<string, unknown> = {}) {
  return {
    kind: 'train',
    model: { type: 'mlp', layers: LAYERS, activation: 'relu' },
    data,
    rounds: 4,
    localSteps: 8,
    batchSize: 32,
    innerOptimizer: { type: 'adamw', lr: 0.01 },
    unitsPerRound: 4,
    ...over,
  };
}

async function startWorkers(n: number, opts: { compute?: Compute; slots?: number } = {}) {
  const started: SimWorker[] = [];
  for (let i = 0; i < n; i++) {
    const w = new SimWorker({ url: grid.base, kinds: ['train'], compute: opts.compute ?? honestCompute, slots: opts.slots ?? 1 });
    workers.push(w);
    started.push(w);
    await w.connect();
  }
  return started;
}

async function finalParams(jobId: string): Promise<Float32Array> {
  const res = await grid.api(`/api/jobs/${jobId}/outputs/params`);
  expect(res.status).toBe(200);
  return parseNpy(new Uint8Array(await res.arrayBuffer())).data;
}

async function ledger(): Promise<LedgerEntry[]> {
  return ((await (await grid.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] }).entries;
}

type TrainStatus = JobStatus & Required<Pick<JobStatus, 'round' | 'rounds' | 'perRound'>>;

describe('train jobs on sim workers', () => {
  test('4 rounds: the final parameters match the central float64 reference, the loss falls every round, credit = inner-step FLOPs', async () => {
    const data = await upload();
    const body = jobBody(data);
    const started = Date.now();
    await startWorkers(3);
    const id = await grid.submitJob(body);
    const status = (await grid.waitForJob(id, 60_000)) as TrainStatus;
    const seconds = (Date.now() - started) / 1000;
    expect(status.state).toBe('done');
    expect([status.round, status.rounds]).toEqual([4, 4]);
    expect(status.perRound.map((r) => [r.round, r.units, r.dropped])).toEqual([0, 1, 2, 3].map((r) => [r, 4, 0]));
    // Every unit's Δ was uploaded by both replicas: (P + 2) float32 values each.
    const P = 8 * 16 + 16 + 16 * 4 + 4;
    for (const r of status.perRound) expect(r.bytes).toBe(4 * 2 * (P + 2) * 4);

    const ref = centralReference(TrainJobSubmit.parse(body), task);
    const losses = status.perRound.map((r) => r.loss);
    for (let r = 0; r < losses.length; r++) expect(losses[r]).toBeLessThan(r === 0 ? ref.losses[0] : losses[r - 1]);
    const params = await finalParams(id);
    const dist = relativeL2(params, ref.params);
    expect(dist).toBeLessThan(1e-4);
    for (let r = 0; r < 4; r++) expect(Math.abs(losses[r] - ref.losses[r + 1])).toBeLessThan(1e-4 * ref.losses[r + 1] + 1e-6);
    console.log(
      `train scenario: ${status.rounds} rounds in ${seconds.toFixed(2)} s (${((60 * status.rounds) / seconds).toFixed(1)} rounds/min); ` +
        `loss ${ref.losses[0].toFixed(4)} -> ${losses.at(-1)!.toFixed(4)} (central float64 ${ref.losses.at(-1)!.toFixed(4)}); ` +
        `final parameters' relative L2 distance from the central reference ${dist.toExponential(2)}`,
    );

    // The named tensors, and the whole result.
    const w0 = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${id}/outputs/w0`)).arrayBuffer()));
    expect(w0.shape).toEqual([8, 16]);
    expect(Array.from(w0.data)).toEqual(Array.from(params.subarray(0, 128)));
    expect((await grid.api(`/api/jobs/${id}/outputs/nope`)).status).toBe(404);
    const result = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${id}/result`)).arrayBuffer()));
    expect(Array.from(result.data)).toEqual(Array.from(params));

    // Credit: each unit's inner-step FLOPs (6 × MACs × batch × H), to each of its 2 replicas, once.
    const entries = (await ledger()).filter((e) => e.jobId === id);
    expect(entries).toHaveLength(16 * 2);
    const flops = 6 * (8 * 16 + 16 * 4) * 32 * 8;
    expect(entries.every((e) => e.amount === flops)).toBe(true);
    expect(new Set(entries.map((e) => `${e.wuId} ${e.volunteerId}`)).size).toBe(32);
  }, 90_000);

  test('the trained model downloads as model.onnx and runs as an onnx job on the same grid, reproducing the trained parameters\' logits', async () => {
    const data = await upload();
    await startWorkers(2);
    const id = await grid.submitJob(jobBody(data, { rounds: 2, replication: 1 }));
    expect((await grid.api(`/api/jobs/${id}/model.onnx`)).status).toBe(409); // not done yet
    expect((await grid.waitForJob(id, 30_000)).state).toBe('done');
    const res = await grid.api(`/api/jobs/${id}/model.onnx`);
    expect(res.status).toBe(200);
    const upload2 = await grid.api('/api/models', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(await res.arrayBuffer()) });
    expect(upload2.status).toBe(201);
    const model = (await upload2.json()) as { sha256: string; inputs: { name: string; shape: unknown[] }[]; outputs: { name: string; shape: unknown[] }[] };
    expect(model.inputs).toEqual([{ name: 'x', shape: ['?', 8] }]);
    expect(model.outputs).toEqual([{ name: 'logits', shape: ['?', 4] }]);
    const onnxWorker = new SimWorker({ url: grid.base, kinds: ['onnx'] });
    workers.push(onnxWorker);
    await onnxWorker.connect();
    const inferId = await grid.submitJob({ kind: 'onnx', model: model.sha256, inputs: { x: data.x }, replication: 1 });
    expect((await grid.waitForJob(inferId, 30_000)).state).toBe('done');
    const logits = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${inferId}/result`)).arrayBuffer()));
    expect(logits.shape).toEqual([task.n, 4]);
    expect(relativeL2(logits.data, mlpLogits(LAYERS, await finalParams(id), task.x, task.n))).toBeLessThan(1e-5);
  }, 60_000);

  test('int8 Δs: about a quarter of the bytes, and the loss still falls every round, ending within 2% of the float32 run', async () => {
    const data = await upload();
    await startWorkers(3);
    const body = jobBody(data, { compress: 'int8' });
    const id = await grid.submitJob(body);
    const status = (await grid.waitForJob(id, 60_000)) as TrainStatus;
    expect(status.state).toBe('done');
    const P = 8 * 16 + 16 + 16 * 4 + 4;
    for (const r of status.perRound) expect(r.bytes).toBe(4 * 2 * (6 * 4 + Math.ceil(P / 4) * 4)); // 2 losses + 4 scales, then P int8
    const losses = status.perRound.map((r) => r.loss);
    const fp32 = centralReference(TrainJobSubmit.parse({ ...body, compress: 'none' }), task);
    for (let r = 0; r < losses.length; r++) expect(losses[r]).toBeLessThan(r === 0 ? fp32.losses[0] : losses[r - 1]);
    expect(Math.abs(losses.at(-1)! - fp32.losses.at(-1)!)).toBeLessThan(0.02 * fp32.losses.at(-1)!);
    console.log(`int8 Δs: ${status.perRound[0].bytes} vs ${4 * 2 * (P + 2) * 4} bytes a round; final loss ${losses.at(-1)!.toFixed(4)} vs float32 ${fp32.losses.at(-1)!.toFixed(4)}`);
  }, 60_000);

  test('labels as int32 are accepted like float32 ones', async () => {
    const data = { x: await grid.uploadShard(toNpy([task.n, task.f], task.x)), y: await grid.uploadShard(int32Npy(Array.from(task.y))) };
    await startWorkers(2);
    const id = await grid.submitJob(jobBody(data, { rounds: 1, replication: 1 }));
    expect((await grid.waitForJob(id, 30_000)).state).toBe('done');
  }, 40_000);

  test("wrong Δs sent with the honest losses fail the check: the senders earn nothing and the result is the honest grid's", async () => {
    const data = await upload();
    const body = jobBody(data, { rounds: 3 });
    const tampered = (how: (d: Float32Array, i: number) => number): Compute => (wu, inputs) => {
      const out = honestCompute(wu, inputs) as Float32Array;
      const P = out.length - 2;
      for (let i = 0; i < P; i++) out[i] = how(out, i);
      return out;
    };
    const flipped = tampered((d, i) => -10 * d[i]);
    const random = tampered(() => Math.random() - 0.5);
    const zero = tampered(() => 0);
    const bad: SimWorker[] = [];
    for (const compute of [flipped, random, zero]) bad.push(...(await startWorkers(1, { compute })));
    const honest = await startWorkers(2);
    const id = await grid.submitJob(body);
    const status = (await grid.waitForJob(id, 60_000)) as TrainStatus;
    expect(status.state).toBe('done');
    const entries = (await ledger()).filter((e) => e.jobId === id);
    for (const w of bad) expect(entries.filter((e) => e.volunteerId === w.volunteerId).reduce((s, e) => s + e.amount, 0)).toBe(0);
    expect(entries.filter((e) => honest.some((w) => w.volunteerId === e.volunteerId)).length).toBe(3 * 4 * 2);
    // Every bad worker that got a unit was caught by the check (a strike: suspended and disconnected).
    const caught = grid.logs.filter((l) => /failed the independent check/.test(l)).length;
    expect(caught).toBeGreaterThan(0);
    const ref = centralReference(TrainJobSubmit.parse(body), task);
    expect(relativeL2(await finalParams(id), ref.params)).toBeLessThan(1e-4);
  }, 90_000);

  /** Sign-flipped ×10 Δs with the check loss recomputed to match (so the check passes), in at most `cap` units of each round. */
  function forger(cap: number): { compute: Compute; forged: () => number } {
    const perRound = new Map<string, number>();
    const compute: Compute = (wu, inputs) => {
      const out = honestCompute(wu, inputs) as Float32Array;
      const p = wu.params as MlpTrainParams;
      const key = `${wu.jobId} ${p.round}`;
      const n = perRound.get(key) ?? 0;
      if (n >= cap) return out;
      perRound.set(key, n + 1);
      const P = out.length - 2;
      const after = new Float32Array(P);
      for (let i = 0; i < P; i++) {
        out[i] = -10 * out[i];
        after[i] = inputs.params[i] - out[i];
      }
      out[P + 1] = mlpLossGrad(Float32Array, p.layers, after, inputs.x, inputs.y, checkRows(p.rows, p.batchSize, p.seed), null);
      return out;
    };
    return { compute, forged: () => [...perRound.values()].reduce((a, b) => a + b, 0) };
  }

  test('a forger whose wrong Δs pass the check is caught by replication: it earns nothing and the result is the honest one', async () => {
    const data = await upload();
    const body = jobBody(data, { rounds: 3 });
    const bad = forger(Infinity);
    const [w] = await startWorkers(1, { compute: bad.compute });
    await startWorkers(3);
    const id = await grid.submitJob(body);
    const status = (await grid.waitForJob(id, 60_000)) as TrainStatus;
    expect(status.state).toBe('done');
    expect(bad.forged()).toBeGreaterThan(0);
    expect((await ledger()).filter((e) => e.volunteerId === w.volunteerId)).toEqual([]);
    expect(relativeL2(await finalParams(id), centralReference(TrainJobSubmit.parse(body), task).params)).toBeLessThan(1e-4);
  }, 90_000);

  test('without replication, the trimmed mean bounds a forger holding 1 of 8 units a round; the plain mean does not', async () => {
    const data = await upload();
    const bad = forger(1);
    await startWorkers(1, { compute: bad.compute });
    await startWorkers(2);
    const finalLoss: Record<string, number> = {};
    for (const aggregator of ['trimmed-mean', 'mean']) {
      const id = await grid.submitJob(jobBody(data, { rounds: 4, unitsPerRound: 8, trim: 0.25, replication: 1, aggregator }));
      const status = (await grid.waitForJob(id, 60_000)) as TrainStatus;
      expect(status.state).toBe('done');
      finalLoss[aggregator] = status.perRound.at(-1)!.loss;
    }
    expect(bad.forged()).toBeGreaterThan(0); // at most one unit in each round of both jobs
    const honest = centralReference(TrainJobSubmit.parse(jobBody(data, { rounds: 4, unitsPerRound: 8, trim: 0.25, replication: 1 })), task).losses;
    // Bounded, not neutralised: the trimmed mean stays below the starting loss (the ×10 buys the
    // forger nothing over a plain sign flip), while the plain mean lets the ×10 blow the model up.
    expect(finalLoss['trimmed-mean']).toBeLessThan(honest[0]);
    expect(finalLoss['mean']).toBeGreaterThan(3 * finalLoss['trimmed-mean']);
    console.log(
      `one forged Δ (×-10) per round of 8, no replication: final loss trimmed-mean ${finalLoss['trimmed-mean'].toFixed(3)}, ` +
        `mean ${finalLoss['mean'].toFixed(3)}; all-honest ${honest.at(-1)!.toFixed(3)}, start ${honest[0].toFixed(3)}`,
    );
  }, 90_000);

  test('churn: a volunteer killed mid-round — its unit goes to another, the round completes, nothing is credited twice', async () => {
    const data = await upload();
    const body = jobBody(data, { rounds: 2 });
    let took: (() => void) | null = null;
    const tookUnit = new Promise<void>((r) => (took = r));
    const hang: Compute = () => {
      took?.();
      return new Promise<Float32Array>(() => undefined); // never answers: the machine is about to die
    };
    const [doomed] = await startWorkers(1, { compute: hang });
    const id = await grid.submitJob(body);
    await tookUnit;
    await startWorkers(2);
    doomed.kill();
    const status = (await grid.waitForJob(id, 60_000)) as TrainStatus;
    expect(status.state).toBe('done');
    expect(status.perRound.map((r) => [r.units, r.dropped])).toEqual([
      [4, 0],
      [4, 0],
    ]);
    const entries = (await ledger()).filter((e) => e.jobId === id);
    expect(entries.filter((e) => e.volunteerId === doomed.volunteerId)).toEqual([]);
    expect(entries).toHaveLength(2 * 4 * 2);
    expect(new Set(entries.map((e) => `${e.wuId} ${e.volunteerId}`)).size).toBe(entries.length);
    // The ledger holds exactly the validated units' inner-step FLOPs: 2 replicas × 8 units.
    expect(entries.reduce((s, e) => s + e.amount, 0)).toBe(2 * 4 * 2 * 6 * (8 * 16 + 16 * 4) * 32 * 8);
    expect(relativeL2(await finalParams(id), centralReference(TrainJobSubmit.parse(body), task).params)).toBeLessThan(1e-4);
  }, 60_000);

  test('stragglers: once the quorum is in and the grace has passed the round closes without them; their late results earn nothing', async () => {
    const data = await upload();
    const body = jobBody(data, { rounds: 2, replication: 1, roundQuorum: 0.5, roundGraceS: 0.3 });
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    let heldUnit: WorkUnitSpec | null = null;
    const straggle: Compute = async (wu, inputs) => {
      heldUnit = wu;
      await held;
      return honestCompute(wu, inputs);
    };
    const [slow] = await startWorkers(1, { compute: straggle });
    await waitFor(() => true, 10);
    const id = await grid.submitJob(body);
    await waitFor(() => heldUnit, 10_000, 'the straggler to take a unit');
    await startWorkers(2);
    const status = (await grid.waitForJob(id, 30_000)) as TrainStatus;
    expect(status.state).toBe('done');
    expect(status.perRound[0].dropped).toBe(1);
    expect(status.perRound[0].units).toBe(3);
    expect(status.progress.done).toBe(status.progress.total);
    release();
    const ack = await waitFor(() => slow.received('result-ack')[0], 10_000, 'the late result to be answered');
    expect(ack.accepted).toBe(false);
    const entries = (await ledger()).filter((e) => e.volunteerId === slow.volunteerId);
    expect(entries).toEqual([]);
    expect(slow.received('lease-cancelled').some((m) => /round closed/.test(m.reason))).toBe(true);
  }, 40_000);
});

describe('bad train submissions are 400s that say what is wrong', () => {
  const cases: [string, (d: { x: string; y: string }) => Record<string, unknown>, RegExp][] = [
    ['a model spec that does not parse', (d) => jobBody(d, { model: { type: 'mlp', layers: 'eight' } }), /model/],
    ['an unknown model family', (d) => jobBody(d, { model: { type: 'cnn', layers: [8, 4] } }), /model/],
    ['first layer ≠ features', (d) => jobBody(d, { model: { type: 'mlp', layers: [7, 16, 4] } }), /layers\[0\] is 7 but data.x has 8 features/],
    ['labels out of range', (d) => jobBody(d, { model: { type: 'mlp', layers: [8, 16, 3] } }), /class ids must be integers in \[0, 3\) \(the last layer's width\); row 3 has 3/],
    ['rounds out of range', (d) => jobBody(d, { rounds: 0 }), /rounds/],
    ['localSteps out of range', (d) => jobBody(d, { localSteps: 1e6 }), /localSteps/],
    ['batchSize out of range', (d) => jobBody(d, { batchSize: 0 }), /batchSize/],
    ['too many units in all', (d) => jobBody(d, { rounds: 1000, unitsPerRound: 256 }), /at most 100000 units per job/],
    ['a round too big to aggregate', (d) => jobBody(d, { model: { type: 'mlp', layers: [8, 4096, 256, 4] }, unitsPerRound: 256 }), /a round's Δs would take 1061 MiB/],
    ['a data shard that was never uploaded', (d) => jobBody({ x: d.x, y: '0'.repeat(64) }), /data.y: no shard/],
    ['an aggregator that does not exist', (d) => jobBody(d, { aggregator: 'krum' }), /aggregator/],
  ];
  test.each(cases)('%s', async (_what, make, message) => {
    const data = await upload();
    const res = await grid.api('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(make(data)) });
    const text = await res.text();
    expect(res.status, text).toBe(400);
    expect(text).toMatch(message);
  });

  test('labels that are not whole numbers, and y with the wrong row count', async () => {
    const x = await grid.uploadShard(toNpy([task.n, task.f], task.x));
    const half = Float32Array.from(task.y, (v, i) => (i === 5 ? 1.5 : v));
    const post = async (y: string) => {
      const res = await grid.api('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(jobBody({ x, y })) });
      return [res.status, await res.text()] as const;
    };
    const [s1, t1] = await post(await grid.uploadShard(toNpy([task.n], half)));
    expect(s1).toBe(400);
    expect(t1).toMatch(/row 5 has 1.5/);
    const [s2, t2] = await post(await grid.uploadShard(toNpy([10], task.y.slice(0, 10))));
    expect(s2).toBe(400);
    expect(t2).toMatch(/data.y has 10 rows but data.x has 512/);
  });
});

