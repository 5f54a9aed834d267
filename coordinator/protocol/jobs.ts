// Job kinds: what a researcher submits (POST /api/jobs), a job's status, and the work units a
// worker receives for each kind.
import { z } from 'zod';
import { Id, LIMITS, Name, Sha256Hex } from './common.js';
import { ShardTraffic } from './p2p.js';

export const Tolerance = z
  .object({
    atol: z.number().min(0).max(1e6),
    rtol: z.number().min(0).max(1),
  })
  .strict();
export type Tolerance = z.infer<typeof Tolerance>;

export const MatmulJobSubmit = z
  .object({
    kind: z.literal('matmul'),
    name: Name.optional(),
    inputs: z.object({ a: Sha256Hex, b: Sha256Hex }).strict(),
    replication: z.number().int().min(1).max(LIMITS.maxReplication).default(2),
    /** Output tile per work unit; chosen from the problem size when absent. */
    tile: z
      .object({ rows: z.number().int().min(1).max(4096), cols: z.number().int().min(1).max(4096) })
      .strict()
      .optional(),
    /** Overrides the validator's agreement tolerance (see README). */
    tolerance: Tolerance.optional(),
    /** Adaptive replication (default true): trusted hosts' checked results may go unreplicated (see README). */
    adaptive: z.boolean().optional(),
  })
  .strict();
export type MatmulJobSubmit = z.infer<typeof MatmulJobSubmit>;

/** Head dimensions the attention kernel is built for. */
export const ATTENTION_HEAD_DIMS = [64, 128] as const;

export const AttentionJobSubmit = z
  .object({
    kind: z.literal('attention'),
    name: Name.optional(),
    /** Q, K, V as float32 .npy of shape [heads, seq, d]; out = softmax(Q·Kᵀ/√d)·V per head. */
    inputs: z.object({ q: Sha256Hex, k: Sha256Hex, v: Sha256Hex }).strict(),
    /** Query i attends only to keys j <= i (decoder-style masking). */
    causal: z.boolean().default(false),
    replication: z.number().int().min(1).max(LIMITS.maxReplication).default(2),
    /** Query rows per work unit; chosen from the problem size when absent. */
    blockRows: z.number().int().min(1).max(LIMITS.maxDim).optional(),
    tolerance: Tolerance.optional(),
  })
  .strict();
export type AttentionJobSubmit = z.infer<typeof AttentionJobSubmit>;

export const AttentionParams = z
  .object({
    /** Key/value rows (the head's whole sequence). */
    seq: z.number().int().min(1).max(LIMITS.maxDim),
    /** Query rows in this unit, and the index of its first query in the sequence. */
    rows: z.number().int().min(1).max(LIMITS.maxDim),
    q0: z.number().int().min(0).max(LIMITS.maxDim),
    d: z.union([z.literal(64), z.literal(128)]),
    causal: z.boolean(),
  })
  .strict();
export type AttentionParams = z.infer<typeof AttentionParams>;

export const ONNX_LIMITS = {
  /** Largest model a job may use: it travels to every worker as one shard. */
  maxModelBytes: 64 * 1024 * 1024,
  /** Largest output of one work unit (all outputs together). */
  maxUnitOutputBytes: 32 * 1024 * 1024,
  maxTensors: 16,
  maxTensorNameLength: 128,
} as const;

const TensorName = z.string().min(1).max(ONNX_LIMITS.maxTensorNameLength);

export const OnnxJobSubmit = z
  .object({
    kind: z.literal('onnx'),
    name: Name.optional(),
    /** sha-256 of the model uploaded with POST /api/models. */
    model: Sha256Hex,
    /** One .npy shard per model input, by input name; axis 0 of each is the batch. */
    inputs: z.record(TensorName, Sha256Hex),
    replication: z.number().int().min(1).max(LIMITS.maxReplication).default(2),
    /** Batch items per work unit; chosen from the model's size when absent. */
    itemsPerUnit: z.number().int().min(1).max(1 << 20).optional(),
    /** Agreement tolerance: one for every output, or one per output name. */
    tolerance: z.union([Tolerance, z.record(TensorName, Tolerance)]).optional(),
    /** Outputs (classification scores) whose replicas must agree on the argmax of the last axis instead. */
    argmax: z.array(TensorName).max(ONNX_LIMITS.maxTensors).optional(),
    /** FLOPs one batch item costs, for credit; estimated as 2 × the weight count when absent. */
    flopsPerItem: z.number().positive().max(1e15).optional(),
  })
  .strict();
