// The compute Web Worker: owns the GPUDevice and the CPU (onnxruntime-web wasm) backend and runs
// work units on the backend the page chose, exposed to the page with comlink. Units, timed
// measurements and the autotuner's timed candidates take turns (gate.ts); loading a runtime and
// compiling pipelines run alongside, so neither blocks a unit that does not need it.
import * as Comlink from 'comlink';
import type { Backend } from './backend-choice';
import { Gate } from './gate';
import { measureGflops } from './measure';
import { cpuAttention, prepareCpuAttention } from '../cpu/attention';
import { cpuMatmul, prepareCpuMatmul } from '../cpu/matmul';
import { cpuTrainStats, cpuTrainUnit } from '../cpu/train';
import { gpuAttention } from '../gpu/attention';
import { cachedTuning, tuneKernels, tuningKey, type TuningCache, type TuningResult } from '../gpu/autotune';
import { openGpu, type Gpu } from '../gpu/device';
import { gpuMatmul, MATMUL_CANDIDATES, matmulKernel } from '../gpu/matmul';
import { preparePipelines } from '../gpu/pipelines';
import { addModel, hasModel, runModel, type ModelRun } from '../onnx/models';
import { graphUnitSpecOf } from '../onnx/train-step';
import { webgpuTrainStats, webgpuTrainUnit } from '../onnx/webgpu-train';
import { configureThreads, loadOrt } from '../onnx/runtime';
import { openStore } from '../store/db';
import type { ComputeApi, InitResult, KernelJob, OnnxFeed, OnnxResult } from './api';
import { innerSpecOf } from '../../coordinator/protocol/train-loop';
import { gpuTrainStats, gpuTrainUnit } from '../gpu/train-mlp';

let gpu: Gpu | null = null;
let lostReason: string | null = null;
let tuning: TuningResult | null = null;
let backend: Backend = 'webgpu';
let lastOnnx: Omit<OnnxResult, 'data'> | null = null;
let lastUnitBackend: Backend | null = null;
const gate = new Gate();
let tuningRun: Promise<TuningResult> | null = null;
/**
 * Units this worker has computed, by the backend that computed them (an ONNX unit counts where
 * its EP ran it, a transformer unit the webgpu EP left to the CPU's trainer on the CPU): what a
 * test, or a developer in the worker's console, reads to know which backend really did the work,
 * not which one the page's label names.
 */
const computed: Record<Backend, number> = { webgpu: 0, cpu: 0 };
/** Set by a WebGPU runner that handed the unit in hand to the CPU backend's code. */
let unitLeftToCpu = false;
(globalThis as { tabgridComputed?: Record<Backend, number> }).tabgridComputed = computed;
/** Train units the WGSL loop ran (web/gpu/train-mlp.ts): a test reads it to know the GPU really trained. */
(globalThis as { tabgridGpuTrain?: typeof gpuTrainStats }).tabgridGpuTrain = gpuTrainStats;
/** CPU train units by trainer (the ONNX step graph or the TS loop): likewise for the CPU backend. */
(globalThis as { tabgridCpuTrain?: typeof cpuTrainStats }).tabgridCpuTrain = cpuTrainStats;
/** Transformer units the webgpu EP trained, those it left to the CPU's trainer and why, and any graph node ORT ran on the CPU. */
(globalThis as { tabgridWebgpuTrain?: typeof webgpuTrainStats }).tabgridWebgpuTrain = webgpuTrainStats;

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

const tuningInfo = (t: TuningResult | null) => (t ? { summary: t.summary, gflops: t.gflops, cached: t.cached } : null);

