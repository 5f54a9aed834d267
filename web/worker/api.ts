// The main-thread <-> compute-worker API, as one typed interface that comlink wraps.
import type { DeviceInfo } from '../../coordinator/protocol';
import type { Backend } from '../compute/backend-choice';

export type InitResult = { ok: true; device: DeviceInfo } | { ok: false; reason: string };

/** The CPU (WebAssembly) backend: how many threads it got, and whether the page is isolated. */
export interface CpuInfo {
  threads: number;
  isolated: boolean;
}

export interface OnnxFeed {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface OnnxResult {
  /** The requested outputs' values, flattened and concatenated in order. */
  data: Float32Array;
  ep: 'webgpu' | 'wasm';
  fallbackReason?: string;
}

export interface ComputeApi {
  /** Opens the GPU. Never throws: says why when there is no WebGPU. */
  init(): Promise<InitResult>;
  /** C = A·B on the backend chosen with useBackend (WebGPU until then); inputs and result are transferred. */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Promise<Float32Array>;
  /** Sets up the CPU backend with this many threads (1 without cross-origin isolation). */
  initCpu(threads: number): Promise<CpuInfo>;
  /** GFLOP/s of a backend on a short size³ matmul (256 unless given); null when it is not available here. */
  measure(backend: Backend, size?: number, minMs?: number): Promise<number | null>;
  useBackend(backend: Backend): Promise<void>;
  /** Whether the worker holds this model (by sha-256) already. */
  onnxHasModel(sha: string): Promise<boolean>;
  onnxAddModel(sha: string, bytes: Uint8Array): Promise<void>;
  /** Runs a held model on the chosen backend's EP (WebGPU falls back to wasm). */
  onnxRun(model: string, feeds: OnnxFeed[], outputs: string[]): Promise<OnnxResult>;
}
