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

const HEADER_KEYS = ['descr', 'fortran_order', 'shape'] as const;

/**
 * Reads the header: a Python dict literal with exactly the keys descr (a string), fortran_order
 * (True/False) and shape (a tuple), each once — what NumPy writes and what NumPy accepts. A
 * duplicate or unknown key is refused: readers disagree on which of two values counts, so a file
 * that NumPy reads one way must not be read here another way.
 */
function readHeaderDict(header: string): { descr: string; fortran: 'True' | 'False'; shapeText: string } {
  const malformed = (why: string) => new NpyError(`malformed .npy header (needs descr, fortran_order and shape): ${why}`);
  let i = 0;
  const ws = () => {
    while (i < header.length && /\s/.test(header[i])) i++;
  };
  const string = (): string => {
    const quote = header[i];
    if (quote !== "'" && quote !== '"') throw malformed(`expected a quoted string at ${i}`);
    const end = header.indexOf(quote, i + 1);
    if (end < 0) throw malformed('unterminated string');
    const text = header.slice(i + 1, end);
    if (text.includes('\\')) throw malformed('escapes are not supported');
    i = end + 1;
    return text;
  };
  const values = new Map<string, { kind: 'string' | 'bool' | 'tuple'; text: string }>();
  ws();
  if (header[i++] !== '{') throw malformed('it is not a dict');
  for (;;) {
    ws();
    if (header[i] === '}') {
      i++;
      break;
    }
    const key = string();
    if (!(HEADER_KEYS as readonly string[]).includes(key)) throw new NpyError(`.npy header has an unknown key '${key}' (only descr, fortran_order and shape are allowed)`);
    if (values.has(key)) throw new NpyError(`.npy header has the key '${key}' twice`);
    ws();
    if (header[i++] !== ':') throw malformed(`expected ':' after '${key}'`);
    ws();
    let value: { kind: 'string' | 'bool' | 'tuple'; text: string };
    if (header[i] === "'" || header[i] === '"') value = { kind: 'string', text: string() };
    else if (header.startsWith('True', i) || header.startsWith('False', i)) {
      const text = header.startsWith('True', i) ? 'True' : 'False';
      i += text.length;
      value = { kind: 'bool', text };
    } else if (header[i] === '(') {
      const end = header.indexOf(')', i);
      if (end < 0) throw malformed('unterminated tuple');
      value = { kind: 'tuple', text: header.slice(i + 1, end) };
      i = end + 1;
    } else throw malformed(`unsupported value for '${key}'`);
    values.set(key, value);
    ws();
    if (header[i] === ',') i++;
    else if (header[i] !== '}') throw malformed(`expected ',' or '}' at ${i}`);
  }
  if (header.slice(i).trim() !== '') throw malformed('text after the dict');
  const descr = values.get('descr');
  const fortran = values.get('fortran_order');
  const shape = values.get('shape');
  if (descr?.kind !== 'string' || fortran?.kind !== 'bool' || shape?.kind !== 'tuple') throw malformed('a key is missing or has the wrong type');
  return { descr: descr.text, fortran: fortran.text as 'True' | 'False', shapeText: shape.text };
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
  const { descr, fortran, shapeText } = readHeaderDict(header);
  const dtype = descr === '<f4' || descr === '|f4' ? 'float32' : descr === '<i4' || descr === '|i4' ? 'int32' : null;
  if (!dtype) throw new NpyError(`dtype must be float32 ('<f4') or int32 ('<i4'), got '${descr}'`);
  if (fortran === 'True') throw new NpyError('Fortran-order arrays are not supported; save in C order');
  // Python tuple syntax: `()`, `(3,)`, `(2, 3)`, `(2, 3,)` — one trailing comma at most.
  const entries = shapeText.split(',').map((s) => s.trim());
  if (entries.length > 1 && entries[entries.length - 1] === '') entries.pop();
  if (entries.length === 1 && entries[0] === '' && shapeText.trim() === '') entries.pop();
  const shape = entries.map((s) => {
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
