// A train unit's H inner steps through its family's step graph (step-graph.ts, with the MLP's part,
// mlp-step.ts, or the transformer's, transformer-step.ts): each step's outputs fed back as the next
// step's inputs, on the same seeded batches as protocol/train-loop.ts, the check loss by one more
// run, the output encoded there (encodeDelta) — a replica of the TS loop within the replica
// tolerance. No onnxruntime import here: the caller runs the graph (web/cpu/train.ts on
// onnxruntime-web; the native volunteer and the tests on onnxruntime-node).
import type { TrainParams } from '../../coordinator/protocol/jobs';
import { batchSchedule, checkRows, encodeDelta, innerSpecOf, unitModelSpec, type Compression, type InnerOptimizer, type ModelSpec } from '../../coordinator/protocol/train-loop';
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

/** The state the graph carries, by input name: θ's tensors from `theta`, and AdamW's moments from zero. */
function initialState(family: StepGraphFamily, o: InnerOptimizer, theta: Float32Array) {
  return stepState(family.model, o).map((s) => ({
    ...s,
    data: (s.moment ? new Float32Array(s.tensor.size) : theta.slice(s.tensor.offset, s.tensor.offset + s.tensor.size)) as Float32Array,
  }));
}

/** One run of the graph: step t (from 1) on the batch from the state; the named outputs. */
function runStep(run: RunStepGraph, family: StepGraphFamily, o: InnerOptimizer, state: ReturnType<typeof initialState>, data: SliceData, batch: Int32Array, t: number, outputs: string[]) {
  const scalars: Record<string, number> = { lr: o.lr, ...(o.type === 'adamw' ? { c1: 1 - o.beta1 ** t, c2: 1 - o.beta2 ** t } : {}) };
  return run(
    [
      ...state.map((s) => ({ name: s.name, shape: s.tensor.shape, data: s.data })),
      ...family.batchFeeds(data, batch),
      ...Object.entries(scalars).map(([name, v]) => ({ name, shape: [], data: Float32Array.of(v) })),
    ],
    outputs,
  );
}

/** The unit's H steps through the graph: θ_after as float32 (P values, flat layout) and the mean loss of the steps' batches. */
export async function graphTrainInner(run: RunStepGraph, spec: GraphUnitSpec, params: Float32Array, data: SliceData): Promise<{ theta: Float32Array; trainLoss: number }> {
  const family = stepFamilyOf(spec.model);
  const { optimizer: o } = spec;
  const state = initialState(family, o, params);
  const outputs = [...state.map((s) => nextName(s.name)), 'loss'];
  const batches = batchSchedule(family.model.examples(sliceRows(data)), spec.steps, spec.batchSize, spec.seed);
  let lossSum = 0;
  for (let t = 1; t <= spec.steps; t++) {
    const out = await runStep(run, family, o, state, data, batches[t - 1], t, outputs);
    state.forEach((s, i) => (s.data = out[i]));
    lossSum += out[state.length][0];
  }
  const theta = new Float32Array(params.length);
  for (const s of state) if (!s.moment) theta.set(s.data, s.tensor.offset);
  return { theta, trainLoss: lossSum / Math.max(1, spec.steps) };
}

/**
 * The loss of θ on the unit's check batch (checkRows), by one more run of the step graph: its loss
 * output is taken before its update. Float32 on ORT's kernels, so within ~2e-7 (relative) of what the
 * coordinator's cheap check recomputes in the TS forward pass (it allows 1e-3), at a fraction of
 * that pass's time (the TS forward of the check batch cost as much as half the graph's unit).
 */
export async function graphCheckLoss(run: RunStepGraph, spec: GraphUnitSpec, theta: Float32Array, data: SliceData): Promise<number> {
  const family = stepFamilyOf(spec.model);
  const batch = checkRows(family.model.examples(sliceRows(data)), spec.batchSize, spec.seed);
  return (await runStep(run, family, spec.optimizer, initialState(family, spec.optimizer, theta), data, batch, 1, ['loss']))[0][0];
}

/**
 * A whole unit through the graph, as the TS loop's `runTrainUnit` returns it: Δ in the unit's
 * encoding, the mean training loss, and the check loss, taken on the parameters the coordinator
 * will decode (for int8, θ_round − the dequantized Δ).
 */
export async function graphTrainUnit(run: RunStepGraph, spec: GraphUnitSpec, compress: Compression, params: Float32Array, x: Float32Array, y: Float32Array | null): Promise<Float32Array> {
  const data = { x, y };
  const { theta, trainLoss } = await graphTrainInner(run, spec, params, data);
  const model = stepFamilyOf(spec.model).model;
  const delta = new Float32Array(params.length);
  for (let i = 0; i < delta.length; i++) delta[i] = params[i] - theta[i];
  const encoded = encodeDelta(model, compress, params, delta);
  return encoded.pack(trainLoss, await graphCheckLoss(run, spec, encoded.applied ?? theta, data));
}
