// One inner training step as ONE ONNX graph, for any model family: the family's forward, loss and
// hand-written backward (mlp-step.ts, transformer-step.ts), then the optimizer update here, exactly
// protocol/train-loop.ts's SGD / AdamW with decoupled decay. onnxruntime has no training build in
// the browser, so the graph is plain inference ops (opset 17, what onnxruntime-web's wasm build
// runs); the H-step runner (train-step.ts) feeds each step's outputs back as the next step's inputs.
import { GraphBuilder, type ValueSpec } from '../../coordinator/protocol/onnx-builder';
import type { InnerOptimizer } from '../../coordinator/protocol/train-loop';
import type { ParamTensor, SliceData, TrainModel } from '../../coordinator/protocol/train-model';
import type { Feed } from './runtime';

/** A family's part of the step graph. */
export interface StepGraphFamily {
  /** For the graph's name. */
  readonly name: string;
  readonly model: TrainModel;
  /** The batch's inputs (besides θ, the moments and the step's scalars). */
  readonly batchInputs: ValueSpec[];
  /**
   * Emits the nodes from θ (inputs named as model.tensors names them) and the batch to the output
   * 'loss', the batch's mean loss, and to each tensor's gradient; returns the gradients' value names
   * by tensor name.
   */
  lossGrad(g: GraphBuilder): Map<string, string>;
  /** The batch inputs' feeds for one step's examples. */
  batchFeeds(data: SliceData, batch: Int32Array): Feed[];
  /**
   * About how many float32 values one run of the graph holds at once for `batch` examples (inputs,
   * the intermediates backward reads, the largest transients): an upper estimate, so a caller on a
   * bounded heap (wasm32) can leave a unit too large for it to the TS loop.
   */
  stepFloats(batch: number): number;
}

/** The graph's input and output names for one parameter tensor (w0, l0.wq, …). */
export const nextName = (name: string) => `${name}_next`;
export const momentName = (which: 'm' | 'v', name: string) => `${which}_${name}`;
export const gradName = (name: string) => `grad_${name}`;

/** The state the graph carries from step to step, by input name: θ's tensors, and for AdamW their moments. */
export function stepState(model: TrainModel, o: InnerOptimizer): { name: string; tensor: ParamTensor; moment: boolean }[] {
  return model.tensors.flatMap((tensor) => [
    { name: tensor.name, tensor, moment: false },
    ...(o.type === 'adamw' ? (['m', 'v'] as const).map((w) => ({ name: momentName(w, tensor.name), tensor, moment: true })) : []),
  ]);
}

/**
 * The step graph. Inputs: the state (each parameter tensor by its name, for AdamW its moments
 * m_<name>, v_<name>), the family's batch inputs, and scalars lr and, for AdamW, the bias
 * corrections c1 = 1 − β1ᵗ and c2 = 1 − β2ᵗ — inputs, so one graph serves every step. Outputs: the
 * next state (<name>_next, …), loss (the batch's mean loss before the step) and, with `gradients`,
 * grad_<name> (what the tests compare with the float64 gradient). The update is train-loop.ts's:
 * θ −= lr·(g + wd·θ) (SGD), θ −= lr·(m̂ / (√v̂ + ε) + wd·θ) (AdamW, decoupled decay).
 */
export function stepModel(family: StepGraphFamily, o: InnerOptimizer, { gradients = false } = {}): Uint8Array {
  const g = new GraphBuilder();
  const grads = family.lossGrad(g);
  const { tensors } = family.model;
  const adamw = o.type === 'adamw';
  const wd = g.scalar('weight_decay', o.weightDecay);
  const consts = adamw
    ? { b1: g.scalar('beta1', o.beta1), nb1: g.scalar('one_minus_beta1', 1 - o.beta1), b2: g.scalar('beta2', o.beta2), nb2: g.scalar('one_minus_beta2', 1 - o.beta2), eps: g.scalar('eps', o.eps) }
    : null;
  for (const t of tensors) {
    const grad = grads.get(t.name);
    if (!grad) throw new Error(`the ${family.name} step graph has no gradient for ${t.name}`);
    let step = grad;
    if (consts) {
      const [m, v] = [momentName('m', t.name), momentName('v', t.name)];
      const mNext = g.op('Add', [g.op('Mul', [m, consts.b1]), g.op('Mul', [grad, consts.nb1])], undefined, nextName(m));
      const vNext = g.op('Add', [g.op('Mul', [v, consts.b2]), g.op('Mul', [g.op('Mul', [grad, grad]), consts.nb2])], undefined, nextName(v));
      step = g.op('Div', [g.op('Div', [mNext, 'c1']), g.op('Add', [g.op('Sqrt', [g.op('Div', [vNext, 'c2'])]), consts.eps])]);
    }
    g.op('Sub', [t.name, g.op('Mul', ['lr', g.op('Add', [step, g.op('Mul', [t.name, wd])])])], undefined, nextName(t.name));
    if (gradients) g.op('Identity', [grad], undefined, gradName(t.name));
  }
  const state = stepState(family.model, o).map((s) => ({ name: s.name, dims: s.tensor.shape }));
  return g.build({
    name: `tabgrid-${family.name}-step-${o.type}`,
    inputs: [...state, ...family.batchInputs, { name: 'lr', dims: [] }, ...(adamw ? [{ name: 'c1', dims: [] }, { name: 'c2', dims: [] }] : [])],
    outputs: [
      ...state.map((s) => ({ name: nextName(s.name), dims: s.dims })),
      { name: 'loss', dims: [] },
      ...(gradients ? tensors.map((t) => ({ name: gradName(t.name), dims: t.shape })) : []),
    ],
  });
}
