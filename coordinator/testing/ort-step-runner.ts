// A training step graph (web/onnx/train-step.ts) run in Node by an onnxruntime build —
// onnxruntime-node (the step graphs' tests) or onnxruntime-web's wasm build (bench:train-onnx) — as
// the RunStepGraph the H-step runner takes.
import type * as OrtNode from 'onnxruntime-node';
import type { RunStepGraph } from '../../web/onnx/train-step.js';

/** What both builds share: sessions and float32 tensors. */
type OrtLike = Pick<typeof OrtNode, 'InferenceSession' | 'Tensor'>;

export async function ortStepRunner(ort: OrtLike, model: Uint8Array, options: OrtNode.InferenceSession.SessionOptions = {}): Promise<RunStepGraph> {
  const session = await ort.InferenceSession.create(model, options);
  return async (feeds, outputs) => {
    const result = await session.run(Object.fromEntries(feeds.map((f) => [f.name, new ort.Tensor('float32', f.data, [...f.shape])])), outputs);
    return outputs.map((name) => (result[name].data as Float32Array).slice());
  };
}
