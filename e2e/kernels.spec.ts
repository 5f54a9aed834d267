// The WGSL kernels in real Chromium (WebGPU on SwiftShader) against the CPU references, over the
// awkward shapes: 1×1×1, primes, k = 1, tile edges ±1, vec4 and scalar paths, causal masking,
// logits that overflow a naive softmax. Sizes stay small: SwiftShader is slow; speed is the bench's.
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';
import { attentionReference, attentionTolerance } from '../coordinator/jobs/attention';
import { matmulReference } from '../coordinator/jobs/matmul';
import type { AttentionParams } from '../coordinator/protocol';
import { randomMatrix, startTestCoordinator, type TestCoordinator } from '../coordinator/testing/helpers';
import { compareWithin } from '../coordinator/jobs/compare';
import type { MatmulConfig } from '../web/gpu/matmul';
import { computedOn, maxRelativeError, ROOT } from './grid';
import { resolve } from 'node:path';

let grid: TestCoordinator;
let page: Page;

test.beforeAll(async ({ browser }) => {
  grid = await startTestCoordinator({ staticDir: resolve(ROOT, 'dist') });
  page = await (await browser.newContext()).newPage();
  page.on('pageerror', (err) => console.error('page error:', err.message));
  await page.goto(grid.base + '/selftest.html');
  const init = await page.evaluate(() => window.tabgridReady);
  expect(init.ok).toBe(true);
});

test.afterAll(async () => {
  await page?.context().close();
  await grid?.stop();
});

/** Normwise error of a float32 product (accumulation order differs): well under 1e-5 here. */
const MATMUL_TOL = 1e-5;

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [17, 33, 65], // primes and tile edges + 1
  [1000, 1, 3], // k = 1, tall
  [5, 1, 8], // k = 1 on the vec4 path
  [63, 64, 65], // tile edges − 1 / + 1
  [65, 16, 64], // vec4, m past a 64 tile
  [31, 128, 33], // deeper k, scalar
  [2, 700, 4], // long k, vec4
];

test('the worker’s tuned matmul matches the CPU reference over awkward shapes', async () => {
  for (const [m, k, n] of SHAPES) {
    const a = randomMatrix(m, k, m * 7 + k);
    const b = randomMatrix(k, n, n * 13 + k);
    const got = await page.evaluate(
      ([a, b, m, k, n]) =>
        window.tabgridCompute.run({ kind: 'matmul', params: { m, k, n } }, { a: Float32Array.from(a), b: Float32Array.from(b) }).then((c) => Array.from(c)),
      [Array.from(a), Array.from(b), m, k, n] as const,
    );
    expect(got, `${m}×${k}·${k}×${n}`).toHaveLength(m * n);
    expect(maxRelativeError(Float32Array.from(got), matmulReference(a, b, m, k, n)), `${m}×${k}·${k}×${n}`).toBeLessThan(MATMUL_TOL);
  }
  // The worker ran every one of them on WebGPU (the kernels under test), none on the CPU backend.
  expect(await computedOn(page)).toEqual({ webgpu: SHAPES.length, cpu: 0 });
});

test('every autotuning candidate computes correct products, scalar and vec4 paths', async () => {
  const candidates = await page.evaluate(async () => (await window.tabgridLab).candidates as MatmulConfig[]);
  expect(candidates.length).toBeGreaterThan(1);
  // SwiftShader has subgroups (DESIGN.md): the shuffle kernel must be among the candidates checked
  // here. A browser without them would not test that kernel, so it fails here instead of passing.
  const features = await page.evaluate(() => window.tabgridReady.then((r) => (r.ok ? r.device.features : [])));
  expect(features).toContain('subgroups');
  expect(candidates.some((c) => c.subgroups)).toBe(true);
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [17, 33, 65],
    [129, 12, 68], // vec4; m and n just past 128/64 tiles
    [5, 76, 516], // vec4; k-steps not a multiple of any subgroup size, n just past a 512-column row
  ];
  for (const config of candidates) {
    for (const [m, k, n] of shapes) {
      const a = randomMatrix(m, k, 1 + m);
      const b = randomMatrix(k, n, 2 + n);
      const got = await page.evaluate(async ([a, b, dims, config]) => (await window.tabgridLab).matmul(a, b, dims, config), [Array.from(a), Array.from(b), { m, k, n }, config] as const);
      const what = `${JSON.stringify(config)} on ${m}×${k}·${k}×${n}`;
      expect(maxRelativeError(Float32Array.from(got), matmulReference(a, b, m, k, n)), what).toBeLessThan(MATMUL_TOL);
    }
  }
});

function maxAbs(t: Float32Array): number {
  return t.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
}

// rows, seq, q0, d, causal, input scale
const ATTENTION_CASES: [number, number, number, 64 | 128, boolean, number][] = [
  [1, 1, 0, 64, false, 1], // seq 1
  [37, 37, 0, 64, true, 1], // seq not a multiple of the 32-key tile or 64-query block
  [20, 70, 50, 64, true, 1], // a later query block of a causal sequence
  [65, 65, 0, 128, false, 1], // d 128, queries past one workgroup
  [16, 48, 32, 128, true, 1],
  [24, 40, 0, 64, false, 4], // logits up to ~128: exp overflows float32 without the running max
];

