// A trained model as an ONNX inference graph (GET /api/jobs/<id>/model.onnx), one builder per model
// family, with the CPU references of what the graphs compute. The graphs keep to operators both
// onnxruntime-node and onnxruntime-web run (MatMul, Add, Mul, Sub, Div, Sqrt, ReduceMean, Softmax,
// Transpose, Reshape, Gather, Cast, Tanh, Relu), so the model runs as an `onnx` job on the same grid.
import { buildModel, GraphBuilder } from '../protocol/onnx-builder.js';
import type { TrainModelSpec } from '../protocol/index.js';
import { mlpTensors } from '../protocol/train-mlp.js';
import { transformerTensors, type TransformerSpec } from '../protocol/train-transformer.js';
import { transformerForward } from '../protocol/transformer-graph.js';

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
 * context, vocab]: the forward pass the CPU backend's training step graph runs too
 * (protocol/transformer-graph.ts), with the parameters as initializers.
 */
export function transformerOnnx(s: TransformerSpec, params: Float32Array, name = 'tabgrid-transformer'): Uint8Array {
  const g = new GraphBuilder();
  for (const t of transformerTensors(s)) g.init(t.name, t.shape, params.slice(t.offset, t.offset + t.size));
  const { logits } = transformerForward(g, s, 'tokens');
  g.op('Reshape', [logits, g.ints('shape_logits', [-1, s.context, s.vocab])], undefined, 'logits');
  return g.build({
    name,
    inputs: [{ name: 'tokens', dims: ['batch', s.context] }],
    outputs: [{ name: 'logits', dims: ['batch', s.context, s.vocab] }],
  });
}
