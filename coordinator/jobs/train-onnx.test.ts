// The transformer's model.onnx against the TS forward pass: the graph run by onnxruntime-node gives
// the logits train-transformer.ts computes, for one and several heads and blocks.
import { describe, expect, test } from 'vitest';
import { rng } from '../protocol/train-model.js';
import { initTransformer, transformerLogits, transformerParamCount, type TransformerSpec } from '../protocol/train-transformer.js';
import { transformerOnnx } from './train-onnx.js';

describe('transformer model.onnx reproduces the TS forward pass', () => {
  const specs: TransformerSpec[] = [
    { vocab: 7, context: 6, layers: 2, dModel: 8, heads: 2 },
    { vocab: 3, context: 1, layers: 1, dModel: 4, heads: 1 },
    { vocab: 11, context: 16, layers: 1, dModel: 12, heads: 3 },
  ];
  test.each(specs)('V $vocab, T $context, $layers blocks, D $dModel, $heads heads', async (s) => {
    const ort = await import('onnxruntime-node');
    // Perturbed parameters so LN gains and biases are not their initial 1 and 0.
    const next = rng(7);
    const params = Float32Array.from(initTransformer(s, 1), (v) => v + ((next() / 2 ** 32) * 2 - 1) * 0.2);
    expect(params.length).toBe(transformerParamCount(s));
    const batch = 3;
    const tokens = Float32Array.from({ length: batch * s.context }, () => next() % s.vocab);
    const session = await ort.InferenceSession.create(transformerOnnx(s, params));
    const out = await session.run({ tokens: new ort.Tensor('float32', tokens, [batch, s.context]) });
    const logits = out.logits;
    expect(logits.dims).toEqual([batch, s.context, s.vocab]);
    const ref = transformerLogits(s, params, tokens, Int32Array.from({ length: batch }, (_, i) => i * s.context));
    const got = logits.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(got[i] - ref[i]) / (1 + Math.abs(ref[i])));
    expect(worst).toBeLessThan(1e-4);
  });
});
