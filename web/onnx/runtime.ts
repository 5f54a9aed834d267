// The only importer of onnxruntime-web. Loaded lazily (their own chunks), so the compute worker's
// script stays free of side effects when ORT's WebAssembly threads re-load an ORT chunk, and a page
// loads only the runtime the unit in hand needs: the plain SIMD-threaded build (`onnxruntime-web/wasm`,
// ort-wasm-simd-threaded.wasm, 14 MB, ~2.6 MB brotli) for the wasm EP — the CPU backend and ONNX
// models on the CPU — and the JSEP build (`onnxruntime-web`, 28 MB, ~4.4 MB brotli) only for the
// WebGPU EP; a WebGPU matmul or attention unit (our WGSL kernels) loads neither. The .wasm files are
// bundled by Vite next to the chunks and served by the coordinator: no CDN.
// Sessions for work units (CPU/wasm and WebGPU EPs), and GPU-resident sessions for the benchmark.
import type * as OrtModule from 'onnxruntime-web';
import ortJsepWasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm?url';
import ortPlainWasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url';

export type Ort = typeof OrtModule;
export type Session = OrtModule.InferenceSession;
/** Execution providers we use: onnxruntime-web's WebGPU EP, and its WebAssembly (CPU) EP. */
export type ExecutionProvider = 'webgpu' | 'wasm';

/** One ORT build per EP: each has its own module, so tensors go to sessions of the same build. */
const builds: Partial<Record<ExecutionProvider, Promise<Ort>>> = {};
const buildOf = new WeakMap<Session, Ort>();
let threads = 1;

/**
 * Sets the CPU thread count. Must run before the first session: ORT reads it once. Threads need
 * cross-origin isolation (SharedArrayBuffer); without it the wasm EP runs one thread.
 */
export function configureThreads(wanted: number): number {
  threads = globalThis.crossOriginIsolated && !loadedCrossOrigin() ? Math.max(1, Math.floor(wanted)) : 1;
  return threads;
}

/**
 * Whether this script came from another origin than the worker's own (the widget on another site
 * imports the coordinator's worker script from a blob). ORT then cannot use its bundled glue code
 * unless it is told where the .wasm is, and it runs one thread (no other glue file is served).
 */
function loadedCrossOrigin(): boolean {
  return typeof location !== 'undefined' && new URL(import.meta.url).origin !== location.origin;
}

/** The ORT build for an EP: `wasm`, the plain SIMD-threaded one; `webgpu`, the JSEP one. */
export function loadOrt(ep: ExecutionProvider): Promise<Ort> {
  tapOrtLog();
  const build = (builds[ep] ??= (ep === 'wasm' ? (import('onnxruntime-web/wasm') as Promise<Ort>) : import('onnxruntime-web')).then((m) => {
    if (loadedCrossOrigin()) {
      m.env.wasm.wasmPaths = { wasm: new URL(ep === 'wasm' ? ortPlainWasmUrl : ortJsepWasmUrl, import.meta.url).href };
    }
    m.env.wasm.numThreads = threads; // explicit: ORT's default is 1 on small machines
    m.env.logLevel = 'error';
    return m;
  }));
  build.catch(() => delete builds[ep]);
  return build;
}

export interface SessionOptions {
  /** Leave the outputs on the GPU (webgpu EP): tensors to feed back or read (runSessionHeld). */
  outputsOnGpu?: boolean;
}

export async function createSession(model: Uint8Array, ep: ExecutionProvider, options: SessionOptions = {}): Promise<Session> {
  return makeSession(await loadOrt(ep), model, ep, options);
}

async function makeSession(o: Ort, model: Uint8Array, ep: ExecutionProvider, { outputsOnGpu = false }: SessionOptions, verbose = false): Promise<Session> {
  const session = await o.InferenceSession.create(model, {
    executionProviders: [ep],
    graphOptimizationLevel: 'all',
    ...(outputsOnGpu ? { preferredOutputLocation: 'gpu-buffer' as const } : {}),
    ...(verbose ? { logSeverityLevel: 0 as const } : {}),
  });
  buildOf.set(session, o);
  return session;
}

