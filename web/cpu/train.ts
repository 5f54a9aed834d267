// The CPU backend's training units, both families: the inner step as one ONNX graph
// (web/onnx/train-step.ts) on onnxruntime-web's wasm EP — MLAS matmuls, several times the
// TypeScript loop (bench:train-onnx). When the graph would not fit the wasm heap, or ORT cannot
// create its session or run it, the unit runs the TS loop instead (the coordinator's own reference,
// protocol/train-loop.ts), so a unit is never lost to the runtime.
import type { Compression } from '../../coordinator/protocol/train-loop';
import { runTrainUnit, trainModelOf } from '../../coordinator/protocol/train-loop';
import { createSession, runSession, type Session } from '../onnx/runtime';
import { stepSessionCache } from '../onnx/step-sessions';
import { graphTrainUnit, stepFamilyOf, stepModelOf, type GraphUnitSpec } from '../onnx/train-step';

/** Units by trainer, and why the graph was last unavailable: what a test reads to know which trainer ran. */
export const cpuTrainStats = { graphUnits: 0, tsUnits: 0, fallbackReason: null as string | null };

/** Step-graph sessions on the wasm EP. */
const stepSession = stepSessionCache(async (spec) => ({ session: await createSession(stepModelOf(spec), 'wasm') }));

/**
 * The most one run of a step graph may hold (stepFloats): the wasm heap is 32-bit (4 GiB at most,
 * often less) and shared with every other session. A larger unit — a large vocabulary, long
 * windows, big batches — trains in the TS loop, which holds one window at a time.
 */
const MAX_GRAPH_BYTES = 1024 ** 3;

/** A train unit on the CPU: Δ in the unit's encoding and the two losses, as runTrainUnit returns them. */
export async function cpuTrainUnit(spec: GraphUnitSpec, compress: Compression, params: Float32Array, x: Float32Array, y: Float32Array | null): Promise<Float32Array> {
  const tsLoop = (why: string) => {
    cpuTrainStats.tsUnits++;
    cpuTrainStats.fallbackReason = why.slice(0, 300);
    return runTrainUnit({ ...spec, model: trainModelOf(spec.model) }, compress, params, x, y);
  };
  const bytes = 4 * stepFamilyOf(spec.model).stepFloats(spec.batchSize);
  if (bytes > MAX_GRAPH_BYTES) return tsLoop(`the step graph would hold about ${Math.round(bytes / 2 ** 20)} MiB, more than the wasm heap allows`);
  let session: Session;
  try {
    ({ session } = await stepSession(spec));
  } catch (err) {
    return tsLoop(`the step graph's session failed: ${(err as Error).message}`);
  }
  let out: Float32Array;
  try {
    out = await graphTrainUnit((feeds, outputs) => runSession(session, feeds, outputs), spec, compress, params, x, y);
  } catch (err) {
    return tsLoop(`the step graph failed: ${(err as Error).message}`);
  }
  cpuTrainStats.graphUnits++;
  return out;
}
