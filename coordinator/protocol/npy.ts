// NumPy .npy reading and writing for float32 tensors. Pure TypeScript (no Node APIs) so the
// browser worker parses shards with the same code the coordinator validates them with.

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export class NpyError extends Error {
  override name = 'NpyError';
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const MAX_HEADER = 65536;

/** A float32 or int32 tensor (training labels may be int32 class ids). */
export interface TypedTensor {
  shape: number[];
  dtype: 'float32' | 'int32';
  data: Float32Array | Int32Array;
}

/** Parses a .npy file holding little-endian float32 (`<f4`) in C order, format 1.0, 2.0 or 3.0. */
export function parseNpy(bytes: Uint8Array): Tensor {
  const t = parseNpyTyped(bytes);
  if (t.dtype !== 'float32') throw new NpyError("dtype must be float32 ('<f4'), got '<i4' (int32)");
  return t as Tensor;
}

/** Parses a .npy file holding little-endian float32 (`<f4`) or int32 (`<i4`) in C order. */
export function parseNpyTyped(bytes: Uint8Array): TypedTensor {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError('not a .npy file (missing \\x93NUMPY magic)');
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new NpyError('truncated .npy header');
    headerLen = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new NpyError(`unsupported .npy format version ${major}.${bytes[7]}`);
  }
  if (headerLen > MAX_HEADER || headerStart + headerLen > bytes.length) {
    throw new NpyError('truncated or oversized .npy header');
  }
  const header = new TextDecoder('latin1').decode(bytes.subarray(headerStart, headerStart + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new NpyError('malformed .npy header (needs descr, fortran_order and shape)');
  }
  const dtype = descr === '<f4' || descr === '|f4' ? 'float32' : descr === '<i4' || descr === '|i4' ? 'int32' : null;
  if (!dtype) throw new NpyError(`dtype must be float32 ('<f4') or int32 ('<i4'), got '${descr}'`);
  if (fortran === 'True') throw new NpyError('Fortran-order arrays are not supported; save in C order');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      if (!/^\d+$/.test(s)) throw new NpyError(`bad shape entry '${s}'`);
      return Number(s);
    });
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLen;
  if (!Number.isSafeInteger(count) || bytes.length - dataStart !== count * 4) {
    throw new NpyError(
      `data length ${bytes.length - dataStart} bytes does not match shape (${shape.join(', ')}) of ${dtype} (${count * 4} bytes)`,
    );
  }
  // Copy when unaligned: Float32Array needs a 4-byte aligned offset.
  const offset = bytes.byteOffset + dataStart;
  const [buffer, at] = offset % 4 === 0 ? [bytes.buffer, offset] : [bytes.slice(dataStart).buffer, 0];
  const data = dtype === 'float32' ? new Float32Array(buffer, at, count) : new Int32Array(buffer, at, count);
  return { shape, dtype, data };
}

/** Serialises a float32 tensor as .npy format 1.0 (header padded to 64 bytes, as NumPy does). */
export function toNpy(shape: readonly number[], data: Float32Array): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new NpyError(`shape (${shape.join(', ')}) needs ${count} values, got ${data.length}`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}
