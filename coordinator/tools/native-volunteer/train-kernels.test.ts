// web/gpu's MLP training loop (WGSL kernels, web/gpu/train-mlp.ts) through Dawn on SwiftShader: a
// GPU replica of a train unit must agree with the CPU replica (the float32 TS loop the CPU backend
// and the coordinator's reference run) within the unit's tolerance (jobs/train.ts trainTolerance),
// for SGD and AdamW, shapes whose batch is no multiple of the 8×8 or 64-wide workgroups, a model
// with no hidden layer, and int8 Δs; and its check loss must pass the coordinator's check.
// (e2e/train.spec.ts runs the same module in Chromium's WebGPU worker.)
import { beforeAll, describe, expect, test } from 'vitest';
import { deltaRtol, trainOutputsAgree, trainTolerance } from '../../jobs/train';
import { checkRows, decodeTrainOutput, runTrainUnit, type Compression, type InnerSpec } from '../../protocol/train-loop';
import { initMlp, mlpLossGrad, mlpModel, mlpParamCount } from '../../protocol/train-mlp';
import { mixSeed } from '../../protocol/train-model';
import { blobsTask, relativeL2 } from '../../testing/train-task';
import { openGpu } from '../../../web/gpu/device';
import { cachedPipelineCount } from '../../../web/gpu/pipelines';
import { gpuTrainStats, gpuTrainUnit, type MlpInnerSpec } from '../../../web/gpu/train-mlp';
import { installWebGpu, swiftShaderAvailable, useSwiftShader } from './webgpu';

