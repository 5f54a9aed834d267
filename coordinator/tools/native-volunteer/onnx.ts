// ONNX in Node: onnxruntime-node sessions by model sha-256 (a stream of units loads a model once),
// on the CUDA execution provider where its libraries are installed and the CPU EP otherwise. Also
// the native volunteer's CPU backend: the page's matmul and attention graphs
// (coordinator/protocol/onnx-builder.ts) and training step graphs (web/onnx/train-step.ts), run here
// by onnxruntime-node's CPU EP instead of onnxruntime-web's wasm one.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as OrtNode from 'onnxruntime-node';
import { attentionMask, attentionModel, matmulModel } from '../../protocol/onnx-builder';
import type { Compression } from '../../protocol/train-loop';
import { stepGraphKey } from '../../../web/onnx/step-sessions';
import { graphTrainUnit, stepModelOf, type GraphUnitSpec } from '../../../web/onnx/train-step';

type Ort = typeof OrtNode;
type Session = OrtNode.InferenceSession;
export type NodeEp = 'cuda' | 'cpu';

export interface Feed {
  name: string;
  shape: readonly number[];
  data: Float32Array;
}

const MAX_MODELS = 4;

let ortLoad: Promise<Ort> | null = null;

/** onnxruntime-node, loaded on first use (a kit or machine without it still computes matmuls). */
export function loadOrt(): Promise<Ort> {
  ortLoad ??= import('onnxruntime-node').then((m) => ((m as { default?: Ort }).default ?? m) as Ort);
  ortLoad.catch(() => (ortLoad = null));
  return ortLoad;
}

/** Whether onnxruntime-node loads here; the reason when it does not. */
export async function ortProblem(): Promise<string | null> {
  try {
    await loadOrt();
    return null;
  } catch (err) {
    return `onnxruntime-node did not load: ${(err as Error).message.split('\n')[0]}`;
  }
}

/**
 * The CUDA EP is a separate library that onnxruntime-node's install script downloads (this repo's
 * .npmrc skips it); where it lies beside the binding, sessions try CUDA first.
 */
function cudaInstalled(): boolean {
  try {
    const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    return existsSync(join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so'));
  } catch {
    return false;
  }
}

/** Sessions by key, oldest released beyond MAX_MODELS. */
export class OrtSessions {
  private readonly bytes = new Map<string, Uint8Array>();
  private readonly sessions = new Map<string, Promise<{ session: Session; ep: NodeEp }>>();
  /** The EP of the last run, for the log. */
  lastEp: NodeEp | null = null;

  constructor(private readonly preferCuda = cudaInstalled()) {}

  has(key: string): boolean {
    return this.bytes.has(key);
  }

  add(key: string, model: Uint8Array) {
    this.bytes.delete(key);
    this.bytes.set(key, model);
    for (const old of this.bytes.keys()) {
      if (this.bytes.size <= MAX_MODELS) break;
      this.bytes.delete(old);
      void this.sessions.get(old)?.then((s) => s.session.release()).catch(() => undefined);
      this.sessions.delete(old);
    }
  }

  private session(key: string) {
    let s = this.sessions.get(key);
    if (!s) {
      const model = this.bytes.get(key);
      if (!model) throw new Error(`model ${key.slice(0, 12)}… is not loaded`);
      s = (async () => {
        const ort = await loadOrt();
        if (this.preferCuda) {
          try {
            return { session: await ort.InferenceSession.create(model, { executionProviders: ['cuda'], graphOptimizationLevel: 'all' }), ep: 'cuda' as const };
          } catch {
            // no usable GPU for CUDA here: the CPU EP
          }
        }
        return { session: await ort.InferenceSession.create(model, { executionProviders: ['cpu'], graphOptimizationLevel: 'all' }), ep: 'cpu' as const };
      })();
      s.catch(() => this.sessions.delete(key));
      this.sessions.set(key, s);
    }
    return s;
  }

  /** Runs a held model; the named outputs as float32, in order. */
  async run(key: string, feeds: Feed[], outputs: string[]): Promise<Float32Array[]> {
    const ort = await loadOrt();
    const { session, ep } = await this.session(key);
    const input: Record<string, OrtNode.Tensor> = {};
    for (const f of feeds) input[f.name] = new ort.Tensor('float32', f.data, f.shape as number[]);
    const result = await session.run(input, outputs);
    this.lastEp = ep;
    return outputs.map((name) => {
      const t = result[name];
      if (!t || t.type !== 'float32') throw new Error(`output '${name}' is missing or not float32`);
      return (t.data as Float32Array).slice();
    });
  }

  /** Runs a held model and concatenates its outputs (an onnx unit's result). */
  async runConcat(key: string, feeds: Feed[], outputs: string[]): Promise<Float32Array> {
    const outs = await this.run(key, feeds, outputs);
    const data = new Float32Array(outs.reduce((s, o) => s + o.length, 0));
    let at = 0;
    for (const o of outs) {
      data.set(o, at);
      at += o.length;
    }
    return data;
  }
}

/**
 * The CPU backend's kernels: the page's graphs for matmul and attention, and its training step
 * graphs (web/onnx/train-step.ts, both families), on onnxruntime-node.
 */
export class OrtKernels {
  /** Step graphs by model and optimizer, apart from the two kernels so that they never evict them. */
  private readonly steps = new OrtSessions(false);

  constructor(private readonly sessions = new OrtSessions(false)) {
    sessions.add('@matmul', matmulModel());
    sessions.add('@attention', attentionModel());
  }

  async matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Promise<Float32Array> {
    if (a.length !== m * k || b.length !== k * n) throw new Error(`matmul inputs do not match ${m}×${k}·${k}×${n}`);
    const feeds = [
      { name: 'a', shape: [m, k], data: a },
      { name: 'b', shape: [k, n], data: b },
    ];
    return (await this.sessions.run('@matmul', feeds, ['c']))[0];
  }

  async attention(q: Float32Array, k: Float32Array, v: Float32Array, p: { rows: number; q0: number; seq: number; d: number; causal: boolean }): Promise<Float32Array> {
    if (q.length !== p.rows * p.d || k.length !== p.seq * p.d || v.length !== p.seq * p.d) {
      throw new Error(`attention inputs do not match rows ${p.rows}, seq ${p.seq}, d ${p.d}`);
    }
    const feeds = [
      { name: 'q', shape: [p.rows, p.d], data: q },
      { name: 'k', shape: [p.seq, p.d], data: k },
      { name: 'v', shape: [p.seq, p.d], data: v },
      { name: 'scale', shape: [], data: Float32Array.of(1 / Math.sqrt(p.d)) },
      { name: 'mask', shape: [p.rows, p.seq], data: attentionMask(p.rows, p.seq, p.q0, p.causal) },
    ];
    return (await this.sessions.run('@attention', feeds, ['out']))[0];
  }

  /** A train unit of either family: H runs of the step graph, as the page's CPU backend trains (web/cpu/train.ts). */
  async train(spec: GraphUnitSpec, compress: Compression, params: Float32Array, x: Float32Array, y: Float32Array | null): Promise<Float32Array> {
    const key = stepGraphKey(spec);
    if (!this.steps.has(key)) this.steps.add(key, stepModelOf(spec));
    return graphTrainUnit((feeds, outputs) => this.steps.run(key, feeds, outputs), spec, compress, params, x, y);
  }
}
