// The WebGPU backend's transformer units: the CPU backend's step graph (train-step.ts) on
// onnxruntime-web's webgpu EP, with θ and the optimizer's moments left on the GPU between steps —
// each step's outputs are GPU buffers fed back as the next step's inputs; θ and the losses are read
// back once, after the last step. Every node of the graph has a webgpu kernel (ORT's placement
// log, read when the session is made: webgpuTrainStats.cpuNodes). When the session cannot be made or
// a run fails — a kernel the adapter cannot compile, a GPU error, a lost device — the unit runs the
// caller's fallback (the CPU backend's trainer) and so do the graph's later units: a unit is never
// lost to the runtime, and the counts say which trainer ran and why.
import type { Compression } from '../../coordinator/protocol/train-loop';
import { createSessionWithPlacement, freeHeld, readHeld, runSessionHeld, withGpuErrorCheck, type HeldTensor, type Session } from './runtime';
import { stepGraphKey, stepSessionCache } from './step-sessions';
import { graphTrainUnit, stepModelOf, type GraphUnitSpec, type StepGraphRunner } from './train-step';

/**
 * Units by trainer on the WebGPU backend: `units` ran on the webgpu EP (`steps` in all),
 * `fallbackUnits` on the fallback, the last time for `fallbackReason`. `cpuNodes`: the nodes ORT put
 * on its CPU EP in the last session made ([] when all run on the GPU, null when ORT's log did not say).
 */
export const webgpuTrainStats = { units: 0, steps: 0, fallbackUnits: 0, fallbackReason: null as string | null, cpuNodes: null as string[] | null };

const stepSession = stepSessionCache((spec) => createSessionWithPlacement(stepModelOf(spec), 'webgpu', { outputsOnGpu: true }));

/** Why the webgpu EP cannot run a step graph, by graph: its later units go straight to the fallback. */
const failed = new Map<string, string>();

/** The step graph's runner over a session's held outputs: on the GPU for a session made with outputsOnGpu, else CPU tensors. */
export const heldRunner = (session: Session): StepGraphRunner<HeldTensor> => ({
  run: (feeds, outputs) => runSessionHeld(session, feeds, outputs),
  read: readHeld,
  free: freeHeld,
});

/** A transformer unit on the webgpu EP, as cpuTrainUnit returns it; `fallback` computes it when the EP cannot. */
export async function webgpuTrainUnit(
  spec: GraphUnitSpec,
  compress: Compression,
  params: Float32Array,
  x: Float32Array,
  y: Float32Array | null,
  fallback: () => Promise<Float32Array>,
): Promise<Float32Array> {
  const key = stepGraphKey(spec);
  const onFallback = (why: string) => {
    webgpuTrainStats.fallbackUnits++;
    webgpuTrainStats.fallbackReason = why.slice(0, 300);
    return fallback();
  };
  const known = failed.get(key);
  if (known) return onFallback(known);
  if (!(globalThis.navigator as Navigator | undefined)?.gpu) return onFallback('this browser has no WebGPU');
  let out: Float32Array;
  try {
    const { session, cpuNodes } = await stepSession(spec);
    webgpuTrainStats.cpuNodes = cpuNodes;
    out = await withGpuErrorCheck(() => graphTrainUnit(heldRunner(session), spec, compress, params, x, y));
  } catch (err) {
    const why = `the webgpu EP cannot run the step graph: ${(err as Error).message}`;
    failed.set(key, why);
    return onFallback(why);
  }
  webgpuTrainStats.units++;
  webgpuTrainStats.steps += spec.steps;
  return out;
}
