// The benchmark page: every contender runs on the same GPUDevice in the same page, with inputs
// already on the GPU. One timed run of a contender is its computation AND the readback of its
// output to the CPU: a readback is the only way to make onnxruntime-web's WebGPU EP submit what it
// batches (it submits every 16 dispatches or on a download), so every contender is timed the same
// complete way. Runs repeat after warm-up until the spread is small (or a run or time cap is hit);
// the figures are the median with its quartiles. Each contender's output is checked against a
// float64 reference on a sampled subset (matmul: elements within the rigorous float32 bound;
// attention: rows within the float32 tolerance the coordinator uses): a contender that fails —
// ours included — is invalid and left out of bestPeer and the ratio. bench/run.ts drives it
// through window.runBench.
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs-core';
import naiveAttentionSource from '../../shaders/bench/naive-attention.wgsl?raw';
import naiveMatmulSource from '../../shaders/bench/naive-matmul.wgsl?raw';
import { attentionParamsWords, encodeAttention, type AttentionDims, type AttentionVariant } from '../../web/gpu/attention';
import { measureAttentionVariants, measureCandidates } from '../../web/gpu/autotune';
import { describeConfig, encodeMatmul, matmulDimsWords, type MatmulConfig, type MatmulDims } from '../../web/gpu/matmul';
import { getPipeline } from '../../web/gpu/pipelines';
import { createGpuSession, ortBufferUsage, ortGpuDevice, type GpuSession } from '../../web/onnx/runtime';
import { attentionModel, matmulModel } from '../onnx-models';

export interface BenchOptions {
  matmul: [number, number, number][];
  attention: { heads: number; seq: number; d: number }[];
  /** Timed runs per contender: at least minRuns, then more until the spread is ≤ targetSpread, at most maxRuns or budgetSeconds. */
  minRuns: number;
  maxRuns: number;
  budgetSeconds: number;
  /** (p75 − p25) / median a contender's times should reach before it stops. */
  targetSpread: number;
  warmup: number;
  /** Contenders to skip, e.g. ['tfjs']. */
  skip: string[];
}

type Contender = 'ours' | 'naive' | 'ort' | 'tfjs';

/** A contender's times, in milliseconds. */
export interface Timing {
  median: number;
  p25: number;
  p75: number;
  min: number;
  max: number;
  runs: number;
  /** (p75 − p25) / median. */
  spread: number;
}

/** A contender's output against the float64 reference on a sampled subset. */
export interface Check {
  valid: boolean;
  /** Elements (matmul) or rows (attention) compared. */
  sampled: number;
  /** The largest error as a share of what is allowed (≤ 1 passes). */
  worst: number;
}

export interface CaseResult {
  shape: string;
  flops: number;
  /** Median milliseconds per run (computation and readback), as before; see `timing` for the spread. */
  ms: Partial<Record<Contender, number>>;
  gflops: Partial<Record<Contender, number>>;
  timing: Partial<Record<Contender, Timing>>;
  check: Partial<Record<Contender, Check>>;
  /** Contenders whose output failed the check: no ratio is taken against them (or for ours). */
  invalid: Contender[];
  errors: Partial<Record<Contender, string>>;
  /** The fastest valid contender other than ours. */
  bestPeer: Contender | null;
  /** ours ÷ the best valid peer (GFLOP/s, from the medians); null if ours or every peer is invalid. */
  ratioOursOverBestPeer: number | null;
  /** The ratio from the quartiles: [peer p25 ÷ ours p75, peer p75 ÷ ours p25]. */
  ratioRange: [number, number] | null;
}

const log = (msg: string) => {
  document.getElementById('log')!.textContent += `\n${msg}`;
  console.log(msg);
};

function randomData(count: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function gpuBuffer(device: GPUDevice, data: Float32Array | number): GPUBuffer {
  const bytes = typeof data === 'number' ? data : data.byteLength;
  const buffer = device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: ortBufferUsage() | GPUBufferUsage.UNIFORM });
  if (typeof data !== 'number') device.queue.writeBuffer(buffer, 0, data as Float32Array<ArrayBuffer>);
  return buffer;
}

