// The transformer LM's part of the training step graph (step-graph.ts): the forward pass that
// model.onnx runs too (protocol/transformer-graph.ts), mean next-token cross-entropy, and the
// backward by hand — the head, LayerNorm, GELU (tanh), causal softmax attention for every head at
// once, the residual stream, and the embeddings (the gather's backward as a one-hot MatMul). The
// same maths as protocol/train-transformer.ts's backward, in float32 on onnxruntime's kernels.
// Batch inputs, for B windows of context T (rows = B·T): tokens [B, T] (ids as floats), their
// one-hot tokens_onehot [rows, vocab] and the next tokens' targets [rows, vocab], inv_n = 1 / rows.
import type { GraphBuilder } from '../../coordinator/protocol/onnx-builder';
import type { SliceData } from '../../coordinator/protocol/train-model';
import { GELU_C, GELU_CUBIC, transformerModel, transformerParamCount, type TransformerSpec } from '../../coordinator/protocol/train-transformer';
import { transformerForward, transformerShapes, type LayerNormValues } from '../../coordinator/protocol/transformer-graph';
import type { Feed } from './runtime';
import type { StepGraphFamily } from './step-graph';

export function transformerStepFamily(s: TransformerSpec): StepGraphFamily {
  const { vocab: V, context: T } = s;
  return {
    name: 'transformer',
    model: transformerModel(s),
    batchInputs: [
      { name: 'tokens', dims: ['batch', T] },
      { name: 'tokens_onehot', dims: ['rows', V] },
      { name: 'targets', dims: ['rows', V] },
      { name: 'inv_n', dims: [] },
    ],
    lossGrad: (g) => transformerLossGrad(g, s),
    // Per row: the two one-hots, the logits and their softmax terms (V each), and per block the
    // [rows, D] and [rows, 4D] values backward reads; per window and block, the attention weights
    // and their gradient terms ([heads, T, T] each); θ, its gradient and the update's terms.
    stepFloats: (batch) => {
      const rows = batch * T;
      return rows * 8 * V + s.layers * (rows * 40 * s.dModel + 8 * batch * s.heads * T * T) + 8 * transformerParamCount(s);
    },
    batchFeeds({ x }: SliceData, batch: Int32Array): Feed[] {
      const B = batch.length;
      const tokens = new Float32Array(B * T);
      const onehot = new Float32Array(B * T * V);
      const targets = new Float32Array(B * T * V);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const r = b * T + t;
          tokens[r] = x[batch[b] + t];
          onehot[r * V + x[batch[b] + t]] = 1;
          targets[r * V + x[batch[b] + t + 1]] = 1;
        }
      }
      return [
        { name: 'tokens', shape: [B, T], data: tokens },
        { name: 'tokens_onehot', shape: [B * T, V], data: onehot },
        { name: 'targets', shape: [B * T, V], data: targets },
        { name: 'inv_n', shape: [], data: Float32Array.of(1 / (B * T)) },
      ];
    },
  };
}

