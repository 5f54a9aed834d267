// Job kind `train`: data-parallel training of the MLP classifier with many local steps between
// synchronisations (DiLoCo). The data is split into `unitsPerRound` slices once; every round each
// slice is one work unit: H inner steps (protocol/train-mlp.ts) from the round's parameters, whose
// output is the pseudo-gradient Δ = θ_round − θ_after (and two losses). When a round closes
// (work/rounds.ts) the validated Δs are aggregated robustly (trimmed mean by default), one outer
// Nesterov step is taken, and the next round's units are planned with the new parameters as their
// shard. The kind is iterative: its units are ordinary units everywhere else.
import { TRAIN_LIMITS, type RoundStats, type Tolerance, type TrainJobSubmit, type TrainModelSpec, type TrainParams } from '../protocol/index.js';
import { NpyError, parseNpyTyped, toNpy } from '../protocol/npy.js';
import {
  checkBatchLoss,
  decodeTrainOutput,
  innerSpecOf,
  runTrainUnit,
  trainInner,
  trainModelOf,
  trainOutputBytes,
  type Compression,
  type FloatArray,
  type FloatArrayCtor,
  type InnerOptimizer,
  type InnerSpec,
  type ParamTensor,
} from '../protocol/train-loop.js';
import { mixSeed } from '../protocol/train-model.js';
import type { ShardStore } from '../store/shards.js';
import type { JobRecord, WorkUnitRecord } from '../store/store.js';
import { shardValues } from './inputs.js';
import { checkSliceable, dataSlice, evalExamples, evalSet, loadTrainData, type MlpData, type StoredSlice, type TrainData } from './train-data.js';
import { modelOnnx } from './train-onnx.js';
import { JobInputError, type IterativeKind, type JobKind, type JobPlan, type PlannedWorkUnit, type RoundOutcome } from './types.js';

const MAX_TOTAL_UNITS = 100_000;
/** The coordinator aggregates a round's Δs in memory: at most this many bytes of them. */
const MAX_ROUND_DELTA_BYTES = 512 * 2 ** 20;

// --- Replica agreement: a tolerance that grows with H ------------------------------------------

/**
 * Relative L2 distance two honest replicas' Δs may have after H inner steps. Calibrated twice:
 * CPU float32 against float64 (train.test.ts "calibration": 1e-7…1.1e-5 for H = 1…256, rounding
 * noise carried, not amplified), and a WebGPU replica (web/gpu/train-mlp.ts on SwiftShader)
 * against the CPU's float32 one (`npm run bench:train-gpu`, 2–3 layer MLPs, the worst of three
 * seeds): SGD stays at 2e-7…6e-7 for every H, but AdamW on 3-layer nets reaches 5.7e-5 at H = 16,
 * 2.6e-3 at H = 64, 3.2e-3 at 128 and 4.3e-3 at 256 — a hidden ReLU unit whose pre-activation sits
 * at 0 switches on one device and not the other, and AdamW (ε 1e-8) turns that unit's tiny
 * gradients into full-size steps (with ε 1e-4 the same runs agree to 1e-5). So the tolerance is
 * 1e-3 + 2e-4·H, capped at 5%: ≥ 70× the measured divergence for H ≤ 16, ≥ 5× at H = 64, ≥ 11×
 * at 256 — and far below what a wrong update differs by (zero 100%, sign-flipped 200%, half the
 * steps skipped ≳ 20%). A schedule that is chaotic in float32 (AdamW at lr 0.05 on the 3-layer
 * test net, H ≥ 64) makes honest replicas diverge beyond any useful tolerance: its units find no
 * quorum and the job fails, saying so.
 */
export function deltaRtol(steps: number): number {
  return Math.min(0.05, 1e-3 + 2e-4 * steps);
}

/**
 * With int8 Δs, two honest replicas' values may land on either side of a rounding boundary: measured
 * up to 2.2e-4 relative (H ≤ 64, 2–3 layer MLPs), so 2e-3 more is allowed.
 */