/** Times of `runs` calls after `warmup`, adaptively: see BenchOptions. */
async function sample(once: () => Promise<void>, opts: BenchOptions): Promise<Timing> {
  for (let i = 0; i < opts.warmup; i++) await once();
  const times: number[] = [];
  const started = performance.now();
  const stats = () => {
    const sorted = [...times].sort((x, y) => x - y);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1) + 0.5))];
    const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
    return { median, p25: at(0.25), p75: at(0.75), min: sorted[0], max: sorted.at(-1)!, runs: sorted.length, spread: (at(0.75) - at(0.25)) / median };
  };
  for (;;) {
    const t0 = performance.now();
    await once();
    times.push(performance.now() - t0);
    if (times.length >= opts.maxRuns) break;
    if (times.length >= opts.minRuns && (stats().spread <= opts.targetSpread || (performance.now() - started) / 1000 >= opts.budgetSeconds)) break;
  }
  const t = stats();
  const round = (x: number) => +x.toFixed(3);
  return { median: round(t.median), p25: round(t.p25), p75: round(t.p75), min: round(t.min), max: round(t.max), runs: t.runs, spread: +t.spread.toFixed(3) };
}

/** A staging buffer reused by one contender: copy `source` into it, submit, map, read, unmap. */
function reader(device: GPUDevice, source: GPUBuffer, bytes: number) {
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  return {
    /** Records the copy into an encoder that also holds the computation. */
    copy: (enc: GPUCommandEncoder) => enc.copyBufferToBuffer(source, 0, staging, 0, bytes),
    async map(): Promise<Float32Array> {
      await staging.mapAsync(GPUMapMode.READ);
      const out = new Float32Array(staging.getMappedRange().slice(0));
      staging.unmap();
      return out;
    },
    destroy: () => staging.destroy(),
  };
}

/** One run of a kernel we encode ourselves: computation and copy out in one submit, then the map. */
function gpuRun(device: GPUDevice, encode: (enc: GPUCommandEncoder) => void, read: ReturnType<typeof reader>) {
  return async () => {
    const enc = device.createCommandEncoder();
    encode(enc);
    read.copy(enc);
    device.queue.submit([enc.finish()]);
    return read.map();
  };
}

/** Sampled (i, j) of an m×n output, the same for every contender (a fixed LCG). */
function sampledIndices(count: number, total: number): number[] {
  const out = new Set<number>();
  let s = 12345;
  while (out.size < Math.min(count, total)) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.add(s % total);
  }
  return [...out];
}

/**
 * C against A·B on 256 sampled elements: each within γ·(|A|·|B|)_ij of its float64 dot product,
 * γ = 2.02·(k + 2)·2⁻²⁴ — the rigorous bound no float32 device exceeds, whatever its order.
 */
function checkMatmul(c: Float32Array, a: Float32Array, b: Float32Array, m: number, k: number, n: number): Check {
  if (c.length < m * n) return { valid: false, sampled: 0, worst: Infinity };
  const gamma = 2.02 * (k + 2) * 2 ** -24;
  const picks = sampledIndices(256, m * n);
  let worst = 0;
  for (const e of picks) {
    const [i, j] = [Math.floor(e / n), e % n];
    let exact = 0;
    let magnitude = 0;
    for (let p = 0; p < k; p++) {
      const prod = a[i * k + p] * b[p * n + j];
      exact += prod;
      magnitude += Math.abs(prod);
    }
    const share = Math.abs(c[i * n + j] - exact) / (gamma * magnitude + 1e-30);
    if (!(share <= worst)) worst = share; // NaN sticks
  }
  return { valid: worst <= 1, sampled: picks.length, worst: +worst.toPrecision(3) };
}

/**
 * Non-causal attention against a three-pass float64 reference on 8 sampled (head, row) pairs,
 * within the coordinator's float32 tolerance (README: atol = 2·max|V|·(2·d·u·S + (3 + 4·S)·u +
 * (seq + d + 8)·u) with S = √d·max|Q|·max|K|, rtol 1e-4).
 */
