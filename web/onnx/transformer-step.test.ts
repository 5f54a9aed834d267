// The transformer's step graph (transformer-step.ts) run by onnxruntime-node: its gradient against
// the float64 TypeScript backward (protocol/train-transformer.ts transformerLossGrad), tensor by
// tensor; and a unit of H steps (train-step.ts) against the TypeScript float32 loop
// (protocol/train-loop.ts runTrainUnit, the coordinator's reference): Δ within the replica
// tolerance, the same training loss, and the check loss the coordinator's cheap check recomputes.
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { trainOutputsAgree, trainTolerance } from '../../coordinator/jobs/train';
import { checkBatchLoss, decodeTrainOutput, runTrainUnit, type Compression, type InnerOptimizer } from '../../coordinator/protocol/train-loop';
import { rng } from '../../coordinator/protocol/train-model';
import { initTransformer, transformerLossGrad, transformerModel, transformerTensors, type TransformerSpec } from '../../coordinator/protocol/train-transformer';
import { markovTask, markovTokens } from '../../coordinator/testing/lm-task';
import { ortStepRunner } from '../../coordinator/testing/ort-step-runner';
import { gradName, stepState } from './step-graph';
import { graphTrainUnit, stepFamilyOf, stepModelOf, type GraphUnitSpec, type RunStepGraph, type StepGraphRunner } from './train-step';

