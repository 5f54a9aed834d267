// web/gpu's kernels tested without a browser: every matmul candidate the autotuner knows (the
// double-buffered GPU ones included) and both attention variants, on awkward shapes, through Dawn on
// SwiftShader, against the float64 CPU references. (e2e/kernels.spec.ts checks the same in Chromium.)
import { beforeAll, describe, expect, test } from 'vitest';
import { attentionReference } from '../../jobs/attention';
import { matmulReference } from '../../jobs/matmul';
import { randomMatrix } from '../../testing/helpers';
import { maxRelativeError } from '../../testing/relative-error';
import { ATTENTION_VARIANTS, gpuAttention } from '../../../web/gpu/attention';
import { openGpu } from '../../../web/gpu/device';
import { describeConfig, gpuMatmul, matmulCandidates } from '../../../web/gpu/matmul';
import { installWebGpu, swiftShaderAvailable, useSwiftShader } from './webgpu';

describe.skipIf(!swiftShaderAvailable())('web/gpu kernels through Dawn (SwiftShader)', () => {
  let device: GPUDevice;
  beforeAll(async () => {
    useSwiftShader();
    await installWebGpu();
    device = (await openGpu()).device;
  });

  test('every matmul candidate computes correct products on the scalar and vec4 paths', async () => {
    const candidates = matmulCandidates(device);
    expect(candidates.some((c) => c.doubleBuffered)).toBe(true);
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [17, 33, 65],
      [129, 12, 68], // vec4; m and n just past 128/64 tiles; k less than one 16-deep slice
      [130, 44, 260], // vec4; k 11 vec4s: a partial last slice of every BK, two stages swapped an odd number of times
      [5, 76, 516],
    ];
    for (const config of candidates) {
      for (const [m, k, n] of shapes) {
        const a = randomMatrix(m, k, 1 + m);
        const b = randomMatrix(k, n, 2 + n);
        const got = await gpuMatmul(device, a, b, { m, k, n }, config);
        expect(maxRelativeError(got, matmulReference(a, b, m, k, n)), `${describeConfig(config)} on ${m}×${k}·${k}×${n}`).toBeLessThan(1e-5);
      }
    }
  }, 120_000);

  test('both attention variants match the reference (causal and not, d 64 and 128)', async () => {
    const cases: [number, number, number, 64 | 128, boolean][] = [
      [37, 37, 0, 64, true],
      [20, 70, 50, 64, true],
      [65, 65, 0, 128, false],
    ];
    for (const [rows, seq, q0, d, causal] of cases) {
      const q = randomMatrix(rows, d, rows + seq);
      const k = randomMatrix(seq, d, seq + d);
      const v = randomMatrix(seq, d, seq * 3);
      const expected = attentionReference(q, k, v, { rows, seq, q0, d, causal });
      for (const variant of ATTENTION_VARIANTS) {
        const got = await gpuAttention(device, q, k, v, { heads: 1, rows, q0, seq, d, causal }, variant);
        expect(maxRelativeError(got, expected), `${variant} ${rows}×${seq} q0 ${q0} d ${d}${causal ? ' causal' : ''}`).toBeLessThan(1e-5);
      }
    }
  }, 60_000);
});
