// The transformer language model on the grid: headless volunteers (sim workers) train a char-level
// model on an order-2 Markov chain whose entropy rate is known exactly; the validation loss ends
// below the unigram entropy and within 15% of the entropy rate; the trained model downloads as
// model.onnx and, run as an `onnx` job on the same grid, reproduces the coordinator's evaluation.
// Uploaded initial parameters: the job starts from them. (Bad LM submissions: train-lm-input.test.ts.)
import { describe, expect, test } from 'vitest';
import { centralReference } from '../../jobs/train.js';
import { evalSet } from '../../jobs/train-data.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import { TrainJobSubmit, type JobStatus, type LedgerEntry } from '../../protocol/index.js';
import { initMlp } from '../../protocol/train-mlp.js';
import { transformerLogits, transformerMacs, transformerParamCount, type TransformerSpec } from '../../protocol/train-transformer.js';
import { useTestGrid } from '../fixtures.js';
import { markovTask, markovTokens } from '../lm-task.js';
import { SimWorker } from '../sim-worker.js';
import { blobsTask, int32Npy } from '../train-task.js';

const chain = markovTask(8);
const tokens = markovTokens(chain, 4096, 1);
const validation = markovTokens(chain, 1024, 2);
const MODEL: TransformerSpec = { vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2 };

const { grid, workers } = useTestGrid();

type TrainStatus = JobStatus & Required<Pick<JobStatus, 'round' | 'rounds' | 'perRound'>>;

async function startWorkers(n: number, kinds: string[]) {
  for (let i = 0; i < n; i++) {
    const w = new SimWorker({ url: grid.base, kinds });
    workers.push(w);
    await w.connect();
  }
}

function lmBody(data: Record<string, string>, over: Record<string, unknown> = {}) {
  return {
    kind: 'train',
    model: { type: 'transformer', ...MODEL },
    data,
    rounds: 6,
    localSteps: 32,
    batchSize: 8,
    innerOptimizer: { type: 'adamw', lr: 0.015 },
    unitsPerRound: 2,
    ...over,
  };
}

async function download(path: string): Promise<Uint8Array<ArrayBuffer>> {
  const res = await grid.api(path);
  expect(res.status, path).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
}

/** Mean next-token cross-entropy (nats) of logits [windows, T, V] against each window's next tokens. */
function crossEntropy(logits: Float32Array, windows: Float32Array, T: number, V: number): number {
  const k = windows.length / (T + 1);
  let loss = 0;
  for (let w = 0; w < k; w++) {
    for (let t = 0; t < T; t++) {
      const row = logits.subarray((w * T + t) * V, (w * T + t + 1) * V);
      const max = Math.max(...row);
      const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
      loss += Math.log(sum) + max - row[windows[w * (T + 1) + t + 1]];
    }
  }
  return loss / (k * T);
}

