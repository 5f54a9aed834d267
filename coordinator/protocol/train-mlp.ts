// The inner loop of a `train` work unit for the MLP classifier: H steps of SGD or AdamW from the
// round's parameters on batches of the unit's data slice, drawn from the unit's seed. Pure
// TypeScript with no Node APIs: the volunteer page's CPU trainer (web/worker) and the coordinator's
// reference (coordinator/jobs/train.ts, the sim worker, the tests) are this one file, run with
// float32 arrays; the central reference run in the tests runs it with float64 arrays.
//
// Parameters are one flat vector: for each layer i, W_i as [in, out] row-major, then b_i [out].
// Hidden layers use ReLU; the last layer's outputs are logits under softmax cross-entropy.
// A unit's output is Δ = θ_round − θ_after (P values), then the mean training loss of its H steps,
// then the loss of θ_after on the unit's check batch (see `checkRows`): P + 2 float32 values. With
// int8 compression it is the two losses, one float32 scale per tensor, then Δ as int8 (see
// `runTrainUnit`), padded to a multiple of 4 bytes: about a quarter of the bytes.

import type { TrainParams } from './jobs.js';

export type FloatArray = Float32Array | Float64Array;
export type FloatArrayCtor = Float32ArrayConstructor | Float64ArrayConstructor;

