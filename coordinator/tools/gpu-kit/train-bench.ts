// The MLP's WGSL training loop (web/gpu/train-mlp.ts) through Dawn, against the TS loop — in the GPU
// kit (`run.sh train`) and from the repo (`npm run bench:train-gpu`):
//   1. divergence: relative L2 distance of Δ after H = 1, 4, 16, 64, 256 steps between the GPU
//      (float32, float32 sums), the CPU replica (protocol/train-loop.ts in float32 with float64 dot
//      products: what the CPU backend and the coordinator's reference run) and float64 throughout,
//      for SGD and AdamW on 2- and 3-layer MLPs, the worst of three seeds; next to the replica
//      tolerance deltaRtol(H) — the margin that decides whether GPU and CPU replicas of one unit agree;
//   2. speed: one unit on the GPU loop vs the TS loop (wall ms, GFLOP/s of the inner steps).
// Without a GPU it runs on SwiftShader (a CPU Vulkan: slow, report it as such).
import { parseArgs } from 'node:util';
import { deltaRtol } from '../../jobs/train';
import { trainInner } from '../../protocol/train-loop';
import { initMlp, mlpModel } from '../../protocol/train-mlp';
import { mixSeed } from '../../protocol/train-model';
import { blobsTask, relativeL2 } from '../../testing/train-task';
import { openGpu } from '../../../web/gpu/device';
import { gpuTrainInner, type MlpInnerSpec } from '../../../web/gpu/train-mlp';
import { installWebGpu, useSwiftShader } from '../native-volunteer/webgpu';

export const TRAIN_BENCH_USAGE = `usage: run.sh train [--quick] [--swiftshader]     (npm run bench:train-gpu -- …)
  the WGSL training loop vs the CPU's: replica divergence next to the tolerance, and speed
  --quick         H 1, 4, 16 and one seed; one small unit timed
  --swiftshader   use SwiftShader's Vulkan driver (no GPU) unless VK_ICD_FILENAMES is set`;

/** The TS loop's spec for the GPU loop's. */
const tsSpec = (spec: MlpInnerSpec) => ({ ...spec, model: mlpModel(spec.layers) });
const sig = (v: number) => +v.toPrecision(2);
const base = { weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
// The calibration's models and learning rates (jobs/train.test.ts), plus a narrower 3-layer net:
// rates that train. Each from three initialisations (and batch orders); the worst is kept.
const CONFIGS = [
  { layers: [16, 32, 4], optimizer: { type: 'sgd' as const, lr: 0.1, ...base } },
  { layers: [16, 32, 4], optimizer: { type: 'adamw' as const, lr: 0.01, ...base } },
  { layers: [64, 128, 64, 10], optimizer: { type: 'sgd' as const, lr: 0.1, ...base } },
  { layers: [64, 128, 64, 10], optimizer: { type: 'adamw' as const, lr: 0.01, ...base } },
  { layers: [32, 64, 32, 4], optimizer: { type: 'adamw' as const, lr: 0.01, ...base } },
];

/** Best of `reps` wall times of fn, in ms. */
async function best(reps: number, fn: () => unknown): Promise<number> {
  let b = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    b = Math.min(b, performance.now() - t0);
  }
  return b;
}