export type OnnxJobSubmit = z.infer<typeof OnnxJobSubmit>;

export const TRAIN_LIMITS = {
  maxLayers: 8,
  maxWidth: 4096,
  /** Parameters of one model (float32 values): the round's parameter shard and every Δ are this big. */
  maxParams: 4 * 1024 * 1024,
  maxRounds: 1000,
  maxLocalSteps: 10_000,
  maxBatchSize: 4096,
  maxUnitsPerRound: 256,
  /** The transformer LM: vocabulary, context (the T×T attention scores are materialised), blocks, width, heads. */
  maxVocab: 65_536,
  maxContext: 256,
  maxBlocks: 16,
  maxDModel: 1024,
  maxHeads: 32,
} as const;

/** Built-in model family: the MLP classifier. */
export const MlpModelSpec = z
  .object({
    type: z.literal('mlp'),
    /** Widths: input features, hidden layers…, classes. */
    layers: z.array(z.number().int().min(1).max(TRAIN_LIMITS.maxWidth)).min(2).max(TRAIN_LIMITS.maxLayers + 1),
    activation: z.literal('relu').default('relu'),
  })
  .strict();
export type MlpModelSpec = z.infer<typeof MlpModelSpec>;

/** Built-in model family: a decoder-only transformer language model (protocol/train-transformer.ts). */
export const TransformerModelSpec = z
  .object({
    type: z.literal('transformer'),
    vocab: z.number().int().min(2).max(TRAIN_LIMITS.maxVocab),
    context: z.number().int().min(1).max(TRAIN_LIMITS.maxContext),
    layers: z.number().int().min(1).max(TRAIN_LIMITS.maxBlocks),
    dModel: z.number().int().min(1).max(TRAIN_LIMITS.maxDModel),
    heads: z.number().int().min(1).max(TRAIN_LIMITS.maxHeads),
  })
  .strict()
  .refine((m) => m.dModel % m.heads === 0, { message: 'dModel must be divisible by heads', path: ['dModel'] });
export type TransformerModelSpec = z.infer<typeof TransformerModelSpec>;

export const TrainModelSpec = z.discriminatedUnion('type', [MlpModelSpec, TransformerModelSpec]);
export type TrainModelSpec = z.infer<typeof TrainModelSpec>;

export const InnerOptimizerSpec = z
  .object({
    type: z.enum(['sgd', 'adamw']),
    lr: z.number().positive().max(10),
    weightDecay: z.number().min(0).max(1).default(0),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: z.number().positive().max(1).default(1e-8),
  })
  .strict();

export const OuterOptimizerSpec = z
  .object({
    type: z.literal('nesterov').default('nesterov'),
    lr: z.number().positive().max(10).default(0.7),
    momentum: z.number().min(0).lt(1).default(0.9),
  })
  .strict();

/**
 * A multi-round training job (DiLoCo): each round's units run `localSteps` inner steps from the
 * round's parameters on their data slice and return Δ; the coordinator aggregates the validated
 * Δs robustly and takes one outer Nesterov step.
 */
export const TrainJobSubmit = z
  .object({
    kind: z.literal('train'),
    name: Name.optional(),
    model: TrainModelSpec,
    /**
     * MLP: x [N, features] float32 and y [N] class ids, float32 or int32. Transformer: tokens, a
     * 1-D array of ids in [0, vocab) (float32 or int32), and optionally validation tokens to
     * evaluate on (else windows of the training tokens).
     */
    data: z.union([z.object({ x: Sha256Hex, y: Sha256Hex }).strict(), z.object({ tokens: Sha256Hex, validation: Sha256Hex.optional() }).strict()]),
    /** Initial parameters: sha-256 of an uploaded flat float32 .npy of the model's P parameters (else from the seed). */
    init: Sha256Hex.optional(),
    rounds: z.number().int().min(1).max(TRAIN_LIMITS.maxRounds),
    localSteps: z.number().int().min(1).max(TRAIN_LIMITS.maxLocalSteps),
    batchSize: z.number().int().min(1).max(TRAIN_LIMITS.maxBatchSize),
    innerOptimizer: InnerOptimizerSpec.default({ type: 'adamw', lr: 1e-3, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8 }),
    outerOptimizer: OuterOptimizerSpec.default({ type: 'nesterov', lr: 0.7, momentum: 0.9 }),
    /** Work units per round, one per data slice (the data is split into this many slices). */
    unitsPerRound: z.number().int().min(1).max(TRAIN_LIMITS.maxUnitsPerRound).default(4),
    aggregator: z.enum(['mean', 'trimmed-mean', 'median']).default('trimmed-mean'),
    /** Trimmed mean: the fraction of Δs dropped from each side, per coordinate. */
    trim: z.number().min(0).max(0.45).default(0.25),
    /** Each Δ is scaled down to at most this L2 norm before aggregation. */
    clipNorm: z.number().positive().max(1e6).optional(),
    /** Round closing: once this fraction of the round's units is validated, stragglers get `roundGraceS` more seconds. */
    roundQuorum: z.number().gt(0).max(1).default(0.75),
    roundGraceS: z.number().min(0).max(86_400).default(30),
    seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
    replication: z.number().int().min(1).max(LIMITS.maxReplication).default(2),
    /** Overrides the replica agreement tolerance (relative L2 distance of the Δs; see README). */
    tolerance: Tolerance.optional(),
    /** Δ uploads as int8 with one float32 scale per tensor (about 4× fewer bytes) instead of float32. */
    compress: z.enum(['none', 'int8']).default('none'),
  })
  .strict();
