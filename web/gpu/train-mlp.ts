// The MLP's inner training loop on WebGPU: a `train` unit's H optimizer steps run as WGSL kernels
// (shaders/train-mlp-*.wgsl) with θ, the gradient and AdamW's moments kept on the GPU across the
// steps. The slice is uploaded once; each step's batch rows (protocol/train-loop.ts batchSchedule,
// computed here on the CPU: the same seeded batches as the TS loop) are uploaded a chunk of steps
// at a time and copied into place inside the command stream, so one submit carries many steps.
// Only θ_after and the per-step losses are read back, once. Float32 throughout; every sum runs in
// a fixed order (see the kernels), so a device's result does not depend on scheduling. The output
// is encoded by protocol/train-loop.ts encodeDelta, as the TS loop's is.
import backwardSource from '../../shaders/train-mlp-backward.wgsl?raw';
import prelude from '../../shaders/train-mlp-prelude.wgsl?raw';
import forwardSource from '../../shaders/train-mlp-forward.wgsl?raw';
import lossSource from '../../shaders/train-mlp-loss.wgsl?raw';
import updateSource from '../../shaders/train-mlp-update.wgsl?raw';
import { batchSchedule, checkRows, encodeDelta, type Compression, type InnerSpec } from '../../coordinator/protocol/train-loop';
import { mlpModel, mlpTensors } from '../../coordinator/protocol/train-mlp';

/** What the GPU loop runs: the inner-loop spec with the MLP's layer widths (the kernels are the MLP's own). */
export type MlpInnerSpec = Omit<InnerSpec, 'model'> & { layers: readonly number[] };
import { poolFor, type BufferPool } from './buffer-pool';
import { getPipeline, type KernelConstants, type KernelSource } from './pipelines';

const FORWARD: KernelSource = { label: 'train-mlp-forward', code: prelude + forwardSource };
const LOSS: KernelSource = { label: 'train-mlp-loss', code: prelude + lossSource, entryPoint: 'main' };
const LOSS_TOTAL: KernelSource = { ...LOSS, entryPoint: 'total' };
const WEIGHTS: KernelSource = { label: 'train-mlp-backward', code: prelude + backwardSource, entryPoint: 'weights' };
const INPUTS: KernelSource = { ...WEIGHTS, entryPoint: 'inputs' };
const SGD: KernelSource = { label: 'train-mlp-update', code: prelude + updateSource, entryPoint: 'sgd' };
const ADAMW: KernelSource = { ...SGD, entryPoint: 'adamw' };

/** 2-D kernels: 8×8 invocations (CPU adapters like small groups; every GPU takes 64). */
const WG_X = 8;
const WG_Y = 8;
const WG = 64;
/** The optimizer's grid-stride loop runs in at most this many workgroups. */
const MAX_UPDATE_GROUPS = 4096;
/** Batch rows of at most this many bytes go up at once (a chunk of steps); and at most this many steps per submit. */
const SCHEDULE_CHUNK_BYTES = 4 * 2 ** 20;
const MAX_CHUNK_STEPS = 64;
/** The step table's entries (slot, c1, c2, pad) are 16 bytes. */
const STEP_BYTES = 16;

/** Inner units run by these kernels in this realm (a page's worker exposes it: tests check the GPU really trained). */
export const gpuTrainStats = { units: 0, steps: 0 };

interface LayerPlan {
  din: number;
  dout: number;
  uniform: GPUBuffer;
  /** Post-activation outputs [B, dout] (logits for the last layer). */
  out: GPUBuffer;
}

function ceilDiv(a: number, b: number) {
  return Math.ceil(a / b);
}

function stepWords(slot: number, c1: number, c2: number): Uint32Array<ArrayBuffer> {
  const w = new Uint32Array(4);
  w[0] = slot;
  new Float32Array(w.buffer).set([c1, c2], 1);
  return w;
}

/**
 * One unit's GPU state: the slice, θ and the optimizer state, activations and gradients for a
 * batch, and the bind groups of every kernel launch, built once and reused by every step.
 */
class MlpTrainer {
  private readonly pool: BufferPool;
  private readonly owned: GPUBuffer[] = [];
  /** The bytes asked for each buffer: bindings take exactly these (a pooled buffer may be up to twice as big, past the binding limit). */
  private readonly bytes = new Map<GPUBuffer, number>();
  private readonly B: number;
  private readonly P: number;
  private readonly layers: LayerPlan[] = [];
  private readonly theta: GPUBuffer;
  private readonly m: GPUBuffer;
  private readonly v: GPUBuffer;
  private readonly idx: GPUBuffer;
  private readonly step: GPUBuffer;
  private readonly losses: GPUBuffer;
  private readonly forwardPasses: { pipeline: GPUComputePipeline; bind: GPUBindGroup; groups: [number, number] }[] = [];
  private readonly lossPasses: { pipeline: GPUComputePipeline; bind: GPUBindGroup; groups: [number, number] }[] = [];
  private readonly backwardPasses: { pipeline: GPUComputePipeline; bind: GPUBindGroup; groups: [number, number] }[] = [];
  private readonly updatePass: { pipeline: GPUComputePipeline; bind: GPUBindGroup; groups: [number, number] };

