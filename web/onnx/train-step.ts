// A train unit's H inner steps through its family's step graph (step-graph.ts: the MLP's,
// mlp-step.ts, or the transformer's, transformer-step.ts): each step's outputs fed back as the next
// step's inputs, on the same seeded batches as protocol/train-loop.ts, the output encoded there
// (encodeDelta) — a replica of the TS loop within the replica tolerance. No onnxruntime import here:
// the caller runs the graph (web/cpu/train.ts on onnxruntime-web; the native volunteer and the tests
// on onnxruntime-node).
import type { TrainParams } from '../../coordinator/protocol/jobs';
import { batchSchedule, checkBatchLoss, encodeDelta, innerSpecOf, unitModelSpec, type Compression, type InnerOptimizer, type ModelSpec } from '../../coordinator/protocol/train-loop';
import { sliceRows, type SliceData } from '../../coordinator/protocol/train-model';
import { mlpStepFamily } from './mlp-step';
import type { Feed } from './runtime';
import { nextName, stepModel, stepState, type StepGraphFamily } from './step-graph';
import { transformerStepFamily } from './transformer-step';

/** The step graph's family for a unit's model. */
export function stepFamilyOf(model: ModelSpec): StepGraphFamily {
  return model.type === 'mlp' ? mlpStepFamily(model.layers) : transformerStepFamily(model);
}

/** What a unit's step graph is built from: one graph serves every unit of a job. */
export interface StepGraphSpec {
  model: ModelSpec;
  optimizer: InnerOptimizer;
}

/** The step graph of a unit's model and optimizer. */
export function stepModelOf(spec: StepGraphSpec, options?: { gradients?: boolean }): Uint8Array {
  return stepModel(stepFamilyOf(spec.model), spec.optimizer, options);
}

/** A unit as the graph runner takes it (a TrainParams' model spec and inner-loop settings). */
export type GraphUnitSpec = StepGraphSpec & { steps: number; batchSize: number; seed: number };

/** A train unit's graph spec from its parameters. */
export function graphUnitSpecOf(p: TrainParams): GraphUnitSpec {
  const { steps, batchSize, seed, optimizer } = innerSpecOf(p);
  return { model: unitModelSpec(p), optimizer, steps, batchSize, seed };
}

/** Runs the step graph: the named outputs for the feeds, as float32, in order. */
export type RunStepGraph = (feeds: Feed[], outputs: string[]) => Promise<Float32Array[]>;

/** The unit's H steps through the graph: θ_after as float32 (P values, flat layout) and the mean loss of the steps' batches. */
export async function graphTrainInner(run: RunStepGraph, spec: GraphUnitSpec, params: Float32Array, data: SliceData): Promise<{ theta: Float32Array; trainLoss: number }> {
  const family = stepFamilyOf(spec.model);
  const { optimizer: o } = spec;
  // The state the graph carries, by input name: θ's tensors, and AdamW's moments from zero.
  const state = stepState(family.model, o).map((s) => ({
    ...s,
    data: (s.moment ? new Float32Array(s.tensor.size) : params.slice(s.tensor.offset, s.tensor.offset + s.tensor.size)) as Float32Array,
  }));
  const outputs = [...state.map((s) => nextName(s.name)), 'loss'];
  const batches = batchSchedule(family.model.examples(sliceRows(data)), spec.steps, spec.batchSize, spec.seed);
  let lossSum = 0;
  for (let t = 1; t <= spec.steps; t++) {
    const scalars: Record<string, number> = { lr: o.lr, ...(o.type === 'adamw' ? { c1: 1 - o.beta1 ** t, c2: 1 - o.beta2 ** t } : {}) };
    const feeds: Feed[] = [
      ...state.map((s) => ({ name: s.name, shape: s.tensor.shape, data: s.data })),
      ...family.batchFeeds(data, batches[t - 1]),
      ...Object.entries(scalars).map(([name, v]) => ({ name, shape: [], data: Float32Array.of(v) })),
    ];
    const out = await run(feeds, outputs);
    state.forEach((s, i) => (s.data = out[i]));
    lossSum += out[state.length][0];
  }
  const theta = new Float32Array(params.length);
  for (const s of state) if (!s.moment) theta.set(s.data, s.tensor.offset);
  return { theta, trainLoss: lossSum / Math.max(1, spec.steps) };
}

/**
 * A whole unit through the graph, as the TS loop's `runTrainUnit` returns it: Δ in the unit's
 * encoding, the mean training loss, and the check loss — taken by the TS forward pass
 * (checkBatchLoss), on the parameters the coordinator will decode, so its cheap check is exact.
 */
export async function graphTrainUnit(run: RunStepGraph, spec: GraphUnitSpec, compress: Compression, params: Float32Array, x: Float32Array, y: Float32Array | null): Promise<Float32Array> {
  const { theta, trainLoss } = await graphTrainInner(run, spec, params, { x, y });
  const model = stepFamilyOf(spec.model).model;
  const delta = new Float32Array(params.length);
  for (let i = 0; i < delta.length; i++) delta[i] = params[i] - theta[i];
  const encoded = encodeDelta(model, compress, params, delta);
  return encoded.pack(trainLoss, checkBatchLoss({ model, batchSize: spec.batchSize, seed: spec.seed }, encoded.applied ?? theta, x, y));
}
