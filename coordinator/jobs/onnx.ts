// Job kind `onnx`: a researcher's ONNX model run over a batch of inputs. The model is read at
// submission (inputs, outputs, shapes, size) so a job that cannot run is refused with a clear 400;
// work units are slices of the batch axis, each input slice its own content-addressed shard, and
// the model itself a shard every worker fetches once and caches by sha-256.
import { parseNpy, toNpy, NpyError, type Tensor } from '../protocol/npy.js';
import { inspectModel, OnnxModelError, type ModelInfo, type ModelTensor } from './onnx-model.js';
import { ONNX_LIMITS, ONNX_MODEL_INPUT, type OnnxJobSubmit, type OnnxParams, type OutputAgreement, type Tolerance } from '../protocol/index.js';
import type { ShardStore } from '../store/shards.js';
import type { JobRecord, WorkUnitRecord } from '../store/store.js';
import { compareWithin } from './compare.js';
import { JobInputError, type JobKind, type JobPlan, type PlannedWorkUnit } from './types.js';

/** Model outputs pass through many more roundings than one matmul: a looser default than matmul's. */
export const ONNX_DEFAULT_TOLERANCE: Tolerance = { atol: 1e-4, rtol: 1e-3 };
/** A unit aims at about this many (estimated) FLOPs: a few seconds on a slow worker. */
const TARGET_UNIT_FLOPS = 2 ** 30;
const MAX_WORK_UNITS = 100_000;

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const fmtDims = (dims: (number | null)[]) => `[${dims.map((d) => (d === null ? '?' : d)).join(', ')}]`;
const product = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

/** Reads and checks a model shard: the size limit first, then the protobuf. */
export function readModel(bytes: Uint8Array): ModelInfo {
  if (bytes.length > ONNX_LIMITS.maxModelBytes) {
    throw new JobInputError(`the model is ${mib(bytes.length)}; the limit is ${mib(ONNX_LIMITS.maxModelBytes)}`);
  }
  try {
    return inspectModel(bytes);
  } catch (err) {
    if (err instanceof OnnxModelError) throw new JobInputError(err.message);
    throw err;
  }
}

async function loadInput(shards: ShardStore, name: string, sha: string): Promise<Tensor> {
  const bytes = await shards.get(sha);
  if (!bytes) throw new JobInputError(`inputs.${name}: no shard ${sha} (upload it with POST /api/shards first)`);
  try {
    return parseNpy(bytes);
  } catch (err) {
    throw new JobInputError(`inputs.${name}: ${err instanceof NpyError ? err.message : 'unreadable .npy'}`);
  }
}

function checkInput(spec: ModelTensor, t: Tensor) {
  const where = `inputs.${spec.name}`;
  if (t.shape.length !== spec.dims.length) {
    throw new JobInputError(`${where}: shape (${t.shape.join(', ')}) has ${t.shape.length} axes; the model's input '${spec.name}' is ${fmtDims(spec.dims)}`);
  }
  if (spec.dims[0] !== null) {
    throw new JobInputError(`the model's input '${spec.name}' has a fixed first axis of ${spec.dims[0]}; export it with a dynamic batch axis`);
  }
  spec.dims.forEach((d, i) => {
    if (i > 0 && d !== null && d !== t.shape[i]) {
      throw new JobInputError(`${where}: shape (${t.shape.join(', ')}) does not match the model's input '${spec.name}' ${fmtDims(spec.dims)} at axis ${i}`);
    }
  });
  if (t.shape[0] < 1) throw new JobInputError(`${where}: the batch axis is empty`);
}

/** Output shapes beyond the batch axis must be fixed: each unit's output size is known in advance. */
function fixedItemShape(spec: ModelTensor): number[] {
  if (spec.dims.length === 0 || spec.dims[0] !== null) {
    throw new JobInputError(`the model's output '${spec.name}' ${fmtDims(spec.dims)} has no dynamic batch axis first`);
  }
  const rest = spec.dims.slice(1);
  if (rest.some((d) => d === null)) {
    throw new JobInputError(`the model's output '${spec.name}' ${fmtDims(spec.dims)} has a dynamic axis besides the batch; tabgrid needs fixed output shapes`);
  }
  return rest as number[];
}

/** One tolerance for every output (rather than a map of output name to tolerance). */
function isSingleTolerance(t: NonNullable<OnnxJobSubmit['tolerance']>): t is Tolerance {
  return typeof (t as { atol?: unknown }).atol === 'number';
}

