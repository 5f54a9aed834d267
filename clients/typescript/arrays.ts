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

/** A result's .npy bytes as a tensor. */
export function tensorOf(npy: Uint8Array): Tensor {
  const { shape, data } = parseNpy(npy);
  return { shape, data };
}

export { parseNpy, toNpy };
