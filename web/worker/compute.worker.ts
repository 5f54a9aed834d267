// The compute Web Worker: owns the GPUDevice and the CPU (onnxruntime-web wasm) backend and runs
// work units on the backend the page chose, exposed to the page with comlink.
import * as Comlink from 'comlink';
import type { Backend } from './backend-choice';
import { measureGflops } from './measure';
import { cpuAttention } from '../cpu/attention';
import { cpuMatmul } from '../cpu/matmul';
import { gpuAttention } from '../gpu/attention';
import { tuneKernels, tuningKey, type TuningCache, type TuningResult } from '../gpu/autotune';
import { openGpu, type Gpu } from '../gpu/device';
import { gpuMatmul, MATMUL_CANDIDATES } from '../gpu/matmul';
import { addModel, hasModel, runModel, type ModelRun } from '../onnx/models';
import { configureThreads } from '../onnx/runtime';
import { openStore } from '../store/db';
import type { ComputeApi, InitResult, KernelJob, OnnxFeed, OnnxResult } from './api';
import { runTrainUnit } from '../../coordinator/protocol/train-mlp';
import type { TrainParams } from '../../coordinator/protocol/jobs';

/** A train unit: H inner steps from the round's parameters on the slice; Δ (float32 or int8) and the two losses. */
function trainMlpUnit(p: TrainParams, params: Float32Array, x: Float32Array, y: Float32Array): Float32Array {
  const optimizer = { type: p.optimizer, lr: p.lr, weightDecay: p.weightDecay, beta1: p.beta1, beta2: p.beta2, eps: p.eps };
  return runTrainUnit({ layers: p.layers, steps: p.steps, batchSize: p.batchSize, seed: p.seed, optimizer }, p.compress, params, x, y);
}

let gpu: Gpu | null = null;
let lostReason: string | null = null;
let tuning: TuningResult | null = null;
let backend: Backend = 'webgpu';
let lastOnnx: Omit<OnnxResult, 'data'> | null = null;

const idbTuning: TuningCache = {
  get: async (key) => (await openStore()).get('tuning', key),
  put: async (key, value) => {
    await (await openStore()).put('tuning', { ...value, tunedAt: Date.now() }, key);
  },
};

function liveGpu(): Gpu {
  if (!gpu || lostReason) throw new Error(lostReason ? `GPU device lost: ${lostReason}` : 'call init() first');
  return gpu;
}

function tunedMatmul(device: GPUDevice) {
  return (a: Float32Array, b: Float32Array, m: number, k: number, n: number) => gpuMatmul(device, a, b, { m, k, n }, tuning?.config ?? MATMUL_CANDIDATES[0]);
}

/** Runs a held model on the chosen backend's EP (WebGPU falls back to wasm); outputs concatenated. */
async function onnxRunConcat(model: string, feeds: OnnxFeed[], outputs: string[]): Promise<OnnxResult> {
  const run: ModelRun = await runModel(model, feeds, outputs, backend === 'cpu' ? 'wasm' : 'webgpu');
  const data = new Float32Array(run.outputs.reduce((s, o) => s + o.length, 0));
  let at = 0;
  for (const o of run.outputs) {
    data.set(o, at);
    at += o.length;
  }
  lastOnnx = { ep: run.ep, fallbackReason: run.fallbackReason };
  return { data, ...lastOnnx };
}

type Runner<J extends KernelJob> = {
  /** Input names the unit needs (WorkUnitSpec.inputs). */
  inputs(job: J): string[];
  /** The unit on WebGPU (our WGSL kernels, or ORT's WebGPU EP for onnx). */
  webgpu(job: J, inputs: Record<string, Float32Array>): Promise<Float32Array>;
  /** The unit on the CPU backend (onnxruntime-web's wasm EP). */
  cpu(job: J, inputs: Record<string, Float32Array>): Promise<Float32Array>;
};

const onnxRunner = async ({ params: p }: Extract<KernelJob, { kind: 'onnx' }>, inputs: Record<string, Float32Array>) =>
  (await onnxRunConcat(p.model, p.inputs.map((s) => ({ name: s.name, shape: s.shape, data: inputs[s.name] })), p.outputs.map((o) => o.name))).data;

/** One runner per job kind, each with both backends: a new kind plugs in here. */
const runners: { [K in KernelJob['kind']]: Runner<Extract<KernelJob, { kind: K }>> } = {
  matmul: {
    inputs: () => ['a', 'b'],
    webgpu: ({ params: { m, k, n } }, { a, b }) => tunedMatmul(liveGpu().device)(a, b, m, k, n),
    cpu: ({ params: { m, k, n } }, { a, b }) => cpuMatmul(a, b, m, k, n),
  },
  attention: {
    inputs: () => ['q', 'k', 'v'],
    webgpu: ({ params: p }, { q, k, v }) =>
      gpuAttention(liveGpu().device, q, k, v, { heads: 1, rows: p.rows, q0: p.q0, seq: p.seq, d: p.d, causal: p.causal }, tuning?.attention),
    cpu: ({ params: p }, { q, k, v }) => cpuAttention(q, k, v, p),
  },
  // Training (the MLP's inner loop) runs as plain TypeScript float32 loops on either backend: the
  // same code as the coordinator's reference (protocol/train-mlp.ts). No WebGPU training kernels yet.
  train: {
    inputs: () => ['params', 'x', 'y'],
    webgpu: async ({ params: p }, { params, x, y }) => trainMlpUnit(p, params, x, y),
    cpu: async ({ params: p }, { params, x, y }) => trainMlpUnit(p, params, x, y),
  },
  onnx: {
    inputs: ({ params }) => params.inputs.map((s) => s.name),
    // ORT picks its own EP from the backend (onnxRunConcat): the same call either way.
    webgpu: onnxRunner,
    cpu: onnxRunner,
  },
};

const api: ComputeApi = {
  async init(tune = true): Promise<InitResult> {
    if (gpu && !lostReason) return { ok: true, device: gpu.info, tuning };
    try {
      lostReason = null;
      gpu = await openGpu((reason) => {
        lostReason = reason;
      });
      tuning = !tune ? null : await tuneKernels(gpu.device, tuningKey(gpu.info.adapter, gpu.info.limits), idbTuning);
      return { ok: true, device: gpu.info, tuning };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  },

  async run(job, inputs) {
    const runner = Object.hasOwn(runners, job.kind) ? (runners[job.kind] as Runner<KernelJob>) : null;
    if (!runner) throw new Error(`this worker cannot run ${job.kind} units`);
    const missing = runner.inputs(job).filter((name) => !(inputs[name] instanceof Float32Array));
    if (missing.length) throw new Error(`${job.kind} unit is missing inputs: ${missing.join(', ')}`);
    const out = await runner[backend](job, inputs);
    return Comlink.transfer(out, [out.buffer]);
  },

  async initCpu(threads) {
    return { threads: configureThreads(threads), isolated: globalThis.crossOriginIsolated === true };
  },

  async measure(which, size, minMs) {
    try {
      return await measureGflops(which === 'cpu' ? cpuMatmul : tunedMatmul(liveGpu().device), size, minMs);
    } catch {
      return null;
    }
  },

  async useBackend(which) {
    backend = which;
  },

  async onnxHasModel(sha) {
    return hasModel(sha);
  },

  async onnxAddModel(sha, bytes) {
    addModel(sha, bytes);
  },

  async onnxRun(model, feeds, outputs) {
    const result = await onnxRunConcat(model, feeds, outputs);
    return Comlink.transfer(result, [result.data.buffer]);
  },

  async onnxLastRun() {
    return lastOnnx;
  },
};

Comlink.expose(api);
