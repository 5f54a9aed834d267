// The WebGPU backend's transformer trainer where the webgpu EP cannot run (here: Node, no WebGPU):
// every unit goes to the caller's fallback — the CPU backend's trainer in the worker, here the TS
// loop — whose output it returns, counted with the reason. (The webgpu EP path itself runs in real
// Chromium: e2e/train.spec.ts.)
import { describe, expect, test } from 'vitest';
import { runTrainUnit, type InnerOptimizer } from '../../coordinator/protocol/train-loop';
import { initTransformer, transformerModel, type TransformerSpec } from '../../coordinator/protocol/train-transformer';
import { markovTask, markovTokens } from '../../coordinator/testing/lm-task';
import type { GraphUnitSpec } from './train-step';
import { webgpuTrainStats, webgpuTrainUnit } from './webgpu-train';

const s: TransformerSpec = { vocab: 8, context: 8, layers: 1, dModel: 16, heads: 2 };
const optimizer: InnerOptimizer = { type: 'adamw', lr: 0.01, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
const spec: GraphUnitSpec = { model: { type: 'transformer', ...s }, optimizer, steps: 4, batchSize: 6, seed: 5 };
const tokens = markovTokens(markovTask(8), 256, 1);

describe('webgpuTrainUnit without the webgpu EP', () => {
  test('each unit runs the fallback, counted with the reason; none counts as trained on the GPU', async () => {
    expect((globalThis.navigator as Navigator | undefined)?.gpu).toBeUndefined();
    const params = initTransformer(s, 3);
    const ts = () => Promise.resolve(runTrainUnit({ ...spec, model: transformerModel(s) }, 'none', params, tokens, null));
    const before = { ...webgpuTrainStats };
    for (let i = 0; i < 2; i++) expect(await webgpuTrainUnit(spec, 'none', params, tokens, null, ts)).toEqual(await ts());
    expect(webgpuTrainStats.fallbackUnits).toBe(before.fallbackUnits + 2);
    expect(webgpuTrainStats.fallbackReason).toBe('this browser has no WebGPU');
    expect(webgpuTrainStats.units).toBe(before.units);
  });
});
