// The transformer's forward pass as ONNX nodes (train-transformer.ts's maths): the one definition
// that model.onnx (jobs/train-onnx.ts: parameters as initializers) and the CPU backend's training
// step graph (web/onnx/transformer-step.ts: parameters as inputs, backward on top) both emit.
// Parameters are values named as transformerTensors names them ('tok', 'l0.wq', …). Activations are
// [rows, D] with rows = batch·context, so every projection is one MatMul over the batch; attention
// reshapes to [batch, heads, context, D/heads] and runs every head in one batched MatMul. Opset 17
// operators that onnxruntime-web's wasm build runs.
import type { GraphBuilder } from './onnx-builder.js';
import { GELU_C, GELU_CUBIC, LN_EPS, type TransformerSpec } from './train-transformer.js';

/** What LayerNorm's backward needs: x̂ and σ = √(var + ε), per row. */
export interface LayerNormValues {
  xhat: string;
  std: string;
}

/** The values of one block that backward reads. */
export interface BlockValues {
  ln1: LayerNormValues;
  h1: string;
  /** q, k, v per head, [batch, heads, context, D/heads]. */
  qh: string;
  kh: string;
  vh: string;
  /** Attention weights [batch, heads, context, context], 0 above the diagonal. */
  p: string;
  /** The heads' outputs side by side, [rows, D]. */
  att: string;
  ln2: LayerNormValues;
  h2: string;
  /** The MLP's pre-activation [rows, 4D] and tanh of GELU's inner term. */
  a1: string;
  tanh: string;
  g1: string;
}

export interface ForwardValues {
  blocks: BlockValues[];
  lnf: LayerNormValues;
  xf: string;
  /** [rows, vocab]. */
  logits: string;
}

/** Helpers that the forward and backward graphs share: shapes between [rows, D] and per-head views. */
export function transformerShapes(g: GraphBuilder, s: TransformerSpec) {
  const { context: T, dModel: D, heads: H } = s;
  const dh = D / H;
  const rowsD = g.ints('shape_rows_d', [-1, D]);
  const split = g.ints('shape_heads', [-1, T, H, dh]);
  return {
    /** [rows, D] → [batch, heads, T, dh]. */
    heads: (x: string) => g.op('Transpose', [g.op('Reshape', [x, split])], { perm: [0, 2, 1, 3] }),
    /** [batch, heads, T, dh] → [rows, D]. */
    merge: (x: string) => g.op('Reshape', [g.op('Transpose', [x], { perm: [0, 2, 1, 3] }), rowsD]),
    /** Swaps the last two axes of a [batch, heads, ·, ·] tensor. */
    swap: (x: string) => g.op('Transpose', [x], { perm: [0, 1, 3, 2] }),
    rowsD,
  };
}

/**
 * The forward pass of windows of token ids `tokens` [batch, context] (floats) to logits [rows,
 * vocab], with the values backward needs.
 */
export function transformerForward(g: GraphBuilder, s: TransformerSpec, tokens: string): ForwardValues {
  const { context: T, dModel: D, heads: H } = s;
  const shapes = transformerShapes(g, s);
  const eps = g.scalar('ln_eps', LN_EPS);
  const layerNorm = (x: string, pre: string): [string, LayerNormValues] => {
    const d = g.op('Sub', [x, g.op('ReduceMean', [x], { axes: [-1], keepdims: 1 })]);
    const std = g.op('Sqrt', [g.op('Add', [g.op('ReduceMean', [g.op('Mul', [d, d])], { axes: [-1], keepdims: 1 }), eps])]);
    const xhat = g.op('Div', [d, std]);
    return [g.op('Add', [g.op('Mul', [xhat, `${pre}.g`]), `${pre}.b`]), { xhat, std }];
  };
  const linear = (x: string, w: string, b?: string) => (b ? g.op('Add', [g.op('MatMul', [x, w]), b]) : g.op('MatMul', [x, w]));
  const mask = new Float32Array(T * T);
  for (let i = 0; i < T; i++) mask.fill(-Infinity, i * T + i + 1, (i + 1) * T);
  const causal = g.init('causal_mask', [T, T], mask);
  const scale = g.scalar('attn_scale', 1 / Math.sqrt(D / H));
  const [half, one, cubic, geluC] = [g.scalar('half', 0.5), g.scalar('one', 1), g.scalar('gelu_cubic', GELU_CUBIC), g.scalar('gelu_c', GELU_C)];

  // int32 indices for Gather: onnxruntime-web's WebGPU EP casts to int32 but not to int64 (an int64
  // Cast would run on the CPU between GPU kernels, with copies both ways).
  const ids = g.op('Cast', [tokens], { to: 6 });
  let x = g.op('Reshape', [g.op('Add', [g.op('Gather', ['tok', ids], { axis: 0 }), 'pos']), shapes.rowsD]);
  const blocks: BlockValues[] = [];
  for (let l = 0; l < s.layers; l++) {
    const p = `l${l}`;
    const [h1, ln1] = layerNorm(x, `${p}.ln1`);
    const qh = shapes.heads(linear(h1, `${p}.wq`, `${p}.bq`));
    const kh = shapes.heads(linear(h1, `${p}.wk`)); // no key bias
    const vh = shapes.heads(linear(h1, `${p}.wv`, `${p}.bv`));
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [qh, shapes.swap(kh)]), scale]), causal]);
    const pw = g.op('Softmax', [scores], { axis: -1 });
    const att = shapes.merge(g.op('MatMul', [pw, vh]));
    const xmid = g.op('Add', [x, linear(att, `${p}.wo`, `${p}.bo`)]);
    const [h2, ln2] = layerNorm(xmid, `${p}.ln2`);
    const a1 = linear(h2, `${p}.w1`, `${p}.b1`);
    // GELU, tanh form: 0.5·a·(1 + tanh(c·(a + 0.044715·a³)))
    const tanh = g.op('Tanh', [g.op('Mul', [g.op('Add', [a1, g.op('Mul', [g.op('Mul', [g.op('Mul', [a1, a1]), a1]), cubic])]), geluC])]);
    const g1 = g.op('Mul', [g.op('Mul', [a1, g.op('Add', [tanh, one])]), half]);
    x = g.op('Add', [xmid, linear(g1, `${p}.w2`, `${p}.b2`)]);
    blocks.push({ ln1, h1, qh, kh, vh, p: pw, att, ln2, h2, a1, tanh, g1 });
  }
  const [xf, lnf] = layerNorm(x, 'lnf');
  return { blocks, lnf, xf, logits: linear(xf, 'head', 'head.b') };
}
