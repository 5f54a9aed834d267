// A trained model as an ONNX inference graph (GET /api/jobs/<id>/model.onnx), one builder per model
// family, with the CPU references of what the graphs compute. The graphs keep to operators both
// onnxruntime-node and onnxruntime-web run (MatMul, Add, Mul, Sub, Div, Sqrt, ReduceMean, Softmax,
// Transpose, Concat, Gather, Cast, Tanh, Relu), so the model runs as an `onnx` job on the same grid.
import { buildModel, type NodeSpec, type TensorSpec } from '../protocol/onnx-builder.js';
import type { TrainModelSpec } from '../protocol/index.js';
import { mlpTensors } from '../protocol/train-mlp.js';
import { transformerTensors, type TransformerSpec } from '../protocol/train-transformer.js';

/** The job's final parameters as an ONNX graph of its model's family. */
export function modelOnnx(model: TrainModelSpec, params: Float32Array, name: string): Uint8Array {
  return model.type === 'mlp' ? mlpOnnx(model.layers, params, name) : transformerOnnx(model, params, name);
}

/** Logits [n, classes] of the MLP for the rows of x (float64 accumulation): what model.onnx computes. */
export function mlpLogits(layers: readonly number[], params: Float32Array, x: Float32Array, n: number): Float32Array {
  const tensors = mlpTensors(layers);
  let a = x;
  for (let i = 0; i + 1 < layers.length; i++) {
    const [din, dout] = [layers[i], layers[i + 1]];
    const [W, b] = [tensors[2 * i].offset, tensors[2 * i + 1].offset];
    const z = new Float32Array(n * dout);
    const acc = new Float64Array(dout);
    for (let r = 0; r < n; r++) {
      for (let o = 0; o < dout; o++) acc[o] = params[b + o];
      for (let k = 0; k < din; k++) for (let o = 0; o < dout; o++) acc[o] += a[r * din + k] * params[W + k * dout + o];
      for (let o = 0; o < dout; o++) z[r * dout + o] = i + 2 < layers.length ? Math.max(0, acc[o]) : acc[o];
    }
    a = z;
  }
  return a;
}

/**
 * The MLP as an ONNX inference graph, x[batch, features] -> logits[batch, classes]: MatMul + Add
 * per layer, Relu between them, the parameters as initializers. It runs as an `onnx` job as is.
 */
export function mlpOnnx(layers: readonly number[], params: Float32Array, name = 'tabgrid-mlp'): Uint8Array {
  const tensors = mlpTensors(layers);
  const nodes: { op: string; inputs: string[]; outputs: string[] }[] = [];
  let prev = 'x';
  const L = layers.length - 1;
  for (let i = 0; i < L; i++) {
    const last = i === L - 1;
    nodes.push({ op: 'MatMul', inputs: [prev, `w${i}`], outputs: [`mm${i}`] });
    nodes.push({ op: 'Add', inputs: [`mm${i}`, `b${i}`], outputs: [last ? 'logits' : `z${i}`] });
    if (!last) nodes.push({ op: 'Relu', inputs: [`z${i}`], outputs: [`h${i}`] });
    prev = `h${i}`;
  }
  return buildModel({
    name,
    inputs: [{ name: 'x', dims: ['batch', layers[0]] }],
    outputs: [{ name: 'logits', dims: ['batch', layers[L]] }],
    initializers: tensors.map((t) => ({ name: t.name, dims: t.shape, data: params.slice(t.offset, t.offset + t.size) })),
    nodes,
  });
}

/**
 * The transformer as an ONNX graph, tokens [batch, context] (ids as float) -> logits [batch,
 * context, vocab]: the same computation as train-transformer.ts's forward pass. Each head's
 * projections are their own initializers (the weight's columns for that head), so the graph needs
 * no Reshape; the causal mask is a constant [context, context] of 0 and -Infinity.
 */
