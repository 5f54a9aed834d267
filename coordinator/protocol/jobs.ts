// Job kinds: what a researcher submits (POST /api/jobs), a job's status, and the work units a
// worker receives for each kind.
import { z } from 'zod';
import { Id, LIMITS, Name, Sha256Hex } from './common.js';

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

export const JobSubmit = z.discriminatedUnion('kind', [MatmulJobSubmit, AttentionJobSubmit, OnnxJobSubmit]);
export type JobSubmit = z.infer<typeof JobSubmit>;

export type JobKindName = JobSubmit['kind'];

export const JobState = z.enum(['queued', 'running', 'done', 'failed']);
export type JobState = z.infer<typeof JobState>;

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
  shardTraffic: z.object({ fromPeers: z.number(), fromCoordinator: z.number() }).optional(),
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

export const WorkUnitSpec = z.discriminatedUnion('kind', [MatmulWorkUnitSpec, AttentionWorkUnitSpec, OnnxWorkUnitSpec]);
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
