// Launches shaders/attention.wgsl (fused flash attention) for [heads, rows, d] queries against
// [heads, seq, d] keys and values.
import directSource from '../../shaders/attention-direct.wgsl?raw';
import preludeSource from '../../shaders/attention-prelude.wgsl?raw';
import source from '../../shaders/attention.wgsl?raw';
import { poolFor } from './buffer-pool';
import { getPipeline, type KernelConstants, type KernelSource } from './pipelines';

/** `tiled` stages K/V tiles in workgroup memory (GPUs); `direct` streams them (CPU adapters). */
export type AttentionVariant = 'tiled' | 'direct';
export const ATTENTION_VARIANTS: readonly AttentionVariant[] = ['tiled', 'direct'];

const KERNELS: Record<AttentionVariant, KernelSource> = {
  tiled: { label: 'attention', code: `${preludeSource}\n${source}` },
  direct: { label: 'attention-direct', code: `${preludeSource}\n${directSource}` },
};

export interface AttentionDims {
  heads: number;
  /** Query rows per head, the first being query q0 of the sequence. */
  rows: number;
  q0: number;
  /** Key/value rows per head. */
  seq: number;
  d: number;
  causal: boolean;
}

/** Queries per workgroup and keys staged per step. Keys × d × 8 bytes of workgroup memory. */
export function attentionConfig(d: number): { BQ: number; BKV: number } {
  return { BQ: 64, BKV: d <= 64 ? 32 : 16 };
}

export interface AttentionBuffers {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  out: GPUBuffer;
  params: GPUBuffer;
}

export function attentionParamsWords(p: AttentionDims): Uint32Array<ArrayBuffer> {
  const words = new Uint32Array(8);
  words.set([p.rows, p.seq, p.q0, p.causal ? 1 : 0]);
  new Float32Array(words.buffer).set([1 / Math.sqrt(p.d)], 4);
  return words;
}

/** Which kernel file and constants a variant compiles to for head dimension d. */
export function attentionKernel(d: number, variant: AttentionVariant): { kernel: KernelSource; constants: KernelConstants } {
  return { kernel: KERNELS[variant], constants: { D: d, ...attentionConfig(d) } };
}

export function encodeAttention(device: GPUDevice, encoder: GPUCommandEncoder, bufs: AttentionBuffers, p: AttentionDims, variant: AttentionVariant = 'tiled') {
  if (p.d % 4 !== 0) throw new Error(`attention head dimension ${p.d} must be a multiple of 4`);
  const config = attentionConfig(p.d);
  const { kernel, constants } = attentionKernel(p.d, variant);
  const pipeline = getPipeline(device, kernel, constants);
  const qBytes = p.heads * p.rows * p.d * 4;
  const kvBytes = p.heads * p.seq * p.d * 4;
  const sizes = [qBytes, kvBytes, kvBytes, qBytes, 32];
  const bind = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [bufs.q, bufs.k, bufs.v, bufs.out, bufs.params].map((buffer, binding) => ({ binding, resource: { buffer, size: sizes[binding] } })),
  });
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(Math.ceil(p.rows / config.BQ), p.heads);
  pass.end();
}

/** softmax(Q·Kᵀ/√d)·V: upload, compute, read back. */
export async function gpuAttention(device: GPUDevice, q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionDims, variant: AttentionVariant = 'tiled'): Promise<Float32Array> {
  if (q.length !== p.heads * p.rows * p.d || k.length !== p.heads * p.seq * p.d || v.length !== k.length) {
    throw new Error(`attention inputs do not match ${p.heads} heads × ${p.rows} queries × ${p.seq} keys × d ${p.d}`);
  }
  const pool = poolFor(device);
  const outBytes = q.byteLength;
  const bufs: AttentionBuffers = { q: pool.upload(q), k: pool.upload(k), v: pool.upload(v), out: pool.output(outBytes), params: pool.uniform(attentionParamsWords(p)) };
  try {
    const encoder = device.createCommandEncoder();
    encodeAttention(device, encoder, bufs, p, variant);
    return await pool.read(bufs.out, outBytes, encoder);
  } finally {
    pool.release(bufs.q, bufs.k, bufs.v, bufs.out, bufs.params);
  }
}
