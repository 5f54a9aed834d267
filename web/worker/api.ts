// The main-thread <-> compute-worker API, as one typed interface that comlink wraps.
import type { DeviceInfo } from '../../coordinator/protocol';

export type InitResult = { ok: true; device: DeviceInfo } | { ok: false; reason: string };

export interface ComputeApi {
  /** Opens the GPU. Never throws: says why when there is no WebGPU. */
  init(): Promise<InitResult>;
  /** C = A·B; the inputs are transferred, the result is transferred back. */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Promise<Float32Array>;
}