  constructor(
    private readonly device: GPUDevice,
    private readonly spec: MlpInnerSpec,
    private readonly rows: number,
    x: Float32Array,
    y: Float32Array,
  ) {
    this.pool = poolFor(device);
    // GPUBufferUsage is a global that Node gets only once WebGPU is installed: read it here, not at import.
    const STORAGE = GPUBufferUsage.STORAGE;
    const { layers: widths, optimizer: o } = spec;
    const L = widths.length - 1;
    const B = (this.B = Math.min(spec.batchSize, rows));
    const tensors = mlpTensors(widths);
    this.P = tensors.reduce((s, t) => s + t.size, 0);
    const P = this.P;
    const xBuf = this.upload(x);
    const labels = this.upload(Uint32Array.from(y));
    this.theta = this.buffer(P * 4, STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC);
    const grad = this.buffer(P * 4, STORAGE);
    this.m = this.buffer(o.type === 'adamw' ? P * 4 : 4, STORAGE | GPUBufferUsage.COPY_DST);
    this.v = this.buffer(o.type === 'adamw' ? P * 4 : 4, STORAGE | GPUBufferUsage.COPY_DST);
    this.idx = this.buffer(B * 4, STORAGE | GPUBufferUsage.COPY_DST);
    this.step = this.buffer(STEP_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.losses = this.buffer((spec.steps + 1) * 4, STORAGE | GPUBufferUsage.COPY_SRC);
    const rowLoss = this.buffer(B * 4, STORAGE);
    // The gradient at a layer's outputs alternates between two buffers, layer by layer.
    const widest = Math.max(...widths.slice(1));
    const dz = [this.buffer(B * widest * 4, STORAGE), this.buffer(B * widest * 4, STORAGE)];

    for (let i = 0; i < L; i++) {
      const [din, dout] = [widths[i], widths[i + 1]];
      const words = new Uint32Array([B, din, dout, tensors[2 * i].offset, tensors[2 * i + 1].offset, i < L - 1 ? 1 : 0, 0, 0]);
      this.layers.push({ din, dout, uniform: this.upload(words, GPUBufferUsage.UNIFORM), out: this.buffer(B * dout * 4, STORAGE) });
    }
    const input = (i: number) => (i === 0 ? xBuf : this.layers[i - 1].out);
    const gather = (i: number) => ({ GATHER: i === 0 ? 1 : 0 });

    this.layers.forEach((layer, i) => {
      this.forwardPasses.push(this.launch(FORWARD, { WG_X, WG_Y, ...gather(i) }, [layer.uniform, this.idx, input(i), this.theta, layer.out], [ceilDiv(layer.dout, WG_X), ceilDiv(B, WG_Y)]));
    });
    const head = this.upload(new Uint32Array([B, widths[L], 0, 0]), GPUBufferUsage.UNIFORM);
    this.lossPasses.push(this.launch(LOSS, { WG }, [head, this.idx, labels, this.layers[L - 1].out, dz[0], rowLoss], [ceilDiv(B, WG), 1]));
    this.lossPasses.push(this.launch(LOSS_TOTAL, { WG }, { 0: head, 5: rowLoss, 6: this.step, 7: this.losses }, [1, 1]));
    for (let i = L - 1, at = 0; i >= 0; i--, at ^= 1) {
      const layer = this.layers[i];
      this.backwardPasses.push(this.launch(WEIGHTS, { WG_X, WG_Y, ...gather(i) }, [layer.uniform, this.idx, input(i), dz[at], grad], [ceilDiv(layer.dout, WG_X), ceilDiv(layer.din + 1, WG_Y)]));
      if (i > 0) {
        this.backwardPasses.push(this.launch(INPUTS, { WG_X, WG_Y, GATHER: 0 }, { 0: layer.uniform, 2: input(i), 3: dz[at], 5: this.theta, 6: dz[at ^ 1] }, [ceilDiv(layer.din, WG_X), ceilDiv(B, WG_Y)]));
      }
    }
    const optWords = new Uint32Array(8);
    new Float32Array(optWords.buffer).set([o.lr, o.weightDecay, o.beta1, 1 - o.beta1, o.beta2, 1 - o.beta2, o.eps]);
    optWords[7] = P;
    const opt = this.upload(optWords, GPUBufferUsage.UNIFORM);
    const groups: [number, number] = [Math.min(MAX_UPDATE_GROUPS, ceilDiv(P, WG)), 1];
    this.updatePass =
      o.type === 'adamw'
        ? this.launch(ADAMW, { WG }, [opt, this.step, this.theta, grad, this.m, this.v], groups)
        : this.launch(SGD, { WG }, { 0: opt, 2: this.theta, 3: grad }, groups);
  }

  private buffer(bytes: number, usage: GPUBufferUsageFlags): GPUBuffer {
    const b = this.pool.acquire(bytes, usage);
    this.owned.push(b);
    this.bytes.set(b, bytes);
    return b;
  }

  private upload(data: Float32Array | Uint32Array, usage: GPUBufferUsageFlags = GPUBufferUsage.STORAGE): GPUBuffer {
    const b = this.buffer(data.byteLength, usage | GPUBufferUsage.COPY_DST);
    this.device.queue.writeBuffer(b, 0, data as Float32Array<ArrayBuffer>);
    return b;
  }

  /** A kernel launch: its pipeline, its bindings (a list from binding 0, or by binding number) and its workgroup counts. */
  private launch(kernel: KernelSource, constants: KernelConstants, buffers: GPUBuffer[] | Record<number, GPUBuffer>, groups: [number, number]) {
    const pipeline = getPipeline(this.device, kernel, constants);
    const entries = Object.entries(buffers).map(([binding, buffer]) => ({ binding: Number(binding), resource: { buffer, size: this.bytes.get(buffer) } }));
    return { pipeline, bind: this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }), groups };
  }

  private dispatch(pass: GPUComputePassEncoder, launches: readonly { pipeline: GPUComputePipeline; bind: GPUBindGroup; groups: [number, number] }[]) {
    for (const l of launches) {
      pass.setPipeline(l.pipeline);
      pass.setBindGroup(0, l.bind);
      pass.dispatchWorkgroups(l.groups[0], l.groups[1]);
    }
  }

  /** Forward and loss of θ on the rows in `idx` into loss slot `slot`: the check batch's loss. */
  private encodeLoss(encoder: GPUCommandEncoder) {
    const pass = encoder.beginComputePass();
    this.dispatch(pass, this.forwardPasses);
    this.dispatch(pass, this.lossPasses);
    pass.end();
  }

  /** The H steps from `params`; θ_after, the mean of the steps' losses and θ_after's loss on the check batch. */
  async train(params: Float32Array): Promise<{ theta: Float32Array; trainLoss: number; checkLoss: number }> {
    const { device, spec, B, P } = this;
    const H = spec.steps;
    const { beta1, beta2 } = spec.optimizer;
    device.queue.writeBuffer(this.theta, 0, params as Float32Array<ArrayBuffer>);
    const table = new Uint32Array((H + 1) * 4);
    for (let t = 1; t <= H; t++) table.set(stepWords(t - 1, 1 - beta1 ** t, 1 - beta2 ** t), (t - 1) * 4);
    table.set(stepWords(H, 1, 1), H * 4);
    const stepTable = this.upload(table, GPUBufferUsage.COPY_SRC);
    const batches = batchSchedule(this.rows, H, spec.batchSize, spec.seed);
    const chunk = Math.max(1, Math.min(MAX_CHUNK_STEPS, Math.floor(SCHEDULE_CHUNK_BYTES / (B * 4))));
    const schedule = this.buffer(Math.min(chunk, H) * B * 4, GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    const first = device.createCommandEncoder();
    if (spec.optimizer.type === 'adamw') {
      first.clearBuffer(this.m);
      first.clearBuffer(this.v);
    }
    device.queue.submit([first.finish()]);
    for (let c0 = 0; c0 < H; c0 += chunk) {
      const n = Math.min(chunk, H - c0);
      const rows = new Uint32Array(n * B);
      for (let s = 0; s < n; s++) rows.set(batches[c0 + s], s * B);
      device.queue.writeBuffer(schedule, 0, rows);
      const encoder = device.createCommandEncoder();
      for (let s = 0; s < n; s++) {
        encoder.copyBufferToBuffer(schedule, s * B * 4, this.idx, 0, B * 4);
        encoder.copyBufferToBuffer(stepTable, (c0 + s) * STEP_BYTES, this.step, 0, STEP_BYTES);
        const pass = encoder.beginComputePass();
        this.dispatch(pass, this.forwardPasses);
        this.dispatch(pass, this.lossPasses);
        this.dispatch(pass, this.backwardPasses);
        this.dispatch(pass, [this.updatePass]);
        pass.end();
      }
      device.queue.submit([encoder.finish()]);
      // Keeps at most one chunk queued: the schedule's uploads stay small, the device responsive.
      if (c0 + n < H) await device.queue.onSubmittedWorkDone();
    }
    // The check batch: the same forward and loss kernels on θ_after, into the last slot.
    device.queue.writeBuffer(this.idx, 0, checkRows(this.rows, spec.batchSize, spec.seed));
    device.queue.writeBuffer(this.step, 0, stepWords(H, 1, 1));
    const encoder = device.createCommandEncoder();
    this.encodeLoss(encoder);
    const out = await this.read(encoder, [this.theta, P * 4], [this.losses, (H + 1) * 4]);
    const losses = out.subarray(P);
    let sum = 0;
    for (let t = 0; t < H; t++) sum += losses[t];
    gpuTrainStats.units++;
    gpuTrainStats.steps += H;
    return { theta: out.slice(0, P), trainLoss: sum / Math.max(1, H), checkLoss: losses[H] };
  }

  /** The loss of `theta` on the unit's check batch (θ then stays replaced). */
  async checkLoss(theta: Float32Array): Promise<number> {
    const H = this.spec.steps;
    this.device.queue.writeBuffer(this.theta, 0, theta as Float32Array<ArrayBuffer>);
    this.device.queue.writeBuffer(this.idx, 0, checkRows(this.rows, this.spec.batchSize, this.spec.seed));
    this.device.queue.writeBuffer(this.step, 0, stepWords(H, 1, 1));
    const encoder = this.device.createCommandEncoder();
    this.encodeLoss(encoder);
    const out = await this.read(encoder, [this.losses, (H + 1) * 4]);
    return out[H];
  }

  /** Copies each (buffer, bytes) one after another into one staging buffer, submits and maps it. */
  private async read(encoder: GPUCommandEncoder, ...parts: [GPUBuffer, number][]): Promise<Float32Array> {
    const total = parts.reduce((s, [, bytes]) => s + bytes, 0);
    const staging = this.pool.acquire(total, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    let at = 0;
    for (const [buffer, bytes] of parts) {
      encoder.copyBufferToBuffer(buffer, 0, staging, at, bytes);
      at += bytes;
    }
    this.device.queue.submit([encoder.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, total);
      const out = new Float32Array(staging.getMappedRange(0, total).slice(0));
      staging.unmap();
      return out;
    } finally {
      this.pool.release(staging);
    }
  }

  release() {
    this.pool.release(...this.owned.splice(0));
  }
}

/** Runs `fn` on a trainer for the unit, turning any WebGPU validation or memory error into a thrown one. */
async function withTrainer<T>(device: GPUDevice, spec: MlpInnerSpec, x: Float32Array, y: Float32Array, fn: (t: MlpTrainer) => Promise<T>): Promise<T> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let trainer: MlpTrainer | null = null;
  let result: T | undefined;
  let failure: unknown = null;
  try {
    trainer = new MlpTrainer(device, spec, y.length, x, y);
    result = await fn(trainer);
  } catch (err) {
    failure = err;
  }
  const errors = [await device.popErrorScope(), await device.popErrorScope()].filter((e) => e !== null);
  trainer?.release();
  if (errors.length) throw new Error(`WebGPU training kernels failed: ${errors.map((e) => e.message).join('; ')}`);
  if (failure) throw failure;
  return result as T;
}

