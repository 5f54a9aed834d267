// What every job kind provides: how to split a submission into work units, how to check one
// output cheaply, and how to assemble the canonical outputs into the job's result.
import type { JobSubmit, Tolerance } from '../protocol/index.js';
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
}

export type { Tolerance };