function checkAttention(out: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, heads: number, seq: number, d: number): Check {
  if (out.length < heads * seq * d) return { valid: false, sampled: 0, worst: Infinity };
  const maxAbs = (t: Float32Array) => t.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  const u = 2 ** -24;
  const S = Math.sqrt(d) * maxAbs(q) * maxAbs(k);
  const atol = 2 * maxAbs(v) * (2 * d * u * S + (3 + 4 * S) * u + (seq + d + 8) * u);
  const picks = sampledIndices(8, heads * seq);
  let worst = 0;
  for (const hr of picks) {
    const [h, i] = [Math.floor(hr / seq), hr % seq];
    const base = h * seq * d;
    const scores = Array.from({ length: seq }, (_, j) => {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[base + i * d + c] * k[base + j * d + c];
      return dot / Math.sqrt(d);
    });
    const max = Math.max(...scores);
    const w = scores.map((x) => Math.exp(x - max));
    const sum = w.reduce((x, y) => x + y, 0);
    for (let c = 0; c < d; c++) {
      let exact = 0;
      for (let j = 0; j < seq; j++) exact += (w[j] / sum) * v[base + j * d + c];
      const share = Math.abs(out[base + i * d + c] - exact) / (atol + 1e-4 * Math.abs(exact));
      if (!(share <= worst)) worst = share;
    }
  }
  return { valid: worst <= 1, sampled: picks.length, worst: +worst.toPrecision(3) };
}

function summarise(shape: string, flops: number, timing: Partial<Record<Contender, Timing>>, check: Partial<Record<Contender, Check>>, errors: CaseResult['errors']): CaseResult {
  const ms: CaseResult['ms'] = {};
  const gflops: CaseResult['gflops'] = {};
  for (const [name, t] of Object.entries(timing) as [Contender, Timing][]) {
    ms[name] = t.median;
    gflops[name] = +(flops / (t.median / 1000) / 1e9).toFixed(3);
  }
  const invalid = (Object.entries(check) as [Contender, Check][]).filter(([, c]) => !c.valid).map(([name]) => name);
  const valid = (name: Contender) => check[name]?.valid === true;
  const peers = (Object.entries(gflops) as [Contender, number][]).filter(([name]) => name !== 'ours' && valid(name)).sort((a, b) => b[1] - a[1]);
  const bestPeer = peers[0]?.[0] ?? null;
  const ours = valid('ours') ? timing.ours : undefined;
  const peer = bestPeer ? timing[bestPeer] : undefined;
  const ratio = ours && peer ? +(peer.median / ours.median).toFixed(3) : null;
  const ratioRange: [number, number] | null = ours && peer ? [+(peer.p25 / ours.p75).toFixed(3), +(peer.p75 / ours.p25).toFixed(3)] : null;
  return { shape, flops, ms, gflops, timing, check, invalid, errors, bestPeer, ratioOursOverBestPeer: ratio, ratioRange };
}

/** A contender: one complete run (computation and readback of its output), and what to free after. */
interface Entry {
  run: () => Promise<Float32Array>;
  release?: () => void | Promise<void>;
}

/**
 * Times each contender (recording why one failed to run), then checks the output of one more run
 * against the float64 reference.
 */
async function contest(opts: BenchOptions, entries: [Contender, () => Promise<Entry>][], check: (out: Float32Array) => Check) {
  const timing: Partial<Record<Contender, Timing>> = {};
  const checks: Partial<Record<Contender, Check>> = {};
  const errors: CaseResult['errors'] = {};
  for (const [name, make] of entries) {
    if (opts.skip.includes(name)) continue;
    let entry: Entry | null = null;
    try {
      entry = await make();
      const { run } = entry;
      timing[name] = await sample(async () => void (await run()), opts);
      checks[name] = check(await run());
    } catch (err) {
      errors[name] = (err as Error).message.slice(0, 300);
      delete timing[name];
    } finally {
      await entry?.release?.();
    }
  }
  return { timing, checks, errors };
}

