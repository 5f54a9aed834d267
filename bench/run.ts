// `npm run bench`: builds bench/page, serves it on loopback, opens it in headless Chromium with
// WebGPU, runs every contender on the same device, prints one JSON document and writes it to
// bench/results/. Sizes default to the full set on a hardware GPU and to a small set on a software
// adapter (SwiftShader); see README "Benchmarks" for the variables that change them. The whole
// benchmark runs BENCH_REPEAT times (default 2), each in a fresh page; the JSON's `stability`
// says how far each case's ratio moved between those invocations (the goal: within ±15%).
import { chromium } from '@playwright/test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'vite';
import type { BenchOptions } from './page/bench';
import { serve } from './serve';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'bench', '.dist');
const env = process.env;

/** Chromium flags: SwiftShader by default; BENCH_CHROMIUM_ARGS replaces the GPU-related ones. */
const BASE_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu'];
const gpuArgs = env.BENCH_CHROMIUM_ARGS?.split(/\s+/).filter(Boolean) ?? [];

function list(name: string): number[] | null {
  const v = env[name];
  return v ? v.split(',').map((x) => Number.parseInt(x, 10)) : null;
}

function shapes(name: string): [number, number, number][] | null {
  const v = env[name];
  return v ? v.split(',').map((s) => s.split('x').map((x) => Number.parseInt(x, 10)) as [number, number, number]) : null;
}

function options(software: boolean): BenchOptions {
  const full = env.BENCH_SIZES === 'full' || (env.BENCH_SIZES !== 'small' && !software);
  const squares = list('BENCH_MATMUL') ?? (full ? [512, 1024, 2048] : [256, 512, 1024]);
  const skinny = shapes('BENCH_SKINNY') ?? (full ? [[4096, 64, 4096]] : [[1024, 64, 1024]]);
  const seqs = list('BENCH_ATTENTION_SEQ') ?? (full ? [512, 1024, 2048] : [256, 512, 1024]);
  return {
    matmul: [...squares.map((s) => [s, s, s] as [number, number, number]), ...skinny],
    attention: seqs.map((seq) => ({ heads: Number(env.BENCH_HEADS ?? 8), seq, d: Number(env.BENCH_HEAD_DIM ?? 64) })),
    // Median of at least minRuns timed runs, more until the quartiles are within ±5% of it
    // (spread 0.1), at most maxRuns or budgetSeconds per contender and case.
    minRuns: Number(env.BENCH_MIN_RUNS ?? (full ? 10 : 5)),
    maxRuns: Number(env.BENCH_MAX_RUNS ?? (full ? 50 : 15)),
    budgetSeconds: Number(env.BENCH_BUDGET_SECONDS ?? (full ? 20 : 30)),
    targetSpread: Number(env.BENCH_TARGET_SPREAD ?? 0.1),
    warmup: Number(env.BENCH_WARMUP ?? (full ? 3 : 1)),
    skip: (env.BENCH_SKIP ?? '').split(',').filter(Boolean),
  };
}

async function main() {
  await build({
    configFile: false,
    root: join(ROOT, 'bench', 'page'),
    logLevel: 'warn',
    build: { outDir: OUT, emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 8192 },
  });
  const { url, close } = await serve(OUT);
  const args = [...BASE_ARGS, ...gpuArgs];
  const browser = await chromium.launch({ executablePath: env.BENCH_CHROMIUM ?? '/usr/bin/chromium', args });
  try {
    const repeat = Math.max(1, Number(env.BENCH_REPEAT ?? 2));
    const openPage = async () => {
      const page = await browser.newPage();
      page.on('console', (msg) => process.stderr.write(`[page] ${msg.text()}\n`));
      page.on('pageerror', (err) => process.stderr.write(`[page error] ${err.message}\n`));
      await page.goto(url);
      await page.waitForFunction(() => typeof window.runBench === 'function');
      return page;
    };
    const first = await openPage();
    const software = await first.evaluate(async () => {
      const adapter = await navigator.gpu?.requestAdapter();
      return !adapter || (adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
    });
    await first.close();
    const opts = options(software);
    process.stderr.write(`bench: ${JSON.stringify(opts)}, ${repeat} invocation(s)\n`);
    const t0 = Date.now();
    const results: Awaited<ReturnType<typeof window.runBench>>[] = [];
    for (let i = 0; i < repeat; i++) {
      const page = await openPage(); // a fresh page: a fresh device, tuning and sessions
      results.push(await page.evaluate((o) => window.runBench(o), opts));
      await page.close();
    }
    const [result, ...later] = results;
    const doc = {
      date: new Date().toISOString(),
      chromiumArgs: args,
      options: opts,
      seconds: (Date.now() - t0) / 1000,
      method: {
        timedRun: 'one run of a contender = its computation and the readback of its output to the CPU (the readback makes onnxruntime-web submit what it batches, so every time is complete)',
        statistic: `per contender and case: the median of ${opts.minRuns}–${opts.maxRuns} timed runs after ${opts.warmup} warm-up, more runs until (p75 − p25)/median ≤ ${opts.targetSpread} or ${opts.budgetSeconds} s; timing[] gives p25, p75, min, max, runs and spread`,
        validity: 'each contender’s output (ours included) is checked on a sampled subset against float64 (matmul: 256 elements within the rigorous float32 bound; attention: 8 rows within the coordinator’s tolerance); an invalid one is listed in invalid[] and left out of bestPeer and the ratio',
        ratio: 'ratioOursOverBestPeer = best valid peer’s median time ÷ ours; ratioRange = [peer p25 ÷ ours p75, peer p75 ÷ ours p25]',
      },
      stability: stability(results),
      ...result,
      repeats: later.map((r) => ({ tuning: r.tuning, matmul: r.matmul, attention: r.attention })),
    };
    const text = JSON.stringify(doc, null, 2);
    console.log(text);
    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    const file = join(ROOT, 'bench', 'results', `${doc.date.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, text + '\n');
    process.stderr.write(`bench: wrote ${file}\n`);
  } finally {
    await browser.close();
    close();
  }
}

/**
 * How much each case's ratio (ours ÷ best valid peer) moved between invocations: max ÷ min − 1.
 * `within15pct` is the claim the figures rest on; with one invocation nothing is claimed.
 */
function stability(results: Awaited<ReturnType<typeof window.runBench>>[]) {
  const cases = (['matmul', 'attention'] as const).flatMap((kind) =>
    results[0][kind].map((c, i) => {
      const ratios = results.map((r) => r[kind][i]?.ratioOursOverBestPeer ?? null);
      const known = ratios.filter((x): x is number => x !== null);
      const change = known.length === results.length && known.length > 1 ? +(Math.max(...known) / Math.min(...known) - 1).toFixed(3) : null;
      return { kind, shape: c.shape, bestPeers: results.map((r) => r[kind][i]?.bestPeer ?? null), ratios, change };
    }),
  );
  const changes = cases.map((c) => c.change);
  const measured = results.length > 1 && changes.every((c) => c !== null);
  return {
    invocations: results.length,
    cases,
    maxChange: measured ? Math.max(...(changes as number[])) : null,
    within15pct: measured ? (changes as number[]).every((c) => c <= 0.15) : null,
  };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
