// The training benches' job (bench/train.ts with sim workers, bench/train-p2p.ts with native
// volunteers): the MLP on a synthetic blobs task, or (train-p2p --model lm) the transformer LM on an
// order-2 Markov chain; its submission, and the final loss against the central float64 reference of
// the same schedule (coordinator/jobs/train.ts centralReference).
import { centralReference } from '../coordinator/jobs/train.js';
import type { TrainData } from '../coordinator/jobs/train-data.js';
import { TrainJobSubmit, type RoundStats } from '../coordinator/protocol/index.js';
import { toNpy } from '../coordinator/protocol/npy.js';
import { trainModelOf } from '../coordinator/protocol/train-loop.js';
import type { TestCoordinator } from '../coordinator/testing/helpers.js';
import { markovTask, markovTokens } from '../coordinator/testing/lm-task.js';
import { blobsTask } from '../coordinator/testing/train-task.js';

export const FEATURES = 16;
export const CLASSES = 4;
export const task = blobsTask(4096, FEATURES, CLASSES, 3, 1.5);
/** The LM's data: 8 symbols, 16-token windows (as the LM scenario test). */
const chain = markovTask(8);
const lm = { tokens: markovTokens(chain, 8192, 1), validation: markovTokens(chain, 1024, 2), context: 16 };

export interface TrainBenchShape {
  rounds: number;
  steps: number;
  units: number;
  batch: number;
  /** The MLP's hidden width, or the transformer's dModel. */
  hidden: number;
  replication: number;
  model?: 'mlp' | 'lm';
}

/** The command-line options of a job's shape, as both training benches take them (node:util parseArgs). */
export const SHAPE_OPTIONS = {
  rounds: { type: 'string', default: '10' },
  steps: { type: 'string', default: '50' },
  units: { type: 'string', default: '8' },
  batch: { type: 'string', default: '64' },
  hidden: { type: 'string', default: '64' },
  replication: { type: 'string', default: '2' },
  model: { type: 'string', default: 'mlp' },
} as const;

/** The shape from the parsed SHAPE_OPTIONS. */
export function shapeFrom(v: { [K in keyof typeof SHAPE_OPTIONS]: string }): TrainBenchShape {
  const shape = { rounds: +v.rounds, steps: +v.steps, units: +v.units, batch: +v.batch, hidden: +v.hidden, replication: +v.replication };
  return { ...shape, model: v.model === 'lm' ? 'lm' : 'mlp' };
}

function modelSpec(s: TrainBenchShape) {
  return s.model === 'lm' ? { type: 'transformer', vocab: chain.vocab, context: lm.context, layers: 1, dModel: s.hidden, heads: 2 } : { type: 'mlp', layers: [FEATURES, s.hidden, CLASSES] };
}

/** The job's description in the bench's JSON. */
export function describeTask(s: TrainBenchShape) {
  const data = s.model === 'lm' ? { tokens: lm.tokens.length, validation: lm.validation.length, entropyRate: +chain.entropyRate.toFixed(4) } : { rows: task.n, features: FEATURES, classes: CLASSES };
  return { ...data, model: modelSpec(s), localSteps: s.steps, batchSize: s.batch, unitsPerRound: s.units, replication: s.replication };
}

/** The submission's body, its data uploaded to `grid`. */
export async function trainJobBody(grid: Pick<TestCoordinator, 'uploadShard'>, s: TrainBenchShape, compress: 'none' | 'int8' = 'none') {
  const data =
    s.model === 'lm'
      ? { tokens: await grid.uploadShard(toNpy([lm.tokens.length], lm.tokens)), validation: await grid.uploadShard(toNpy([lm.validation.length], lm.validation)) }
      : { x: await grid.uploadShard(toNpy([task.n, task.f], task.x)), y: await grid.uploadShard(toNpy([task.n], task.y)) };
  return {
    kind: 'train',
    model: modelSpec(s),
    data,
    rounds: s.rounds,
    localSteps: s.steps,
    batchSize: s.batch,
    innerOptimizer: { type: 'adamw', lr: s.model === 'lm' ? 0.015 : 0.003 },
    unitsPerRound: s.units,
    replication: s.replication,
    compress,
  };
}

/** The first and final loss, the central reference's final loss, and final ÷ reference. */
export function lossFigures(body: unknown, perRound: RoundStats[]) {
  const submit = TrainJobSubmit.parse(body);
  const data: TrainData = submit.model.type === 'transformer' ? { family: 'transformer', ...lm } : { family: 'mlp', ...task };
  const ref = centralReference(submit, data);
  const final = perRound.at(-1)!.loss;
  return { start: +ref.losses[0].toFixed(4), final: +final.toFixed(4), centralReference: +ref.losses.at(-1)!.toFixed(4), ratio: +(final / ref.losses.at(-1)!).toFixed(4) };
}

/** The model's parameter count: the round's parameter shard holds this many float32s. */
export function parameterCount(s: TrainBenchShape): number {
  return trainModelOf(TrainJobSubmit.shape.model.parse(modelSpec(s))).paramCount;
}