/** What a backend's first matmul needs, made ready without running a unit: the CPU's ORT build and session, WebGPU's pipelines. */
async function warmUp(which: Backend) {
  if (which === 'cpu') {
    await prepareCpuMatmul();
    return;
  }
  const { device } = liveGpu();
  const config = tuning?.config ?? MATMUL_CANDIDATES[0];
  // Both kernel variants (vec4 when k and n are multiples of 4, scalar otherwise), compiled off the worker's thread.
  await preparePipelines(device, [matmulKernel({ m: 4, k: 4, n: 4 }, config), matmulKernel({ m: 1, k: 1, n: 1 }, config)]);
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
  // Training: on the CPU backend, either family's inner step as one ONNX graph on the wasm EP
  // (web/cpu/train.ts); on WebGPU, the MLP's inner loop as WGSL kernels (web/gpu/train-mlp.ts) and
  // the transformer's step graph on ORT's webgpu EP (web/onnx/webgpu-train.ts), falling back to the
  // CPU backend's trainer when that EP cannot run it.
  train: {
    inputs: ({ params }) => ('model' in params ? ['params', 'x'] : ['params', 'x', 'y']),
    webgpu: ({ params: p }, { params, x, y }) => {
      if (!('model' in p)) return gpuTrainUnit(liveGpu().device, { ...innerSpecOf(p), layers: p.layers }, p.compress, params, x, y);
      const spec = graphUnitSpecOf(p);
      return webgpuTrainUnit(spec, p.compress, params, x, y ?? null, () => {
        unitLeftToCpu = true;
        return cpuTrainUnit(spec, p.compress, params, x, y ?? null);
      });
    },
    cpu: ({ params: p }, { params, x, y }) => cpuTrainUnit(graphUnitSpecOf(p), p.compress, params, x, y ?? null),
  },
  onnx: {
    inputs: ({ params }) => params.inputs.map((s) => s.name),
    // ORT picks its own EP from the backend (onnxRunConcat): the same call either way.
    webgpu: onnxRunner,
    cpu: onnxRunner,
  },
};

async function openDevice(): Promise<InitResult> {
  if (gpu && !lostReason) return { ok: true, device: gpu.info, tuning: tuningInfo(tuning) };
  try {
    lostReason = null;
    tuning = null;
    tuningRun = null;
    gpu = await openGpu((reason) => {
      lostReason = reason;
    });
    tuning = await cachedTuning(gpu.device, tuningKey(gpu.info.adapter, gpu.info.limits), idbTuning);
    return { ok: true, device: gpu.info, tuning: tuningInfo(tuning) };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

/** Tunes the kernels once per device (the cached choice when there is one), timing each candidate between units. */
function tuneOnce(): Promise<TuningResult> {
  const { device, info } = liveGpu();
  tuningRun ??= tuneKernels(device, tuningKey(info.adapter, info.limits), idbTuning, (fn) => gate.step(fn));
  tuningRun.catch(() => (tuningRun = null));
  return tuningRun.then((t) => (tuning = t));
}

const api: ComputeApi = {
  async init(tune = true): Promise<InitResult> {
    const opened = await openDevice();
    if (!opened.ok || !tune) return opened;
    try {
      return { ...opened, tuning: tuningInfo(await tuneOnce()) };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  },

  open: openDevice,

  async tune() {
    try {
      return tuningInfo(await tuneOnce());
    } catch {
      return null;
    }
  },

  async run(job, inputs) {
    const runner = Object.hasOwn(runners, job.kind) ? (runners[job.kind] as Runner<KernelJob>) : null;
    if (!runner) throw new Error(`this worker cannot run ${job.kind} units`);
    const missing = runner.inputs(job).filter((name) => !(inputs[name] instanceof Float32Array));
    if (missing.length) throw new Error(`${job.kind} unit is missing inputs: ${missing.join(', ')}`);
    let ran: Backend = backend;
    const out = await gate.unit(() => {
      ran = lastUnitBackend = backend;
      unitLeftToCpu = false;
      return runner[ran](job, inputs);
    });
    computed[job.kind === 'onnx' ? (lastOnnx?.ep === 'wasm' ? 'cpu' : 'webgpu') : unitLeftToCpu ? 'cpu' : ran]++;
    return Comlink.transfer(out, [out.buffer]);
  },

  async initCpu(threads) {
    return { threads: configureThreads(threads), isolated: globalThis.crossOriginIsolated === true };
  },

  async warm(which) {
    try {
      await warmUp(which);
      return true;
    } catch {
      return false;
    }
  },

  async prepare(kind) {
    try {
      if (kind === 'matmul') await warmUp(backend);
      else if (kind === 'attention' && backend === 'cpu') await prepareCpuAttention();
      else if (kind === 'onnx') await loadOrt(backend === 'cpu' ? 'wasm' : 'webgpu');
    } catch {
      // the unit itself says what is wrong
    }
  },

  async measure(which, size, minMs) {
    try {
      const run = which === 'cpu' ? cpuMatmul : tunedMatmul(liveGpu().device);
      await warmUp(which); // loading and compiling take no turn
      return await gate.step(() => measureGflops(run, size, minMs));
    } catch {
      return null;
    }
  },

  async useBackend(which) {
    await gate.step(async () => {
      backend = which; // between units: the one computing finishes where it began
    });
  },

  async lastUnitBackend() {
    return lastUnitBackend;
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