// --- Where ORT placed the nodes ------------------------------------------------------------------
// An op the webgpu EP has no kernel for runs on ORT's CPU EP, silently, with copies between the two
// around it. ORT says so only in its log: at verbose level, session creation lists the nodes placed
// on each EP ("Node(s) placed on [CPUExecutionProvider]…", one "  Op (name)" line each). Its
// WebAssembly module prints that through a console.error it binds when a build starts, so the tap
// is set before any build starts and passes every other line through.

let ortLogListener: ((line: string) => void) | null = null;
let logTapped = false;

function tapOrtLog() {
  if (logTapped) return;
  logTapped = true;
  const original = console.error.bind(console);
  console.error = (...args: unknown[]) => {
    if (ortLogListener && typeof args[0] === 'string' && /\[[VI]:onnxruntime/.test(args[0])) ortLogListener(args[0]);
    else original(...args);
  };
}

/**
 * A session (createSession's) and the nodes ORT placed on its CPU EP, as "Op (name)": [] when every
 * node runs on the EP asked for, null when ORT's log named no placement (another ORT version's log).
 */
export async function createSessionWithPlacement(model: Uint8Array, ep: ExecutionProvider, options: SessionOptions = {}): Promise<{ session: Session; cpuNodes: string[] | null }> {
  const o = await loadOrt(ep);
  let onCpu: string[] | null = null;
  let current = '';
  const previous = ortLogListener;
  ortLogListener = (line) => {
    const placed = /placed on \[(\w+)\]/.exec(line);
    if (placed) {
      current = placed[1];
      onCpu ??= [];
      return;
    }
    const node = /VerifyEachNodeIsAssignedToAnEp\]\s{3,}(\S+ \(.*\))\s*$/.exec(line);
    if (node && current === 'CPUExecutionProvider') onCpu?.push(node[1]);
  };
  try {
    // Verbose: the session's creation logs its placements; its runs log nothing more at this level.
    const session = await makeSession(o, model, ep, options, true);
    return { session, cpuNodes: onCpu };
  } finally {
    ortLogListener = previous;
  }
}

export interface Feed {
  name: string;
  shape: readonly number[];
  data: Float32Array;
}

/** Runs a session; returns the named outputs as float32, in order (copies: the tensors are freed). */
export async function runSession(session: Session, feeds: Feed[], outputs: string[]): Promise<Float32Array[]> {
  const held = await runSessionHeld(session, feeds, outputs);
  try {
    return await Promise.all(held.map(readHeld));
  } finally {
    for (const t of held) freeHeld(t);
  }
}

/**
 * Runs `work` on the webgpu EP's device and fails when the GPU reported an error meanwhile. ORT's
 * WebGPU kernels can fail shader compilation or validation on some ops and adapters (seen: CumSum,
 * Pad 'wrap' on SwiftShader) and then return zeros instead of throwing: an error scope catches that.
 */
export async function withGpuErrorCheck<T>(work: () => Promise<T>): Promise<T> {
  const o = await loadOrt('webgpu');
  const device = (await o.env.webgpu.device) as GPUDevice;
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let result: { value: T } | null = null;
  let thrown: unknown = null;
  try {
    result = { value: await work() };
  } catch (err) {
    thrown = err;
  }
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (thrown) throw thrown;
  const gpuError = validation ?? oom;
  if (gpuError) throw new Error(`WebGPU error during the run: ${gpuError.message.split('\n')[0].slice(0, 200)}`);
  return result!.value;
}

/** Runs a WebGPU-EP session (runSession) and fails when the GPU reported an error during the run. */
export function runSessionOnWebgpu(session: Session, feeds: Feed[], outputs: string[]): Promise<Float32Array[]> {
  return withGpuErrorCheck(() => runSession(session, feeds, outputs));
}

// --- Held outputs: a session's outputs kept as ORT tensors (on the GPU with outputsOnGpu), fed back
// as inputs without a copy, read or freed by the caller.

