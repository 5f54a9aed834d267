// The native volunteer's compute: the page's compute worker (web/worker/compute.worker.ts) for Node.
// Matmul and attention units run web/gpu's WGSL kernels — the same files, tuned by the same
// autotuner — on Dawn; ONNX units run on onnxruntime-node. A `cpu` backend runs matmul and
// attention as the page's CPU backend does (the same ONNX graphs) on onnxruntime-node's CPU EP, and
// `auto` measures both on a short matmul and takes the faster, as the page does. Train units run the
// page's WGSL training loop (web/gpu/train-mlp.ts) for the MLP on WebGPU, and the page's step graph
// (web/onnx/train-step.ts) on onnxruntime-node for the transformer and, on `cpu`, for either family.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { ONNX_MODEL_INPUT, type DeviceInfo, type WorkUnitSpec } from '../../protocol';
import type { Compute } from '../../../web/worker/api';
import { fasterBackend, type Backend } from '../../../web/worker/backend-choice';
import { measureGflops, type MatmulFn } from '../../../web/worker/measure';
import { gpuAttention } from '../../../web/gpu/attention';
import { tuneKernels, tuningKey, type TuningCache, type TuningResult } from '../../../web/gpu/autotune';
import { openGpu, type Gpu } from '../../../web/gpu/device';
import { describeConfig, gpuMatmul, MATMUL_CANDIDATES } from '../../../web/gpu/matmul';
import { innerSpecOf, runTrainUnit } from '../../protocol/train-loop';
import { gpuTrainUnit } from '../../../web/gpu/train-mlp';
import { graphUnitSpecOf } from '../../../web/onnx/train-step';
import { OrtKernels, OrtSessions, ortProblem } from './onnx';
import { installWebGpu } from './webgpu';

export type BackendChoice = Backend | 'auto';

export interface NativeComputeOptions {
  /** Which backend computes matmul and attention units (default auto: the faster on a short matmul). */
  backend?: BackendChoice;
  /** False: skip the kernel autotuner and run the default tiling (tests, a quick start). */
  tune?: boolean;
  /** JSON file keeping the autotuner's choice per adapter (absent: tune on every start). */
  tuningFile?: string;
  log?: (msg: string) => void;
}

/** A JSON file as the autotuner's cache (the page keeps it in IndexedDB). */
export function fileTuningCache(file: string): TuningCache {
  const read = (): Record<string, Awaited<ReturnType<TuningCache['get']>>> => {
    try {
      return JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      return {};
    }
  };
  return {
    get: async (key) => read()[key],
    put: async (key, value) => {
      const all = { ...read(), [key]: { ...value, tunedAt: Date.now() } };
      writeFileSync(`${file}.tmp`, JSON.stringify(all, null, 2) + '\n', { mode: 0o600 });
      renameSync(`${file}.tmp`, file);
    },
  };
}

const noCache: TuningCache = { get: async () => undefined, put: async () => undefined };

export const NATIVE_USER_AGENT = `tabgrid-native (Node ${process.version}; Dawn; ${process.platform}-${process.arch})`;

export class NativeCompute {
  gpu: Gpu | null = null;
  tuning: TuningResult | null = null;
  backend: Backend = 'webgpu';
  /** Why WebGPU is not available here (null when it is). */
  webgpuProblem: string | null = null;
  onnxProblem: string | null = null;
  measured: { webgpu: number | null; cpu: number | null } = { webgpu: null, cpu: null };
  private lostReason: string | null = null;
  /** Counts devices opened: a device this object destroyed itself (a restart, closing) is no loss to report. */
  private generation = 0;
  private readonly sessions = new OrtSessions();
  private cpuKernels: OrtKernels | null = null;
  private readonly log: (msg: string) => void;

  private constructor(private readonly opts: NativeComputeOptions) {
    this.log = opts.log ?? (() => {});
  }

  /** Opens the GPU (and tunes its kernels), loads onnxruntime-node and picks the backend. */
  static async start(opts: NativeComputeOptions = {}): Promise<NativeCompute> {
    const c = new NativeCompute(opts);
    await c.openDevice();
    c.onnxProblem = await ortProblem();
    if (c.onnxProblem) c.log(`${c.onnxProblem}: no ONNX units, and no CPU backend`);
    else c.cpuKernels = new OrtKernels();
    await c.chooseBackend(opts.backend ?? 'auto');
    return c;
  }

  private async openDevice() {
    try {
      await installWebGpu();
      this.lostReason = null;
      const generation = ++this.generation;
      this.gpu = await openGpu((reason) => {
        if (generation !== this.generation) return;
        this.lostReason = reason;
        this.log(`GPU device lost: ${reason}`);
      });
      this.webgpuProblem = null;
      const cache = this.opts.tuningFile ? fileTuningCache(this.opts.tuningFile) : noCache;
      if (this.opts.tune !== false) {
        this.tuning = await tuneKernels(this.gpu.device, tuningKey(this.gpu.info.adapter, this.gpu.info.limits), cache);
        this.log(`kernels: ${this.tuning.summary}`);
      }
    } catch (err) {
      this.gpu = null;
      this.webgpuProblem = (err as Error).message;
    }
  }

  private liveDevice(): GPUDevice {
    if (!this.gpu || this.lostReason) throw new Error(this.lostReason ? `GPU device lost: ${this.lostReason}` : `no WebGPU: ${this.webgpuProblem}`);
    return this.gpu.device;
  }

  /** C = A·B on the chosen backend. */
  readonly matmul: MatmulFn = (a, b, m, k, n) => {
    if (this.backend === 'cpu') return this.cpu().matmul(a, b, m, k, n);
    return gpuMatmul(this.liveDevice(), a, b, { m, k, n }, this.tuning?.config ?? MATMUL_CANDIDATES[0]);
  };

