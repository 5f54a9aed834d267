// The compute Web Worker: owns the GPUDevice and runs kernels, exposed to the page with comlink.
import * as Comlink from 'comlink';
import { gpuAttention } from '../gpu/attention';
import { tuneKernels, tuningKey, type TuningCache, type TuningResult } from '../gpu/autotune';
import { openGpu, type Gpu } from '../gpu/device';
import { gpuMatmul, MATMUL_CANDIDATES } from '../gpu/matmul';
import { openStore } from '../store/db';
import type { ComputeApi, InitResult, KernelJob } from './api';

let gpu: Gpu | null = null;
let lostReason: string | null = null;
let tuning: TuningResult | null = null;

const idbTuning: TuningCache = {
  get: async (key) => (await openStore()).get('tuning', key),
  put: async (key, value) => {
    await (await openStore()).put('tuning', { ...value, tunedAt: Date.now() }, key);
  },
};

type Runner<J extends KernelJob> = {
  /** Input names the kernel needs (WorkUnitSpec.inputs). */
  inputs: string[];
  run(device: GPUDevice, job: J, inputs: Record<string, Float32Array>): Promise<Float32Array>;
};

/** One runner per job kind: a new kind plugs in here. */
const runners: { [K in KernelJob['kind']]: Runner<Extract<KernelJob, { kind: K }>> } = {
  matmul: {
    inputs: ['a', 'b'],
    run: (device, { params }, { a, b }) => gpuMatmul(device, a, b, params, tuning?.config ?? MATMUL_CANDIDATES[0]),
  },
  attention: {
    inputs: ['q', 'k', 'v'],
    run: (device, { params: p }, { q, k, v }) => gpuAttention(device, q, k, v, { heads: 1, rows: p.rows, q0: p.q0, seq: p.seq, d: p.d, causal: p.causal }, tuning?.attention),
  },
};

const api: ComputeApi = {
  async init(): Promise<InitResult> {
    if (gpu && !lostReason) return { ok: true, device: gpu.info, tuning };
    try {
      lostReason = null;
      gpu = await openGpu((reason) => {
        lostReason = reason;
      });
      tuning = await tuneKernels(gpu.device, tuningKey(gpu.info.adapter, gpu.info.limits), idbTuning);
      return { ok: true, device: gpu.info, tuning };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  },

  async run(job, inputs) {
    if (!gpu || lostReason) throw new Error(lostReason ? `GPU device lost: ${lostReason}` : 'call init() first');
    const runner = Object.hasOwn(runners, job.kind) ? (runners[job.kind] as Runner<KernelJob>) : null;
    if (!runner) throw new Error(`this worker cannot run ${job.kind} units`);
    const missing = runner.inputs.filter((name) => !(inputs[name] instanceof Float32Array));
    if (missing.length) throw new Error(`${job.kind} unit is missing inputs: ${missing.join(', ')}`);
    const out = await runner.run(gpu.device, job, inputs);
    return Comlink.transfer(out, [out.buffer]);
  },
};

Comlink.expose(api);