function transformerLossGrad(g: GraphBuilder, s: TransformerSpec): Map<string, string> {
  const f = transformerForward(g, s, 'tokens');
  const shapes = transformerShapes(g, s);
  const grads = new Map<string, string>();
  const axes0 = g.ints('axes_0', [0]);
  const axesLast = g.ints('axes_last', [-1]);
  const [half, one] = [g.scalar('half', 0.5), g.scalar('one', 1)];
  const tr = (x: string) => g.op('Transpose', [x], { perm: [1, 0] });
  const sumRows = (x: string) => g.op('ReduceSum', [x, axes0], { keepdims: 0 });
  const meanLast = (x: string) => g.op('ReduceMean', [x], { axes: [-1], keepdims: 1 });

  // loss = −(1/rows) Σ targets·log softmax(logits); dlogits = (softmax − targets) / rows.
  // log softmax as z − max − log Σ exp(z − max): onnxruntime-web's WebGPU EP has no LogSoftmax
  // kernel (it would run on the CPU, the logits copied off the GPU every step).
  const centred = g.op('Sub', [f.logits, g.op('ReduceMax', [f.logits], { axes: [-1], keepdims: 1 })]);
  const logp = g.op('Sub', [centred, g.op('Log', [g.op('ReduceSum', [g.op('Exp', [centred]), axesLast], { keepdims: 1 })])]);
  g.op('Neg', [g.op('Mul', [g.op('ReduceSum', [g.op('Mul', ['targets', logp])], { keepdims: 0 }), 'inv_n'])], undefined, 'loss');
  const dlogits = g.op('Mul', [g.op('Sub', [g.op('Softmax', [f.logits], { axis: -1 }), 'targets']), 'inv_n']);

  /** Backward of x·W + b: dW = xᵀ·dOut, db = Σ_rows dOut; returns dx = dOut·Wᵀ. */
  const linearBack = (dOut: string, x: string, w: string, b?: string) => {
    grads.set(w, g.op('MatMul', [tr(x), dOut]));
    if (b) grads.set(b, sumRows(dOut));
    return g.op('MatMul', [dOut, tr(w)]);
  };
  /** Backward of LayerNorm (gain pre.g, bias pre.b): dx = (dĥ − mean(dĥ) − x̂·mean(dĥ·x̂)) / σ with dĥ = dy·g. */
  const layerNormBack = (dy: string, { xhat, std }: LayerNormValues, pre: string) => {
    grads.set(`${pre}.g`, sumRows(g.op('Mul', [dy, xhat])));
    grads.set(`${pre}.b`, sumRows(dy));
    const dh = g.op('Mul', [dy, `${pre}.g`]);
    return g.op('Div', [g.op('Sub', [g.op('Sub', [dh, meanLast(dh)]), g.op('Mul', [xhat, meanLast(g.op('Mul', [dh, xhat]))])]), std]);
  };
  /** GELU′(a) = ½(1 + t) + ½·a·(1 − t²)·c·(1 + 3·0.044715·a²), t = tanh(c·(a + 0.044715·a³)). */
  const geluGrad = (a: string, t: string) => {
    const sech2 = g.op('Sub', [one, g.op('Mul', [t, t])]);
    const inner = g.op('Add', [one, g.op('Mul', [g.op('Mul', [a, a]), g.scalar('gelu_cubic_3', 3 * GELU_CUBIC)])]);
    const second = g.op('Mul', [g.op('Mul', [g.op('Mul', [a, sech2]), inner]), g.scalar('gelu_half_c', 0.5 * GELU_C)]);
    return g.op('Add', [g.op('Mul', [g.op('Add', [one, t]), half]), second]);
  };

  // dx: the gradient at the residual stream, [rows, D], carried down through the blocks.
  let dx = layerNormBack(linearBack(dlogits, f.xf, 'head', 'head.b'), f.lnf, 'lnf');
  const scale = g.scalar('attn_scale', 1 / Math.sqrt(s.dModel / s.heads));
  for (let l = s.layers - 1; l >= 0; l--) {
    const p = `l${l}`;
    const b = f.blocks[l];
    // x_out = xmid + W2·GELU(W1·LN2(xmid))
    const da1 = g.op('Mul', [linearBack(dx, b.g1, `${p}.w2`, `${p}.b2`), geluGrad(b.a1, b.tanh)]);
    const dxmid = g.op('Add', [dx, layerNormBack(linearBack(da1, b.h2, `${p}.w1`, `${p}.b1`), b.ln2, `${p}.ln2`)]);
    // xmid = xin + Attn(LN1(xin))·Wo + bo; per head: dv = pᵀ·dO, dp = dO·vᵀ,
    // ds = p·(dp − Σ_j p·dp)·scale (0 where masked: p is), dq = ds·k, dk = dsᵀ·q.
    const dO = shapes.heads(linearBack(dxmid, b.att, `${p}.wo`, `${p}.bo`));
    const dv = shapes.merge(g.op('MatMul', [shapes.swap(b.p), dO]));
    const dp = g.op('MatMul', [dO, shapes.swap(b.vh)]);
    const rowDot = g.op('ReduceSum', [g.op('Mul', [b.p, dp]), axesLast], { keepdims: 1 });
    const ds = g.op('Mul', [g.op('Mul', [b.p, g.op('Sub', [dp, rowDot])]), scale]);
    const dq = shapes.merge(g.op('MatMul', [ds, b.kh]));
    const dk = shapes.merge(g.op('MatMul', [shapes.swap(ds), b.qh]));
    const dh1 = g.op('Add', [g.op('Add', [linearBack(dq, b.h1, `${p}.wq`, `${p}.bq`), linearBack(dk, b.h1, `${p}.wk`)]), linearBack(dv, b.h1, `${p}.wv`, `${p}.bv`)]);
    dx = g.op('Add', [dxmid, layerNormBack(dh1, b.ln1, `${p}.ln1`)]);
  }
  // x0 = tok[tokens] + pos: the gather's backward sums each row's gradient into its token's row.
  grads.set('tok', g.op('MatMul', [tr('tokens_onehot'), dx]));
  grads.set('pos', sumRows(g.op('Reshape', [dx, g.ints('shape_windows', [-1, s.context, s.dModel])])));
  return grads;
}