  private cpu(): OrtKernels {
    if (!this.cpuKernels) throw new Error(this.onnxProblem ?? 'no CPU backend');
    return this.cpuKernels;
  }

  private async chooseBackend(choice: BackendChoice) {
    const speed = async (backend: Backend) => {
      if (backend === 'webgpu' ? !this.gpu : !this.cpuKernels) return null;
      this.backend = backend;
      try {
        await measureGflops(this.matmul, 64, 0); // first run: pipelines, sessions
        return await measureGflops(this.matmul);
      } catch {
        return null;
      }
    };
    this.measured = { webgpu: choice !== 'cpu' ? await speed('webgpu') : null, cpu: choice !== 'webgpu' ? await speed('cpu') : null };
    if (choice === 'webgpu' && !this.gpu) throw new Error(`--backend webgpu, but WebGPU is not available here: ${this.webgpuProblem}`);
    if (choice === 'cpu' && !this.cpuKernels) throw new Error(`--backend cpu, but ${this.onnxProblem}`);
    this.backend = choice === 'auto' ? fasterBackend(this.measured) : choice;
    if (this.backend === 'cpu' && !this.cpuKernels) throw new Error(`neither WebGPU (${this.webgpuProblem}) nor the CPU backend (${this.onnxProblem}) is available`);
  }

  /** The kinds of unit this machine runs: matmul, attention and train, and onnx where onnxruntime-node loaded. */
  kinds(): WorkUnitSpec['kind'][] {
    return this.onnxProblem ? ['matmul', 'attention', 'train'] : ['matmul', 'attention', 'onnx', 'train'];
  }

  /** The hello's DeviceInfo, in the page's shape. */
  deviceInfo(): DeviceInfo {
    const common = { userAgent: NATIVE_USER_AGENT, kinds: this.kinds(), measured: this.measured, threads: cpus().length };
    const cpuName = `CPU (onnxruntime-node, ${cpus().length} cores)`;
    if (!this.gpu) return { backend: 'cpu', adapter: cpuName, features: [], ...common };
    const adapter = this.backend === 'cpu' ? `${cpuName}; GPU: ${this.gpu.info.adapter}` : `${this.gpu.info.adapter} (native, Dawn)`;
    return { ...this.gpu.info, ...common, backend: this.backend, adapter: adapter.slice(0, 200) };
  }

  describe(): string {
    const speeds = `WebGPU ${this.measured.webgpu?.toFixed(2) ?? '–'} GFLOP/s · CPU ${this.measured.cpu?.toFixed(2) ?? '–'} GFLOP/s`;
    const tiling = this.tuning ? describeConfig(this.tuning.config) : 'default tiling';
    return `${this.deviceInfo().adapter}; computing on ${this.backend === 'cpu' ? 'the CPU' : `WebGPU (${tiling})`}; ${speeds}`;
  }

  /** Runs one unit: the CoordinatorClient's compute. */
  readonly compute: Compute = async (wu, inputs, shard) => {
    if (wu.kind === 'matmul') {
      const { m, k, n } = wu.params;
      return this.matmul(inputs.a, inputs.b, m, k, n);
    }
    if (wu.kind === 'attention') {
      const p = wu.params;
      if (this.backend === 'cpu') return this.cpu().attention(inputs.q, inputs.k, inputs.v, p);
      return gpuAttention(this.liveDevice(), inputs.q, inputs.k, inputs.v, { heads: 1, rows: p.rows, q0: p.q0, seq: p.seq, d: p.d, causal: p.causal }, this.tuning?.attention);
    }
    if (wu.kind === 'train') {
      const p = wu.params;
      // WebGPU trains the MLP on the WGSL loop. The transformer (onnxruntime-web's webgpu EP, the
      // page's GPU trainer, does not run in Node) and, on the CPU backend, either family train on
      // the page's step graph on onnxruntime-node — ~25× the TS loop, which runs where it did not load.
      if (this.backend !== 'cpu' && !('model' in p)) {
        return gpuTrainUnit(this.liveDevice(), { ...innerSpecOf(p), layers: p.layers }, p.compress, inputs.params, inputs.x, inputs.y);
      }
      const y = inputs.y ?? null;
      return this.cpuKernels ? this.cpuKernels.train(graphUnitSpecOf(p), p.compress, inputs.params, inputs.x, y) : runTrainUnit(innerSpecOf(p), p.compress, inputs.params, inputs.x, y);
    }
    if (wu.kind === 'onnx') {
      if (this.onnxProblem) throw new Error(this.onnxProblem);
      const p = wu.params;
      if (!this.sessions.has(p.model)) this.sessions.add(p.model, await shard(wu.inputs[ONNX_MODEL_INPUT]));
      const feeds = p.inputs.map((s) => ({ name: s.name, shape: s.shape, data: inputs[s.name] }));
      return this.sessions.runConcat(p.model, feeds, p.outputs.map((o) => o.name));
    }
    throw new Error(`this volunteer cannot run ${(wu as { kind: string }).kind} units`);
  };

  /** The EP the last ONNX unit ran on. */
  get onnxEp(): string | null {
    return this.sessions.lastEp;
  }

  /**
   * A fresh GPU device, for a unit that hangs (the client's restartCompute). The old device is
   * dropped, not destroyed: Dawn's destroy() blocks this thread until the device's queued work
   * has finished, which for a hung kernel is never.
   */
  async restart() {
    this.gpu = null;
    this.generation++;
    await this.openDevice();
  }

  /** Releases the device once no unit is computing (destroy() waits for the GPU to go idle). */
  close() {
    this.destroyDevice();
  }

  private destroyDevice() {
    const device = this.gpu?.device;
    this.gpu = null;
    this.generation++;
    device?.destroy();
  }
}
