// The inner loop of a `train` work unit, for every model family (train-model.ts): H steps of SGD or
// AdamW from the round's parameters on batches of the unit's data slice, drawn from the unit's
// seed. Pure TypeScript with no Node APIs: the volunteer page's transformer trainer and its MLP
// fallback (web/worker, web/cpu) and the coordinator's reference (coordinator/jobs/train.ts, the
// sim worker, the tests) are this one file, run with float32 arrays; the central reference run in
// the tests runs it with float64 arrays.
//
// A unit's output is Δ = θ_round − θ_after (P values), then the mean training loss of its H steps,
// then the loss of θ_after on the unit's check batch (see `checkRows`): P + 2 float32 values. With
// int8 compression it is the two losses, one float32 scale per tensor, then Δ as int8 (see
// `runTrainUnit`), padded to a multiple of 4 bytes: about a quarter of the bytes.
import type { TrainParams } from './jobs.js';
import { mlpModel } from './train-mlp.js';
import { below, mixSeed, rng, sliceRows, type FloatArray, type FloatArrayCtor, type ParamTensor, type TrainModel } from './train-model.js';
import { transformerModel, type TransformerSpec } from './train-transformer.js';

export type { FloatArray, FloatArrayCtor, ParamTensor, TrainModel } from './train-model.js';

/** A model as a `train` job describes it (protocol/jobs.ts validates the JSON). */
export type ModelSpec = { type: 'mlp'; layers: readonly number[] } | ({ type: 'transformer' } & TransformerSpec);

/** The family that trains a model spec. */
export function trainModelOf(spec: ModelSpec): TrainModel {
  return spec.type === 'mlp' ? mlpModel(spec.layers) : transformerModel(spec);
}

