// A train unit's inner step as one ONNX graph (web/onnx/train-step.ts) against the TypeScript loop
// (protocol/train-loop.ts, what the CPU backend ran before): one unit's wall time on each, on
// onnxruntime-web's wasm build in Node (the page's CPU backend: same wasm, one thread, as a page
// without cross-origin isolation runs it) and onnxruntime-node (the native volunteer's CPU EP, one
// intra-op thread), with each graph unit's relative L2 distance of Δ from the TS loop's next to the
// replica tolerance; the MLP's units, or with --model lm the transformer LM's. Prints one JSON
// document.   npm run bench:train-onnx [-- --quick] [-- --model lm]
import { parseArgs } from 'node:util';
import * as ortNode from 'onnxruntime-node';
import { deltaRtol } from '../coordinator/jobs/train.js';
import { runTrainUnit, trainModelOf, type InnerOptimizer, type ModelSpec } from '../coordinator/protocol/train-loop.js';
import { markovTask, markovTokens } from '../coordinator/testing/lm-task.js';
import { ortStepRunner } from '../coordinator/testing/ort-step-runner.js';
import { blobsTask, relativeL2 } from '../coordinator/testing/train-task.js';
import { graphTrainUnit, stepModelOf, type GraphUnitSpec } from '../web/onnx/train-step.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, model: { type: 'string', default: 'mlp' }, only: { type: 'string' } } });
const { quick, model: family, only } = args;
const ortWeb = (await import('onnxruntime-web/wasm')) as unknown as typeof ortNode & { env: { wasm: { numThreads: number } } };
ortWeb.env.wasm.numThreads = 1;

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
interface Unit {
  model: ModelSpec;
  optimizer: InnerOptimizer;
  batchSize: number;
  steps: number;
  /** A slice's rows (MLP) or tokens (LM). */
  rows: number;
}
const mlp = (layers: number[]): ModelSpec => ({ type: 'mlp', layers });
const lm = (vocab: number, context: number, layers: number, dModel: number, heads: number): ModelSpec => ({ type: 'transformer', vocab, context, layers, dModel, heads });
const units: Unit[] =
  family === 'lm'
    ? [
        // bench:train --model lm's unit shape (8 symbols, 16-token windows, one block, D 64), H 8.
        { model: lm(8, 16, 1, 64, 2), optimizer: adamw, batchSize: 64, steps: 8, rows: 4096 },
        // A character-level LM: 65 symbols, 128-token windows, two blocks of D 64.
        { model: lm(65, 128, 2, 64, 4), optimizer: adamw, batchSize: 8, steps: 8, rows: 4096 },
        { model: lm(65, 128, 2, 64, 4), optimizer: sgd, batchSize: 8, steps: 8, rows: 4096 },
      ]
    : [
        { model: mlp([784, 256, 10]), optimizer: adamw, batchSize: 64, steps: 8, rows: 1024 },
        { model: mlp([784, 256, 10]), optimizer: sgd, batchSize: 64, steps: 8, rows: 1024 },
        { model: mlp([64, 128, 64, 10]), optimizer: adamw, batchSize: 64, steps: 8, rows: 1024 },
        { model: mlp([64, 128, 64, 10]), optimizer: adamw, batchSize: 32, steps: 64, rows: 1024 },
      ];
const shapeOf = (m: ModelSpec) => (m.type === 'mlp' ? m.layers.join('-') : `V${m.vocab} T${m.context} L${m.layers} D${m.dModel} H${m.heads}`);
/** The unit's data: blobs to classify, or a Markov chain's tokens. */
function dataOf(u: Unit): { x: Float32Array; y: Float32Array | null } {
  if (u.model.type === 'mlp') return blobsTask(u.rows, u.model.layers[0], u.model.layers.at(-1)!, 7);
  return { x: markovTokens(markovTask(u.model.vocab), u.rows, 7), y: null };
}
// The TS loop of a transformer unit takes seconds: fewer repetitions.
const repsOf = (u: Unit) => (quick ? 1 : u.model.type === 'mlp' ? 5 : 2);
const results = [];
for (const u of units.filter((u) => !only || shapeOf(u.model) === only)) {
  const { x, y } = dataOf(u);
  const model = trainModelOf(u.model);
  const params = model.init(1);
  const spec: GraphUnitSpec = { model: u.model, optimizer: u.optimizer, steps: u.steps, batchSize: u.batchSize, seed: 5 };
  const P = model.paramCount;
  const flops = model.stepFlops(Math.min(u.batchSize, model.examples(u.rows))) * u.steps;
  const reps = repsOf(u);
  const ts = await time(reps, () => runTrainUnit({ ...spec, model }, 'none', params, x, y));
  const graph = stepModelOf(spec);
  const row = (name: string, r: { ms: number; out: Float32Array }) => ({
    trainer: name,
    ms: +r.ms.toFixed(1),
    gflops: +(flops / r.ms / 1e6).toFixed(2),
    speedup: +(ts.ms / r.ms).toFixed(1),
    deltaRelL2: r.out === ts.out ? 0 : +relativeL2(r.out, ts.out, P).toExponential(1),
  });
  const webRun = await ortStepRunner(ortWeb, graph, { graphOptimizationLevel: 'all' });
  const nodeRun = await ortStepRunner(ortNode, graph, { graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1 });
  const web = await time(reps, () => graphTrainUnit(webRun, spec, 'none', params, x, y));
  const node = await time(reps, () => graphTrainUnit(nodeRun, spec, 'none', params, x, y));
  results.push({
    unit: `${shapeOf(u.model)} ${u.optimizer.type} batch ${u.batchSize} H ${u.steps}`,
    params: P,
    tolerance: deltaRtol(u.steps),
    trainers: [row('ts-loop', ts), row('graph, onnxruntime-web wasm (1 thread)', web), row('graph, onnxruntime-node (1 thread)', node)],
  });
}
console.log(JSON.stringify({ bench: 'train-onnx', model: family, date: new Date().toISOString(), node: process.version, results }, null, 2));
