// The only importer of onnxruntime-web. Today: inference sessions on the webgpu execution
// provider that share the caller's GPUDevice and keep inputs and outputs on the GPU, so a caller
// (the benchmark) can time ORT's kernels without uploads and downloads.
import * as ort from 'onnxruntime-web';

let sharedDevice: GPUDevice | null = null;

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
 * A session for `model` (ONNX bytes) on the webgpu EP. The first call fixes the GPUDevice ORT
 * uses for the whole page (ORT allows setting it only before its first session).
 */
export async function createGpuSession(model: Uint8Array, device: GPUDevice): Promise<GpuSession> {
  if (!sharedDevice) {
    ort.env.wasm.numThreads = 1;
    ort.env.webgpu.device = device;
    sharedDevice = device;
  } else if (sharedDevice !== device) {
    throw new Error('onnxruntime-web is already bound to another GPUDevice in this page');
  }
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