export interface InnerOptimizer {
  type: 'sgd' | 'adamw';
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export interface InnerSpec {
  model: TrainModel;
  steps: number;
  batchSize: number;
  seed: number;
  optimizer: InnerOptimizer;
}

/** The model spec a unit's parameters name: an MLP unit its layer widths, a transformer unit its spec. */
export function unitModelSpec(p: TrainParams): ModelSpec {
  return 'model' in p ? p.model : { type: 'mlp', layers: p.layers };
}

/** The inner-loop spec of a unit from its parameters. */
export function innerSpecOf(p: TrainParams): InnerSpec {
  return {
    model: trainModelOf(unitModelSpec(p)),
    steps: p.steps,
    batchSize: p.batchSize,
    seed: p.seed,
    optimizer: { type: p.optimizer, lr: p.lr, weightDecay: p.weightDecay, beta1: p.beta1, beta2: p.beta2, eps: p.eps },
  };
}

/**
 * The examples of each of the unit's `steps` batches: epochs of a seeded shuffle of the slice's
 * examples (rows; an LM's window offsets), `batchSize` (at most that many) consecutive ones per step.
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


/**
 * The unit: `steps` optimizer steps from `params` on the slice (x and y as the family reads them,
 * y null for the LM) in `Arr`'s precision. Returns Δ = params − θ_after, the mean loss of the steps' batches (each
 * taken before its step) and the loss of θ_after on the check batch.
 */
export function trainInner(
  Arr: FloatArrayCtor,
  spec: InnerSpec,
  params: FloatArray,
  x: FloatArray,
  y: FloatArray | null,
  onStep?: (step: number, loss: number) => void,
  Acc: FloatArrayCtor = Float64Array,
): { delta: FloatArray; trainLoss: number; checkLoss: number } {
  const P = params.length;
  const model = spec.model;
  const data = { x, y };
  const rows = model.examples(sliceRows(data));
  const theta = new Arr(P);
  theta.set(params);
  const g = new Arr(P);
  const { optimizer: o } = spec;
  const m = o.type === 'adamw' ? new Arr(P) : null;
  const v = o.type === 'adamw' ? new Arr(P) : null;
  let lossSum = 0;
  const batches = batchSchedule(rows, spec.steps, spec.batchSize, spec.seed);
  for (let t = 1; t <= spec.steps; t++) {
    const loss = model.lossGrad(Arr, theta, data, batches[t - 1], g, Acc);
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
  const checkLoss = model.lossGrad(Arr, theta, data, checkRows(rows, spec.batchSize, spec.seed), null, Acc);
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
export function trainOutputBytes(model: Pick<TrainModel, 'paramCount' | 'tensors'>, compress: Compression): number {
  const P = model.paramCount;
  if (compress === 'none') return (P + 2) * 4;
  return (2 + model.tensors.length) * 4 + Math.ceil(P / 4) * 4;
}

/** Int8 with one scale per tensor: q = round(Δ / s), s = max|Δ_t| / 127 (so |q| ≤ 127). */
export function quantizeInt8(tensors: readonly ParamTensor[], delta: FloatArray): { scales: Float32Array; q: Int8Array } {
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

export function dequantizeInt8(tensors: readonly ParamTensor[], scales: ArrayLike<number>, q: Int8Array): Float32Array {
  const out = new Float32Array(q.length);
  tensors.forEach((t, i) => {
    for (let j = t.offset; j < t.offset + t.size; j++) out[j] = q[j] * scales[i];
  });
  return out;
}

/**
 * Δ in the unit's encoding, before the two losses are known. `applied` is θ_round − Δ as the
 * coordinator will decode it when that differs from θ_after (int8: θ_round − dequantized Δ; null
 * for float32): the check loss must then be taken on it, so the coordinator's check stays exact.
 * `pack` writes the output as sent. Every trainer (this TS loop, web/gpu's WGSL loop) encodes here.
 */
export function encodeDelta(
  model: Pick<TrainModel, 'paramCount' | 'tensors'>,
  compress: Compression,
  params: Float32Array,
  delta: FloatArray,
): { applied: Float32Array | null; pack(trainLoss: number, checkLoss: number): Float32Array } {
  if (compress === 'none') return { applied: null, pack: (trainLoss, checkLoss) => packTrainOutput({ delta, trainLoss, checkLoss }) };
  const P = params.length;
  const { scales, q } = quantizeInt8(model.tensors, delta);
  const deq = dequantizeInt8(model.tensors, scales, q);
  const applied = new Float32Array(P);
  for (let i = 0; i < P; i++) applied[i] = params[i] - deq[i];
  return {
    applied,
    pack(trainLoss, checkLoss) {
      const out = new Float32Array(trainOutputBytes(model, 'int8') / 4);
      out[0] = trainLoss;
      out[1] = checkLoss;
      out.set(scales, 2);
      new Int8Array(out.buffer, (2 + scales.length) * 4, P).set(q);
      return out;
    },
  };
}

/** The loss of `params` on the unit's check batch: what the coordinator's cheap check recomputes. */
export function checkBatchLoss(spec: Pick<InnerSpec, 'model' | 'batchSize' | 'seed'>, params: Float32Array, x: Float32Array, y: Float32Array | null, Acc: FloatArrayCtor = Float64Array): number {
  const data = { x, y };
  return spec.model.lossGrad(Float32Array, params, data, checkRows(spec.model.examples(sliceRows(data)), spec.batchSize, spec.seed), null, Acc);
}

/** A whole unit as a worker runs it: the inner loop, then the output in the unit's encoding (`encodeDelta`). */
export function runTrainUnit(spec: InnerSpec, compress: Compression, params: Float32Array, x: Float32Array, y: Float32Array | null, Acc: FloatArrayCtor = Float64Array): Float32Array {
  const r = trainInner(Float32Array, spec, params, x, y, undefined, Acc);
  const { model } = spec;
  const encoded = encodeDelta(model, compress, params, r.delta);
  if (!encoded.applied) return encoded.pack(r.trainLoss, r.checkLoss);
  return encoded.pack(r.trainLoss, checkBatchLoss(spec, encoded.applied, x, y, Acc));
}

/** A unit's output decoded: Δ as float32 (dequantized for int8) and the two losses; null when malformed. */
export function decodeTrainOutput(
  model: Pick<TrainModel, 'paramCount' | 'tensors'>,
  compress: Compression,
  out: Float32Array,
): { delta: Float32Array; trainLoss: number; checkLoss: number; scales: Float32Array | null } | null {
  const P = model.paramCount;
  if (out.byteLength !== trainOutputBytes(model, compress)) return null;
  if (compress === 'none') return { delta: out.subarray(0, P), trainLoss: out[P], checkLoss: out[P + 1], scales: null };
  const T = model.tensors.length;
  const scales = out.subarray(2, 2 + T);
  const q = new Int8Array(out.buffer, out.byteOffset + (2 + T) * 4, P);
  return { delta: dequantizeInt8(model.tensors, scales, q), trainLoss: out[0], checkLoss: out[1], scales };
}

/** The mean training loss a unit's output reports (for display). */
export function reportedTrainLoss(compress: Compression, out: Float32Array): number {
  return compress === 'int8' ? out[0] : out[out.length - 2];
}
