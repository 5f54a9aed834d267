// One inner training step of an MLP unit as ONE ONNX graph — forward, softmax cross-entropy,
// backward by hand and the SGD/AdamW update — so the CPU backend trains on onnxruntime's wasm
// MatMul (MLAS) instead of the TypeScript loops; onnxruntime has no training build in the browser,
// so the graph is plain inference ops. The H-step runner feeds each step's outputs back as the next
// step's inputs, on the same seeded batches as protocol/train-loop.ts, and encodes its output there
// (encodeDelta): a replica of the TS loop within the replica tolerance. No onnxruntime import here:
// the caller runs the graph (web/cpu/train.ts on onnxruntime-web; the tests on onnxruntime-node).
import { buildModel, type NodeSpec, type TensorSpec } from '../../coordinator/protocol/onnx-builder';
import { batchSchedule, checkBatchLoss, encodeDelta, type Compression, type InnerOptimizer } from '../../coordinator/protocol/train-loop';
import { mlpModel, mlpTensors } from '../../coordinator/protocol/train-mlp';
import type { Feed } from './runtime';

export interface MlpStepGraphSpec {
  layers: readonly number[];
  optimizer: InnerOptimizer;
}

/** The graph's input and output names for one parameter tensor (w0, b0, …). */
const next = (name: string) => `${name}_next`;
const moment = (which: 'm' | 'v', name: string) => `${which}_${name}`;

/**
 * The step graph. Inputs: each parameter tensor by its name (w0 [in, out], b0 [out], …), for AdamW
 * its moments m_w0, v_w0, …; the batch x [batch, features] and its one-hot labels y [batch,
 * classes]; scalars lr, inv_b (1 / batch) and, for AdamW, the bias corrections c1 = 1 − β1ᵗ and
 * c2 = 1 − β2ᵗ — inputs, so one graph serves every step. Outputs: w0_next, … (and m_w0_next,
 * v_w0_next, …) and loss, the batch's mean loss before the step. The update is train-loop.ts's:
 * θ −= lr·(g + wd·θ) (SGD), θ −= lr·(m̂ / (√v̂ + ε) + wd·θ) (AdamW, decoupled decay).
 */
export function mlpStepModel({ layers, optimizer: o }: MlpStepGraphSpec): Uint8Array {
  const L = layers.length - 1;
  const tensors = mlpTensors(layers);
  const adamw = o.type === 'adamw';
  const nodes: NodeSpec[] = [];
  const inits: TensorSpec[] = [];
  let n = 0;
  const op = (type: string, inputs: string[], attrs?: NodeSpec['attrs'], out = `t${n++}`) => {
    nodes.push({ op: type, inputs, outputs: [out], attrs });
    return out;
  };
  const scalar = (name: string, v: number) => {
    inits.push({ name, dims: [], data: Float32Array.of(v) });
    return name;
  };

  // Forward: a[i+1] = relu(a[i]·W_i + b_i); the last layer's outputs are the logits.
  const acts = ['x'];
  for (let i = 0; i < L; i++) {
    const z = op('Add', [op('MatMul', [acts[i], `w${i}`]), `b${i}`]);
    acts.push(i < L - 1 ? op('Relu', [z]) : z);
  }
  const logits = acts[L];
  // loss = −mean over rows of Σ_c y·log softmax = −C · mean over all [batch, C] entries (ReduceMean
  // keeps its axes attribute in opset 17; ReduceSum's are an int64 input since opset 13).
  const logp = op('LogSoftmax', [logits], { axis: -1 });
  op('Mul', [op('ReduceMean', [op('Mul', ['y', logp])], { axes: [0, 1], keepdims: 0 }), scalar('neg_classes', -layers[L])], undefined, 'loss');

  // Backward with dz = softmax − y (not yet divided by the batch): dW = aᵀ·dz / B, db = mean_rows dz,
  // da = dz·Wᵀ masked where the ReLU was off (sign(a) is 1 where a > 0, else 0).
  const grads = new Map<string, string>();
  let dz = op('Sub', [op('Softmax', [logits], { axis: -1 }), 'y']);
  for (let i = L - 1; i >= 0; i--) {
    grads.set(`w${i}`, op('Mul', [op('MatMul', [op('Transpose', [acts[i]], { perm: [1, 0] }), dz]), 'inv_b']));
    grads.set(`b${i}`, op('ReduceMean', [dz], { axes: [0], keepdims: 0 }));
    if (i > 0) dz = op('Mul', [op('MatMul', [dz, op('Transpose', [`w${i}`], { perm: [1, 0] })]), op('Sign', [acts[i]])]);
  }

  // The update, per tensor.
  const wd = scalar('weight_decay', o.weightDecay);
  const consts = adamw
    ? { b1: scalar('beta1', o.beta1), nb1: scalar('one_minus_beta1', 1 - o.beta1), b2: scalar('beta2', o.beta2), nb2: scalar('one_minus_beta2', 1 - o.beta2), eps: scalar('eps', o.eps) }
    : null;
  for (const t of tensors) {
    const g = grads.get(t.name)!;
    let step = g;
    if (consts) {
      const m = op('Add', [op('Mul', [moment('m', t.name), consts.b1]), op('Mul', [g, consts.nb1])], undefined, next(moment('m', t.name)));
      const v = op('Add', [op('Mul', [moment('v', t.name), consts.b2]), op('Mul', [op('Mul', [g, g]), consts.nb2])], undefined, next(moment('v', t.name)));
      step = op('Div', [op('Div', [m, 'c1']), op('Add', [op('Sqrt', [op('Div', [v, 'c2'])]), consts.eps])]);
    }
    op('Sub', [t.name, op('Mul', ['lr', op('Add', [step, op('Mul', [t.name, wd])])])], undefined, next(t.name));
  }

  const C = layers[L];
  const stateNames = (f: (name: string) => string) => tensors.flatMap((t) => [t.name, ...(adamw ? [moment('m', t.name), moment('v', t.name)] : [])].map((s) => ({ name: f(s), dims: t.shape })));
  return buildModel({
    name: `tabgrid-mlp-step-${o.type}`,
    inputs: [
      ...stateNames((s) => s),
      { name: 'x', dims: ['batch', layers[0]] },
      { name: 'y', dims: ['batch', C] },
      { name: 'lr', dims: [] },
      { name: 'inv_b', dims: [] },
      ...(adamw ? [{ name: 'c1', dims: [] }, { name: 'c2', dims: [] }] : []),
    ],
    outputs: [...stateNames(next), { name: 'loss', dims: [] }],
    initializers: inits,
    nodes,
  });
}

