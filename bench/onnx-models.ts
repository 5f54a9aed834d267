// ONNX models for the benchmark, built in code (no downloads): a MatMul, and attention as the
// MatMul → scale → Softmax → MatMul graph a researcher would export from PyTorch.
import onnxProto, { type onnx as Onnx } from 'onnx-proto';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

function input(name: string, dims: number[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
  });
}

function model(graph: Onnx.IGraphProto): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, producerName: 'tabgrid-bench', opsetImport: [{ domain: '', version: 17 }], graph }),
  ).finish();
}

/** Y = A·B with A m×k and B k×n. */
export function matmulModel(m: number, k: number, n: number): Uint8Array {
  return model({
    name: 'matmul',
    node: [{ opType: 'MatMul', input: ['A', 'B'], output: ['Y'] }],
    input: [input('A', [m, k]), input('B', [k, n])],
    output: [input('Y', [m, n])],
  });
}

/** O = softmax(Q·Kᵀ/√d)·V over [heads, seq, d]. */
export function attentionModel(heads: number, seq: number, d: number): Uint8Array {
  return model({
    name: 'attention',
    node: [
      { opType: 'Transpose', input: ['K'], output: ['Kt'], attribute: [{ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: [0, 2, 1] }] },
      { opType: 'MatMul', input: ['Q', 'Kt'], output: ['S'] },
      { opType: 'Mul', input: ['S', 'scale'], output: ['Ss'] },
      { opType: 'Softmax', input: ['Ss'], output: ['P'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: -1 }] },
      { opType: 'MatMul', input: ['P', 'V'], output: ['O'] },
    ],
    initializer: [{ name: 'scale', dataType: FLOAT, dims: [], floatData: [1 / Math.sqrt(d)] }],
    input: [input('Q', [heads, seq, d]), input('K', [heads, seq, d]), input('V', [heads, seq, d])],
    output: [input('O', [heads, seq, d])],
  });
}
