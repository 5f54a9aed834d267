// The main-thread <-> compute-worker API, as one typed interface that comlink wraps.
import type { DeviceInfo, WorkUnitSpec } from '../../coordinator/protocol';

/** The matmul tiling this device settled on (see gpu/autotune.ts). */
export interface TuningInfo {
  summary: string;
  gflops: number;
  cached: boolean;
}

export type InitResult = { ok: true; device: DeviceInfo; tuning: TuningInfo | null } | { ok: false; reason: string };

/** What a kernel needs to know about a unit: its kind and that kind's parameters. */
export type KernelJob = { [K in WorkUnitSpec['kind']]: Pick<Extract<WorkUnitSpec, { kind: K }>, 'kind' | 'params'> }[WorkUnitSpec['kind']];

export interface ComputeApi {
  /** Opens the GPU and tunes the kernels (or loads the cached tuning). Never throws: says why when there is no WebGPU. */
  init(): Promise<InitResult>;
  /**
   * Runs one unit's kernel, dispatching on `job.kind`; inputs are named as in WorkUnitSpec.inputs
   * (matmul: a, b; attention: q, k, v). The inputs are transferred, the result is transferred back.
   */
  run(job: KernelJob, inputs: Record<string, Float32Array>): Promise<Float32Array>;
}