/** Runs the step graph: the named outputs for the feeds, as float32, in order. */
export type RunStepGraph = (feeds: Feed[], outputs: string[]) => Promise<Float32Array[]>;

export type MlpGraphSpec = MlpStepGraphSpec & { steps: number; batchSize: number; seed: number };

/**
 * The unit's H steps through the graph: θ_after as float32 (P values, flat layout) and the mean
 * loss of the steps' batches. The batch (rows of x, one-hot labels) is gathered here.
 */
export async function graphTrainInner(run: RunStepGraph, spec: MlpGraphSpec, params: Float32Array, x: Float32Array, y: Float32Array): Promise<{ theta: Float32Array; trainLoss: number }> {
  const { layers, optimizer: o } = spec;
  const [F, C] = [layers[0], layers[layers.length - 1]];
  const tensors = mlpTensors(layers);
  const adamw = o.type === 'adamw';
  // The state the graph carries, by input name: θ's tensors, and AdamW's moments from zero.
  const state = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const t of tensors) {
    state.set(t.name, { shape: t.shape, data: params.slice(t.offset, t.offset + t.size) });
    if (adamw) for (const w of ['m', 'v'] as const) state.set(moment(w, t.name), { shape: t.shape, data: new Float32Array(t.size) });
  }
  const names = [...state.keys()];
  const outputs = [...names.map(next), 'loss'];
  const rows = y.length;
  const batches = batchSchedule(rows, spec.steps, spec.batchSize, spec.seed);
  let lossSum = 0;
  for (let t = 1; t <= spec.steps; t++) {
    const batch = batches[t - 1];
    const B = batch.length;
    const xb = new Float32Array(B * F);
    const yb = new Float32Array(B * C);
    for (let r = 0; r < B; r++) {
      xb.set(x.subarray(batch[r] * F, (batch[r] + 1) * F), r * F);
      yb[r * C + y[batch[r]]] = 1;
    }
    const scalars: Record<string, number> = { lr: o.lr, inv_b: 1 / B, ...(adamw ? { c1: 1 - o.beta1 ** t, c2: 1 - o.beta2 ** t } : {}) };
    const feeds: Feed[] = [
      ...names.map((name) => ({ name, shape: state.get(name)!.shape, data: state.get(name)!.data })),
      { name: 'x', shape: [B, F], data: xb },
      { name: 'y', shape: [B, C], data: yb },
      ...Object.entries(scalars).map(([name, v]) => ({ name, shape: [], data: Float32Array.of(v) })),
    ];
    const out = await run(feeds, outputs);
    names.forEach((name, i) => (state.get(name)!.data = out[i]));
    lossSum += out[names.length][0];
  }
  const theta = new Float32Array(params.length);
  for (const t of tensors) theta.set(state.get(t.name)!.data, t.offset);
  return { theta, trainLoss: lossSum / Math.max(1, spec.steps) };
}

/**
 * A whole MLP unit through the graph, as the TS loop's `runTrainUnit` returns it: Δ in the unit's
 * encoding, the mean training loss, and the check loss — taken by the TS forward pass
 * (checkBatchLoss), on the parameters the coordinator will decode, so its cheap check is exact.
 */
export async function graphTrainUnit(run: RunStepGraph, spec: MlpGraphSpec, compress: Compression, params: Float32Array, x: Float32Array, y: Float32Array): Promise<Float32Array> {
  const { theta, trainLoss } = await graphTrainInner(run, spec, params, x, y);
  const model = mlpModel(spec.layers);
  const delta = new Float32Array(params.length);
  for (let i = 0; i < delta.length; i++) delta[i] = params[i] - theta[i];
  const encoded = encodeDelta(model, compress, params, delta);
  return encoded.pack(trainLoss, checkBatchLoss({ model, batchSize: spec.batchSize, seed: spec.seed }, encoded.applied ?? theta, x, y));
}
