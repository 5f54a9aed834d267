// Launches the tiled matmul kernels: shaders/matmul-vec4.wgsl when k and n are multiples of 4,
// shaders/matmul.wgsl otherwise. The tile configuration comes from the autotuner (autotune.ts).
import preludeSource from '../../shaders/matmul-prelude.wgsl?raw';
import scalarSource from '../../shaders/matmul.wgsl?raw';
import vec4BlockSource from '../../shaders/matmul-vec4-block.wgsl?raw';
import vec4DoubleBufferedSource from '../../shaders/matmul-vec4-db.wgsl?raw';
import vec4SubgroupsSource from '../../shaders/matmul-vec4-subgroups.wgsl?raw';
import vec4RegsSource from '../../shaders/matmul-vec4-regs.wgsl?raw';
import vec4Source from '../../shaders/matmul-vec4.wgsl?raw';
import { poolFor } from './buffer-pool';
import { getPipeline, type KernelConstants, type KernelSource } from './pipelines';

/**
 * One tiling: WG_X×WG_Y invocations, each computing TM×TN outputs, k walked BK at a time through
 * workgroup memory — or, with `regs`, no workgroup memory at all (shaders/matmul-vec4-regs.wgsl,
 * TM×TN fixed at 4×8); shapes that cannot use vec4 then run the tiled scalar kernel with TM, TN, BK.
 */
export interface MatmulConfig {
  regs?: boolean;
  /** shaders/matmul-vec4-subgroups.wgsl: A shared by subgroup shuffles (WG_Y 1, TM×TN 4×8); needs the `subgroups` feature. */
  subgroups?: boolean;
  /** shaders/matmul-vec4-db.wgsl: the tiled kernel with two stages of workgroup memory, loads of the next k-slice in flight (GPUs). */
  doubleBuffered?: boolean;
  wgX: number;
  wgY: number;
  tm: number;
  tn: number;
  bk: number;
}

/**
 * What the autotuner tries. All fit 16 KiB of workgroup memory and 256 invocations (WebGPU's
 * guaranteed minimums); TN and BK are multiples of 4 for the vec4 kernel. The first is the default
 * before tuning.
 */
export const MATMUL_CANDIDATES: readonly MatmulConfig[] = [
  { wgX: 16, wgY: 16, tm: 4, tn: 4, bk: 16 }, // 64×64 tile
  { wgX: 8, wgY: 8, tm: 4, tn: 4, bk: 16 }, // 32×32: small problems, CPU adapters
  { wgX: 16, wgY: 8, tm: 8, tn: 8, bk: 8 }, // 64×128
  { wgX: 16, wgY: 16, tm: 8, tn: 8, bk: 8 }, // 128×128
  { regs: true, wgX: 8, wgY: 8, tm: 4, tn: 8, bk: 16 }, // 32×64 per workgroup, no barriers
  { regs: true, wgX: 16, wgY: 4, tm: 4, tn: 8, bk: 16 }, // 16×128
  // For GPUs: double-buffered k-slices (two stages fit 16 KiB at BK 8).
  { doubleBuffered: true, wgX: 16, wgY: 16, tm: 8, tn: 8, bk: 8 }, // 128×128
  { doubleBuffered: true, wgX: 16, wgY: 8, tm: 8, tn: 8, bk: 8 }, // 64×128
  { doubleBuffered: true, wgX: 16, wgY: 16, tm: 4, tn: 8, bk: 8 }, // 64×128, 256 invocations
];

/**
 * Only for devices with the `subgroups` feature (see matmulCandidates); bk is the scalar fallback's.
 * Wider rows share A across more lanes; narrower ones waste fewer lanes on small n.
 */
export const SUBGROUP_CANDIDATES: readonly MatmulConfig[] = [
  { subgroups: true, wgX: 64, wgY: 1, tm: 4, tn: 8, bk: 4 }, // 4×512
  { subgroups: true, wgX: 32, wgY: 1, tm: 4, tn: 8, bk: 4 }, // 4×256
];

/** The candidates this device can run: the subgroup kernels join where the device has the feature. */
export function matmulCandidates(device: GPUDevice): readonly MatmulConfig[] {
  return device.features.has('subgroups') ? [...MATMUL_CANDIDATES, ...SUBGROUP_CANDIDATES] : MATMUL_CANDIDATES;
}

export function describeConfig(c: MatmulConfig): string {
  const tile = `${c.wgY * c.tm}×${c.wgX * c.tn}`;
  if (c.subgroups) return `${tile} per workgroup, ${c.tm}×${c.tn} per thread, A shared by subgroup shuffles`;
  if (c.regs) return `${tile} per workgroup, ${c.tm}×${c.tn} per thread in registers`;
  return `${tile} tile, ${c.tm}×${c.tn} per thread, k-slice ${c.bk}${c.doubleBuffered ? ', double-buffered' : ''}`;
}

