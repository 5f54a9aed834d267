import { describe, expect, test } from 'vitest';
import { parseNpy, toNpy } from '../protocol/npy.js';
import type { MatmulJobSubmit, MatmulParams } from '../protocol/index.js';
import type { JobRecord, WorkUnitRecord } from '../store/store.js';
import { randomMatrix } from '../testing/helpers.js';
import { useTempShards } from '../testing/fixtures.js';
import { compareWithin } from './compare.js';
import { chooseTile, freivalds, matmul, matmulReference } from './matmul.js';
import { JobInputError } from './types.js';

const temp = useTempShards();

function submit(a: string, b: string, extra: Partial<MatmulJobSubmit> = {}): MatmulJobSubmit {
  return { kind: 'matmul', inputs: { a, b }, replication: 2, ...extra };
}

/** Naive triple loop in float32 arithmetic (every product and sum rounded), k summed in reverse. */
function float32ProductReversed(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = k - 1; p >= 0; p--) acc = Math.fround(acc + Math.fround(a[i * k + p] * b[p * n + j]));
      c[i * n + j] = acc;
    }
  }
  return c;
}

/** Float32 pairwise (tree) summation: yet another order, as a GPU reduction might use. */
function float32ProductPairwise(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const c = new Float32Array(m * n);
  const terms = new Float32Array(k);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      for (let p = 0; p < k; p++) terms[p] = Math.fround(a[i * k + p] * b[p * n + j]);
      let len = k;
      const t = terms.slice();
      while (len > 1) {
        const half = Math.ceil(len / 2);
        for (let q = 0; q < len - half; q++) t[q] = Math.fround(t[q] + t[q + half]);
        len = half;
      }
      c[i * n + j] = t[0];
    }
  }
  return c;
}

describe('matmulReference', () => {
  test('hand-computed 2×3 · 3×2', () => {
    const a = Float32Array.from([1, 2, 3, 4, 5, 6]); // [[1,2,3],[4,5,6]]
    const b = Float32Array.from([7, 8, 9, 10, 11, 12]); // [[7,8],[9,10],[11,12]]
    // [[1·7+2·9+3·11, 1·8+2·10+3·12], [4·7+5·9+6·11, 4·8+5·10+6·12]]
    expect(Array.from(matmulReference(a, b, 2, 3, 2))).toEqual([58, 64, 139, 154]);
  });

  test('1×1 · 1×1 and an outer product', () => {
    expect(Array.from(matmulReference(Float32Array.from([3]), Float32Array.from([-2.5]), 1, 1, 1))).toEqual([-7.5]);
    expect(Array.from(matmulReference(Float32Array.from([1, 2]), Float32Array.from([3, 4, 5]), 2, 1, 3))).toEqual([3, 4, 5, 6, 8, 10]);
  });

  test('accumulates in float64 (no float32 cancellation)', () => {
    // 1e8 + 1 - 1e8 in float32 is 0; in float64 it is 1.
    const a = Float32Array.from([1e8, 1, -1e8]);
    const b = Float32Array.from([1, 1, 1]);
    expect(Array.from(matmulReference(a, b, 1, 3, 1))).toEqual([1]);
  });
});

