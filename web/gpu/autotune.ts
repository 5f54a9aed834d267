// Per-device autotuning of the matmul tiling and the attention variant: every candidate runs a
// short problem, the fastest wins, and the choice is cached (IndexedDB, keyed by adapter info and limits) so later visits
// start at full speed without measuring again.
import { ATTENTION_VARIANTS, attentionKernel, attentionParamsWords, encodeAttention, type AttentionDims, type AttentionVariant } from './attention';
import { poolFor } from './buffer-pool';
import { timeGpu } from './timing';
import { preparePipelines } from './pipelines';
import { describeConfig, encodeMatmul, matmulCandidates, matmulKernel, matmulDimsWords, type MatmulBuffers, type MatmulConfig, type MatmulDims } from './matmul';

export interface TuningResult {
  config: MatmulConfig;
  /** Matmul throughput of `config` on the tuning problem. */
  gflops: number;
  problem: string;
  attention: AttentionVariant;
  /** True when the choice came from the cache rather than a measurement in this session. */
  cached: boolean;
  summary: string;
}

/** Where tuning choices persist; the worker passes the IndexedDB store, tests may pass a Map. */
export interface TuningCache {
  get(key: string): Promise<Omit<TuningResult, 'cached' | 'summary'> | undefined>;
  put(key: string, value: Omit<TuningResult, 'cached' | 'summary'>): Promise<void>;
}

/** Identifies a device for the cache: the same GPU and driver limits tune the same. */
export function tuningKey(adapter: string, limits: Record<string, number> | undefined): string {
  const l = Object.entries(limits ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => `${name}=${value}`)
    .join(',');
  return `kernels/v3/${adapter}/${l}`; // v3: the double-buffered candidates joined
}

/**
 * Runs one timed measurement with the GPU to itself: the compute worker passes its gate's step
 * (worker/gate.ts), so tuning in the background times no candidate while a work unit computes.
 */
export type Exclusive = <T>(fn: () => Promise<T>) => Promise<T>;
const alone: Exclusive = (fn) => fn();

function randomData(count: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.random() * 2 - 1;
  return out;
}

/** Measures every candidate on a side×side×side product; returns them fastest first. */
export async function measureCandidates(device: GPUDevice, side: number, runs = 2, candidates = matmulCandidates(device), exclusive: Exclusive = alone) {
  const dims: MatmulDims = { m: side, k: side, n: side };
  const pool = poolFor(device);
  const bufs: MatmulBuffers = {
    a: pool.upload(randomData(side * side)),
    b: pool.upload(randomData(side * side)),
    c: pool.output(side * side * 4),
    dims: pool.uniform(matmulDimsWords(dims)),
  };
  try {
    await preparePipelines(device, candidates.map((c) => matmulKernel(dims, c)));
    const results: { config: MatmulConfig; gflops: number }[] = [];
    for (const config of candidates) {
      const seconds = await exclusive(() => timeGpu(device, (enc) => encodeMatmul(device, enc, bufs, dims, config), runs));
      results.push({ config, gflops: (2 * side ** 3) / seconds / 1e9 });
    }
    return results.sort((x, y) => y.gflops - x.gflops);
  } finally {
    pool.release(bufs.a, bufs.b, bufs.c, bufs.dims);
  }
}

/** Times each attention variant on one head of seq×64; returns them fastest first. */
export async function measureAttentionVariants(device: GPUDevice, seq: number, runs = 2, exclusive: Exclusive = alone) {
  const dims: AttentionDims = { heads: 1, rows: seq, q0: 0, seq, d: 64, causal: false };
  const pool = poolFor(device);
  const [q, k, v] = [0, 1, 2].map(() => pool.upload(randomData(seq * 64)));
  const bufs = { q, k, v, out: pool.output(seq * 64 * 4), params: pool.uniform(attentionParamsWords(dims)) };
  try {
    await preparePipelines(device, ATTENTION_VARIANTS.map((variant) => attentionKernel(64, variant)));
    const results: { variant: AttentionVariant; seconds: number }[] = [];
    for (const variant of ATTENTION_VARIANTS) {
      results.push({ variant, seconds: await exclusive(() => timeGpu(device, (enc) => encodeAttention(device, enc, bufs, dims, variant), runs)) });
    }
    return results.sort((x, y) => x.seconds - y.seconds);
  } finally {
    pool.release(q, k, v, bufs.out, bufs.params);
  }
}

/** The cached tuning for this device, if there is one it can use (no measuring). */
export async function cachedTuning(device: GPUDevice, key: string, cache: TuningCache): Promise<TuningResult | null> {
  const hit = await cache.get(key).catch(() => undefined);
  // A cached subgroup choice is dropped if this device was opened without the feature.
  if (!hit || (hit.config.subgroups && !device.features.has('subgroups'))) return null;
  return { ...hit, cached: true, summary: describeTuning({ ...hit, cached: true }) };
}

function describeTuning(r: Omit<TuningResult, 'summary'>): string {
  return `${describeConfig(r.config)} · ${r.gflops.toFixed(2)} GFLOP/s on ${r.problem}; ${r.attention} attention${r.cached ? ' (cached)' : ''}`;
}

/**
 * The tiling for this device: from the cache when it has one, else measured. The problem grows
 * until a run takes long enough to time (a run of 2 ms or more: software adapters stop at 128, GPUs go up to 1024).
 * Each candidate is timed through `exclusive` (the pipelines compile outside it).
 */
export async function tuneKernels(device: GPUDevice, key: string, cache: TuningCache, exclusive: Exclusive = alone): Promise<TuningResult> {
  const hit = await cachedTuning(device, key, cache);
  if (hit) return hit;
  let side = 128;
  let best = (await measureCandidates(device, side, 2, undefined, exclusive))[0];
  while (side < 1024 && (2 * side ** 3) / (best.gflops * 1e9) < 0.002) {
    side *= 2;
    best = (await measureCandidates(device, side, 2, undefined, exclusive))[0];
  }
  const attention = (await measureAttentionVariants(device, side, 2, exclusive))[0].variant;
  const result = { config: best.config, gflops: best.gflops, problem: `${side}×${side}×${side}`, attention };
  await cache.put(key, result).catch(() => undefined); // a browser without storage still computes
  return { ...result, cached: false, summary: describeTuning({ ...result, cached: false }) };
}
