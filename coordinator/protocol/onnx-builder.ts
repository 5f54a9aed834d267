// Builds ONNX models in code with the onnx protobuf schema (onnx-buf): the tests' small models, the
// CPU backend's matmul and attention graphs, and (through GraphBuilder) the training step graphs and
// model.onnx. Pure TypeScript, so the browser and the coordinator share it.
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type ValueInfoProto,
} from 'onnx-buf';

/** A dimension: a fixed size, or a symbolic name (a dynamic axis such as the batch). */
export type Dim = number | string;

export interface ValueSpec {
  name: string;
  dims: Dim[];
}

export type AttrValue = number | number[] | string | { float: number };

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttrValue>;
  /** Operator domain: '' for the standard ai.onnx set. */
  domain?: string;
}

export interface TensorSpec {
  name: string;
  dims: number[];
  /** float32 values, or int64 ones (shapes and axes, which opset 13+ takes as inputs). */
  data: Float32Array | BigInt64Array;
}

export interface ModelSpec {
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  nodes: NodeSpec[];
  initializers?: TensorSpec[];
  opset?: number;
  name?: string;
}

function valueInfo({ name, dims }: ValueSpec): ValueInfoProto {
  const dim = dims.map((d) =>
    create(TensorShapeProto_DimensionSchema, {
      value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
    }),
  );
  const tensorType = create(TypeProto_TensorSchema, { elemType: TensorProto_DataType.FLOAT, shape: create(TensorShapeProtoSchema, { dim }) });
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}

function attribute(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.STRING, s: new TextEncoder().encode(v) });
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: integer expected (use { float } for floats)`);
    return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) });
  }
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: v.map((x) => BigInt(x)) });
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: v.float });
}

/** Serialises a float32 model; the result loads in onnxruntime (node and web). */
export function buildModel(spec: ModelSpec): Uint8Array {
  const graph = create(GraphProtoSchema, {
    name: spec.name ?? 'graph',
    input: spec.inputs.map(valueInfo),
    output: spec.outputs.map(valueInfo),
    node: spec.nodes.map((n, i) =>
      create(NodeProtoSchema, {
        name: `${n.op.toLowerCase()}_${i}`,
        opType: n.op,
        domain: n.domain ?? '',
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attribute(k, v)),
      }),
    ),
    initializer: (spec.initializers ?? []).map((t) =>
      create(TensorProtoSchema, {
        name: t.name,
        dims: t.dims.map((d) => BigInt(d)),
        dataType: t.data instanceof BigInt64Array ? TensorProto_DataType.INT64 : TensorProto_DataType.FLOAT,
        rawData: Uint8Array.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
      }),
    ),
  });
  const model = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'tabgrid',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(spec.opset ?? 17) })],
    graph,
  });
  return toBinary(ModelProtoSchema, model);
}

/**
 * A graph written node by node: `op` appends a node and names its output (fresh unless given), so
 * builders read as the maths they compute; constants are initializers, one per name.
 */
export class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: TensorSpec[] = [];
  private readonly constants = new Map<string, string>();
  private n = 0;

  /** Appends a node with one output; returns the output's name. */
  op(type: string, inputs: string[], attrs?: NodeSpec['attrs'], out = `${type.toLowerCase()}${this.n++}`): string {
    this.nodes.push({ op: type, inputs, outputs: [out], attrs });
    return out;
  }

  /** An initializer; returns its name. */
  init(name: string, dims: number[], data: Float32Array | BigInt64Array): string {
    this.initializers.push({ name, dims, data });
    return name;
  }

  /** A constant shared by name: a float32 scalar, or an int64 vector (a shape, axes). */
  private constant(name: string, key: string, make: () => void): string {
    const known = this.constants.get(name);
    if (known !== undefined && known !== key) throw new Error(`constant ${name} redefined`);
    if (known === undefined) {
      this.constants.set(name, key);
      make();
    }
    return name;
  }

  scalar(name: string, v: number): string {
    return this.constant(name, `f${v}`, () => this.init(name, [], Float32Array.of(v)));
  }

  ints(name: string, values: number[]): string {
    return this.constant(name, `i${values.join(',')}`, () => this.init(name, [values.length], BigInt64Array.from(values, BigInt)));
  }

  build(spec: Omit<ModelSpec, 'nodes' | 'initializers'>): Uint8Array {
    return buildModel({ ...spec, nodes: this.nodes, initializers: this.initializers });
  }
}

/**
 * C[m,n] = A[m,k] · B[k,n]. Symbolic m, k, n by default: one graph serves every matmul shape; the
 * benchmark fixes them so ORT can plan for the one shape it times.
 */
export function matmulModel(m: Dim = 'm', k: Dim = 'k', n: Dim = 'n'): Uint8Array {
  return buildModel({
    name: 'matmul',
    inputs: [
      { name: 'a', dims: [m, k] },
      { name: 'b', dims: [k, n] },
    ],
    outputs: [{ name: 'c', dims: [m, n] }],
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] }],
  });
}

/**
 * out[r,d] = softmax(q[r,d] · k[s,d]ᵀ · scale + mask[r,s]) · v[s,d] with symbolic r, s, d: one
 * attention head's block of query rows. `mask` is an additive bias (0 or -Infinity: causal masking).
 */
export function attentionModel(): Uint8Array {
  return buildModel({
    name: 'attention',
    inputs: [
      { name: 'q', dims: ['r', 'd'] },
      { name: 'k', dims: ['s', 'd'] },
      { name: 'v', dims: ['s', 'd'] },
      { name: 'scale', dims: [] },
      { name: 'mask', dims: ['r', 's'] },
    ],
    outputs: [{ name: 'out', dims: ['r', 'd'] }],
    nodes: [
      { op: 'Transpose', inputs: ['k'], outputs: ['kt'], attrs: { perm: [1, 0] } },
      { op: 'MatMul', inputs: ['q', 'kt'], outputs: ['s0'] },
      { op: 'Mul', inputs: ['s0', 'scale'], outputs: ['s1'] },
      { op: 'Add', inputs: ['s1', 'mask'], outputs: ['s2'] },
      { op: 'Softmax', inputs: ['s2'], outputs: ['p'], attrs: { axis: -1 } },
      { op: 'MatMul', inputs: ['p', 'v'], outputs: ['out'] },
    ],
  });
}

/** The additive mask for query rows [q0, q0 + rows) over `seq` keys: causal hides keys j > q0 + i. */
export function attentionMask(rows: number, seq: number, q0: number, causal: boolean): Float32Array {
  const mask = new Float32Array(rows * seq);
  if (causal) for (let i = 0; i < rows; i++) mask.fill(-Infinity, i * seq + Math.min(seq, q0 + i + 1), (i + 1) * seq);
  return mask;
}
