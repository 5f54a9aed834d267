// Reads what the coordinator needs to know about an uploaded ONNX model: its float32 inputs and
// outputs (names, shapes with symbolic axes), size and parameter count. Pure TypeScript (onnx-buf).
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProto_DataLocation, TensorProto_DataType, type TensorProto, type ValueInfoProto } from 'onnx-buf';

export class OnnxModelError extends Error {
  override name = 'OnnxModelError';
}

/** A fixed dimension, or null for a symbolic/unknown one (a dynamic axis). */
export type ModelDim = number | null;

export interface ModelTensor {
  name: string;
  dims: ModelDim[];
}

export interface ModelInfo {
  inputs: ModelTensor[];
  outputs: ModelTensor[];
  /** Number of float weights in initializers (a proxy for the compute per item). */
  parameters: number;
  /** Operator types used, sorted. */
  ops: string[];
  opset: number;
}

const MAX_TENSORS = 16;

function dtypeName(t: number): string {
  return TensorProto_DataType[t]?.toLowerCase() ?? `type ${t}`;
}

function tensorOf(v: ValueInfoProto, what: string): ModelTensor {
  if (v.type?.value.case !== 'tensorType') throw new OnnxModelError(`${what} '${v.name}' is not a tensor`);
  const tt = v.type.value.value;
  if (tt.elemType !== TensorProto_DataType.FLOAT) {
    throw new OnnxModelError(`${what} '${v.name}' is ${dtypeName(tt.elemType)}; only float32 inputs and outputs are supported`);
  }
  if (!tt.shape) throw new OnnxModelError(`${what} '${v.name}' has no declared shape`);
  const dims = tt.shape.dim.map((d) => (d.value.case === 'dimValue' && d.value.value > 0n ? Number(d.value.value) : null));
  return { name: v.name, dims };
}

function elementCount(t: TensorProto): number {
  return t.dims.reduce((a, d) => a * Number(d), 1);
}

/** Parses a serialised ModelProto; throws OnnxModelError with a message a researcher can act on. */
export function inspectModel(bytes: Uint8Array): ModelInfo {
  let model;
  try {
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (err) {
    throw new OnnxModelError(`not a valid ONNX model (protobuf decoding failed: ${(err as Error).message})`);
  }
  const graph = model.graph;
  if (model.irVersion <= 0n || !graph || graph.node.length === 0) {
    throw new OnnxModelError('not a valid ONNX model (no IR version or no graph nodes)');
  }
  const initNames = new Set(graph.initializer.map((t) => t.name));
  for (const t of graph.initializer) {
    if (t.dataLocation === TensorProto_DataLocation.EXTERNAL) {
      throw new OnnxModelError(`initializer '${t.name}' keeps its data in an external file; save the model with all weights inside`);
    }
  }
  // Older exporters list initializers among the graph inputs too: those are not fed by the job.
  const inputs = graph.input.filter((v) => !initNames.has(v.name)).map((v) => tensorOf(v, 'input'));
  const outputs = graph.output.map((v) => tensorOf(v, 'output'));
  if (inputs.length === 0 || inputs.length > MAX_TENSORS) throw new OnnxModelError(`the model must have 1 to ${MAX_TENSORS} inputs, it has ${inputs.length}`);
  if (outputs.length === 0 || outputs.length > MAX_TENSORS) throw new OnnxModelError(`the model must have 1 to ${MAX_TENSORS} outputs, it has ${outputs.length}`);
  const parameters = graph.initializer
    .filter((t) => t.dataType === TensorProto_DataType.FLOAT)
    .reduce((s, t) => s + elementCount(t), 0);
  const opset = Number(model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0n);
  return { inputs, outputs, parameters, ops: [...new Set(graph.node.map((n) => n.opType))].sort(), opset };
}
