// The benchmark page: every contender runs on the same GPUDevice in the same page, with inputs
// already on the GPU, and is timed as the median of several runs after warm-up (submit until the
// queue is done). bench/run.ts drives it through window.runBench.
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs-core';
import naiveAttentionSource from '../../shaders/bench/naive-attention.wgsl?raw';
import naiveMatmulSource from '../../shaders/bench/naive-matmul.wgsl?raw';
import { attentionParamsWords, encodeAttention, type AttentionDims, type AttentionVariant } from '../../web/gpu/attention';
import { measureAttentionVariants, measureCandidates } from '../../web/gpu/autotune';
import { describeConfig, encodeMatmul, matmulDimsWords, type MatmulConfig, type MatmulDims } from '../../web/gpu/matmul';
import { getPipeline } from '../../web/gpu/pipelines';
import { medianSeconds, timeGpu } from '../../web/gpu/timing';
import { createGpuSession, ortBufferUsage, ortGpuDevice, type GpuSession } from '../../web/onnx/runtime';
import { attentionModel, matmulModel } from '../onnx-models';

export interface BenchOptions {
  matmul: [number, number, number][];
  attention: { heads: number; seq: number; d: number }[];
  runs: number;
  warmup: number;
  /** Contenders to skip, e.g. ['tfjs']. */
  skip: string[];
}

type Contender = 'ours' | 'naive' | 'ort' | 'tfjs';

