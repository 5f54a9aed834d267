// What the generic training loop (train-loop.ts) needs of a model family: its parameter tensors,
// initial parameters from a seed, the loss and gradient on a batch of examples, and the FLOPs of an
// inner step. Two families implement it: the MLP classifier (train-mlp.ts) and the decoder-only
// transformer language model (train-transformer.ts). Also the deterministic randomness every part of
// training shares. Pure TypeScript, no Node APIs: the browser's compute worker imports it.

export type FloatArray = Float32Array | Float64Array;
export type FloatArrayCtor = Float32ArrayConstructor | Float64ArrayConstructor;

/** One named parameter tensor's place in the flat parameter vector. */
export interface ParamTensor {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

/**
 * A unit's data slice. MLP: x [rows, features] and y [rows] class ids; an example is a row.
 * Transformer: x is the slice's token ids (as floats) and y is null; an example is the window of
 * context + 1 tokens starting at that offset.
 */
export interface SliceData {
  x: FloatArray;
  y: FloatArray | null;
}

/** The rows of a slice: its labels' count, or its tokens' when unlabelled. */
export function sliceRows(d: SliceData): number {
  return d.y ? d.y.length : d.x.length;
}

export interface TrainModel {
  readonly family: 'mlp' | 'transformer';
  readonly paramCount: number;
  /** The parameter tensors in flat order (int8 compression keeps one scale per tensor). */
  readonly tensors: ParamTensor[];
  /** A job's initial parameters from its seed. */
  init(seed: number): Float32Array;
  /**
   * Examples in a slice of `rows` rows (MLP: rows of x; LM: tokens): the batch schedule draws
   * from [0, examples).
   */
  examples(rows: number): number;
  /**
   * Mean loss of the batch's examples and (when `grad` is given) its gradient, written into `grad`.
   * `Arr` is the precision of stored intermediates, `Acc` that of running sums where the family
   * honours it (the MLP; the transformer sums in float64 numbers).
   */
  lossGrad(Arr: FloatArrayCtor, params: FloatArray, data: SliceData, batch: Int32Array, grad: FloatArray | null, Acc?: FloatArrayCtor): number;
  /** FLOPs of one inner step (forward and backward) on `batch` examples: a unit's credit per step. */
  stepFlops(batch: number): number;
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
export function below(u: number, n: number): number {
  return Math.floor((u * n) / 4294967296);
}

/** Uniform in [-bound, bound) from the stream, written over `size` values at `offset`. */
export function fillUniform(p: Float32Array, offset: number, size: number, bound: number, next: () => number) {
  for (let i = 0; i < size; i++) p[offset + i] = (next() / 4294967296) * 2 * bound - bound;
}
