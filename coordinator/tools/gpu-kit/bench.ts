// The GPU kit's benchmark (`run.sh`, or `npm run bench:native`): web/gpu's kernels on this machine's
// GPU through Dawn — every matmul candidate the autotuner knows and both attention variants, on the
// issue's sizes — with the autotuner's own pick, % of the card's fp32 peak, and PyTorch's fp32 matmul
// (TF32 off) and SDPA on the same shapes as the native ceiling. Prints one JSON document.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { matmulReference } from '../../jobs/matmul';
import { ATTENTION_VARIANTS, attentionParamsWords, encodeAttention, type AttentionDims, type AttentionVariant } from '../../../web/gpu/attention';
import { tuneKernels } from '../../../web/gpu/autotune';
import { openGpu, type Gpu } from '../../../web/gpu/device';
import { describeConfig, encodeMatmul, matmulCandidates, matmulDimsWords, type MatmulConfig } from '../../../web/gpu/matmul';
import { maxRelativeError } from '../../testing/relative-error';
import { installWebGpu } from '../native-volunteer/webgpu';
import { peakFor } from './peaks';

export interface BenchPlan {
  mode: 'full' | 'quick';
  matmul: number[];
  attention: { heads: number; seq: number; d: number }[];
  /** Timed runs per case (median), each long enough to time (several dispatches per submit). */
  runs: number;
  /** Seconds one timed run should last at least. */
  runSeconds: number;
  peakTflops: number | null;
  torch: boolean;
}

export const FULL: Omit<BenchPlan, 'peakTflops' | 'torch'> = {
  mode: 'full',
  matmul: [1024, 2048, 4096],
  attention: [1024, 2048].map((seq) => ({ heads: 8, seq, d: 64 })),
  runs: 5,
  runSeconds: 0.05,
};

/** Sizes a software adapter (SwiftShader) finishes in a few minutes. */
export const QUICK: Omit<BenchPlan, 'peakTflops' | 'torch'> = {
  mode: 'quick',
  matmul: [256, 512],
  attention: [256, 512].map((seq) => ({ heads: 2, seq, d: 64 })),
  runs: 3,
  runSeconds: 0,
};

interface Timing {
  ms: number;
  gflops: number;
  percentOfPeak: number | null;
}

