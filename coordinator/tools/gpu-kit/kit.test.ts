// Issue 22: the GPU kit's pieces that run here. The bench times every matmul candidate and both
// attention variants through Dawn on SwiftShader, checks their outputs and reports the autotuner's
// pick; the bundle the kit ships builds and starts without the repo's node_modules. (`npm run kit:gpu`
// itself compresses ~170 MiB of binaries — minutes — and is run by hand; see README.)
import { spawnSync } from 'node:child_process';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { makeTempDir, removeDir } from '../../testing/helpers';
import { SWIFTSHADER_ICD, swiftShaderAvailable, useSwiftShader } from '../native-volunteer/webgpu';
import { runBench } from './bench';
import { bundleNative } from './build-kit';
import { peakFor } from './peaks';

const dir = makeTempDir('tabgrid-kit-');
afterAll(() => removeDir(dir));

test('peak table: adapters by name', () => {
  expect(peakFor('nvidia hopper  NVIDIA H100 80GB HBM3 (driver 550)')?.tflops).toBe(66.9);
  expect(peakFor('NVIDIA H100 PCIe')?.tflops).toBe(51.2);
  expect(peakFor('NVIDIA L4')?.tflops).toBe(30.3);
  expect(peakFor('NVIDIA L40S')?.tflops).toBe(91.6);
  expect(peakFor('google swiftshader swiftshader-device-subzero- SwiftShader driver 5.0.0')).toBeNull();
});

const bundle = join(dir, 'app', 'tabgrid-native.mjs');
let bundled: Promise<void> | null = null;
/** The kit's bundle, built once for the tests that run it, beside the repo's native packages (the kit's app/node_modules). */
const built = () =>
  (bundled ??= bundleNative(bundle).then(() => symlinkSync(join(process.cwd(), 'node_modules'), join(dir, 'app', 'node_modules'))));
const runBundle = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
  spawnSync(process.execPath, [bundle, ...args], { encoding: 'utf8', cwd: dir, env });

test('the kit bundle builds with the WGSL inlined and starts on its own', async () => {
  await built();
  const code = readFileSync(bundle, 'utf8');
  // The shader files' own text (not a port): a line of shaders/attention.wgsl is in the bundle.
  expect(code).toContain('var<workgroup> Ks: array<vec4f, BKV * D4>;');
  const run = (...args: string[]) => runBundle(args);
  const bench = run('--help');
  expect(bench.status, bench.stderr).toBe(0);
  expect(bench.stdout).toContain('--quick');
  const train = run('train', '--help');
  expect(train.status, train.stderr).toBe(0);
  expect(train.stdout).toContain('training loop');
  const volunteer = run('volunteer', '--help');
  expect(volunteer.status, volunteer.stderr).toBe(0);
  expect(volunteer.stdout).toContain('--coordinator');
}, 60_000);

describe.skipIf(!swiftShaderAvailable())('bench on SwiftShader', () => {
  test("the kit's training bench: the WGSL loop's Δ within the replica tolerance of the CPU's, every H", async () => {
    await built();
    const out = runBundle(['train', '--quick'], { ...process.env, VK_ICD_FILENAMES: SWIFTSHADER_ICD });
    expect(out.status, out.stderr).toBe(0);
    const report = JSON.parse(out.stdout) as { isFallbackAdapter: boolean; divergence: { H: number; gpuVsCpuF32: number; tolerance: number }[]; speed: { gpuMs: number }[] };
    expect(report.isFallbackAdapter).toBe(true);
    expect(report.divergence.map((d) => d.H)).toEqual(Array(5).fill([1, 4, 16]).flat());
    for (const d of report.divergence) {
      expect(d.gpuVsCpuF32).toBeGreaterThan(0); // float32 sums in another order: never bit-identical
      expect(d.gpuVsCpuF32).toBeLessThan(d.tolerance);
    }
    expect(report.speed[0].gpuMs).toBeGreaterThan(0);
  }, 120_000);

  test('times every candidate, checks their outputs, reports the pick and % of a given peak', async () => {
    useSwiftShader();
    const report = await runBench(
      { mode: 'quick', matmul: [64, 128], attention: [{ heads: 1, seq: 64, d: 64 }], runs: 1, runSeconds: 0, peakTflops: 0.001, torch: true },
      { log: () => {} },
    );
    expect(report.adapter.isFallbackAdapter).toBe(true);
    expect(report.peak).toEqual({ tflops: 0.001, source: '--peak' });
    for (const row of report.matmul) {
      expect(row.candidates.length).toBeGreaterThanOrEqual(6);
      for (const c of row.candidates) {
        expect(c.error).toBeUndefined();
        expect(c.gflops).toBeGreaterThan(0);
        expect(c.diff).toBeLessThan(1e-5);
        expect(c.percentOfPeak).toBeCloseTo((100 * c.gflops) / 1, 0);
      }
      expect(row.pick?.name).toBe(report.autotuner.matmul);
    }
    expect(report.attention[0].candidates.map((c) => c.name)).toEqual(['tiled', 'direct']);
    for (const c of report.attention[0].candidates) expect(c.diff).toBeLessThan(1e-5);
    expect(report.attention[0].pick?.name).toBe(report.autotuner.attention);
    // python3 runs torch_bench.py: torch's figures where it is installed, else why not.
    if (report.torch.available) expect(report.matmul[0].torch?.gflops).toBeGreaterThan(0);
    else expect(report.torch.reason).toMatch(/torch/);
    expect(report.goals).toEqual({ matmul4096PercentOfPeak: null, matmul4096OverTorch: null, attention2048OverTorch: null });
  }, 120_000);
});
