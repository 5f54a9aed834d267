// The transformer family: its gradient against central finite differences in float64, its
// parameter count against its tensor table, and its credit (FLOPs) against a count by hand.
import { expect, test } from 'vitest';
import { rng } from './train-model.js';
import { initTransformer, transformerLossGrad, transformerMacs, transformerModel, transformerParamCount, transformerTensors, type TransformerSpec } from './train-transformer.js';

const spec: TransformerSpec = { vocab: 5, context: 4, layers: 2, dModel: 8, heads: 2 };

function tokens(n: number, V: number, seed: number): Float64Array {
  const next = rng(seed);
  return Float64Array.from({ length: n }, () => next() % V);
}

test('the gradient matches central finite differences (float64), every parameter', () => {
  // Random, not initial, parameters: LN gains ≠ 1 and nonzero biases exercise every term.
  const P = transformerParamCount(spec);
  const next = rng(5);
  const p = Float64Array.from(initTransformer(spec, 3), (v) => v + ((next() / 2 ** 32) * 2 - 1) * 0.3);
  const x = tokens(12, spec.vocab, 9);
  const windows = Int32Array.from([0, 3, 7]);
  const g = new Float64Array(P);
  const loss = transformerLossGrad(Float64Array, spec, p, x, windows, g);
  expect(loss).toBeGreaterThan(0);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < P; i++) {
    const h = 1e-5;
    const q = Float64Array.from(p);
    q[i] += h;
    const up = transformerLossGrad(Float64Array, spec, q, x, windows, null);
    q[i] -= 2 * h;
    const down = transformerLossGrad(Float64Array, spec, q, x, windows, null);
    worst = Math.max(worst, Math.abs((up - down) / (2 * h) - g[i]));
    scale = Math.max(scale, Math.abs(g[i]));
  }
  expect(scale).toBeGreaterThan(1e-3);
  expect(worst).toBeLessThan(1e-7);
});

test('the tensor table covers the parameter vector exactly; the loss at initialisation is near ln V', () => {
  const t = transformerTensors(spec);
  expect(t.at(-1)!.offset + t.at(-1)!.size).toBe(transformerParamCount(spec));
  for (let i = 1; i < t.length; i++) expect(t[i].offset).toBe(t[i - 1].offset + t[i - 1].size);
  expect(new Set(t.map((x) => x.name)).size).toBe(t.length);
  const big: TransformerSpec = { vocab: 16, context: 32, layers: 2, dModel: 32, heads: 4 };
  const loss = transformerLossGrad(Float64Array, big, Float64Array.from(initTransformer(big, 1)), tokens(200, 16, 1), Int32Array.from([0, 50, 100]), null);
  expect(Math.abs(loss - Math.log(16))).toBeLessThan(0.5);
});

test('no key bias: its gradient would be zero (softmax ignores a per-row constant) and float32 noise under AdamW', () => {
  expect(transformerTensors(spec).map((t) => t.name)).not.toContain('l0.bk');
  expect(transformerTensors(spec).map((t) => t.name)).toContain('l0.bq');
});

test('credit: 6 × the multiply-adds of the projections, MLP, head and causal attention, per window', () => {
  const s: TransformerSpec = { vocab: 8, context: 16, layers: 2, dModel: 32, heads: 4 };
  // Per position and layer: q, k, v, o (4·D²) and the MLP (2·4·D²); the head D·V per position;
  // attention: q·k and p·v over Σ_i (i + 1) = T(T+1)/2 visible pairs, D multiply-adds each.
  const macs = 16 * (2 * (4 * 32 * 32 + 8 * 32 * 32) + 32 * 8) + 2 * 2 * 32 * ((16 * 17) / 2);
  expect(transformerMacs(s)).toBe(macs);
  expect(transformerModel(s).stepFlops(10)).toBe(6 * macs * 10);
});
