// The CPU backend's training units, both families: the inner step as one ONNX graph
// (web/onnx/train-step.ts) on onnxruntime-web's wasm EP — MLAS matmuls, several times the
// TypeScript loop (bench:train-onnx). When the graph would not fit the wasm heap, or ORT cannot
// create its session or run it, the unit runs the TS loop instead (the coordinator's own reference,
// protocol/train-loop.ts), so a unit is never lost to the runtime.
import type { Compression } from '../../coordinator/protocol/train-loop';
import { runTrainUnit, trainModelOf } from '../../coordinator/protocol/train-loop';
import { createSession, runSession, type Session } from '../onnx/runtime';
import { graphTrainUnit, stepFamilyOf, stepModelOf, type GraphUnitSpec, type StepGraphSpec } from '../onnx/train-step';

/** Units by trainer, and why the graph was last unavailable: what a test reads to know which trainer ran. */
export const cpuTrainStats = { graphUnits: 0, tsUnits: 0, fallbackReason: null as string | null };

const MAX_SESSIONS = 4;
/** Step-graph sessions by model and optimizer (a job's units share one), oldest first. */
const sessions = new Map<string, Promise<Session>>();

function stepSession(spec: StepGraphSpec): Promise<Session> {
  const key = JSON.stringify([spec.model, spec.optimizer]);
  let s = sessions.get(key);
  if (!s) {
    s = Promise.resolve().then(() => createSession(stepModelOf(spec), 'wasm'));
    s.catch(() => sessions.delete(key));
    sessions.set(key, s);
    for (const [old, session] of sessions) {
      if (sessions.size <= MAX_SESSIONS) break;
      sessions.delete(old);
      void session.then((x) => x.release()).catch(() => undefined);
    }
  }
  return s;
}

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
    session = await stepSession(spec);
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
