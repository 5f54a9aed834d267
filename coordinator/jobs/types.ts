// What every job kind provides: how to split a submission into work units, how to check one
// output cheaply, and how to assemble the canonical outputs into the job's result.
import type { JobSubmit, RoundStats, Tolerance } from '../protocol/index.js';
import type { ShardStore } from '../store/shards.js';
import type { JobRecord, NewWorkUnit, WorkUnitRecord } from '../store/store.js';

/** A submission the job kind cannot run: answered with 400 and this message. */
export class JobInputError extends Error {
  override name = 'JobInputError';
}

export type PlannedWorkUnit = Omit<NewWorkUnit, 'id' | 'jobId' | 'idx' | 'kind'>;

export interface JobPlan {
  meta: Record<string, unknown>;
  resultShape: number[];
  workUnits: PlannedWorkUnit[];
}

/**
 * Where an iterative job stands, read from its meta. An iterative kind keeps `round` (the open
 * round, 0-based; equal to the number of rounds once finished) in its job's meta: the store
 * advances a round only from the round it names, which is what makes closing a round idempotent.
 */
export interface RoundInfo {
  round: number;
  rounds: number;
  /** The open round's units are the job's units with idx in [firstIdx, firstIdx + units). */
  firstIdx: number;
  units: number;
  /** Validated units after which stragglers get only `graceMs` more before the round closes without them. */
  quorum: number;
  graceMs: number;
}

/** What closing a round produces: the job's next meta and the next round's units, or the result. */
export interface RoundOutcome {
  /** The job's meta after the round (its `round` one higher). */
  meta: Record<string, unknown>;
  /** The next round's units; empty when the closed round was the last. */
  workUnits: PlannedWorkUnit[];
  /** The job's result (.npy bytes) when the closed round was the last. */
  result?: Uint8Array;
  /** A line for the coordinator's log. */
  summary: string;
}

/**
 * A kind that plans its units one round at a time (training; later power iteration, k-means,
 * evolution strategies). Its units are ordinary units to the intake, scheduler, store and ledger;
 * work/rounds.ts closes a round once its units are validated (or its quorum is in and the grace
 * has passed) and asks the kind for the next.
 */
export interface IterativeKind {
  roundInfo(job: JobRecord): RoundInfo;
  /**
   * The round closed with these validated units (in idx order; a quorum or all of them). Must be
   * deterministic in its inputs: after a crash the same round may be closed again, and the store
   * keeps only the first commit.
   */
  closeRound(job: JobRecord, settled: { wu: WorkUnitRecord; output: Float32Array; results: number }[], shards: ShardStore, now: number): Promise<RoundOutcome>;
  /** Fields added to the job's status (GET /api/jobs/<id>): round, rounds, per-round figures. */
  status(job: JobRecord): { round: number; rounds: number; perRound: RoundStats[] };
}

export interface JobKind<S extends JobSubmit = JobSubmit> {
  readonly kind: S['kind'];
  /**
   * Only workers that list this kind in DeviceInfo.kinds get its units (ONNX needs onnxruntime);
   * other kinds also go to workers that list no kinds at all (older pages, sim workers).
   */
  readonly optIn?: boolean;
  /** Validates inputs (400 via JobInputError), stores derived shards, and splits into work units. */
  plan(submit: S, shards: ShardStore): Promise<JobPlan>;
  /**
   * An independent check of one output, much cheaper than recomputing it (Freivalds for matmul).
   * False means the output is certainly wrong.
   */
  check(wu: WorkUnitRecord, output: Float32Array, shards: ShardStore): Promise<boolean>;
  /** The job's result as .npy bytes from the canonical output of every work unit. */
  assimilate(job: JobRecord, outputs: { wu: WorkUnitRecord; output: Float32Array }[]): Uint8Array;
  /**
   * True when `check` alone catches wrong outputs (matmul: Freivalds + spot recomputation), so
   * adaptive replication may accept a trusted host's checked result unreplicated. Kinds without
   * such a check are always replicated.
   */
  readonly checksOutputs?: boolean;
  /** Whether two replicas agree, when the kind compares differently from `wu.tolerance` element-wise. */
  agree?(wu: WorkUnitRecord, x: Float32Array, y: Float32Array): boolean;
  /** One named output of a multi-output job as .npy, or null when there is no such output. */
  output?(job: JobRecord, outputs: { wu: WorkUnitRecord; output: Float32Array }[], name: string): Uint8Array | null;
  /** One named output read from shards the job's meta names (train: final parameter tensors), or null. */
  storedOutput?(job: JobRecord, name: string, shards: ShardStore): Promise<Uint8Array | null>;
  /** The job's trained model as an ONNX inference graph (train), or null. */
  modelOnnx?(job: JobRecord, shards: ShardStore): Promise<Uint8Array | null>;
  /** Present for kinds that plan one round at a time. */
  readonly iterative?: IterativeKind;
  /** The names `output` answers to, in order (a multi-output job's status lists them). */
  outputNames?(job: JobRecord): string[];
}

export type { Tolerance };
