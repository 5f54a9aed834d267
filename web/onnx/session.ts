// The only importer of onnxruntime-web. Today: inference sessions on the webgpu execution
// provider that share the caller's GPUDevice and keep inputs and outputs on the GPU, so a caller
// (the benchmark) can time ORT's kernels without uploads and downloads.
import * as ort from 'onnxruntime-web';

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

/** Usage flags ORT needs on buffers it reads through Tensor.fromGpuBuffer. */
export const ORT_BUFFER_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/**
 * The GPUDevice onnxruntime-web computes on. ORT (1.30, JSEP build) makes its own device and
 * ignores one set through env.webgpu.device, so a caller that wants to share buffers with ORT
 * (the benchmark) takes ORT's device and runs everything else on it.
 */
export async function ortGpuDevice(warmUpModel: Uint8Array): Promise<GPUDevice> {
  // The device exists once the webgpu backend has started, i.e. after a first session.
  const session = await createGpuSession(warmUpModel);
  await session.release();
  const device = (await ort.env.webgpu.device) as GPUDevice | undefined;
  if (!device) throw new Error('onnxruntime-web did not expose its GPUDevice');
  return device;
}

/** A session for `model` (ONNX bytes) on the webgpu EP, on the device ortGpuDevice() returns. */
export async function createGpuSession(model: Uint8Array): Promise<GpuSession> {
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], preferredOutputLocation: 'gpu-buffer' });
  const feeds = (inputs: Record<string, GpuTensorRef>) =>
    Object.fromEntries(Object.entries(inputs).map(([name, t]) => [name, ort.Tensor.fromGpuBuffer(t.buffer, { dataType: 'float32', dims: t.dims })]));
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