describe('matmul.plan + assimilate', () => {
  test.each([
    { m: 1, k: 1, n: 1, tile: undefined },
    { m: 1, k: 1, n: 1, tile: { rows: 64, cols: 64 } },
    { m: 7, k: 13, n: 5, tile: undefined },
    { m: 7, k: 13, n: 5, tile: { rows: 2, cols: 3 } },
    { m: 300, k: 200, n: 170, tile: { rows: 64, cols: 64 } },
    { m: 65, k: 1, n: 63, tile: { rows: 16, cols: 16 } },
    { m: 31, k: 17, n: 29, tile: { rows: 8, cols: 8 } },
    { m: 1, k: 40, n: 33, tile: { rows: 1, cols: 1 } },
    { m: 17, k: 3, n: 1, tile: { rows: 5, cols: 1 } },
  ])('$m×$k · $k×$n, tile $tile', async ({ m, k, n, tile }) => {
    const A = randomMatrix(m, k, m * 1000 + k);
    const B = randomMatrix(k, n, k * 1000 + n + 1);
    const sa = await temp.shards.put(toNpy([m, k], A));
    const sb = await temp.shards.put(toNpy([k, n], B));
    const plan = await matmul.plan(submit(sa, sb, tile ? { tile } : {}), temp.shards);

    const t = tile ?? chooseTile(m, k, n);
    expect(plan.resultShape).toEqual([m, n]);
    expect(plan.meta).toMatchObject({ m, k, n });
    expect(plan.workUnits.length).toBe(Math.ceil(m / t.rows) * Math.ceil(n / t.cols));

    // Every output element is covered by exactly one work unit.
    const cover = new Uint8Array(m * n);
    let flops = 0;
    const outputs: { wu: WorkUnitRecord; output: Float32Array }[] = [];
    for (const wu of plan.workUnits) {
      const { m: rows, k: wk, n: cols } = wu.params as MatmulParams;
      expect(wk).toBe(k);
      expect(wu.flops).toBe(2 * rows * cols * k);
      expect(wu.outputBytes).toBe(rows * cols * 4);
      flops += wu.flops;
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) cover[(wu.meta.r0 + r) * n + wu.meta.c0 + c]++;

      // The work unit's inputs are its own temp.shards: a row block of A and a column block of B.
      const aT = parseNpy((await temp.shards.get(wu.inputs.a))!);
      const bT = parseNpy((await temp.shards.get(wu.inputs.b))!);
      expect(aT.shape).toEqual([rows, k]);
      expect(bT.shape).toEqual([k, cols]);
      expect(aT.data[0]).toBe(A[wu.meta.r0 * k]);
      expect(bT.data[cols - 1]).toBe(B[wu.meta.c0 + cols - 1]);

      const output = matmulReference(aT.data, bT.data, rows, k, cols);
      const record = { ...wu, id: 'x', jobId: 'j', idx: 0, kind: 'matmul' } as unknown as WorkUnitRecord;
      expect(await matmul.check(record, output, temp.shards)).toBe(true);
      outputs.push({ wu: record, output });
    }
    expect(Array.from(cover).every((x) => x === 1)).toBe(true);
    expect(flops).toBe(2 * m * n * k);

    // Reverse the order: assimilate places tiles by their meta, not by arrival.
    const job = { meta: plan.meta } as unknown as JobRecord;
    const result = parseNpy(matmul.assimilate(job, outputs.reverse()));
    expect(result.shape).toEqual([m, n]);
    // Each element is accumulated over the same k values in the same order in float64, so the
    // tiled result is bit-identical to the whole-problem reference.
    const expected = matmulReference(A, B, m, k, n);
    expect(Buffer.from(result.data.buffer, result.data.byteOffset, result.data.byteLength).equals(Buffer.from(expected.buffer))).toBe(true);
  });

  test('inner dimensions that differ are refused, naming both shapes', async () => {
    const sa = await temp.shards.put(toNpy([2, 3], randomMatrix(2, 3, 1)));
    const sb = await temp.shards.put(toNpy([4, 5], randomMatrix(4, 5, 2)));
    const p = matmul.plan(submit(sa, sb), temp.shards);
    await expect(p).rejects.toBeInstanceOf(JobInputError);
    await expect(matmul.plan(submit(sa, sb), temp.shards)).rejects.toThrow(/2×3.*4×5/);
  });

  test('an unknown shard is refused', async () => {
    const sb = await temp.shards.put(toNpy([3, 3], randomMatrix(3, 3, 3)));
    const missing = 'ab'.repeat(32);
    await expect(matmul.plan(submit(missing, sb), temp.shards)).rejects.toBeInstanceOf(JobInputError);
    await expect(matmul.plan(submit(missing, sb), temp.shards)).rejects.toThrow(new RegExp(`inputs\\.a: no shard ${missing}`));
    await expect(matmul.plan(submit(sb, missing), temp.shards)).rejects.toThrow(/inputs\.b: no shard/);
  });

  test.each([
    { shape: [2, 2, 2], msg: /2-D matrix, got shape \(2, 2, 2\)/ },
    { shape: [4], msg: /2-D matrix, got shape \(4\)/ },
    { shape: [0, 3], msg: /between 1 and/ },
  ])('input of shape $shape is refused', async ({ shape, msg }) => {
    const count = shape.reduce((x, y) => x * y, 1);
    const bad = await temp.shards.put(toNpy(shape, new Float32Array(count)));
    const ok = await temp.shards.put(toNpy([3, 3], randomMatrix(3, 3, 4)));
    await expect(matmul.plan(submit(bad, ok), temp.shards)).rejects.toBeInstanceOf(JobInputError);
    await expect(matmul.plan(submit(bad, ok), temp.shards)).rejects.toThrow(msg);
  });

  test('a shard that is not float32 .npy is refused with the parser message', async () => {
    const notNpy = await temp.shards.put(new TextEncoder().encode('hello, not numpy'));
    const ok = await temp.shards.put(toNpy([3, 3], randomMatrix(3, 3, 5)));
    await expect(matmul.plan(submit(ok, notNpy), temp.shards)).rejects.toThrow(/inputs\.b: not a \.npy file/);
  });

  test('a tiling with too many work units is refused', async () => {
    const sa = await temp.shards.put(toNpy([400, 1], randomMatrix(400, 1, 6)));
    const sb = await temp.shards.put(toNpy([1, 400], randomMatrix(1, 400, 7)));
    await expect(matmul.plan(submit(sa, sb, { tile: { rows: 1, cols: 1 } }), temp.shards)).rejects.toThrow(/160000 work units/);
  });

  test('dimensions up to 65,536 are accepted; one more is refused, naming the limit', async () => {
    const a = await temp.shards.put(toNpy([65_536, 1], new Float32Array(65_536).fill(0.5)));
    const b = await temp.shards.put(toNpy([1, 1], Float32Array.of(2)));
    const plan = await matmul.plan(submit(a, b, { tile: { rows: 4096, cols: 1 } }), temp.shards);
    expect(plan.resultShape).toEqual([65_536, 1]);
    const tooTall = await temp.shards.put(toNpy([65_537, 1], new Float32Array(65_537).fill(0.5)));
    await expect(matmul.plan(submit(tooTall, b), temp.shards)).rejects.toThrow(/inputs\.a: every dimension must be between 1 and 65536, got 65537×1/);
  });

  test('tolerance: per-unit atol scales with k and input magnitude; a submitted tolerance overrides it', async () => {
    const sa = await temp.shards.put(toNpy([4, 100], randomMatrix(4, 100, 8, -1000, 1000)));
    const sb = await temp.shards.put(toNpy([100, 4], randomMatrix(100, 4, 9, -1, 1)));
    const plan = await matmul.plan(submit(sa, sb), temp.shards);
    const tol = plan.workUnits[0].tolerance;
    expect(tol.rtol).toBe(1e-4);
    expect(tol.atol).toBeGreaterThan(1e-3); // 2·100·2^-24·~1000·~1 ≈ 1.2e-2
    expect(tol.atol).toBeLessThan(2e-2);
    const override = await matmul.plan(submit(sa, sb, { tolerance: { atol: 0.5, rtol: 0.01 } }), temp.shards);
    expect(override.workUnits[0].tolerance).toEqual({ atol: 0.5, rtol: 0.01 });
  });
});

