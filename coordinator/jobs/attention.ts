// Job kind `attention`: out = softmax(Q·Kᵀ/√d)·V for every head of Q, K, V ([heads, seq, d]).
// Split by head and query block: each work unit gets its block of Q rows plus its head's whole K
// and V as content-addressed shards (units of one head share K and V), and returns rows × d
// outputs. The cheap check recomputes a few randomly chosen output rows on the CPU.
import { randomUint32 } from '../util/random.js';
import { ATTENTION_HEAD_DIMS, type AttentionJobSubmit, type AttentionParams, type Tolerance } from '../protocol/index.js';
import { toNpy, type Tensor } from '../protocol/npy.js';
import type { ShardStore } from '../store/shards.js';
import type { JobRecord, WorkUnitRecord } from '../store/store.js';
import { compareWithin, DEFAULT_TOLERANCE } from './compare.js';
import { loadInputTensor, maxAbs, shardValues } from './inputs.js';
import { JobInputError, type JobKind, type JobPlan, type PlannedWorkUnit } from './types.js';

/** float32 unit roundoff. */
const U = 2 ** -24;
/** A work unit aims at about this many FLOPs, like matmul's. */
const TARGET_WU_FLOPS = 2 ** 28;
const MAX_WORK_UNITS = 100_000;
/** Output rows the coordinator recomputes per result. */
const CHECK_ROWS = 4;

/** Multiply-adds of one attention row against `keys` keys: Q·Kᵀ and P·V, 2 FLOPs each. */
function rowFlops(keys: number, d: number): number {
  return 4 * keys * d;
}

/** Keys query `qi` attends to. */
function keysFor(qi: number, seq: number, causal: boolean): number {
  return causal ? Math.min(seq, qi + 1) : seq;
}

/** FLOPs of query rows [q0, q0 + rows) of one head. */
export function attentionFlops(p: AttentionParams): number {
  let keys = 0;
  if (p.causal) {
    // Rows q0..q0+rows-1 see q0+1 .. q0+rows keys (capped at seq).
    for (let i = 0; i < p.rows; i++) keys += keysFor(p.q0 + i, p.seq, true);
  } else {
    keys = p.rows * p.seq;
  }
  return rowFlops(1, p.d) * keys;
}

/**
 * CPU reference for one output row, in float64: query row `qRow` (d values) against the first
 * `keys` rows of k and v (seq × d). Writes d values to out at outOffset.
 */
function attentionRow(qRow: Float32Array, k: Float32Array, v: Float32Array, keys: number, d: number, out: Float64Array) {
  const scale = 1 / Math.sqrt(d);
  const scores = new Float64Array(keys);
  let max = -Infinity;
  for (let j = 0; j < keys; j++) {
    let s = 0;
    for (let c = 0; c < d; c++) s += qRow[c] * k[j * d + c];
    scores[j] = s * scale;
    if (scores[j] > max) max = scores[j];
  }
  out.fill(0);
  let sum = 0;
  for (let j = 0; j < keys; j++) {
    const p = Math.exp(scores[j] - max); // subtracting the max keeps exp finite for large logits
    sum += p;
    for (let c = 0; c < d; c++) out[c] += p * v[j * d + c];
  }
  for (let c = 0; c < d; c++) out[c] /= sum;
}

/**
 * CPU reference, accumulating in float64: one head's query rows [q0, q0 + rows) (q holds just
 * those rows, rows × d) against k and v (seq × d). Ground truth for tests and the cheap check.
 */
export function attentionReference(q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionParams): Float32Array {
  const { rows, seq, d, q0, causal } = p;
  const out = new Float32Array(rows * d);
  const row = new Float64Array(d);
  for (let i = 0; i < rows; i++) {
    attentionRow(q.subarray(i * d, (i + 1) * d), k, v, keysFor(q0 + i, seq, causal), d, row);
    out.set(row, i * d);
  }
  return out;
}

/** Multi-head reference over whole [heads, seq, d] tensors. */
export function attentionReferenceHeads(q: Float32Array, k: Float32Array, v: Float32Array, heads: number, seq: number, d: number, causal: boolean): Float32Array {
  const out = new Float32Array(heads * seq * d);
  const size = seq * d;
  for (let h = 0; h < heads; h++) {
    const at = h * size;
    const head = attentionReference(q.subarray(at, at + size), k.subarray(at, at + size), v.subarray(at, at + size), { rows: seq, seq, q0: 0, d: d as 64 | 128, causal });
    out.set(head, at);
  }
  return out;
}

/**
 * How far an honest float32 result may sit from the exact one. A score s = q·k/√d is off by at
 * most e = d·u·Σ|q_c·k_c|/√d ≤ d·u·S with S = √d·|q|∞·|k|∞ bounding |s|; a softmax weight then by
 * a relative 2e plus WGSL exp's own error ((3 + 2|x|) ulp for |x| ≤ 2S); the output (a convex
 * combination of V rows) by |v|∞ times that plus the seq·u of summing up to `seq` terms. Twice
 * that covers directed rounding; rtol covers the rest.
 */
export function attentionTolerance(p: { seq: number; d: number }, maxQ: number, maxK: number, maxV: number): Tolerance {
  const S = Math.sqrt(p.d) * maxQ * maxK;
  const e = p.d * U * S;
  const bound = maxV * (2 * e + (3 + 4 * S) * U + (p.seq + p.d + 8) * U);
  return { atol: Math.max(DEFAULT_TOLERANCE.atol, 2 * bound), rtol: DEFAULT_TOLERANCE.rtol };
}

