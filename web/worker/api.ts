// The main-thread <-> compute-worker API, as one typed interface that comlink wraps.
import type { DeviceInfo, WorkUnitSpec } from '../../coordinator/protocol';
import type { Backend } from './backend-choice';

/** The matmul tiling this device settled on (see gpu/autotune.ts). */
export interface TuningInfo {
  summary: string;
  gflops: number;
  cached: boolean;
}

export type InitResult = { ok: true; device: DeviceInfo; tuning: TuningInfo | null } | { ok: false; reason: string };

/** What a kernel needs to know about a unit: its kind and that kind's parameters. */
export type KernelJob = { [K in WorkUnitSpec['kind']]: Pick<Extract<WorkUnitSpec, { kind: K }>, 'kind' | 'params'> }[WorkUnitSpec['kind']];

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
  /**
   * Opens the GPU and tunes the kernels (or loads the cached tuning); `tune: false` skips tuning
   * and runs the default tiling (`?tune=off`). Never throws: says why when there is no WebGPU.
   */
  init(tune?: boolean): Promise<InitResult>;
  /** Opens the GPU and takes the cached tuning if there is one, measuring nothing (the page's quick start). */
  open(): Promise<InitResult>;
  /** Tunes the kernels now, timing each candidate between units; null without WebGPU (call open() first). */
  tune(): Promise<TuningInfo | null>;
  /**
   * Runs one unit, dispatching on `job.kind` to the backend chosen with useBackend (WebGPU until
   * then); inputs are named as in WorkUnitSpec.inputs (matmul: a, b; attention: q, k, v; onnx: the
   * model's input names, the model added beforehand with onnxAddModel). The inputs are transferred,
   * the result is transferred back (onnx: the outputs flattened and concatenated in order).
   */
  run(job: KernelJob, inputs: Record<string, Float32Array>): Promise<Float32Array>;
  /** Sets up the CPU backend with this many threads (1 without cross-origin isolation). */
  initCpu(threads: number): Promise<CpuInfo>;
  /**
   * Makes a backend's matmul ready without taking a turn from units: the CPU loads ORT's plain wasm
   * build and its session, WebGPU compiles its pipelines. False when the backend is not available.
   */
  warm(backend: Backend): Promise<boolean>;
  /**
   * Resolves once a unit of this kind can start at once on the chosen backend: its runtime loaded
   * (ORT's plain wasm build for the CPU, the JSEP build for ONNX on WebGPU; none for WebGPU matmul),
   * its session made or pipelines compiled. Never throws (the unit reports any failure).
   */
  prepare(kind: KernelJob['kind']): Promise<void>;
  /**
   * GFLOP/s of a backend on a short size³ matmul (256 unless given), timed between units; null when
   * it is not available here.
   */
  measure(backend: Backend, size?: number, minMs?: number): Promise<number | null>;
  /** The backend of the units from now on, switched between units (a unit computing finishes where it began). */
  useBackend(backend: Backend): Promise<void>;
  /** The backend the last unit ran on (null before any). */
  lastUnitBackend(): Promise<Backend | null>;
  /** Whether the worker holds this model (by sha-256) already. */
  onnxHasModel(sha: string): Promise<boolean>;
  onnxAddModel(sha: string, bytes: Uint8Array): Promise<void>;
  /** Runs a held model outside any work unit (the CPU bench page), on the chosen backend's EP. */
  onnxRun(model: string, feeds: OnnxFeed[], outputs: string[]): Promise<OnnxResult>;
  /** Which EP the last ONNX run used, and why WebGPU fell back to wasm (null before any run). */
  onnxLastRun(): Promise<Omit<OnnxResult, 'data'> | null>;
}

/** Runs one unit. `shard` fetches an on-demand input (an ONNX model) as sha-256-checked raw bytes. */
export type Compute = (wu: WorkUnitSpec, inputs: Record<string, Float32Array>, shard: (sha: string) => Promise<Uint8Array>) => Promise<Float32Array>;
