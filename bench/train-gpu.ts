// The MLP's WGSL training loop (web/gpu/train-mlp.ts) through Dawn in Node, against the TS loop:
//   1. divergence: relative L2 distance of Δ after H = 1, 4, 16, 64, 256 steps between the GPU
//      (float32, float32 sums), the CPU replica (protocol/train-mlp.ts in float32 with float64 dot
//      products: what the CPU backend and the coordinator's reference run) and float64 throughout,
//      for SGD and AdamW on 2- and 3-layer MLPs, the worst of three seeds; next to the replica
//      tolerance deltaRtol(H);
//   2. speed: one unit on the GPU loop vs the TS loop (wall ms, GFLOP/s of the inner steps).
// Without a GPU it runs on SwiftShader (a CPU Vulkan: slow, report it as such).
//   npm run bench:train-gpu -- [--swiftshader] [--quick]
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { swiftshader: { type: 'boolean', default: false }, quick: { type: 'boolean', default: false } } });

await import('../coordinator/tools/native-volunteer/raw-loader.js');
const { deltaRtol } = await import('../coordinator/jobs/train.js');
const { initMlp, mlpModel } = await import('../coordinator/protocol/train-mlp.js');
const { trainInner } = await import('../coordinator/protocol/train-loop.js');
const { mixSeed } = await import('../coordinator/protocol/train-model.js');
const { blobsTask, relativeL2 } = await import('../coordinator/testing/train-task.js');
const { installWebGpu, swiftShaderAvailable, useSwiftShader } = await import('../coordinator/tools/native-volunteer/webgpu.js');
const { openGpu } = await import('../web/gpu/device.js');
const { gpuTrainInner } = await import('../web/gpu/train-mlp.js');
type MlpInnerSpec = import('../web/gpu/train-mlp.js').MlpInnerSpec;
/** The TS loop's spec for the GPU loop's. */
const tsSpec = (spec: MlpInnerSpec) => ({ ...spec, model: mlpModel(spec.layers) });

if (values.swiftshader || !process.env.VK_ICD_FILENAMES) {
  if (swiftShaderAvailable()) useSwiftShader();
}
await installWebGpu();
const gpu = await openGpu();
const device = gpu.device;

const sig = (v: number) => +v.toPrecision(2);
const base = { weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
// The calibration's models and learning rates (jobs/train.test.ts), plus a narrower 3-layer net:
// rates that train. Each from three initialisations (and batch orders); the worst is kept.
const configs = [
  { layers: [16, 32, 4], optimizer: { type: 'sgd' as const, lr: 0.1, ...base } },
  { layers: [16, 32, 4], optimizer: { type: 'adamw' as const, lr: 0.01, ...base } },
  { layers: [64, 128, 64, 10], optimizer: { type: 'sgd' as const, lr: 0.1, ...base } },
  { layers: [64, 128, 64, 10], optimizer: { type: 'adamw' as const, lr: 0.01, ...base } },
  { layers: [32, 64, 32, 4], optimizer: { type: 'adamw' as const, lr: 0.01, ...base } },
];
const Hs = values.quick ? [1, 4, 16] : [1, 4, 16, 64, 256];
const seeds = values.quick ? [1] : [1, 2, 3];

const divergence = [];
for (const c of configs) {
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
      process.stderr.write('.');
    }
    divergence.push({
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

const speed = [];
const units = values.quick
  ? [{ layers: [64, 128, 64, 10], batchSize: 64, steps: 8 }]
  : [
      { layers: [16, 64, 4], batchSize: 64, steps: 50 },
      { layers: [64, 128, 64, 10], batchSize: 64, steps: 16 },
      { layers: [784, 256, 10], batchSize: 64, steps: 8 },
    ];
for (const u of units) {
  const task = blobsTask(1024, u.layers[0], u.layers.at(-1)!, 5);
  const p0 = initMlp(u.layers, 2);
  const spec: MlpInnerSpec = { ...u, seed: 9, optimizer: { type: 'adamw', lr: 0.003, ...base } };
  await gpuTrainInner(device, spec, p0, task.x, task.y); // pipelines compiled, buffers pooled
  const gpuMs = await best(3, () => gpuTrainInner(device, spec, p0, task.x, task.y));
  const tsMs = await best(3, () => trainInner(Float32Array, tsSpec(spec), p0, task.x, task.y));
  const flops = mlpModel(u.layers).stepFlops(u.batchSize) * u.steps;
  speed.push({
    layers: u.layers.join('-'),
    batchSize: u.batchSize,
    H: u.steps,
    gpuMs: +gpuMs.toFixed(1),
    tsMs: +tsMs.toFixed(1),
    gpuGflops: +(flops / gpuMs / 1e6).toFixed(3),
    tsGflops: +(flops / tsMs / 1e6).toFixed(3),
    gpuOverTs: +(tsMs / gpuMs).toFixed(2),
  });
  process.stderr.write('.');
}
process.stderr.write('\n');

console.log(
  JSON.stringify(
    {
      bench: 'train-gpu',
      adapter: gpu.info.adapter,
      isFallbackAdapter: gpu.info.isFallbackAdapter,
      rows: 512,
      batchSize: 32,
      seeds: seeds.length,
      divergence,
      worstToleranceOverGpuVsCpu: Math.min(...divergence.map((d) => d.toleranceOverGpuVsCpu)),
      speed,
    },
    null,
    2,
  ),
);
device.destroy();
process.exit(0);
