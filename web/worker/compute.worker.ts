// The compute Web Worker: owns the GPUDevice and runs kernels, exposed to the page with comlink.
import * as Comlink from 'comlink';
import { openGpu, type Gpu } from '../gpu/device';
import { gpuMatmul } from '../gpu/matmul';
import type { ComputeApi, InitResult } from './api';

let gpu: Gpu | null = null;
let lostReason: string | null = null;

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
    if (!gpu || lostReason) throw new Error(lostReason ? `GPU device lost: ${lostReason}` : 'call init() first');
    const c = await gpuMatmul(gpu.device, a, b, m, k, n);
    return Comlink.transfer(c, [c.buffer]);
  },
};

Comlink.expose(api);