test('flash attention (the worker’s and every variant) matches the float64 reference (causal and not, d 64 and 128)', async () => {
  for (const [rows, seq, q0, d, causal, scale] of ATTENTION_CASES) {
    const q = randomMatrix(rows, d, rows + seq, -scale, scale);
    const k = randomMatrix(seq, d, seq + d, -scale, scale);
    const v = randomMatrix(seq, d, seq * 3);
    const params: AttentionParams = { rows, seq, q0, d, causal };
    const got = await page.evaluate(
      ([q, k, v, params]) =>
        window.tabgridCompute.run({ kind: 'attention', params }, { q: Float32Array.from(q), k: Float32Array.from(k), v: Float32Array.from(v) }).then((o) => Array.from(o)),
      [Array.from(q), Array.from(k), Array.from(v), params] as const,
    );
    // The worker's tuned variant, then every variant on the lab's device.
    const outputs: [string, number[]][] = [['worker', got]];
    for (const variant of ['tiled', 'direct'] as const) {
      const dims = { heads: 1, rows, q0, seq, d, causal };
      const labOut = await page.evaluate(async ([q, k, v, dims, variant]) => (await window.tabgridLab).attention(q, k, v, dims, variant), [
        Array.from(q),
        Array.from(k),
        Array.from(v),
        dims,
        variant,
      ] as const);
      outputs.push([variant, labOut]);
    }
    const tol = attentionTolerance(params, maxAbs(q), maxAbs(k), maxAbs(v));
    const reference = attentionReference(q, k, v, params);
    for (const [who, values] of outputs) {
      const out = Float32Array.from(values);
      const what = `${who}: ${JSON.stringify(params)}`;
      expect(out.every(Number.isFinite), what).toBe(true);
      expect(compareWithin(out, reference, tol), what).toEqual({ ok: true });
    }
  }
});

test('multi-head attention in one dispatch matches the reference head by head, every variant', async () => {
  const [heads, seq, d] = [3, 45, 64] as const;
  const variants = await page.evaluate(async () => (await window.tabgridLab).attentionVariants as string[]);
  expect(variants).toEqual(['tiled', 'direct']);
  for (const variant of variants) {
    for (const causal of [false, true]) {
      const q = randomMatrix(heads * seq, d, 31);
      const k = randomMatrix(heads * seq, d, 32);
      const v = randomMatrix(heads * seq, d, 33);
      const dims = { heads, rows: seq, q0: 0, seq, d, causal };
      const got = Float32Array.from(
        await page.evaluate(async ([q, k, v, dims, variant]) => (await window.tabgridLab).attention(q, k, v, dims, variant as 'tiled' | 'direct'), [
          Array.from(q),
          Array.from(k),
          Array.from(v),
          dims,
          variant,
        ] as const),
      );
      for (let h = 0; h < heads; h++) {
        const at = (x: Float32Array) => x.subarray(h * seq * d, (h + 1) * seq * d);
        const params: AttentionParams = { rows: seq, seq, q0: 0, d, causal };
        const tol = attentionTolerance(params, maxAbs(q), maxAbs(k), maxAbs(v));
        expect(compareWithin(at(got), attentionReference(at(q), at(k), at(v), params), tol), `${variant}, head ${h}, causal ${causal}`).toEqual({ ok: true });
      }
    }
  }
});

test('repeated units reuse pooled buffers and cached pipelines', async () => {
  const a = Array.from(randomMatrix(40, 24, 5));
  const b = Array.from(randomMatrix(24, 36, 6));
  const stats = await page.evaluate(async ([a, b]) => {
    const lab = await window.tabgridLab;
    const config = lab.candidates[0];
    await lab.matmul(a, b, { m: 40, k: 24, n: 36 }, config);
    const first = lab.stats();
    for (let i = 0; i < 3; i++) await lab.matmul(a, b, { m: 40, k: 24, n: 36 }, config);
    return { first, after: lab.stats() };
  }, [a, b] as const);
  expect(stats.first.buffers).toBeGreaterThan(0);
  expect(stats.after).toEqual(stats.first);
});

test('the autotuner measures once per device, then reuses its cached choice', async ({ browser }) => {
  const context = await browser.newContext(); // a fresh IndexedDB: nothing cached yet
  try {
    const fresh = await context.newPage();
    await fresh.goto(grid.base + '/selftest.html');
    const first = await fresh.evaluate(() => window.tabgridReady);
    if (!first.ok) throw new Error(first.reason);
    expect(first.tuning?.cached).toBe(false);
    expect(first.tuning?.gflops).toBeGreaterThan(0);
    await fresh.reload();
    const second = await fresh.evaluate(() => window.tabgridReady);
    if (!second.ok) throw new Error(second.reason);
    expect(second.tuning?.cached).toBe(true);
    expect(second.tuning?.summary).toBe(first.tuning!.summary.replace(/$/, ' (cached)'));
  } finally {
    await context.close();
  }
});