export function transformerOnnx(s: TransformerSpec, params: Float32Array, name = 'tabgrid-transformer'): Uint8Array {
  const { vocab: V, context: T, dModel: D, heads: H } = s;
  const dh = D / H;
  const t = new Map(transformerTensors(s).map((x) => [x.name, x]));
  const inits: TensorSpec[] = [];
  const nodes: NodeSpec[] = [];
  let n = 0;
  const init = (nm: string, dims: number[], data: Float32Array) => {
    inits.push({ name: nm, dims, data });
    return nm;
  };
  const tensor = (nm: string) => init(nm, t.get(nm)!.shape, params.slice(t.get(nm)!.offset, t.get(nm)!.offset + t.get(nm)!.size));
  const scalar = (nm: string, v: number) => init(nm, [], Float32Array.of(v));
  const op = (o: string, inputs: string[], attrs?: NodeSpec['attrs'], out = `${o.toLowerCase()}${n++}`) => {
    nodes.push({ op: o, inputs, outputs: [out], attrs });
    return out;
  };
  /** Columns [c0, c0 + w) of the [rows, cols] tensor `nm` (one head's share of a projection). */
  const columns = (nm: string, c0: number, w: number, as: string) => {
    const x = t.get(nm)!;
    const [rows, cols] = x.shape.length === 2 ? x.shape : [1, x.shape[0]];
    const out = new Float32Array(rows * w);
    for (let r = 0; r < rows; r++) out.set(params.subarray(x.offset + r * cols + c0, x.offset + r * cols + c0 + w), r * w);
    return init(as, x.shape.length === 2 ? [rows, w] : [w], out);
  };
  const eps = scalar('ln_eps', 1e-5);
  const layerNorm = (x: string, pre: string) => {
    const mean = op('ReduceMean', [x], { axes: [-1], keepdims: 1 });
    const d = op('Sub', [x, mean]);
    const v = op('ReduceMean', [op('Mul', [d, d])], { axes: [-1], keepdims: 1 });
    const xhat = op('Div', [d, op('Sqrt', [op('Add', [v, eps])])]);
    return op('Add', [op('Mul', [xhat, tensor(`${pre}.g`)]), tensor(`${pre}.b`)]);
  };
  const mask = new Float32Array(T * T);
  for (let i = 0; i < T; i++) mask.fill(-Infinity, i * T + i + 1, (i + 1) * T);
  init('causal_mask', [T, T], mask);
  const scale = scalar('attn_scale', 1 / Math.sqrt(dh));
  const [half, one, cubic, geluC] = [scalar('half', 0.5), scalar('one', 1), scalar('gelu_cubic', 0.044715), scalar('gelu_c', Math.sqrt(2 / Math.PI))];

  const ids = op('Cast', ['tokens'], { to: 7 }); // int64 indices for Gather
  let x = op('Add', [op('Gather', [tensor('tok'), ids], { axis: 0 }), tensor('pos')]);
  for (let l = 0; l < s.layers; l++) {
    const p = `l${l}`;
    const h1 = layerNorm(x, `${p}.ln1`);
    const heads: string[] = [];
    for (let h = 0; h < H; h++) {
      const proj = (w: string) => {
        const mm = op('MatMul', [h1, columns(`${p}.w${w}`, h * dh, dh, `${p}.w${w}.h${h}`)]);
        return w === 'k' ? mm : op('Add', [mm, columns(`${p}.b${w}`, h * dh, dh, `${p}.b${w}.h${h}`)]); // no key bias
      };
      const [q, k, v] = [proj('q'), proj('k'), proj('v')];
      const scores = op('Add', [op('Mul', [op('MatMul', [q, op('Transpose', [k], { perm: [0, 2, 1] })]), scale]), 'causal_mask']);
      heads.push(op('MatMul', [op('Softmax', [scores], { axis: -1 }), v]));
    }
    const att = H === 1 ? heads[0] : op('Concat', heads, { axis: -1 });
    const xmid = op('Add', [x, op('Add', [op('MatMul', [att, tensor(`${p}.wo`)]), tensor(`${p}.bo`)])]);
    const a = op('Add', [op('MatMul', [layerNorm(xmid, `${p}.ln2`), tensor(`${p}.w1`)]), tensor(`${p}.b1`)]);
    // GELU, tanh form: 0.5·a·(1 + tanh(c·(a + 0.044715·a³)))
    const u = op('Mul', [op('Add', [a, op('Mul', [op('Mul', [op('Mul', [a, a]), a]), cubic])]), geluC]);
    const g = op('Mul', [op('Mul', [a, op('Add', [op('Tanh', [u]), one])]), half]);
    x = op('Add', [xmid, op('Add', [op('MatMul', [g, tensor(`${p}.w2`)]), tensor(`${p}.b2`)])]);
  }
  op('Add', [op('MatMul', [layerNorm(x, 'lnf'), tensor('head')]), tensor('head.b')], undefined, 'logits');
  return buildModel({
    name,
    inputs: [{ name: 'tokens', dims: ['batch', T] }],
    outputs: [{ name: 'logits', dims: ['batch', T, V] }],
    initializers: inits,
    nodes,
  });
}
