// The transformer's training step graph (web/onnx/train-step.ts) on onnxruntime-web in the page, one
// unit at a time: on the webgpu EP with θ and the moments held on the GPU between steps (what the
// WebGPU backend runs, web/onnx/webgpu-train.ts), on the webgpu EP with plain CPU tensors (each
// step's state downloaded and uploaded again), on the wasm EP (the CPU backend), and the TS loop
// (the coordinator's reference). A timed run is a whole unit — H steps, the check loss, Δ encoded;
// the first unit of a session is reported apart (shader compilation), the timed ones taken in turns.
// Each contender's Δ is compared
// with the TS loop's (relative L2). bench/train-webgpu.ts drives it through window.runTrainBench.
import { decodeTrainOutput, runTrainUnit, trainModelOf, type InnerOptimizer } from '../../coordinator/protocol/train-loop';
import { initTransformer, type TransformerSpec } from '../../coordinator/protocol/train-transformer';
import { markovTask, markovTokens } from '../../coordinator/testing/lm-task';
import { relativeL2 } from '../../coordinator/testing/train-task';
import { createSession, runSession, withGpuErrorCheck, type Session } from '../../web/onnx/runtime';
import { graphTrainUnit, stepModelOf, type GraphUnitSpec } from '../../web/onnx/train-step';
import { heldRunner } from '../../web/onnx/webgpu-train';

export interface TrainBenchCase extends TransformerSpec {
  batch: number;
  steps: number;
}

const optimizer: InnerOptimizer = { type: 'adamw', lr: 0.015, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };

type Contender = 'webgpu-held-on-gpu' | 'webgpu-cpu-tensors' | 'wasm' | 'ts-loop';

async function contender(name: Contender, spec: GraphUnitSpec, params: Float32Array, tokens: Float32Array): Promise<{ createMs: number; unit: () => Promise<Float32Array> }> {
  if (name === 'ts-loop') return { createMs: 0, unit: async () => runTrainUnit({ ...spec, model: trainModelOf(spec.model) }, 'none', params, tokens, null) };
  const t0 = performance.now();
  const ep = name === 'wasm' ? 'wasm' : 'webgpu';
  const session: Session = await createSession(stepModelOf(spec), ep, { outputsOnGpu: name === 'webgpu-held-on-gpu' });
  const createMs = performance.now() - t0;
  if (ep === 'wasm') return { createMs, unit: () => graphTrainUnit((feeds, outputs) => runSession(session, feeds, outputs), spec, 'none', params, tokens, null) };
  return { createMs, unit: () => withGpuErrorCheck(() => graphTrainUnit(heldRunner(session), spec, 'none', params, tokens, null)) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function runTrainBench({ cases, runs }: { cases: TrainBenchCase[]; runs: number }) {
  const out = [];
  for (const c of cases) {
    const { batch, steps, ...s } = c;
    const spec: GraphUnitSpec = { model: { type: 'transformer', ...s }, optimizer, steps, batchSize: batch, seed: 1 };
    const tokens = markovTokens(markovTask(s.vocab), Math.max(4096, 4 * batch * (s.context + 1)), 1);
    const params = initTransformer(s, 3);
    const model = trainModelOf(spec.model);
    const rows: Record<string, unknown>[] = [];
    const ready: { name: Contender; unit: () => Promise<Float32Array>; row: Record<string, unknown>; times: number[] }[] = [];
    let reference: Float32Array | null = null;
    for (const name of ['ts-loop', 'wasm', 'webgpu-cpu-tensors', 'webgpu-held-on-gpu'] as const) {
      try {
        const { createMs, unit } = await contender(name, spec, params, tokens);
        const t0 = performance.now();
        const first = await unit();
        const delta = decodeTrainOutput(model, 'none', first)!.delta;
        reference ??= delta;
        const row = { contender: name, createMs: Math.round(createMs), firstUnitMs: Math.round(performance.now() - t0), deltaVsTsLoop: relativeL2(delta, reference) };
        rows.push(row);
        ready.push({ name, unit, row, times: [] });
      } catch (err) {
        rows.push({ contender: name, error: (err as Error).message.slice(0, 300) });
      }
    }
    // Timed units taken in turns, so a load that drifts (a shared machine) weighs on every contender alike.
    for (let i = 0; i < runs; i++) {
      for (const r of ready) {
        const t0 = performance.now();
        await r.unit();
        r.times.push(performance.now() - t0);
      }
    }
    for (const r of ready) Object.assign(r.row, { medianUnitMs: Math.round(median(r.times)), unitMs: r.times.map(Math.round) });
    out.push({ case: c, contenders: rows });
  }
  const adapter = await navigator.gpu?.requestAdapter();
  return { adapter: adapter ? { ...adapter.info, isFallbackAdapter: (adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter } : null, cases: out };
}

declare global {
  interface Window {
    runTrainBench: typeof runTrainBench;
  }
}
window.runTrainBench = runTrainBench;
