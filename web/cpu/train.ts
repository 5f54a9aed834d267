// The CPU backend's training units, both families: the inner step as one ONNX graph
// (web/onnx/train-step.ts) on onnxruntime-web's wasm EP — MLAS matmuls, several times the
// TypeScript loop (bench:train-onnx). When ORT cannot create the session the unit runs the TS loop
// instead (the coordinator's own reference, protocol/train-loop.ts), so a unit is never lost to the runtime.
import type { Compression } from '../../coordinator/protocol/train-loop';
import { runTrainUnit, trainModelOf } from '../../coordinator/protocol/train-loop';
import { createSession, runSession, type Session } from '../onnx/runtime';
import { graphTrainUnit, stepModelOf, type GraphUnitSpec, type StepGraphSpec } from '../onnx/train-step';

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

/** A train unit on the CPU: Δ in the unit's encoding and the two losses, as runTrainUnit returns them. */
export async function cpuTrainUnit(spec: GraphUnitSpec, compress: Compression, params: Float32Array, x: Float32Array, y: Float32Array | null): Promise<Float32Array> {
  let session: Session;
  try {
    session = await stepSession(spec);
  } catch (err) {
    cpuTrainStats.tsUnits++;
    cpuTrainStats.fallbackReason = `the step graph's session failed: ${(err as Error).message}`.slice(0, 300);
    return runTrainUnit({ ...spec, model: trainModelOf(spec.model) }, compress, params, x, y);
  }
  const out = await graphTrainUnit((feeds, outputs) => runSession(session, feeds, outputs), spec, compress, params, x, y);
  cpuTrainStats.graphUnits++;
  return out;
}