describe('the transformer LM on sim workers', () => {
  test('trains below the unigram entropy to within 15% of the entropy rate; model.onnx as an onnx job reproduces the evaluation', async () => {
    const started = Date.now();
    // Training tokens as int32, validation tokens as float32: both encodings are accepted.
    const data = { tokens: await grid.uploadShard(int32Npy(tokens)), validation: await grid.uploadShard(toNpy([validation.length], validation)) };
    await startWorkers(2, ['train', 'onnx']);
    const id = await grid.submitJob(lmBody(data));
    const status = (await grid.waitForJob(id, 60_000)) as TrainStatus;
    const trained = (Date.now() - started) / 1000;
    expect(status.state).toBe('done');
    expect(status.perRound.map((r) => [r.units, r.dropped])).toEqual(Array.from({ length: 6 }, () => [2, 0]));
    const final = status.perRound.at(-1)!.loss;
    expect(final).toBeLessThan(chain.unigramEntropy);
    expect(final).toBeLessThanOrEqual(1.15 * chain.entropyRate);

    // Credit: each unit's FLOPs (6 × the multiply-adds of a window × batch × H), to both replicas.
    const entries = ((await (await grid.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] }).entries.filter((e) => e.jobId === id);
    expect(entries).toHaveLength(6 * 2 * 2);
    expect(entries.every((e) => e.amount === 6 * transformerMacs(MODEL) * 8 * 32)).toBe(true);

    // The trained parameters as a graph: tokens [batch, 16] -> logits [batch, 16, 8].
    const params = parseNpy(await download(`/api/jobs/${id}/outputs/params`)).data;
    expect(params.length).toBe(transformerParamCount(MODEL));
    const up = await grid.api('/api/models', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: await download(`/api/jobs/${id}/model.onnx`) });
    expect(up.status).toBe(201);
    const model = (await up.json()) as { sha256: string; inputs: { name: string; shape: unknown[] }[]; outputs: { name: string; shape: unknown[] }[] };
    expect(model.inputs).toEqual([{ name: 'tokens', shape: ['?', 16] }]);
    expect(model.outputs).toEqual([{ name: 'logits', shape: ['?', 16, 8] }]);

    // The coordinator's evaluation windows (context + 1 tokens each), their first 16 tokens as the batch.
    const ev = evalSet({ family: 'transformer', tokens, validation, context: 16 }).x;
    const k = ev.length / 17;
    const inputs = new Float32Array(k * 16);
    for (let w = 0; w < k; w++) inputs.set(ev.subarray(w * 17, w * 17 + 16), w * 16);
    const inferId = await grid.submitJob({ kind: 'onnx', model: model.sha256, inputs: { tokens: await grid.uploadShard(toNpy([k, 16], inputs)) }, replication: 1 });
    expect((await grid.waitForJob(inferId, 30_000)).state).toBe('done');
    const logits = parseNpy(await download(`/api/jobs/${inferId}/result`));
    expect(logits.shape).toEqual([k, 16, 8]);
    const onnxLoss = crossEntropy(logits.data, ev, 16, 8);
    expect(Math.abs(onnxLoss - final)).toBeLessThan(1e-4 * final);
    const ts = transformerLogits(MODEL, params, ev, Int32Array.from({ length: k }, (_, w) => w * 17));
    let worst = 0;
    for (let i = 0; i < ts.length; i++) worst = Math.max(worst, Math.abs(logits.data[i] - ts[i]));
    expect(worst).toBeLessThan(1e-4);
    console.log(
      `LM scenario: ${status.rounds} rounds in ${trained.toFixed(1)} s (${((Date.now() - started) / 1000).toFixed(1)} s with the onnx job); ` +
        `validation loss ${status.perRound.map((r) => r.loss.toFixed(3)).join(' → ')} nats; unigram entropy ${chain.unigramEntropy.toFixed(3)}, ` +
        `entropy rate ${chain.entropyRate.toFixed(3)} (final/rate ${(final / chain.entropyRate).toFixed(3)}); onnx job's loss ${onnxLoss.toFixed(5)}, max |Δlogit| ${worst.toExponential(1)}`,
    );
  }, 90_000);

  test('uploaded initial parameters (MLP): the job starts from them, as the central reference does', async () => {
    const task = blobsTask(128, 8, 4, 11);
    const layers = [8, 16, 4];
    const init = initMlp(layers, 12345);
    const data = { x: await grid.uploadShard(toNpy([task.n, task.f], task.x)), y: await grid.uploadShard(toNpy([task.n], task.y)) };
    await startWorkers(1, ['train']);
    const body = { kind: 'train', model: { type: 'mlp', layers }, data, init: await grid.uploadShard(toNpy([init.length], init)), rounds: 1, localSteps: 4, batchSize: 16, unitsPerRound: 2, replication: 1 };
    const status = (await grid.waitForJob(await grid.submitJob(body), 30_000)) as TrainStatus;
    expect(status.state).toBe('done');
    const submit = TrainJobSubmit.parse(body);
    const fromInit = centralReference(submit, task, Float64Array, init).losses[1];
    const fromSeed = centralReference(submit, task).losses[1];
    expect(Math.abs(status.perRound[0].loss - fromInit)).toBeLessThan(1e-4 * fromInit);
    expect(Math.abs(fromInit - fromSeed)).toBeGreaterThan(1e-3);
  }, 30_000);
});
