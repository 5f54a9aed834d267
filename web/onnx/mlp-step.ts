// The MLP's part of the training step graph (step-graph.ts): forward, softmax cross-entropy and the
// backward by hand. Batch inputs: x [batch, features], its one-hot labels y [batch, classes] and
// inv_b = 1 / batch.
import type { GraphBuilder } from '../../coordinator/protocol/onnx-builder';
import { mlpModel } from '../../coordinator/protocol/train-mlp';
import type { SliceData } from '../../coordinator/protocol/train-model';
import type { Feed } from './runtime';
import type { StepGraphFamily } from './step-graph';

export function mlpStepFamily(layers: readonly number[]): StepGraphFamily {
  const L = layers.length - 1;
  const [F, C] = [layers[0], layers[L]];
  return {
    name: 'mlp',
    model: mlpModel(layers),
    batchInputs: [
      { name: 'x', dims: ['batch', F] },
      { name: 'y', dims: ['batch', C] },
      { name: 'inv_b', dims: [] },
    ],
    lossGrad(g: GraphBuilder) {
      // Forward: a[i+1] = relu(a[i]·W_i + b_i); the last layer's outputs are the logits.
      const acts = ['x'];
      for (let i = 0; i < L; i++) {
        const z = g.op('Add', [g.op('MatMul', [acts[i], `w${i}`]), `b${i}`]);
        acts.push(i < L - 1 ? g.op('Relu', [z]) : z);
      }
      const logits = acts[L];
      // loss = −mean over rows of Σ_c y·log softmax = −C · mean over all [batch, C] entries (ReduceMean
      // keeps its axes attribute in opset 17; ReduceSum's are an int64 input since opset 13).
      const logp = g.op('LogSoftmax', [logits], { axis: -1 });
      g.op('Mul', [g.op('ReduceMean', [g.op('Mul', ['y', logp])], { axes: [0, 1], keepdims: 0 }), g.scalar('neg_classes', -C)], undefined, 'loss');

      // Backward with dz = softmax − y (not yet divided by the batch): dW = aᵀ·dz / B, db = mean_rows dz,
      // da = dz·Wᵀ masked where the ReLU was off (sign(a) is 1 where a > 0, else 0).
      const grads = new Map<string, string>();
      let dz = g.op('Sub', [g.op('Softmax', [logits], { axis: -1 }), 'y']);
      for (let i = L - 1; i >= 0; i--) {
        grads.set(`w${i}`, g.op('Mul', [g.op('MatMul', [g.op('Transpose', [acts[i]], { perm: [1, 0] }), dz]), 'inv_b']));
        grads.set(`b${i}`, g.op('ReduceMean', [dz], { axes: [0], keepdims: 0 }));
        if (i > 0) dz = g.op('Mul', [g.op('MatMul', [dz, g.op('Transpose', [`w${i}`], { perm: [1, 0] })]), g.op('Sign', [acts[i]])]);
      }
      return grads;
    },
    // Activations and their gradients per row, a few times over; θ, its gradient and the update's terms.
    stepFloats: (batch) => 4 * batch * layers.reduce((a, b) => a + b, 0) + 8 * mlpModel(layers).paramCount,
    batchFeeds({ x, y }: SliceData, batch: Int32Array): Feed[] {
      if (!y) throw new Error('an MLP batch needs labels');
      const B = batch.length;
      const xb = new Float32Array(B * F);
      const yb = new Float32Array(B * C);
      for (let r = 0; r < B; r++) {
        xb.set(x.subarray(batch[r] * F, (batch[r] + 1) * F), r * F);
        yb[r * C + y[batch[r]]] = 1;
      }
      return [
        { name: 'x', shape: [B, F], data: xb },
        { name: 'y', shape: [B, C], data: yb },
        { name: 'inv_b', shape: [], data: Float32Array.of(1 / B) },
      ];
    },
  };
}
