// The training benches' job (bench/train.ts with sim workers, bench/train-p2p.ts with native
// volunteers): the MLP on a synthetic blobs task, its submission, and the final loss against the
// central float64 reference of the same schedule (coordinator/jobs/train.ts centralReference).
import { centralReference } from '../coordinator/jobs/train.js';
import { TrainJobSubmit, type RoundStats } from '../coordinator/protocol/index.js';
import { toNpy } from '../coordinator/protocol/npy.js';
import type { TestCoordinator } from '../coordinator/testing/helpers.js';
import { blobsTask } from '../coordinator/testing/train-task.js';

export const FEATURES = 16;
export const CLASSES = 4;
export const task = blobsTask(4096, FEATURES, CLASSES, 3, 1.5);

export interface TrainBenchShape {
  rounds: number;
  steps: number;
  units: number;
  batch: number;
  hidden: number;
  replication: number;
}

/** The job's description in the bench's JSON. */
export function describeTask(s: TrainBenchShape) {
  return { rows: task.n, features: FEATURES, classes: CLASSES, layers: [FEATURES, s.hidden, CLASSES], localSteps: s.steps, batchSize: s.batch, unitsPerRound: s.units, replication: s.replication };
}

/** The submission's body, its data uploaded to `grid`. */
export async function trainJobBody(grid: Pick<TestCoordinator, 'uploadShard'>, s: TrainBenchShape, compress: 'none' | 'int8' = 'none') {
  return {
    kind: 'train',
    model: { type: 'mlp', layers: [FEATURES, s.hidden, CLASSES] },
    data: { x: await grid.uploadShard(toNpy([task.n, task.f], task.x)), y: await grid.uploadShard(toNpy([task.n], task.y)) },
    rounds: s.rounds,
    localSteps: s.steps,
    batchSize: s.batch,
    innerOptimizer: { type: 'adamw', lr: 0.003 },
    unitsPerRound: s.units,
    replication: s.replication,
    compress,
  };
}

/** The first and final loss, the central reference's final loss, and final ÷ reference. */
export function lossFigures(body: unknown, perRound: RoundStats[]) {
  const ref = centralReference(TrainJobSubmit.parse(body), task);
  const final = perRound.at(-1)!.loss;
  return { start: +ref.losses[0].toFixed(4), final: +final.toFixed(4), centralReference: +ref.losses.at(-1)!.toFixed(4), ratio: +(final / ref.losses.at(-1)!).toFixed(4) };
}