export type TrainJobSubmit = z.infer<typeof TrainJobSubmit>;

export const JobSubmit = z.discriminatedUnion('kind', [MatmulJobSubmit, AttentionJobSubmit, OnnxJobSubmit, TrainJobSubmit]);
export type JobSubmit = z.infer<typeof JobSubmit>;

export type JobKindName = JobSubmit['kind'];

export const JobState = z.enum(['queued', 'running', 'done', 'failed']);
export type JobState = z.infer<typeof JobState>;

/** One closed round of a training job. */
export const RoundStats = z.object({
  round: z.number().int(),
  /** Loss of the parameters after the round's outer step on the job's evaluation rows (computed by the coordinator). */
  loss: z.number(),
  /** Mean training loss the round's validated units reported over their inner steps. */
  trainLoss: z.number(),
  /** Validated units aggregated into the round's update (of `planned`). */
  units: z.number().int(),
  planned: z.number().int(),
  /** Δ bytes uploaded for the aggregated units, every replica counted. */
  bytes: z.number().int(),
  /** Units dropped as stragglers when the round closed. */
  dropped: z.number().int(),
  closedAt: z.number(),
});
export type RoundStats = z.infer<typeof RoundStats>;

export const JobStatus = z.object({
  id: Id,
  kind: z.string(),
  name: z.string().nullable(),
  state: JobState,
  progress: z.object({ done: z.number().int(), total: z.number().int() }),
  replication: z.number().int(),
  createdAt: z.number(),
  finishedAt: z.number().nullable(),
  error: z.string().nullable(),
  result: z.object({ sha256: Sha256Hex, shape: z.array(z.number().int()) }).nullable(),
  shardTraffic: ShardTraffic.optional(),
  /** Iterative jobs (train): the open round (0-based; equals `rounds` once done) and each closed round's figures. */
  round: z.number().int().optional(),
  rounds: z.number().int().optional(),
  perRound: z.array(RoundStats).optional(),
  /** An onnx job's outputs, by name, in the model's order (each at /api/jobs/<id>/outputs/<name>). */
  outputs: z.array(z.string()).optional(),
});
export type JobStatus = z.infer<typeof JobStatus>;

export const MatmulParams = z
  .object({
    m: z.number().int().min(1),
    k: z.number().int().min(1),
    n: z.number().int().min(1),
  })
  .strict();
export type MatmulParams = z.infer<typeof MatmulParams>;

/** What a worker receives for one lease: enough to fetch inputs, compute and size the output. */
export const MatmulWorkUnitSpec = z.object({
  id: Id,
  jobId: Id,
  kind: z.literal('matmul'),
  params: MatmulParams,
  /** Input shards by name (for matmul: a = m×k rows of A, b = k×n columns of B, both .npy). */
  inputs: z.record(z.string().max(32), Sha256Hex),
  outputBytes: z.number().int().min(0),
  flops: z.number().min(0),
});

/** Attention work units: q = rows×d block of one head's Q, k and v = that head's seq×d K and V. */
export const AttentionWorkUnitSpec = MatmulWorkUnitSpec.extend({ kind: z.literal('attention'), params: AttentionParams });

const Shape = z.array(z.number().int().min(0)).max(8);

