// Kernel harness page: the compute worker the volunteer page uses, exposed on window so the e2e
// kernel tests (and a developer in the console) can run kernels against CPU references; plus a
// main-thread "lab" that runs the matmul with any candidate tiling, not just the tuned one.
import * as Comlink from 'comlink';
import { ATTENTION_VARIANTS, gpuAttention, type AttentionDims, type AttentionVariant } from '../gpu/attention';
import { poolFor } from '../gpu/buffer-pool';
import { openGpu } from '../gpu/device';
import { gpuMatmul, matmulCandidates, type MatmulConfig, type MatmulDims } from '../gpu/matmul';
import { cachedPipelineCount } from '../gpu/pipelines';
import type { ComputeApi } from '../worker/api';

const lab = (async () => {
  const { device } = await openGpu();
  return {
    candidates: matmulCandidates(device),
    matmul: (a: number[], b: number[], dims: MatmulDims, config: MatmulConfig) =>
      gpuMatmul(device, Float32Array.from(a), Float32Array.from(b), dims, config).then((c) => Array.from(c)),
    attentionVariants: ATTENTION_VARIANTS,
    attention: (q: number[], k: number[], v: number[], dims: AttentionDims, variant: AttentionVariant) =>
      gpuAttention(device, Float32Array.from(q), Float32Array.from(k), Float32Array.from(v), dims, variant).then((o) => Array.from(o)),
    /** Buffers created and pipelines compiled so far on the lab's device. */
    stats: () => ({ buffers: poolFor(device).created, pipelines: cachedPipelineCount(device) }),
  };
})();

declare global {
  interface Window {
    tabgridCompute: Comlink.Remote<ComputeApi>;
    tabgridReady: Promise<Awaited<ReturnType<ComputeApi['init']>>>;
    tabgridLab: typeof lab;
  }
}

const worker = new Worker(new URL('../worker/compute.worker.ts', import.meta.url), { type: 'module', name: 'tabgrid-compute' });
window.tabgridCompute = Comlink.wrap<ComputeApi>(worker);
window.tabgridReady = window.tabgridCompute.init();
window.tabgridLab = lab;
void window.tabgridReady.then((r) => {
  document.getElementById('status')!.textContent = JSON.stringify(r, null, 2);
});
