// What an honest device returns for one work unit, recomputed on the coordinator's CPU from the
// unit's input shards: the ground truth of the audit (work/audit.ts, which runs this on a worker
// thread, work/audit-thread.ts). Matmul, attention and train use their kinds' CPU references; ONNX
// runs the model on onnxruntime-node's CPU execution provider, as a sim or native volunteer does.
import { ONNX_MODEL_INPUT, type AttentionParams, type MatmulParams, type OnnxParams, type TrainParams } from '../protocol/index.js';
import { attentionReference } from './attention.js';
import { shardValues } from './inputs.js';
import { matmulReference } from './matmul.js';
import { trainUnitReference } from './train.js';

/** The fields of a unit the reference needs (what crosses to the audit thread). */
export interface UnitToRecompute {
  kind: string;
  params: unknown;
  outputBytes: number;
}

type InferenceSession = import('onnxruntime-node').InferenceSession;

/** Sessions by model sha-256, a few at most (an audit thread sees the models of its jobs). */
const sessions = new Map<string, Promise<InferenceSession>>();
const MAX_SESSIONS = 4;

async function onnxSession(sha: string, model: Uint8Array): Promise<InferenceSession> {
  let s = sessions.get(sha);
  if (!s) {
    if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
    const ort = await import('onnxruntime-node');
    s = ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    sessions.set(sha, s);
    s.catch(() => sessions.delete(sha));
  }
  return s;
}

async function onnxReference(p: OnnxParams, inputs: Record<string, Uint8Array>, outputBytes: number): Promise<Float32Array> {
  const ort = await import('onnxruntime-node');
  const session = await onnxSession(p.model, inputs[ONNX_MODEL_INPUT]);
  const feeds = Object.fromEntries(p.inputs.map((t) => [t.name, new ort.Tensor('float32', shardValues(inputs[t.name]), t.shape)]));
  const out = await session.run(feeds);
  // The unit's output: every model output's values, flattened and concatenated in params order.
  const flat = new Float32Array(outputBytes / 4);
  let at = 0;
  for (const o of p.outputs) {
    const data = out[o.name].data as Float32Array;
    flat.set(data, at);
    at += data.length;
  }
  return flat;
}

/** The unit recomputed from its inputs (raw shard bytes by input name). Throws for a kind it does not know. */
export async function unitReference(wu: UnitToRecompute, inputs: Record<string, Uint8Array>): Promise<Float32Array> {
  const f = (name: string) => shardValues(inputs[name]);
  switch (wu.kind) {
    case 'matmul': {
      const p = wu.params as MatmulParams;
      return matmulReference(f('a'), f('b'), p.m, p.k, p.n);
    }
    case 'attention':
      return attentionReference(f('q'), f('k'), f('v'), wu.params as AttentionParams);
    case 'train':
      // A transformer unit's slice is its tokens (x) alone: no labels.
      return trainUnitReference(wu.params as TrainParams, f('params'), f('x'), inputs.y ? f('y') : null);
    case 'onnx':
      return onnxReference(wu.params as OnnxParams, inputs, wu.outputBytes);
    default:
      throw new Error(`no reference for ${wu.kind} units`);
  }
}