/** How the replicas of one output are compared: element-wise within a tolerance, or by argmax. */
export const OutputAgreement = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('tolerance'), atol: Tolerance.shape.atol, rtol: Tolerance.shape.rtol }).strict(),
  z.object({ mode: z.literal('argmax') }).strict(),
]);
export type OutputAgreement = z.infer<typeof OutputAgreement>;

export const OnnxParams = z
  .object({
    /** sha-256 of the model shard (raw .onnx bytes); the session cache key. */
    model: Sha256Hex,
    modelBytes: z.number().int().min(1),
    /** Batch items in this unit (axis 0 of every input and output). */
    items: z.number().int().min(1),
    inputs: z.array(z.object({ name: TensorName, shape: Shape }).strict()).max(ONNX_LIMITS.maxTensors),
    /** The unit's output is these outputs' float32 values, flattened and concatenated in this order. */
    outputs: z.array(z.object({ name: TensorName, shape: Shape, agreement: OutputAgreement }).strict()).max(ONNX_LIMITS.maxTensors),
  })
  .strict();
export type OnnxParams = z.infer<typeof OnnxParams>;

/** The input key of an ONNX unit's model shard (not a valid name for a model's own input). */
export const ONNX_MODEL_INPUT = '@model';

export const OnnxWorkUnitSpec = MatmulWorkUnitSpec.extend({
  kind: z.literal('onnx'),
  params: OnnxParams,
  /**
   * One .npy batch slice per model input, by input name, and the model under ONNX_MODEL_INPUT: a
   * shard like any other, so peers share it and the scheduler counts it for locality.
   */
  inputs: z.record(TensorName, Sha256Hex),
});

const TrainParamsBase = z.object({
  round: z.number().int().min(0),
  rounds: z.number().int().min(1),
  slice: z.number().int().min(0),
  /** Rows in the unit's data slice (x is rows × layers[0], y is rows); a transformer unit's tokens in x. */
  rows: z.number().int().min(1),
  steps: z.number().int().min(1),
  batchSize: z.number().int().min(1),
  seed: z.number().int().min(0),
  optimizer: z.enum(['sgd', 'adamw']),
    lr: z.number(),
  weightDecay: z.number(),
  beta1: z.number(),
  beta2: z.number(),
  eps: z.number(),
  /** How the output's Δ is encoded (protocol/train-loop.ts). */
  compress: z.enum(['none', 'int8']),
});

/** An MLP unit's parameters: the layer widths name its model. */
export const MlpTrainParams = TrainParamsBase.extend({ layers: MlpModelSpec.shape.layers }).strict();
export type MlpTrainParams = z.infer<typeof MlpTrainParams>;
/** A transformer unit's parameters: its model spec; its inputs are params and x (the slice's tokens), no y. */
export const LmTrainParams = TrainParamsBase.extend({ model: TransformerModelSpec }).strict();
export type LmTrainParams = z.infer<typeof LmTrainParams>;
export const TrainParams = z.union([MlpTrainParams, LmTrainParams]);
export type TrainParams = z.infer<typeof TrainParams>;

/**
 * Train units: params = the round's parameters (flat float32 .npy, a shard like any other, so
 * peers share it), x and y = the unit's data slice (a transformer unit: x = its tokens, no y). The
 * output is Δ, then two losses (train-loop.ts).
 */
export const TrainWorkUnitSpec = MatmulWorkUnitSpec.extend({ kind: z.literal('train'), params: TrainParams });
export type TrainWorkUnitSpec = z.infer<typeof TrainWorkUnitSpec>;

export const WorkUnitSpec = z.discriminatedUnion('kind', [MatmulWorkUnitSpec, AttentionWorkUnitSpec, OnnxWorkUnitSpec, TrainWorkUnitSpec]);
export type WorkUnitSpec = z.infer<typeof WorkUnitSpec>;
export type MatmulWorkUnitSpec = z.infer<typeof MatmulWorkUnitSpec>;
export type AttentionWorkUnitSpec = z.infer<typeof AttentionWorkUnitSpec>;
export type OnnxWorkUnitSpec = z.infer<typeof OnnxWorkUnitSpec>;

/** Inputs a worker fetches only when it needs them, as raw bytes (not .npy): an ONNX unit's model. */
export function onDemandInputs(wu: WorkUnitSpec): string[] {
  return wu.kind === 'onnx' ? [ONNX_MODEL_INPUT] : [];
}

/** Every job kind a work unit can be: a worker that implements the whole protocol declares these. */
export const WORK_UNIT_KINDS: readonly WorkUnitSpec['kind'][] = WorkUnitSpec.options.map((o) => o.shape.kind.value);
