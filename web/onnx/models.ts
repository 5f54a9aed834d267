// ONNX sessions by model sha-256, one per execution provider: a stream of units loads a model once.
// WebGPU first when asked for it, falling back to the wasm EP when WebGPU is missing or the WebGPU
// EP cannot create or run the model; a model that failed on WebGPU stays on wasm.
import { createSession, runSession, runSessionOnWebgpu, type ExecutionProvider, type Feed, type Session } from './runtime';

const MAX_MODELS = 4;
const models = new Map<string, Uint8Array>();
const sessions = new Map<string, Promise<Session>>();
const webgpuFailed = new Map<string, string>();

export function hasModel(sha: string): boolean {
  return models.has(sha);
}

/** Keeps a model's bytes (for sessions on either EP), evicting the oldest beyond a few models. */
export function addModel(sha: string, bytes: Uint8Array) {
  models.delete(sha);
  models.set(sha, bytes);
  for (const old of models.keys()) {
    if (models.size <= MAX_MODELS) break;
    models.delete(old);
    for (const ep of ['webgpu', 'wasm']) {
      const key = `${old}:${ep}`;
      void sessions.get(key)?.then((s) => s.release()).catch(() => undefined);
      sessions.delete(key);
    }
  }
}

function session(sha: string, ep: ExecutionProvider): Promise<Session> {
  const key = `${sha}:${ep}`;
  let s = sessions.get(key);
  if (!s) {
    const bytes = models.get(sha);
    if (!bytes) throw new Error(`model ${sha.slice(0, 12)}… is not loaded`);
    s = createSession(bytes, ep);
    s.catch(() => sessions.delete(key));
    sessions.set(key, s);
  }
  return s;
}

export interface ModelRun {
  outputs: Float32Array[];
  /** The EP that produced them. */
  ep: ExecutionProvider;
  /** Why WebGPU was not used, when it was wanted. */
  fallbackReason?: string;
}

export async function runModel(sha: string, feeds: Feed[], outputs: string[], preferred: ExecutionProvider): Promise<ModelRun> {
  let reason = webgpuFailed.get(sha);
  if (preferred === 'webgpu' && !reason) {
    if (!(globalThis.navigator as Navigator | undefined)?.gpu) {
      reason = 'this browser has no WebGPU';
    } else {
      try {
        return { outputs: await runSessionOnWebgpu(await session(sha, 'webgpu'), feeds, outputs), ep: 'webgpu' };
      } catch (err) {
        reason = `the WebGPU EP cannot run this model: ${(err as Error).message}`.slice(0, 300);
        webgpuFailed.set(sha, reason);
      }
    }
  }
  const out = await runSession(await session(sha, 'wasm'), feeds, outputs);
  return { outputs: out, ep: 'wasm', fallbackReason: preferred === 'webgpu' ? reason : undefined };
}