const adamw = { type: 'adamw' as const, lr: 0.01, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
const sgd = { ...adamw, type: 'sgd' as const, lr: 0.1 };

interface Case {
  layers: number[];
  rows: number;
  batchSize: number;
  steps: number;
  optimizer: InnerSpec['optimizer'];
  compress: Compression;
}

const cases: Case[] = [
  { layers: [8, 16, 4], rows: 96, batchSize: 32, steps: 16, optimizer: adamw, compress: 'none' },
  { layers: [8, 16, 4], rows: 96, batchSize: 32, steps: 16, optimizer: sgd, compress: 'none' },
  // Batch 13 and widths 5, 7, 6, 3: nothing fills an 8×8 workgroup; 3 layers, so two dz buffers take turns.
  { layers: [5, 7, 6, 3], rows: 40, batchSize: 13, steps: 4, optimizer: adamw, compress: 'none' },
  // Batch 100 (past one 64-wide workgroup of the loss, not a multiple); a batch larger than the slice in the next.
  { layers: [12, 70, 3], rows: 150, batchSize: 100, steps: 8, optimizer: sgd, compress: 'none' },
  { layers: [3, 2], rows: 20, batchSize: 64, steps: 1, optimizer: { ...adamw, weightDecay: 0 }, compress: 'none' },
  { layers: [8, 16, 4], rows: 96, batchSize: 32, steps: 16, optimizer: adamw, compress: 'int8' },
  { layers: [5, 7, 6, 3], rows: 40, batchSize: 13, steps: 4, optimizer: sgd, compress: 'int8' },
];

/** A unit's output decoded as the coordinator decodes an MLP unit's. */
const decodeUnitOutput = (c: { layers: number[]; compress: Compression }, out: Float32Array) => decodeTrainOutput(mlpModel(c.layers), c.compress, out);

/** The CPU replica: the TS loop with the MLP family. */
const cpuUnit = (spec: MlpInnerSpec, compress: Compression, theta: Float32Array, x: Float32Array, y: Float32Array) =>
  runTrainUnit({ ...spec, model: mlpModel(spec.layers) }, compress, theta, x, y);

/** The coordinator's cheap check (jobs/train.ts `check`): the loss of θ − Δ on the check batch, float64 sums, within 1e-3. */
function passesCheck(c: Case, theta: Float32Array, x: Float32Array, y: Float32Array, out: Float32Array): boolean {
  const d = decodeUnitOutput(c, out)!;
  const after = new Float32Array(theta.length);
  for (let i = 0; i < theta.length; i++) after[i] = theta[i] - d.delta[i];
  const loss = mlpLossGrad(Float32Array, c.layers, after, x, y, checkRows(c.rows, c.batchSize, 7), null);
  return Math.abs(loss - d.checkLoss) <= 1e-3 * Math.max(1, Math.abs(loss));
}

describe.skipIf(!swiftShaderAvailable())('the MLP training loop on WebGPU through Dawn (SwiftShader)', () => {
  let device: GPUDevice;
  beforeAll(async () => {
    useSwiftShader();
    await installWebGpu();
    device = (await openGpu()).device;
  });

  test.each(cases)('$layers $optimizer.type, $rows rows, batch $batchSize, H $steps, $compress: agrees with the CPU replica', async (c) => {
    const task = blobsTask(c.rows, c.layers[0], c.layers.at(-1)!, c.rows);
    const theta = initMlp(c.layers, c.steps);
    const spec: MlpInnerSpec = { layers: c.layers, steps: c.steps, batchSize: c.batchSize, seed: 7, optimizer: c.optimizer };
    const units = gpuTrainStats.units;
    const gpu = await gpuTrainUnit(device, spec, c.compress, theta, task.x, task.y);
    expect(gpuTrainStats.units).toBe(units + 1);
    const cpu = cpuUnit(spec, c.compress, theta, task.x, task.y);
    expect(gpu.length).toBe(cpu.length);
    const g = decodeUnitOutput(c, gpu)!;
    const r = decodeUnitOutput(c, cpu)!;
    // The units trained: Δ is far from zero, so agreeing with it is no accident.
    expect(Math.hypot(...r.delta)).toBeGreaterThan(1e-3);
    expect(trainOutputsAgree(g, r, trainTolerance(c.steps, c.compress))).toBe(true);
    expect(passesCheck(c, theta, task.x, task.y, gpu)).toBe(true);
    // Tampering the GPU output by the tolerance's own measure is caught: the comparison can fail.
    const flipped = Float32Array.from(gpu);
    if (c.compress === 'none') for (let i = 0; i < mlpParamCount(c.layers); i++) flipped[i] = -flipped[i];
    else flipped[2] = -flipped[2]; // the first tensor's int8 scale
    expect(trainOutputsAgree(decodeUnitOutput(c, flipped), r, trainTolerance(c.steps, c.compress))).toBe(false);
  }, 30_000);

  test('AdamW on a 3-layer net at H = 64, where the GPU and the CPU diverge most (bench:train-gpu), still agrees', async () => {
    // The bench's worst case: a hidden ReLU unit switches on one device only, AdamW amplifies it (2.6e-3 relative).
    const layers = [32, 64, 32, 4];
    const task = blobsTask(512, 32, 4, 7);
    const theta = initMlp(layers, 2);
    const spec: MlpInnerSpec = { layers, steps: 64, batchSize: 32, seed: mixSeed(2, 64), optimizer: adamw };
    const g = decodeUnitOutput({ layers, compress: 'none' }, await gpuTrainUnit(device, spec, 'none', theta, task.x, task.y))!;
    const r = decodeUnitOutput({ layers, compress: 'none' }, cpuUnit(spec, 'none', theta, task.x, task.y))!;
    const distance = relativeL2(g.delta, r.delta);
    console.log(`GPU vs CPU replica, ${layers.join('-')} AdamW H 64: ${distance.toExponential(2)} relative (tolerance ${deltaRtol(64)})`);
    expect(distance).toBeLessThan(deltaRtol(64) / 2);
    expect(trainOutputsAgree(g, r, trainTolerance(64))).toBe(true);
  }, 30_000);

  test('a second unit of the same shape compiles no pipeline', async () => {
    const c = cases[0];
    const task = blobsTask(c.rows, 8, 4, 1);
    const spec: MlpInnerSpec = { layers: c.layers, steps: 2, batchSize: c.batchSize, seed: 1, optimizer: c.optimizer };
    await gpuTrainUnit(device, spec, 'none', initMlp(c.layers, 1), task.x, task.y);
    const pipelines = cachedPipelineCount(device);
    await gpuTrainUnit(device, { ...spec, seed: 2 }, 'none', initMlp(c.layers, 2), task.x, task.y);
    expect(cachedPipelineCount(device)).toBe(pipelines);
  }, 30_000);
});
