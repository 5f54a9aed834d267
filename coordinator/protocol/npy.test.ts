import { describe, expect, test } from 'vitest';
import { NpyError, parseNpy, toNpy } from './npy.js';
import { randomMatrix } from '../testing/helpers.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

/** Builds a .npy file by hand (independently of toNpy): any header text, version and payload. */
function handNpy(header: string, payload: Uint8Array, major = 1): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  // Pad like NumPy: magic + version + length + header (ending in \n) is a multiple of 64.
  const padded = header + ' '.repeat((64 - ((prefix + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(prefix + padded.length + payload.length);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, padded.length, true);
  else view.setUint32(8, padded.length, true);
  for (let i = 0; i < padded.length; i++) out[prefix + i] = padded.charCodeAt(i);
  out.set(payload, prefix + padded.length);
  return out;
}

function f32Bytes(values: number[]): Uint8Array {
  const f = Float32Array.from(values);
  return new Uint8Array(f.buffer);
}

describe('toNpy / parseNpy round trip', () => {
  test.each([
    { shape: [1, 1] },
    { shape: [3, 5] },
    { shape: [7] },
    { shape: [1] },
    { shape: [2, 3, 4] },
    { shape: [1, 257] },
    { shape: [129, 1] },
    { shape: [] as number[] },
  ])('shape $shape', ({ shape }) => {
    const count = shape.reduce((a, b) => a * b, 1);
    const data = randomMatrix(1, count, 42 + count);
    const bytes = toNpy(shape, data);
    // NumPy's layout: the data starts on a 64-byte boundary.
    const headerLen = new DataView(bytes.buffer).getUint16(8, true);
    expect((10 + headerLen) % 64).toBe(0);
    expect(bytes.length).toBe(10 + headerLen + count * 4);
    const back = parseNpy(bytes);
    expect(back.shape).toEqual(shape);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });

  test('special float values survive bit-exactly', () => {
    const data = Float32Array.from([0, -0, Infinity, -Infinity, NaN, 1e-45, 3.4028234663852886e38]);
    const back = parseNpy(toNpy([7], data));
    expect(new Uint8Array(back.data.buffer, back.data.byteOffset, back.data.byteLength)).toEqual(new Uint8Array(data.buffer));
  });

  test('toNpy refuses a shape that does not match the data length', () => {
    expect(() => toNpy([2, 3], new Float32Array(5))).toThrow(NpyError);
    expect(() => toNpy([2, 3], new Float32Array(5))).toThrow(/needs 6 values, got 5/);
  });

  test('toNpy of a subarray view writes only that view', () => {
    const big = Float32Array.from([9, 1, 2, 3, 9]);
    const back = parseNpy(toNpy([3], big.subarray(1, 4)));
    expect(Array.from(back.data)).toEqual([1, 2, 3]);
  });
});

describe('parseNpy of hand-built files', () => {
  test('format 1.0 with a NumPy-style header', () => {
    const bytes = handNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f32Bytes([1, 2, 3, 4, 5, 6]));
    const t = parseNpy(bytes);
    expect(t.shape).toEqual([2, 3]);
    expect(Array.from(t.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test('format 2.0 header (u32 header length)', () => {
    const bytes = handNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f32Bytes([1.5, -2, 3, 4, 5, 6.25]), 2);
    expect(bytes[6]).toBe(2);
    const t = parseNpy(bytes);
    expect(t.shape).toEqual([3, 2]);
    expect(Array.from(t.data)).toEqual([1.5, -2, 3, 4, 5, 6.25]);
  });

  test('format 2.0 with a header longer than 65535 bytes is refused as oversized, not misread', () => {
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), " + ' '.repeat(70_000) + '}';
    expect(() => parseNpy(handNpy(header, f32Bytes([1]), 2))).toThrow(/oversized/);
  });

  test("'|f4' (byte order not applicable) is accepted and key order does not matter", () => {
    const t = parseNpy(handNpy("{'shape': (2,), 'fortran_order': False, 'descr': '|f4'}", f32Bytes([7, 8])));
    expect(t.shape).toEqual([2]);
    expect(Array.from(t.data)).toEqual([7, 8]);
  });

  test('wrong magic', () => {
    const bytes = toNpy([2], Float32Array.from([1, 2]));
    bytes[1] = 0x4f; // \x93OUMPY
    expect(() => parseNpy(bytes)).toThrow(NpyError);
    expect(() => parseNpy(bytes)).toThrow(/magic/);
  });

  test('too short to be a .npy', () => {
    expect(() => parseNpy(new Uint8Array([0x93, 0x4e, 0x55]))).toThrow(/magic/);
    expect(() => parseNpy(new Uint8Array(0))).toThrow(NpyError);
  });

  test('unsupported format version', () => {
    const bytes = toNpy([1], Float32Array.from([1]));
    bytes[6] = 4;
    expect(() => parseNpy(bytes)).toThrow(/version 4\.0/);
  });

  test.each([
    { descr: '<f8', bytesPer: 8 },
    { descr: '<i4', bytesPer: 4 },
    { descr: '>f4', bytesPer: 4 },
    { descr: '<f2', bytesPer: 2 },
  ])('dtype $descr is refused and named in the message', ({ descr, bytesPer }) => {
    const bytes = handNpy(`{'descr': '${descr}', 'fortran_order': False, 'shape': (2, 2), }`, new Uint8Array(4 * bytesPer));
    expect(() => parseNpy(bytes)).toThrow(NpyError);
    expect(() => parseNpy(bytes)).toThrow(`'${descr}'`);
  });

  test('Fortran order is refused', () => {
    const bytes = handNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f32Bytes([1, 2, 3, 4]));
    expect(() => parseNpy(bytes)).toThrow(/Fortran/);
  });

  test.each([
    { what: 'one value short', shape: '(2, 3)', values: 5 },
    { what: 'one value extra', shape: '(2, 3)', values: 7 },
    { what: 'empty payload', shape: '(4,)', values: 0 },
  ])('data length mismatch: $what', ({ shape, values }) => {
    const bytes = handNpy(`{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`, new Uint8Array(values * 4));
    expect(() => parseNpy(bytes)).toThrow(/data length .* does not match shape/);
  });

  test('a file cut in the middle of the data is a length mismatch', () => {
    const bytes = toNpy([3, 5], randomMatrix(3, 5, 1));
    expect(() => parseNpy(bytes.subarray(0, bytes.length - 3))).toThrow(/data length .* does not match/);
  });

  test('a file cut inside the header', () => {
    const bytes = toNpy([3, 5], randomMatrix(3, 5, 1));
    expect(() => parseNpy(bytes.subarray(0, 30))).toThrow(/truncated/);
  });

  test('header missing fields / bad shape entries', () => {
    expect(() => parseNpy(handNpy("{'descr': '<f4', 'shape': (1,), }", f32Bytes([1])))).toThrow(/malformed/);
    expect(() => parseNpy(handNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", f32Bytes([1])))).toThrow(/bad shape entry/);
    expect(() => parseNpy(handNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,), }", f32Bytes([1])))).toThrow(/bad shape entry/);
  });

  test.each([
    // First-key-wins reads float32 4×4; NumPy (last wins) reads float64 2×4 — the same 64 bytes.
    ["{'descr': '<f4', 'shape': (4, 4), 'fortran_order': False, 'descr': '<f8', 'shape': (2, 4), }", /'descr' twice/],
    ["{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), 'shape': (4, 4), }", /'shape' twice/],
    ["{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), 'extra': 1, }", /unknown key 'extra'/],
    ["{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), 'fortran_order': True, }", /'fortran_order' twice/],
    ["{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4)} trailing", /text after the dict/],
    ["{'descr': '<f4', 'fortran_order': False, 'shape': (4,, 4)}", /bad shape entry ''/],
    ["{'descr': '<f4', 'fortran_order': False 'shape': (4, 4)}", /expected ','/],
  ])('a header NumPy would read differently, or not at all, is refused: %s', (header, why) => {
    expect(() => parseNpy(handNpy(header, new Uint8Array(64)))).toThrow(why);
  });

  test('NumPy-style variants still parse: double quotes, no trailing comma, (n,) and ()', () => {
    expect(parseNpy(handNpy('{"descr": "<f4", "fortran_order": False, "shape": (4, 4)}', new Uint8Array(64))).shape).toEqual([4, 4]);
    expect(parseNpy(handNpy("{'descr':'<f4','fortran_order':False,'shape':(16,)}", new Uint8Array(64))).shape).toEqual([16]);
    expect(parseNpy(handNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", new Uint8Array(4))).shape).toEqual([]);
  });

  test('input at an unaligned byteOffset still parses (copy path)', () => {
    const data = randomMatrix(3, 5, 7);
    const npy = toNpy([3, 5], data);
    const backing = new Uint8Array(npy.length + 3);
    backing.set(npy, 1);
    const unaligned = backing.subarray(1, 1 + npy.length);
    expect(unaligned.byteOffset % 4).toBe(1);
    const t = parseNpy(unaligned);
    expect(t.shape).toEqual([3, 5]);
    expect(Array.from(t.data)).toEqual(Array.from(data));
    expect(t.data.buffer).not.toBe(backing.buffer); // copied
  });

  test('input at an aligned non-zero byteOffset is viewed in place', () => {
    const data = randomMatrix(2, 2, 8);
    const npy = toNpy([2, 2], data);
    const backing = new Uint8Array(npy.length + 8);
    backing.set(npy, 4);
    const t = parseNpy(backing.subarray(4, 4 + npy.length));
    expect(Array.from(t.data)).toEqual(Array.from(data));
    expect(t.data.buffer).toBe(backing.buffer);
  });
});