function randomData(count: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

const round = (x: number, digits = 3) => +x.toFixed(digits);

class Bench {
  private readonly buffers: GPUBuffer[] = [];

  constructor(
    readonly device: GPUDevice,
    private readonly plan: BenchPlan,
  ) {}

  buffer(data: Float32Array | number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST): GPUBuffer {
    const bytes = typeof data === 'number' ? data : data.byteLength;
    const buffer = this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage });
    if (typeof data !== 'number') this.device.queue.writeBuffer(buffer, 0, data as Float32Array<ArrayBuffer>);
    this.buffers.push(buffer);
    return buffer;
  }

  uniform(words: Uint32Array<ArrayBuffer>): GPUBuffer {
    const buffer = this.device.createBuffer({ size: Math.max(16, words.byteLength), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.device.queue.writeBuffer(buffer, 0, words);
    this.buffers.push(buffer);
    return buffer;
  }

  async read(source: GPUBuffer, bytes: number): Promise<Float32Array> {
    const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(source, 0, staging, 0, bytes);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.destroy();
    return out;
  }

  freeAll() {
    for (const b of this.buffers.splice(0)) b.destroy();
  }

  /**
   * Seconds per dispatch of what `encode` records: a warm-up, then `runs` timed submissions of
   * `reps` dispatches each (as many as make a submission last runSeconds, so the submit-and-wait
   * overhead does not count on a fast GPU); the median.
   */
  async time(encode: (enc: GPUCommandEncoder) => void, flops: number): Promise<Timing> {
    const once = async (reps: number) => {
      const enc = this.device.createCommandEncoder();
      for (let i = 0; i < reps; i++) encode(enc);
      const t0 = performance.now();
      this.device.queue.submit([enc.finish()]);
      await this.device.queue.onSubmittedWorkDone();
      return (performance.now() - t0) / 1000;
    };
    await once(1);
    const first = await once(1);
    const reps = Math.max(1, Math.min(200, Math.ceil(this.plan.runSeconds / Math.max(first, 1e-6))));
    const times: number[] = [];
    for (let i = 0; i < this.plan.runs; i++) times.push((await once(reps)) / reps);
    times.sort((a, b) => a - b);
    const seconds = times[Math.floor(times.length / 2)];
    const gflops = flops / seconds / 1e9;
    return { ms: round(seconds * 1000, 4), gflops: round(gflops), percentOfPeak: this.plan.peakTflops ? round((100 * gflops) / (this.plan.peakTflops * 1000), 2) : null };
  }
}

export interface CandidateResult extends Timing {
  name: string;
  /** Normwise relative difference from the first candidate's output (the smallest size: from the CPU reference). */
  diff: number | null;
  error?: string;
}

export interface TorchResult {
  available: boolean;
  reason?: string;
  version?: string;
  device?: string;
  cuda?: boolean;
  tf32?: boolean;
  matmul?: { size: number; ms: number; gflops: number }[];
  attention?: { heads: number; seq: number; d: number; ms: number; gflops: number }[];
}

function runTorch(plan: BenchPlan, script: string, log: (msg: string) => void): TorchResult {
  if (!existsSync(script)) return { available: false, reason: `${script} is missing` };
  log('PyTorch: fp32 matmul (TF32 off) and SDPA on the same shapes…');
  const r = spawnSync('python3', [script, JSON.stringify({ matmul: plan.matmul, attention: plan.attention, runs: plan.runs })], { encoding: 'utf8', timeout: 300_000 });
  if (r.error) return { available: false, reason: `python3: ${r.error.message}` };
  try {
    return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as TorchResult;
  } catch {
    return { available: false, reason: `python3 exited ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ').slice(0, 400)}` };
  }
}

function adapterReport(gpu: Gpu) {
  return {
    name: gpu.info.adapter,
    isFallbackAdapter: gpu.info.isFallbackAdapter ?? false,
    features: gpu.info.features,
    limits: gpu.info.limits,
  };
}

export async function runBench(plan: BenchPlan, opts: { log?: (msg: string) => void; torchScript?: string } = {}) {
  const log = opts.log ?? ((msg: string) => process.stderr.write(`[bench] ${msg}\n`));
  const t0 = performance.now();
  await installWebGpu();
  let finished = false;
  const gpu = await openGpu((reason) => finished || log(`GPU device lost: ${reason}`));
  const { device } = gpu;
  device.addEventListener('uncapturederror', (ev) => log(`GPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`));
  const tablePeak = peakFor(gpu.info.adapter);
  if (plan.peakTflops === null && tablePeak) plan.peakTflops = tablePeak.tflops;
  log(`adapter: ${gpu.info.adapter}${gpu.info.isFallbackAdapter ? ' (software)' : ''}; fp32 peak ${plan.peakTflops ?? 'unknown'} TFLOP/s`);
  const bench = new Bench(device, plan);

  // The autotuner exactly as a volunteer runs it on its first start (no cache).
  const tuneStart = performance.now();
  const tuning = await tuneKernels(device, 'bench', { get: async () => undefined, put: async () => undefined });
  log(`autotuner: ${tuning.summary} (${((performance.now() - tuneStart) / 1000).toFixed(1)} s)`);
  const pickName = describeConfig(tuning.config);

  const candidates = matmulCandidates(device);
  const matmul = [];
  for (const [index, size] of plan.matmul.entries()) {
    const A = randomData(size * size, 1);
    const B = randomData(size * size, 2);
    const dims = { m: size, k: size, n: size };
    const a = bench.buffer(A);
    const b = bench.buffer(B);
    const c = bench.buffer(size * size * 4);
    const dimsBuf = bench.uniform(matmulDimsWords(dims));
    const flops = 2 * size ** 3;
    // The smallest size is checked against the CPU reference; larger ones against the first candidate.
    const reference = index === 0 ? matmulReference(A, B, size, size, size) : null;
    let first: Float32Array | null = null;
    const results: CandidateResult[] = [];
    for (const config of candidates) {
      const name = describeConfig(config);
      try {
        const t = await bench.time((enc) => encodeMatmul(device, enc, { a, b, c, dims: dimsBuf }, dims, config), flops);
        const out = await bench.read(c, size * size * 4);
        const diff = reference ? maxRelativeError(out, reference) : first ? maxRelativeError(out, first) : 0;
        first ??= out;
        results.push({ name, config, ...t, diff: +diff.toExponential(2) } as CandidateResult & { config: MatmulConfig });
        log(`matmul ${size}: ${name}: ${t.gflops} GFLOP/s`);
      } catch (err) {
        results.push({ name, ms: 0, gflops: 0, percentOfPeak: null, diff: null, error: (err as Error).message.slice(0, 300) });
      }
    }
    bench.freeAll();
    const pick = results.find((r) => r.name === pickName) ?? null;
    const best = [...results].sort((x, y) => y.gflops - x.gflops)[0];
    matmul.push({ size, flops, candidates: results, pick: pick && { name: pick.name, gflops: pick.gflops, percentOfPeak: pick.percentOfPeak }, best: { name: best.name, gflops: best.gflops, percentOfPeak: best.percentOfPeak } });
  }

  const attention = [];
  for (const [index, shape] of plan.attention.entries()) {
    const { heads, seq, d } = shape;
    const count = heads * seq * d;
    const Q = randomData(count, 11);
    const K = randomData(count, 12);
    const V = randomData(count, 13);
    const dims: AttentionDims = { heads, rows: seq, q0: 0, seq, d, causal: false };
    const bufs = { q: bench.buffer(Q), k: bench.buffer(K), v: bench.buffer(V), out: bench.buffer(count * 4), params: bench.uniform(attentionParamsWords(dims)) };
    const flops = 4 * heads * seq * seq * d;
    let first: Float32Array | null = null;
    const results: (CandidateResult & { variant: AttentionVariant })[] = [];
    for (const variant of ATTENTION_VARIANTS) {
      try {
        const t = await bench.time((enc) => encodeAttention(device, enc, bufs, dims, variant), flops);
        const out = await bench.read(bufs.out, count * 4);
        const diff = first ? maxRelativeError(out, first) : index === 0 ? maxRelativeError(out, attentionCheck(Q, K, V, heads, seq, d)) : 0;
        first ??= out;
        results.push({ name: variant, variant, ...t, diff: +diff.toExponential(2) });
        log(`attention ${heads}×${seq}×${d}: ${variant}: ${t.gflops} GFLOP/s`);
      } catch (err) {
        results.push({ name: variant, variant, ms: 0, gflops: 0, percentOfPeak: null, diff: null, error: (err as Error).message.slice(0, 300) });
      }
    }
    bench.freeAll();
    const pick = results.find((r) => r.variant === tuning.attention) ?? null;
    attention.push({ heads, seq, d, flops, candidates: results, pick: pick && { name: pick.name, gflops: pick.gflops, percentOfPeak: pick.percentOfPeak } });
  }
  finished = true;
  device.destroy();

  const torch = plan.torch ? runTorch(plan, opts.torchScript ?? join(dirname(import.meta.filename), 'torch_bench.py'), log) : { available: false, reason: 'skipped (--no-torch)' };
  const torchMatmul = (size: number) => torch.matmul?.find((x) => x.size === size) ?? null;
  const torchAttention = (seq: number) => torch.attention?.find((x) => x.seq === seq) ?? null;
  const withTorch = {
    matmul: matmul.map((r) => {
      const t = torchMatmul(r.size);
      return { ...r, torch: t && { gflops: t.gflops, ms: t.ms }, pickOverTorch: t && r.pick ? round(r.pick.gflops / t.gflops) : null };
    }),
    attention: attention.map((r) => {
      const t = torchAttention(r.seq);
      return { ...r, torch: t && { gflops: t.gflops, ms: t.ms }, pickOverTorch: t && r.pick ? round(r.pick.gflops / t.gflops) : null };
    }),
  };
  const m4096 = withTorch.matmul.find((r) => r.size === 4096);
  const a2048 = withTorch.attention.find((r) => r.seq === 2048);
  return {
    tool: 'tabgrid GPU kit bench',
    kit: kitInfo(),
    date: new Date().toISOString(),
    mode: plan.mode,
    node: process.version,
    adapter: adapterReport(gpu),
    peak: plan.peakTflops === null ? null : { tflops: plan.peakTflops, source: tablePeak && tablePeak.tflops === plan.peakTflops ? `table: ${tablePeak.name}` : '--peak' },
    autotuner: { matmul: pickName, config: tuning.config, attention: tuning.attention, problem: tuning.problem, gflops: round(tuning.gflops) },
    matmul: withTorch.matmul,
    attention: withTorch.attention,
    torch: { available: torch.available, reason: torch.reason ?? null, version: torch.version ?? null, device: torch.device ?? null, cuda: torch.cuda ?? null, tf32: torch.tf32 ?? null },
    // The goals on an H100: matmul 4096² ≥ 50% of fp32 peak and ≥ 0.5× PyTorch; attention ≥ 0.3× SDPA at 2048.
    goals: {
      matmul4096PercentOfPeak: m4096?.pick?.percentOfPeak ?? null,
      matmul4096OverTorch: m4096?.pickOverTorch ?? null,
      attention2048OverTorch: a2048?.pickOverTorch ?? null,
    },
    seconds: round((performance.now() - t0) / 1000, 1),
  };
}

/** What the kit's builder recorded beside the bundle (commit, build date); null outside a kit. */
function kitInfo(): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(join(dirname(import.meta.filename), 'kit.json'), 'utf8'));
  } catch {
    return null;
  }
}