export type HeldTensor = OrtModule.Tensor;
/** A feed: host data, or a tensor a session of the same build returned. */
export type HeldFeed = Feed | { name: string; shape: readonly number[]; value: HeldTensor };

export async function runSessionHeld(session: Session, feeds: HeldFeed[], outputs: string[]): Promise<HeldTensor[]> {
  const o = buildOf.get(session);
  if (!o) throw new Error('not a session of this runtime');
  const input: Record<string, OrtModule.Tensor> = {};
  for (const f of feeds) input[f.name] = 'value' in f ? f.value : new o.Tensor('float32', f.data, f.shape as number[]);
  const result = await session.run(input, outputs);
  const bad = outputs.find((name) => result[name]?.type !== 'float32');
  if (bad !== undefined) {
    for (const t of Object.values(result)) t.dispose();
    throw new Error(`output '${bad}' is missing or not float32`);
  }
  return outputs.map((name) => result[name]);
}

/** A held tensor's data on the host (a GPU one is downloaded), a copy that outlives the tensor. */
export async function readHeld(t: HeldTensor): Promise<Float32Array> {
  return ((await t.getData()) as Float32Array).slice();
}

export function freeHeld(t: HeldTensor): void {
  t.dispose();
}

// --- GPU-resident sessions (the benchmark) -------------------------------------------------------
// Sessions on the webgpu EP that share ORT's GPUDevice and keep inputs and outputs on the GPU, so
// the benchmark can time ORT's kernels without uploads and downloads.

/** A tensor already on the GPU: an ORT-compatible storage buffer and its shape (float32). */
export interface GpuTensorRef {
  buffer: GPUBuffer;
  dims: number[];
}

export interface GpuSession {
  readonly inputNames: readonly string[];
  /** Runs the model on GPU-resident inputs; resolves once the work is submitted, outputs freed. */
  run(inputs: Record<string, GpuTensorRef>): Promise<void>;
  /** Runs the model and reads back the first output (for correctness checks). */
  runAndRead(inputs: Record<string, GpuTensorRef>): Promise<Float32Array>;
  release(): Promise<void>;
}

/** Usage flags ORT needs on buffers it reads through Tensor.fromGpuBuffer (a function: GPUBufferUsage exists only with WebGPU). */
export function ortBufferUsage(): number {
  return GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
}

/**
 * The GPUDevice onnxruntime-web computes on. ORT (1.30, JSEP build) makes its own device and
 * ignores one set through env.webgpu.device, so a caller that wants to share buffers with ORT
 * (the benchmark) takes ORT's device and runs everything else on it.
 */
export async function ortGpuDevice(warmUpModel: Uint8Array): Promise<GPUDevice> {
  // The device exists once the webgpu backend has started, i.e. after a first session.
  const session = await createGpuSession(warmUpModel);
  await session.release();
  const device = (await (await loadOrt('webgpu')).env.webgpu.device) as GPUDevice | undefined;
  if (!device) throw new Error('onnxruntime-web did not expose its GPUDevice');
  return device;
}

/** A session for `model` (ONNX bytes) on the webgpu EP, on the device ortGpuDevice() returns. */
export async function createGpuSession(model: Uint8Array): Promise<GpuSession> {
  const o = await loadOrt('webgpu');
  const session = await o.InferenceSession.create(model, { executionProviders: ['webgpu'], preferredOutputLocation: 'gpu-buffer' });
  const feeds = (inputs: Record<string, GpuTensorRef>) =>
    Object.fromEntries(Object.entries(inputs).map(([name, t]) => [name, o.Tensor.fromGpuBuffer(t.buffer, { dataType: 'float32', dims: t.dims })]));
  return {
    inputNames: session.inputNames,
    async run(inputs) {
      const outputs = await session.run(feeds(inputs));
      for (const t of Object.values(outputs)) t.dispose();
    },
    async runAndRead(inputs) {
      const outputs = await session.run(feeds(inputs));
      try {
        return (await outputs[session.outputNames[0]].getData()) as Float32Array;
      } finally {
        for (const t of Object.values(outputs)) t.dispose();
      }
    },
    release: () => session.release(),
  };
}
