// The compute Web Worker: owns the GPUDevice and runs kernels, exposed to the page with comlink.
import * as Comlink from 'comlink';
import type { Backend } from '../compute/backend-choice';
import { measureGflops } from '../compute/measure';
import { cpuMatmul } from '../cpu/matmul';
import { openGpu, type Gpu } from '../gpu/device';
import { gpuMatmul } from '../gpu/matmul';
import { addModel, hasModel, runModel } from '../onnx/models';
import { configureThreads } from '../onnx/runtime';
import type { ComputeApi, InitResult } from './api';

let gpu: Gpu | null = null;
let lostReason: string | null = null;
let backend: Backend = 'webgpu';

function liveGpu(): Gpu {
  if (!gpu || lostReason) throw new Error(lostReason ? `GPU device lost: ${lostReason}` : 'call init() first');
  return gpu;
}

const api: ComputeApi = {
  async init(): Promise<InitResult> {
    if (gpu && !lostReason) return { ok: true, device: gpu.info };
    try {
      lostReason = null;
      gpu = await openGpu((reason) => {
        lostReason = reason;
      });
      return { ok: true, device: gpu.info };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  },

  async matmul(a, b, m, k, n) {
    const c = backend === 'cpu' ? await cpuMatmul(a, b, m, k, n) : await gpuMatmul(liveGpu().device, a, b, m, k, n);
    return Comlink.transfer(c, [c.buffer]);
  },

  async initCpu(threads) {
    return { threads: configureThreads(threads), isolated: globalThis.crossOriginIsolated === true };
  },

  async measure(which, size, minMs) {
    try {
      if (which === 'cpu') return await measureGflops(cpuMatmul, size, minMs);
      const device = liveGpu().device;
      return await measureGflops((a, b, m, k, n) => gpuMatmul(device, a, b, m, k, n), size, minMs);
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
    const run = await runModel(model, feeds, outputs, backend === 'cpu' ? 'wasm' : 'webgpu');
    const data = new Float32Array(run.outputs.reduce((s, o) => s + o.length, 0));
    let at = 0;
    for (const o of run.outputs) {
      data.set(o, at);
      at += o.length;
    }
    return Comlink.transfer({ data, ep: run.ep, fallbackReason: run.fallbackReason }, [data.buffer]);
  },
};

Comlink.expose(api);