function agreementFor(submit: OnnxJobSubmit, name: string): OutputAgreement {
  if (submit.argmax?.includes(name)) return { mode: 'argmax' };
  const t = submit.tolerance;
  const tol = t === undefined ? ONNX_DEFAULT_TOLERANCE : isSingleTolerance(t) ? t : (t[name] ?? ONNX_DEFAULT_TOLERANCE);
  return { mode: 'tolerance', atol: tol.atol, rtol: tol.rtol };
}

function onnxParams(wu: WorkUnitRecord): OnnxParams {
  return wu.params as unknown as OnnxParams;
}

/** Index of the largest value in each row of `cols` values. */
function argmaxRows(v: Float32Array, cols: number): Int32Array {
  const out = new Int32Array(v.length / cols);
  for (let r = 0; r < out.length; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (v[r * cols + c] > v[r * cols + best]) best = c;
    out[r] = best;
  }
  return out;
}

/**
 * Argmax agreement: each row's winning class must match, except where the two candidates are a
 * near-tie in both replicas (honest rounding may flip a tie).
 */
export function argmaxAgree(x: Float32Array, y: Float32Array, cols: number, tol: Tolerance = ONNX_DEFAULT_TOLERANCE): boolean {
  if (x.length !== y.length || cols < 1) return false;
  const ax = argmaxRows(x, cols);
  const ay = argmaxRows(y, cols);
  const near = (v: Float32Array, r: number, i: number, j: number) => {
    const a = v[r * cols + i];
    const b = v[r * cols + j];
    return Math.abs(a - b) <= tol.atol + tol.rtol * Math.max(Math.abs(a), Math.abs(b));
  };
  for (let r = 0; r < ax.length; r++) {
    if (ax[r] !== ay[r] && !(near(x, r, ax[r], ay[r]) && near(y, r, ax[r], ay[r]))) return false;
  }
  return true;
}

/** Splits a unit's flat output into its model outputs, in the order the params list them. */
function splitOutputs(p: OnnxParams, flat: Float32Array): Float32Array[] {
  const parts: Float32Array[] = [];
  let at = 0;
  for (const o of p.outputs) {
    const n = product(o.shape);
    parts.push(flat.subarray(at, at + n));
    at += n;
  }
  return parts;
}