/** A kernel's source after the shared prelude (dimensions, bindings) over elements of type `elem`. */
const withPrelude = (elem: 'f32' | 'vec4f', ...parts: string[]) => [`alias Elem = ${elem};`, preludeSource, ...parts].join('\n');

const SCALAR: KernelSource = { label: 'matmul', code: withPrelude('f32', scalarSource) };
const VEC4: KernelSource = { label: 'matmul-vec4', code: withPrelude('vec4f', vec4Source) };
const VEC4_DB: KernelSource = { label: 'matmul-vec4-db', code: withPrelude('vec4f', vec4DoubleBufferedSource) };
// The register-block kernels share their bindings and 4×8 block code (WGSL has no includes).
const VEC4_REGS: KernelSource = { label: 'matmul-vec4-regs', code: withPrelude('vec4f', vec4BlockSource, vec4RegsSource) };
const VEC4_SUBGROUPS: KernelSource = { label: 'matmul-vec4-subgroups', code: withPrelude('vec4f', vec4BlockSource, vec4SubgroupsSource) };

export interface MatmulDims {
  m: number;
  k: number;
  n: number;
}

export function usesVec4({ k, n }: MatmulDims): boolean {
  return k % 4 === 0 && n % 4 === 0;
}

/** Which kernel file and constants a configuration compiles to for these dims. */
export function matmulKernel(dims: MatmulDims, c: MatmulConfig): { kernel: KernelSource; constants: KernelConstants } {
  const tiling = { WG_X: c.wgX, WG_Y: c.wgY, TM: c.tm, TN: c.tn, BK: c.bk };
  if (!usesVec4(dims)) return { kernel: SCALAR, constants: tiling };
  if (c.subgroups) return { kernel: VEC4_SUBGROUPS, constants: { WG_X: c.wgX } };
  if (c.regs) return { kernel: VEC4_REGS, constants: { WG_X: c.wgX, WG_Y: c.wgY } };
  return { kernel: c.doubleBuffered ? VEC4_DB : VEC4, constants: tiling };
}

export function matmulPipeline(device: GPUDevice, dims: MatmulDims, c: MatmulConfig): GPUComputePipeline {
  if (c.subgroups && !device.features.has('subgroups')) throw new Error('this matmul configuration needs the WebGPU subgroups feature');
  const { kernel, constants } = matmulKernel(dims, c);
  return getPipeline(device, kernel, constants);
}

/** GPU-resident buffers of one product (the bench and the autotuner time this without transfers). */
export interface MatmulBuffers {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  dims: GPUBuffer;
}

/** Records C = A·B into `encoder`. */
export function encodeMatmul(device: GPUDevice, encoder: GPUCommandEncoder, bufs: MatmulBuffers, d: MatmulDims, config: MatmulConfig) {
  const pipeline = matmulPipeline(device, d, config);
  const sizes = [d.m * d.k * 4, d.k * d.n * 4, d.m * d.n * 4, 16];
  const bind = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [bufs.a, bufs.b, bufs.c, bufs.dims].map((buffer, binding) => ({ binding, resource: { buffer, size: sizes[binding] } })),
  });
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(Math.ceil(d.n / (config.wgX * config.tn)), Math.ceil(d.m / (config.wgY * config.tm)));
  pass.end();
}

export function matmulDimsWords({ m, k, n }: MatmulDims): Uint32Array<ArrayBuffer> {
  return new Uint32Array([m, k, n, 0]);
}

/** C (m×n) = A (m×k) · B (k×n), all row-major float32: upload, compute, read back. */
export async function gpuMatmul(device: GPUDevice, a: Float32Array, b: Float32Array, d: MatmulDims, config: MatmulConfig): Promise<Float32Array> {
  const { m, k, n } = d;
  if (a.length !== m * k || b.length !== k * n) throw new Error(`matmul inputs do not match ${m}×${k}·${k}×${n}`);
  const pool = poolFor(device);
  const bufs: MatmulBuffers = { a: pool.upload(a), b: pool.upload(b), c: pool.output(m * n * 4), dims: pool.uniform(matmulDimsWords(d)) };
  try {
    const encoder = device.createCommandEncoder();
    encodeMatmul(device, encoder, bufs, d, config);
    return await pool.read(bufs.c, m * n * 4, encoder);
  } finally {
    pool.release(bufs.a, bufs.b, bufs.c, bufs.dims);
  }
}
