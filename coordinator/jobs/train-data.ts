// A `train` job's data, per model family: loading and checking the uploaded arrays against the
// model (each problem a JobInputError, HTTP 400, that names it), splitting them into the units'
// slices, and the coordinator's evaluation set. MLP: x [N, features] and y [N] class ids, split
// into strided row slices. Transformer LM: a token stream, split into contiguous chunks (each at
// least context + 1 tokens); evaluated on non-overlapping windows of the validation tokens (or of
// the training tokens when none were uploaded).
import type { TrainJobSubmit, TrainModelSpec } from '../protocol/index.js';
import { NpyError, parseNpyTyped, type TypedTensor } from '../protocol/npy.js';
import type { SliceData } from '../protocol/train-model.js';
import type { ShardStore } from '../store/shards.js';
import { JobInputError } from './types.js';

/** Rows (MLP) or windows (LM) the coordinator evaluates each round's parameters on. */
const EVAL_ROWS = 1024;
const EVAL_WINDOWS = 256;

export interface MlpData {
  family: 'mlp';
  x: Float32Array;
  y: Float32Array;
  n: number;
  f: number;
}

export interface LmData {
  family: 'transformer';
  /** Training token ids as float32 (exact: ids < 2^24). */
  tokens: Float32Array;
  validation: Float32Array | null;
  context: number;
}

export type TrainData = MlpData | LmData;

/** A slice or evaluation set as stored: x [rows, features] and y, or a token stream (y null). */
export interface StoredSlice extends SliceData {
  x: Float32Array;
  y: Float32Array | null;
  /** Rows of x (MLP) or tokens (LM). */
  rows: number;
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

/** The job's data, loaded and checked against its model. */
export async function loadTrainData(submit: Pick<TrainJobSubmit, 'data' | 'model'>, shards: ShardStore): Promise<TrainData> {
  const { model, data } = submit;
  if (model.type === 'mlp') {
    if (!('x' in data)) throw new JobInputError('data: an mlp model trains on data.x and data.y (data.tokens is for a transformer)');
    return loadMlpData(model.layers, data, shards);
  }
  if (!('tokens' in data)) throw new JobInputError('data: a transformer trains on data.tokens (a 1-D array of token ids), not data.x and data.y');
  const tokens = await loadTokens(shards, data.tokens, 'tokens', model.vocab);
  const validation = data.validation ? await loadTokens(shards, data.validation, 'validation', model.vocab) : null;
  if (validation && validation.length < model.context + 1) {
    throw new JobInputError(`data.validation has ${validation.length} tokens; it needs at least context + 1 = ${model.context + 1} (one window)`);
  }
  return { family: 'transformer', tokens, validation, context: model.context };
}

/** x [N, F] float32 and y [N] class ids in [0, classes) (float32 or int32), checked against the model. */
async function loadMlpData(layers: readonly number[], data: { x: string; y: string }, shards: ShardStore): Promise<MlpData> {
  const X = await loadTyped(shards, data.x, 'x');
  const Y = await loadTyped(shards, data.y, 'y');
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
  return { family: 'mlp', x: X.data as Float32Array, y, n, f };
}

/** A 1-D array of token ids in [0, vocab), float32 or int32, as float32. */
async function loadTokens(shards: ShardStore, sha: string, label: string, vocab: number): Promise<Float32Array> {
  const t = await loadTyped(shards, sha, label);
  if (t.shape.length !== 1) throw new JobInputError(`data.${label}: must be a 1-D array of token ids, got shape (${t.shape.join(', ')})`);
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < t.data.length; i++) {
    const v = t.data[i];
    if (!Number.isInteger(v) || v < 0 || v >= vocab) {
      throw new JobInputError(`data.${label}: token ids must be integers in [0, ${vocab}) (model.vocab); position ${i} has ${v}`);
    }
    out[i] = v;
  }
  return out;
}

/** Examples in the data (rows; the LM's tokens), for the submission's size checks. */
export function dataSize(d: TrainData): number {
  return d.family === 'mlp' ? d.n : d.tokens.length;
}

function gather(d: MlpData, rows: number[]): StoredSlice {
  const x = new Float32Array(rows.length * d.f);
  const y = new Float32Array(rows.length);
  rows.forEach((r, i) => {
    x.set(d.x.subarray(r * d.f, (r + 1) * d.f), i * d.f);
    y[i] = d.y[r];
  });
  return { x, y, rows: rows.length };
}

/**
 * The data slice `s` of `count`, as the units and the central reference see it. MLP: rows
 * i ≡ s (mod count), so every slice sees every part of the data (a contiguous split of sorted data
 * would not). LM: the s-th contiguous chunk of the token stream (windows must be contiguous text).
 */
export function dataSlice(d: TrainData, count: number, s: number): StoredSlice {
  if (d.family === 'mlp') {
    const rows: number[] = [];
    for (let i = s; i < d.n; i += count) rows.push(i);
    return gather(d, rows);
  }
  const n = d.tokens.length;
  const x = d.tokens.slice(Math.floor((s * n) / count), Math.floor(((s + 1) * n) / count));
  return { x, y: null, rows: x.length };
}

/** Checks that `count` slices each hold at least one example; a JobInputError saying why not otherwise. */
export function checkSliceable(d: TrainData, count: number) {
  if (d.family === 'mlp') {
    if (d.n < count) throw new JobInputError(`data has ${d.n} rows, fewer than unitsPerRound (${count}): every unit needs a slice of at least one row`);
    return;
  }
  const smallest = Math.floor(d.tokens.length / count);
  if (smallest < d.context + 1) {
    throw new JobInputError(
      `data.tokens has ${d.tokens.length} tokens: split into unitsPerRound (${count}) contiguous slices, each would have ${smallest} or so, and every slice needs at least context + 1 = ${d.context + 1} tokens (one window): upload more tokens or use fewer unitsPerRound`,
    );
  }
}

/**
 * The evaluation set. MLP: at most EVAL_ROWS rows strided over the whole data. LM: at most
 * EVAL_WINDOWS non-overlapping windows of context + 1 tokens spread evenly over the validation
 * tokens (or the training tokens), concatenated: window i starts at i·(context + 1).
 */
export function evalSet(d: TrainData): StoredSlice {
  if (d.family === 'mlp') {
    const step = Math.max(1, Math.ceil(d.n / EVAL_ROWS));
    const rows: number[] = [];
    for (let i = 0; i < d.n; i += step) rows.push(i);
    return gather(d, rows);
  }
  const src = d.validation ?? d.tokens;
  const w = d.context + 1;
  const k = Math.min(EVAL_WINDOWS, Math.floor(src.length / w));
  const x = new Float32Array(k * w);
  for (let i = 0; i < k; i++) {
    const at = k === 1 ? 0 : Math.floor((i * (src.length - w)) / (k - 1));
    x.set(src.subarray(at, at + w), i * w);
  }
  return { x, y: null, rows: x.length };
}

/** The examples of an evaluation set: every row, or the start of every window. */
export function evalExamples(model: TrainModelSpec, ev: { rows: number }): Int32Array {
  if (model.type === 'mlp') return Int32Array.from({ length: ev.rows }, (_, i) => i);
  const w = model.context + 1;
  return Int32Array.from({ length: Math.floor(ev.rows / w) }, (_, i) => i * w);
}
