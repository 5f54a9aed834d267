// The MLP classifier family of `train` jobs (see train-model.ts for what a family provides; the
// inner loop, optimizers and output encoding are train-loop.ts, shared with the transformer).
//
// Parameters are one flat vector: for each layer i, W_i as [in, out] row-major, then b_i [out].
// Hidden layers use ReLU; the last layer's outputs are logits under softmax cross-entropy.
import { fillUniform, mixSeed, rng, type FloatArray, type FloatArrayCtor, type ParamTensor, type TrainModel } from './train-model.js';

/** The parameter tensors of an MLP in flat order: w0, b0, w1, b1, … */
export function mlpTensors(layers: readonly number[]): ParamTensor[] {
  const out: ParamTensor[] = [];
  let offset = 0;
  for (let i = 0; i + 1 < layers.length; i++) {
    const [a, b] = [layers[i], layers[i + 1]];
    out.push({ name: `w${i}`, shape: [a, b], offset, size: a * b });
    offset += a * b;
    out.push({ name: `b${i}`, shape: [b], offset, size: b });
    offset += b;
  }
  return out;
}

export function mlpParamCount(layers: readonly number[]): number {
  let n = 0;
  for (let i = 0; i + 1 < layers.length; i++) n += layers[i] * layers[i + 1] + layers[i + 1];
  return n;
}

/** Multiply-adds of one row through the network (Σ in·out): forward ≈ 2×, backward ≈ 4× this per row. */
export function mlpMacs(layers: readonly number[]): number {
  let n = 0;
  for (let i = 0; i + 1 < layers.length; i++) n += layers[i] * layers[i + 1];
  return n;
}

/** He-uniform weights from the seed, zero biases: a job's initial parameters. */
export function initMlp(layers: readonly number[], seed: number): Float32Array {
  const p = new Float32Array(mlpParamCount(layers));
  const next = rng(mixSeed(seed, 3));
  for (const t of mlpTensors(layers)) {
    if (t.name.startsWith('b')) continue;
    fillUniform(p, t.offset, t.size, Math.sqrt(6 / t.shape[0]), next);
  }
  return p;
}

// --- Forward and backward ---

/**
 * Mean softmax cross-entropy of the batch `rows` of (x, y), and (when `grad` is given) its gradient
 * with respect to the parameters written into `grad`. `Arr` is the precision of every stored
 * intermediate (activations, gradients); `Acc` that of each dot product's running sum (float64 by
 * default; float32 rounds after every add, as a GPU kernel does — the tests' calibration uses it).
 */
export function mlpLossGrad(
  Arr: FloatArrayCtor,
  layers: readonly number[],
  params: FloatArray,
  x: FloatArray,
  y: FloatArray,
  rows: Int32Array,
  grad: FloatArray | null,
  Acc: FloatArrayCtor = Float64Array,
): number {
  const L = layers.length - 1;
  const B = rows.length;
  const tensors = mlpTensors(layers);
  // acts[0] = the batch's inputs; acts[i+1] = layer i's outputs (post-ReLU for hidden layers, logits last).
  const acts: FloatArray[] = [new Arr(B * layers[0])];
  const f0 = layers[0];
  for (let r = 0; r < B; r++) {
    const src = rows[r] * f0;
    for (let j = 0; j < f0; j++) acts[0][r * f0 + j] = x[src + j];
  }
  for (let i = 0; i < L; i++) {
    const [din, dout] = [layers[i], layers[i + 1]];
    const W = tensors[2 * i].offset;
    const bOff = tensors[2 * i + 1].offset;
    const a = acts[i];
    const z = new Arr(B * dout);
    const acc = new Acc(dout);
    for (let r = 0; r < B; r++) {
      for (let o = 0; o < dout; o++) acc[o] = params[bOff + o];
      for (let k = 0; k < din; k++) {
        const av = a[r * din + k];
        if (av === 0) continue;
        const row = W + k * dout;
        for (let o = 0; o < dout; o++) acc[o] += av * params[row + o];
      }
      const last = i === L - 1;
      for (let o = 0; o < dout; o++) z[r * dout + o] = last || acc[o] > 0 ? acc[o] : 0;
    }
    acts.push(z);
  }
  const C = layers[L];
  const logits = acts[L];
  let loss = 0;
  // dz: the gradient at the current layer's outputs, starting with softmax − onehot over B.
  let dz = grad ? new Arr(B * C) : null;
  for (let r = 0; r < B; r++) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, logits[r * C + c]);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(logits[r * C + c] - max);
    const label = y[rows[r]];
    loss += Math.log(sum) + max - logits[r * C + label];
    if (dz) for (let c = 0; c < C; c++) dz[r * C + c] = (Math.exp(logits[r * C + c] - max) / sum - (c === label ? 1 : 0)) / B;
  }
  if (!grad || !dz) return loss / B;
  grad.fill(0);
  for (let i = L - 1; i >= 0; i--) {
    const [din, dout] = [layers[i], layers[i + 1]];
    const W = tensors[2 * i].offset;
    const bOff = tensors[2 * i + 1].offset;
    const a = acts[i];
    const acc = new Acc(dout);
    // dW = aᵀ·dz, db = Σ_rows dz
    for (let k = 0; k < din; k++) {
      acc.fill(0);
      for (let r = 0; r < B; r++) {
        const av = a[r * din + k];
        if (av === 0) continue;
        for (let o = 0; o < dout; o++) acc[o] += av * dz[r * dout + o];
      }
      for (let o = 0; o < dout; o++) grad[W + k * dout + o] = acc[o];
    }
    acc.fill(0);
    for (let r = 0; r < B; r++) for (let o = 0; o < dout; o++) acc[o] += dz[r * dout + o];
    for (let o = 0; o < dout; o++) grad[bOff + o] = acc[o];
    if (i === 0) break;
    // da = dz·Wᵀ, through the ReLU (a > 0 exactly where its pre-activation was).
    const da = new Arr(B * din);
    const s = new Acc(1);
    for (let r = 0; r < B; r++) {
      for (let k = 0; k < din; k++) {
        if (a[r * din + k] <= 0) continue;
        s[0] = 0;
        const row = W + k * dout;
        for (let o = 0; o < dout; o++) s[0] += dz[r * dout + o] * params[row + o];
        da[r * din + k] = s[0];
      }
    }
    dz = da;
  }
  return loss / B;
}

/** The MLP as a training family: an example is a row of x with its class id in y. */
export function mlpModel(layers: readonly number[]): TrainModel {
  return {
    family: 'mlp',
    paramCount: mlpParamCount(layers),
    tensors: mlpTensors(layers),
    init: (seed) => initMlp(layers, seed),
    examples: (rows) => rows,
    lossGrad: (Arr, params, d, batch, grad, Acc) => mlpLossGrad(Arr, layers, params, d.x, d.y!, batch, grad, Acc),
    // Forward 2, backward 4 FLOPs per multiply-add and row.
    stepFlops: (batch) => 6 * mlpMacs(layers) * batch,
  };
}