describe('freivalds', () => {
  const m = 64;
  const k = 64;
  const n = 64;
  const A = randomMatrix(m, k, 101);
  const B = randomMatrix(k, n, 202);
  const C = matmulReference(A, B, m, k, n);

  test('accepts the reference product', () => {
    expect(freivalds(A, B, C, m, k, n)).toBe(true);
  });

  test('accepts float32 products computed in other orders (honest GPU-like rounding)', () => {
    const rev = float32ProductReversed(A, B, m, k, n);
    const pair = float32ProductPairwise(A, B, m, k, n);
    // They really differ from the reference, so this is not a trivial check.
    expect(rev.some((v, i) => v !== C[i])).toBe(true);
    expect(pair.some((v, i) => v !== rev[i])).toBe(true);
    for (let trial = 0; trial < 20; trial++) {
      expect(freivalds(A, B, rev, m, k, n)).toBe(true);
      expect(freivalds(A, B, pair, m, k, n)).toBe(true);
    }
  });

  test('accepts sequential float32 sums with a long inner dimension (k = 4096, positive inputs)', () => {
    // All-positive inputs make sequential rounding errors pile up: the worst honest case.
    const mk = 4;
    const kk = 4096;
    const a = randomMatrix(mk, kk, 5, 0, 1);
    const b = randomMatrix(kk, mk, 6, 0, 1);
    const rev = float32ProductReversed(a, b, mk, kk, mk);
    const ref = matmulReference(a, b, mk, kk, mk);
    expect(rev.some((v, i) => v !== ref[i])).toBe(true);
    for (let trial = 0; trial < 10; trial++) expect(freivalds(a, b, rev, mk, kk, mk)).toBe(true);
  });

  test.each([{ m: 1, k: 1, n: 1 }, { m: 1, k: 7, n: 1 }, { m: 5, k: 1, n: 3 }, { m: 3, k: 300, n: 2 }])(
    'odd shape $m×$k·$k×$n: accepts honest, rejects a wrong element',
    ({ m: mm, k: kk, n: nn }) => {
      const a = randomMatrix(mm, kk, mm + 10, 0.5, 1);
      const b = randomMatrix(kk, nn, nn + 20, 0.5, 1);
      const c = float32ProductReversed(a, b, mm, kk, nn);
      expect(freivalds(a, b, c, mm, kk, nn)).toBe(true);
      const bad = c.slice();
      bad[bad.length - 1] *= 1.01;
      expect(freivalds(a, b, bad, mm, kk, nn)).toBe(false);
    },
  );

  // One element off by 1% of its value, on a 64×64×64 problem with inputs in [0, 1): every element
  // of C is ~16, far above the rigorous honest-rounding bound (~8e-3 per row), so a single-element
  // change is caught with certainty (any ±1 vector r moves row i of C·r by exactly the change).
  const Apos = randomMatrix(m, k, 303, 0, 1);
  const Bpos = randomMatrix(k, n, 404, 0, 1);
  const Cpos = matmulReference(Apos, Bpos, m, k, n);
  test.each([0, 1, 63, 64, 2080, 4031, 4095])('rejects one element changed by 1e-2 relative (index %i, inputs in [0,1))', (idx) => {
    const bad = Cpos.slice();
    bad[idx] *= 1 + 1e-2;
    for (let trial = 0; trial < 10; trial++) expect(freivalds(Apos, Bpos, bad, m, k, n)).toBe(false);
    const bad2 = Cpos.slice();
    bad2[idx] *= 1 - 1e-2;
    expect(freivalds(Apos, Bpos, bad2, m, k, n)).toBe(false);
  });

  test('rejects a 1e-2 relative change of the largest-magnitude element (mixed-sign inputs)', () => {
    let idx = 0;
    for (let i = 0; i < C.length; i++) if (Math.abs(C[i]) > Math.abs(C[idx])) idx = i;
    const bad = C.slice();
    bad[idx] *= 1 + 1e-2;
    for (let trial = 0; trial < 10; trial++) expect(freivalds(A, B, bad, m, k, n)).toBe(false);
  });

  test('documented limit: with mixed-sign inputs a 1% change of a small element can pass Freivalds, and replica comparison catches it', () => {
    // Freivalds' bound must allow the worst-case rounding of any honest summation order:
    // 2.02·(k+2)·u·Σ_p|a_ip|·Σ_j|b_pj| ≈ 8e-3 per row here. Element (i,j) of C with |C_ij| ≈ 0.3
    // changed by 1% moves C·r by only ~3e-3, below that bound. The quorum comparison with the work
    // unit's tolerance (atol ≈ 2·k·u·max|a|·max|b|, rtol 1e-4) is far tighter and rejects it.
    let idx = 0;
    for (let i = 0; i < C.length; i++) if (Math.abs(Math.abs(C[i]) - 0.3) < Math.abs(Math.abs(C[idx]) - 0.3)) idx = i;
    expect(Math.abs(C[idx])).toBeGreaterThan(0.25);
    expect(Math.abs(C[idx])).toBeLessThan(0.35);
    const bad = C.slice();
    bad[idx] *= 1 + 1e-2;
    expect(freivalds(A, B, bad, m, k, n)).toBe(true);
    const tol = { atol: 2 * k * 2 ** -24 * 1 * 1, rtol: 1e-4 };
    expect(compareWithin(C, bad, tol)).toMatchObject({ ok: false, index: idx });
    expect(compareWithin(C, float32ProductReversed(A, B, m, k, n), tol)).toEqual({ ok: true });
  });

  test.each([
    { what: 'the mean of C everywhere', value: (c: Float32Array) => c.reduce((s, v) => s + v, 0) / c.length },
    { what: 'zeros', value: () => 0 },
    { what: 'ones', value: () => 1 },
  ])('rejects an all-constant output ($what)', ({ value }) => {
    const bad = new Float32Array(C.length).fill(value(C));
    expect(freivalds(A, B, bad, m, k, n)).toBe(false);
  });

  test.each([
    { what: 'NaN', v: NaN },
    { what: '+Infinity', v: Infinity },
    { what: '-Infinity', v: -Infinity },
  ])('rejects $what in the output', ({ v }) => {
    for (const idx of [0, 1000, C.length - 1]) {
      const bad = C.slice();
      bad[idx] = v;
      expect(freivalds(A, B, bad, m, k, n)).toBe(false);
    }
    expect(freivalds(A, B, new Float32Array(C.length).fill(v), m, k, n)).toBe(false);
  });

  test('rejects the product of the wrong matrices (B transposed, swapped rows)', () => {
    const bt = new Float32Array(k * n);
    for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) bt[j * k + p] = B[p * n + j];
    expect(freivalds(A, B, matmulReference(A, bt, m, k, n), m, k, n)).toBe(false);
    const swapped = C.slice();
    swapped.set(C.subarray(0, n), n);
    swapped.set(C.subarray(n, 2 * n), 0);
    expect(freivalds(A, B, swapped, m, k, n)).toBe(false);
  });
});
