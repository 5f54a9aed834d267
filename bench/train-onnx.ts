// The MLP's inner step as one ONNX graph (web/onnx/train-step.ts) against the TypeScript loop
// (protocol/train-loop.ts, what the CPU backend ran before): one unit's wall time on each, on
// onnxruntime-web's wasm build in Node (the page's CPU backend: same wasm, one thread, as a page
// without cross-origin isolation runs it) and onnxruntime-node (the native volunteer's CPU EP, one
// intra-op thread), with each graph unit's relative L2 distance of Δ from the TS loop's next to the
// replica tolerance. Prints one JSON document.   npm run bench:train-onnx [-- --quick]
import * as ortNode from 'onnxruntime-node';
import { deltaRtol } from '../coordinator/jobs/train.js';
import { runTrainUnit, type InnerOptimizer } from '../coordinator/protocol/train-loop.js';
import { initMlp, mlpModel } from '../coordinator/protocol/train-mlp.js';
import { blobsTask, relativeL2 } from '../coordinator/testing/train-task.js';
import { graphTrainUnit, mlpStepModel, type MlpGraphSpec, type RunStepGraph } from '../web/onnx/train-step.js';

type OrtLike = typeof ortNode;
const quick = process.argv.includes('--quick');
const ortWeb = (await import('onnxruntime-web/wasm')) as unknown as OrtLike & { env: { wasm: { numThreads: number } } };
ortWeb.env.wasm.numThreads = 1;

async function runner(ort: OrtLike, model: Uint8Array, options: Record<string, unknown>): Promise<RunStepGraph> {
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'all', ...options });
  return async (feeds, outputs) => {
    const result = await session.run(Object.fromEntries(feeds.map((f) => [f.name, new ort.Tensor('float32', f.data, [...f.shape])])), outputs);
    return outputs.map((name) => (result[name].data as Float32Array).slice());
  };
}

/** Best of `reps` wall times (ms) of fn, after one warm-up run; and its last result. */
async function time<T>(reps: number, fn: () => T | Promise<T>): Promise<{ ms: number; out: T }> {
  let out = await fn();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    out = await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return { ms: best, out };
}

const base = { weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
const adamw: InnerOptimizer = { type: 'adamw', lr: 0.01, ...base };
const sgd: InnerOptimizer = { type: 'sgd', lr: 0.1, ...base };
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
const units = [
  { layers: [784, 256, 10], optimizer: adamw, batchSize: 64, steps: 8, rows: 1024 },
  { layers: [784, 256, 10], optimizer: sgd, batchSize: 64, steps: 8, rows: 1024 },
  { layers: [64, 128, 64, 10], optimizer: adamw, batchSize: 64, steps: 8, rows: 1024 },
  { layers: [64, 128, 64, 10], optimizer: adamw, batchSize: 32, steps: 64, rows: 1024 },
];
const reps = quick ? 1 : 5;
const results = [];
for (const u of units.filter((u) => !only || u.layers.join("-") === only)) {
  const task = blobsTask(u.rows, u.layers[0], u.layers.at(-1)!, 7);
  const params = initMlp(u.layers, 1);
  const spec: MlpGraphSpec = { layers: u.layers, optimizer: u.optimizer, steps: u.steps, batchSize: u.batchSize, seed: 5 };
  const model = mlpModel(u.layers);
  const P = model.paramCount;
  const flops = model.stepFlops(Math.min(u.batchSize, u.rows)) * u.steps;
  const ts = await time(reps, () => runTrainUnit({ ...spec, model }, 'none', params, task.x, task.y));
  const graph = mlpStepModel(spec);
  const row = (name: string, r: { ms: number; out: Float32Array }) => ({
    trainer: name,
    ms: +r.ms.toFixed(1),
    gflops: +(flops / r.ms / 1e6).toFixed(2),
    speedup: +(ts.ms / r.ms).toFixed(1),
    deltaRelL2: r.out === ts.out ? 0 : +relativeL2(r.out, ts.out, P).toExponential(1),
  });
  const webRun = await runner(ortWeb, graph, {});
  const nodeRun = await runner(ortNode, graph, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const web = await time(reps, () => graphTrainUnit(webRun, spec, 'none', params, task.x, task.y));
  const node = await time(reps, () => graphTrainUnit(nodeRun, spec, 'none', params, task.x, task.y));
  results.push({
    unit: `${u.layers.join('-')} ${u.optimizer.type} batch ${u.batchSize} H ${u.steps}`,
    params: P,
    tolerance: deltaRtol(u.steps),
    trainers: [row('ts-loop', ts), row('graph, onnxruntime-web wasm (1 thread)', web), row('graph, onnxruntime-node (1 thread)', node)],
  });
}
console.log(JSON.stringify({ bench: 'train-onnx', date: new Date().toISOString(), node: process.version, results }, null, 2));
