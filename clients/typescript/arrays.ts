// Arrays in and out: what the client accepts as an input (a tensor of numbers, or the bytes of a
// float32 .npy file) and turns into the .npy bytes the API takes, with the protocol's own .npy codec.
import { NpyError, parseNpy, parseNpyTyped, toNpy } from '../../coordinator/protocol/npy.js';
import { InputError } from './errors.js';

/** A float32 array with its shape (C order): what results are, and one way to give inputs. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** Bytes of a file: a .npy input or an .onnx model (a browser `File` is a Blob). */
export type Bytes = Uint8Array | ArrayBuffer | Blob;

/** An input array: a tensor (any numbers, sent as float32), or the bytes of a float32 .npy file. */
export type ArrayInput = Tensor | { shape: readonly number[]; data: ArrayLike<number> } | Bytes;

/**
 * A 1-D array (token ids, a flat parameter vector): any `ArrayInput`, or the numbers themselves
 * (`number[]`, `Int32Array`, `Float32Array`, … — but a `Uint8Array` is always the bytes of a .npy file).
 */
export type VectorInput = ArrayInput | ArrayLike<number>;

/** The bytes of a file given as any of `Bytes` (a browser File included). */
export async function bytesOf(input: Bytes): Promise<Uint8Array> {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  return new Uint8Array(await input.arrayBuffer());
}

const isBytes = (x: unknown): x is Bytes => x instanceof Uint8Array || x instanceof ArrayBuffer || (typeof Blob !== 'undefined' && x instanceof Blob);

/**
 * The float32 .npy bytes of an input, checked here so a bad one is refused before anything is sent
 * (`what` names it in the error): .npy bytes must hold float32 (or int32 where `int32` allows it:
 * training labels) in C order; a tensor's data must fill its shape.
 */
export async function npyOf(input: ArrayInput, what: string, opts: { int32?: boolean } = {}): Promise<{ npy: Uint8Array; shape: number[] }> {
  if (typeof File !== 'undefined' && input instanceof File) what = `${what} (${input.name})`;
  if (isBytes(input)) {
    const npy = await bytesOf(input);
    try {
      return { npy, shape: (opts.int32 ? parseNpyTyped(npy) : parseNpy(npy)).shape };
    } catch (err) {
      if (err instanceof NpyError) throw new InputError(`${what}: ${err.message}`);
      throw err;
    }
  }
  if (!input || typeof input !== 'object' || !Array.isArray(input.shape) || input.data === undefined) {
    throw new InputError(`${what}: give a { shape, data } tensor or the bytes of a float32 .npy file`);
  }
  const shape = [...input.shape];
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new InputError(`${what}: shape (${shape.join(', ')}) must be whole numbers ≥ 0`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (input.data.length !== count) throw new InputError(`${what}: shape (${shape.join(', ')}) needs ${count} values, got ${input.data.length}`);
  const data = input.data instanceof Float32Array ? input.data : Float32Array.from(input.data);
  return { npy: toNpy(shape, data), shape };
}

/**
 * The .npy bytes of a 1-D array (float32, or int32 .npy bytes as they are), checked: one axis, and
 * with `ids`, whole numbers in [0, ids.below) (token ids: the message names the first bad one).
 */
export async function vectorNpy(input: VectorInput, what: string, ids?: { below: number; of: string }): Promise<Uint8Array> {
  const array = isBytes(input) || isShaped(input) ? (input as ArrayInput) : isNumbers(input) ? { shape: [input.length], data: input } : (input as ArrayInput);
  const { npy, shape } = await npyOf(array, what, { int32: ids !== undefined });
  if (shape.length !== 1) throw new InputError(`${what}: must be a 1-D array, got shape (${shape.join(', ')})`);
  if (ids) {
    const { data } = parseNpyTyped(npy);
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (!Number.isInteger(v) || v < 0 || v >= ids.below) throw new InputError(`${what}: token ids must be whole numbers in [0, ${ids.below}) (${ids.of}); position ${i} has ${v}`);
    }
  }
  return npy;
}

const isShaped = (x: unknown): boolean => typeof x === 'object' && x !== null && 'shape' in x && 'data' in x;
const isNumbers = (x: unknown): x is ArrayLike<number> => Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof DataView));

/** A result's .npy bytes as a tensor. */
export function tensorOf(npy: Uint8Array): Tensor {
  const { shape, data } = parseNpy(npy);
  return { shape, data };
}

export { parseNpy, toNpy };
