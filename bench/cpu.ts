// Benchmark of the compute backends in real headless Chromium (WebGPU on whatever adapter it has;
// SwiftShader on a machine without a GPU), served cross-origin isolated by a real coordinator:
//   matmul GFLOP/s — our CPU backend (onnxruntime-web wasm EP, MatMul graph built in code) with 1
//   and 2 threads, our WGSL kernel on WebGPU, a plain JavaScript loop as the baseline;
//   onnx items/s — the conv net and the MLP on the WebGPU EP vs the wasm EP.
// Every figure is of a checked output: each matmul's timed product against float64 on sampled
// elements (a wrong one gets no figure: `valid: false` and the error), each ONNX run's outputs
// against onnxruntime-node on the same input. Prints one JSON document. `npm run bench:cpu [-- --quick]`.
import { chromium } from '@playwright/test';
import * as ort from 'onnxruntime-node';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { inspectModel } from '../coordinator/jobs/onnx-model.js';
import { convNetModel, mlpModel } from '../coordinator/testing/test-models.js';
import { startTestCoordinator } from '../coordinator/testing/helpers.js';
import { ensureWebBuilt } from '../coordinator/http/web-build.js';
import type { Bench } from '../web/bench/main.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config.js';

const quick = process.argv.includes('--quick');
const ROOT = resolve(import.meta.dirname, '..');
ensureWebBuilt((m) => console.error(m));
const grid = await startTestCoordinator({ staticDir: resolve(ROOT, 'dist') });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, '--enable-unsafe-webgpu'] });
try {
  const page = await browser.newPage();
  await page.goto(`${grid.base}/bench.html`);
  await page.waitForFunction(() => 'tabgridBench' in globalThis);
  const call = <K extends keyof Bench>(name: K, ...args: Parameters<Bench[K]>) =>
    page.evaluate(
      ([n, a]) => (globalThis as unknown as { tabgridBench: Record<string, (...x: unknown[]) => unknown> }).tabgridBench[n as string](...(a as unknown[])),
      [name, args] as const,
    ) as Promise<Awaited<ReturnType<Bench[K]>>>;

  const minMs = quick ? 300 : 1500;
  const matmul: { backend: string; threads: number; size: number; gflops: number | null; valid: boolean; error?: string }[] = [];
  for (const size of quick ? [256, 512] : [256, 512, 1024]) {
    for (const [backend, threads] of [['cpu', 1], ['cpu', 2], ['js', 1], ['webgpu', 1]] as const) {
      if (backend === 'webgpu' && size > 512) continue; // ~6 s per 1024³ run on SwiftShader
      if (backend === 'js' && size > 512) continue;
      const r = await call('matmul', backend, threads, size, minMs);
      matmul.push({ backend: backend === 'cpu' ? 'cpu (ORT wasm, our MatMul graph)' : backend === 'js' ? 'js (plain loop)' : 'webgpu (our WGSL)', threads, size, ...r });
      console.error(`matmul ${backend} t=${threads} ${size}³: ${r.valid ? `${r.gflops?.toFixed(2)} GFLOP/s` : `INVALID: ${r.error}`}`);
    }
  }

  const models = [
    { name: 'convnet', bytes: convNetModel(), input: { name: 'image', itemShape: [1, 8, 8] } },
    { name: 'mlp', bytes: mlpModel(), input: { name: 'x', itemShape: [16] } },
  ];
  const onnx: { model: string; ep: string; threads: number; batch: number; itemsPerSecond: number | null; valid: boolean; maxError?: number }[] = [];
  for (const m of models) {
    const outputs = inspectModel(m.bytes).outputs.map((o) => o.name);
    const session = await ort.InferenceSession.create(m.bytes);
    for (const [backend, threads] of [['webgpu', 1], ['cpu', 1], ['cpu', 2]] as const) {
      const batch = 256;
      const r = await call('onnx', Array.from(m.bytes), m.input, outputs, backend, threads, batch, minMs);
      // The page's outputs for its first batch against onnxruntime-node's on the same input, within
      // the ONNX jobs' default tolerance (atol 1e-4, rtol 1e-3): a wrong EP gets no figure.
      let valid = false;
      let maxError: number | undefined;
      if (r) {
        const expected = await session.run({ [m.input.name]: new ort.Tensor('float32', Float32Array.from(r.input), [batch, ...m.input.itemShape]) });
        const want = outputs.flatMap((name) => Array.from(expected[name].data as Float32Array));
        const same = r.output.length === want.length;
        maxError = same ? Math.max(...want.map((w, i) => Math.abs(r.output[i] - w))) : Infinity;
        valid = same && want.every((w, i) => Math.abs(r.output[i] - w) <= 1e-4 + 1e-3 * Math.abs(w));
      }
      onnx.push({ model: m.name, ep: r?.ep ?? (backend === 'cpu' ? 'wasm' : 'webgpu'), threads, batch, itemsPerSecond: r && valid ? Math.round(r.itemsPerSecond) : null, valid, maxError });
      console.error(`onnx ${m.name} ${backend} t=${threads}: ${r && valid ? `${r.itemsPerSecond.toFixed(0)} items/s` : `INVALID (outputs off onnxruntime-node's by up to ${maxError})`}`);
    }
  }
  const chromiumVersion = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim();
  console.log(
    JSON.stringify(
      {
        bench: 'cpu-backend',
        date: new Date().toISOString(),
        browser: chromiumVersion,
        cores: (await import('node:os')).cpus().length,
        crossOriginIsolated: await call('isolated'),
        matmul,
        onnx,
      },
      null,
      2,
    ),
  );
} finally {
  await browser.close();
  await grid.stop();
  process.exit(0);
}
