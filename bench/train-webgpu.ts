// `npm run bench:train-webgpu`: the transformer's training step graph on onnxruntime-web's webgpu EP
// in headless Chromium — state held on the GPU between steps vs plain CPU tensors — against the wasm
// EP and the TS loop (bench/train-webgpu-page/main.ts); prints JSON and writes it to bench/results/.
// On SwiftShader (the default here: a CPU emulating a GPU) the webgpu figures say nothing of a GPU's
// speed; BENCH_CHROMIUM_ARGS adds flags for a hardware adapter. BENCH_TRAIN_RUNS: timed units per
// contender after the first (default 3).
import { chromium } from '@playwright/test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'vite';
import type { TrainBenchCase } from './train-webgpu-page/main';
import { serve } from './serve';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'bench', '.dist', 'train-webgpu');
const env = process.env;
const ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu', ...(env.BENCH_CHROMIUM_ARGS?.split(/\s+/).filter(Boolean) ?? [])];

/** The e2e test's unit; a mid-sized one; on a hardware adapter also bench:train-onnx's LM unit. */
const tiny: TrainBenchCase = { vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2, batch: 8, steps: 8 };
const mid: TrainBenchCase = { vocab: 65, context: 64, layers: 2, dModel: 32, heads: 4, batch: 8, steps: 8 };
const lm: TrainBenchCase = { vocab: 65, context: 128, layers: 2, dModel: 64, heads: 4, batch: 8, steps: 8 };

await build({ configFile: false, root: join(ROOT, 'bench', 'train-webgpu-page'), logLevel: 'warn', build: { outDir: OUT, emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 8192 } });
const { url, close } = await serve(OUT);
const browser = await chromium.launch({ executablePath: env.BENCH_CHROMIUM ?? '/usr/bin/chromium', args: ARGS });
try {
  const page = await browser.newPage();
  page.on('pageerror', (err) => process.stderr.write(`[page error] ${err.message}\n`));
  await page.goto(url);
  await page.waitForFunction(() => typeof window.runTrainBench === 'function');
  const software = await page.evaluate(async () => (await navigator.gpu?.requestAdapter())?.info.isFallbackAdapter !== false);
  const cases = software ? [tiny, mid] : [tiny, mid, lm];
  const result = await page.evaluate((o) => window.runTrainBench(o), { cases, runs: Number(env.BENCH_TRAIN_RUNS ?? 3) });
  const doc = {
    date: new Date().toISOString(),
    chromiumArgs: ARGS,
    note: software ? 'SwiftShader: a CPU emulating a GPU; the webgpu EP figures are not a GPU speed' : 'hardware adapter',
    method: 'per contender: session creation, the first unit (shader compilation on the webgpu EP), then the median of the timed units; a unit = H AdamW steps + the check loss + Δ; deltaVsTsLoop = relative L2 of Δ against the TS loop’s',
    ...result,
  };
  const text = JSON.stringify(doc, null, 2);
  console.log(text);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const file = join(ROOT, 'bench', 'results', `train-webgpu-${software ? 'swiftshader-' : ''}${doc.date.slice(0, 10)}.json`);
  writeFileSync(file, text + '\n');
  process.stderr.write(`bench: wrote ${file}\n`);
} finally {
  await browser.close();
  close();
}
process.exit(0);