/** n distinct random indices in [0, size) (crypto randomness: a cheater cannot guess the rows). */
function randomRows(size: number, n: number): number[] {
  if (size <= n) return Array.from({ length: size }, (_, i) => i);
  const picked = new Set<number>();
  while (picked.size < n) picked.add(randomUint32() % size);
  return [...picked];
}

/**
 * Recomputes `count` random rows of one unit's output in float64 and compares them with the
 * tolerance. Catches any wrong row with probability ≥ count/rows, and any systematic error surely.
 */
export function checkRandomRows(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, p: AttentionParams, tol: Tolerance, count = CHECK_ROWS): boolean {
  const { d, q0, seq, causal } = p;
  if (out.length !== p.rows * d) return false;
  const exact = new Float64Array(d);
  for (const i of randomRows(p.rows, count)) {
    attentionRow(q.subarray(i * d, (i + 1) * d), k, v, keysFor(q0 + i, seq, causal), d, exact);
    if (!compareWithin(out.subarray(i * d, (i + 1) * d), Float32Array.from(exact), tol).ok) return false;
  }
  return true;
}

function loadTensor(shards: ShardStore, sha: string, label: string): Promise<Tensor> {
  return loadInputTensor(shards, sha, label, 3, 'must have shape [heads, seq, d]');
}

/** Query rows per unit: about TARGET_WU_FLOPS of work, a multiple of 16, at most the sequence. */
export function chooseBlockRows(seq: number, d: number): number {
  const rows = Math.floor(TARGET_WU_FLOPS / rowFlops(seq, d) / 16) * 16;
  return Math.min(seq, Math.max(16, rows));
}

export const attention: JobKind<AttentionJobSubmit> = {
  kind: 'attention',

  async plan(submit, shards): Promise<JobPlan> {
    const Q = await loadTensor(shards, submit.inputs.q, 'q');
    const K = await loadTensor(shards, submit.inputs.k, 'k');
    const V = await loadTensor(shards, submit.inputs.v, 'v');
    const [heads, seq, d] = Q.shape;
    for (const [label, t] of [['k', K], ['v', V]] as const) {
      if (t.shape.some((x, i) => x !== Q.shape[i])) {
        throw new JobInputError(`inputs.${label}: shape (${t.shape.join(', ')}) differs from q's (${Q.shape.join(', ')}); q, k and v must all be [heads, seq, d]`);
      }
    }
    if (!(ATTENTION_HEAD_DIMS as readonly number[]).includes(d)) {
      throw new JobInputError(`head dimension d = ${d} is not supported; use one of ${ATTENTION_HEAD_DIMS.join(', ')}`);
    }
    const blockRows = Math.min(seq, submit.blockRows ?? chooseBlockRows(seq, d));
    const blocks = Math.ceil(seq / blockRows);
    if (heads * blocks > MAX_WORK_UNITS) {
      throw new JobInputError(`blockRows ${blockRows} makes ${heads * blocks} work units (at most ${MAX_WORK_UNITS}); use a larger block`);
    }
    const size = seq * d;
    const workUnits: PlannedWorkUnit[] = [];
    for (let h = 0; h < heads; h++) {
      const kHead = K.data.subarray(h * size, (h + 1) * size);
      const vHead = V.data.subarray(h * size, (h + 1) * size);
      const k = await shards.put(toNpy([seq, d], kHead));
      const v = await shards.put(toNpy([seq, d], vHead));
      const maxK = maxAbs(kHead);
      const maxV = maxAbs(vHead);
      for (let q0 = 0; q0 < seq; q0 += blockRows) {
        const rows = Math.min(blockRows, seq - q0);
        const qBlock = Q.data.subarray(h * size + q0 * d, h * size + (q0 + rows) * d);
        const params: AttentionParams = { seq, rows, q0, d: d as AttentionParams['d'], causal: submit.causal };
        workUnits.push({
          params,
          inputs: { q: await shards.put(toNpy([rows, d], qBlock)), k, v },
          outputBytes: rows * d * 4,
          flops: attentionFlops(params),
          tolerance: submit.tolerance ?? attentionTolerance(params, maxAbs(qBlock), maxK, maxV),
          meta: { h, q0 },
        });
      }
    }
    return { meta: { heads, seq, d, causal: submit.causal, blockRows }, resultShape: [heads, seq, d], workUnits };
  },

  async check(wu, output, shards) {
    const bytes = await Promise.all([shards.get(wu.inputs.q), shards.get(wu.inputs.k), shards.get(wu.inputs.v)]);
    if (bytes.some((b) => !b)) return false;
    const [q, k, v] = bytes.map((b) => shardValues(b!));
    return checkRandomRows(q, k, v, output, wu.params as AttentionParams, wu.tolerance);
  },

  assimilate(job: JobRecord, outputs: { wu: WorkUnitRecord; output: Float32Array }[]) {
    const { heads, seq, d } = job.meta as { heads: number; seq: number; d: number };
    const out = new Float32Array(heads * seq * d);
    for (const { wu, output } of outputs) out.set(output, (wu.meta.h * seq + wu.meta.q0) * d);
    return toNpy([heads, seq, d], out);
  },
};