export interface InnerOptimizer {
  type: 'sgd' | 'adamw';
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export interface InnerSpec {
  layers: readonly number[];
  steps: number;
  batchSize: number;
  seed: number;
  optimizer: InnerOptimizer;
}

/** The inner-loop spec of a unit from its parameters (what every trainer runs). */
export function innerSpecOf(p: TrainParams): InnerSpec {
  return {
    layers: p.layers,
    steps: p.steps,
    batchSize: p.batchSize,
    seed: p.seed,
    optimizer: { type: p.optimizer, lr: p.lr, weightDecay: p.weightDecay, beta1: p.beta1, beta2: p.beta2, eps: p.eps },
  };
}

export interface MlpTensor {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

/** The parameter tensors of an MLP in flat order: w0, b0, w1, b1, … */
export function mlpTensors(layers: readonly number[]): MlpTensor[] {
  const out: MlpTensor[] = [];
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

/** FLOPs of H inner steps (forward 2, backward 4 per multiply-add and row): a unit's credit. */
export function innerFlops(layers: readonly number[], steps: number, batchSize: number): number {
  return 6 * mlpMacs(layers) * batchSize * steps;
}

// --- Deterministic randomness: 32-bit integer arithmetic only, identical in every JS engine ---

/** A 32-bit hash of a few integers (murmur3's finaliser over a running mix). */
export function mixSeed(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** mulberry32: a uint32 stream from a seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A uniform integer in [0, n) from a uint32 (exact in doubles for n < 2^21). */
function below(u: number, n: number): number {
  return Math.floor((u * n) / 4294967296);
}

/**
 * The rows of each of the unit's `steps` batches: epochs of a seeded shuffle of the slice's rows,
 * `batchSize` (at most the slice's rows) consecutive rows per step.
 */
export function batchSchedule(rows: number, steps: number, batchSize: number, seed: number): Int32Array[] {
  const next = rng(mixSeed(seed, 1));
  const b = Math.min(batchSize, rows);
  const perm = new Int32Array(rows);
  for (let i = 0; i < rows; i++) perm[i] = i;
  let at = rows; // forces a shuffle first
  const out: Int32Array[] = [];
  for (let s = 0; s < steps; s++) {
    const batch = new Int32Array(b);
    for (let j = 0; j < b; j++) {
      if (at >= rows) {
        for (let i = rows - 1; i > 0; i--) {
          const k = below(next(), i + 1);
          const t = perm[i];
          perm[i] = perm[k];
          perm[k] = t;
        }
        at = 0;
      }
      batch[j] = perm[at++];
    }
    out.push(batch);
  }
  return out;
}

/** The unit's check batch: rows drawn with replacement from a stream of its own (see jobs/train.ts `check`). */
export function checkRows(rows: number, batchSize: number, seed: number): Int32Array {
  const next = rng(mixSeed(seed, 2));
  const b = Math.min(batchSize, rows);
  const out = new Int32Array(b);
  for (let j = 0; j < b; j++) out[j] = below(next(), rows);
  return out;
}

/** He-uniform weights from the seed, zero biases: a job's initial parameters. */
export function initMlp(layers: readonly number[], seed: number): Float32Array {
  const p = new Float32Array(mlpParamCount(layers));
  const next = rng(mixSeed(seed, 3));
  for (const t of mlpTensors(layers)) {
    if (t.name.startsWith('b')) continue;
    const bound = Math.sqrt(6 / t.shape[0]);
    for (let i = 0; i < t.size; i++) p[t.offset + i] = (next() / 4294967296) * 2 * bound - bound;
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

/**
 * The unit: `steps` optimizer steps from `params` on the slice (x [rows, F], y [rows] class ids)
 * in `Arr`'s precision. Returns Δ = params − θ_after, the mean loss of the steps' batches (each
 * taken before its step) and the loss of θ_after on the check batch.
 */
export function trainInner(
  Arr: FloatArrayCtor,
  spec: InnerSpec,
  params: FloatArray,
  x: FloatArray,
  y: FloatArray,
  onStep?: (step: number, loss: number) => void,
  Acc: FloatArrayCtor = Float64Array,
): { delta: FloatArray; trainLoss: number; checkLoss: number } {
  const P = params.length;
  const rows = y.length;
  const theta = new Arr(P);
  theta.set(params);
  const g = new Arr(P);
  const { optimizer: o } = spec;
  const m = o.type === 'adamw' ? new Arr(P) : null;
  const v = o.type === 'adamw' ? new Arr(P) : null;
  let lossSum = 0;
  const batches = batchSchedule(rows, spec.steps, spec.batchSize, spec.seed);
  for (let t = 1; t <= spec.steps; t++) {
    const loss = mlpLossGrad(Arr, spec.layers, theta, x, y, batches[t - 1], g, Acc);
    lossSum += loss;
    onStep?.(t, loss);
    if (m && v) {
      const c1 = 1 - o.beta1 ** t;
      const c2 = 1 - o.beta2 ** t;
      for (let i = 0; i < P; i++) {
        const gi = g[i];
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
        theta[i] = theta[i] - o.lr * (m[i] / c1 / (Math.sqrt(v[i] / c2) + o.eps) + o.weightDecay * theta[i]);
      }
    } else {
      for (let i = 0; i < P; i++) theta[i] = theta[i] - o.lr * (g[i] + o.weightDecay * theta[i]);
    }
  }
  const checkLoss = mlpLossGrad(Arr, spec.layers, theta, x, y, checkRows(rows, spec.batchSize, spec.seed), null, Acc);
  const delta = new Arr(P);
  for (let i = 0; i < P; i++) delta[i] = params[i] - theta[i];
  return { delta, trainLoss: lossSum / Math.max(1, spec.steps), checkLoss };
}

/** A unit's output as sent: Δ, then the mean training loss, then the check loss, in float32. */
export function packTrainOutput(r: { delta: FloatArray; trainLoss: number; checkLoss: number }): Float32Array {
  const out = new Float32Array(r.delta.length + 2);
  out.set(r.delta);
  out[r.delta.length] = r.trainLoss;
  out[r.delta.length + 1] = r.checkLoss;
  return out;
}

export type Compression = 'none' | 'int8';

/** Bytes of a unit's output in the unit's encoding. */
export function trainOutputBytes(layers: readonly number[], compress: Compression): number {
  const P = mlpParamCount(layers);
  if (compress === 'none') return (P + 2) * 4;
  return (2 + mlpTensors(layers).length) * 4 + Math.ceil(P / 4) * 4;
}

/** Int8 with one scale per tensor: q = round(Δ / s), s = max|Δ_t| / 127 (so |q| ≤ 127). */
export function quantizeInt8(layers: readonly number[], delta: FloatArray): { scales: Float32Array; q: Int8Array } {
  const tensors = mlpTensors(layers);
  const scales = new Float32Array(tensors.length);
  const q = new Int8Array(delta.length);
  tensors.forEach((t, i) => {
    let max = 0;
    for (let j = t.offset; j < t.offset + t.size; j++) max = Math.max(max, Math.abs(delta[j]));
    const s = Math.fround(max / 127);
    scales[i] = s;
    if (s > 0) for (let j = t.offset; j < t.offset + t.size; j++) q[j] = Math.max(-127, Math.min(127, Math.round(delta[j] / s)));
  });
  return { scales, q };
}

export function dequantizeInt8(layers: readonly number[], scales: ArrayLike<number>, q: Int8Array): Float32Array {
  const out = new Float32Array(q.length);
  mlpTensors(layers).forEach((t, i) => {
    for (let j = t.offset; j < t.offset + t.size; j++) out[j] = q[j] * scales[i];
  });
  return out;
}

/**
 * Δ in the unit's encoding, before the two losses are known. `applied` is θ_round − Δ as the
 * coordinator will decode it when that differs from θ_after (int8: θ_round − dequantized Δ; null
 * for float32): the check loss must then be taken on it, so the coordinator's check stays exact.
 * `pack` writes the output as sent. Every trainer (the TS loop, web/gpu's WGSL loop) encodes here.
 */
export function encodeDelta(layers: readonly number[], compress: Compression, params: Float32Array, delta: FloatArray): { applied: Float32Array | null; pack(trainLoss: number, checkLoss: number): Float32Array } {
  if (compress === 'none') return { applied: null, pack: (trainLoss, checkLoss) => packTrainOutput({ delta, trainLoss, checkLoss }) };
  const P = params.length;
  const { scales, q } = quantizeInt8(layers, delta);
  const deq = dequantizeInt8(layers, scales, q);
  const applied = new Float32Array(P);
  for (let i = 0; i < P; i++) applied[i] = params[i] - deq[i];
  return {
    applied,
    pack(trainLoss, checkLoss) {
      const out = new Float32Array(trainOutputBytes(layers, 'int8') / 4);
      out[0] = trainLoss;
      out[1] = checkLoss;
      out.set(scales, 2);
      new Int8Array(out.buffer, (2 + scales.length) * 4, P).set(q);
      return out;
    },
  };
}

/** A whole unit as a worker runs it: the inner loop, then the output in the unit's encoding (`encodeDelta`). */
export function runTrainUnit(spec: InnerSpec, compress: Compression, params: Float32Array, x: Float32Array, y: Float32Array, Acc: FloatArrayCtor = Float64Array): Float32Array {
  const r = trainInner(Float32Array, spec, params, x, y, undefined, Acc);
  const encoded = encodeDelta(spec.layers, compress, params, r.delta);
  const checkLoss = encoded.applied ? mlpLossGrad(Float32Array, spec.layers, encoded.applied, x, y, checkRows(y.length, spec.batchSize, spec.seed), null, Acc) : r.checkLoss;
  return encoded.pack(r.trainLoss, checkLoss);
}

/** A unit's output decoded: Δ as float32 (dequantized for int8) and the two losses; null when malformed. */
export function decodeTrainOutput(layers: readonly number[], compress: Compression, out: Float32Array): { delta: Float32Array; trainLoss: number; checkLoss: number; scales: Float32Array | null } | null {
  const P = mlpParamCount(layers);
  if (out.byteLength !== trainOutputBytes(layers, compress)) return null;
  if (compress === 'none') return { delta: out.subarray(0, P), trainLoss: out[P], checkLoss: out[P + 1], scales: null };
  const T = mlpTensors(layers).length;
  const scales = out.subarray(2, 2 + T);
  const q = new Int8Array(out.buffer, out.byteOffset + (2 + T) * 4, P);
  return { delta: dequantizeInt8(layers, scales, q), trainLoss: out[0], checkLoss: out[1], scales };
}

/** The mean training loss a unit's output reports (for display). */
export function reportedTrainLoss(compress: Compression, out: Float32Array): number {
  return compress === 'int8' ? out[0] : out[out.length - 2];
}
