// Job kind `matmul`: C = A·B split into output tiles. Each work unit gets a row block of A
// (rows × k) and a column block of B (k × cols) as their own content-addressed shards, so units
// in the same row or column share inputs, and computes one rows × cols tile of C.
import type { MatmulJobSubmit, MatmulParams } from '../protocol/index.js';
import { toNpy, type Tensor } from '../protocol/npy.js';
import type { ShardStore } from '../store/shards.js';
import type { JobRecord, WorkUnitRecord } from '../store/store.js';
import { DEFAULT_TOLERANCE } from './compare.js';
import { loadInputTensor, maxAbs, shardValues } from './inputs.js';
import { checkMatmul, U } from './matmul-check.js';
import { JobInputError, type JobKind, type JobPlan, type PlannedWorkUnit } from './types.js';

export { freivalds } from './matmul-check.js';

/** A work unit aims at about this many FLOPs (about a second on a slow software adapter). */
const TARGET_WU_FLOPS = 2 ** 28;
const MAX_WORK_UNITS = 100_000;

/** CPU reference, accumulating in float64: ground truth for tests. */
export function matmulReference(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const c = new Float32Array(m * n);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      const bOff = p * n;
      for (let j = 0; j < n; j++) row[j] += av * b[bOff + j];
    }
    c.set(row, i * n);
  }
  return c;
}

export function chooseTile(m: number, k: number, n: number): { rows: number; cols: number } {
  const side = Math.max(16, Math.min(1024, Math.floor(Math.sqrt(TARGET_WU_FLOPS / (2 * k)) / 16) * 16));
  return { rows: Math.min(side, m), cols: Math.min(side, n) };
}

function sliceRows(t: Float32Array, cols: number, r0: number, r1: number): Float32Array {
  return t.slice(r0 * cols, r1 * cols);
}

function sliceCols(t: Float32Array, rows: number, cols: number, c0: number, c1: number): Float32Array {
  const w = c1 - c0;
  const out = new Float32Array(rows * w);
  for (let r = 0; r < rows; r++) out.set(t.subarray(r * cols + c0, r * cols + c1), r * w);
  return out;
}

const FLOAT32_MAX = 3.4028234663852886e38;

function loadMatrix(shards: ShardStore, sha: string, label: string): Promise<Tensor> {
  return loadInputTensor(shards, sha, label, 2, 'must be a 2-D matrix');
}

export const matmul: JobKind<MatmulJobSubmit> = {
  kind: 'matmul',
  checksOutputs: true,

  async plan(submit, shards): Promise<JobPlan> {
    const A = await loadMatrix(shards, submit.inputs.a, 'a');
    const B = await loadMatrix(shards, submit.inputs.b, 'b');
    const [m, k] = A.shape;
    const [k2, n] = B.shape;
    if (k !== k2) {
      throw new JobInputError(`inner dimensions differ: A is ${m}×${k} and B is ${k2}×${n}; A's columns must equal B's rows`);
    }
    const tile = submit.tile ?? chooseTile(m, k, n);
    const rowBlocks = Math.ceil(m / tile.rows);
    const colBlocks = Math.ceil(n / tile.cols);
    if (rowBlocks * colBlocks > MAX_WORK_UNITS) {
      throw new JobInputError(`tile ${tile.rows}×${tile.cols} makes ${rowBlocks * colBlocks} work units (at most ${MAX_WORK_UNITS}); use a larger tile`);
    }
    // Non-finite inputs, or products that could overflow float32, would make honest results
    // Inf/NaN that no check can tell from cheating: refuse them up front.
    const [maxA, maxB] = [maxAbs(A.data), maxAbs(B.data)];
    if (!Number.isFinite(maxA) || !Number.isFinite(maxB)) throw new JobInputError('inputs must be finite (no NaN or Infinity)');
    if (maxA * maxB * k > FLOAT32_MAX / 2) {
      throw new JobInputError(`inputs too large: max|A|·max|B|·k = ${(maxA * maxB * k).toExponential(2)} could overflow float32; scale them down`);
    }
    const aBlocks: { sha: string; max: number }[] = [];
    for (let bi = 0; bi < rowBlocks; bi++) {
      const r0 = bi * tile.rows;
      const r1 = Math.min(m, r0 + tile.rows);
      const block = sliceRows(A.data, k, r0, r1);
      aBlocks.push({ sha: await shards.put(toNpy([r1 - r0, k], block)), max: maxAbs(block) });
    }
    const bBlocks: { sha: string; max: number }[] = [];
    for (let bj = 0; bj < colBlocks; bj++) {
      const c0 = bj * tile.cols;
      const c1 = Math.min(n, c0 + tile.cols);
      const block = sliceCols(B.data, k, n, c0, c1);
      bBlocks.push({ sha: await shards.put(toNpy([k, c1 - c0], block)), max: maxAbs(block) });
    }
    const workUnits: PlannedWorkUnit[] = [];
    for (let bi = 0; bi < rowBlocks; bi++) {
      for (let bj = 0; bj < colBlocks; bj++) {
        const r0 = bi * tile.rows;
        const c0 = bj * tile.cols;
        const rows = Math.min(m, r0 + tile.rows) - r0;
        const cols = Math.min(n, c0 + tile.cols) - c0;
        // Reordering noise scales with k and the input magnitudes; atol covers results near zero.
        const atol = Math.max(DEFAULT_TOLERANCE.atol, 2 * k * U * aBlocks[bi].max * bBlocks[bj].max);
        workUnits.push({
          params: { m: rows, k, n: cols },
          inputs: { a: aBlocks[bi].sha, b: bBlocks[bj].sha },
          outputBytes: rows * cols * 4,
          flops: 2 * rows * cols * k,
          tolerance: submit.tolerance ?? { atol, rtol: DEFAULT_TOLERANCE.rtol },
          meta: { r0, c0 },
        });
      }
    }
    return { meta: { m, k, n, tile }, resultShape: [m, n], workUnits };
  },

  async check(wu, output, shards) {
    const [aBytes, bBytes] = await Promise.all([shards.get(wu.inputs.a), shards.get(wu.inputs.b)]);
    if (!aBytes || !bBytes) return false;
    const { m, k, n } = wu.params as MatmulParams;
    return checkMatmul(shardValues(aBytes), shardValues(bBytes), output, m, k, n);
  },

  assimilate(job: JobRecord, outputs: { wu: WorkUnitRecord; output: Float32Array }[]) {
    const { m, n } = job.meta as { m: number; n: number };
    const c = new Float32Array(m * n);
    for (const { wu, output } of outputs) {
      const { r0, c0 } = wu.meta;
      const { m: rows, n: cols } = wu.params as MatmulParams;
      for (let r = 0; r < rows; r++) c.set(output.subarray(r * cols, (r + 1) * cols), (r0 + r) * n + c0);
    }
    return toNpy([m, n], c);
  },
};