export function trainTolerance(steps: number, compress: Compression = 'none'): Tolerance {
  return { rtol: deltaRtol(steps) + (compress === 'int8' ? 2e-3 : 0), atol: 1e-6 };
}

/** L2 norm, in float64. */
function norm(v: FloatArray, n = v.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

type Decoded = NonNullable<ReturnType<typeof decodeTrainOutput>>;

/**
 * Two replicas of a train unit agree when their (decoded) Δs are within tol.rtol of each other in
 * relative L2 distance (plus tol.atol·√P), and so are both losses (relative to the loss).
 */
export function trainOutputsAgree(x: Decoded | null, y: Decoded | null, tol: Tolerance): boolean {
  if (!x || !y || x.delta.length !== y.delta.length) return false;
  const P = x.delta.length;
  let d = 0;
  for (let i = 0; i < P; i++) {
    const e = x.delta[i] - y.delta[i];
    d += e * e;
  }
  d = Math.sqrt(d);
  if (!Number.isFinite(d)) return false;
  if (!(d <= tol.rtol * Math.max(norm(x.delta), norm(y.delta)) + tol.atol * Math.sqrt(P))) return false;
  for (const [a, b] of [
    [x.trainLoss, y.trainLoss],
    [x.checkLoss, y.checkLoss],
  ]) {
    if (!(Math.abs(a - b) <= tol.rtol * Math.max(Math.abs(a), Math.abs(b)) + 1e-6)) return false;
  }
  return true;
}

/** A unit's output decoded by its parameters (null when it is not that unit's encoding). */
export function decodeUnitOutput(p: TrainParams, out: Float32Array) {
  return decodeTrainOutput(innerSpecOf(p).model, p.compress ?? 'none', out);
}

// --- Aggregation and the outer step -------------------------------------------------------------

export type Aggregator = 'mean' | 'trimmed-mean' | 'median';

/**
 * The round's update from its Δs, per coordinate, in float64: mean, trimmed mean (drops
 * floor(trim·n) values from each side) or median; with `clipNorm`, each Δ is first scaled down to
 * that L2 norm. Sorting per coordinate (and summing in sorted order) makes the result independent of
 * the order the Δs came in.
 */
export function aggregateDeltas(deltas: FloatArray[], how: Aggregator, trim: number, clipNorm?: number): Float64Array {
  const n = deltas.length;
  if (n === 0) throw new Error('no Δ to aggregate');
  const P = deltas[0].length;
  const scale = deltas.map((d) => {
    if (!clipNorm) return 1;
    const nrm = norm(d);
    return nrm > clipNorm ? clipNorm / nrm : 1;
  });
  let cut = how === 'trimmed-mean' ? Math.floor(trim * n) : 0;
  if (n - 2 * cut < 1) cut = Math.floor((n - 1) / 2);
  const out = new Float64Array(P);
  const col = new Float64Array(n);
  for (let i = 0; i < P; i++) {
    for (let j = 0; j < n; j++) col[j] = deltas[j][i] * scale[j];
    col.sort();
    if (how === 'median') {
      out[i] = n % 2 === 1 ? col[(n - 1) / 2] : (col[n / 2 - 1] + col[n / 2]) / 2;
    } else {
      let s = 0;
      for (let j = cut; j < n - cut; j++) s += col[j];
      out[i] = s / (n - 2 * cut);
    }
  }
  return out;
}

/** One outer Nesterov step (as DiLoCo, PyTorch's SGD with nesterov): m ← μm + g; θ ← θ − lr(g + μm). In place. */
export function outerStep(theta: FloatArray, momentum: FloatArray, g: Float64Array, lr: number, mu: number) {
  for (let i = 0; i < theta.length; i++) {
    momentum[i] = mu * momentum[i] + g[i];
    theta[i] = theta[i] - lr * (g[i] + mu * momentum[i]);
  }
}

// --- The job's meta ---------------------------------------------------------------------------

interface TrainMeta {
  round: number;
  rounds: number;
  firstIdx: number;
  units: number;
  quorum: number;
  graceMs: number;
  /** The model (jobs planned before the transformer family name only `layers`: an MLP). */
  model?: TrainModelSpec;
  layers?: number[];
  paramCount: number;
  tensors: ParamTensor[];
  /** Shards of each slice and of the evaluation set: x and y (MLP) or x only (the LM's tokens). */
  slices: { x: string; y?: string; rows: number }[];
  eval: { x: string; y?: string; rows: number };
  /** The open round's parameters (the final ones once done), and the outer momentum. */
  params: string;
  momentum: string | null;
  initialLoss: number;
  perRound: RoundStats[];
  steps: number;
  batchSize: number;
  seed: number;
  optimizer: InnerOptimizer;
  outer: { lr: number; momentum: number };
  aggregator: Aggregator;
  trim: number;
  clipNorm: number | null;
  tolerance: Tolerance;
  compress: Compression;
}

function metaOf(job: JobRecord): TrainMeta {
  return job.meta as unknown as TrainMeta;
}

function modelSpecOf(m: TrainMeta): TrainModelSpec {
  return m.model ?? { type: 'mlp', layers: m.layers!, activation: 'relu' };
}

export function unitSeed(jobSeed: number, round: number, slice: number): number {
  return mixSeed(jobSeed, round, slice);
}

function planRound(m: TrainMeta, round: number, paramsSha: string): PlannedWorkUnit[] {
  const spec = modelSpecOf(m);
  const model = trainModelOf(spec);
  return m.slices.map((s, slice) => {
    const base = {
      round,
      rounds: m.rounds,
      slice,
      rows: s.rows,
      steps: m.steps,
      batchSize: m.batchSize,
      seed: unitSeed(m.seed, round, slice),
      optimizer: m.optimizer.type,
      lr: m.optimizer.lr,
      weightDecay: m.optimizer.weightDecay,
      beta1: m.optimizer.beta1,
      beta2: m.optimizer.beta2,
      eps: m.optimizer.eps,
      compress: m.compress ?? 'none',
    };
    const params: TrainParams = spec.type === 'mlp' ? { ...base, layers: spec.layers } : { ...base, model: spec };
    const examples = model.examples(s.rows);
    return {
      params: params as unknown as WorkUnitRecord['params'],
      inputs: { params: paramsSha, x: s.x, ...(s.y ? { y: s.y } : {}) },
      outputBytes: trainOutputBytes(model, params.compress),
      flops: model.stepFlops(Math.min(m.batchSize, examples)) * m.steps,
      tolerance: m.tolerance,
      meta: { round, slice },
    };
  });
}

/** What an honest worker returns for a train unit (the float32 CPU reference): Δ, train loss, check loss. */
export function trainUnitReference(p: TrainParams, params: Float32Array, x: Float32Array, y: Float32Array | null | undefined): Float32Array {
  return runTrainUnit(innerSpecOf(p), p.compress ?? 'none', params, x, y ?? null);
}

async function shardFloats(shards: ShardStore, sha: string): Promise<Float32Array> {
  const bytes = await shards.get(sha);
  if (!bytes) throw new Error(`shard ${sha} is missing`);
  return shardValues(bytes);
}

/** The loss of `theta` on the job's evaluation set. */
async function evalLoss(m: TrainMeta, theta: Float32Array, shards: ShardStore): Promise<number> {
  const spec = modelSpecOf(m);
  const x = await shardFloats(shards, m.eval.x);
  const y = m.eval.y ? await shardFloats(shards, m.eval.y) : null;
  return trainModelOf(spec).lossGrad(Float32Array, theta, { x, y }, evalExamples(spec, m.eval), null);
}

const iterative: IterativeKind = {
  roundInfo(job) {
    const m = metaOf(job);
    return { round: m.round, rounds: m.rounds, firstIdx: m.firstIdx, units: m.units, quorum: m.quorum, graceMs: m.graceMs };
  },

  async closeRound(job, settled, shards, now): Promise<RoundOutcome> {
    const m = metaOf(job);
    const P = m.paramCount;
    const theta = Float32Array.from(await shardFloats(shards, m.params));
    const momentum = m.momentum ? Float32Array.from(await shardFloats(shards, m.momentum)) : new Float32Array(P);
    // In idx (= slice) order; the aggregate does not depend on the order anyway.
    const decoded = settled.map((s) => decodeUnitOutput(s.wu.params as unknown as TrainParams, s.output));
    if (decoded.some((d) => !d)) throw new Error('a validated output does not decode');
    const deltas = decoded.map((d) => d!.delta);
    const g = aggregateDeltas(deltas, m.aggregator, m.trim, m.clipNorm ?? undefined);
    outerStep(theta, momentum, g, m.outer.lr, m.outer.momentum);
    const loss = await evalLoss(m, theta, shards);
    const trainLoss = decoded.reduce((s, d) => s + d!.trainLoss, 0) / settled.length;
    const stats: RoundStats = {
      round: m.round,
      loss,
      trainLoss,
      units: settled.length,
      planned: m.units,
      bytes: settled.reduce((s, u) => s + u.results * u.wu.outputBytes, 0),
      dropped: m.units - settled.length,
      closedAt: now,
    };
    const paramsSha = await shards.put(toNpy([P], theta));
    const momentumSha = await shards.put(toNpy([P], momentum));
    const next = m.round + 1;
    const meta: TrainMeta = { ...m, round: next, firstIdx: m.firstIdx + m.units, params: paramsSha, momentum: momentumSha, perRound: [...m.perRound, stats] };
    const summary = `round ${m.round + 1}/${m.rounds} closed: ${settled.length}/${m.units} units, loss ${loss.toFixed(4)} (train ${trainLoss.toFixed(4)})`;
    if (next >= m.rounds) return { meta: meta as unknown as Record<string, unknown>, workUnits: [], result: toNpy([P], theta), summary };
    return { meta: meta as unknown as Record<string, unknown>, workUnits: planRound(meta, next, paramsSha), summary };
  },

  status(job) {
    const m = metaOf(job);
    return { round: m.round, rounds: m.rounds, perRound: m.perRound };
  },
};

export const train: JobKind<TrainJobSubmit> = {
  kind: 'train',
  // Only workers that say they train get train units (older pages and tools do not).
  optIn: true,
  iterative,

  plan: planTrain,

  /**
   * The cheap independent check, forward only: the loss of the returned parameters θ_round − Δ on
   * the unit's check batch (its own seeded rows of the slice, one batch: about 1/(3H) of the unit's
   * work) must match the loss the worker reported, and everything must be finite. It catches a Δ
   * that does not belong with its own report (random, zeroed, scaled or sign-flipped updates sent
   * with the honest losses); a cheater who also forges the loss passes it, and is left to
   * replication and the robust aggregator.
   */
  async check(wu, output, shards) {
    const p = wu.params as unknown as TrainParams;
    const out = decodeUnitOutput(p, output);
    if (!out) return false;
    const P = out.delta.length;
    for (let i = 0; i < P; i++) if (!Number.isFinite(out.delta[i])) return false;
    if (!Number.isFinite(out.trainLoss) || !Number.isFinite(out.checkLoss)) return false;
    const [theta, x, y] = await Promise.all([shardFloats(shards, wu.inputs.params), shardFloats(shards, wu.inputs.x), wu.inputs.y ? shardFloats(shards, wu.inputs.y) : null]);
    if (theta.length !== P) return false;
    const after = new Float32Array(P);
    for (let i = 0; i < P; i++) after[i] = theta[i] - out.delta[i];
    const loss = checkBatchLoss(innerSpecOf(p), after, x, y);
    return Math.abs(loss - out.checkLoss) <= 1e-3 * Math.max(1, Math.abs(loss));
  },

  agree(wu, x, y) {
    const p = wu.params as unknown as TrainParams;
    return trainOutputsAgree(decodeUnitOutput(p, x), decodeUnitOutput(p, y), wu.tolerance);
  },

  assimilate(job) {
    // Never called for an iterative kind: its result is made when its last round closes.
    throw new Error(`job ${job.id}: train results are made by closeRound`);
  },

  async modelOnnx(job, shards) {
    const m = metaOf(job);
    const bytes = await shards.get(m.params);
    return bytes ? modelOnnx(modelSpecOf(m), shardValues(bytes), job.name ?? `tabgrid-${job.id}`) : null;
  },

  async storedOutput(job, name, shards) {
    const m = metaOf(job);
    const bytes = await shards.get(m.params);
    if (!bytes) return null;
    const theta = shardValues(bytes);
    if (name === 'params') return toNpy([m.paramCount], theta);
    const t = m.tensors.find((t) => t.name === name);
    return t ? toNpy(t.shape, theta.subarray(t.offset, t.offset + t.size)) : null;
  },
};

/** The uploaded initial parameters: a flat float32 .npy of exactly P finite values. */
async function loadInit(sha: string, P: number, shards: ShardStore): Promise<Float32Array> {
  const bytes = await shards.get(sha);
  if (!bytes) throw new JobInputError(`init: no shard ${sha} (upload it with POST /api/shards first)`);
  let t;
  try {
    t = parseNpyTyped(bytes);
  } catch (err) {
    throw new JobInputError(`init: ${err instanceof NpyError ? err.message : 'unreadable .npy'}`);
  }
  if (t.dtype !== 'float32') throw new JobInputError(`init: must be float32, got ${t.dtype}`);
  if (t.shape.length !== 1) throw new JobInputError(`init: must be a flat 1-D array of the model's ${P} parameters, got shape (${t.shape.join(', ')})`);
  if (t.shape[0] !== P) throw new JobInputError(`init: has ${t.shape[0]} values but the model has ${P} parameters`);
  for (let i = 0; i < P; i++) if (!Number.isFinite(t.data[i])) throw new JobInputError(`init: must be finite (no NaN or Infinity); value ${i} is ${t.data[i]}`);
  return t.data as Float32Array;
}

/** Plans a train job: checks the data against the model, stores the slices, evaluation set and θ₀. */
export async function planTrain(submit: TrainJobSubmit, shards: ShardStore): Promise<JobPlan> {
  const spec = submit.model;
  const model = trainModelOf(spec);
  const P = model.paramCount;
  if (P > TRAIN_LIMITS.maxParams) throw new JobInputError(`model has ${P} parameters; at most ${TRAIN_LIMITS.maxParams}`);
  // Closing a round holds every unit's Δ in memory at once (float32, whatever the upload encoding).
  const roundBytes = P * 4 * submit.unitsPerRound;
  if (roundBytes > MAX_ROUND_DELTA_BYTES) {
    throw new JobInputError(
      `a round's Δs would take ${(roundBytes / 2 ** 20).toFixed(0)} MiB (${P} parameters × ${submit.unitsPerRound} units × 4 bytes); at most ${MAX_ROUND_DELTA_BYTES / 2 ** 20} MiB: use fewer unitsPerRound or a smaller model`,
    );
  }
  if (submit.rounds * submit.unitsPerRound > MAX_TOTAL_UNITS) {
    throw new JobInputError(`rounds × unitsPerRound is ${submit.rounds * submit.unitsPerRound}; at most ${MAX_TOTAL_UNITS} units per job`);
  }
  const data = await loadTrainData(submit, shards);
  checkSliceable(data, submit.unitsPerRound);
  const theta0 = submit.init ? await loadInit(submit.init, P, shards) : model.init(submit.seed);
  const store = async (d: StoredSlice) => ({
    x: await shards.put(data.family === 'mlp' ? toNpy([d.rows, data.f], d.x) : toNpy([d.rows], d.x)),
    ...(d.y ? { y: await shards.put(toNpy([d.rows], d.y)) } : {}),
    rows: d.rows,
  });
  const slices: TrainMeta['slices'] = [];
  for (let s = 0; s < submit.unitsPerRound; s++) slices.push(await store(dataSlice(data, submit.unitsPerRound, s)));
  const ev = evalSet(data);
  const initialLoss = model.lossGrad(Float32Array, theta0, ev, evalExamples(spec, ev), null);
  const o = submit.innerOptimizer;
  const meta: TrainMeta = {
    round: 0,
    rounds: submit.rounds,
    firstIdx: 0,
    units: submit.unitsPerRound,
    quorum: Math.max(1, Math.ceil(submit.roundQuorum * submit.unitsPerRound)),
    graceMs: submit.roundGraceS * 1000,
    model: spec,
    ...(spec.type === 'mlp' ? { layers: spec.layers } : {}),
    paramCount: P,
    tensors: model.tensors,
    slices,
    eval: await store(ev),
    params: await shards.put(toNpy([P], theta0)),
    momentum: null,
    initialLoss,
    perRound: [],
    steps: submit.localSteps,
    batchSize: submit.batchSize,
    seed: submit.seed,
    optimizer: { type: o.type, lr: o.lr, weightDecay: o.weightDecay, beta1: o.beta1, beta2: o.beta2, eps: o.eps },
    outer: { lr: submit.outerOptimizer.lr, momentum: submit.outerOptimizer.momentum },
    aggregator: submit.aggregator,
    trim: submit.trim,
    clipNorm: submit.clipNorm ?? null,
    tolerance: submit.tolerance ?? trainTolerance(submit.localSteps, submit.compress),
    compress: submit.compress,
  };
  return { meta: meta as unknown as Record<string, unknown>, resultShape: [P], workUnits: planRound(meta, 0, meta.params) };
}

// --- The central reference ----------------------------------------------------------------------

export interface CentralRun {
  params: FloatArray;
  /** Loss on the evaluation set after each round (and before the first, at index 0). */
  losses: number[];
}

/**
 * The whole schedule in one process, every slice every round, in `Arr`'s precision (float64 for the
 * tests' ground truth): what the grid must reproduce, up to replica noise and the aggregator's
 * order-independence. `data` as loadTrainData gives it (an MLP's x, y, n, f alone will do); `init`
 * the uploaded initial parameters, if the job names any.
 */
export function centralReference(submit: TrainJobSubmit, data: TrainData | Omit<MlpData, 'family'>, Arr: FloatArrayCtor = Float64Array, init?: Float32Array): CentralRun {
  const d: TrainData = 'family' in data ? data : { ...data, family: 'mlp' };
  const spec = submit.model;
  const model = trainModelOf(spec);
  const theta = new Arr(model.paramCount);
  theta.set(init ?? model.init(submit.seed));
  const momentum = new Arr(model.paramCount);
  const ev = evalSet(d);
  const evData = { x: Arr.from(ev.x), y: ev.y && Arr.from(ev.y) };
  const evExamples = evalExamples(spec, ev);
  const slices = Array.from({ length: submit.unitsPerRound }, (_, s) => dataSlice(d, submit.unitsPerRound, s));
  const o = submit.innerOptimizer;
  const losses = [model.lossGrad(Arr, theta, evData, evExamples, null)];
  for (let round = 0; round < submit.rounds; round++) {
    const deltas = slices.map((s, slice) => {
      const inner: InnerSpec = {
        model,
        steps: submit.localSteps,
        batchSize: submit.batchSize,
        seed: unitSeed(submit.seed, round, slice),
        optimizer: { type: o.type, lr: o.lr, weightDecay: o.weightDecay, beta1: o.beta1, beta2: o.beta2, eps: o.eps },
      };
      return trainInner(Arr, inner, theta, Arr.from(s.x), s.y && Arr.from(s.y)).delta;
    });
    const g = aggregateDeltas(deltas, submit.aggregator, submit.trim, submit.clipNorm);
    outerStep(theta, momentum, g, submit.outerOptimizer.lr, submit.outerOptimizer.momentum);
    losses.push(model.lossGrad(Arr, theta, evData, evExamples, null));
  }
  return { params: theta, losses };
}
