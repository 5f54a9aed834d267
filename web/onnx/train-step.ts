// A train unit's H inner steps through its family's step graph (step-graph.ts, with the MLP's part,
// mlp-step.ts, or the transformer's, transformer-step.ts): each step's outputs fed back as the next
// step's inputs, on the same seeded batches as protocol/train-loop.ts, the check loss by one more
// run, the output encoded there (encodeDelta) — a replica of the TS loop within the replica
// tolerance. No onnxruntime import here: the caller runs the graph (web/cpu/train.ts on
// onnxruntime-web's wasm EP, web/onnx/webgpu-train.ts on its webgpu EP with the state held on the
// GPU; the native volunteer and the tests on onnxruntime-node).
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

/** A feed of the step graph: host data, or a value the runner returned (fed back where it lies). */
export type StepFeed<V> = Feed | { name: string; shape: readonly number[]; value: V };

/**
 * Runs the step graph and keeps its outputs where it likes: host arrays (the CPU's runs), or tensors
 * left on the GPU and fed back as the next step's inputs, so θ and the moments never cross the bus
 * between steps (web/onnx/webgpu-train.ts). The H-step loop reads back only what it needs at the end.
 */
export interface StepGraphRunner<V> {
  run(feeds: StepFeed<V>[], outputs: string[]): Promise<V[]>;
  /** A value's data on the host. */
  read(value: V): Promise<Float32Array>;
  /** Frees a value no longer fed. */
  free(value: V): void;
}

/** A RunStepGraph as a runner whose values are its host arrays. */
function hostRunner(run: RunStepGraph): StepGraphRunner<Float32Array> {
  return {
    run: (feeds, outputs) => run(feeds.map((f) => ('value' in f ? { name: f.name, shape: f.shape, data: f.value } : f)), outputs),
    read: async (value) => value,
    free: () => undefined,
  };
}

const runnerOf = <V>(run: RunStepGraph | StepGraphRunner<V>) => (typeof run === 'function' ? (hostRunner(run) as StepGraphRunner<unknown>) : (run as StepGraphRunner<unknown>));

/** The state the graph carries, by input name: θ's tensors from `theta`, and AdamW's moments from zero. */
function initialState(family: StepGraphFamily, o: InnerOptimizer, theta: Float32Array) {
  return stepState(family.model, o).map((s) => ({
    ...s,
    data: (s.moment ? new Float32Array(s.tensor.size) : theta.slice(s.tensor.offset, s.tensor.offset + s.tensor.size)) as Float32Array,
    /** The runner's value once a step has produced it (then `data` is stale). */
    held: undefined as unknown,
  }));
}

/** One run of the graph: step t (from 1) on the batch from the state; the named outputs. */
function runStep(runner: StepGraphRunner<unknown>, family: StepGraphFamily, o: InnerOptimizer, state: ReturnType<typeof initialState>, data: SliceData, batch: Int32Array, t: number, outputs: string[]) {
  const scalars: Record<string, number> = { lr: o.lr, ...(o.type === 'adamw' ? { c1: 1 - o.beta1 ** t, c2: 1 - o.beta2 ** t } : {}) };
  return runner.run(
    [
      ...state.map((s) => (s.held === undefined ? { name: s.name, shape: s.tensor.shape, data: s.data } : { name: s.name, shape: s.tensor.shape, value: s.held })),
      ...family.batchFeeds(data, batch),
      ...Object.entries(scalars).map(([name, v]) => ({ name, shape: [], data: Float32Array.of(v) })),
    ],
    outputs,
  );
}

/**
 * The unit's H steps through the graph: θ_after as float32 (P values, flat layout) and the mean loss
 * of the steps' batches. Each step's state outputs are the next step's inputs; the losses and θ are
 * read once, after the last step, and every value the runner made is freed, on failure too.
 */
export async function graphTrainInner<V>(run: RunStepGraph | StepGraphRunner<V>, spec: GraphUnitSpec, params: Float32Array, data: SliceData): Promise<{ theta: Float32Array; trainLoss: number }> {
  const runner = runnerOf(run);
  const family = stepFamilyOf(spec.model);
  const { optimizer: o } = spec;
  const state = initialState(family, o, params);
  const outputs = [...state.map((s) => nextName(s.name)), 'loss'];
  const batches = batchSchedule(family.model.examples(sliceRows(data)), spec.steps, spec.batchSize, spec.seed);
  const losses: unknown[] = [];
  try {
    for (let t = 1; t <= spec.steps; t++) {
      const out = await runStep(runner, family, o, state, data, batches[t - 1], t, outputs);
      state.forEach((s, i) => {
        if (s.held !== undefined) runner.free(s.held);
        s.held = out[i];
      });
      losses.push(out[state.length]);
    }
    let lossSum = 0;
    for (const loss of losses) lossSum += (await runner.read(loss))[0];
    const theta = new Float32Array(params.length);
    for (const s of state) if (!s.moment) theta.set(s.held === undefined ? s.data : await runner.read(s.held), s.tensor.offset);
    return { theta, trainLoss: lossSum / Math.max(1, spec.steps) };
  } finally {
    for (const v of [...losses, ...state.map((s) => s.held)]) if (v !== undefined) runner.free(v);
  }
}

/**
 * The loss of θ on the unit's check batch (checkRows), by one more run of the step graph: its loss
 * output is taken before its update. Float32 on ORT's kernels, so within ~2e-7 (relative) of what the
 * coordinator's cheap check recomputes in the TS forward pass (it allows 1e-3), at a fraction of
 * that pass's time (the TS forward of the check batch cost as much as half the graph's unit).
 */
export async function graphCheckLoss<V>(run: RunStepGraph | StepGraphRunner<V>, spec: GraphUnitSpec, theta: Float32Array, data: SliceData): Promise<number> {
  const runner = runnerOf(run);
  const family = stepFamilyOf(spec.model);
  const batch = checkRows(family.model.examples(sliceRows(data)), spec.batchSize, spec.seed);
  const [loss] = await runStep(runner, family, spec.optimizer, initialState(family, spec.optimizer, theta), data, batch, 1, ['loss']);
  try {
    return (await runner.read(loss))[0];
  } finally {
    runner.free(loss);
  }
}

/**
 * A whole unit through the graph, as the TS loop's `runTrainUnit` returns it: Δ in the unit's
 * encoding, the mean training loss, and the check loss, taken on the parameters the coordinator
 * will decode (for int8, θ_round − the dequantized Δ).
 */
export async function graphTrainUnit<V>(run: RunStepGraph | StepGraphRunner<V>, spec: GraphUnitSpec, compress: Compression, params: Float32Array, x: Float32Array, y: Float32Array | null): Promise<Float32Array> {
  const data = { x, y };
  const { theta, trainLoss } = await graphTrainInner(run, spec, params, data);
  const model = stepFamilyOf(spec.model).model;
  const delta = new Float32Array(params.length);
  for (let i = 0; i < delta.length; i++) delta[i] = params[i] - theta[i];
  const encoded = encodeDelta(model, compress, params, delta);
  return encoded.pack(trainLoss, await graphCheckLoss(run, spec, encoded.applied ?? theta, data));
}