const base = { weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
const sgd: InnerOptimizer = { type: 'sgd', lr: 0.1, ...base };
const adamw: InnerOptimizer = { type: 'adamw', lr: 0.01, ...base };
const tiny = (layers: number): TransformerSpec => ({ vocab: 8, context: 8, layers, dModel: 16, heads: 2 });
const tokens = markovTokens(markovTask(8), 256, 1);

/** Initial parameters perturbed, so LN gains and biases are not their initial 1 and 0. */
function perturbed(s: TransformerSpec): Float32Array {
  const next = rng(7);
  return Float32Array.from(initTransformer(s, 1), (v) => v + ((next() / 2 ** 32) * 2 - 1) * 0.2);
}

/** ‖a − b‖ / ‖b‖ over [offset, offset + size), in float64. */
function relDistance(a: ArrayLike<number>, b: ArrayLike<number>, offset: number, size: number): number {
  let [d, n] = [0, 0];
  for (let i = 0; i < size; i++) {
    d += (a[i] - b[offset + i]) ** 2;
    n += b[offset + i] ** 2;
  }
  return Math.sqrt(d / n);
}

describe("the transformer step graph's gradient", () => {
  test.each([1, 2])('%i block(s): every tensor within 1e-5 of the float64 gradient, and the same loss', async (layers) => {
    const s = tiny(layers);
    const params = perturbed(s);
    const windows = Int32Array.of(0, 37, 101, 200);
    const family = stepFamilyOf({ type: 'transformer', ...s });
    const run = await ortStepRunner(ort, stepModelOf({ model: { type: 'transformer', ...s }, optimizer: sgd }, { gradients: true }));
    const tensors = transformerTensors(s);
    const feeds = [
      ...stepState(family.model, sgd).map((st) => ({ name: st.name, shape: st.tensor.shape, data: params.slice(st.tensor.offset, st.tensor.offset + st.tensor.size) })),
      ...family.batchFeeds({ x: tokens, y: null }, windows),
      { name: 'lr', shape: [], data: Float32Array.of(sgd.lr) },
    ];
    const [loss, ...grads] = await run(feeds, ['loss', ...tensors.map((t) => gradName(t.name))]);
    const ref = new Float64Array(params.length);
    const refLoss = transformerLossGrad(Float64Array, s, Float64Array.from(params), Float64Array.from(tokens), windows, ref);
    expect(Math.abs(loss[0] - refLoss)).toBeLessThan(1e-6 * refLoss);
    const errors = Object.fromEntries(tensors.map((t, i) => [t.name, relDistance(grads[i], ref, t.offset, t.size)]));
    for (const [name, e] of Object.entries(errors)) expect(e, name).toBeLessThan(1e-5);
    // The comparison can fail: another batch's gradient is far from this one's.
    const other = new Float64Array(params.length);
    transformerLossGrad(Float64Array, s, Float64Array.from(params), Float64Array.from(tokens), Int32Array.of(1, 38, 102, 201), other);
    expect(relDistance(grads[tensors.findIndex((t) => t.name === 'l0.wq')], other, tensors.find((t) => t.name === 'l0.wq')!.offset, 16 * 16)).toBeGreaterThan(1e-2);
  });
});

/** Both trainers on one unit: the graph's output and the TS loop's, decoded. */
async function both<V>(s: TransformerSpec, optimizer: InnerOptimizer, steps: number, batchSize: number, compress: Compression, run?: RunStepGraph | StepGraphRunner<V>) {
  const params = initTransformer(s, 3);
  const spec: GraphUnitSpec = { model: { type: 'transformer', ...s }, optimizer, steps, batchSize, seed: 11 + steps };
  const model = transformerModel(s);
  const graphOut = await graphTrainUnit(run ?? (await ortStepRunner(ort, stepModelOf(spec))), spec, compress, params, tokens, null);
  const tsOut = runTrainUnit({ ...spec, model }, compress, params, tokens, null);
  return { graph: decodeTrainOutput(model, compress, graphOut)!, ts: decodeTrainOutput(model, compress, tsOut)!, params, spec, model };
}

describe('a transformer unit through the step graph on onnxruntime-node', () => {
  const cases = [sgd, adamw].flatMap((optimizer) => [1, 2].flatMap((layers) => [1, 8].map((steps) => ({ layers, optimizer, steps, name: optimizer.type }))));
  test.each(cases)('$name, $layers block(s), H = $steps: a replica of the TS loop that passes the check', async ({ layers, optimizer, steps }) => {
    const { graph, ts, params, spec, model } = await both(tiny(layers), optimizer, steps, 6, 'none');
    expect(trainOutputsAgree(graph, ts, trainTolerance(steps))).toBe(true);
    expect(Math.abs(graph.trainLoss - ts.trainLoss)).toBeLessThan(1e-4 * ts.trainLoss);
    // The coordinator's cheap check: the loss of θ − Δ on the check batch.
    const after = params.map((p, i) => p - graph.delta[i]);
    expect(Math.abs(checkBatchLoss({ model, batchSize: spec.batchSize, seed: spec.seed }, after, tokens, null) - graph.checkLoss)).toBeLessThan(1e-5 * graph.checkLoss);
  });

  test('int8 Δs agree too, and their check loss is taken on the dequantized parameters', async () => {
    const { graph, ts, params, spec, model } = await both(tiny(1), adamw, 8, 6, 'int8');
    expect(trainOutputsAgree(graph, ts, trainTolerance(8, 'int8'))).toBe(true);
    const after = params.map((p, i) => p - graph.delta[i]);
    expect(graph.checkLoss).toBeCloseTo(checkBatchLoss({ model, batchSize: spec.batchSize, seed: spec.seed }, after, tokens, null), 5);
  });

  test('the comparison can fail: a graph with the wrong weight decay is no replica', async () => {
    const s = tiny(1);
    const wrong = await ortStepRunner(ort, stepModelOf({ model: { type: 'transformer', ...s }, optimizer: { ...sgd, weightDecay: 0.5 } }));
    const { graph, ts } = await both(s, sgd, 8, 6, 'none', wrong);
    expect(trainOutputsAgree(graph, ts, trainTolerance(8))).toBe(false);
  });
});

/**
 * A runner that keeps its outputs as onnxruntime-node tensors and is fed them back, as the webgpu
 * EP's runner does with GPU buffers (webgpu-train.ts), recording every value it made and freed;
 * it fails at run `failAt` when given.
 */
async function heldRunner(model: Uint8Array, failAt = Infinity) {
  const session = await ort.InferenceSession.create(model);
  const made = new Set<ort.Tensor>();
  const freed: ort.Tensor[] = [];
  let runs = 0;
  const runner: StepGraphRunner<ort.Tensor> = {
    async run(feeds, outputs) {
      if (++runs === failAt) throw new Error('the device was lost');
      const input = Object.fromEntries(feeds.map((f) => [f.name, 'value' in f ? f.value : new ort.Tensor('float32', f.data, [...f.shape])]));
      const result = await session.run(input, outputs);
      return outputs.map((name) => (made.add(result[name]), result[name]));
    },
    read: async (t) => (t.data as Float32Array).slice(),
    free: (t) => void freed.push(t),
  };
  return { runner, made, freed };
}

describe('a runner that keeps its values where it computed them (the webgpu EP\'s way)', () => {
  test('the same unit as the host runner, each value it made freed once', async () => {
    const s = tiny(2);
    const spec: GraphUnitSpec = { model: { type: 'transformer', ...s }, optimizer: adamw, steps: 8, batchSize: 6, seed: 19 };
    const model = stepModelOf(spec);
    const params = initTransformer(s, 3);
    const held = await heldRunner(model);
    const out = await graphTrainUnit(held.runner, spec, 'none', params, tokens, null);
    expect(out).toEqual(await graphTrainUnit(await ortStepRunner(ort, model), spec, 'none', params, tokens, null));
    // 8 steps × (θ's tensors, m, v and the loss) and the check run's loss.
    expect(held.made.size).toBe(8 * (3 * transformerTensors(s).length + 1) + 1);
    expect(held.freed.length).toBe(held.made.size);
    expect(new Set(held.freed)).toEqual(held.made);
  });

  test('a run that fails mid-unit rejects the unit, with every value made so far freed', async () => {
    const s = tiny(1);
    const spec: GraphUnitSpec = { model: { type: 'transformer', ...s }, optimizer: adamw, steps: 8, batchSize: 6, seed: 19 };
    const held = await heldRunner(stepModelOf(spec), 4);
    await expect(graphTrainUnit(held.runner, spec, 'none', initTransformer(s, 3), tokens, null)).rejects.toThrow('the device was lost');
    expect(held.made.size).toBe(3 * (3 * transformerTensors(s).length + 1));
    expect(held.freed.length).toBe(held.made.size);
    expect(new Set(held.freed)).toEqual(held.made);
  });
});
