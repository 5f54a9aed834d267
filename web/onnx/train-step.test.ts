// The MLP step graph (mlp-step.ts, through train-step.ts's runner) run by onnxruntime-node against the TypeScript loop
// (protocol/train-loop.ts runTrainUnit, the coordinator's reference): Δ within the replica
// tolerance, the same losses, and the check loss the coordinator's cheap check recomputes.
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { decodeTrainOutput, runTrainUnit, checkBatchLoss, type Compression, type InnerOptimizer } from '../../coordinator/protocol/train-loop';
import { initMlp, mlpModel } from '../../coordinator/protocol/train-mlp';
import { trainOutputsAgree, trainTolerance } from '../../coordinator/jobs/train';
import { ortStepRunner } from '../../coordinator/testing/ort-step-runner';
import { blobsTask } from '../../coordinator/testing/train-task';
import { graphTrainUnit, stepModelOf, type GraphUnitSpec, type RunStepGraph } from './train-step';

const runnerFor = (model: Uint8Array) => ortStepRunner(ort, model);

const base = { weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
const sgd: InnerOptimizer = { type: 'sgd', lr: 0.1, ...base };
const adamw: InnerOptimizer = { type: 'adamw', lr: 0.01, ...base };

/** Both trainers on one unit: the graph's output and the TS loop's, decoded. */
async function both(layers: number[], optimizer: InnerOptimizer, steps: number, batchSize: number, compress: Compression, run?: RunStepGraph) {
  const rows = 100; // batch sizes 32 and 48 do not divide it
  const task = blobsTask(rows, layers[0], layers.at(-1)!, 7);
  const params = initMlp(layers, 1);
  const spec: GraphUnitSpec = { model: { type: 'mlp', layers }, optimizer, steps, batchSize, seed: 11 + steps };
  const model = mlpModel(layers);
  const graphOut = await graphTrainUnit(run ?? (await runnerFor(stepModelOf(spec))), spec, compress, params, task.x, task.y);
  const tsOut = runTrainUnit({ ...spec, model }, compress, params, task.x, task.y);
  return { graph: decodeTrainOutput(model, compress, graphOut)!, ts: decodeTrainOutput(model, compress, tsOut)!, params, task, spec, model };
}

describe('the MLP step graph on onnxruntime-node', () => {
  const cases = [[16, 32, 4], [64, 128, 64, 10]].flatMap((layers) =>
    [sgd, adamw].flatMap((optimizer) => [1, 16].flatMap((steps) => [32, 48].map((batchSize) => ({ layers, optimizer, steps, batchSize, name: `${layers.join('-')} ${optimizer.type}` })))),
  );
  test.each(cases)('$name, H = $steps, batch $batchSize: a replica of the TS loop that passes the check', async ({ layers, optimizer, steps, batchSize }) => {
    const { graph, ts, params, task, spec, model } = await both(layers, optimizer, steps, batchSize, 'none');
    expect(trainOutputsAgree(graph, ts, trainTolerance(steps))).toBe(true);
    expect(Math.abs(graph.trainLoss - ts.trainLoss)).toBeLessThan(1e-4 * Math.max(1, ts.trainLoss));
    // The coordinator's cheap check: the loss of θ − Δ on the check batch.
    const after = params.map((p, i) => p - graph.delta[i]);
    const loss = checkBatchLoss({ model, batchSize: spec.batchSize, seed: spec.seed }, after, task.x, task.y);
    expect(Math.abs(loss - graph.checkLoss)).toBeLessThanOrEqual(1e-3 * Math.max(1, Math.abs(loss)));
  });

  test('int8 Δs agree too, and their check loss is taken on the dequantized parameters', async () => {
    const { graph, ts, params, task, spec, model } = await both([16, 32, 4], adamw, 16, 32, 'int8');
    expect(trainOutputsAgree(graph, ts, trainTolerance(16, 'int8'))).toBe(true);
    const after = params.map((p, i) => p - graph.delta[i]);
    expect(graph.checkLoss).toBeCloseTo(checkBatchLoss({ model, batchSize: spec.batchSize, seed: spec.seed }, after, task.x, task.y), 5);
  });

  test('the comparison can fail: a graph with the wrong weight decay is no replica', async () => {
    const wrong = await runnerFor(stepModelOf({ model: { type: 'mlp', layers: [16, 32, 4] }, optimizer: { ...sgd, weightDecay: 0.5 } }));
    const { graph, ts } = await both([16, 32, 4], sgd, 16, 32, 'none', wrong);
    expect(trainOutputsAgree(graph, ts, trainTolerance(16))).toBe(false);
  });
});