/**
 * The inner loop on the GPU, as protocol/train-loop.ts trainInner computes it in float32: Δ = θ_round −
 * θ_after, the mean training loss of the H steps and θ_after's loss on the check batch.
 */
export async function gpuTrainInner(device: GPUDevice, spec: MlpInnerSpec, params: Float32Array, x: Float32Array, y: Float32Array): Promise<{ delta: Float32Array; trainLoss: number; checkLoss: number }> {
  return withTrainer(device, spec, x, y, async (t) => {
    const r = await t.train(params);
    return { delta: deltaOf(params, r.theta), trainLoss: r.trainLoss, checkLoss: r.checkLoss };
  });
}

function deltaOf(params: Float32Array, theta: Float32Array): Float32Array {
  const delta = new Float32Array(params.length);
  for (let i = 0; i < params.length; i++) delta[i] = params[i] - theta[i];
  return delta;
}

/** A whole train unit on the GPU: the output as protocol/train-loop.ts runTrainUnit encodes it (int8: the check loss of the applied update). */
export async function gpuTrainUnit(device: GPUDevice, spec: MlpInnerSpec, compress: Compression, params: Float32Array, x: Float32Array, y: Float32Array): Promise<Float32Array> {
  return withTrainer(device, spec, x, y, async (t) => {
    const r = await t.train(params);
    const encoded = encodeDelta(mlpModel(spec.layers), compress, params, deltaOf(params, r.theta));
    const checkLoss = encoded.applied ? await t.checkLoss(encoded.applied) : r.checkLoss;
    return encoded.pack(r.trainLoss, checkLoss);
  });
}
