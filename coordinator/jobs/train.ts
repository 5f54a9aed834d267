// Job kind `train`: data-parallel training of the MLP classifier with many local steps between
// synchronisations (DiLoCo). The data is split into `unitsPerRound` slices once; every round each
// slice is one work unit: H inner steps (protocol/train-mlp.ts) from the round's parameters, whose
// output is the pseudo-gradient Δ = θ_round − θ_after (and two losses). When a round closes
// (work/rounds.ts) the validated Δs are aggregated robustly (trimmed mean by default), one outer
// Nesterov step is taken, and the next round's units are planned with the new parameters as their
// shard. The kind is iterative: its units are ordinary units everywhere else.
import { TRAIN_LIMITS, type RoundStats, type Tolerance, type TrainJobSubmit, type TrainParams } from '../protocol/index.js';
import { NpyError, parseNpyTyped, toNpy, type TypedTensor } from '../protocol/npy.js';
import {
  checkRows,
  decodeTrainOutput,
  initMlp,
  innerFlops,
  innerSpecOf,
  mixSeed,
  mlpLossGrad,
  mlpParamCount,
  mlpTensors,
  runTrainUnit,
  trainInner,
  trainOutputBytes,
  type Compression,
  type FloatArray,
  type FloatArrayCtor,
  type InnerOptimizer,
  type MlpTensor,
} from '../protocol/train-mlp.js';
import { buildModel } from '../protocol/onnx-builder.js';

export { innerSpecOf };
import type { ShardStore } from '../store/shards.js';
import type { JobRecord, WorkUnitRecord } from '../store/store.js';
import { shardValues } from './inputs.js';
import { JobInputError, type IterativeKind, type JobKind, type JobPlan, type PlannedWorkUnit, type RoundOutcome } from './types.js';

/** Rows of the data the coordinator evaluates each round's parameters on (strided over the data). */
const EVAL_ROWS = 1024;
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
export function decodeUnitOutput(p: Pick<TrainParams, 'layers' | 'compress'>, out: Float32Array) {
  return decodeTrainOutput(p.layers, p.compress ?? 'none', out);
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

// --- The job's data ---------------------------------------------------------------------------

interface TrainData {
  x: Float32Array;
  y: Float32Array;
  n: number;
  f: number;
}

async function loadTyped(shards: ShardStore, sha: string, label: string): Promise<TypedTensor> {
  const bytes = await shards.get(sha);
  if (!bytes) throw new JobInputError(`data.${label}: no shard ${sha} (upload it with POST /api/shards first)`);
  try {
    return parseNpyTyped(bytes);
  } catch (err) {
    throw new JobInputError(`data.${label}: ${err instanceof NpyError ? err.message : 'unreadable .npy'}`);
  }
}

/** x [N, F] float32 and y [N] class ids in [0, classes) (float32 or int32), checked against the model. */
export async function loadTrainData(submit: Pick<TrainJobSubmit, 'data' | 'model'>, shards: ShardStore): Promise<TrainData> {
  const layers = submit.model.layers;
  const X = await loadTyped(shards, submit.data.x, 'x');
  const Y = await loadTyped(shards, submit.data.y, 'y');
  if (X.dtype !== 'float32') throw new JobInputError(`data.x: must be float32, got ${X.dtype}`);
  if (X.shape.length !== 2) throw new JobInputError(`data.x: must be a 2-D [rows, features] array, got shape (${X.shape.join(', ')})`);
  if (Y.shape.length !== 1) throw new JobInputError(`data.y: must be a 1-D [rows] array of class ids, got shape (${Y.shape.join(', ')})`);
  const [n, f] = X.shape;
  if (Y.shape[0] !== n) throw new JobInputError(`data.y has ${Y.shape[0]} rows but data.x has ${n}: one class id per row of x`);
  if (f !== layers[0]) throw new JobInputError(`model.layers[0] is ${layers[0]} but data.x has ${f} features per row: the first layer's width must equal the features`);
  const classes = layers[layers.length - 1];
  if (classes < 2) throw new JobInputError(`model.layers: the last layer is the number of classes and must be at least 2, got ${classes}`);
  for (let i = 0; i < X.data.length; i++) {
    if (!Number.isFinite(X.data[i])) throw new JobInputError(`data.x: must be finite (no NaN or Infinity); row ${Math.floor(i / f)} is not`);
  }
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = Y.data[i];
    if (!Number.isInteger(v) || v < 0 || v >= classes) {
      throw new JobInputError(`data.y: class ids must be integers in [0, ${classes}) (the last layer's width); row ${i} has ${v}`);
    }
    y[i] = v;
  }
  return { x: X.data as Float32Array, y, n, f };
}

/** Rows i ≡ s (mod count): every slice sees every part of the data (a contiguous split of sorted data would not). */
function stridedRows(n: number, count: number, s: number): number[] {
  const rows: number[] = [];
  for (let i = s; i < n; i += count) rows.push(i);
  return rows;
}

