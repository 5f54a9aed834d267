// ONNX models for the benchmark, built in code with the project's ONNX builder (no downloads):
// attention over [heads, seq, d] as the Transpose → MatMul → scale → Softmax → MatMul graph a
// researcher would export from PyTorch. The matmul model is the builder's own, with fixed shapes.
import { buildModel } from '../coordinator/protocol/onnx-builder';

export { matmulModel } from '../coordinator/protocol/onnx-builder';

/** O = softmax(Q·Kᵀ/√d)·V over [heads, seq, d]. */
export function attentionModel(heads: number, seq: number, d: number): Uint8Array {
  const dims = [heads, seq, d];
  return buildModel({
    name: 'attention',
    inputs: [
      { name: 'Q', dims },
      { name: 'K', dims },
      { name: 'V', dims },
    ],
    outputs: [{ name: 'O', dims }],
    nodes: [
      { op: 'Transpose', inputs: ['K'], outputs: ['Kt'], attrs: { perm: [0, 2, 1] } },
      { op: 'MatMul', inputs: ['Q', 'Kt'], outputs: ['S'] },
      { op: 'Mul', inputs: ['S', 'scale'], outputs: ['Ss'] },
      { op: 'Softmax', inputs: ['Ss'], outputs: ['P'], attrs: { axis: -1 } },
      { op: 'MatMul', inputs: ['P', 'V'], outputs: ['O'] },
    ],
    initializers: [{ name: 'scale', dims: [], data: Float32Array.of(1 / Math.sqrt(d)) }],
  });
}
