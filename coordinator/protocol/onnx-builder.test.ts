// The graphs the CPU backend runs (built in code), checked on onnxruntime's CPU EP (node) against
// float64 references over awkward shapes: the browser's wasm EP runs the same kernels. And GraphBuilder's
// int64 constants (shapes, axes) and constants by name.
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { matmulReference } from '../jobs/matmul.js';
import { randomMatrix } from '../testing/helpers.js';
import { attentionMask, attentionModel, GraphBuilder, matmulModel } from './onnx-builder.js';

const sessions = { matmul: ort.InferenceSession.create(matmulModel()), attention: ort.InferenceSession.create(attentionModel()) };
const t = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);

function expectClose(actual: Float32Array, expected: Float32Array, tol: number) {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / (1 + Math.abs(expected[i])));
  expect(worst).toBeLessThanOrEqual(tol);
}

/** float64 attention of query rows [q0, q0+rows) with optional causal masking. */
function attentionRef(q: Float32Array, k: Float32Array, v: Float32Array, rows: number, seq: number, d: number, q0: number, causal: boolean): Float32Array {
  const out = new Float32Array(rows * d);
  for (let i = 0; i < rows; i++) {
    const keys = causal ? Math.min(seq, q0 + i + 1) : seq;
    const s = Array.from({ length: keys }, (_, j) => {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[i * d + c] * k[j * d + c];
      return dot / Math.sqrt(d);
    });
    const max = Math.max(...s);
    const p = s.map((x) => Math.exp(x - max));
    const sum = p.reduce((a, b) => a + b, 0);
    for (let c = 0; c < d; c++) out[i * d + c] = p.reduce((acc, pj, j) => acc + pj * v[j * d + c], 0) / sum;
  }
  return out;
}

describe('matmulModel: one graph for every shape', () => {
  test.each([
    [1, 1, 1],
    [1, 7, 1],
    [13, 1, 17],
    [31, 37, 41],
    [64, 64, 64],
    [65, 63, 66],
  ])('%i×%i · %i', async (m, k, n) => {
    const a = randomMatrix(m, k, m);
    const b = randomMatrix(k, n, n);
    const { c } = await (await sessions.matmul).run({ a: t(a, [m, k]), b: t(b, [k, n]) });
    expectClose(c.data as Float32Array, matmulReference(a, b, m, k, n), 1e-5);
  });
});

describe('attentionModel: a block of query rows against one head', () => {
  test.each([
    // rows, seq, d, q0, causal
    [1, 1, 1, 0, false],
    [1, 1, 1, 0, true],
    [5, 7, 3, 0, false],
    [5, 7, 3, 0, true],
    [4, 16, 8, 12, true], // the last block of a causal sequence
    [3, 16, 8, 5, true], // a middle block
    [16, 16, 64, 0, true],
    [7, 33, 64, 20, false],
  ])('rows %i, seq %i, d %i, q0 %i, causal %s', async (rows, seq, d, q0, causal) => {
    const q = randomMatrix(rows, d, rows + 1);
    const k = randomMatrix(seq, d, seq + 2);
    const v = randomMatrix(seq, d, seq + 3);
    const { out } = await (await sessions.attention).run({
      q: t(q, [rows, d]),
      k: t(k, [seq, d]),
      v: t(v, [seq, d]),
      scale: t(Float32Array.of(1 / Math.sqrt(d)), []),
      mask: t(attentionMask(rows, seq, q0, causal), [rows, seq]),
    });
    expectClose(out.data as Float32Array, attentionRef(q, k, v, rows, seq, d, q0, causal), 1e-5);
  });

  test('the causal mask hides exactly the keys after each query', () => {
    expect(Array.from(attentionMask(2, 4, 1, true))).toEqual([0, 0, -Infinity, -Infinity, 0, 0, 0, -Infinity]);
    expect(Array.from(attentionMask(2, 3, 5, true))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(Array.from(attentionMask(1, 3, 0, false))).toEqual([0, 0, 0]);
  });
});

describe('GraphBuilder: nodes, float and int64 constants', () => {
  test('a graph with a Reshape (int64 shape) and ReduceSum (int64 axes) computes what it says', async () => {
    const g = new GraphBuilder();
    // y[r] = 2 · Σ_c x viewed as [rows, 3]: the scalar and the shape reused by name.
    const rows = g.op('Reshape', ['x', g.ints('shape', [-1, 3])]);
    const sum = g.op('ReduceSum', [rows, g.ints('axes', [1])], { keepdims: 0 });
    g.op('Mul', [sum, g.scalar('two', 2)], undefined, 'y');
    expect(g.scalar('two', 2)).toBe('two');
    expect(g.initializers).toHaveLength(3);
    const session = await ort.InferenceSession.create(g.build({ inputs: [{ name: 'x', dims: [6] }], outputs: [{ name: 'y', dims: [2] }] }));
    const { y } = await session.run({ x: t(Float32Array.of(1, 2, 3, 4, 5, 6), [6]) });
    expect(Array.from(y.data as Float32Array)).toEqual([12, 30]);
  });

  test('a constant redefined under its name is refused', () => {
    const g = new GraphBuilder();
    g.scalar('c', 1);
    expect(() => g.scalar('c', 2)).toThrow('constant c redefined');
    g.ints('s', [1, 2]);
    expect(() => g.ints('s', [2, 1])).toThrow('constant s redefined');
  });
});