async function divergenceRows(device: GPUDevice, quick: boolean, tick: () => void) {
  const Hs = quick ? [1, 4, 16] : [1, 4, 16, 64, 256];
  const seeds = quick ? [1] : [1, 2, 3];
  const rows = [];
  for (const c of CONFIGS) {
    const task = blobsTask(512, c.layers[0], c.layers.at(-1)!, 7);
    for (const H of Hs) {
      const worst = { gpuVsCpuF32: 0, gpuVsF64: 0, cpuF32VsF64: 0, trainLossGpuVsCpu: 0 };
      for (const seed of seeds) {
        const p0 = initMlp(c.layers, seed);
        const spec: MlpInnerSpec = { layers: c.layers, steps: H, batchSize: 32, seed: mixSeed(seed, H), optimizer: c.optimizer };
        const g = await gpuTrainInner(device, spec, p0, task.x, task.y);
        const cpu32 = trainInner(Float32Array, tsSpec(spec), p0, task.x, task.y);
        const f64 = trainInner(Float64Array, tsSpec(spec), Float64Array.from(p0), Float64Array.from(task.x), Float64Array.from(task.y));
        worst.gpuVsCpuF32 = Math.max(worst.gpuVsCpuF32, relativeL2(g.delta, cpu32.delta));
        worst.gpuVsF64 = Math.max(worst.gpuVsF64, relativeL2(g.delta, f64.delta));
        worst.cpuF32VsF64 = Math.max(worst.cpuF32VsF64, relativeL2(cpu32.delta, f64.delta));
        worst.trainLossGpuVsCpu = Math.max(worst.trainLossGpuVsCpu, Math.abs(g.trainLoss - cpu32.trainLoss) / cpu32.trainLoss);
        tick();
      }
      rows.push({
        layers: c.layers.join('-'),
        optimizer: `${c.optimizer.type} lr ${c.optimizer.lr}`,
        H,
        gpuVsCpuF32: sig(worst.gpuVsCpuF32),
        gpuVsF64: sig(worst.gpuVsF64),
        cpuF32VsF64: sig(worst.cpuF32VsF64),
        trainLossGpuVsCpu: sig(worst.trainLossGpuVsCpu),
        tolerance: sig(deltaRtol(H)),
        toleranceOverGpuVsCpu: Math.round(deltaRtol(H) / worst.gpuVsCpuF32),
      });
    }
  }
  return { seeds: seeds.length, rows };
}

async function speedRows(device: GPUDevice, quick: boolean, tick: () => void) {
  const units = quick
    ? [{ layers: [64, 128, 64, 10], batchSize: 64, steps: 8 }]
    : [
        { layers: [16, 64, 4], batchSize: 64, steps: 50 },
        { layers: [64, 128, 64, 10], batchSize: 64, steps: 16 },
        { layers: [784, 256, 10], batchSize: 64, steps: 8 },
      ];
  const rows = [];
  for (const u of units) {
    const task = blobsTask(1024, u.layers[0], u.layers.at(-1)!, 5);
    const p0 = initMlp(u.layers, 2);
    const spec: MlpInnerSpec = { ...u, seed: 9, optimizer: { type: 'adamw', lr: 0.003, ...base } };
    await gpuTrainInner(device, spec, p0, task.x, task.y); // pipelines compiled, buffers pooled
    const gpuMs = await best(3, () => gpuTrainInner(device, spec, p0, task.x, task.y));
    const tsMs = await best(3, () => trainInner(Float32Array, tsSpec(spec), p0, task.x, task.y));
    const flops = mlpModel(u.layers).stepFlops(u.batchSize) * u.steps;
    rows.push({
      layers: u.layers.join('-'),
      batchSize: u.batchSize,
      H: u.steps,
      gpuMs: +gpuMs.toFixed(1),
      tsMs: +tsMs.toFixed(1),
      gpuGflops: +(flops / gpuMs / 1e6).toFixed(3),
      tsGflops: +(flops / tsMs / 1e6).toFixed(3),
      gpuOverTs: +(tsMs / gpuMs).toFixed(2),
    });
    tick();
  }
  return rows;
}

/** Both measurements on this machine's adapter; progress dots on stderr. */
export async function runTrainBench(opts: { quick: boolean }) {
  const started = performance.now();
  await installWebGpu();
  const gpu = await openGpu();
  const tick = () => process.stderr.write('.');
  try {
    const divergence = await divergenceRows(gpu.device, opts.quick, tick);
    const speed = await speedRows(gpu.device, opts.quick, tick);
    process.stderr.write('\n');
    return {
      bench: 'train-gpu',
      mode: opts.quick ? 'quick' : 'full',
      adapter: gpu.info.adapter,
      isFallbackAdapter: gpu.info.isFallbackAdapter,
      rows: 512,
      batchSize: 32,
      seeds: divergence.seeds,
      divergence: divergence.rows,
      worstToleranceOverGpuVsCpu: Math.min(...divergence.rows.map((d) => d.toleranceOverGpuVsCpu)),
      speed,
      seconds: +((performance.now() - started) / 1000).toFixed(1),
    };
  } finally {
    gpu.device.destroy();
  }
}

export async function trainBenchCli(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      swiftshader: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return console.log(TRAIN_BENCH_USAGE);
  if (values.swiftshader) useSwiftShader();
  console.log(JSON.stringify(await runTrainBench({ quick: values.quick }), null, 2));
}