export const onnx: JobKind<OnnxJobSubmit> = {
  kind: 'onnx',
  optIn: true,

  async plan(submit, shards): Promise<JobPlan> {
    const modelBytes = await shards.get(submit.model);
    if (!modelBytes) throw new JobInputError(`model: no model ${submit.model} (upload it with POST /api/models first)`);
    const info = readModel(modelBytes);
    const wanted = info.inputs.map((i) => i.name);
    if (wanted.includes(ONNX_MODEL_INPUT)) throw new JobInputError(`the model has an input named '${ONNX_MODEL_INPUT}', a name tabgrid reserves; rename it`);
    const missing = wanted.filter((n) => !Object.hasOwn(submit.inputs, n));
    const extra = Object.keys(submit.inputs).filter((n) => !wanted.includes(n));
    if (missing.length || extra.length) {
      throw new JobInputError(
        `inputs do not match the model: it takes ${wanted.map((n) => `'${n}'`).join(', ')}` +
          (missing.length ? `; missing ${missing.map((n) => `'${n}'`).join(', ')}` : '') +
          (extra.length ? `; it has no input ${extra.map((n) => `'${n}'`).join(', ')}` : ''),
      );
    }
    const tensors: Tensor[] = [];
    for (const spec of info.inputs) {
      const t = await loadInput(shards, spec.name, submit.inputs[spec.name]);
      checkInput(spec, t);
      tensors.push(t);
    }
    const batch = tensors[0].shape[0];
    tensors.forEach((t, i) => {
      if (t.shape[0] !== batch) {
        throw new JobInputError(`inputs disagree on the batch size: '${info.inputs[0].name}' has ${batch} items, '${info.inputs[i].name}' has ${t.shape[0]}`);
      }
    });
    const outputNames = info.outputs.map((o) => o.name);
    for (const name of [...(submit.argmax ?? []), ...(submit.tolerance && !isSingleTolerance(submit.tolerance) ? Object.keys(submit.tolerance) : [])]) {
      if (!outputNames.includes(name)) throw new JobInputError(`the model has no output '${name}' (its outputs: ${outputNames.join(', ')})`);
    }
    const itemShapes = info.outputs.map(fixedItemShape);
    const outFloatsPerItem = itemShapes.reduce((s, d) => s + product(d), 0);
    const flopsPerItem = submit.flopsPerItem ?? Math.max(1, 2 * info.parameters);
    const maxItemsByOutput = Math.max(1, Math.floor(ONNX_LIMITS.maxUnitOutputBytes / (4 * outFloatsPerItem)));
    if (submit.itemsPerUnit && submit.itemsPerUnit > maxItemsByOutput) {
      throw new JobInputError(`itemsPerUnit ${submit.itemsPerUnit} makes a unit's output larger than ${mib(ONNX_LIMITS.maxUnitOutputBytes)}; use at most ${maxItemsByOutput}`);
    }
    const perUnit = Math.min(batch, submit.itemsPerUnit ?? Math.min(maxItemsByOutput, Math.max(1, Math.floor(TARGET_UNIT_FLOPS / flopsPerItem))));
    const units = Math.ceil(batch / perUnit);
    if (units > MAX_WORK_UNITS) throw new JobInputError(`itemsPerUnit ${perUnit} makes ${units} work units (at most ${MAX_WORK_UNITS}); use more items per unit`);

    const workUnits: PlannedWorkUnit[] = [];
    for (let u = 0; u < units; u++) {
      const offset = u * perUnit;
      const items = Math.min(batch, offset + perUnit) - offset;
      const inputs: Record<string, string> = { [ONNX_MODEL_INPUT]: submit.model };
      const inputSpecs: OnnxParams['inputs'] = [];
      for (const [i, spec] of info.inputs.entries()) {
        const t = tensors[i];
        const row = product(t.shape.slice(1));
        const shape = [items, ...t.shape.slice(1)];
        inputs[spec.name] = await shards.put(toNpy(shape, t.data.slice(offset * row, (offset + items) * row)));
        inputSpecs.push({ name: spec.name, shape });
      }
      const params: OnnxParams = {
        model: submit.model,
        modelBytes: modelBytes.length,
        items,
        inputs: inputSpecs,
        outputs: info.outputs.map((o, i) => ({ name: o.name, shape: [items, ...itemShapes[i]], agreement: agreementFor(submit, o.name) })),
      };
      workUnits.push({
        params: params as unknown as Record<string, number>, // the store keeps params as JSON
        inputs,
        outputBytes: 4 * items * outFloatsPerItem,
        flops: items * flopsPerItem,
        tolerance: ONNX_DEFAULT_TOLERANCE, // per-output agreement lives in params.outputs
        meta: { offset },
      });
    }
    return {
      meta: { batch, itemsPerUnit: perUnit, outputs: info.outputs.map((o, i) => ({ name: o.name, itemShape: itemShapes[i] })) },
      resultShape: [batch, ...itemShapes[0]],
      workUnits,
    };
  },

  // No cheap check recomputes an arbitrary model; replicas on independent volunteers (and the
  // length, hash and signature checks before this) are what vouch for an ONNX result.
  async check() {
    return true;
  },

  agree(wu, x, y) {
    const p = onnxParams(wu);
    if (x.length !== y.length) return false;
    const xs = splitOutputs(p, x);
    const ys = splitOutputs(p, y);
    return p.outputs.every((o, i) =>
      o.agreement.mode === 'argmax' ? argmaxAgree(xs[i], ys[i], o.shape[o.shape.length - 1] ?? 1) : compareWithin(xs[i], ys[i], o.agreement).ok,
    );
  },

  assimilate(job, outputs) {
    return this.output!(job, outputs, this.outputNames!(job)[0])!;
  },

  outputNames(job: JobRecord) {
    return (job.meta as { outputs: { name: string }[] }).outputs.map((o) => o.name);
  },

  output(job: JobRecord, outputs: { wu: WorkUnitRecord; output: Float32Array }[], name: string) {
    const meta = job.meta as { batch: number; outputs: { name: string; itemShape: number[] }[] };
    const idx = meta.outputs.findIndex((o) => o.name === name);
    if (idx < 0) return null;
    const perItem = product(meta.outputs[idx].itemShape);
    const all = new Float32Array(meta.batch * perItem);
    for (const { wu, output } of outputs) all.set(splitOutputs(onnxParams(wu), output)[idx], wu.meta.offset * perItem);
    return toNpy([meta.batch, ...meta.outputs[idx].itemShape], all);
  },
};