function gather(d: TrainData, rows: number[]): { x: Float32Array; y: Float32Array } {
  const x = new Float32Array(rows.length * d.f);
  const y = new Float32Array(rows.length);
  rows.forEach((r, i) => {
    x.set(d.x.subarray(r * d.f, (r + 1) * d.f), i * d.f);
    y[i] = d.y[r];
  });
  return { x, y };
}

/** The rows of the data slice `s` of `count`, as the units and the central reference see them. */
export function dataSlice(d: TrainData, count: number, s: number) {
  return gather(d, stridedRows(d.n, count, s));
}

/** The evaluation rows: at most EVAL_ROWS, strided over the whole data. */
export function evalSet(d: TrainData) {
  const step = Math.max(1, Math.ceil(d.n / EVAL_ROWS));
  const rows: number[] = [];
  for (let i = 0; i < d.n; i += step) rows.push(i);
  return gather(d, rows);
}

// --- The job's meta ---------------------------------------------------------------------------

interface TrainMeta {
  round: number;
  rounds: number;
  firstIdx: number;
  units: number;
  quorum: number;
  graceMs: number;
  layers: number[];
  paramCount: number;
  tensors: MlpTensor[];
  slices: { x: string; y: string; rows: number }[];
  eval: { x: string; y: string; rows: number };
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

export function unitSeed(jobSeed: number, round: number, slice: number): number {
  return mixSeed(jobSeed, round, slice);
}

function planRound(m: TrainMeta, round: number, paramsSha: string): PlannedWorkUnit[] {
  return m.slices.map((s, slice) => {
    const params: TrainParams = {
      round,
      rounds: m.rounds,
      slice,
      rows: s.rows,
      layers: m.layers,
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
    return {
      params: params as unknown as WorkUnitRecord['params'],
      inputs: { params: paramsSha, x: s.x, y: s.y },
      outputBytes: trainOutputBytes(m.layers, params.compress),
      flops: innerFlops(m.layers, m.steps, Math.min(m.batchSize, s.rows)),
      tolerance: m.tolerance,
      meta: { round, slice },
    };
  });
}

/** What an honest worker returns for a train unit (the float32 CPU reference): Δ, train loss, check loss. */
export function trainUnitReference(p: TrainParams, params: Float32Array, x: Float32Array, y: Float32Array): Float32Array {
  return runTrainUnit(innerSpecOf(p), p.compress ?? 'none', params, x, y);
}

async function shardFloats(shards: ShardStore, sha: string): Promise<Float32Array> {
  const bytes = await shards.get(sha);
  if (!bytes) throw new Error(`shard ${sha} is missing`);
  return shardValues(bytes);
}

function allRows(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
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
    const evalX = await shardFloats(shards, m.eval.x);
    const evalY = await shardFloats(shards, m.eval.y);
    const loss = mlpLossGrad(Float32Array, m.layers, theta, evalX, evalY, allRows(m.eval.rows), null);
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
    const [theta, x, y] = await Promise.all([shardFloats(shards, wu.inputs.params), shardFloats(shards, wu.inputs.x), shardFloats(shards, wu.inputs.y)]);
    if (theta.length !== P) return false;
    const after = new Float32Array(P);
    for (let i = 0; i < P; i++) after[i] = theta[i] - out.delta[i];
    const loss = mlpLossGrad(Float32Array, p.layers, after, x, y, checkRows(p.rows, p.batchSize, p.seed), null);
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
    return bytes ? mlpOnnx(m.layers, shardValues(bytes), job.name ?? `tabgrid-${job.id}`) : null;
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

/** Logits [n, classes] of the MLP for the rows of x (float64 accumulation): what model.onnx computes. */
export function mlpLogits(layers: readonly number[], params: Float32Array, x: Float32Array, n: number): Float32Array {
  const tensors = mlpTensors(layers);
  let a = x;
  for (let i = 0; i + 1 < layers.length; i++) {
    const [din, dout] = [layers[i], layers[i + 1]];
    const [W, b] = [tensors[2 * i].offset, tensors[2 * i + 1].offset];
    const z = new Float32Array(n * dout);
    const acc = new Float64Array(dout);
    for (let r = 0; r < n; r++) {
      for (let o = 0; o < dout; o++) acc[o] = params[b + o];
      for (let k = 0; k < din; k++) for (let o = 0; o < dout; o++) acc[o] += a[r * din + k] * params[W + k * dout + o];
      for (let o = 0; o < dout; o++) z[r * dout + o] = i + 2 < layers.length ? Math.max(0, acc[o]) : acc[o];
    }
    a = z;
  }
  return a;
}

/**
 * The MLP as an ONNX inference graph, x[batch, features] -> logits[batch, classes]: MatMul + Add
 * per layer, Relu between them, the parameters as initializers. It runs as an `onnx` job as is.
 */
export function mlpOnnx(layers: readonly number[], params: Float32Array, name = 'tabgrid-mlp'): Uint8Array {
  const tensors = mlpTensors(layers);
  const nodes: { op: string; inputs: string[]; outputs: string[] }[] = [];
  let prev = 'x';
  const L = layers.length - 1;
  for (let i = 0; i < L; i++) {
    const last = i === L - 1;
    nodes.push({ op: 'MatMul', inputs: [prev, `w${i}`], outputs: [`mm${i}`] });
    nodes.push({ op: 'Add', inputs: [`mm${i}`, `b${i}`], outputs: [last ? 'logits' : `z${i}`] });
    if (!last) nodes.push({ op: 'Relu', inputs: [`z${i}`], outputs: [`h${i}`] });
    prev = `h${i}`;
  }
  return buildModel({
    name,
    inputs: [{ name: 'x', dims: ['batch', layers[0]] }],
    outputs: [{ name: 'logits', dims: ['batch', layers[L]] }],
    initializers: tensors.map((t) => ({ name: t.name, dims: t.shape, data: params.slice(t.offset, t.offset + t.size) })),
    nodes,
  });
}

/** Plans a train job: checks the data against the model, stores the slices, evaluation rows and θ₀. */
export async function planTrain(submit: TrainJobSubmit, shards: ShardStore): Promise<JobPlan> {
  const layers = submit.model.layers;
  const P = mlpParamCount(layers);
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
  if (data.n < submit.unitsPerRound) {
    throw new JobInputError(`data has ${data.n} rows, fewer than unitsPerRound (${submit.unitsPerRound}): every unit needs a slice of at least one row`);
  }
  const slices: TrainMeta['slices'] = [];
  for (let s = 0; s < submit.unitsPerRound; s++) {
    const { x, y } = dataSlice(data, submit.unitsPerRound, s);
    slices.push({ x: await shards.put(toNpy([y.length, data.f], x)), y: await shards.put(toNpy([y.length], y)), rows: y.length });
  }
  const ev = evalSet(data);
  const theta0 = initMlp(layers, submit.seed);
  const initialLoss = mlpLossGrad(Float32Array, layers, theta0, ev.x, ev.y, allRows(ev.y.length), null);
  const o = submit.innerOptimizer;
  const meta: TrainMeta = {
    round: 0,
    rounds: submit.rounds,
    firstIdx: 0,
    units: submit.unitsPerRound,
    quorum: Math.max(1, Math.ceil(submit.roundQuorum * submit.unitsPerRound)),
    graceMs: submit.roundGraceS * 1000,
    layers,
    paramCount: P,
    tensors: mlpTensors(layers),
    slices,
    eval: { x: await shards.put(toNpy([ev.y.length, data.f], ev.x)), y: await shards.put(toNpy([ev.y.length], ev.y)), rows: ev.y.length },
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
  /** Loss on the evaluation rows after each round (and before the first, at index 0). */
  losses: number[];
}

/**
 * The whole schedule in one process, every slice every round, in `Arr`'s precision (float64 for the
 * tests' ground truth): what the grid must reproduce, up to replica noise and the aggregator's
 * order-independence.
 */
export function centralReference(submit: TrainJobSubmit, data: TrainData, Arr: FloatArrayCtor = Float64Array): CentralRun {
  const layers = submit.model.layers;
  const P = mlpParamCount(layers);
  const theta = new Arr(P);
  theta.set(initMlp(layers, submit.seed));
  const momentum = new Arr(P);
  const ev = evalSet(data);
  const evRows = allRows(ev.y.length);
  const slices = Array.from({ length: submit.unitsPerRound }, (_, s) => dataSlice(data, submit.unitsPerRound, s));
  const o = submit.innerOptimizer;
  const losses = [mlpLossGrad(Arr, layers, theta, ev.x, ev.y, evRows, null)];
  for (let round = 0; round < submit.rounds; round++) {
    const deltas = slices.map((s, slice) => {
      const spec = {
        layers,
        steps: submit.localSteps,
        batchSize: submit.batchSize,
        seed: unitSeed(submit.seed, round, slice),
        optimizer: { type: o.type, lr: o.lr, weightDecay: o.weightDecay, beta1: o.beta1, beta2: o.beta2, eps: o.eps },
      };
      return trainInner(Arr, spec, theta, Arr.from(s.x), Arr.from(s.y)).delta;
    });
    const g = aggregateDeltas(deltas, submit.aggregator, submit.trim, submit.clipNorm);
    outerStep(theta, momentum, g, submit.outerOptimizer.lr, submit.outerOptimizer.momentum);
    losses.push(mlpLossGrad(Arr, layers, theta, ev.x, ev.y, evRows, null));
  }
  return { params: theta, losses };
}