async function benchMatmul(device: GPUDevice, opts: BenchOptions, [m, k, n]: [number, number, number], config: MatmulConfig, backend: WebGPUBackend | null): Promise<CaseResult> {
  const dims: MatmulDims = { m, k, n };
  const A = randomData(m * k, 1);
  const B = randomData(k * n, 2);
  const a = gpuBuffer(device, A);
  const b = gpuBuffer(device, B);
  const cOurs = gpuBuffer(device, m * n * 4);
  const cNaive = gpuBuffer(device, m * n * 4);
  const dimsBuf = gpuBuffer(device, 16);
  device.queue.writeBuffer(dimsBuf, 0, matmulDimsWords(dims));
  const naive = getPipeline(device, { label: 'naive-matmul', code: naiveMatmulSource });
  const naiveBind = device.createBindGroup({ layout: naive.getBindGroupLayout(0), entries: [a, b, cNaive, dimsBuf].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const outBytes = m * n * 4;
  try {
    const { timing, checks, errors } = await contest(
      opts,
      [
        [
          'ours',
          async () => {
            const read = reader(device, cOurs, outBytes);
            return { run: gpuRun(device, (enc) => encodeMatmul(device, enc, { a, b, c: cOurs, dims: dimsBuf }, dims, config), read), release: read.destroy };
          },
        ],
        [
          'naive',
          async () => {
            const read = reader(device, cNaive, outBytes);
            const encode = (enc: GPUCommandEncoder) => {
              const pass = enc.beginComputePass();
              pass.setPipeline(naive);
              pass.setBindGroup(0, naiveBind);
              pass.dispatchWorkgroups(Math.ceil(n / 16), Math.ceil(m / 16));
              pass.end();
            };
            return { run: gpuRun(device, encode, read), release: read.destroy };
          },
        ],
        [
          'ort',
          async () => {
            const session = await createGpuSession(matmulModel(m, k, n));
            const feeds = { a: { buffer: a, dims: [m, k] }, b: { buffer: b, dims: [k, n] } };
            // The download makes ORT submit what it has batched: its time is complete.
            return { run: () => session.runAndRead(feeds), release: () => session.release() };
          },
        ],
        [
          'tfjs',
          async () => {
            if (!backend) throw new Error('tfjs webgpu backend unavailable');
            const ta = tf.tensor2d(A, [m, k]);
            const tb = tf.tensor2d(B, [k, n]);
            return {
              run: async () => {
                const c = tf.matMul(ta, tb);
                try {
                  return (await c.data()) as Float32Array;
                } finally {
                  c.dispose();
                }
              },
              release: () => tf.dispose([ta, tb]),
            };
          },
        ],
      ],
      (out) => checkMatmul(out, A, B, m, k, n),
    );
    return summarise(`${m}×${k}·${k}×${n}`, 2 * m * n * k, timing, checks, errors);
  } finally {
    for (const buf of [a, b, cOurs, cNaive, dimsBuf]) buf.destroy();
  }
}

async function benchAttention(device: GPUDevice, opts: BenchOptions, { heads, seq, d }: { heads: number; seq: number; d: number }, variant: AttentionVariant): Promise<CaseResult> {
  const size = heads * seq * d;
  const [Q, K, V] = [11, 12, 13].map((seed) => randomData(size, seed));
  const [q, k, v] = [Q, K, V].map((data) => gpuBuffer(device, data));
  const outOurs = gpuBuffer(device, size * 4);
  const outNaive = gpuBuffer(device, size * 4);
  const dims: AttentionDims = { heads, rows: seq, q0: 0, seq, d, causal: false };
  const params = gpuBuffer(device, 32);
  device.queue.writeBuffer(params, 0, attentionParamsWords(dims));
  try {
    const { timing, checks, errors } = await contest(
      opts,
      [
        [
          'ours',
          async () => {
            const read = reader(device, outOurs, size * 4);
            return { run: gpuRun(device, (enc) => encodeAttention(device, enc, { q, k, v, out: outOurs, params }, dims, variant), read), release: read.destroy };
          },
        ],
        [
          'naive',
          async () => {
            const scores = device.createBuffer({ size: heads * seq * seq * 4, usage: GPUBufferUsage.STORAGE });
            const naiveParams = gpuBuffer(device, 16);
            const words = new Uint32Array([heads, seq, d, 0]);
            new Float32Array(words.buffer).set([1 / Math.sqrt(d)], 3);
            device.queue.writeBuffer(naiveParams, 0, words);
            const kernel = { label: 'naive-attention', code: naiveAttentionSource };
            const passes = (['scores', 'softmax', 'weighted'] as const).map((entryPoint) => {
              const pipeline = getPipeline(device, { ...kernel, entryPoint });
              const layout = pipeline.getBindGroupLayout(0);
              // Each entry point binds only what it uses ('auto' layouts drop the rest).
              const used = { scores: [0, 1, 3, 5], softmax: [3, 5], weighted: [2, 3, 4, 5] }[entryPoint];
              const all = [q, k, v, scores, outNaive, naiveParams];
              const bind = device.createBindGroup({ layout, entries: used.map((binding) => ({ binding, resource: { buffer: all[binding] } })) });
              const grid: [number, number, number] =
                entryPoint === 'scores' ? [Math.ceil(seq / 16), Math.ceil(seq / 16), heads] : entryPoint === 'softmax' ? [Math.ceil((heads * seq) / 64), 1, 1] : [Math.ceil(d / 16), Math.ceil(seq / 16), heads];
              return { pipeline, bind, grid };
            });
            const read = reader(device, outNaive, size * 4);
            const encode = (enc: GPUCommandEncoder) => {
              for (const p of passes) {
                const pass = enc.beginComputePass();
                pass.setPipeline(p.pipeline);
                pass.setBindGroup(0, p.bind);
                pass.dispatchWorkgroups(...p.grid);
                pass.end();
              }
            };
            return {
              run: gpuRun(device, encode, read),
              release: () => {
                read.destroy();
                scores.destroy();
                naiveParams.destroy();
              },
            };
          },
        ],
        [
          'ort',
          async () => {
            const session: GpuSession = await createGpuSession(attentionModel(heads, seq, d));
            const feeds = Object.fromEntries((['Q', 'K', 'V'] as const).map((name, i) => [name, { buffer: [q, k, v][i], dims: [heads, seq, d] }]));
            // The download makes ORT submit what it has batched: its time is complete.
            return { run: () => session.runAndRead(feeds), release: () => session.release() };
          },
        ],
      ],
      (out) => checkAttention(out, Q, K, V, heads, seq, d),
    );
    return summarise(`${heads} heads × seq ${seq} × d ${d}`, 4 * heads * seq * seq * d, timing, checks, errors);
  } finally {
    for (const buf of [q, k, v, outOurs, outNaive, params]) buf.destroy();
  }
}

async function tfjsBackend(device: GPUDevice): Promise<WebGPUBackend | null> {
  try {
    // Kernels are registered for the name 'webgpu': replace its factory with one on our device.
    tf.removeBackend('webgpu');
    const backend = new WebGPUBackend(device);
    tf.registerBackend('webgpu', () => backend);
    await tf.setBackend('webgpu');
    return backend;
  } catch (err) {
    log(`tfjs webgpu backend failed: ${(err as Error).message}`);
    return null;
  }
}

async function runBench(opts: BenchOptions) {
  // One device for every contender: onnxruntime-web's (it cannot be given ours).
  const device = await ortGpuDevice(matmulModel(4, 4, 4));
  const adapterInfo = device.adapterInfo as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const info = {
    adapter: [adapterInfo.vendor, adapterInfo.architecture, adapterInfo.device, adapterInfo.description].filter(Boolean).join(' '),
    isFallbackAdapter: adapterInfo.isFallbackAdapter ?? false,
    features: [...device.features],
  };
  device.addEventListener('uncapturederror', (ev) => log(`GPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`));
  log(`device: ${info.adapter}${info.isFallbackAdapter ? ' (software)' : ''}`);
  // Tune exactly as the volunteer worker does (fresh, no cache) on the same device.
  const tuned = await measureCandidates(device, info.isFallbackAdapter ? 128 : 1024);
  const config = tuned[0].config;
  const variants = await measureAttentionVariants(device, info.isFallbackAdapter ? 128 : 1024);
  const variant = variants[0].variant;
  log(`tuned: ${describeConfig(config)}; ${variant} attention`);
  const backend = opts.skip.includes('tfjs') ? null : await tfjsBackend(device);
  const matmul: CaseResult[] = [];
  for (const shape of opts.matmul) {
    matmul.push(await benchMatmul(device, opts, shape, config, backend));
    log(JSON.stringify(matmul.at(-1)));
  }
  const attention: CaseResult[] = [];
  for (const shape of opts.attention) {
    attention.push(await benchAttention(device, opts, shape, variant));
    log(JSON.stringify(attention.at(-1)));
  }
  return {
    device: info,
    userAgent: navigator.userAgent,
    tuning: {
      config,
      summary: describeConfig(config),
      candidates: tuned.map((t) => ({ ...t.config, gflops: +t.gflops.toFixed(3) })),
      attention: variants.map((x) => ({ variant: x.variant, ms: +(x.seconds * 1000).toFixed(3) })),
    },
    matmul,
    attention,
  };
}

declare global {
  interface Window {
    runBench: typeof runBench;
  }
}
window.runBench = runBench;
document.getElementById('log')!.textContent = 'ready';
