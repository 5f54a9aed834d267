// The CPU matmul backend: onnxruntime-web's WebAssembly EP (SIMD, threads when cross-origin
// isolated) running a one-node MatMul graph built in code. Its kernels (MLAS) are far faster than
// software WebGPU on a machine without a GPU.
import { matmulModel } from '../../coordinator/protocol/onnx-builder';
import { createSession, runSession, type Session } from '../onnx/runtime';

let session: Promise<Session> | null = null;

/** The MatMul session: loads ORT's plain wasm build on first use. Awaiting it runs nothing. */
export function prepareCpuMatmul(): Promise<Session> {
  session ??= createSession(matmulModel(), 'wasm');
  session.catch(() => (session = null));
  return session;
}

/** C (m×n) = A (m×k) · B (k×n), row-major float32, on the CPU. */
export async function cpuMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Promise<Float32Array> {
  if (a.length !== m * k || b.length !== k * n) throw new Error(`matmul inputs do not match ${m}×${k}·${k}×${n}`);
  const [c] = await runSession(
    await prepareCpuMatmul(),
    [
      { name: 'a', shape: [m, k], data: a },
      { name: 'b', shape: [k, n], data: b },
    ],
    ['c'],
  );
  return c;
}