export interface CaseResult {
  shape: string;
  flops: number;
  ms: Partial<Record<Contender, number>>;
  gflops: Partial<Record<Contender, number>>;
  errors: Partial<Record<Contender, string>>;
  bestPeer: Contender | null;
  /** ours ÷ the best other contender (GFLOP/s). */
  ratioOursOverBestPeer: number | null;
  /** Normwise relative difference of each contender's output from ours (a correctness guard). */
  diffFromOurs: Partial<Record<Contender, number>>;
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

async function readBack(device: GPUDevice, source: GPUBuffer, bytes: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(source, 0, staging, 0, bytes);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return out;
}

function relativeDiff(x: Float32Array, y: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return diff / scale;
}

function summarise(shape: string, flops: number, seconds: Partial<Record<Contender, number>>, errors: CaseResult['errors'], diffFromOurs: CaseResult['diffFromOurs']): CaseResult {
  const ms: CaseResult['ms'] = {};
  const gflops: CaseResult['gflops'] = {};
  for (const [name, s] of Object.entries(seconds) as [Contender, number][]) {
    ms[name] = +(s * 1000).toFixed(3);
    gflops[name] = +(flops / s / 1e9).toFixed(3);
  }
  const peers = (Object.entries(gflops) as [Contender, number][]).filter(([name]) => name !== 'ours').sort((a, b) => b[1] - a[1]);
  const bestPeer = peers[0]?.[0] ?? null;
  const ratio = gflops.ours != null && peers.length ? +(gflops.ours / peers[0][1]).toFixed(3) : null;
  return { shape, flops, ms, gflops, errors, bestPeer, ratioOursOverBestPeer: ratio, diffFromOurs };
}

/** A contender's measurement: its median time, and how to read its output for the cross-check. */
interface Measured {
  seconds: number;
  read: () => Promise<Float32Array>;
}

/**
 * Runs each contender, recording its median time or why it failed, then compares every output
 * with ours: a contender that computes something else (or nothing) shows up in diffFromOurs.
 */
async function contest(opts: BenchOptions, entries: [Contender, () => Promise<Measured>][]) {
  const seconds: Partial<Record<Contender, number>> = {};
  const errors: CaseResult['errors'] = {};
  const readers: Partial<Record<Contender, () => Promise<Float32Array>>> = {};
  for (const [name, measure] of entries) {
    if (opts.skip.includes(name)) continue;
    try {
      const m = await measure();
      seconds[name] = m.seconds;
      readers[name] = m.read;
    } catch (err) {
      errors[name] = (err as Error).message.slice(0, 300);
    }
  }
  const diffFromOurs: CaseResult['diffFromOurs'] = {};
  if (readers.ours) {
    const ours = await readers.ours();
    for (const [name, read] of Object.entries(readers) as [Contender, () => Promise<Float32Array>][]) {
      if (name === 'ours') continue;
      try {
        diffFromOurs[name] = +relativeDiff(await read(), ours).toExponential(2);
      } catch (err) {
        errors[name] = `reading its output: ${(err as Error).message.slice(0, 200)}`;
      }
    }
  }
  return { seconds, errors, diffFromOurs };
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
  let session: GpuSession | null = null;
  try {
    const outBytes = m * n * 4;
    const { seconds, errors, diffFromOurs } = await contest(opts, [
      [
        'ours',
        async () => ({
          seconds: await timeGpu(device, (enc) => encodeMatmul(device, enc, { a, b, c: cOurs, dims: dimsBuf }, dims, config), opts.runs, opts.warmup),
          read: () => readBack(device, cOurs, outBytes),
        }),
      ],
      [
        'naive',
        async () => ({
          read: () => readBack(device, cNaive, outBytes),
          seconds: await timeGpu(
            device,
            (enc) => {
              const pass = enc.beginComputePass();
              pass.setPipeline(naive);
              pass.setBindGroup(0, naiveBind);
              pass.dispatchWorkgroups(Math.ceil(n / 16), Math.ceil(m / 16));
              pass.end();
            },
            opts.runs,
            opts.warmup,
          ),
        }),
      ],
      [
        'ort',
        async () => {
          session = await createGpuSession(matmulModel(m, k, n));
          const feeds = { a: { buffer: a, dims: [m, k] }, b: { buffer: b, dims: [k, n] } };
          const seconds = await medianSeconds(async () => {
            await session!.run(feeds);
            await device.queue.onSubmittedWorkDone();
          }, opts.runs, opts.warmup);
          return { seconds, read: () => session!.runAndRead(feeds) };
        },
      ],
      [
        'tfjs',
        async () => {
          if (!backend) throw new Error('tfjs webgpu backend unavailable');
          const ta = tf.tensor2d(A, [m, k]);
          const tb = tf.tensor2d(B, [k, n]);
          const seconds = await medianSeconds(async () => {
            const c = tf.matMul(ta, tb);
            backend.endComputePassEncoder();
            backend.submitQueue();
            await device.queue.onSubmittedWorkDone();
            c.dispose();
          }, opts.runs, opts.warmup);
          return {
            seconds,
            read: async () => {
              const c = tf.matMul(ta, tb);
              const data = (await c.data()) as Float32Array;
              tf.dispose([c, ta, tb]);
              return data;
            },
          };
        },
      ],
    ]);
    return summarise(`${m}×${k}·${k}×${n}`, 2 * m * n * k, seconds, errors, diffFromOurs);
  } finally {
    await (session as GpuSession | null)?.release();
    for (const buf of [a, b, cOurs, cNaive, dimsBuf]) buf.destroy();
  }
}

async function benchAttention(device: GPUDevice, opts: BenchOptions, { heads, seq, d }: { heads: number; seq: number; d: number }, variant: AttentionVariant): Promise<CaseResult> {
  const size = heads * seq * d;
  const [q, k, v] = [11, 12, 13].map((seed) => gpuBuffer(device, randomData(size, seed)));
  const outOurs = gpuBuffer(device, size * 4);
  const outNaive = gpuBuffer(device, size * 4);
  const dims: AttentionDims = { heads, rows: seq, q0: 0, seq, d, causal: false };
  const params = gpuBuffer(device, 32);
  device.queue.writeBuffer(params, 0, attentionParamsWords(dims));
  let session: GpuSession | null = null;
  let scores: GPUBuffer | null = null;
  try {
    const { seconds, errors, diffFromOurs } = await contest(opts, [
      [
        'ours',
        async () => ({
          seconds: await timeGpu(device, (enc) => encodeAttention(device, enc, { q, k, v, out: outOurs, params }, dims, variant), opts.runs, opts.warmup),
          read: () => readBack(device, outOurs, size * 4),
        }),
      ],
      [
        'naive',
        async () => {
          scores = device.createBuffer({ size: heads * seq * seq * 4, usage: GPUBufferUsage.STORAGE });
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
            const all = [q, k, v, scores!, outNaive, naiveParams];
            const bind = device.createBindGroup({ layout, entries: used.map((binding) => ({ binding, resource: { buffer: all[binding] } })) });
            const grid: [number, number, number] =
              entryPoint === 'scores' ? [Math.ceil(seq / 16), Math.ceil(seq / 16), heads] : entryPoint === 'softmax' ? [Math.ceil((heads * seq) / 64), 1, 1] : [Math.ceil(d / 16), Math.ceil(seq / 16), heads];
            return { pipeline, bind, grid };
          });
          const seconds = await timeGpu(
            device,
            (enc) => {
              for (const p of passes) {
                const pass = enc.beginComputePass();
                pass.setPipeline(p.pipeline);
                pass.setBindGroup(0, p.bind);
                pass.dispatchWorkgroups(...p.grid);
                pass.end();
              }
            },
            opts.runs,
            opts.warmup,
          );
          return { seconds, read: () => readBack(device, outNaive, size * 4) };
        },
      ],
      [
        'ort',
        async () => {
          session = await createGpuSession(attentionModel(heads, seq, d));
          const feeds = Object.fromEntries((['Q', 'K', 'V'] as const).map((name, i) => [name, { buffer: [q, k, v][i], dims: [heads, seq, d] }]));
          const seconds = await medianSeconds(async () => {
            await session!.run(feeds);
            await device.queue.onSubmittedWorkDone();
          }, opts.runs, opts.warmup);
          return { seconds, read: () => session!.runAndRead(feeds) };
        },
      ],
    ]);
    return summarise(`${heads} heads × seq ${seq} × d ${d}`, 4 * heads * seq * seq * d, seconds, errors, diffFromOurs);
  } finally {
    await (session as GpuSession | null)?.release();
    (scores as GPUBuffer | null)?.destroy();
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
