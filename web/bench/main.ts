// The benchmark page (bench.html), driven by bench/cpu.ts through Playwright: runs the real compute
// worker with a chosen backend and thread count (one fresh worker each: ORT reads its thread count
// once per realm) and a plain JavaScript matmul as the no-WebAssembly baseline. Every figure comes
// with a check of the output it timed: a matmul is checked against float64 (measureGflops refuses a
// wrong product), an ONNX run's outputs are handed back for bench/cpu.ts to compare.
import * as Comlink from 'comlink';
import type { Backend } from '../worker/backend-choice';
import { measureGflops, type MatmulFn } from '../worker/measure';
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

  /**
   * GFLOP/s of one backend, `valid` once its timed product passed the float64 check; null GFLOP/s
   * with `error` when it could not run or computed a wrong product (never a figure for it).
   */
  async matmul(backend: Backend | 'js', threads: number, size: number, minMs: number): Promise<{ gflops: number | null; valid: boolean; error?: string }> {
    const measured = async (run: MatmulFn) => {
      try {
        return { gflops: await measureGflops(run, size, minMs), valid: true };
      } catch (err) {
        return { gflops: null, valid: false, error: (err as Error).message.slice(0, 300) };
      }
    };
    if (backend === 'js') return measured(jsMatmul);
    const { api, close } = worker();
    try {
      if (backend === 'webgpu' && !(await api.init()).ok) return { gflops: null, valid: false, error: 'no WebGPU' };
      await api.initCpu(threads);
      await api.useBackend(backend);
      // The worker's own unit path, measured here so its output is checked (measureGflops throws on a wrong product).
      return await measured((a, b, m, k, n) => api.run({ kind: 'matmul', params: { m, k, n } }, { a: a.slice(), b: b.slice() }));
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
      const firstFeed = feed();
      const first = await api.onnxRun('bench', firstFeed, outputs);
      let runs = 0;
      const t0 = performance.now();
      while (runs < 2 || performance.now() - t0 < minMs) {
        await api.onnxRun('bench', feed(), outputs);
        runs++;
      }
      // The first run's input and outputs, for bench/cpu.ts to check against onnxruntime-node.
      return { itemsPerSecond: (batch * runs) / ((performance.now() - t0) / 1000), ep: first.ep, input: Array.from(firstFeed[0].data), output: Array.from(first.data) };
    } finally {
      close();
    }
  },
};

(globalThis as unknown as { tabgridBench: typeof bench }).tabgridBench = bench;
export type Bench = typeof bench;