/** The multi-head CPU reference (float64), for the smallest attention case. */
function attentionCheck(q: Float32Array, k: Float32Array, v: Float32Array, heads: number, seq: number, d: number): Float32Array {
  const out = new Float32Array(heads * seq * d);
  const scale = 1 / Math.sqrt(d);
  const scores = new Float64Array(seq);
  for (let h = 0; h < heads; h++) {
    const base = h * seq * d;
    for (let i = 0; i < seq; i++) {
      let max = -Infinity;
      for (let j = 0; j < seq; j++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += q[base + i * d + c] * k[base + j * d + c];
        scores[j] = s * scale;
        max = Math.max(max, scores[j]);
      }
      let sum = 0;
      for (let j = 0; j < seq; j++) sum += scores[j] = Math.exp(scores[j] - max);
      for (let c = 0; c < d; c++) {
        let acc = 0;
        for (let j = 0; j < seq; j++) acc += scores[j] * v[base + j * d + c];
        out[base + i * d + c] = acc / sum;
      }
    }
  }
  return out;
}

export const BENCH_USAGE = `usage: run.sh [--quick] [--peak TFLOPS] [--no-torch]    (or: npm run bench:native -- …)
  Times web/gpu's matmul candidates (${FULL.matmul.join('/')}) and attention variants (seq ${FULL.attention.map((a) => a.seq).join('/')},
  ${FULL.attention[0].heads} heads, d ${FULL.attention[0].d}) through Dawn, the autotuner's pick, % of fp32 peak, and PyTorch.
  --quick         small sizes (matmul ${QUICK.matmul.join('/')}, attention seq ${QUICK.attention.map((a) => a.seq).join('/')}): minutes on a software adapter
  --peak TFLOPS   the card's fp32 peak, when the built-in table does not know it
  --no-torch      skip the PyTorch comparison
  --swiftshader   use SwiftShader's Vulkan driver (no GPU) unless VK_ICD_FILENAMES is set`;

export async function benchCli(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      peak: { type: 'string' },
      'no-torch': { type: 'boolean', default: false },
      swiftshader: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return console.log(BENCH_USAGE);
  if (values.swiftshader) (await import('../native-volunteer/webgpu')).useSwiftShader();
  const peak = values.peak === undefined ? null : Number(values.peak);
  if (peak !== null && !(peak > 0)) throw new Error(`--peak must be a positive number of TFLOP/s\n${BENCH_USAGE}`);
  const plan: BenchPlan = { ...(values.quick ? QUICK : FULL), peakTflops: peak, torch: !values['no-torch'] };
  const report = await runBench(plan);
  console.log(JSON.stringify(report, null, 2));
}
