// The benchmark page (bench.html), driven by bench/cpu.ts through Playwright: runs the real compute
// worker with a chosen backend and thread count (one fresh worker each: ORT reads its thread count
// once per realm) and a plain JavaScript matmul as the no-WebAssembly baseline.
import * as Comlink from 'comlink';
import type { Backend } from '../worker/backend-choice';
import { measureGflops } from '../worker/measure';
import type { ComputeApi } from '../worker/api';

function worker(): { api: Comlink.Remote<ComputeApi>; close: () => void } {
  const w = new Worker(new URL('../worker/compute.worker.ts', import.meta.url), { type: 'module', name: 'tabgrid-bench' });
  return { api: Comlink.wrap<ComputeApi>(w), close: () => w.terminate() };
}

/** Row-major i-k-j loop in plain JavaScript (float32 storage, float64 arithmetic). */
async function jsMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Promise<Float32Array> {
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      const bo = p * n;
      const co = i * n;
      for (let j = 0; j < n; j++) c[co + j] += av * b[bo + j];
    }
  }
  return c;
}

const bench = {
  isolated: () => globalThis.crossOriginIsolated === true,

  async matmul(backend: Backend | 'js', threads: number, size: number, minMs: number): Promise<number | null> {
    if (backend === 'js') return measureGflops(jsMatmul, size, minMs);
    const { api, close } = worker();
    try {
      if (backend === 'webgpu' && !(await api.init()).ok) return null;
      await api.initCpu(threads);
      return await api.measure(backend, size, minMs);
    } finally {
      close();
    }
  },

  /** Items per second of a model over batches of `batch` on one EP (after a warm-up run). */
  async onnx(modelBytes: number[], input: { name: string; itemShape: number[] }, outputs: string[], backend: Backend, threads: number, batch: number, minMs: number) {
    const { api, close } = worker();
    try {
      if (backend === 'webgpu' && !(await api.init()).ok) return null;
      await api.initCpu(threads);
      await api.useBackend(backend);
      await api.onnxAddModel('bench', Uint8Array.from(modelBytes));
      const per = input.itemShape.reduce((a, b) => a * b, 1);
      const feed = () => [{ name: input.name, shape: [batch, ...input.itemShape], data: Float32Array.from({ length: batch * per }, (_, i) => Math.sin(i)) }];
      const first = await api.onnxRun('bench', feed(), outputs);
      let runs = 0;
      const t0 = performance.now();
      while (runs < 2 || performance.now() - t0 < minMs) {
        await api.onnxRun('bench', feed(), outputs);
        runs++;
      }
      return { itemsPerSecond: (batch * runs) / ((performance.now() - t0) / 1000), ep: first.ep };
    } finally {
      close();
    }
  },
};

(globalThis as unknown as { tabgridBench: typeof bench }).tabgridBench = bench;
export type Bench = typeof bench;
